"""The uplink through a real Mosquitto: birth/will, ordered delivery, broker restarts, commands.

No gateway here: the uplinks keep a message until the broker's PUBACK (``receipts=None``, what a device
that ignores receipts does). Keeping it until the gateway's receipt: tests/edge/test_receipts.py.
"""

from __future__ import annotations

import json
import os
import resource
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citywatch.broker.mosquitto import MosquittoBroker, free_port
from citywatch.mqtt import MqttOptions
from citywatch.protocol.messages import (
    CommandMessage,
    ConfigMessage,
    DeviceType,
    EventMessage,
    EventPhase,
    EventType,
    Severity,
    TelemetryMessage,
)
from citywatch.protocol.topics import Channel, Topic
from edge.outbox import Outbox
from edge.uplink import Uplink
from edge.uplink.pump import ReceiptOptions
from tests.support.mqtt import Collector, first_occurrences
from tests.support.polling import wait_until

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def telemetry(i: int) -> TelemetryMessage:
    return TelemetryMessage(
        device_id="c1", ts=T0 + timedelta(seconds=i), measurement="water_level", fields={"level_cm": float(i)}
    )


def event(seq: int) -> EventMessage:
    return EventMessage(
        device_id="c1",
        event_id="flood0001",
        seq=seq,
        phase=EventPhase.NEW if seq == 0 else EventPhase.UPDATE,
        type=EventType.WATER_LEVEL,
        severity=Severity.NOTICE,
        confidence=1.0,
        ts=T0 + timedelta(seconds=seq),
        started_at=T0,
        details={"level_cm": 10.0, "peak_cm": 10.0 + seq, "threshold_cm": 10.0},
    )


def make_uplink(
    broker: MosquittoBroker, tmp_path: Path, *, receipts: ReceiptOptions | None = None, **kwargs: object
) -> Uplink:
    return Uplink(
        MqttOptions.from_url(broker.url),
        "s1",
        "c1",
        DeviceType.CULVERT,
        "cfg1",
        tmp_path / "outbox.sqlite3",
        reconnect_min_s=0.1,
        reconnect_max_s=0.5,
        receipts=receipts,
        **kwargs,  # type: ignore[arg-type]
    )


def test_birth_telemetry_and_events_arrive_in_order(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    uplink = make_uplink(mosquitto, tmp_path).start()
    try:
        sent = []
        for i in range(30):
            message = event(i // 10) if i % 10 == 0 else telemetry(i)
            uplink.send(Channel.EVENT if isinstance(message, EventMessage) else Channel.TELEMETRY, message)
            sent.append(message.to_json())
        wait_until(
            lambda: len(collector.on(Channel.TELEMETRY)) + len(collector.on(Channel.EVENT)) >= 30,
            what="30 messages",
        )
        wait_until(lambda: uplink.queue_depth == 0, what="outbox drained")
        data = [m.payload for m in collector.on(Channel.TELEMETRY, Channel.EVENT)]
        assert first_occurrences(data) == sent
        births = [m.json() for m in collector.on(Channel.STATE)]
        assert births[0]["status"] == "online" and births[0]["session"] == 1
        assert births[0]["config_version"] == "cfg1" and births[0]["device_type"] == "culvert"
        assert uplink.connected
    finally:
        uplink.stop()
    offline = collector.on(Channel.STATE)[-1].json()
    assert offline["status"] == "offline" and offline["session"] == 1


def test_broker_restart_mid_stream_loses_nothing(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    uplink = make_uplink(mosquitto, tmp_path).start()
    try:
        sent = []
        for i in range(10):
            uplink.send(Channel.TELEMETRY, telemetry(i))
            sent.append(telemetry(i).to_json())
        wait_until(lambda: uplink.queue_depth == 0, what="first batch delivered")
        mosquitto.stop()
        wait_until(lambda: not uplink.connected, what="uplink notices the broker is gone")
        for i in range(10, 40):
            message = event(i - 10) if i % 10 == 0 else telemetry(i)
            uplink.send(Channel.EVENT if isinstance(message, EventMessage) else Channel.TELEMETRY, message)
            sent.append(message.to_json())
        assert uplink.queue_depth == 30  # queued on disk while the broker is down
        mosquitto.start()
        wait_until(lambda: uplink.queue_depth == 0, timeout_s=30, what="outbox drained after restart")
        wait_until(
            lambda: (
                len(first_occurrences([m.payload for m in collector.on(Channel.TELEMETRY, Channel.EVENT)]))
                >= 40
            ),
            timeout_s=30,
            what="every message at the collector",
        )
        data = first_occurrences([m.payload for m in collector.on(Channel.TELEMETRY, Channel.EVENT)])
        assert data == sent, "every message, in the order sent"
        sessions = [
            m.json()["session"] for m in collector.on(Channel.STATE) if m.json()["status"] == "online"
        ]
        assert sessions[0] == 1 and sessions[-1] > 1, "a new, higher session number for the new connection"
    finally:
        uplink.stop()


def test_commands_and_config_pushes_are_acked(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    seen: list[str] = []

    def on_command(command: CommandMessage) -> tuple[bool, str] | None:
        seen.append(command.command)
        return (True, "reporting") if command.command == "report_now" else None

    uplink = make_uplink(mosquitto, tmp_path, on_command=on_command).start()
    try:
        uplink.wait_connected(10)
        wait_until(lambda: collector.on(Channel.STATE), what="birth")
        cmd_topic = str(Topic("s1", "c1", Channel.CMD))
        for cmd_id, name in (("a1", "ping"), ("a2", "report_now"), ("a3", "self_destruct")):
            command = CommandMessage(cmd_id=cmd_id, ts=datetime.now(UTC), command=name)
            collector.publish(cmd_topic, command.to_json())
        bad_config = ConfigMessage(
            cmd_id="c1",
            ts=datetime.now(UTC),
            config_version="v2",
            config={"kind": "culvert", "device": {"id": "X"}},
        )
        collector.publish(str(Topic("s1", "c1", Channel.CONFIG)), bad_config.to_json())
        good = {
            "kind": "culvert",
            "device": {"id": "c1", "site": "s1"},
            "sensor": {"type": "simulated"},
            "culvert": {"mount_height_mm": 2000},
        }
        good_config = ConfigMessage(cmd_id="c2", ts=datetime.now(UTC), config_version="v3", config=good)
        collector.publish(str(Topic("s1", "c1", Channel.CONFIG)), good_config.to_json())
        wait_until(lambda: len(collector.on(Channel.ACK)) >= 5, what="5 acks")
        acks = collector.on(Channel.ACK)
        by_id = {a.json()["cmd_id"]: a.json() for a in acks}
        assert by_id["a1"]["ok"] and by_id["a1"]["message"] == "pong"
        assert by_id["a2"]["ok"]
        assert not by_id["a3"]["ok"] and "unknown command" in by_id["a3"]["message"]
        assert not by_id["c1"]["ok"]
        problems = by_id["c1"]["message"]
        assert "device.id" in problems and "device.site" in problems and "sensor" in problems
        assert by_id["c2"]["ok"]
        assert seen == ["report_now", "self_destruct"]
        assert json.loads(acks[0].payload)["device_id"] == "c1"
    finally:
        uplink.stop()


def test_unreachable_broker_queues_durably_and_retries(tmp_path: Path) -> None:
    uplink = Uplink(
        MqttOptions(port=free_port()),
        "s1",
        "c1",
        DeviceType.CULVERT,
        "cfg1",
        tmp_path / "o.sqlite3",
        reconnect_min_s=0.05,
        reconnect_max_s=0.1,
        receipts=None,
    ).start()
    for i in range(5):
        uplink.send(Channel.TELEMETRY, telemetry(i))
    assert uplink.queue_depth == 5 and not uplink.connected
    uplink.stop(flush_timeout_s=0.1)
    outbox = Outbox(tmp_path / "o.sqlite3")
    assert [r.payload for r in outbox.peek(limit=10)] == [telemetry(i).to_json() for i in range(5)]
    outbox.close()


def test_uplink_works_with_descriptors_above_1023(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    """A simulated fleet of hundreds of devices in one process: select() would fail above fd 1023."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the descriptor limit ({hard}) is too low to reach fd 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    uplink = make_uplink(mosquitto, tmp_path).start()
    try:
        assert uplink.wait_connected(10), "the uplink did not connect"
        uplink.send(Channel.TELEMETRY, telemetry(1))
        wait_until(lambda: collector.on(Channel.TELEMETRY), what="the telemetry message")
    finally:
        uplink.stop()
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow  # waits out a one-second expiry
def test_a_command_queued_past_its_expiry_is_not_run_and_is_acked_as_expired(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    """A persistent session delivers what was queued while the device was away, however late."""
    run: list[str] = []

    def on_command(command: CommandMessage) -> tuple[bool, str] | None:
        run.append(command.cmd_id)
        return True, "reporting"

    cmd_topic = str(Topic("s1", "c1", Channel.CMD))
    uplink = make_uplink(mosquitto, tmp_path, on_command=on_command).start()
    try:
        assert uplink.wait_subscribed(10), "the broker never acknowledged the command subscription"
        collector.publish(
            cmd_topic, CommandMessage(cmd_id="hello", ts=datetime.now(UTC), command="ping").to_json()
        )
        wait_until(lambda: collector.on(Channel.ACK), what="the ping answered: subscribed")
    finally:
        uplink.stop()  # away; the broker keeps its session and queues its commands
    sent = datetime.now(UTC)
    for cmd_id, expires_in_s in (("late-1", 1.0), ("fresh-1", 600.0)):
        command = CommandMessage(
            cmd_id=cmd_id, ts=sent, command="report_now", expires=sent + timedelta(seconds=expires_in_s)
        )
        collector.publish(cmd_topic, command.to_json())
    wait_until(lambda: datetime.now(UTC) > sent + timedelta(seconds=1.1), what="the first command expired")

    uplink = make_uplink(mosquitto, tmp_path, on_command=on_command).start()  # the same client id
    try:
        wait_until(lambda: len(collector.on(Channel.ACK)) >= 3, what="both queued commands answered")
    finally:
        uplink.stop()
    assert run == ["fresh-1"], "the expired command was run"
    by_id = {ack.json()["cmd_id"]: ack.json() for ack in collector.on(Channel.ACK)}
    assert by_id["late-1"]["ok"] is False and by_id["late-1"]["reason"] == "expired"
    assert "expired" in by_id["late-1"]["message"]
    assert by_id["fresh-1"]["ok"] is True and "reason" not in by_id["fresh-1"]
