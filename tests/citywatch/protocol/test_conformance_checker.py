"""The conformance checker, fed by hand: every rule has a sequence that breaks it and a neighbour that does not.

Each scenario returns the findings of its last step (a message, or the end of the watch): the rule must
be among them, with its severity. Its neighbour differs in the one thing that matters and must not
raise the rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from citywatch.protocol.conformance import RULE_BY_ID, RULES, Finding, Level
from citywatch.protocol.conformance.probes import Probe, ProbeKind, probe_commands
from citywatch.protocol.messages import CommandMessage
from citywatch.protocol.topics import Channel
from tests.citywatch.protocol.conformance_support import (
    ARRIVAL,
    DEVICE,
    SITE,
    WATCH_START,
    Feed,
    ack,
    at,
    command,
    event,
    evidence,
    iso,
    rule_ids,
    state,
    telemetry,
    topic,
)

Scenario = Callable[[Feed], list[Finding]]


def _probe(feed: Feed, kind: ProbeKind) -> Probe:
    probes = {p.kind: p for p in probe_commands(DEVICE, now=ARRIVAL, timeout=timedelta(seconds=10))}
    feed.checker.probe_sent(probes[kind])
    return probes[kind]


def _answered(feed: Feed, kind: ProbeKind, *, ok: bool, reason: str | None = None) -> list[Finding]:
    feed.birth()
    probe = _probe(feed, kind)
    return feed.send(Channel.ACK, ack(probe.command.cmd_id, ok=ok, reason=reason, ts=ARRIVAL))


def _second_open(feed: Feed, *, reconnect: bool = False, end_first: bool = False) -> list[Finding]:
    feed.birth(session=1)
    feed.send(Channel.EVENT, event("new", 0, "evt-aaaa"))
    if end_first:
        feed.send(Channel.EVENT, event("end", 1, "evt-aaaa", ts=at(5)))
    if reconnect:
        feed.birth(session=2, ts=at(8))
    return feed.send(Channel.EVENT, event("new", 0, "evt-bbbb", ts=at(10), started_at=at(10)))


def _outbox(
    feed: Feed, first: tuple[int, float], then: tuple[int, float], *, same: bool = False
) -> list[Finding]:
    feed.birth()
    (seq_a, t_a), (seq_b, t_b) = first, then
    feed.send(Channel.TELEMETRY, telemetry(at(t_a), outbox_seq=seq_a))
    level = 1.0 if same else 2.0
    return feed.send(Channel.TELEMETRY, telemetry(at(t_b), level_cm=level, outbox_seq=seq_b))


def _flood(feed: Feed, *, end_severity: str) -> list[Finding]:
    """A flood that reached warning, and its end."""
    feed.birth()
    feed.send(Channel.EVENT, event("new", 0, severity="notice"))
    feed.send(Channel.EVENT, event("update", 1, ts=at(5), level_cm=16.0, severity="warning"))
    return feed.send(Channel.EVENT, event("end", 2, ts=at(9), level_cm=7.0, severity=end_severity))


def _command_to_online_device(feed: Feed, *, answered: bool) -> list[Finding]:
    feed.birth()
    feed.send(Channel.CMD, command("c-9"), arrived=ARRIVAL)
    if answered:
        feed.send(Channel.ACK, ack("c-9"), arrived=ARRIVAL + timedelta(seconds=9))
    return feed.checker.overdue(ARRIVAL + timedelta(seconds=10))


def _sized(*, limit_over_size: int) -> list[Finding]:
    """A payload against a limit of its size plus ``limit_over_size`` bytes."""
    payload = json.dumps(telemetry()).encode()
    return Feed(max_payload_bytes=len(payload) + limit_over_size).send(Channel.TELEMETRY, payload)


SCENARIOS: dict[str, Scenario] = {
    "topic.version": lambda f: f.send(
        Channel.STATE, state(), topic_name=f"citywatch/v2/{SITE}/{DEVICE}/state"
    ),
    "topic.shape": lambda f: f.send(Channel.TELEMETRY, telemetry(), topic_name=topic("telemetry") + "/extra"),
    "topic.site": lambda f: f.send(Channel.TELEMETRY, telemetry(), topic_name=topic("telemetry", site="s2")),
    "topic.direction": lambda f: f.send(Channel.CMD, state(), retain=False),
    "gateway.invalid": lambda f: f.send(Channel.CMD, b'{"v": 1, "command": "ping"}'),
    "mqtt.qos": lambda f: f.send(Channel.STATE, state(), qos=0),
    "mqtt.retain": lambda f: f.send(Channel.STATE, state(), retain=False),
    "mqtt.retain_unknown": lambda f: f.send(Channel.STATE, state(), retain=None),
    "message.duplicate": lambda f: [f.birth(), f.send(Channel.STATE, json.dumps(state(), indent=2).encode())][
        -1
    ],
    "payload.cleared": lambda f: f.send(Channel.STATE, b"", retain=True),
    "payload.empty": lambda f: f.send(Channel.TELEMETRY, b"", retain=False),
    "payload.oversized": lambda f: _sized(limit_over_size=-1),
    "payload.json": lambda f: f.send(Channel.TELEMETRY, b"[1, 2]"),
    "payload.version": lambda f: f.send(
        Channel.TELEMETRY, json.dumps(telemetry()).replace('"v": 1', '"v": 1.0').encode()
    ),
    "payload.invalid": lambda f: f.send(Channel.TELEMETRY, telemetry(colour="red")),
    "payload.device_id": lambda f: f.send(Channel.TELEMETRY, telemetry(device_id="c2")),
    "ts.ahead": lambda f: f.send(Channel.TELEMETRY, telemetry(ARRIVAL + timedelta(seconds=301))),
    "ts.before_2020": lambda f: f.send(Channel.TELEMETRY, telemetry(WATCH_START.replace(year=2019))),
    "session.no_birth": lambda f: f.send(Channel.TELEMETRY, telemetry()),
    "session.data_after_offline": lambda f: [
        f.birth(1),
        f.send(Channel.STATE, state("offline", 1, at(10))),
        f.send(Channel.TELEMETRY, telemetry(at(20))),
    ][-1],
    "session.not_increasing": lambda f: [f.birth(5, at(0)), f.birth(5, at(60))][-1],
    "session.reset": lambda f: [f.birth(5, at(0)), f.birth(1, at(60))][-1],
    "session.birth_ts_order": lambda f: [f.birth(5, at(60)), f.birth(6, at(0))][-1],
    "session.will_mismatch": lambda f: [
        f.birth(5, at(0)),
        f.birth(6, at(10)),
        f.send(Channel.STATE, state("offline", 5, at(20))),
    ][-1],
    "session.will_without_birth": lambda f: [
        f.birth(5, at(0)),
        f.send(Channel.STATE, state("offline", 7, at(20))),
    ][-1],
    "session.stale_will": lambda f: [
        f.birth(5, at(0)),
        f.birth(6, at(10)),
        f.send(Channel.STATE, state("offline", 5, at(0))),
    ][-1],
    "event.seq_phase": lambda f: f.send(Channel.EVENT, event("new", 1)),
    "event.unknown": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("update", 1, started_at=at(5), ts=at(6))),
    ][-1],
    "event.began_before_watching": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("update", 3, started_at=at(-600), ts=at(6))),
    ][-1],
    "event.seq_gap": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0)),
        f.send(Channel.EVENT, event("update", 2, ts=at(5), level_cm=16.0)),
    ][-1],
    "event.seq_reused": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0)),
        f.send(Channel.EVENT, event("update", 1, ts=at(5), level_cm=16.0)),
        f.send(Channel.EVENT, event("update", 1, ts=at(6), level_cm=17.0)),
    ][-1],
    "event.after_end": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0)),
        f.send(Channel.EVENT, event("end", 1, ts=at(5))),
        f.send(Channel.EVENT, event("update", 2, ts=at(6))),
    ][-1],
    "event.type_changed": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0)),
        f.send(
            Channel.EVENT,
            event(
                "update",
                1,
                ts=at(5),
                type="water_rising_fast",
                details={"level_cm": 12.0, "rate_cm_per_min": 3.0},
            ),
        ),
    ][-1],
    "event.second_open": _second_open,
    "event.reraised": lambda f: _second_open(f, reconnect=True),
    "event.started_at_changed": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0)),
        f.send(Channel.EVENT, event("update", 1, ts=at(5), started_at=at(1))),
    ][-1],
    "event.end_severity": lambda f: _flood(f, end_severity="notice"),
    "session.will_fields": lambda f: [
        f.birth(1),
        f.send(Channel.STATE, state("offline", 1, firmware_version="2.0")),
    ][-1],
    "ack.missing": lambda f: _command_to_online_device(f, answered=False),
    "presence.silent": lambda f: [
        f.send(Channel.STATE, state(), arrived=ARRIVAL),
        f.send(Channel.TELEMETRY, telemetry(), arrived=ARRIVAL + timedelta(seconds=601)),
    ][-1],
    "outbox_seq.reused": lambda f: _outbox(f, (5, 0), (5, 1)),
    "outbox_seq.backwards": lambda f: _outbox(f, (10, 0), (5, 1)),
    "outbox_seq.resent_unseen": lambda f: _outbox(f, (10, 1), (5, 0)),
    "outbox_seq.partial": lambda f: [
        f.birth(),
        f.send(Channel.TELEMETRY, telemetry(at(0), outbox_seq=1)),
        f.send(Channel.TELEMETRY, telemetry(at(1))),
    ][-1],
    "ack.unknown_cmd": lambda f: [f.birth(), f.send(Channel.ACK, ack("c-1"))][-1],
    "ack.repeated": lambda f: [
        f.birth(),
        f.send(Channel.CMD, command("c-1")),
        f.send(Channel.ACK, ack("c-1")),
        f.send(Channel.ACK, ack("c-1", ok=False, reason="failed")),
    ][-1],
    "probe.no_ack": lambda f: [_probe(f, ProbeKind.PING), f.checker.overdue(ARRIVAL + timedelta(seconds=10))][
        -1
    ],
    "probe.ping": lambda f: _answered(f, ProbeKind.PING, ok=False, reason="failed"),
    "probe.expired": lambda f: _answered(f, ProbeKind.EXPIRED, ok=True),
    "probe.passed": lambda f: _answered(f, ProbeKind.PING, ok=True),
    "watch.silent": lambda f: f.checker.finish(ARRIVAL),
    "evidence.conflict": lambda f: _evidence(f, second={"caption": "another photo"}),
    "evidence.corrupt": lambda f: _evidence(f, second={"data_b64": "Ynl0ZXMgISE="}),  # "bytes !!"
    "evidence.incomplete": lambda f: _evidence(f, parts=(0,), finish=True),
}


NEIGHBOURS: dict[str, Scenario] = {
    "topic.version": lambda f: f.send(Channel.STATE, state()),
    "topic.shape": lambda f: f.send(Channel.TELEMETRY, telemetry()),
    # Without a device to check, another site's devices are not judged at all.
    "topic.site": lambda f: Feed(device_id=None).send(
        Channel.TELEMETRY, telemetry(), topic_name=topic("telemetry", site="s2")
    ),
    "topic.direction": lambda f: f.send(Channel.CMD, command("c-1")),
    "gateway.invalid": lambda f: f.send(Channel.CMD, command("c-1")),
    "mqtt.qos": lambda f: f.send(Channel.STATE, state(), qos=1),
    "mqtt.retain": lambda f: [f.birth(), f.send(Channel.TELEMETRY, telemetry(), retain=False)][-1],
    "mqtt.retain_unknown": lambda f: f.send(Channel.STATE, state(), retain=False),
    "message.duplicate": lambda f: [f.birth(1, at(0)), f.birth(2, at(1))][-1],
    "payload.cleared": lambda f: f.send(Channel.STATE, state(), retain=True),
    "payload.empty": lambda f: f.send(Channel.TELEMETRY, b"", retain=True),
    "payload.oversized": lambda f: _sized(limit_over_size=0),
    "payload.json": lambda f: f.send(Channel.TELEMETRY, telemetry()),
    "payload.version": lambda f: f.send(Channel.TELEMETRY, telemetry()),
    "payload.invalid": lambda f: f.send(Channel.TELEMETRY, telemetry(tags={"colour": "red"})),
    "payload.device_id": lambda f: f.send(Channel.TELEMETRY, telemetry(device_id=DEVICE)),
    "ts.ahead": lambda f: f.send(Channel.TELEMETRY, telemetry(ARRIVAL + timedelta(seconds=299))),
    "ts.before_2020": lambda f: f.send(
        Channel.TELEMETRY, telemetry(WATCH_START.replace(year=2020, month=1, day=1, hour=0))
    ),
    "session.no_birth": lambda f: [f.birth(), f.send(Channel.TELEMETRY, telemetry())][-1],
    "session.data_after_offline": lambda f: [
        f.birth(1),
        f.send(Channel.STATE, state("offline", 1, at(10))),
        f.birth(2, at(15)),
        f.send(Channel.TELEMETRY, telemetry(at(20))),
    ][-1],
    "session.not_increasing": lambda f: [f.birth(5, at(0)), f.birth(6, at(60))][-1],
    "session.reset": lambda f: [f.birth(5, at(0)), f.birth(6, at(60))][-1],
    "session.birth_ts_order": lambda f: [f.birth(5, at(0)), f.birth(6, at(60))][-1],
    "session.will_mismatch": lambda f: [
        f.birth(5, at(0)),
        f.birth(6, at(10)),
        f.send(Channel.STATE, state("offline", 6, at(20))),
    ][-1],
    "session.will_without_birth": lambda f: [
        f.birth(5, at(0)),
        f.send(Channel.STATE, state("offline", 5, at(20))),
    ][-1],
    "session.stale_will": lambda f: [f.birth(5, at(0)), f.send(Channel.STATE, state("offline", 5, at(0)))][
        -1
    ],
    "event.seq_phase": lambda f: f.send(Channel.EVENT, event("new", 0)),
    "event.unknown": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0, started_at=at(5), ts=at(5))),
        f.send(Channel.EVENT, event("update", 1, started_at=at(5), ts=at(6))),
    ][-1],
    # An outbox replaying an event that began long ago: its new comes first.
    "event.began_before_watching": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0, started_at=at(-600), ts=at(-600))),
        f.send(Channel.EVENT, event("update", 1, started_at=at(-600), ts=at(-590))),
    ][-1],
    "event.seq_gap": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0)),
        f.send(Channel.EVENT, event("update", 1, ts=at(5), level_cm=16.0)),
    ][-1],
    # The same revision again, as QoS 1 may deliver it: a duplicate, not a reuse.
    "event.seq_reused": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0)),
        f.send(Channel.EVENT, event("update", 1, ts=at(5), level_cm=16.0)),
        f.send(Channel.EVENT, event("update", 1, ts=at(5), level_cm=16.0)),
    ][-1],
    "event.after_end": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0)),
        f.send(Channel.EVENT, event("update", 1, ts=at(5))),
        f.send(Channel.EVENT, event("end", 2, ts=at(6))),
    ][-1],
    "event.type_changed": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0)),
        f.send(Channel.EVENT, event("update", 1, ts=at(5), level_cm=16.0)),
    ][-1],
    "event.second_open": lambda f: _second_open(f, end_first=True),
    "event.reraised": lambda f: _second_open(f, end_first=True, reconnect=True),
    "event.started_at_changed": lambda f: [
        f.birth(),
        f.send(Channel.EVENT, event("new", 0)),
        f.send(Channel.EVENT, event("update", 1, ts=at(5))),
    ][-1],
    "event.end_severity": lambda f: _flood(f, end_severity="warning"),
    "session.will_fields": lambda f: [f.birth(1), f.send(Channel.STATE, state("offline", 1))][-1],
    "ack.missing": lambda f: _command_to_online_device(f, answered=True),
    "presence.silent": lambda f: [
        f.send(Channel.STATE, state(), arrived=ARRIVAL),
        f.send(Channel.TELEMETRY, telemetry(), arrived=ARRIVAL + timedelta(seconds=599)),
    ][-1],
    "outbox_seq.reused": lambda f: _outbox(f, (5, 0), (5, 0), same=True),
    "outbox_seq.backwards": lambda f: _outbox(f, (5, 0), (10, 1)),
    "outbox_seq.resent_unseen": lambda f: _outbox(f, (5, 0), (10, 1)),
    "outbox_seq.partial": lambda f: [
        f.birth(),
        f.send(Channel.TELEMETRY, telemetry(at(0), outbox_seq=1)),
        f.send(Channel.TELEMETRY, telemetry(at(1), outbox_seq=2)),
    ][-1],
    "ack.unknown_cmd": lambda f: [
        f.birth(),
        f.send(Channel.CMD, command("c-1")),
        f.send(Channel.ACK, ack("c-1")),
    ][-1],
    "ack.repeated": lambda f: [
        f.birth(),
        f.send(Channel.CMD, command("c-1")),
        f.send(Channel.ACK, ack("c-1")),
        f.send(Channel.ACK, ack("c-1")),
    ][-1],
    "probe.no_ack": lambda f: [_probe(f, ProbeKind.PING), f.checker.overdue(ARRIVAL + timedelta(seconds=9))][
        -1
    ],
    "probe.ping": lambda f: _answered(f, ProbeKind.PING, ok=True),
    "probe.expired": lambda f: _answered(f, ProbeKind.EXPIRED, ok=False, reason="expired"),
    "probe.passed": lambda f: _answered(f, ProbeKind.EXPIRED, ok=True),
    "watch.silent": lambda f: [f.birth(), f.checker.finish(ARRIVAL)][-1],
    "evidence.conflict": lambda f: _evidence(f),
    "evidence.corrupt": lambda f: _evidence(f, parts=(1, 0)),  # any order joins
    "evidence.incomplete": lambda f: _evidence(f, finish=True),
}


def _evidence(
    feed: Feed,
    *,
    parts: tuple[int, ...] = (0, 1),
    second: dict[str, object] | None = None,
    finish: bool = False,
) -> list[Finding]:
    """A birth, then the parts of a two-part evidence item in the order given (``second`` changes the
    part sent second); the findings of the last part, or of the end of the watch."""
    feed.birth()
    messages = evidence()
    found: list[Finding] = []
    for index, number in enumerate(parts):
        changes = (second or {}) if index == 1 else {}
        found = feed.send(Channel.EVIDENCE, messages[number] | changes)
    return feed.checker.finish(ARRIVAL) if finish else found


def test_every_rule_has_a_scenario_and_a_neighbour() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids)), "rule ids are unique"
    assert set(SCENARIOS) == set(ids)
    assert set(NEIGHBOURS) == set(ids)


@pytest.mark.parametrize("rule_id", list(SCENARIOS))
def test_scenario_breaks_its_rule(rule_id: str) -> None:
    found = SCENARIOS[rule_id](Feed())
    matching = [finding for finding in found if finding.rule == rule_id]
    assert matching, f"{rule_id} not reported; found {rule_ids(found)}"
    assert all(finding.severity is RULE_BY_ID[rule_id].level for finding in matching)
    assert all(finding.text for finding in matching)


@pytest.mark.parametrize("rule_id", list(NEIGHBOURS))
def test_neighbour_keeps_its_rule(rule_id: str) -> None:
    feed = Feed()
    found = NEIGHBOURS[rule_id](feed)
    assert rule_id not in rule_ids(found)
    assert rule_id not in feed.rules()


def test_a_conforming_session_has_no_finding_at_all() -> None:
    feed = Feed()
    feed.send(Channel.STATE, state("offline", 3, at(-3600)))  # the retained will of the last connection
    feed.birth(4, at(1))
    feed.send(Channel.TELEMETRY, telemetry(at(2), outbox_seq=41))
    feed.send(Channel.EVENT, event("new", 0, ts=at(3), started_at=at(3), outbox_seq=42))
    feed.send(Channel.EVENT, event("update", 1, ts=at(4), started_at=at(3), level_cm=16.0, outbox_seq=43))
    feed.send(Channel.CMD, command("c-7", ts=at(5)))
    feed.send(Channel.ACK, ack("c-7", ts=at(5)))
    feed.send(Channel.EVENT, event("end", 2, ts=at(6), started_at=at(3), level_cm=2.0, outbox_seq=44))
    feed.send(Channel.RECEIPT, {"v": 1, "ts": iso(at(7)), "stored": [[41, 44]]})
    feed.send(Channel.STATE, state("offline", 4, at(8)))  # a clean shutdown
    assert feed.findings == []
    assert feed.checker.finish(ARRIVAL) == []
    assert feed.checker.messages == 10


def test_messages_are_numbered_in_arrival_order_and_other_devices_are_not_counted() -> None:
    feed = Feed()
    feed.birth()
    feed.send(Channel.TELEMETRY, telemetry(), topic_name=topic("telemetry", device="c2"))  # not watched
    found = feed.send(Channel.TELEMETRY, telemetry(), qos=0)
    assert [(f.rule, f.message_no, f.topic, f.device_id) for f in found] == [
        ("mqtt.qos", 2, topic("telemetry"), DEVICE)
    ]


def test_a_message_breaking_several_rules_reports_each() -> None:
    feed = Feed()
    found = feed.send(
        Channel.STATE, json.dumps(state()).replace('"v": 1', '"v": "1"').encode(), qos=0, retain=False
    )
    assert sorted(rule_ids(found)) == ["mqtt.qos", "mqtt.retain", "payload.version"]


def test_event_seq_phase_alone_is_not_also_called_invalid_but_other_faults_are() -> None:
    assert rule_ids(Feed().send(Channel.EVENT, event("update", 0))) == ["event.seq_phase"]
    both = Feed().send(Channel.EVENT, event("new", 2, confidence=2.0))
    assert sorted(rule_ids(both)) == ["event.seq_phase", "payload.invalid"]


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        ({"ts": "1780315200"}, "ts"),
        ({"ts": "2026-06-01 12:00:00Z"}, "ts"),
        ({"fields": {"level_cm": "1.5"}}, "fields"),
        ({"details": {"level_cm": 1.0}}, "peak_cm"),
    ],
    ids=["epoch ts", "space in ts", "number as string", "details not fitting type"],
)
def test_payload_faults_name_the_field(change: dict[str, object], fault: str) -> None:
    channel = Channel.EVENT if "details" in change else Channel.TELEMETRY
    payload = (event() if "details" in change else telemetry()) | change
    found = Feed().send(channel, payload)
    assert rule_ids(found) == ["payload.invalid"]
    assert fault in found[0].text


def test_non_finite_numbers_are_invalid() -> None:
    raw = json.dumps(telemetry()).replace('"level_cm": 1.0', '"level_cm": NaN').encode()
    assert rule_ids(Feed().send(Channel.TELEMETRY, raw)) == ["payload.invalid"]


def test_clock_skew_option_moves_the_bound() -> None:
    ahead = telemetry(ARRIVAL + timedelta(seconds=400))
    assert "ts.ahead" in rule_ids(Feed().send(Channel.TELEMETRY, ahead))
    assert "ts.ahead" not in rule_ids(Feed(clock_skew_s=600).send(Channel.TELEMETRY, ahead))


def test_an_events_started_at_is_judged_as_well_as_its_ts() -> None:
    found = Feed().send(Channel.EVENT, event(started_at=ARRIVAL + timedelta(days=1)))
    assert [(f.rule, "started_at" in f.text) for f in found if f.rule.startswith("ts.")] == [
        ("ts.ahead", True)
    ]


def test_duplicates_skip_the_stateful_rules() -> None:
    """A QoS 1 redelivery of an update is one info, not a reused seq; the event goes on normally."""
    feed = Feed()
    feed.birth()
    feed.send(Channel.EVENT, event("new", 0))
    update = event("update", 1, ts=at(5), level_cm=16.0)
    feed.send(Channel.EVENT, update)
    assert rule_ids(feed.send(Channel.EVENT, update)) == ["message.duplicate"]
    assert rule_ids(feed.send(Channel.EVENT, event("end", 2, ts=at(9)))) == []


def test_began_before_watching_is_followed_from_where_the_kit_joined() -> None:
    feed = Feed()
    feed.birth()
    feed.send(Channel.EVENT, event("update", 3, started_at=at(-600), ts=at(6)))
    assert rule_ids(feed.send(Channel.EVENT, event("update", 5, started_at=at(-600), ts=at(7)))) == [
        "event.seq_gap"
    ]


def test_a_second_open_event_of_another_type_is_fine() -> None:
    feed = Feed()
    feed.birth()
    feed.send(Channel.EVENT, event("new", 0, "evt-aaaa"))
    rising = event(
        "new", 0, "evt-bbbb", type="water_rising_fast", details={"level_cm": 12.0, "rate_cm_per_min": 3.0}
    )
    assert rule_ids(feed.send(Channel.EVENT, rising)) == []


def test_retain_unknown_is_said_once_and_judges_no_retain() -> None:
    feed = Feed()
    assert rule_ids(feed.send(Channel.STATE, state(), retain=None)) == ["mqtt.retain_unknown"]
    assert rule_ids(feed.send(Channel.TELEMETRY, telemetry(), retain=None)) == []
    assert rule_ids(feed.send(Channel.TELEMETRY, telemetry(at(1)), retain=True)) == ["mqtt.retain"]


def test_probe_acks_are_judged_once_and_overdue_ones_reported_once() -> None:
    feed = Feed()
    feed.birth()
    ping = _probe(feed, ProbeKind.PING)
    expired = _probe(feed, ProbeKind.EXPIRED)
    assert feed.checker.pending_probes
    assert rule_ids(feed.send(Channel.ACK, ack(ping.command.cmd_id, ts=ARRIVAL))) == ["probe.passed"]
    late = feed.checker.overdue(expired.deadline)
    assert rule_ids(late) == ["probe.no_ack"] and late[0].message_no is None and late[0].device_id == DEVICE
    assert feed.checker.overdue(expired.deadline + timedelta(seconds=1)) == []
    assert not feed.checker.pending_probes
    # An answer after the deadline is an ordinary ack of a command the kit sent: no finding.
    assert rule_ids(feed.send(Channel.ACK, ack(expired.command.cmd_id, ok=False, reason="expired"))) == []


def test_probe_commands_are_valid_commands_one_live_one_expired() -> None:
    probes = {p.kind: p for p in probe_commands(DEVICE, now=ARRIVAL, timeout=timedelta(seconds=10))}
    live, stale = probes[ProbeKind.PING].command, probes[ProbeKind.EXPIRED].command
    for message in (live, stale):
        assert CommandMessage.model_validate_json(message.to_json()) == message
    assert not live.expired(ARRIVAL) and stale.expired(ARRIVAL)
    assert live.cmd_id != stale.cmd_id


def test_expired_probe_refused_with_another_reason_is_an_error() -> None:
    found = _answered(Feed(), ProbeKind.EXPIRED, ok=False, reason="unknown_command")
    assert rule_ids(found) == ["probe.expired"] and "unknown_command" in found[0].text


def test_findings_render_as_one_line_each() -> None:
    found = Feed().send(Channel.STATE, state(), qos=0)
    line = found[0].line()
    assert line.startswith("error   #1 citywatch/v1/s1/c1/state [mqtt.qos] ")
    assert "\n" not in line
    assert found[0].severity is Level.ERROR


@pytest.mark.parametrize(
    ("channel", "payload", "field"),
    [
        (Channel.STATE, state(session=True), "session"),
        (Channel.STATE, state(session=3.0), "session"),
        (Channel.EVENT, event(seq="0"), "seq"),
        (Channel.EVENT, event(confidence="0.9"), "confidence"),
        (Channel.ACK, ack("c-1") | {"ok": 1}, "ok"),
        (Channel.ACK, ack("c-1") | {"ok": "yes"}, "ok"),
    ],
    ids=["session true", "session 3.0", "seq string", "confidence string", "ok 1", "ok yes"],
)
def test_a_field_of_the_wrong_json_type_is_a_deviation(
    channel: Channel, payload: dict[str, object], field: str
) -> None:
    found = Feed().send(channel, payload)
    invalid = [f for f in found if f.rule == "payload.invalid"]
    assert invalid, rule_ids(found)
    assert all(field in f.text for f in invalid)


def test_a_command_sent_while_the_device_is_offline_is_due_after_its_next_birth() -> None:
    feed = Feed()
    feed.birth(1)
    feed.send(Channel.STATE, state("offline", 1))
    feed.send(Channel.CMD, command("c-5"), arrived=ARRIVAL)
    assert feed.checker.overdue(ARRIVAL + timedelta(minutes=5)) == []  # queued by the broker meanwhile
    feed.send(Channel.STATE, state("online", 2, at(60)), arrived=ARRIVAL + timedelta(minutes=6))
    assert feed.checker.overdue(ARRIVAL + timedelta(minutes=6, seconds=9)) == []
    late = feed.checker.overdue(ARRIVAL + timedelta(minutes=6, seconds=10))
    assert rule_ids(late) == ["ack.missing"] and "c-5" in late[0].text


def test_a_probe_left_unanswered_is_one_finding_not_two() -> None:
    feed = Feed()
    feed.birth()
    probe = _probe(feed, ProbeKind.PING)
    feed.send(Channel.CMD, probe.command.to_json(), arrived=ARRIVAL)  # the kit sees its own probe
    assert rule_ids(feed.checker.finish(ARRIVAL + timedelta(seconds=30))) == ["probe.no_ack"]


def test_a_device_silent_until_the_end_of_the_watch_is_reported_then() -> None:
    feed = Feed()
    feed.send(Channel.STATE, state(), arrived=ARRIVAL)
    assert rule_ids(feed.checker.finish(ARRIVAL + timedelta(seconds=599))) == []
    assert rule_ids(feed.checker.finish(ARRIVAL + timedelta(seconds=601))) == ["presence.silent"]


def test_an_offline_device_is_not_expected_to_speak() -> None:
    feed = Feed()
    feed.send(Channel.STATE, state("offline", 1), arrived=ARRIVAL)
    assert feed.checker.finish(ARRIVAL + timedelta(hours=2)) == []
