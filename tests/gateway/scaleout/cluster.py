"""Several real gateway processes (``citywatch gateway``) in one MQTT share group on one PostgreSQL,
and simulated devices publishing telemetry and events at them from a thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine, select

from citywatch.local_server import free_port
from citywatch.protocol.messages import EventPhase, TelemetryMessage
from citywatch.protocol.topics import Channel
from gateway.devices import service as devices_service
from gateway.devices.models import DeviceCreate
from gateway.dispatch.models import OutboxMessage
from gateway.events.models import Event, EventRevision
from tests.gateway.helpers import topic, water_event
from tests.support.mqtt import Publisher
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until

SITE = "riverside"
SHARE_GROUP = "citywatch"
CONNECTED = "MQTT connected to"
MIGRATED = "database schema migrated from"


class GatewayProcess:
    """One ``citywatch gateway`` process; its log (stdout and stderr) goes to ``log_path``."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.starts = 0

    def start(self) -> GatewayProcess:
        """Start (do not wait: several start at once); ``wait_connected`` waits for the broker."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "citywatch.cli", "gateway"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=PROJECT_ROOT,
            )
        self.starts += 1
        return self

    def log(self, *, this_run: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset if this_run else 0)
            return log.read().decode(errors="replace")

    def wait_connected(self, timeout_s: float = 40.0) -> None:
        def connected() -> bool:
            assert self.alive, f"gateway {self.name} exited:\n{self.log(this_run=True)[-3000:]}"
            return CONNECTED in self.log(this_run=True)

        wait_until(connected, timeout_s=timeout_s, what=f"gateway {self.name} connected")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: nothing is flushed, nothing acknowledged after this instant."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def terminate(self) -> int:
        """SIGTERM: the clean stop (what was received is stored and acknowledged first)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.process = None
        return code


@dataclass
class Cluster:
    gateways: list[GatewayProcess]
    engine: Engine  # the test's own connection to the gateways' database

    def start(self) -> Cluster:
        for gateway in self.gateways:  # at the same moment: they race for the migration
            gateway.start()
        for gateway in self.gateways:
            gateway.wait_connected()
        return self

    def stop(self) -> None:
        for gateway in self.gateways:
            if gateway.alive:
                gateway.terminate()

    def kill_all(self) -> None:
        for gateway in self.gateways:
            if gateway.alive:
                gateway.kill()

    def provision(self, device_ids: Iterable[str], *, device_type: str = "culvert") -> None:
        with self.engine.begin() as connection:
            from sqlalchemy.orm import Session

            session = Session(bind=connection)
            for device_id in device_ids:
                devices_service.create(
                    session=session, device_in=DeviceCreate(id=device_id, site=SITE, device_type=device_type)
                )
            session.flush()

    def logs(self) -> str:
        return "\n".join(f"--- {g.name} ---\n{g.log()[-4000:]}" for g in self.gateways)


def gateway_env(
    *,
    index: int,
    data_dir: Path,
    mqtt_url: str,
    db_url: str,
    dispatch_url: str,
    dispatch_secret: str,
    influx_url: str,
    **overrides: Any,
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CITYWATCH_")} | {
        "CITYWATCH_MQTT_URL": mqtt_url,
        "CITYWATCH_MQTT_CLIENT_ID": f"gateway-{index}",  # the same on every restart: its queue waits for it
        "CITYWATCH_MQTT_SHARE_GROUP": SHARE_GROUP,
        "CITYWATCH_DATA_DIR": str(data_dir),
        "CITYWATCH_DB_URL": db_url,
        "CITYWATCH_HTTP_PORT": str(free_port()),
        "CITYWATCH_DISPATCH_URL": dispatch_url,
        "CITYWATCH_DISPATCH_SECRET": dispatch_secret,
        "CITYWATCH_DISPATCH_RETRY_MAX_S": "1",
        "CITYWATCH_DISPATCH_LEASE_S": "10",
        "CITYWATCH_TELEMETRY_STORE": "influx",
        "CITYWATCH_INFLUX_URL": influx_url,
        "CITYWATCH_INFLUX_TOKEN": "test-token",
        "CITYWATCH_INFLUX_BATCH_SIZE": "500",
        "CITYWATCH_ESCALATION_INTERVAL_S": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
    env |= {f"CITYWATCH_{key}": str(value) for key, value in overrides.items()}
    return env


class _LoadPublisher(Publisher):
    def _before_connect(self, client: mqtt.Client) -> None:
        client.max_inflight_messages_set(1000)  # a stream, not one message per round trip


@dataclass
class DeviceLoad:
    """Devices publishing at the share group from a thread: each tick, one telemetry point per device;
    every ``event_every`` ticks, the next message of the device's current water_level condition (new,
    update, end, then a new condition). Records what the broker acknowledged (QoS 1)."""

    mqtt_url: str
    device_ids: list[str]
    tick_s: float = 0.1
    event_every: int = 10
    # Telemetry times: recent (victoria-metrics drops samples older than its retention), i ms apart.
    base: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    )
    telemetry_sent: set[tuple[str, int]] = field(default_factory=set)  # (device, i)
    events_sent: set[tuple[str, str, int]] = field(default_factory=set)  # (device, event_id, seq)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _tick: int = 0

    def start(self) -> DeviceLoad:
        self._publisher = _LoadPublisher(self.mqtt_url)
        self._thread = threading.Thread(target=self._run, name="device-load", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        pending: list[tuple[mqtt.MQTTMessageInfo, tuple[str, int] | tuple[str, str, int]]] = []
        next_at = time.monotonic()
        while not self._stop.is_set():
            for device_id in self.device_ids:
                i = self._tick
                point = TelemetryMessage(
                    device_id=device_id,
                    ts=self.base + timedelta(milliseconds=i),
                    measurement="water_level",
                    fields={"level_cm": 1.0, "sample": i},
                )
                info = self._publisher.client.publish(
                    str(topic(SITE, device_id, Channel.TELEMETRY)), point.to_json(), qos=1
                )
                pending.append((info, (device_id, i)))
                if i % self.event_every == 0:
                    step = i // self.event_every
                    condition, seq = divmod(step, 3)
                    event_id = f"evt-{device_id}-{condition:04d}"
                    phase = (EventPhase.NEW, EventPhase.UPDATE, EventPhase.END)[seq]
                    payload = water_event(device_id, event_id, seq, phase=phase)
                    info = self._publisher.client.publish(
                        str(topic(SITE, device_id, Channel.EVENT)), payload, qos=1
                    )
                    pending.append((info, (device_id, event_id, seq)))
            self._tick += 1
            still = []
            for info, key in pending:
                if info.is_published():
                    if len(key) == 2:
                        self.telemetry_sent.add(key)  # type: ignore[arg-type]
                    else:
                        self.events_sent.add(key)  # type: ignore[arg-type]
                else:
                    still.append((info, key))
            pending = still
            next_at += self.tick_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        for info, key in pending:
            info.wait_for_publish(timeout=30)
            assert info.is_published(), "the broker did not acknowledge a device message"
            if len(key) == 2:
                self.telemetry_sent.add(key)  # type: ignore[arg-type]
            else:
                self.events_sent.add(key)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        self._publisher.close()


def stored_revisions(engine: Engine) -> list[tuple[str, str, int]]:
    with engine.connect() as connection:
        return [
            (row.device_id, row.device_event_id, row.seq)
            for row in connection.execute(
                select(EventRevision.device_id, EventRevision.device_event_id, EventRevision.seq)
            )
        ]


def missing_revisions(
    sent: set[tuple[str, str, int]], stored: list[tuple[str, str, int]]
) -> set[tuple[str, str, int]]:
    """Sent device event messages neither stored nor superseded. A later message of the same condition
    that was stored first supersedes one (handled as stale, by design: it may reach another gateway
    later, e.g. from a killed gateway's queue)."""
    highest: dict[tuple[str, str], int] = {}
    for device_id, event_id, seq in stored:
        highest[(device_id, event_id)] = max(seq, highest.get((device_id, event_id), -1))
    kept = set(stored)
    return {
        (device_id, event_id, seq)
        for device_id, event_id, seq in sent
        if (device_id, event_id, seq) not in kept
        and (seq == 0 or highest.get((device_id, event_id), -1) < seq)
    }


def open_events_per_device_type(engine: Engine) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    with engine.connect() as connection:
        for device_id, event_type in connection.execute(
            select(Event.device_id, Event.type).where(Event.state.not_in(["closed", "cancelled"]))
        ):
            counts[(device_id, event_type)] = counts.get((device_id, event_type), 0) + 1
    return counts


def outbox(engine: Engine) -> list[tuple[str, str, int, str]]:
    """(webhook_id, status, event id, message type) of every outbox row."""
    with engine.connect() as connection:
        return [
            (row.webhook_id, row.status, row.event_id, row.message_type)
            for row in connection.execute(
                select(
                    OutboxMessage.webhook_id,
                    OutboxMessage.status,
                    OutboxMessage.event_id,
                    OutboxMessage.message_type,
                )
            )
        ]
