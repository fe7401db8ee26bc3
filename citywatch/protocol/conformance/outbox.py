"""``outbox_seq``: increasing in the order the device queued its messages, never given out twice.

See docs/protocol.md, *Delivery receipts*. A resend is the same message again (same number, same
content): exact repeats never reach this tracker (the checker reports them as duplicates). A number
below the highest seen and not seen before is a resend of a message the kit missed (sent before it
was watching, or lost by the broker) when it is stamped no later than that highest one; stamped later,
it is a new message numbered backwards (a counter that restarted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from citywatch.protocol.conformance import findings as rules
from citywatch.protocol.conformance.judgement import Judgement


@dataclass(slots=True)
class OutboxTracker:
    """One device's numbered messages."""

    digests: dict[int, bytes] = field(default_factory=dict)
    highest: int | None = None
    highest_ts: datetime | None = None
    numbered: int = 0
    unnumbered: int = 0
    reported_partial: bool = False

    def message(self, outbox_seq: int | None, ts: datetime, digest: bytes, judgement: Judgement) -> None:
        """A telemetry, event, snapshot or evidence message (the channels that may be numbered)."""
        if outbox_seq is None:
            self.unnumbered += 1
        else:
            self.numbered += 1
        if self.numbered and self.unnumbered and not self.reported_partial:
            self.reported_partial = True
            judgement.add(
                rules.OUTBOX_PARTIAL,
                "this device numbers some of its telemetry, event, snapshot and evidence messages (outbox_seq) and not "
                "others: the unnumbered ones get no receipt, so a broker crash can lose them",
            )
        if outbox_seq is None:
            return
        earlier = self.digests.get(outbox_seq)
        if earlier is not None:
            if earlier != digest:
                judgement.add(
                    rules.OUTBOX_REUSED,
                    f"outbox_seq {outbox_seq} given out again with other content: a number is never given out "
                    "twice (not after a restart either), and a resend is the same message",
                )
            return
        self.digests[outbox_seq] = digest
        if self.highest is None or self.highest_ts is None or outbox_seq > self.highest:
            self.highest, self.highest_ts = outbox_seq, ts
        elif ts > self.highest_ts:
            judgement.add(
                rules.OUTBOX_BACKWARDS,
                f"outbox_seq {outbox_seq} is below {self.highest}, yet stamped {ts.isoformat()}, after it "
                f"({self.highest_ts.isoformat()}): numbers increase in the order messages are queued",
            )
        else:
            judgement.add(
                rules.OUTBOX_RESENT_UNSEEN,
                f"outbox_seq {outbox_seq}, below {self.highest}: a resend of a message the kit did not see "
                "(sent before it was watching, or lost by the broker)",
            )
