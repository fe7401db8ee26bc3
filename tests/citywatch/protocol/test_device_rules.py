"""docs/protocol.md, "Rules for devices", says what the citywatch agents and the gateway do: the numbers it
quotes are the code's defaults, the agents' events end as it says, the example answers are what the
agents send, and a will carries the session and connect time of its birth (through a real Mosquitto).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.mqtt import MqttOptions
from citywatch.protocol.messages import (
    AckMessage,
    CommandMessage,
    ConfigMessage,
    DeviceType,
    EventMessage,
    EventPhase,
    Severity,
    StateMessage,
    WaterLevelDetails,
)
from citywatch.protocol.topics import Channel, Topic
from edge.config import MqttSection, TelemetrySection
from edge.culvert.analyzer import FloodDetector
from edge.culvert.config import CulvertSection
from edge.uplink import Uplink
from edge.uplink.commands import Inbox
from edge.uplink.config_push import validate_pushed_config
from edge.uplink.connection import Backoff
from edge.uplink.identity import DeviceIdentity
from edge.vision.config import EbikeAnalyzerConfig
from gateway.settings import Settings
from tests.support.mqtt import Collector
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until

DOC = PROJECT_ROOT / "docs" / "protocol.md"
EXAMPLES = PROJECT_ROOT / "docs" / "examples" / "v1"


def _rules() -> str:
    text = DOC.read_text()
    start = text.index("## Rules for devices")
    return " ".join(text[start : text.index("\n## ", start + 1)].split())


def _example(name: str) -> dict[str, object]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def _default(model: type, name: str) -> object:
    return model.model_fields[name].default


def test_the_numbers_on_the_page_are_the_defaults() -> None:
    keepalive = _default(MqttSection, "keepalive_s")
    first, longest = _default(MqttSection, "reconnect_min_s"), _default(MqttSection, "reconnect_max_s")
    culvert = CulvertSection(mount_height_mm=2200)
    thresholds = culvert.thresholds
    phrases = [
        f"`mqtt.keepalive_s`, {keepalive:g} s",
        f"shows `offline` within {1.5 * keepalive:g} s",  # type: ignore[operator]
        f"{first:g} s, then doubling up to {longest:g} s",
        f"`health` telemetry every {_default(TelemetrySection, 'health_interval_s'):g} s",
        f"`water_level` every {culvert.dry_interval_s:g} s when dry, {culvert.wet_interval_s:g} s when wet",
        f"`CITYWATCH_DEVICE_OFFLINE_AFTER_S` ({_default(Settings, 'DEVICE_OFFLINE_AFTER_S'):g} s by default)",
        f"`CITYWATCH_CLOCK_SKEW_S` ({_default(Settings, 'CLOCK_SKEW_S'):g} s)",
        f"`CITYWATCH_COMMAND_EXPIRY_S` ({_default(Settings, 'COMMAND_EXPIRY_S'):g} s)",
        f"({thresholds.notice_cm:g} \N{MINUS SIGN} {thresholds.hysteresis_cm:g} = "
        f"{thresholds.notice_cm - thresholds.hysteresis_cm:g} cm) for `culvert.end_hold_s` ({culvert.end_hold_s:g} s)",
        f"`culvert.rise_alarm_cm_per_min`, {culvert.rise_alarm_cm_per_min:g} cm/min: below "
        f"{culvert.rise_alarm_cm_per_min / 2:g} cm/min",
        f"`culvert.relock_samples` ({culvert.relock_samples})",
        f"`gone_after_s` ({_default(EbikeAnalyzerConfig, 'gone_after_s'):g} s)",
    ]
    rules = _rules()
    missing = [phrase for phrase in phrases if phrase not in rules]
    assert not missing, f"docs/protocol.md, Rules for devices, does not say: {missing}"


def test_reconnect_delays_double_from_the_first_to_the_longest() -> None:
    backoff = Backoff(_default(MqttSection, "reconnect_min_s"), _default(MqttSection, "reconnect_max_s"))  # type: ignore[arg-type]
    delays = [backoff.first_s]
    while len(delays) < 9:
        delays.append(backoff.after(delays[-1]))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_each_reconnect_wait_is_jittered_between_half_the_delay_and_the_delay() -> None:
    waits = [Backoff.jittered(8.0) for _ in range(200)]
    assert all(4.0 <= wait <= 8.0 for wait in waits)
    assert max(waits) - min(waits) > 1.0, "the waits do not spread"
    assert Backoff.jittered(8.0, uniform=lambda low, high: low) == 4.0


def test_a_flood_ends_with_the_highest_severity_and_full_details() -> None:
    """The agents' flood: notice, warning, falling back; ``end`` after end_hold_s below 8 cm."""
    options = CulvertSection(mount_height_mm=2200)
    flood = FloodDetector(options, "culvert-01")
    t0 = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
    levels = [5.0, 10.6, 12.0, 15.3, 18.9, 16.0, 11.0, 7.4] + [7.4] * 100
    sent: list[EventMessage] = []
    for i, level in enumerate(levels):
        ts = t0 + timedelta(seconds=30 * i)
        message = flood.observe(ts, ts.timestamp(), level)
        if message is not None:
            sent.append(message)
    phases = [m.phase for m in sent]
    assert phases[0] is EventPhase.NEW and phases[-1] is EventPhase.END and phases.count(EventPhase.END) == 1
    end = sent[-1]
    assert [m.seq for m in sent] == list(range(len(sent)))
    assert {m.started_at for m in sent} == {sent[0].started_at}
    assert end.severity is Severity.WARNING == max((m.severity for m in sent), key=lambda s: s.rank)
    assert end.details == {"level_cm": 7.4, "peak_cm": 18.9, "threshold_cm": options.thresholds.warning_cm}
    assert end.snapshot_id is None
    first_below = next(i for i, level in enumerate(levels) if i > 1 and level < 8)
    assert (end.ts - (t0 + timedelta(seconds=30 * first_below))).total_seconds() >= options.end_hold_s
    example = _example("event/water_level-end")
    # Every field but end_reason (only an end after the agent restarted has it).
    fields = set(WaterLevelDetails.model_fields) - {"end_reason"}
    assert set(example["details"]) == set(end.details) == fields  # type: ignore[call-overload]
    assert (example["phase"], example["severity"]) == ("end", "warning")


def _inbox(clock: datetime, *, config_version: str = "9602720f69a5") -> Inbox:
    device = DeviceIdentity("district-7", "culvert-01", DeviceType.CULVERT, config_version, "0.1.0")
    return Inbox(device, None, validate_pushed_config, clock=lambda: clock)


def _answer(inbox: Inbox, channel: Channel, payload: dict[str, object]) -> dict[str, object]:
    topic = str(Topic("district-7", "culvert-01", channel))
    ack = inbox.answer(topic, json.dumps(payload).encode())
    assert isinstance(ack, AckMessage)
    return json.loads(ack.to_json())


def test_the_example_answers_are_what_the_agents_send() -> None:
    expired = _example("ack/expired")
    late = CommandMessage.model_validate(_example("cmd/report_now")).model_copy(
        update={"cmd_id": expired["cmd_id"]}
    )
    arrived = datetime.fromisoformat(str(expired["ts"]))
    assert _answer(_inbox(arrived), Channel.CMD, json.loads(late.to_json())) == expired

    unknown = _example("ack/unknown_command")
    command = _example("cmd/release_door") | {"cmd_id": unknown["cmd_id"], "expires": None}
    assert _answer(_inbox(datetime.fromisoformat(str(unknown["ts"]))), Channel.CMD, command) == unknown

    for config, answer in (
        ("config/culvert-invalid", "ack/config-invalid"),
        ("config/culvert", "ack/config-ok"),
    ):
        push, expected = _example(config), _example(answer)
        ConfigMessage.model_validate(push)
        assert push["cmd_id"] == expected["cmd_id"]
        answered = datetime.fromisoformat(str(expected["ts"]))
        assert _answer(_inbox(answered), Channel.CONFIG, push) == expected


def test_a_will_carries_its_births_session_and_the_time_the_connection_was_made(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Another client taking over the device's client id drops its connection: the broker sends the will."""
    with Collector(mosquitto.url, "citywatch/v1/s1/c1/state") as collector:
        uplink = Uplink(
            MqttOptions.from_url(mosquitto.url),
            "s1",
            "c1",
            DeviceType.CULVERT,
            "cfg1",
            tmp_path / "outbox.sqlite3",
            reconnect_min_s=0.2,
            reconnect_max_s=0.5,
            receipts=None,
        ).start()
        try:
            wait_until(lambda: len(collector.of(StateMessage)) >= 1, what="the birth")
            intruder = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id="citywatch-s1-c1", protocol=mqtt.MQTTv311
            )
            options = MqttOptions.from_url(mosquitto.url)
            intruder.connect(options.host, options.port)
            intruder.loop_start()
            try:
                wait_until(
                    lambda: any(s.status == "offline" for s in collector.of(StateMessage)), what="the will"
                )
            finally:
                intruder.loop_stop()
                intruder.disconnect()
            wait_until(lambda: collector.of(StateMessage)[-1].session == 2, what="the next birth")
        finally:
            uplink.stop()
    states = collector.of(StateMessage)
    birth, will = states[0], next(s for s in states if s.status == "offline")
    assert (birth.status, birth.session, will.session) == ("online", 1, 1)
    assert will.ts <= birth.ts  # fixed before CONNECT: not the time of the drop
    assert (will.device_type, will.firmware_version, will.config_version) == (
        birth.device_type,
        birth.firmware_version,
        birth.config_version,
    )
