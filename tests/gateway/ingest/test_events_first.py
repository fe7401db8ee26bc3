"""A batch's events are stored ahead of the rest, a few per transaction, without reordering a device's
own transactional messages; and a share group needs a database all its gateways share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from citywatch.mqtt import MqttOptions
from citywatch.protocol.codec import decode
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
from gateway.devices.models import Device
from gateway.ingest import consumer
from gateway.ingest.consumer import IngestOptions, MqttIngest, events_first
from gateway.ingest.processor import Delivery
from gateway.ingest.stats import IngestStats
from gateway.runner import GatewayApp
from gateway.settings import Settings

NOW = datetime.now(UTC)
_mids = iter(range(1, 10_000))


def _delivery(channel: Channel, message: EventMessage | StateMessage | TelemetryMessage) -> Delivery:
    topic = Topic("riverside", message.device_id, channel)
    return Delivery(decoded=decode(str(topic), message.to_json()), mid=next(_mids), qos=1)


def telemetry(device: str) -> Delivery:
    return _delivery(
        Channel.TELEMETRY,
        TelemetryMessage(device_id=device, ts=NOW, measurement="water_level", fields={"level_cm": 1.0}),
    )


def event(device: str, seq: int = 0) -> Delivery:
    return _delivery(
        Channel.EVENT,
        EventMessage(
            device_id=device,
            event_id=f"event-of-{device}",
            seq=seq,
            phase=EventPhase.NEW if seq == 0 else EventPhase.UPDATE,
            type=EventType.WATER_LEVEL,
            severity=Severity.NOTICE,
            confidence=0.9,
            ts=NOW,
            started_at=NOW,
            details={"level_cm": 10.5, "peak_cm": 10.5, "threshold_cm": 10.0},
        ),
    )


def state(device: str) -> Delivery:
    return _delivery(
        Channel.STATE,
        StateMessage(
            device_id=device,
            ts=NOW,
            status="online",
            session=1,
            device_type="culvert",
            firmware_version="1",
            config_version="1",
        ),
    )


def test_events_go_first_in_small_parts_and_the_rest_keeps_its_order() -> None:
    batch = [
        telemetry("a"),
        event("a"),
        telemetry("b"),
        event("b"),
        event("a", 1),
        telemetry("c"),
        event("c"),
    ]
    parts = events_first(batch, size=2)
    assert [[d.mid for d in part] for part in parts] == [
        [batch[1].mid, batch[3].mid],
        [batch[4].mid, batch[6].mid],
        [batch[0].mid, batch[2].mid, batch[5].mid],
    ]


def test_an_event_stays_behind_its_own_devices_state_message() -> None:
    batch = [state("a"), event("a"), event("b"), telemetry("a")]
    parts = events_first(batch, size=8)
    assert [[d.mid for d in part] for part in parts] == [
        [batch[2].mid],
        [batch[0].mid, batch[1].mid, batch[3].mid],
    ]


def test_a_batch_of_telemetry_is_one_part() -> None:
    batch = [telemetry("a"), telemetry("b")]
    assert events_first(batch, size=8) == [batch]


def test_a_share_group_refuses_an_sqlite_database(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="MQTT_SHARE_GROUP needs a database"):
        Settings(MQTT_SHARE_GROUP="gateways", DATA_DIR=tmp_path)
    assert Settings(MQTT_SHARE_GROUP="gateways", DB_URL="postgresql+psycopg://u@h/db").MQTT_SHARE_GROUP


def _ingest_with(
    deliveries: list[Delivery], monkeypatch: pytest.MonkeyPatch
) -> tuple[MqttIngest, list[float]]:
    slept: list[float] = []
    monkeypatch.setattr(consumer.time, "sleep", slept.append)
    ingest = MqttIngest(
        mqtt_options=MqttOptions.from_url("mqtt://127.0.0.1:1"),
        options=IngestOptions(client_id="t", max_payload_bytes=65536, linger_s=0.005),
        processor=SimpleNamespace(refusals=None),  # type: ignore[arg-type]  # _take_batch does not store
        stats=IngestStats(),
    )
    for delivery in deliveries:
        ingest._queue.put(delivery)
    return ingest, slept


def test_a_batch_with_an_event_is_taken_without_lingering(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = [telemetry("a"), event("b"), telemetry("c")]
    ingest, slept = _ingest_with(batch, monkeypatch)
    assert [d.mid for d in ingest._take_batch()] == [d.mid for d in batch]
    assert slept == []


def test_telemetry_alone_lingers_for_more(monkeypatch: pytest.MonkeyPatch) -> None:
    ingest, slept = _ingest_with([telemetry("a"), telemetry("b")], monkeypatch)
    assert len(ingest._take_batch()) == 2
    assert slept == [0.005]


def test_an_events_transaction_records_only_its_own_devices_last_seen(tmp_path: Path) -> None:
    """The telemetry devices' rows wait for the periodic presence flush: in a share group the other
    gateways update them too, and an event's transaction holding their locks would wait on theirs."""
    app = GatewayApp(Settings(DATA_DIR=tmp_path, MQTT_URL="mqtt://127.0.0.1:1"))
    migrate(app.engine)
    with app.session_factory() as session, session.begin():
        for device in ("a", "b"):
            devices_service.provision(
                session=session, device_id=device, site="riverside", device_type="culvert"
            )
    processor = app.ingest._processor

    def last_seen() -> dict[str, bool]:
        with app.session_factory() as session:
            return {d.id: d.last_seen is not None for d in session.scalars(select(Device))}

    processor.process([telemetry("a"), event("b")], flush_presence=False)
    assert last_seen() == {"a": False, "b": True}
    assert processor.presence_pending
    processor.process([], flush_presence=True)
    assert last_seen() == {"a": True, "b": True}
    assert not processor.presence_pending
    app.engine.dispose()
