"""Console test helpers: positioned culverts, device messages stamped now, where screenshots go."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from citywatch.protocol.messages import EventMessage, EventPhase, EventType, Severity, TelemetryMessage
from citywatch.protocol.topics import Channel, Topic
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from tests.gateway.helpers import Publisher
from tests.support.paths import PROJECT_ROOT

SITE = "riverside"
# (id, latitude, longitude, grid, town); the last has no position: listed beside the plan, not on it.
CULVERTS = (
    ("culvert-east", 31.0612, 121.3187, "g-12", "xinqiao"),
    ("culvert-west", 31.0598, 121.3121, "g-12", "xinqiao"),
    ("culvert-hill", None, None, "g-07", "xinqiao"),
)
CHROMIUM = Path(os.environ.get("CITYWATCH_CHROMIUM", "/usr/bin/chromium"))
# Screenshots for reviewers; git-ignored. CITYWATCH_TEST_OUTPUT moves them.
OUTPUT_DIR = Path(os.environ.get("CITYWATCH_TEST_OUTPUT", PROJECT_ROOT / "test-output")) / "console"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def provision(gateway: GatewayApp) -> None:
    with gateway.session_factory() as session, session.begin():
        for device_id, lat, lon, grid, town in CULVERTS:
            devices_service.provision(
                session=session,
                device_id=device_id,
                site=SITE,
                device_type="culvert",
                grid=grid,
                town=town,
                latitude=lat,
                longitude=lon,
                description=f"{device_id} by the river road",
            )


def readings(publisher: Publisher, device_id: str, levels: list[float], *, end: datetime) -> None:
    """Water-level telemetry, one reading a minute, the last at ``end``."""
    start = end - timedelta(minutes=len(levels) - 1)
    for i, level in enumerate(levels):
        message = TelemetryMessage(
            device_id=device_id,
            ts=start + timedelta(minutes=i),
            measurement="water_level",
            fields={"level_cm": level, "valid": True},
        )
        publisher.publish(Topic(site=SITE, device_id=device_id, channel=Channel.TELEMETRY), message.to_json())


def health(publisher: Publisher, device_id: str, fields: dict[str, float | int], *, at: datetime) -> None:
    message = TelemetryMessage(device_id=device_id, ts=at, measurement="health", fields=fields)
    publisher.publish(Topic(site=SITE, device_id=device_id, channel=Channel.TELEMETRY), message.to_json())


def water_event(
    publisher: Publisher,
    device_id: str,
    *,
    level_cm: float,
    at: datetime,
    severity: Severity = Severity.WARNING,
) -> str:
    """A new ``water_level`` condition; returns its device event id."""
    event_id = uuid.uuid4().hex[:16]
    details: dict[str, Any] = {"level_cm": level_cm, "peak_cm": level_cm, "threshold_cm": 10.0}
    message = EventMessage(
        device_id=device_id,
        event_id=event_id,
        seq=0,
        phase=EventPhase.NEW,
        type=EventType.WATER_LEVEL,
        severity=severity,
        confidence=0.95,
        ts=at,
        started_at=at - timedelta(minutes=3),
        details=details,
    )
    publisher.publish(Topic(site=SITE, device_id=device_id, channel=Channel.EVENT), message.to_json())
    return event_id


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
