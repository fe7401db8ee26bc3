"""Commands and their acks: every ``cmd`` delivered to an online device is answered on ``ack``.

A ``cmd`` sent while the device is offline waits in its persistent session: it is due from the
device's next birth. Not judged: a retained ``cmd`` (replayed to the kit when it subscribed, long
answered) and ``config``, which is retained and so cannot be told apart from its replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from citywatch.protocol.conformance import findings as rules
from citywatch.protocol.conformance.findings import Finding
from citywatch.protocol.conformance.judgement import Judgement, about_watch
from citywatch.protocol.messages import AckMessage


@dataclass(slots=True)
class CommandTracker:
    """One device's commands and answers."""

    ack_timeout: timedelta
    sent: set[str] = field(default_factory=set)  # cmd_ids seen on its cmd and config topics
    acks: dict[str, bytes] = field(default_factory=dict)  # cmd_id -> digest of the first ack
    awaiting: dict[str, datetime] = field(default_factory=dict)  # cmd_id -> when its ack is due
    queued: list[str] = field(default_factory=list)  # sent while it was offline: due after its next birth

    def command(self, cmd_id: str, *, expect_ack: bool, online: bool, at: datetime) -> None:
        self.sent.add(cmd_id)
        if not expect_ack:
            return
        if online:
            self.awaiting.setdefault(cmd_id, at + self.ack_timeout)
        elif cmd_id not in self.queued:
            self.queued.append(cmd_id)

    def connected(self, at: datetime) -> None:
        """A new connection (a birth): the broker delivers what was queued for it now."""
        self.awaiting.update(dict.fromkeys(self.queued, at + self.ack_timeout))
        self.queued.clear()

    def ack(self, ack: AckMessage, digest: bytes, judgement: Judgement, *, probe: bool) -> None:
        self.awaiting.pop(ack.cmd_id, None)
        if ack.cmd_id in self.queued:
            self.queued.remove(ack.cmd_id)
        if not probe and ack.cmd_id not in self.sent:
            judgement.add(
                rules.ACK_UNKNOWN_CMD,
                f"ack of {ack.cmd_id}, a command not sent while the kit was watching (queued before, or by someone "
                "else)",
            )
        if self.acks.setdefault(ack.cmd_id, digest) != digest:
            judgement.add(
                rules.ACK_REPEATED,
                f"a second, different ack of {ack.cmd_id}: the gateway records only the first",
            )

    def overdue(self, now: datetime, device_id: str) -> list[Finding]:
        late = [cmd_id for cmd_id, due in self.awaiting.items() if due <= now]
        for cmd_id in late:
            del self.awaiting[cmd_id]
        return [
            about_watch(
                rules.ACK_MISSING,
                f"no ack of cmd {cmd_id} within {self.ack_timeout.total_seconds():.0f} s of its delivery to the "
                "online device: a device answers every cmd on its ack topic (an expired one too)",
                device_id=device_id,
            )
            for cmd_id in late
        ]
