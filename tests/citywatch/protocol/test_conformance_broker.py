"""The conformance kit against a real Mosquitto: the project's culvert agent passes it; a stock paho client
publishing what the page forbids is caught, message by message, with exit status 1.

The kit runs as a vendor runs it: ``python -m citywatch.cli protocol check ...`` in its own process,
stopped with Ctrl-C (SIGINT) or by ``--messages``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.mqtt import MqttOptions
from citywatch.protocol.topics import Channel
from edge.clock import ScaledClock
from edge.config import CulvertAgentConfig, validate_config_dict
from edge.culvert.agent import CulvertAgent
from tests.citywatch.protocol.conformance_support import event, iso, state, telemetry
from tests.support.mqtt import Collector
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow


class Kit:
    """``citywatch protocol check`` in its own process, its JSON Lines output parsed at the end."""

    def __init__(self, broker_url: str, *options: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "citywatch.cli",
                "protocol",
                "check",
                "--broker",
                broker_url,
                "--json",
                *options,
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        first = self.process.stderr.readline()  # "watching ..." once subscribed
        assert first.startswith("watching "), f"the kit did not start: {first}{self.process.stderr.read()}"
        self.findings: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.status: int | None = None

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def wait(self, timeout_s: float = 30) -> int:
        out, err = self.process.communicate(timeout=timeout_s)
        self.status = self.process.returncode
        lines = [json.loads(line) for line in out.splitlines()]
        self.findings = [line for line in lines if line["kind"] == "finding"]
        summaries = [line for line in lines if line["kind"] == "summary"]
        assert len(summaries) == 1, f"one summary expected; stdout {out!r}, stderr {err!r}"
        self.summary = summaries[0]
        return self.status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()

    def rules(self, severity: str | None = None) -> list[str]:
        return [f["rule"] for f in self.findings if severity is None or f["severity"] == severity]


@contextmanager
def kit(broker_url: str, *options: str) -> Iterator[Kit]:
    running = Kit(broker_url, *options)
    try:
        yield running
    finally:
        running.kill()


def culvert_agent(broker_url: str, outbox: Path) -> CulvertAgent:
    raw = {
        "kind": "culvert",
        "device": {"id": "c1", "site": "s1"},
        "mqtt": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        "outbox": {"path": str(outbox)},
        "sensor": {"type": "simulated", "scenario": "flash_flood", "peak_cm": 30, "start_after_s": 30},
        "culvert": {"mount_height_mm": 2000},
    }
    config = validate_config_dict(raw)
    assert isinstance(config, CulvertAgentConfig)
    # Device time runs 3000 times faster from a day ago: a whole flood in seconds, never ahead of the kit.
    clock = ScaledClock(speed=3000, start=datetime.now(UTC) - timedelta(days=1))
    return CulvertAgent(config, clock=clock)


def test_the_culvert_agent_through_a_flood_and_a_restart_conforms(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite3"

    def states() -> list[dict[str, Any]]:
        return [m.json() for m in collector.on(Channel.STATE)]

    with kit(mosquitto.url, "--site", "s1", "--device", "c1", "--probe") as check:
        agent = culvert_agent(mosquitto.url, outbox).start()
        try:

            def flood_ended() -> bool:
                return any(m.json()["phase"] == "end" for m in collector.on(Channel.EVENT))

            wait_until(flood_ended, timeout_s=30, what="the simulated flood to end")
            wait_until(lambda: len(collector.on(Channel.ACK)) >= 2, timeout_s=10, what="the probes' acks")
            # A command as the gateway sends it: the kit expects its ack.
            command = {
                "v": 1,
                "cmd_id": "gw-1",
                "ts": iso(datetime.now(UTC)),
                "command": "report_now",
                "args": {},
            }
            collector.publish("citywatch/v1/s1/c1/cmd", json.dumps(command).encode())
            wait_until(lambda: len(collector.on(Channel.ACK)) >= 3, timeout_s=10, what="the command's ack")
        finally:
            # A clean shutdown: the device's own offline state. Not waiting for receipts (no gateway here):
            # what is unconfirmed is sent again on the next connection, as the same messages.
            agent.stop(flush_timeout_s=0)
        # The same unit again (same outbox, so the next session number): a second connection.
        agent = culvert_agent(mosquitto.url, outbox).start()
        try:
            wait_until(
                lambda: [s["status"] for s in states()][-2:] == ["offline", "online"], what="the 2nd birth"
            )
        finally:
            agent.stop(flush_timeout_s=0)
        wait_until(lambda: states()[-1]["status"] == "offline", timeout_s=10, what="offline")
        time.sleep(0.5)  # the kit hears the broker as the collector does; give it the same moment
        check.interrupt()
        status = check.wait()
    assert check.rules("error") == [], check.findings
    assert status == 0
    summary = check.summary
    assert summary["errors"] == 0 and summary["exit_status"] == 0
    assert summary["devices"] == ["c1"]
    assert summary["by_channel"]["event"] >= 3, "new, updates and end were all judged"
    assert summary["by_channel"]["telemetry"] > 0
    assert [(s["status"], s["session"]) for s in states()] == [
        ("online", 1),
        ("offline", 1),
        ("online", 2),
        ("offline", 2),
    ]
    assert summary["by_channel"]["state"] == 4
    assert summary["by_rule"].get("probe.passed") == 2, "ping answered ok, the expired command refused"
    assert summary["by_channel"]["ack"] == 3
    assert summary["messages"] == len(collector.messages)


def test_a_stock_client_breaking_the_page_is_caught_message_by_message(mosquitto: MosquittoBroker) -> None:
    options = MqttOptions.from_url(mosquitto.url)
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"vendor-{uuid.uuid4().hex[:6]}")
    with kit(mosquitto.url, "--site", "s1", "--device", "c1", "--messages", "6") as check:
        now = datetime.now(UTC)  # after the kit began watching: the event below began while it watched
        sent = [
            # (what it breaks, qos, retain, channel, payload)
            ("mqtt.retain", 1, False, Channel.STATE, state("online", 1, now)),
            ("mqtt.qos", 0, False, Channel.TELEMETRY, telemetry(now)),
            ("payload.version", 1, False, Channel.TELEMETRY, telemetry(now, v=1.0)),
            ("event.unknown", 1, False, Channel.EVENT, event("update", 1, ts=now, started_at=now)),
            ("ts.ahead", 1, False, Channel.TELEMETRY, telemetry(now.replace(year=2099))),
            ("mqtt.retain", 1, True, Channel.TELEMETRY, telemetry(now, level_cm=2.0)),
        ]
        device.connect(options.host, options.port)
        device.loop_start()
        try:
            for _, qos, retain, channel, payload in sent:
                info = device.publish(
                    f"citywatch/v1/s1/c1/{channel.value}", json.dumps(payload), qos=qos, retain=retain
                )
                info.wait_for_publish(timeout=5)
            status = check.wait()
        finally:
            device.publish("citywatch/v1/s1/c1/telemetry", b"", qos=1, retain=True).wait_for_publish(5)
            device.disconnect()
            device.loop_stop()
    assert status == 1
    errors = [(f["message_no"], f["rule"]) for f in check.findings if f["severity"] == "error"]
    assert errors == [(number, rule) for number, (rule, *_) in enumerate(sent, start=1)]
    assert check.summary["errors"] == len(sent)
    assert check.summary["exit_status"] == 1
    assert all(f["topic"].startswith("citywatch/v1/s1/c1/") for f in check.findings)


def test_what_the_broker_retains_is_judged_on_subscribing(mosquitto: MosquittoBroker) -> None:
    """A telemetry message left retained by a device is still delivered to every new subscriber: caught."""
    options = MqttOptions.from_url(mosquitto.url)
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    device.connect(options.host, options.port)
    device.loop_start()
    try:
        birth = state("online", 3, datetime.now(UTC))
        device.publish("citywatch/v1/s1/c1/state", json.dumps(birth), qos=1, retain=True).wait_for_publish(5)
        stale = telemetry(datetime.now(UTC))
        device.publish(
            "citywatch/v1/s1/c1/telemetry", json.dumps(stale), qos=1, retain=True
        ).wait_for_publish(5)
        with kit(mosquitto.url, "--site", "s1", "--messages", "2") as check:
            assert check.wait() == 1
    finally:
        device.publish("citywatch/v1/s1/c1/telemetry", b"", qos=1, retain=True).wait_for_publish(5)
        device.disconnect()
        device.loop_stop()
    errors = [(f["topic"], f["rule"]) for f in check.findings if f["severity"] == "error"]
    assert errors == [("citywatch/v1/s1/c1/telemetry", "mqtt.retain")]
    assert check.summary["devices"] == ["c1"] and check.summary["by_channel"] == {"state": 1, "telemetry": 1}
