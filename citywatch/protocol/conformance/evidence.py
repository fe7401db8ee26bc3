"""Evidence items sent in parts: the parts of one item agree, and joined they are what they declare.

See docs/protocol.md, *Evidence*. The kit keeps an item's parts until it has them all, then joins them
as the gateway does and checks size and SHA-256; exact repeats of a part never reach this tracker (the
checker reports them as duplicates).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from citywatch.protocol.conformance import findings as rules
from citywatch.protocol.conformance.findings import Finding
from citywatch.protocol.conformance.judgement import Judgement, about_watch
from citywatch.protocol.messages import EvidenceMessage

# What every part of one item states alike (only part, data_b64, ts and outbox_seq may differ).
_ITEM_FIELDS = ("event_id", "kind", "content_type", "caption", "taken_at", "parts", "size", "sha256")


@dataclass(slots=True)
class _Item:
    first: EvidenceMessage
    chunks: dict[int, bytes] = field(default_factory=dict)
    done: bool = False


@dataclass(slots=True)
class EvidenceTracker:
    """One device's evidence items, by evidence_id."""

    items: dict[str, _Item] = field(default_factory=dict)

    def part(self, message: EvidenceMessage, judgement: Judgement) -> None:
        item = self.items.get(message.evidence_id)
        if item is None:
            item = self.items[message.evidence_id] = _Item(first=message)
        differing = [name for name in _ITEM_FIELDS if getattr(item.first, name) != getattr(message, name)]
        if differing:
            judgement.add(
                rules.EVIDENCE_CONFLICT,
                f"part {message.part} of evidence {message.evidence_id} states other {', '.join(differing)} "
                "than its earlier parts: every part states the whole item alike; another item needs a new "
                "evidence_id (the gateway refuses evidence_conflict)",
            )
            return
        if item.done:
            return  # a resend after the item was whole, with the same bytes or not: nothing to join
        chunk = base64.b64decode(message.data_b64)
        earlier = item.chunks.get(message.part)
        if earlier is not None and earlier != chunk:
            judgement.add(
                rules.EVIDENCE_CONFLICT,
                f"part {message.part} of evidence {message.evidence_id} sent again with other bytes: a resend is "
                "the same message (the gateway refuses evidence_conflict)",
            )
            return
        item.chunks[message.part] = chunk
        if len(item.chunks) < message.parts:
            return
        whole = b"".join(item.chunks[number] for number in range(message.parts))
        item.chunks.clear()  # joined once; only the verdict is kept
        item.done = True
        if len(whole) != message.size or hashlib.sha256(whole).hexdigest() != message.sha256:
            judgement.add(
                rules.EVIDENCE_CORRUPT,
                f"the {message.parts} part(s) of evidence {message.evidence_id} join to {len(whole)} bytes whose "
                f"{'size' if len(whole) != message.size else 'SHA-256'} is not the declared one ({message.size} "
                "bytes): part p holds bytes [p * chunk, (p + 1) * chunk) of the item (the gateway refuses "
                "evidence_corrupt and keeps none of it)",
            )

    def finish(self, device_id: str) -> list[Finding]:
        """Items still missing parts when the watch ends."""
        return [
            about_watch(
                rules.EVIDENCE_INCOMPLETE,
                f"evidence {evidence_id} ({item.first.kind.value}) of event {item.first.event_id}: "
                f"{len(item.chunks)} of {item.first.parts} part(s) seen by the end of the watch; the gateway "
                "drops an item whose parts stop coming (CITYWATCH_EVIDENCE_PARTIAL_MAX_AGE_H)",
                device_id=device_id,
            )
            for evidence_id, item in self.items.items()
            if not item.done and item.chunks
        ]
