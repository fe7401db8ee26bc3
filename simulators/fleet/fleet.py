"""Thousands of simulated devices, each a real MQTT session, from one asyncio loop.

Every device has its own client id (``citywatch-{site}-{device_id}``, as the agents), a retained will
on ``state``, a retained birth on every connection with a session number that counts connections,
and an outbox: what falls due while it is disconnected waits and goes first after the reconnect,
and what the broker had not acknowledged is sent again (DUP), as the real uplink does. Payloads are
written from templates (checked against the contract once at start, ``check_templates``), packets
by hand (``packets``): a device costs a socket and a few hundred bytes, not a thread.

Culverts send ``water_level`` every 60 s dry and 10 s wet (a storm wets ``wet_fraction`` of them:
a ``water_level`` event opens above 10 cm and ends as the water goes), ``health`` every 300 s;
elevator cameras send ``health`` every 60 s and ``ebike_in_elevator`` events (new, then end) at
``events_per_camera_day`` each. ``speed`` shortens the intervals (60: one simulated minute a
second); timestamps stay wall-clock time, so a gateway's clock-skew check holds at any speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import math
import random
import resource
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Coroutine, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from citywatch import mqtt_packets as packets
from citywatch.mqtt import MqttOptions

FIRMWARE_VERSION = "fleet-sim-1"
CONFIG_VERSION = "fleet0001"
WATER_EVENT_CM = 10.0  # the culvert agent's first threshold
DAY_S = 86_400.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """What the fleet is and how it behaves; every random choice follows from ``seed``."""

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    devices: int = 10_000
    cameras: int | None = None  # None: 23% of the devices (a district's 2,300 lifts in 10,000)
    site: str = "fleet"
    prefix: str = "f"  # ids: culvert-f00001..., lift-f00001...
    seed: int = 1
    speed: float = 1.0
    culvert_dry_interval_s: float = 60.0
    culvert_wet_interval_s: float = 10.0
    culvert_health_interval_s: float = 300.0
    camera_health_interval_s: float = 60.0
    events_per_camera_day: float = 2.0  # ~4,600 a day over 2,300 lifts
    wet_fraction: float = 0.1
    storm_start_s: float = 600.0  # simulated seconds after the start
    storm_s: float = 3600.0
    keepalive_s: int = 60
    connect_concurrency: int = 100  # handshakes in flight at once: about Mosquitto's listen backlog (100)
    connect_timeout_s: float = 30.0
    clean_session: bool = False  # devices keep their broker session (docs/protocol.md)
    subscribe: bool = True  # cmd, config and refusal, as the agents do

    @property
    def camera_count(self) -> int:
        return round(self.devices * 0.23) if self.cameras is None else min(self.cameras, self.devices)


@dataclass(frozen=True, slots=True)
class FleetDevice:
    device_id: str
    site: str
    device_type: str  # culvert | elevator


def fleet_devices(options: FleetOptions) -> list[FleetDevice]:
    """The fleet's devices, cameras first: what to provision at the gateway."""
    cameras = options.camera_count
    out = [FleetDevice(f"lift-{options.prefix}{i:05d}", options.site, "elevator") for i in range(cameras)]
    out += [
        FleetDevice(f"culvert-{options.prefix}{i:05d}", options.site, "culvert")
        for i in range(options.devices - cameras)
    ]
    return out


def raise_fd_limit(needed: int) -> int:
    """Raise this process's open-file limit to ``needed`` (children such as a broker inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise OSError(
            f"{needed} open files needed, the hard limit is {hard}: raise it (ulimit -Hn, or LimitNOFILE= "
            "in a systemd unit) or simulate fewer devices"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


# -- payloads ---------------------------------------------------------------------------------------


def iso_ms(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def state_payload(device: _Device, status: str, ts: str) -> bytes:
    return (
        f'{{"v":1,"device_id":"{device.device_id}","ts":"{ts}","status":"{status}",'
        f'"session":{device.session},"device_type":"{device.device_type}",'
        f'"firmware_version":"{FIRMWARE_VERSION}","config_version":"{CONFIG_VERSION}"}}'
    ).encode()


def telemetry_payload(device_id: str, ts: str, measurement: str, fields: str, tags: str) -> bytes:
    return (
        f'{{"v":1,"device_id":"{device_id}","ts":"{ts}","measurement":"{measurement}",'
        f'"fields":{{{fields}}},"tags":{{{tags}}}}}'
    ).encode()


def event_payload(
    device_id: str,
    event_id: str,
    seq: int,
    event_type: str,
    severity: str,
    ts: str,
    started: str,
    details: str,
) -> bytes:
    phase = "new" if seq == 0 else "end"
    return (
        f'{{"v":1,"device_id":"{device_id}","event_id":"{event_id}","seq":{seq},"phase":"{phase}",'
        f'"type":"{event_type}","severity":"{severity}","confidence":0.9,"ts":"{ts}",'
        f'"started_at":"{started}","details":{{{details}}}}}'
    ).encode()


def check_templates(site: str) -> None:
    """Decode one message of every kind the fleet sends with the contract's own decoder: a template
    that drifted from docs/protocol.md fails here, at start, not as refusals at the gateway."""
    from citywatch.protocol.codec import decode

    device = _Device(0, "lift-check", "elevator", site)
    device.session = 1
    ts = iso_ms(int(time.time() * 1000))
    samples = [
        ("state", state_payload(device, "online", ts)),
        ("telemetry", telemetry_payload(device.device_id, ts, "health", _camera_health_fields(1.0), _CAMERA_TAGS)),
        (
            "telemetry",
            telemetry_payload(device.device_id, ts, "water_level", _water_fields(12.5), '"status":"ok"'),
        ),
        ("event", event_payload(device.device_id, "lift-check-e1", 0, "ebike_in_elevator", "warning", ts, ts, _ebike_details(3, True))),
        ("event", event_payload(device.device_id, "lift-check-e1", 1, "ebike_in_elevator", "warning", ts, ts, _ebike_details(3, False))),
        ("event", event_payload(device.device_id, "culv-check-e1", 0, "water_level", "warning", ts, ts, _water_details(12.0, 12.0))),
    ]  # fmt: skip
    for channel, payload in samples:
        decode(f"citywatch/v1/{site}/{device.device_id}/{channel}", payload)


_CAMERA_TAGS = '"agent":"elevator"'


def _camera_health_fields(uptime_s: float) -> str:
    # the camera agents' own health fields (edge/vision/health.py), at a steady 10 fps
    return (
        f'"uptime_s":{uptime_s:.1f},"fps_in":10.0,"fps_processed":10.0,"inferences_per_s":10.0,'
        '"inference_ms":12.0,"inference_ms_max":15.0,"dropped_frames":0,"dropped_frames_total":0,'
        '"reconnects":0,"rss_mb":180.0,"uplink_queue_depth":0,"refusals_received":0'
    )


def _culvert_health_fields(uptime_s: float, samples: int) -> str:
    return f'"uptime_s":{uptime_s:.1f},"outbox_depth":0,"samples":{samples},"samples_rejected":0'


def _water_fields(level_cm: float) -> str:
    return f'"valid":true,"level_cm":{level_cm:.1f},"distance_mm":{2000.0 - level_cm * 10:.1f}'


def _water_details(level_cm: float, peak_cm: float) -> str:
    return f'"level_cm":{level_cm:.1f},"peak_cm":{peak_cm:.1f},"threshold_cm":{WATER_EVENT_CM:.1f}'


def _ebike_details(floor: int, door_held: bool) -> str:
    return f'"track_id":1,"frames_seen":8,"door_held":{"true" if door_held else "false"},"floor":{floor}'


# -- devices ----------------------------------------------------------------------------------------


class _Device:
    __slots__ = (
        "acked",
        "backoff_s",
        "client_id",
        "connack",
        "connect_started",
        "connected",
        "connected_at",
        "connecting",
        "connections",
        "device_id",
        "device_type",
        "down",
        "event_count",
        "index",
        "inflight",
        "last_ms",
        "last_tx",
        "next_pid",
        "open_event",
        "outbox",
        "peak_cm",
        "received",
        "samples",
        "sent",
        "session",
        "topics",
        "transport",
        "wet",
    )  # fmt: skip

    def __init__(self, index: int, device_id: str, device_type: str, site: str) -> None:
        self.index = index
        self.device_id = device_id
        self.device_type = device_type
        self.client_id = f"citywatch-{site}-{device_id}"
        base = f"citywatch/v1/{site}/{device_id}/"
        self.topics = {c: packets.utf8(base + c) for c in ("state", "telemetry", "event")}
        self.session = 0
        self.transport: asyncio.Transport | None = None
        self.connected = False
        self.connecting = False
        self.down = False  # dropped on purpose: no reconnect until restored
        self.next_pid = 0
        self.inflight: dict[int, tuple[bytes, str]] = {}
        self.outbox: deque[tuple[str, str, bytes]] = deque()  # (key, channel, payload)
        self.last_tx = 0.0
        self.last_ms = 0
        self.sent: Counter[str] = Counter()
        self.acked: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.connections = 0
        self.connack: asyncio.Future[int] | None = None
        self.backoff_s = 1.0
        self.connect_started = 0.0
        self.connected_at = 0.0
        self.open_event: tuple[str, str, str] | None = None  # (event_id, type, started_at)
        self.event_count = 0
        self.peak_cm = 0.0
        self.wet = False
        self.samples = 0

    def ts(self) -> str:
        # strictly increasing per device: (device, measurement, ts) identifies a sample
        ms = max(int(time.time() * 1000), self.last_ms + 1)
        self.last_ms = ms
        return iso_ms(ms)

    def packet_id(self) -> int:
        while True:
            self.next_pid = self.next_pid % 65535 + 1
            if self.next_pid not in self.inflight:
                return self.next_pid


class _DeviceProtocol(asyncio.Protocol):
    __slots__ = ("device", "fleet", "reader", "transport")

    def __init__(self, fleet: Fleet, device: _Device) -> None:
        self.fleet = fleet
        self.device = device
        self.reader = packets.PacketReader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.device.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            parsed = self.reader.feed(data)
        except ValueError:
            if self.transport is not None:
                self.transport.abort()
            return
        for first, body in parsed:
            self.fleet._on_packet(self.device, first, body)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.device.transport is self.transport:
            self.fleet._on_lost(self.device)


# -- the fleet --------------------------------------------------------------------------------------


@dataclass(slots=True)
class StormResult:
    devices: list[str]
    started: float
    seconds_to_all_connected: float | None
    connects_per_s: float | None


@dataclass(slots=True)
class _Truth:
    events: list[dict[str, Any]] = field(default_factory=list)
    drops: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)


class Fleet:
    """The simulated devices on one asyncio loop; use ``FleetThread`` from synchronous code."""

    def __init__(self, options: FleetOptions) -> None:
        self.options = options
        self.mqtt = MqttOptions.from_url(options.mqtt_url)
        self.rng = random.Random(options.seed)
        self.devices = [
            _Device(i, d.device_id, d.device_type, options.site) for i, d in enumerate(fleet_devices(options))
        ]
        wet = self.rng.sample(
            [d for d in self.devices if d.device_type == "culvert"],
            round(options.wet_fraction * sum(d.device_type == "culvert" for d in self.devices)),
        )
        for device in wet:
            device.wet = True
            device.peak_cm = round(self.rng.uniform(12.0, 40.0), 1)
        self.run_tag = f"{options.seed:x}{int(time.time()) % 0xFFFFFF:06x}"  # event ids new every run
        self.truth = _Truth()
        self._heap: list[tuple[float, int, int, str]] = []
        self._counter = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._wake: asyncio.Event | None = None
        self.started_at = 0.0  # loop time of start()
        self.started_wall = 0.0
        self.all_connected_s: float | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        check_templates(self.options.site)
        raise_fd_limit(len(self.devices) + 1024)
        self._loop = asyncio.get_running_loop()
        self._semaphore = asyncio.Semaphore(self.options.connect_concurrency)
        self._wake = asyncio.Event()
        self.started_at = self._loop.time()
        self.started_wall = time.time()
        speed = self.options.speed
        for device in self.devices:
            # first sample at a random point of its interval: a fleet does not report in lockstep
            if device.device_type == "culvert":
                self._schedule(
                    device, "water", self.rng.uniform(0, self.options.culvert_dry_interval_s) / speed
                )
                self._schedule(
                    device, "health", self.rng.uniform(0, self.options.culvert_health_interval_s) / speed
                )
            else:
                self._schedule(
                    device, "health", self.rng.uniform(0, self.options.camera_health_interval_s) / speed
                )
                self._schedule_next_ebike(device)
        for device in self.devices:
            device.connect_started = self.started_at
            self._spawn(self._connect(device))
        self._spawn(self._ticker())
        self._spawn(self._pinger())

    async def stop(self, *, drain_s: float = 30.0, graceful: bool = True) -> None:
        """Stop sending new messages, wait up to ``drain_s`` for every queued one to be acknowledged,
        then say offline (retained, as an agent that is stopped) and disconnect."""
        self._stopping = True
        assert self._loop is not None
        deadline = self._loop.time() + drain_s
        while self._loop.time() < deadline and any(
            (d.outbox or any(k != "state" for _, k in d.inflight.values()))
            for d in self.devices
            if not d.down
        ):
            await asyncio.sleep(0.05)
        connected = [d for d in self.devices if d.connected and d.transport is not None]
        if graceful:
            for device in connected:
                device.sent["state"] += 1
                self._publish(
                    device, "state", "state", state_payload(device, "offline", device.ts()), retain=True
                )
            deadline = self._loop.time() + 5.0
            while self._loop.time() < deadline and any(d.inflight for d in connected if d.connected):
                await asyncio.sleep(0.02)
        for device in connected:
            if device.transport is not None:
                if graceful:
                    device.transport.write(b"\xe0\x00")  # DISCONNECT: the broker drops the will
                transport, device.transport, device.connected = device.transport, None, False
                transport.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0.05)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connections ------------------------------------------------------------------------------

    async def _connect(self, device: _Device) -> None:
        assert self._semaphore is not None and self._loop is not None
        if device.connecting:
            return
        device.connecting = True
        try:
            async with self._semaphore:
                if device.down or self._stopping or device.connected:
                    return
                device.session += 1
                will = state_payload(device, "offline", device.ts())
                connect = packets.connect(
                    device.client_id,
                    keepalive_s=self.options.keepalive_s,
                    clean_session=self.options.clean_session,
                    will_topic=f"citywatch/v1/{self.options.site}/{device.device_id}/state",
                    will_payload=will,
                    username=self.mqtt.username,
                    password=self.mqtt.password,
                )
                device.connack = self._loop.create_future()
                try:
                    transport, _ = await asyncio.wait_for(
                        self._loop.create_connection(
                            lambda: _DeviceProtocol(self, device), self.mqtt.host, self.mqtt.port
                        ),
                        self.options.connect_timeout_s,
                    )
                    transport.write(connect)
                    code = await asyncio.wait_for(device.connack, self.options.connect_timeout_s)
                    if code != 0:
                        raise ConnectionRefusedError(f"CONNACK return code {code}")
                except (OSError, TimeoutError, asyncio.CancelledError) as exc:
                    if device.transport is not None:
                        device.transport.abort()
                        device.transport = None
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    self._retry_later(device)
                    return
                if device.down or self._stopping:  # dropped while the handshake ran
                    transport.abort()
                    return
                self._on_connected(device)
        finally:
            device.connecting = False

    def _retry_later(self, device: _Device) -> None:
        if device.down or self._stopping:
            return
        assert self._loop is not None
        delay = device.backoff_s * self.rng.uniform(0.5, 1.5)
        device.backoff_s = min(device.backoff_s * 2, 30.0)
        self._loop.call_later(delay, lambda: self._spawn(self._connect(device)))

    def _on_connected(self, device: _Device) -> None:
        assert self._loop is not None and device.transport is not None
        now = self._loop.time()
        device.connected = True
        device.connected_at = now
        device.connections += 1
        device.backoff_s = 1.0
        write = device.transport.write
        resend = list(device.inflight.values())  # unacknowledged before the drop
        birth = state_payload(device, "online", device.ts())
        device.sent["state"] += 1
        pid = device.packet_id()
        encoded = packets.publish_qos1(device.topics["state"], birth, pid, retain=True)
        device.inflight[pid] = (encoded, "state")
        write(encoded)
        if self.options.subscribe:
            base = f"citywatch/v1/{self.options.site}/{device.device_id}/"
            write(packets.subscribe(device.packet_id(), [base + "cmd", base + "config", base + "refusal"]))
        # unacknowledged before the drop: again, first, marked DUP
        for encoded, _key in resend:
            write(packets.as_dup(encoded))
        while device.outbox:
            key, channel, payload = device.outbox.popleft()
            self._publish(device, key, channel, payload)
        device.last_tx = now
        if self.all_connected_s is None and all(d.connected for d in self.devices):
            self.all_connected_s = now - self.started_at

    def _on_lost(self, device: _Device) -> None:
        device.transport = None
        was_connected, device.connected = device.connected, False
        # a birth of an old session is not sent again: it would overwrite the new retained one
        for pid in [p for p, (_, key) in device.inflight.items() if key == "state"]:
            del device.inflight[pid]
        if device.connack is not None and not device.connack.done():
            device.connack.set_exception(ConnectionResetError("closed before CONNACK"))
        if was_connected and not device.down and not self._stopping:
            self._retry_later(device)

    def _on_packet(self, device: _Device, first: int, body: bytes) -> None:
        kind = first & 0xF0
        if kind == packets.PUBACK:
            (pid,) = struct.unpack_from("!H", body)
            sent = device.inflight.pop(pid, None)
            if sent is not None:
                device.acked[sent[1]] += 1
        elif kind == packets.CONNACK:
            if device.connack is not None and not device.connack.done():
                device.connack.set_result(body[1] if len(body) >= 2 else 255)
        elif kind == packets.PUBLISH:
            topic, pid, payload = packets.publish_parts(first, body)
            if pid is not None and device.transport is not None:
                device.transport.write(packets.puback(pid))
            channel = topic.rsplit("/", 1)[-1]
            device.received[channel] += 1
            if channel == "refusal" and len(self.truth.refusals) < 1000:
                with contextlib.suppress(ValueError):
                    self.truth.refusals.append({"device_id": device.device_id, **json.loads(payload)})

    # -- drops and storms -------------------------------------------------------------------------

    def drop(self, count: int) -> list[str]:
        """Close ``count`` connected devices' sockets at once, without DISCONNECT (their wills fire);
        they stay away, queueing what falls due, until ``restore``."""
        candidates = [d for d in self.devices if d.connected and not d.down]
        chosen = sorted(self.rng.sample(candidates, min(count, len(candidates))), key=lambda d: d.index)
        for device in chosen:
            device.down = True
            if device.transport is not None:
                device.transport.abort()  # no DISCONNECT: the broker publishes the will
                self._on_lost(device)
        ids = [d.device_id for d in chosen]
        self.truth.drops.append({"at": time.time(), "devices": ids})
        return ids

    async def restore(
        self, device_ids: Iterable[str] | None = None, *, timeout_s: float = 300.0
    ) -> StormResult:
        """Bring dropped devices back all at once (a reconnect storm); wait until all are connected."""
        assert self._loop is not None
        wanted = set(device_ids) if device_ids is not None else None
        back = [d for d in self.devices if d.down and (wanted is None or d.device_id in wanted)]
        started = self._loop.time()
        for device in back:
            device.down = False
            device.backoff_s = 1.0
            device.connect_started = started
            self._spawn(self._connect(device))
        while self._loop.time() - started < timeout_s and not all(d.connected for d in back):
            await asyncio.sleep(0.01)
        done = all(d.connected for d in back)
        seconds = max((d.connected_at for d in back), default=started) - started if done else None
        return StormResult(
            devices=[d.device_id for d in back],
            started=time.time() - (self._loop.time() - started),
            seconds_to_all_connected=round(seconds, 3) if seconds is not None else None,
            connects_per_s=round(len(back) / seconds, 1) if seconds else None,
        )

    async def wait_connected(self, timeout_s: float) -> bool:
        assert self._loop is not None
        deadline = self._loop.time() + timeout_s
        while self._loop.time() < deadline:
            if all(d.connected or d.down for d in self.devices):
                return True
            await asyncio.sleep(0.02)
        return False

    # -- what the devices send --------------------------------------------------------------------

    def _schedule(self, device: _Device, action: str, delay_s: float) -> None:
        assert self._loop is not None
        self._counter += 1
        heapq.heappush(self._heap, (self._loop.time() + delay_s, self._counter, device.index, action))

    def _schedule_next_ebike(self, device: _Device) -> None:
        rate = self.options.events_per_camera_day / DAY_S
        if rate > 0:
            self._schedule(device, "ebike", self.rng.expovariate(rate) / self.options.speed)

    def sim_s(self) -> float:
        assert self._loop is not None
        return (self._loop.time() - self.started_at) * self.options.speed

    async def _ticker(self) -> None:
        assert self._loop is not None
        heap = self._heap
        while not self._stopping:
            now = self._loop.time()
            while heap and heap[0][0] <= now and not self._stopping:
                _, _, index, action = heapq.heappop(heap)
                self._act(self.devices[index], action)
            delay = heap[0][0] - self._loop.time() if heap else 0.1
            await asyncio.sleep(min(max(delay, 0.002), 0.1))

    def _act(self, device: _Device, action: str) -> None:
        options, speed = self.options, self.options.speed
        uptime = self.sim_s()
        if action == "water":
            level = self._level_cm(device)
            device.samples += 1
            self._send(device, "telemetry:water_level", "telemetry", telemetry_payload(
                device.device_id, device.ts(), "water_level", _water_fields(level), '"status":"ok"'))  # fmt: skip
            self._water_event(device, level)
            wet = level > 0.0
            interval = options.culvert_wet_interval_s if wet else options.culvert_dry_interval_s
            self._schedule(device, "water", interval / speed)
        elif action == "health":
            if device.device_type == "culvert":
                fields, tags, interval = (
                    _culvert_health_fields(uptime, device.samples),
                    "",
                    options.culvert_health_interval_s,
                )
            else:
                fields, tags, interval = (
                    _camera_health_fields(uptime),
                    _CAMERA_TAGS,
                    options.camera_health_interval_s,
                )
            self._send(device, "telemetry:health", "telemetry", telemetry_payload(
                device.device_id, device.ts(), "health", fields, tags))  # fmt: skip
            self._schedule(device, "health", interval / speed)
        elif action == "ebike":
            if device.open_event is None:
                floor = self.rng.randint(1, 30)
                self._open_event(device, "ebike_in_elevator", "warning", _ebike_details(floor, True))
                self._schedule(device, "ebike_end", self.rng.uniform(20.0, 90.0) / speed)
            self._schedule_next_ebike(device)
        elif action == "ebike_end" and device.open_event is not None:
            self._end_event(device, _ebike_details(1, False))

    def _level_cm(self, device: _Device) -> float:
        if not device.wet:
            return 0.0
        into = (self.sim_s() - self.options.storm_start_s) / self.options.storm_s
        if not 0.0 < into < 1.0:
            return 0.0
        return round(device.peak_cm * math.sin(math.pi * into), 1)

    def _water_event(self, device: _Device, level: float) -> None:
        if device.open_event is None and level >= WATER_EVENT_CM:
            self._open_event(device, "water_level", "warning", _water_details(level, level))
        elif device.open_event is not None and level < WATER_EVENT_CM / 2:
            self._end_event(device, _water_details(level, device.peak_cm))

    def _open_event(self, device: _Device, event_type: str, severity: str, details: str) -> None:
        device.event_count += 1
        event_id = f"{self.run_tag}-{device.index:05d}-{device.event_count:05d}"
        ts = device.ts()
        device.open_event = (event_id, event_type, ts)
        self.truth.events.append(
            {
                "event_id": event_id,
                "device_id": device.device_id,
                "type": event_type,
                "new_ts": ts,
                "phases": ["new"],
            }
        )
        self._send(device, "event", "event", event_payload(
            device.device_id, event_id, 0, event_type, severity, ts, ts, details))  # fmt: skip

    def _end_event(self, device: _Device, details: str) -> None:
        assert device.open_event is not None
        event_id, event_type, started = device.open_event
        device.open_event = None
        for event in reversed(self.truth.events):
            if event["event_id"] == event_id:
                event["phases"].append("end")
                break
        self._send(device, "event", "event", event_payload(
            device.device_id, event_id, 1, event_type, "warning", device.ts(), started, details))  # fmt: skip

    def _send(self, device: _Device, key: str, channel: str, payload: bytes) -> None:
        device.sent[key] += 1
        if device.connected:
            self._publish(device, key, channel, payload)
        else:
            device.outbox.append((key, channel, payload))

    def _publish(
        self, device: _Device, key: str, channel: str, payload: bytes, *, retain: bool = False
    ) -> None:
        assert device.transport is not None
        pid = device.packet_id()
        encoded = packets.publish_qos1(device.topics[channel], payload, pid, retain=retain)
        device.inflight[pid] = (encoded, key)
        device.transport.write(encoded)
        assert self._loop is not None
        device.last_tx = self._loop.time()

    async def _pinger(self) -> None:
        assert self._loop is not None
        keepalive = self.options.keepalive_s
        while not self._stopping:
            await asyncio.sleep(keepalive / 4)
            idle_since = self._loop.time() - keepalive / 2
            for device in self.devices:
                if device.connected and device.transport is not None and device.last_tx < idle_since:
                    device.transport.write(packets.PINGREQ_PACKET)
                    device.last_tx = self._loop.time()

    # -- figures and ground truth -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        sent: Counter[str] = Counter()
        acked: Counter[str] = Counter()
        received: Counter[str] = Counter()
        for device in self.devices:
            sent.update(device.sent)
            acked.update(device.acked)
            received.update(device.received)
        return {
            "devices": len(self.devices),
            "connected": sum(d.connected for d in self.devices),
            "down": sum(d.down for d in self.devices),
            "all_connected_s": round(self.all_connected_s, 3) if self.all_connected_s is not None else None,
            "sim_s": round(self.sim_s(), 1) if self._loop is not None else 0.0,
            "sent": dict(sent),
            "acked": dict(acked),
            "unacked": sum(len(d.inflight) for d in self.devices),
            "queued": sum(len(d.outbox) for d in self.devices),
            "received": dict(received),
            "events_opened": len(self.truth.events),
        }

    def ground_truth(self) -> dict[str, Any]:
        """What was sent, per device and channel, and every event with its id: what a gateway must hold."""
        devices = {
            d.device_id: {
                "device_type": d.device_type,
                "telemetry": {k.split(":", 1)[1]: n for k, n in d.sent.items() if k.startswith("telemetry:")},
                "event_messages": d.sent["event"],
                "state_messages": d.sent["state"],
                "connections": d.connections,
                "sessions": d.session,
            }
            for d in self.devices
        }
        return {
            "options": asdict(self.options),
            "started_at": self.started_wall,
            "stats": self.stats(),
            "devices": devices,
            "events": self.truth.events,
            "drops": self.truth.drops,
            "refusals": self.truth.refusals,
        }


class FleetThread:
    """A ``Fleet`` on its own event loop in a background thread, driven from synchronous code."""

    def __init__(self, options: FleetOptions) -> None:
        self.fleet = Fleet(options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fleet-sim", daemon=True)

    def start(self) -> FleetThread:
        self._thread.start()
        self._call(self.fleet.start())
        return self

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def _sync(self, function: Any, *args: Any) -> Any:
        async def call() -> Any:
            return function(*args)

        return self._call(call())

    def wait_connected(self, timeout_s: float) -> bool:
        return self._call(self.fleet.wait_connected(timeout_s))

    def drop(self, count: int) -> list[str]:
        result: list[str] = self._sync(self.fleet.drop, count)
        return result

    def restore(self, device_ids: Iterable[str] | None = None, *, timeout_s: float = 300.0) -> StormResult:
        return self._call(self.fleet.restore(device_ids, timeout_s=timeout_s))

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._sync(self.fleet.stats)
        return result

    def ground_truth(self) -> dict[str, Any]:
        result: dict[str, Any] = self._sync(self.fleet.ground_truth)
        return result

    def stop(self, *, drain_s: float = 30.0, graceful: bool = True) -> dict[str, Any]:
        """Stop the fleet; its ground truth."""
        try:
            self._call(self.fleet.stop(drain_s=drain_s, graceful=graceful))
            return self.ground_truth()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> FleetThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.stop(drain_s=5.0)


def write_truth(path: Path, truth: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth, indent=1))
