"""Routing table: the example routes as documented; validation lists every mistake at once, with paths."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from citywatch.protocol.messages import EventType, Severity
from gateway.events.lifecycle.sla import EscalationPolicy
from gateway.routing.models import PayloadFormat, RoutingTable, parse_duration
from gateway.routing.service import (
    RoutingConfigError,
    check_routing_file,
    load_routing,
    parse_routing,
    route,
)
from tests.support.paths import ROUTING_EXAMPLE

EXAMPLE = ROUTING_EXAMPLE
SECRET = "whsec_RVhBTVBMRSBPTkxZOiB0cmFuc3BvcnQtYnVyZWF1IGtleQ=="

MINIMAL = f"""
departments:
  - id: roads
    name: Roads
    webhook: {{url: "http://127.0.0.1:9/hook", secrets: ["{SECRET}"]}}
  - id: police
    name: Police
rules:
  - id: town-water
    event_types: [water_level]
    area: {{town: "xinqiao", grid: "g-1?"}}
    department: police
  - id: any-water
    event_types: [water_level, water_rising_fast]
    department: roads
    sla: {{critical: 20m}}
default_sla: {{critical: 1h, warning: 2h, notice: 1d, info: 2d}}
"""


@pytest.fixture(scope="module")
def example() -> RoutingTable:
    return load_routing(EXAMPLE)


@pytest.mark.parametrize(
    ("event_type", "site", "department", "rule_id"),
    [
        (EventType.WATER_LEVEL, "culvert-3", "transport_bureau", "culvert-road-water"),
        (EventType.WATER_RISING_FAST, "culvert-12", "transport_bureau", "culvert-road-water"),
        (EventType.EBIKE_IN_ELEVATOR, "block-7", "property_management", "ebike-elevator"),
        (EventType.EBIKE_IN_ELEVATOR, "riverside-2", "riverside_estate", "ebike-elevator-riverside"),
        (EventType.OBJECT_THROWN, "block-7", "police_station", "object-thrown"),
        (EventType.ILLEGAL_PARKING, "gate-1", "urban_management", "illegal-parking"),
        (EventType.DEVICE_OFFLINE, "culvert-3", "operations", "device-offline"),
        (EventType.SENSOR_FAULT, "culvert-3", "operations", "culvert-sensor-fault"),
    ],
)
def test_example_routes_each_event_to_its_department(
    example: RoutingTable, event_type: EventType, site: str, department: str, rule_id: str
) -> None:
    decision = route(example, event_type=event_type, severity=Severity.WARNING, site=site)
    assert decision.department is not None and decision.department.id == department
    assert decision.rule_id == rule_id and not decision.triage


def test_rule_sla_overrides_and_default_fills_the_rest(example: RoutingTable) -> None:
    def within(severity: Severity) -> timedelta:
        return route(example, event_type="water_level", severity=severity, site="culvert-3").resolve_within

    assert within(Severity.CRITICAL) == timedelta(minutes=30)  # from the rule
    assert within(Severity.WARNING) == timedelta(hours=2)  # from the rule
    assert within(Severity.NOTICE) == timedelta(days=1)  # default_sla


def test_unmatched_event_goes_to_triage(example: RoutingTable) -> None:
    decision = route(example, event_type="water_level", severity=Severity.CRITICAL, site="plaza-1")
    assert decision.triage and decision.department is None and decision.rule_id is None
    assert decision.queue == "triage" and decision.resolve_within == timedelta(minutes=15)


def test_example_carries_formats_rotation_and_escalation(example: RoutingTable) -> None:
    assert example.department("transport_bureau").webhook is not None
    assert example.department("transport_bureau").webhook.format is PayloadFormat.CAP  # type: ignore[union-attr]
    riverside = example.department("riverside_estate").webhook
    assert riverside is not None and len(riverside.secrets) == 2
    assert example.department("operations").webhook is None
    assert example.escalation.policy() == EscalationPolicy(
        yellow_at=0.8, urge_every=timedelta(minutes=30), max_urges=6
    )


def test_area_patterns_first_match_wins_and_unknown_area_only_matches_wildcards() -> None:
    table = parse_routing(MINIMAL)
    in_town = route(table, event_type="water_level", severity=Severity.CRITICAL, town="xinqiao", grid="g-12")
    assert in_town.rule_id == "town-water"
    other_grid = route(
        table, event_type="water_level", severity=Severity.CRITICAL, town="xinqiao", grid="g-123"
    )
    assert other_grid.rule_id == "any-water" and other_grid.resolve_within == timedelta(minutes=20)
    unknown_area = route(table, event_type="water_level", severity=Severity.CRITICAL)
    assert unknown_area.rule_id == "any-water"
    assert route(table, event_type="object_thrown", severity=Severity.CRITICAL).triage


def test_check_routing_file_accepts_the_example() -> None:
    assert check_routing_file(EXAMPLE) == []


def test_every_mistake_is_reported_at_once_with_its_path() -> None:
    broken = """
departments:
  - {id: roads, name: Roads, webhook: {url: "ftp://x/hook", secrets: ["abc"]}}
  - {id: roads, name: Roads again}
  - {id: Bad Id, name: ""}
rules:
  - {id: r1, event_types: [water_levle], department: roadz, sla: {critical: 5x}}
  - {id: r1, event_types: "*", department: roads}
  - {id: r2, event_types: [], department: roads, area: {site: "BAD SITE"}}
default_sla: {critical: 1h, warning: 0m}
escalation: {yellow_at: 2, urge_every: soon}
colour: blue
"""
    with pytest.raises(RoutingConfigError) as caught:
        parse_routing(broken, source="broken.yaml")
    problems = {str(problem) for problem in caught.value.problems}
    expected_fragments = {
        "departments: each department id must be unique: 'roads' at positions 0, 1",
        "rules: each rule id must be unique: 'r1' at positions 0, 1",
        "departments[0].webhook.url: URL scheme should be 'http' or 'https'",
        "departments[0].webhook.secrets: secret #1 must start with 'whsec_'",
        "departments[2].id: String should match pattern",
        "departments[2].name: String should have at least 1 character",
        "rules[0].event_types[0]: Input should be 'water_level'",
        "rules[0].department: unknown department 'roadz'; departments are: Bad Id, roads",
        "rules[0].sla.critical: '5x' is not a duration",
        "rules[2].event_types: list at least one event type",
        "rules[2].area.site: 'BAD SITE' is not an area pattern",
        "default_sla.warning: duration '0m' must be longer than zero",
        "default_sla.notice: Field required",
        "escalation.yellow_at: Input should be less than 1",
        "escalation.urge_every: 'soon' is not a duration",
        "colour: Extra inputs are not permitted",
    }
    for fragment in expected_fragments:
        assert any(problem.startswith(fragment) for problem in problems), (fragment, sorted(problems))
    assert str(caught.value).startswith("broken.yaml: ")


def test_shadowed_rule_is_a_mistake() -> None:
    text = MINIMAL.replace(
        "  - id: town-water",
        "  - id: catch-all\n    event_types: '*'\n    department: roads\n  - id: town-water",
    )
    with pytest.raises(RoutingConfigError) as caught:
        parse_routing(text)
    messages = [str(problem) for problem in caught.value.problems]
    assert any("rule 'town-water' can never match: rule 'catch-all'" in message for message in messages)
    assert any("rule 'any-water' can never match" in message for message in messages)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("whsec_!!!notbase64", "not valid base64"),
        ("whsec_c2hvcnQ=", "only 5 bytes"),
    ],
)
def test_bad_webhook_secrets_are_explained(secret: str, message: str) -> None:
    with pytest.raises(RoutingConfigError) as caught:
        parse_routing(MINIMAL.replace(SECRET, secret))
    assert any(message in str(problem) for problem in caught.value.problems)


def test_rotation_with_the_same_secret_twice_is_refused() -> None:
    with pytest.raises(RoutingConfigError, match="the same secret is listed twice"):
        parse_routing(MINIMAL.replace(f'["{SECRET}"]', f'["{SECRET}", "{SECRET}"]'))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("departments: [unclosed", "line 1"),
        ("- just\n- a list", "must be a mapping"),
        ("", "must be a mapping"),
    ],
)
def test_file_level_mistakes(text: str, message: str) -> None:
    with pytest.raises(RoutingConfigError, match=message):
        parse_routing(text)


def test_missing_file_is_a_clear_problem(tmp_path: Path) -> None:
    problems = check_routing_file(tmp_path / "nope.yaml")
    assert len(problems) == 1 and "cannot read the file" in problems[0]


def test_direct_model_validation_still_checks_department_references() -> None:
    with pytest.raises(ValueError, match="rules reference unknown departments: ghost"):
        RoutingTable.model_validate(
            {
                "departments": [{"id": "roads", "name": "Roads"}],
                "rules": [{"id": "r", "event_types": ["water_level"], "department": "ghost"}],
                "default_sla": {"critical": "1h", "warning": "1h", "notice": "1h", "info": "1h"},
            }
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        (45, timedelta(seconds=45)),
    ],
)
def test_durations(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "m", "30 minutes", "-5m", True, None, "1.5h"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
