"""Messages and a feed for the conformance checker's tests: a device's traffic, written out by hand."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from citywatch.protocol.conformance import Checker, CheckOptions, Finding, Observation
from citywatch.protocol.messages import RETAINED_CHANNELS
from citywatch.protocol.topics import Channel

SITE, DEVICE = "s1", "c1"
WATCH_START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# When messages arrive unless a test says otherwise: after every time the tests stamp (device clocks
# may be behind by any amount, so this judges nothing but times ahead).
ARRIVAL = WATCH_START + timedelta(hours=1)
AS_ASKED = "as the page asks"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def at(seconds: float) -> datetime:
    return WATCH_START + timedelta(seconds=seconds)


def topic(channel: Channel | str, *, site: str = SITE, device: str = DEVICE) -> str:
    return (
        f"citywatch/v1/{site}/{device}/{Channel(channel).value if isinstance(channel, Channel) else channel}"
    )


def state(
    status: str = "online", session: int = 1, ts: datetime = WATCH_START, **changes: Any
) -> dict[str, Any]:
    return {
        "v": 1,
        "device_id": DEVICE,
        "ts": iso(ts),
        "status": status,
        "session": session,
        "device_type": "culvert",
        "firmware_version": "1.0",
        "config_version": "c1",
    } | changes


def telemetry(ts: datetime = WATCH_START, level_cm: float = 1.0, **changes: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "device_id": DEVICE,
        "ts": iso(ts),
        "measurement": "water_level",
        "fields": {"level_cm": level_cm},
    } | changes


def event(
    phase: str = "new",
    seq: int = 0,
    event_id: str = "evt-0001",
    *,
    ts: datetime = WATCH_START,
    started_at: datetime = WATCH_START,
    level_cm: float = 10.5,
    **changes: Any,
) -> dict[str, Any]:
    return {
        "v": 1,
        "device_id": DEVICE,
        "event_id": event_id,
        "seq": seq,
        "phase": phase,
        "type": "water_level",
        "severity": "notice",
        "confidence": 0.9,
        "ts": iso(ts),
        "started_at": iso(started_at),
        "details": {"level_cm": level_cm, "peak_cm": level_cm, "threshold_cm": 10.0},
    } | changes


def ack(
    cmd_id: str, *, ok: bool = True, reason: str | None = None, ts: datetime = WATCH_START
) -> dict[str, Any]:
    message: dict[str, Any] = {"v": 1, "device_id": DEVICE, "cmd_id": cmd_id, "ts": iso(ts), "ok": ok}
    return message | ({"reason": reason} if reason else {})


def command(cmd_id: str, *, ts: datetime = WATCH_START) -> dict[str, Any]:
    return {"v": 1, "cmd_id": cmd_id, "ts": iso(ts), "command": "ping", "args": {}}


def evidence(
    data: bytes = b"sixteen bytes!!!", *, chunk: int = 8, evidence_id: str = "ev-0000001", **changes: Any
) -> list[dict[str, Any]]:
    """The parts of one evidence item (a photo of ``data``), ``chunk`` bytes each."""
    parts = max(1, math.ceil(len(data) / chunk))
    return [
        {
            "v": 1,
            "device_id": DEVICE,
            "event_id": "evt-0001",
            "evidence_id": evidence_id,
            "kind": "photo",
            "content_type": "image/jpeg",
            "ts": iso(WATCH_START),
            "taken_at": iso(WATCH_START),
            "part": part,
            "parts": parts,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "data_b64": base64.b64encode(data[part * chunk : (part + 1) * chunk]).decode(),
        }
        | changes
        for part in range(parts)
    ]


class Feed:
    """A checker and the device traffic fed to it; every finding is kept in ``findings``."""

    def __init__(self, **options: Any) -> None:
        settings = {"site": SITE, "device_id": DEVICE} | options
        self.checker = Checker(CheckOptions(**settings), started_at=WATCH_START)
        self.findings: list[Finding] = []

    def send(
        self,
        channel: Channel | str,
        payload: dict[str, Any] | bytes,
        *,
        qos: int = 1,
        retain: bool | str | None = AS_ASKED,
        arrived: datetime | None = None,
        topic_name: str | None = None,
    ) -> list[Finding]:
        """One message; ``retain`` defaults to what the page asks for the channel (None: flag unknown)."""
        name = topic_name or topic(channel)
        if retain == AS_ASKED:
            retain = channel in set(Channel) and Channel(channel) in RETAINED_CHANNELS
        assert retain is None or isinstance(retain, bool)
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        arrival = arrived or ARRIVAL
        found = self.checker.observe(Observation(name, body, qos, retain, arrival))
        self.findings.extend(found)
        return found

    def birth(self, session: int = 1, ts: datetime = WATCH_START) -> list[Finding]:
        return self.send(Channel.STATE, state("online", session, ts))

    def rules(self) -> list[str]:
        return [finding.rule for finding in self.findings]


def rule_ids(findings: list[Finding]) -> list[str]:
    return [finding.rule for finding in findings]
