"""The culvert agent end to end through a real Mosquitto: in-process, and as `citywatch edge run` processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.codec import decode
from citywatch.protocol.messages import EventMessage
from citywatch.protocol.topics import Channel
from edge.clock import ScaledClock
from edge.config import CulvertAgentConfig, validate_config_dict
from edge.culvert.agent import CulvertAgent
from tests.support.mqtt import Collector, first_occurrences
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until


def culvert_config(broker_url: str, outbox: Path, **culvert: object) -> dict[str, object]:
    return {
        "kind": "culvert",
        "device": {"id": "c1", "site": "s1"},
        "mqtt": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        "outbox": {"path": str(outbox)},
        "sensor": {"type": "simulated", "scenario": "flash_flood", "peak_cm": 40, "start_after_s": 60},
        "culvert": {"mount_height_mm": 2000, **culvert},
    }


@pytest.mark.slow
def test_in_process_agent_raises_one_flood_event_through_the_broker(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    config = validate_config_dict(culvert_config(mosquitto.url, tmp_path / "outbox.sqlite3"))
    assert isinstance(config, CulvertAgentConfig)
    clock = ScaledClock(speed=1200, start=datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    agent = CulvertAgent(config, clock=clock).start()
    try:

        def flood_ended() -> bool:
            return any(
                m.json()["type"] == "water_level" and m.json()["phase"] == "end"
                for m in collector.on(Channel.EVENT)
            )

        wait_until(flood_ended, timeout_s=30, what="the simulated flood to end")
    finally:
        agent.stop()
    events = [decode(m.topic, m.payload).message for m in collector.on(Channel.EVENT)]
    floods = [e for e in events if isinstance(e, EventMessage) and e.type == "water_level"]
    assert len({e.event_id for e in floods}) == 1, "one flood, one event id"
    assert floods[0].phase == "new" and floods[-1].phase == "end"
    assert {e.severity for e in floods} >= {"notice", "warning", "critical"}
    assert abs(floods[-1].details["peak_cm"] - 40) <= 1.5  # simulator noise is 3 mm
    assert floods[-1].details["threshold_cm"] == 25
    telemetry = [m.json() for m in collector.on(Channel.TELEMETRY)]
    levels = [t for t in telemetry if t["measurement"] == "water_level"]
    assert any(t["fields"].get("level_cm", 0) > 35 for t in levels)
    assert any(t["measurement"] == "health" for t in telemetry)
    births = [m.json() for m in collector.on(Channel.STATE)]
    assert births[0]["status"] == "online" and births[0]["config_version"] == config.version


def write_config(path: Path, raw: dict[str, object]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(raw))
    return path


def start_agent(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "citywatch.cli", "edge", "run", str(config_path)],
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def queued_payloads(outbox: Path) -> list[bytes]:
    if not outbox.exists():
        return []
    with sqlite3.connect(outbox) as db:
        try:
            return [bytes(r[0]) for r in db.execute("SELECT payload FROM messages ORDER BY id")]
        except sqlite3.OperationalError:
            return []


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.parametrize("fsync", [True, False], ids=["fsync", "no-fsync"])
@pytest.mark.slow
def test_agent_killed_with_sigkill_delivers_its_queue_after_restart(
    mosquitto: MosquittoBroker, tmp_path: Path, fsync: bool
) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    raw = culvert_config(mosquitto.url, outbox, sample_interval_s=0.1, dry_interval_s=0.1, wet_interval_s=0.1)
    raw["outbox"] = {"path": str(outbox), "fsync": fsync}
    config_path = write_config(tmp_path / "culvert.yaml", raw)
    mosquitto.stop()  # the uplink is down: everything queues on disk
    agent = start_agent(config_path, tmp_path / "agent.log")
    try:
        wait_until(lambda: len(queued_payloads(outbox)) >= 20, timeout_s=30, what="20 queued messages")
        rss = rss_kb(agent.pid)
        print(f"\nculvert agent RSS while running: {rss / 1024:.1f} MB")
        assert rss < 60 * 1024, f"agent uses {rss} kB resident"
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
    finally:
        if agent.poll() is None:
            agent.kill()
    queued = queued_payloads(outbox)
    assert len(queued) >= 20

    mosquitto.start()
    collector = Collector(mosquitto.url)
    agent = start_agent(config_path, tmp_path / "agent.log")
    try:

        def all_delivered() -> bool:
            data = {m.payload for m in collector.on(Channel.TELEMETRY, Channel.EVENT)}
            return all(p in data for p in queued)

        wait_until(all_delivered, timeout_s=30, what="every message queued before the kill")
        data = first_occurrences([m.payload for m in collector.on(Channel.TELEMETRY, Channel.EVENT)])
        assert data[: len(queued)] == queued, "queued messages arrive first, in order"
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0
        wait_until(
            lambda: (
                collector.on(Channel.STATE) and collector.on(Channel.STATE)[-1].json()["status"] == "offline"
            ),
            what="offline state",
        )
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        collector.close()
    log = (tmp_path / "agent.log").read_text()
    assert "Traceback" not in log
    assert "connected to" in log


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citywatch.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def test_bad_config_lists_every_mistake_and_exits_2(tmp_path: Path) -> None:
    bad = write_config(
        tmp_path / "bad.yaml",
        {
            "kind": "culvert",
            "device": {"id": "Culvert 1", "site": "s1"},
            "mqtt": {"url": "http://broker"},
            "sensor": {"type": "serial", "baudrate": 1234},
            "culvert": {"mount_height_mm": 2000, "thresholds": {"notice_cm": 30}, "median_windw": 5},
        },
    )
    result = run_cli("edge", "run", str(bad))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    err = result.stderr
    assert str(bad) in err and "6 problem(s)" in err
    for expected in (
        "device.id:",
        "mqtt.url: MQTT URL 'http://broker' must start with mqtt://",
        "sensor.port: required field is missing",
        "sensor.baudrate: baud rate 1234",
        "culvert.thresholds: thresholds must rise",
        "culvert.median_windw: unknown field",
    ):
        assert expected in err, f"{expected!r} not in:\n{err}"
    # check (citywatch config check): the same mistakes, each at its line, with how to fix it
    result = run_cli("edge", "check", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    err = result.stderr
    assert "6 error(s) in 1 file(s)" in err
    for expected in (
        ": error: device.id:",
        ": error: mqtt.url: MQTT URL 'http://broker' must start with mqtt://",
        ": error: sensor.port: required key 'port' is missing",
        ": error: sensor.baudrate: baud rate 1234",
        ": error: culvert.thresholds: thresholds must rise",
        ": error: culvert.median_windw: unknown field (typo?) 'median_windw': did you mean 'median_window'?",
    ):
        assert f"{bad}:" in err and expected in err, f"{expected!r} not in:\n{err}"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("kind: culvert\ndevice:\n  id: c1\n  site: [s1\nculvert: {}\n")
    result = run_cli("edge", "run", str(bad))
    assert result.returncode == 2
    assert "line " in result.stderr and "YAML syntax error" in result.stderr
    assert "Traceback" not in result.stderr


def test_example_config_checks_and_schema_is_current(tmp_path: Path) -> None:
    result = run_cli("edge", "check", "firmware_configs/culvert-example.yaml")
    assert result.returncode == 0, result.stderr
    assert "config version" in result.stdout
    fresh = tmp_path / "schema.json"
    assert run_cli("edge", "schema", "-o", str(fresh)).returncode == 0
    committed = PROJECT_ROOT / "firmware_configs/schema/device-config.schema.json"
    assert fresh.read_text() == committed.read_text(), "run `citywatch edge schema` and commit the result"


def test_missing_serial_port_is_a_clear_start_error(tmp_path: Path) -> None:
    raw = culvert_config("mqtt://127.0.0.1:1", tmp_path / "outbox.sqlite3")
    raw["sensor"] = {"type": "serial", "port": str(tmp_path / "ttyUSB9")}
    result = run_cli("edge", "run", str(write_config(tmp_path / "serial.yaml", raw)))
    assert result.returncode == 2
    assert "cannot start" in result.stderr and "ttyUSB9" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_restarted_agent_ends_the_flood_event_it_left_open(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    from edge.events import OpenEventJournal

    def sent() -> dict[tuple[str, int], EventMessage]:
        events = (decode(m.topic, m.payload).message for m in collector.on(Channel.EVENT))
        return {(e.event_id, e.seq): e for e in events if isinstance(e, EventMessage)}  # QoS 1 repeats

    outbox = tmp_path / "outbox.sqlite3"
    flood = validate_config_dict(culvert_config(mosquitto.url, outbox))
    assert isinstance(flood, CulvertAgentConfig)
    clock = ScaledClock(speed=1200, start=datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    agent = CulvertAgent(flood, clock=clock).start()
    try:
        wait_until(lambda: any(e.type == "water_level" for e in sent().values()), what="the flood event")
    finally:
        agent.stop()  # mid-flood: the event stays open, as after a power cut
    [event_id] = {e.event_id for e in sent().values() if e.type == "water_level"}
    last = max((e for e in sent().values() if e.event_id == event_id), key=lambda e: e.seq)
    assert last.phase != "end"

    raw = culvert_config(mosquitto.url, outbox)
    raw["sensor"] = {"type": "simulated", "scenario": "dry"}  # the water went down meanwhile
    dry = validate_config_dict(raw)
    assert isinstance(dry, CulvertAgentConfig)
    agent = CulvertAgent(dry, clock=ScaledClock(speed=1200, start=clock.now())).start()
    try:
        wait_until(lambda: (event_id, last.seq + 1) in sent(), what="the flood event's end")
    finally:
        agent.stop()
    end = sent()[(event_id, last.seq + 1)]
    assert end.phase == "end" and end.severity == last.severity
    assert end.details == {**last.details, "end_reason": "agent_restarted"}
    assert OpenEventJournal.beside(outbox).read() == {}
