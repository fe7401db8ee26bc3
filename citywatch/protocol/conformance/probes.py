"""Active probes (``--probe``): commands the kit sends to the device, and what their ``ack`` must say.

- ``ping`` with an expiry in the future: answered ``ok: true``;
- ``ping`` sent "an hour ago" that expired half an hour ago: not run, answered ``ok: false``,
  ``reason: "expired"`` (docs/protocol.md, *Expiry*). Half an hour of margin: a device clock that far
  behind is broken for other reasons.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from citywatch.protocol.conformance import findings as rules
from citywatch.protocol.conformance.findings import Finding
from citywatch.protocol.conformance.judgement import Judgement, about_watch
from citywatch.protocol.messages import AckMessage, CommandMessage


class ProbeKind(StrEnum):
    PING = "ping"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Probe:
    kind: ProbeKind
    device_id: str
    command: CommandMessage
    sent_at: datetime  # the kit's clock
    timeout: timedelta

    @property
    def deadline(self) -> datetime:
        return self.sent_at + self.timeout

    def judge(self, ack: AckMessage, judgement: Judgement, *, at: datetime) -> None:
        waited = (at - self.sent_at).total_seconds()
        if self.kind is ProbeKind.PING:
            if ack.ok:
                judgement.add(rules.PROBE_PASSED, f"ping probe {ack.cmd_id} answered ok after {waited:.2f} s")
            else:
                judgement.add(
                    rules.PROBE_PING,
                    f"ping probe {ack.cmd_id} answered ok: false (reason {ack.reason}): every device answers ping",
                )
        elif ack.ok:
            judgement.add(
                rules.PROBE_EXPIRED,
                f"probe {ack.cmd_id} expired at {self._expires()} and was run (ok: true): a device does not run a "
                "command whose expires has passed by its clock",
            )
        elif ack.reason != "expired":
            judgement.add(
                rules.PROBE_EXPIRED,
                f"probe {ack.cmd_id}, expired at {self._expires()}, answered ok: false with reason {ack.reason!r}: "
                'the page asks for reason "expired"',
            )
        else:
            judgement.add(
                rules.PROBE_PASSED, f"expired probe {ack.cmd_id} refused as expired after {waited:.2f} s"
            )

    def _expires(self) -> str:
        return self.command.expires.isoformat() if self.command.expires else "?"

    def unanswered(self) -> Finding:
        return about_watch(
            rules.PROBE_NO_ACK,
            f"no ack to the {self.kind.value} probe {self.command.cmd_id} within {self.timeout.total_seconds():.0f} s: "
            "a device answers every cmd on its ack topic (an expired one too, ok: false)",
            device_id=self.device_id,
        )


def probe_commands(device_id: str, *, now: datetime, timeout: timedelta) -> list[Probe]:
    """The probes to send now; each cmd_id is new, so the gateway's audit tells them apart."""
    tag = uuid.uuid4().hex[:8]
    ping = CommandMessage(cmd_id=f"check-ping-{tag}", ts=now, command="ping", expires=now + timeout)
    expired = CommandMessage(
        cmd_id=f"check-expired-{tag}",
        ts=now - timedelta(hours=1),
        command="ping",
        expires=now - timedelta(minutes=30),
    )
    return [
        Probe(ProbeKind.PING, device_id, ping, sent_at=now, timeout=timeout),
        Probe(ProbeKind.EXPIRED, device_id, expired, sent_at=now, timeout=timeout),
    ]
