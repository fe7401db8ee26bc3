"""Test helpers: the shared QoS 1 publisher, message builders, an API-only gateway."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from citywatch.protocol.messages import (
    EventMessage,
    EventPhase,
    EventType,
    Severity,
    StateMessage,
    TelemetryMessage,
)
from citywatch.protocol.topics import Channel, Topic
from gateway.db import migrate
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.support.mqtt import Publisher as Publisher  # re-exported: the gateway tests import it from here

T = TypeVar("T")
BASE_TS = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def topic(site: str, device_id: str, channel: Channel) -> Topic:
    return Topic(site=site, device_id=device_id, channel=channel)


def telemetry(device_id: str, i: int, *, level_cm: float = 1.0) -> bytes:
    return TelemetryMessage(
        device_id=device_id,
        ts=BASE_TS + timedelta(seconds=i),
        measurement="water_level",
        fields={"level_cm": level_cm, "sample": i},
    ).to_json()


def state(device_id: str, *, status: str, session: int, firmware: str = "1.0.0") -> bytes:
    return StateMessage(
        device_id=device_id,
        ts=BASE_TS + timedelta(seconds=session),
        status=status,  # type: ignore[arg-type]
        session=session,
        device_type="culvert",  # type: ignore[arg-type]
        firmware_version=firmware,
        config_version="cfg-1",
    ).to_json()


def water_event(
    device_id: str,
    event_id: str,
    seq: int,
    *,
    phase: EventPhase | None = None,
    severity: Severity = Severity.NOTICE,
    level_cm: float = 12.0,
) -> bytes:
    phase = phase or (EventPhase.NEW if seq == 0 else EventPhase.UPDATE)
    details: dict[str, Any] = {"level_cm": level_cm, "peak_cm": level_cm, "threshold_cm": 10.0}
    return EventMessage(
        device_id=device_id,
        event_id=event_id,
        seq=seq,
        phase=phase,
        type=EventType.WATER_LEVEL,
        severity=severity,
        confidence=0.9,
        ts=BASE_TS + timedelta(minutes=seq),
        started_at=BASE_TS,
        details=details,
    ).to_json()


@contextmanager
def api_only_gateway(data_dir: Path, *, devices: tuple[str, ...] = ()) -> Iterator[GatewayApp]:
    """A gateway for API tests: its database migrated, these culverts provisioned at site riverside,
    MQTT never started (cmd and config answer 503, as declared; everything else as in service)."""
    gateway = GatewayApp(Settings(DATA_DIR=data_dir, HTTP_PORT=0, MQTT_URL="mqtt://127.0.0.1:9"))
    try:
        migrate(gateway.engine)
        with gateway.session_factory() as session, session.begin():
            for device_id in devices:
                devices_service.provision(
                    session=session, device_id=device_id, site="riverside", device_type="culvert"
                )
        yield gateway
    finally:
        gateway.store.close()
        gateway.engine.dispose()
