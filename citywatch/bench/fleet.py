"""A district on one machine: the device fleet (``simulators.fleet``) against one gateway.

Three processes beside the bench: Mosquitto (project config), ``citywatch gateway`` on SQLite, and the
fleet simulator; each one's CPU and memory are read from the system. Figures, each beside a reference
from the same run:

- connect: the whole fleet connected (CONNACK, birth sent) and every device shown online by the
  gateway, beside the same fleet connecting to a broker without a gateway;
- steady state: gateway CPU % and resident memory, absolute and per 1,000 devices, beside the idle
  gateway with the devices provisioned but none connected (and the broker's and the fleet's own CPU);
- drop: ``drop`` devices lose their connections at once (no DISCONNECT: wills fire); the time until the
  gateway has raised ``device_offline`` for all of them (its window is ``offline_after_s``), and per
  dropped device how late its event was raised after its own deadline (``last_seen`` at the gateway, set
  by the will, plus the window: p50/p99/max, beside the window itself) and the presence monitor's longest
  write transaction in the storm (from its log: the stall the ingest and the API could see); then the
  reconnect storm: the connects per second the broker and gateway absorb and the time until every
  ``device_offline`` has ended (per device, after the restore began); exactly one event per dropped device;
- telemetry lost: what the fleet sent (its ground truth) minus what the gateway's store holds, after
  the fleet drained its queues; events delivered to the dispatch centre, duplicates.
"""

from __future__ import annotations

import json
import re
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from citywatch.bench.pipeline import _percentile
from citywatch.bench.processes import FleetProcess, GatewayProcess
from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.polling import wait_until

SITE = "district"


def _fleet_args(url: str, devices: int, speed: float, concurrency: int, prefix: str) -> list[str]:
    return [
        "--mqtt-url", url, "--devices", str(devices), "--speed", str(speed), "--site", SITE,
        "--prefix", prefix, "--connect-concurrency", str(concurrency), "--seed", "18",
    ]  # fmt: skip


def _reference_connect(work: Path, *, devices: int, speed: float, concurrency: int) -> dict[str, Any]:
    """The same fleet connecting to a broker with nobody subscribed: the broker's own connect rate."""
    broker = MosquittoBroker(data_dir=work / "reference-broker").start()
    try:
        fleet = FleetProcess(
            _fleet_args(broker.url, devices, speed, concurrency, "r"), log_path=work / "reference-fleet.log"
        )
        try:
            connected = fleet.command("wait-connected 600")["connected"]
            stats = fleet.command("stats")
        finally:
            fleet.stop()
    finally:
        broker.stop()
    seconds = stats.get("all_connected_s")
    return {
        "connected": connected,
        "seconds": seconds,
        "connects_per_s": round(devices / seconds, 1) if seconds else None,
    }


class _GatewayDb:
    """Read-only queries on the gateway's SQLite database, from the bench's side."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def scalar(self, sql: str, *params: Any) -> int:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10) as db:
            return int(db.execute(sql, params).fetchone()[0] or 0)

    def online(self) -> int:
        return self.scalar("SELECT count(*) FROM devices WHERE online")

    def offline_events(self, *, cleared: bool | None = None) -> int:
        sql = "SELECT count(*) FROM events WHERE type = 'device_offline'"
        if cleared is not None:
            sql += " AND cleared_at IS NOT NULL" if cleared else " AND cleared_at IS NULL"
        return self.scalar(sql)

    def device_events(self) -> int:
        return self.scalar("SELECT count(*) FROM events WHERE type != 'device_offline'")

    def offline_times(self, device_ids: set[str]) -> list[tuple[int, datetime, datetime, datetime | None]]:
        """(event id, deadline, raised, cleared) of each dropped device's device_offline: the deadline is
        the ``last_seen`` it was raised on (the will's arrival) plus the window it names; raised is the
        row's insert, which a long transaction makes visible only at its commit."""
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute(
                "SELECT id, device_id, created_at, cleared_at, details FROM events WHERE type = 'device_offline'"
            ).fetchall()
        times = []
        for event_id, device_id, created_at, cleared_at, details in rows:
            if device_id not in device_ids:
                continue
            found = json.loads(details)
            deadline = datetime.fromisoformat(found["last_seen"]) + timedelta(
                seconds=found["offline_after_s"]
            )
            times.append((event_id, deadline, _utc(created_at), _utc(cleared_at) if cleared_at else None))
        return times


def _utc(stored: str) -> datetime:
    """The gateway stores UTC without a zone on SQLite."""
    value = datetime.fromisoformat(stored)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(statistics.median(values), 2),
        "p99": round(_percentile(values, 99), 2),
        "max": round(max(values), 2),
    }


_PASS = re.compile(
    r"presence pass: (\d+) device_offline raised, (\d+) ended in (\d+) transactions, longest ([\d.]+) s"
)


def _monitor_passes(log_path: Path, since: int) -> dict[str, Any]:
    """The presence monitor's passes logged after byte ``since`` of the gateway's log."""
    with log_path.open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    passes = [tuple(float(x) for x in m.groups()) for m in _PASS.finditer(text)]
    return {
        "passes": len(passes),
        "transactions": int(sum(p[2] for p in passes)),
        "longest_write_transaction_s": max((p[3] for p in passes), default=None),
    }


def _prepare_gateway_db(db_url: str, devices: list[Any]) -> str:
    """Schema, the fleet provisioned, an admin token (for ``/health``)."""
    from gateway.auth.roles import Role
    from gateway.auth.service import create_token
    from gateway.db import make_engine, make_sessionmaker, migrate
    from gateway.devices import service as devices_service

    engine = make_engine(db_url)
    try:
        migrate(engine)
        sessions = make_sessionmaker(engine)
        with sessions() as session, session.begin():
            for device in devices:
                devices_service.provision(
                    session=session,
                    device_id=device.device_id,
                    site=device.site,
                    device_type=device.device_type,
                )
            return create_token(session, name="bench", role=Role.ADMIN).token
    finally:
        engine.dispose()


def bench_fleet(
    work: Path,
    *,
    devices: int = 10_000,
    speed: float = 1.0,
    steady_s: float = 60.0,
    drop: int = 1_000,
    connect_concurrency: int = 100,
) -> dict[str, Any]:
    from simulators.dispatch_centre import DispatchCentreSimulator, new_secret
    from simulators.fleet.fleet import FleetOptions, fleet_devices

    options = FleetOptions(devices=devices, site=SITE, speed=speed)
    # Every device sends at least every 60 s of simulated time (water level, camera health): a
    # window of one and a half such gaps (wall time) plus a margin raises nothing in steady state.
    offline_after_s = round(1.5 * 60.0 / speed + 5.0, 1)
    reference = _reference_connect(work, devices=devices, speed=speed, concurrency=connect_concurrency)

    broker = MosquittoBroker(data_dir=work / "broker").start()
    dispatch = DispatchCentreSimulator(secret=new_secret()).start()
    data_dir = work / "gateway"
    data_dir.mkdir(parents=True, exist_ok=True)
    db_path = data_dir / "citywatch.db"
    token = _prepare_gateway_db(f"sqlite:///{db_path}", fleet_devices(options))
    db = _GatewayDb(db_path)
    gateway = GatewayProcess(
        data_dir,
        {
            "CITYWATCH_MQTT_URL": broker.url,
            "CITYWATCH_MQTT_CLIENT_ID": "gw-fleet-bench",
            "CITYWATCH_DEVICE_OFFLINE_AFTER_S": str(offline_after_s),
            "CITYWATCH_DISPATCH_URL": dispatch.url,
            "CITYWATCH_DISPATCH_SECRET": dispatch.secret,
        },
    )
    fleet: FleetProcess | None = None
    try:
        gateway.start().wait_ready(token)
        broker_usage = _broker_usage(broker)
        idle = gateway.usage()
        time.sleep(5.0)
        idle_cpu, idle_rss = idle.cpu_percent_since_mark(), idle.rss_mb()

        fleet = FleetProcess(
            _fleet_args(broker.url, devices, speed, connect_concurrency, "f"), log_path=work / "fleet.log"
        )
        started = time.monotonic()
        connected = fleet.command("wait-connected 600")["connected"]
        all_online = wait_until(lambda: db.online() >= devices, timeout_s=300, interval_s=0.2)
        online_s = time.monotonic() - started
        connect_s = fleet.command("stats")["all_connected_s"]

        # steady state
        time.sleep(min(10.0, steady_s / 4))  # the births' writes settle
        steady_gateway, steady_fleet = gateway.usage(), fleet.usage()
        broker_usage.mark()
        sent_before = sum(fleet.command("stats")["sent"].values())
        time.sleep(steady_s)
        sent_in_steady = sum(fleet.command("stats")["sent"].values()) - sent_before
        gateway_cpu = steady_gateway.cpu_percent_since_mark()
        gateway_rss = steady_gateway.rss_mb()
        fleet_cpu, broker_cpu = steady_fleet.cpu_percent_since_mark(), broker_usage.cpu_percent_since_mark()
        offline_in_steady = db.offline_events()

        # drop and reconnect storm
        gateway_log = data_dir / "gateway.log"
        log_mark = gateway_log.stat().st_size
        dropped = fleet.command(f"drop {drop}")["dropped"]
        dropped_at = time.monotonic()
        first_raised: list[float] = []

        def all_raised() -> bool:
            raised_now = db.offline_events()
            if raised_now and not first_raised:
                first_raised.append(time.monotonic() - dropped_at)
            return raised_now >= len(dropped)

        raised = wait_until(all_raised, timeout_s=offline_after_s * 3 + 60, interval_s=0.1)
        raised_s = time.monotonic() - dropped_at
        raise_passes = _monitor_passes(gateway_log, log_mark)
        log_mark = gateway_log.stat().st_size
        restore_began = datetime.now(UTC)
        storm = fleet.command("restore")
        restored_at = time.monotonic() - (storm.get("seconds_to_all_connected") or 0.0)
        cleared = wait_until(
            lambda: db.offline_events(cleared=False) == 0, timeout_s=offline_after_s * 2 + 60, interval_s=0.1
        )
        cleared_s = time.monotonic() - restored_at
        offline_events = db.offline_events()
        end_passes = _monitor_passes(gateway_log, log_mark)
        offline_times = db.offline_times(set(dropped))
        lateness = [(raised_at - deadline).total_seconds() for _, deadline, raised_at, _ in offline_times]
        raised_ats = [raised_at for _, _, raised_at, _ in offline_times]
        clear_after = [(c - restore_began).total_seconds() for *_, c in offline_times if c is not None]

        # drain and count
        fleet_peak = fleet.peak_rss_mb()
        final = fleet.stop()
        fleet = None
        telemetry_sent = sum(v for k, v in final.get("sent", {}).items() if k.startswith("telemetry:"))
        stored_all = wait_until(
            lambda: gateway.telemetry_count() >= telemetry_sent, timeout_s=120, interval_s=0.5
        )
        stored = gateway.telemetry_count()
        events_in_gateway = db.device_events()
        wait_until(
            lambda: (
                len({h.event.get("id") for h in dispatch.received()}) >= events_in_gateway + offline_events
            ),
            timeout_s=60,
        )
        delivered = len({h.event.get("id") for h in dispatch.received()})
        first_heard: dict[Any, float] = {}
        last_heard: dict[Any, float] = {}  # its end is the last webhook about it
        for hook in dispatch.received():
            event_id = hook.event.get("id")
            first_heard[event_id] = min(first_heard.get(event_id, hook.received_at), hook.received_at)
            last_heard[event_id] = max(last_heard.get(event_id, hook.received_at), hook.received_at)
        delivered_late = [
            first_heard[event_id] - deadline.timestamp()
            for event_id, deadline, _, _ in offline_times
            if event_id in first_heard
        ]
        end_delivered = [
            last_heard[event_id] - restore_began.timestamp()
            for event_id, _, _, cleared_at in offline_times
            if cleared_at is not None and event_id in last_heard
        ]
        gateway_peak = gateway.peak_rss_mb()
        broker_peak = _peak(broker)
    finally:
        if fleet is not None:
            fleet.stop()
        gateway.stop()
        dispatch.stop()
        broker.stop()
    per_k = 1000 / devices
    return {
        "devices": devices,
        "cameras": options.camera_count,
        "speed": speed,
        "offline_after_s": offline_after_s,
        "connect": {
            "all_connected": connected,
            "all_connected_s": connect_s,
            "connects_per_s": round(devices / connect_s, 1) if connect_s else None,
            "all_online_at_gateway": all_online,
            "all_online_at_gateway_s": round(online_s, 2),
            "reference_without_gateway_s": reference["seconds"],
            "reference_connects_per_s": reference["connects_per_s"],
        },
        "steady": {
            "seconds": steady_s,
            "messages_per_s": round(sent_in_steady / steady_s, 1),
            "gateway_cpu_percent": round(gateway_cpu, 1),
            "gateway_cpu_percent_per_1000_devices": round(gateway_cpu * per_k, 2),
            # per message: comparable across speeds (the per-device figure scales with --fleet-speed)
            "gateway_cpu_ms_per_message": (
                round(gateway_cpu * 10 / (sent_in_steady / steady_s), 3) if sent_in_steady else None
            ),
            "gateway_rss_mb": round(gateway_rss, 1),
            "gateway_rss_mb_per_1000_devices": round((gateway_rss - idle_rss) * per_k, 2),
            "reference_idle_gateway_cpu_percent": round(idle_cpu, 1),
            "reference_idle_gateway_rss_mb": round(idle_rss, 1),
            "broker_cpu_percent": round(broker_cpu, 1),
            "fleet_simulator_cpu_percent": round(fleet_cpu, 1),
            "device_offline_raised_in_steady_state": offline_in_steady,
        },
        "drop": {
            "dropped": len(dropped),
            "all_offline_raised": raised,
            "first_offline_raised_s": round(first_raised[0], 2) if first_raised else None,
            "all_offline_raised_s": round(raised_s, 2),
            "window_s": offline_after_s,
            # per device, after its own deadline (last_seen at the gateway, set by the will, + window)
            "raised_late_after_deadline_s": _spread(lateness),
            # the same at the dispatch centre: its first webhook about the event
            "delivered_late_after_deadline_s": _spread(delivered_late),
            "first_to_last_raised_s": (
                round((max(raised_ats) - min(raised_ats)).total_seconds(), 2) if raised_ats else None
            ),
            "monitor_raise": raise_passes,
            "monitor_end": end_passes,
            "storm_seconds_to_all_connected": storm.get("seconds_to_all_connected"),
            "storm_connects_per_s": storm.get("connects_per_s"),
            "all_offline_cleared": cleared,
            "all_offline_cleared_s_after_storm": round(cleared_s, 2),
            "cleared_after_restore_began_s": _spread(clear_after),
            "end_delivered_after_restore_began_s": _spread(end_delivered),
            "device_offline_events": offline_events,
            "duplicate_offline_events": offline_events - len(dropped),
        },
        "telemetry": {
            "sent": telemetry_sent,
            "stored": stored,
            "lost": telemetry_sent - stored,
            "all_stored": stored_all,
            "refusals_heard_by_devices": final.get("received", {}).get("refusal", 0),
        },
        "events": {
            "opened_by_devices": final.get("events_opened"),
            "gateway_events": events_in_gateway,
            "delivered_distinct": delivered,
            "duplicates_at_dispatch": dispatch.duplicates,
        },
        "peak_rss_mb": {
            "gateway": round(gateway_peak, 1),
            "broker": round(broker_peak, 1),
            "fleet_simulator": round(fleet_peak, 1),
        },
    }


def _broker_usage(broker: MosquittoBroker) -> Any:
    import psutil

    from citywatch.bench.processes import Usage

    assert broker._process is not None
    usage = Usage(psutil.Process(broker._process.pid))
    usage.mark()
    return usage


def _peak(broker: MosquittoBroker) -> float:
    from citywatch.bench.processes import peak_rss_mb

    return peak_rss_mb(broker._process.pid) if broker._process is not None else 0.0
