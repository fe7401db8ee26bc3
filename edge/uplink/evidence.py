"""Evidence items (a clip, an annotated still, a photo, a plate crop) as ``evidence`` messages.

An item is cut into chunks of ``chunk_bytes``, one ``EvidenceMessage`` each; the agent sends every one
through its uplink (``uplink.send(Channel.EVIDENCE, message)``), so the parts wait in the on-disk outbox
and are sent again until the gateway's receipt, like events. The gateway joins them and checks the
item's size and SHA-256 (docs/protocol.md, *Evidence*).
"""

from __future__ import annotations

import hashlib
import math
import uuid
from base64 import b64encode
from datetime import UTC, datetime

from citywatch.protocol.messages import (
    MAX_EVIDENCE_CHUNK_BYTES,
    MAX_EVIDENCE_PARTS,
    EvidenceKind,
    EvidenceMessage,
)

DEFAULT_CHUNK_BYTES = 144_000  # 192,000 base64 characters: a part stays well under the 256 KiB limit


def new_evidence_id() -> str:
    return uuid.uuid4().hex


def evidence_messages(
    *,
    device_id: str,
    event_id: str,
    kind: str,
    content_type: str,
    data: bytes,
    taken_at: datetime,
    caption: str | None = None,
    evidence_id: str | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ts: datetime | None = None,
) -> list[EvidenceMessage]:
    """The parts of one evidence item, in order (part 0 first), ready for ``uplink.send``.

    ``evidence_id``: a new random one when None. ``ts``: when the item is queued (now when None);
    ``taken_at``: when the evidence was taken (a clip: its first frame). Raises ValueError for an empty
    item, a chunk size the protocol does not allow, an item needing more than 512 parts, or anything
    the message model refuses (kind and content type that do not match, a caption with a line break).
    """
    if not data:
        raise ValueError("an evidence item has at least one byte")
    if not 1 <= chunk_bytes <= MAX_EVIDENCE_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be 1 to {MAX_EVIDENCE_CHUNK_BYTES}, got {chunk_bytes}")
    parts = math.ceil(len(data) / chunk_bytes)
    if parts > MAX_EVIDENCE_PARTS:
        raise ValueError(
            f"{len(data)} bytes in chunks of {chunk_bytes} are {parts} parts, over the protocol's "
            f"{MAX_EVIDENCE_PARTS}: use larger chunks (up to {MAX_EVIDENCE_CHUNK_BYTES}) or a shorter clip"
        )
    evidence_id = evidence_id or new_evidence_id()
    digest = hashlib.sha256(data).hexdigest()
    queued = ts or datetime.now(UTC)
    return [
        EvidenceMessage(
            device_id=device_id,
            event_id=event_id,
            evidence_id=evidence_id,
            kind=EvidenceKind(kind),
            content_type=content_type,  # type: ignore[arg-type]  # the model refuses other types
            caption=caption,
            ts=queued,
            taken_at=taken_at,
            part=part,
            parts=parts,
            size=len(data),
            sha256=digest,
            data_b64=b64encode(data[part * chunk_bytes : (part + 1) * chunk_bytes]).decode("ascii"),
        )
        for part in range(parts)
    ]
