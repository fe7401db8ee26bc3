"""The gateway as a real process: SIGKILL mid-stream loses nothing and duplicates nothing; SIGTERM is clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from citywatch.broker.mosquitto import MosquittoBroker, free_port
from citywatch.protocol.messages import EventPhase
from citywatch.protocol.topics import Channel
from gateway.auth.service import create_token
from gateway.db import make_engine, make_sessionmaker, migrate
from gateway.devices import service as devices_service
from gateway.devices.models import DeviceCreate
from gateway.telemetry.sqlite import SqliteTelemetryStore
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.helpers import Publisher, telemetry, topic, water_event
from tests.gateway.tokens import bearer
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # kills a gateway process mid-stream: ~4 s

SITE = "riverside"
DEVICES = ("culvert-1", "culvert-2", "culvert-3")
EVENT_SEQS = 6  # new, four updates, end


class GatewayProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{env['CITYWATCH_HTTP_PORT']}"
        self.process: subprocess.Popen[bytes] | None = None
        self.headers: dict[str, str] = {}  # an admin token of this gateway's database

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "citywatch.cli", "gateway"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._connected, timeout_s=30, what=f"gateway process up (log: {self.log_path})")

    def _connected(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log_path.read_text()[-3000:]
        try:
            return bool(
                httpx.get(f"{self.url}/health", headers=self.headers, timeout=2).json()["mqtt"]["connected"]
            )
        except httpx.HTTPError:
            return False

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def kill_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def gateway_process(
    tmp_path: Path, mosquitto: MosquittoBroker, dispatch_centre: DispatchCentreSimulator
) -> Iterator[GatewayProcess]:
    data_dir = tmp_path / "gateway"
    engine = make_engine(f"sqlite:///{data_dir / 'citywatch.db'}")
    migrate(engine)
    with make_sessionmaker(engine)() as session, session.begin():
        for device_id in DEVICES:
            devices_service.create(
                session=session, device_in=DeviceCreate(id=device_id, site=SITE, device_type="culvert")
            )
        admin_token = create_token(session, name="test-admin", role="admin").token
    engine.dispose()
    env = os.environ | {
        "CITYWATCH_MQTT_URL": mosquitto.url,
        "CITYWATCH_MQTT_CLIENT_ID": "gw-restart-test",
        "CITYWATCH_DATA_DIR": str(data_dir),
        "CITYWATCH_HTTP_PORT": str(free_port()),
        "CITYWATCH_DISPATCH_URL": dispatch_centre.url,
        "CITYWATCH_DISPATCH_SECRET": dispatch_centre.secret,
        "CITYWATCH_DISPATCH_RETRY_MAX_S": "0.5",
    }
    process = GatewayProcess(env, tmp_path / "gateway.log")
    process.headers = bearer(admin_token)
    yield process
    process.kill_if_running()


def _stream(part: int, count: int) -> Iterator[tuple[str, bytes]]:
    """Telemetry from three devices with each device's event revisions interleaved."""
    start = part * count
    for i in range(start, start + count):
        device_id = DEVICES[i % len(DEVICES)]
        yield str(topic(SITE, device_id, Channel.TELEMETRY)), telemetry(device_id, i)
        if i % 50 == 49:  # every 50 messages, the next revision of one event per device
            step = i // 50
            seq = step // len(DEVICES) % EVENT_SEQS
            k = step // (len(DEVICES) * EVENT_SEQS)
            device_id = DEVICES[step % len(DEVICES)]
            phase = EventPhase.END if seq == EVENT_SEQS - 1 else None
            yield (
                str(topic(SITE, device_id, Channel.EVENT)),
                water_event(device_id, f"evt-{device_id}-{k:03d}", seq, phase=phase),
            )


def _publish(publisher: Publisher, messages: Iterator[tuple[str, bytes]]) -> int:
    infos = [publisher.client.publish(t, payload, qos=1) for t, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=30)
    return len(infos)


def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    gateway_process: GatewayProcess,
    publisher: Publisher,
    dispatch_centre: DispatchCentreSimulator,
    tmp_path: Path,
) -> None:
    per_part = 1800  # 3 parts -> 5400 telemetry points, 108 event messages = 3 devices x 6 events x 6 seqs
    store = SqliteTelemetryStore(tmp_path / "gateway" / "telemetry.db")
    try:
        gateway_process.start()
        _publish(publisher, _stream(0, per_part))
        wait_until(lambda: store.count() >= per_part // 3, what="the gateway storing part of the stream")
        assert gateway_process.signal(signal.SIGKILL) == -signal.SIGKILL  # mid-stream, nothing flushed

        _publish(publisher, _stream(1, per_part))  # queued by the broker for the gateway's session
        gateway_process.start()
        _publish(publisher, _stream(2, per_part))

        wait_until(lambda: store.count() == 3 * per_part, timeout_s=60, what="every telemetry point stored")
        # Each device raises its condition 6 times (new .. end); while its work item stays open (the
        # department has not closed it) every repeat merges into it: one event per device. The
        # department hears of every update, and of every return of the condition (a new event id).
        rounds = (3 * per_part // 50) // (len(DEVICES) * EVENT_SEQS)
        expected_events = len(DEVICES)
        updated = rounds * (EVENT_SEQS - 2) + rounds - 1
        per_event = {"event.created": 1, "event.updated": updated, "event.cleared": rounds}
        expected_webhooks = expected_events * sum(per_event.values())
        assert dispatch_centre.wait_for(expected_webhooks, timeout_s=60), dispatch_centre.summary()

        events = httpx.get(
            f"{gateway_process.url}/events", headers=gateway_process.headers, params={"limit": 500}
        ).json()
        assert events["total"] == expected_events  # no duplicate events
        assert all(
            e["state"] == "dispatched" and e["cleared_at"] and e["revisions"] == rounds * EVENT_SEQS
            for e in events["items"]
        )
        received = dispatch_centre.received()
        assert len(received) == expected_webhooks
        kinds_per_event: dict[int, Counter[str]] = {}
        for webhook in received:
            kinds_per_event.setdefault(webhook.event["id"], Counter())[webhook.message_type] += 1
        assert len(kinds_per_event) == expected_events
        for kinds in kinds_per_event.values():
            assert kinds == per_event
        wait_until(
            lambda: (
                httpx.get(f"{gateway_process.url}/health", headers=gateway_process.headers).json()["counts"][
                    "outbox"
                ]
                == {"delivered": expected_webhooks}
            ),
            what="every notification marked delivered",
        )
        assert (
            httpx.get(f"{gateway_process.url}/health", headers=gateway_process.headers).json()["refused"]
            == {}
        )

        assert gateway_process.signal(signal.SIGTERM) == 0  # clean stop
        assert "gateway stopped" in gateway_process.log_path.read_text()
    finally:
        store.close()
