"""A broker killed with SIGKILL mid-stream loses nothing: devices keep each message until the gateway's receipt.

Mosquitto saves its queues only every ``autosave_interval``: killed, it forgets what it acknowledged since
the last save, and killed before its first save it forgets the gateway's session too (devices then publish
to nobody until the gateway is back). The project's own uplinks (outbox on disk, receipts), a real
Mosquitto with the project config, the real gateway; every sample and event revision is counted in storage.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.mqtt import MqttOptions
from citywatch.protocol.messages import (
    DeviceType,
    EventMessage,
    EventPhase,
    EventType,
    Severity,
    TelemetryMessage,
)
from citywatch.protocol.topics import Channel
from edge.uplink import Uplink
from edge.uplink.pump import ReceiptOptions
from gateway.devices import service as devices_service
from gateway.events.models import Event, EventRevision
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # streams for seconds around a broker crash

SITE = "riverside"
DEVICES = ("culvert-k1", "culvert-k2", "culvert-k3")
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
LOST = "has no session"


@dataclass
class Stream:
    """Each device sends telemetry every tick and an event revision every 10th, in a thread."""

    uplinks: list[Uplink]
    interval_s: float = 0.01
    telemetry: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Stream:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def more(self, what: str, samples: int = 300) -> None:
        """Wait until ``samples`` more have been sent."""
        sent = sum(self.telemetry.values())
        wait_until(lambda: sum(self.telemetry.values()) >= sent + samples, what=what)

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(self.interval_s):
            for uplink in self.uplinks:
                device = uplink.device_id
                ts = T0 + timedelta(milliseconds=10 * tick)
                sample = TelemetryMessage(
                    device_id=device, ts=ts, measurement="water_level", fields={"level_cm": tick % 50 / 10}
                )
                uplink.send(Channel.TELEMETRY, sample)
                self.telemetry[device] += 1
                if tick % 10 == 0:
                    uplink.send(Channel.EVENT, self._revision(device, self.events[device], ts))
                    self.events[device] += 1
            tick += 1

    @staticmethod
    def _revision(device: str, seq: int, ts: datetime) -> EventMessage:
        level = 10.0 + seq / 10
        return EventMessage(
            device_id=device,
            event_id=f"flood-{device}",
            seq=seq,
            phase=EventPhase.NEW if seq == 0 else EventPhase.UPDATE,
            type=EventType.WATER_LEVEL,
            severity=Severity.NOTICE,
            confidence=0.9,
            ts=ts,
            started_at=T0,
            details={"level_cm": level, "peak_cm": level, "threshold_cm": 10.0},
        )


@pytest.fixture
def settings(tmp_path: Path, mosquitto: MosquittoBroker) -> Settings:
    settings = Settings(
        MQTT_URL=mosquitto.url,
        MQTT_CLIENT_ID=f"gw-crash-{uuid.uuid4().hex[:8]}",
        DATA_DIR=tmp_path / "gateway",
        HTTP_PORT=0,
        RECEIPT_INTERVAL_S=0.2,
    )
    settings.DATA_DIR.mkdir(parents=True)
    return settings


@pytest.fixture
def flowing(
    settings: Settings, uplinks: list[Uplink], caplog: pytest.LogCaptureFixture
) -> tuple[GatewayApp, Stream]:
    """A gateway storing what the devices stream (the tests stop both); its warnings captured."""
    caplog.set_level(logging.WARNING, logger="gateway.ingest")
    gateway = start_gateway(settings)
    stream = Stream(uplinks).start()
    wait_until(lambda: gateway.store.count() >= 300, what="the stream flowing")
    return gateway, stream


def start_gateway(settings: Settings) -> GatewayApp:
    gateway = GatewayApp(settings).start()
    with gateway.session_factory() as session, session.begin():
        for device in DEVICES:
            devices_service.provision(session=session, device_id=device, site=SITE, device_type="culvert")
    assert gateway.ingest.wait_connected(10)
    return gateway


@pytest.fixture
def uplinks(mosquitto: MosquittoBroker, tmp_path: Path) -> Iterator[list[Uplink]]:
    running = [
        Uplink(
            MqttOptions.from_url(mosquitto.url),
            SITE,
            device,
            DeviceType.CULVERT,
            "cfg1",
            tmp_path / f"outbox-{device}.sqlite3",
            fsync=False,
            reconnect_min_s=0.1,
            reconnect_max_s=0.5,
            receipts=ReceiptOptions(resend_after_s=1.0),
        ).start()
        for device in DEVICES
    ]
    for uplink in running:
        assert uplink.wait_connected(10)
    yield running
    for uplink in running:
        uplink.stop(flush_timeout_s=0)


def latest_revisions(gateway: GatewayApp) -> dict[str, int]:
    """Each device's event: the highest revision (seq) it reached."""
    with gateway.read_session_factory() as session:
        return {device: seq for device, seq in session.execute(select(Event.device_id, Event.last_seq))}


def revision_rows(gateway: GatewayApp) -> Counter[str]:
    with gateway.read_session_factory() as session:
        rows = session.execute(
            select(EventRevision.device_id, func.count()).group_by(EventRevision.device_id)
        ).all()
    return Counter({device: count for device, count in rows})


def assert_all_stored_once(gateway: GatewayApp, stream: Stream, uplinks: list[Uplink]) -> None:
    last_sent = {device: stream.events[device] - 1 for device in DEVICES}

    def stored() -> bool:
        return (
            all(gateway.store.count(device_id=device) >= stream.telemetry[device] for device in DEVICES)
            and latest_revisions(gateway) == last_sent
        )

    wait_until(stored, timeout_s=60, what="every sample and the last event revision stored")
    wait_until(lambda: all(u.queue_depth == 0 for u in uplinks), timeout_s=30, what="every outbox confirmed")
    for device in DEVICES:  # not fewer (lost), not more (doubled)
        assert gateway.store.count(device_id=device) == stream.telemetry[device], device
    # One event per device, at its last revision; a revision resent after a newer one was stored is
    # stale (not recorded again), so there are at most as many revision rows as were sent, none twice.
    assert latest_revisions(gateway) == last_sent
    assert all(revision_rows(gateway)[device] <= stream.events[device] for device in DEVICES)


def test_sigkill_before_the_first_save_loses_nothing(
    mosquitto: MosquittoBroker,
    uplinks: list[Uplink],
    flowing: tuple[GatewayApp, Stream],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker forgets the gateway's session; the devices reconnect first and publish to nobody."""
    gateway, stream = flowing
    try:
        mosquitto.stop(kill=True)  # long before autosave_interval: nothing was ever saved
        wait_until(lambda: not any(u.connected for u in uplinks), what="the devices notice")
        # Down long enough for the gateway's first reconnect (after 1 s) to fail: its next is 2 s later,
        # so the devices are back first and publish to nobody, as in the field.
        time.sleep(1.5)
        mosquitto.start()
        wait_until(lambda: all(u.connected for u in uplinks), timeout_s=15, what="the devices back")
        assert not gateway.ingest.connected, "the devices should be back before the gateway"
        wait_until(lambda: gateway.ingest.connected, timeout_s=15, what="the gateway back")
        stream.more("the stream going on")
    finally:
        stream.stop()
    try:
        assert_all_stored_once(gateway, stream, uplinks)
        assert gateway.ingest_status()["session"]["lost"] == 1
        assert LOST in caplog.text
        # what reached nobody was sent again once the gateway confirmed later messages
        assert sum(u.pump.resends for u in uplinks) >= 1
    finally:
        gateway.stop()


def test_sigkill_after_a_save_loses_nothing(
    mosquitto: MosquittoBroker,
    settings: Settings,
    uplinks: list[Uplink],
    flowing: tuple[GatewayApp, Stream],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker holds a queue for the (stopped) gateway, saves it, takes more, and dies."""
    gateway, stream = flowing
    try:
        gateway.stop()  # its session queues everything from now on
        stream.more("a queue for the gateway")
        mosquitto.save()
        stream.more("more, acknowledged, unsaved")
        mosquitto.stop(kill=True)
        mosquitto.start()
        gateway = start_gateway(settings)
        stream.more("the stream going on")
    finally:
        stream.stop()
    try:
        assert_all_stored_once(gateway, stream, uplinks)
        assert gateway.ingest_status()["session"]["present"] is True, "the save kept the session"
        assert LOST not in caplog.text
    finally:
        gateway.stop()
