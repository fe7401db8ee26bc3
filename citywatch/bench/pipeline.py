"""Ingest throughput, event-to-dispatch latency and agent memory, each beside a same-run reference.

Everything runs on loopback: a Mosquitto started with the project's config, the gateway in-process,
load generators in their own processes (so they do not share the gateway's interpreter lock).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml

from citywatch.bench.processes import peak_rss_mb
from citywatch.bench.publisher import BENCH_SITE, device_ids
from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.polling import wait_until
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings

log = logging.getLogger("citywatch.bench.cli")


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    # Polled every 10 ms: when a condition turns true is part of what the bench measures.
    return wait_until(condition, timeout_s=timeout_s, interval_s=0.01)


def _run_publisher(
    url: str,
    count: int,
    devices: int,
    *,
    run: int,
    rate: float | None = None,
    processes: int = 1,
    numbered: bool = False,
) -> dict[str, float]:
    """Publish ``count`` distinct messages from ``processes`` load generators sharing them (and ``rate``).

    Returns the earliest first publish, the latest last publish and last ack, and how many the broker
    acknowledged (fewer than ``count`` when a generator gave up waiting for acks).
    """
    commands = []
    for part in range(processes):
        command = [
            sys.executable, "-m", "citywatch.bench.publisher",
            "--url", url, "--count", str(count), "--devices", str(devices), "--run", str(run),
            "--part", str(part), "--parts", str(processes),
        ]  # fmt: skip
        if rate is not None:
            command += ["--rate", str(rate / processes)]
        if numbered:
            command.append("--numbered")
        commands.append(command)
    running = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands
    ]
    results = []
    for process, command in zip(running, commands, strict=True):
        out, err = process.communicate(timeout=600)
        if process.returncode != 0:
            raise subprocess.CalledProcessError(process.returncode, command, out, err)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "first_publish": min(r["first_publish"] for r in results),
        "last_publish": max(r["last_publish"] for r in results),
        "all_acked": max(r["all_acked"] for r in results),
        "acked": sum(r["acked"] for r in results),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def bench_ingest(work_dir: Path, *, count: int = 20_000, devices: int = 50) -> dict[str, Any]:
    """Telemetry messages/s from simulated devices through Mosquitto into the gateway's store.

    Figures, each beside the same thing done by the C client ``mosquitto_sub`` (QoS 1, acks only)
    on the same broker in the same run:

    - live: the publisher and the gateway run together (both share the 2 cores: this is bounded by
      the publisher as much as by the gateway);
    - live with receipts: the same, with messages numbered (``outbox_seq``) as the project's agents
      send them, so the gateway also publishes receipts (end-to-end delivery); a ``mosquitto_sub``
      takes the receipts as the devices would, and every message must be listed in one; the two
      live figures are each the mean of two runs, alternated (without, with, without, with);
    - backlog: ``count`` messages wait in the gateway's persistent session while it is down; the figure
      is how fast it drains them once up, i.e. the consumer alone.
    """
    broker = MosquittoBroker(data_dir=work_dir / "ingest-broker").start()
    try:
        reference = _reference_subscriber_rate(broker, count=count, devices=devices)
        reference_drain = _reference_backlog_drain_rate(broker, count=count, devices=devices)
        settings = Settings(MQTT_URL=broker.url, DATA_DIR=work_dir / "ingest-gateway", HTTP_PORT=0)
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        with GatewayApp(settings) as gateway:
            _provision(gateway, device_ids(devices))
            # Warm up first (connections, caches, the store's first pages): the two live figures that
            # follow, without and with receipts, are then measured on the same footing.
            warm_up = max(count // 10, devices)
            _run_publisher(broker.url, warm_up, devices, run=5)
            _wait(lambda: gateway.stats.snapshot()["telemetry_written"] >= warm_up, timeout_s=120)
            before = gateway.store.count()
            # Alternated (without, with, without, with): on a shared machine the load drifts, and
            # whichever ran first would otherwise carry it.
            withouts, withs = [], []
            receipts_before = gateway.ingest.receipts.sent
            with _ReceiptListener(broker) as listener:
                for without_run, with_run in ((1, 2), (0, 4)):  # distinct hours of samples, all in the past
                    withouts.append(_live(gateway, broker, count=count, devices=devices, run=without_run))
                    withs.append(
                        _live(gateway, broker, count=count, devices=devices, run=with_run, numbered=True)
                    )
                # the last receipts follow within the receipt interval
                _wait(lambda: listener.receipted() >= sum(w["stored"] for w in withs), timeout_s=10)
            receipts_sent = gateway.ingest.receipts.sent - receipts_before
            refused = sum(gateway.stats.snapshot().get("refused", {}).values())
            without, with_receipts = _mean_runs(withouts), _mean_runs(withs)
        # The gateway is down; its session keeps queueing.
        _run_publisher(broker.url, count, devices, run=3)
        with GatewayApp(settings) as gateway:
            started = time.time()
            written = lambda: gateway.stats.snapshot()["telemetry_written"]  # noqa: E731
            taken_while_starting = written()
            drained = _wait(lambda: written() >= count, timeout_s=300)
            drain_s = time.time() - started
            drained = drained and _wait(lambda: gateway.store.count() - before >= 5 * count, timeout_s=10)
            live_stored = sum(run["stored"] for run in withouts + withs)
            drain_stored = gateway.store.count() - before - live_stored
        stored, rate = without["stored"], without["msgs_per_s"]
        drain_rate = (count - taken_while_starting) / drain_s if drained else 0.0
        return {
            "messages": count,
            "stored": stored,
            "lost": count - stored,
            "refused": refused,
            "gateway_msgs_per_s": round(rate),
            "reference_mosquitto_sub_msgs_per_s": round(reference),
            "ratio_to_reference": round(rate / reference, 3) if reference else None,
            "with_receipts_stored": with_receipts["stored"],
            "with_receipts_lost": count - with_receipts["stored"],
            "with_receipts_gateway_msgs_per_s": round(with_receipts["msgs_per_s"]),
            "with_receipts_ratio_to_without": (
                round(with_receipts["msgs_per_s"] / rate, 3) if rate and with_receipts["msgs_per_s"] else None
            ),
            "with_receipts_receipts_sent": receipts_sent,
            "with_receipts_messages_receipted": listener.receipted(),
            "with_receipts_runs": 2,
            "backlog_stored": drain_stored,
            "backlog_lost": count - drain_stored,
            "backlog_gateway_drain_msgs_per_s": round(drain_rate),
            "backlog_reference_mosquitto_sub_drain_msgs_per_s": round(reference_drain),
            "backlog_ratio_to_reference": round(drain_rate / reference_drain, 3) if reference_drain else None,
        }
    finally:
        broker.stop()


def _mean_runs(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per run: the fewest stored (a loss in any run shows) and the mean rate."""
    return {
        "stored": min(run["stored"] for run in runs),
        "msgs_per_s": sum(run["msgs_per_s"] for run in runs) / len(runs),
    }


def _live(
    gateway: GatewayApp,
    broker: MosquittoBroker,
    *,
    count: int,
    devices: int,
    run: int,
    numbered: bool = False,
) -> dict[str, float]:
    """Publish ``count`` messages while the gateway runs; how many it stored, and how fast."""
    before = gateway.store.count()
    written_before = gateway.stats.snapshot()["telemetry_written"]
    timing: dict[str, float] = {}
    publisher = threading.Thread(
        target=lambda: timing.update(_run_publisher(broker.url, count, devices, run=run, numbered=numbered)),
        daemon=True,
    )
    publisher.start()
    # Poll the writer's counter (free), not count(*) on the store: a query every 10 ms took the
    # store's lock and a tenth of the gateway's time. The store is counted once at the end.
    written = lambda: gateway.stats.snapshot()["telemetry_written"] - written_before  # noqa: E731
    complete = _wait(lambda: written() >= count, timeout_s=300)
    done_at = time.time()
    complete = complete and _wait(lambda: gateway.store.count() - before >= count, timeout_s=10)
    publisher.join(60)
    stored = gateway.store.count() - before
    return {"stored": stored, "msgs_per_s": stored / (done_at - timing["first_publish"]) if complete else 0.0}


class _ReceiptListener:
    """``mosquitto_sub`` on every bench device's receipt topic, in its own process (as the devices would
    be): how many messages the receipts listed. -1 when mosquitto_sub is not installed."""

    def __init__(self, broker: MosquittoBroker) -> None:
        binary = shutil.which("mosquitto_sub")
        self._lines: list[str] = []
        self._process: subprocess.Popen[str] | None = None
        if binary is None:
            return
        self._process = subprocess.Popen(
            [binary, "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t",
             f"citywatch/v1/{BENCH_SITE}/+/receipt"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        time.sleep(0.5)  # no "subscribed" signal (as in the reference run)

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.append(line)

    def receipted(self) -> int:
        if self._process is None:
            return -1
        total = 0
        for line in list(self._lines):
            for first, last in json.loads(line)["stored"]:
                total += last - first + 1
        return total

    def __enter__(self) -> _ReceiptListener:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._reader.join(5)


def _reference_subscriber_rate(broker: MosquittoBroker, *, count: int, devices: int) -> float:
    """How fast the plain `mosquitto_sub` client receives the same QoS 1 stream from the same broker."""
    binary = shutil.which("mosquitto_sub")
    if binary is None:
        return 0.0
    sub = subprocess.Popen(
        [binary, "-h", broker.host, "-p", str(broker.port), "-q", "1", "-i", "bench-ref", "-t",
         f"citywatch/v1/{BENCH_SITE}/+/telemetry", "-C", str(count)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(0.5)  # mosquitto_sub has no "subscribed" signal; half a second is ample on loopback
    timing = _run_publisher(broker.url, count, devices, run=0)
    try:
        sub.wait(timeout=300)
    except subprocess.TimeoutExpired:
        sub.kill()
        return 0.0
    return count / (time.time() - timing["first_publish"])


def _reference_backlog_drain_rate(broker: MosquittoBroker, *, count: int, devices: int) -> float:
    """How fast `mosquitto_sub` drains ``count`` QoS 1 messages queued in its persistent session."""
    binary = shutil.which("mosquitto_sub")
    if binary is None:
        return 0.0
    session = [binary, "-h", broker.host, "-p", str(broker.port), "-q", "1", "-c", "-i", "bench-ref-backlog",
               "-t", f"citywatch/v1/{BENCH_SITE}/+/telemetry"]  # fmt: skip
    subprocess.run([*session, "-E"], check=True, timeout=30, stdout=subprocess.DEVNULL)  # create it
    queued = int(_run_publisher(broker.url, count, devices, run=0)["acked"])
    started = time.time()
    try:
        subprocess.run([*session, "-C", str(queued)], check=True, timeout=120, stdout=subprocess.DEVNULL)
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
        return 0.0
    return queued / (time.time() - started)


def bench_event_latency(work_dir: Path, *, events: int = 200, spacing_s: float = 0.02) -> dict[str, Any]:
    """From an agent's uplink.send() of a new event to its receipt at the dispatch-centre simulator.

    Reference, same run and same messages: a plain MQTT subscriber on the event topics (the share of the
    latency that is the device outbox and the broker, before the gateway and the webhook).
    """
    from citywatch.mqtt import MqttOptions
    from citywatch.protocol.messages import EventType, Severity
    from citywatch.protocol.topics import Channel
    from edge.events import EventEmitter
    from edge.uplink import Uplink
    from simulators.dispatch_centre import DispatchCentreSimulator, new_secret

    broker = MosquittoBroker(data_dir=work_dir / "latency-broker").start()
    dispatch = DispatchCentreSimulator(secret=new_secret()).start()
    devices = [f"lat-{i:04d}" for i in range(events)]
    sent_at: dict[str, float] = {}
    mqtt_seen: dict[str, float] = {}
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-latency-ref")
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        device = message.topic.split("/")[3]
        mqtt_seen.setdefault(device, time.time())

    raw.on_message = on_message
    raw.on_subscribe = lambda *_: subscribed.set()
    raw.connect(broker.host, broker.port)
    raw.subscribe(f"citywatch/v1/{BENCH_SITE}/+/event", qos=1)
    raw.loop_start()
    subscribed.wait(10)
    try:
        settings = Settings(
            MQTT_URL=broker.url,
            DATA_DIR=work_dir / "latency-gateway",
            HTTP_PORT=0,
            DISPATCH_URL=dispatch.url,
            DISPATCH_SECRET=dispatch.secret,
        )
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        with GatewayApp(settings) as gateway:
            _provision(gateway, devices)
            # one real uplink (own connection and on-disk outbox) per simulated device
            pool = [
                Uplink(
                    MqttOptions.from_url(broker.url),
                    BENCH_SITE,
                    device,
                    "culvert",
                    "bench",
                    work_dir / f"outbox-{device}.sqlite3",
                ).start()
                for device in devices
            ]
            unconnected = [u.device_id for u in pool if not u.wait_connected(30)]
            if unconnected:
                raise RuntimeError(f"{len(unconnected)} uplinks did not connect: {unconnected[:5]}")
            for device, uplink in zip(devices, pool, strict=True):
                emitter = EventEmitter(device_id=device, event_type=EventType.WATER_LEVEL)
                message = emitter.open(
                    ts=datetime.now(UTC),
                    severity=Severity.NOTICE,
                    details={"level_cm": 10.5, "peak_cm": 10.5, "threshold_cm": 10.0},
                )
                sent_at[device] = time.time()
                uplink.send(Channel.EVENT, message)
                time.sleep(spacing_s)
            _wait(lambda: len(dispatch.received()) >= events, timeout_s=60)
            with gateway.read_session_factory() as session:
                stages = stage_timings(session, devices)
            for uplink in pool:
                uplink.stop()
    finally:
        raw.loop_stop()
        raw.disconnect()
        dispatch.stop()
        broker.stop()
    delivered = {hook.event["device_id"]: hook.received_at for hook in dispatch.received()}
    latencies = [(delivered[d] - sent_at[d]) * 1000 for d in devices if d in delivered]
    mqtt_latencies = [(mqtt_seen[d] - sent_at[d]) * 1000 for d in devices if d in mqtt_seen]
    return {
        "events": events,
        "delivered": len(latencies),
        "duplicates_at_dispatch": dispatch.duplicates,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(_percentile(latencies, 99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "reference_mqtt_p50_ms": round(statistics.median(mqtt_latencies), 1) if mqtt_latencies else None,
        "reference_mqtt_p99_ms": round(_percentile(mqtt_latencies, 99), 1) if mqtt_latencies else None,
        "stages_ms": stages,
    }


def stage_timings(session: Any, devices: list[str]) -> dict[str, dict[str, float]]:
    """Where the time went, from the gateway's own rows (one clock: one machine), p50 and p99 of:
    device time -> event row written (ingest), event row -> its outbox row, outbox row -> delivery
    recorded (includes the ingest's commit, the POST and the wait for the record's transaction)."""
    from sqlalchemy import select

    from gateway.dispatch.models import OutboxMessage
    from gateway.events.models import Event

    rows = session.execute(
        select(Event.started_at, Event.created_at, OutboxMessage.created_at, OutboxMessage.delivered_at)
        .join(OutboxMessage, OutboxMessage.event_id == Event.id)
        .where(Event.device_id.in_(devices))
    ).all()
    stages: dict[str, list[float]] = {"ingest": [], "to_outbox": [], "outbox_to_recorded": []}
    for started, event_row, outbox_row, delivered in rows:
        stages["ingest"].append((event_row - started).total_seconds() * 1000)
        stages["to_outbox"].append((outbox_row - event_row).total_seconds() * 1000)
        if delivered is not None:
            stages["outbox_to_recorded"].append((delivered - outbox_row).total_seconds() * 1000)
    return {
        name: {"p50": round(statistics.median(v), 1), "p99": round(_percentile(v, 99), 1)}
        for name, v in stages.items()
        if v
    }


def bench_culvert_memory(work_dir: Path, *, seconds: float = 8.0) -> dict[str, Any]:
    """Peak resident memory of `citywatch edge run` on a culvert config, beside a bare interpreter."""
    broker = MosquittoBroker(data_dir=work_dir / "memory-broker").start()
    config = {
        "kind": "culvert",
        "device": {"id": "culvert-mem-1", "site": BENCH_SITE},
        "mqtt": {"url": broker.url},
        "outbox": {"path": str(work_dir / "culvert-mem.sqlite3")},
        "sensor": {"type": "simulated", "scenario": "flash_flood", "start_after_s": 0},
        "culvert": {"mount_height_mm": 2000, "sample_interval_s": 0.2},
    }
    config_path = work_dir / "culvert-mem.yaml"
    config_path.write_text(yaml.safe_dump(config))
    try:
        reference = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
        time.sleep(1)
        bare = peak_rss_mb(reference.pid)
        reference.wait()
        agent = subprocess.Popen(
            [sys.executable, "-m", "citywatch.cli", "edge", "run", str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        time.sleep(seconds)
        if agent.poll() is not None:
            raise RuntimeError(
                f"culvert agent exited early: {agent.stderr.read().decode()[-2000:] if agent.stderr else ''}"
            )
        peak = peak_rss_mb(agent.pid)
        agent.terminate()
        agent.wait(10)
    finally:
        broker.stop()
    return {
        "culvert_agent_peak_rss_mb": round(peak, 1),
        "reference_bare_python_rss_mb": round(bare, 1),
        "budget_mb": 60,
        "within_budget": peak < 60,
    }


def bench_sustained_influx(
    work_dir: Path, *, rate: float = 10_000, seconds: float = 60.0, devices: int = 100, publishers: int = 1
) -> dict[str, Any]:
    """QoS 1 telemetry offered at ``rate`` msgs/s for ``seconds`` through Mosquitto and the gateway into
    an InfluxDB-protocol server (victoria-metrics); every point is then counted back from the server.

    Reference, same run: the rate the publisher alone reached (broker PUBACKs), i.e. what was offered.
    ``lost`` is counted after the whole backlog is drained (up to 10 more minutes), so that it means lost,
    not late. ``gateway_msgs_per_s`` is what was written by the time all accepted messages were (or 120 s
    after the last publish), over the time since the first publish.

    Backlog figure: up to 100,000 messages queued in the gateway's session while it is down, drained into
    the server once it is up (the consumer alone, load generators idle), beside ``mosquitto_sub``
    draining the same backlog from the same broker.
    """
    from citywatch.bench.victoria import VictoriaMetrics, sample_keys

    count = int(rate * seconds)
    backlog_count = min(count, 100_000)
    broker = MosquittoBroker(data_dir=work_dir / "sustain-broker").start()
    server = VictoriaMetrics(data_dir=work_dir / "sustain-vm").start()
    try:
        # before the gateway's session exists, so that these messages are not queued for it
        reference_drain = _reference_backlog_drain_rate(broker, count=backlog_count, devices=devices)
        settings = Settings(
            MQTT_URL=broker.url,
            DATA_DIR=work_dir / "sustain-gateway",
            HTTP_PORT=0,
            TELEMETRY_STORE="influx",
            INFLUX_URL=server.url,
            INFLUX_TOKEN="bench",
            INFLUX_ORG="citywatch",
            INFLUX_BUCKET="telemetry",
        )
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        with GatewayApp(settings) as gateway:
            _provision(gateway, device_ids(devices))
            timing: dict[str, float] = {}
            publisher = threading.Thread(
                target=lambda: timing.update(
                    _run_publisher(broker.url, count, devices, run=2, rate=rate, processes=publishers)
                ),
                daemon=True,
            )
            publisher.start()
            backlog: list[int] = []
            while publisher.is_alive():
                time.sleep(1.0)
                backlog.append(gateway.ingest.queue_depth)
            written = lambda: gateway.stats.snapshot()["telemetry_written"]  # noqa: E731
            accepted = int(timing["acked"])  # what the broker took: a generator that gave up sent less
            complete = _wait(lambda: written() >= accepted, timeout_s=120)
            done_at = time.time()
            written_in_time = written()
            # Not in time is not lost: the rest waits in the session. Drain it to check nothing is lost.
            drained = complete or _wait(lambda: written() >= accepted, timeout_s=600)
        # Backlog: messages queued in the gateway's session while it is down, drained once it is up.
        _run_publisher(broker.url, backlog_count, devices, run=4, processes=publishers)
        with GatewayApp(settings) as gateway:
            started = time.time()
            written = lambda: gateway.stats.snapshot()["telemetry_written"]  # noqa: E731
            taken_while_starting = written()
            backlog_drained = _wait(lambda: written() >= backlog_count, timeout_s=600)
            drain_s = time.time() - started
        # the gateway has stopped (store closed, everything flushed): count what the server holds
        server.force_flush()
        stored = len(sample_keys(server.url, '{__name__=~"water_level_.*"}')) // 2  # two fields a point
    finally:
        server.stop()
        broker.stop()
    offered_rate = accepted / (timing["all_acked"] - timing["first_publish"])
    rate_reached = written_in_time / (done_at - timing["first_publish"])
    drain_rate = (backlog_count - taken_while_starting) / drain_s if backlog_drained else 0.0
    return {
        "offered_msgs_per_s": round(rate),
        "seconds": seconds,
        "messages": count,
        "publishers": publishers,
        "accepted_by_broker": accepted,
        "expected_in_influx": accepted + backlog_count,  # the sustained run plus the backlog run
        "stored_in_influx": stored,
        "lost": accepted + backlog_count - stored,
        "gateway_msgs_per_s": round(rate_reached),
        "reference_publisher_msgs_per_s": round(offered_rate),
        "ratio_to_reference": round(rate_reached / offered_rate, 3) if offered_rate else None,
        "drain_after_last_publish_s": round(done_at - timing["last_publish"], 2),
        "written_within_120_s_of_last_publish": written_in_time,
        "drained_in_the_end": drained,
        "max_ingest_backlog": max(backlog, default=0),
        "backlog_messages": backlog_count,
        "backlog_gateway_drain_msgs_per_s": round(drain_rate),
        "backlog_reference_mosquitto_sub_drain_msgs_per_s": round(reference_drain),
        "backlog_ratio_to_reference": round(drain_rate / reference_drain, 3) if reference_drain else None,
    }


def _provision(gateway: GatewayApp, devices: Iterable[str]) -> None:
    with gateway.session_factory() as session, session.begin():
        for device in devices:
            devices_service.provision(
                session=session, device_id=device, site=BENCH_SITE, device_type="culvert"
            )
