"""One message under judgement: where it came from, and the findings it collects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from citywatch.protocol.conformance.findings import Finding, Rule


@dataclass(frozen=True, slots=True)
class Observation:
    """One message as the broker delivered it to the kit.

    ``retain`` is None when the broker cannot say: MQTT 3.1.1 clears the flag on every live message
    (only retained messages sent on subscribing keep it); MQTT 5's "retain as published" keeps it.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool | None
    received_at: datetime  # the kit's clock at arrival (UTC, aware)


@dataclass(slots=True)
class Judgement:
    message_no: int
    topic: str
    device_id: str | None
    findings: list[Finding] = field(default_factory=list)

    def add(self, rule: Rule, text: str) -> None:
        self.findings.append(
            Finding(
                rule=rule.id,
                severity=rule.level,
                message_no=self.message_no,
                topic=self.topic,
                device_id=self.device_id,
                text=text,
            )
        )


def about_watch(rule: Rule, text: str, *, device_id: str | None = None) -> Finding:
    """A finding about the watch as a whole (a probe left unanswered, a silent device)."""
    return Finding(rule=rule.id, severity=rule.level, device_id=device_id, text=text)
