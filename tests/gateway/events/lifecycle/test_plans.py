"""Plans for a raised condition: dedup + routing + dispatch, applied through the real state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citywatch.protocol.messages import Severity
from gateway.auth.roles import Role
from gateway.cap.models import CapChange
from gateway.events.lifecycle.dedup import DedupAction, KnownEvent, RaisedCondition
from gateway.events.lifecycle.models import Action, Actor, EventState, WorkItem
from gateway.events.lifecycle.plans import Area, dispatch_request, plan_raised_condition
from gateway.events.lifecycle.transitions import apply_transition
from gateway.routing.models import RoutingTable
from gateway.routing.service import load_routing
from tests.support.paths import ROUTING_EXAMPLE

EXAMPLE = ROUTING_EXAMPLE
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
CULVERT = Area(site="culvert-3", grid="g-1", town="xinqiao")


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return load_routing(EXAMPLE)


def _raised(severity: Severity = Severity.CRITICAL, event_type: str = "water_level") -> RaisedCondition:
    return RaisedCondition(device_id="culvert-7", event_type=event_type, severity=severity, seen_at=NOW)


def _known(state: EventState, *, severity: Severity = Severity.WARNING, minutes_ago: float = 5) -> KnownEvent:
    return KnownEvent(
        event_id="17",
        device_id="culvert-7",
        event_type="water_level",
        state=state,
        severity=severity,
        count=2,
        last_seen=NOW - timedelta(minutes=minutes_ago),
    )


def test_new_condition_is_routed_and_dispatched_by_the_gateway(table: RoutingTable) -> None:
    plan = plan_raised_condition(
        condition=_raised(), known=[], area=CULVERT, table=table, suppression_window=WINDOW, now=NOW
    )
    assert plan.decision.action is DedupAction.NEW and plan.push is CapChange.RAISED
    assert plan.route is not None and plan.route.rule_id == "culvert-road-water"
    outcome = apply_transition(item=WorkItem(state=EventState.NEW), request=plan.requests[0])
    assert outcome.state is EventState.DISPATCHED and outcome.department == "transport_bureau"
    assert outcome.deadline == NOW + timedelta(minutes=30)
    assert outcome.audit.actor == "gateway" and outcome.audit.note == "routed by rule culvert-road-water"


def test_unmatched_condition_waits_in_triage(table: RoutingTable) -> None:
    plan = plan_raised_condition(
        condition=_raised(),
        known=[],
        area=Area(site="plaza-1"),
        table=table,
        suppression_window=WINDOW,
        now=NOW,
    )
    assert plan.requests == () and plan.push is None
    assert plan.route is not None and plan.route.triage
    assert plan.triage_deadline == NOW + timedelta(minutes=15)


@pytest.mark.parametrize("severity", [Severity.CRITICAL, Severity.NOTICE])
def test_repeat_merges_and_is_pushed_as_an_update_whatever_its_severity(
    table: RoutingTable, severity: Severity
) -> None:
    plan = plan_raised_condition(
        condition=_raised(severity),
        known=[_known(EventState.IN_PROGRESS)],
        area=CULVERT,
        table=table,
        suppression_window=WINDOW,
        now=NOW,
    )
    assert plan.decision.action is DedupAction.MERGE and plan.decision.event_id == "17"
    assert plan.requests == () and plan.push is CapChange.UPDATED
    assert plan.decision.severity_raised is (severity is Severity.CRITICAL)


def test_flapping_after_closure_reraises_to_the_same_department(table: RoutingTable) -> None:
    plan = plan_raised_condition(
        condition=_raised(Severity.WARNING),
        known=[_known(EventState.CLOSED, minutes_ago=10)],
        area=CULVERT,
        table=table,
        suppression_window=WINDOW,
        now=NOW,
    )
    assert plan.decision.action is DedupAction.RERAISE and plan.push is CapChange.UPDATED
    outcome = apply_transition(
        item=WorkItem(state=EventState.CLOSED, department="transport_bureau"), request=plan.requests[0]
    )
    assert outcome.state is EventState.DISPATCHED and outcome.department == "transport_bureau"
    assert outcome.deadline == NOW + timedelta(hours=2)  # the rule's warning SLA


def test_repeat_of_a_false_alarm_is_only_recorded(table: RoutingTable) -> None:
    plan = plan_raised_condition(
        condition=_raised(),
        known=[_known(EventState.CANCELLED, minutes_ago=3)],
        area=CULVERT,
        table=table,
        suppression_window=WINDOW,
        now=NOW,
    )
    assert plan.decision.action is DedupAction.SUPPRESS and plan.push is None
    outcome = apply_transition(item=WorkItem(state=EventState.CANCELLED), request=plan.requests[0])
    assert outcome.state is EventState.CANCELLED and outcome.audit.action == Action.CONDITION_RETURNED.value


def test_manual_dispatch_takes_the_matching_rules_sla_else_the_default(table: RoutingTable) -> None:
    dispatcher = Actor(name="li.na", role=Role.DISPATCHER)
    matching = dispatch_request(
        table=table,
        event_type="object_thrown",
        severity=Severity.CRITICAL,
        area=Area(site="block-7"),
        department="police_station",
        actor=dispatcher,
        at=NOW,
    )
    assert matching.resolve_within == timedelta(minutes=15)
    other = dispatch_request(
        table=table,
        event_type="water_level",
        severity=Severity.CRITICAL,
        area=Area(site="plaza-1"),
        department="transport_bureau",
        actor=dispatcher,
        at=NOW,
        note="plaza drains belong to roads",
    )
    assert other.resolve_within == timedelta(hours=1)  # default_sla critical
    outcome = apply_transition(item=WorkItem(state=EventState.NEW), request=other)
    assert outcome.deadline == NOW + timedelta(hours=1) and outcome.audit.actor == "li.na"
    with pytest.raises(ValueError, match="unknown department 'roads'"):
        dispatch_request(
            table=table,
            event_type="water_level",
            severity=Severity.CRITICAL,
            area=CULVERT,
            department="roads",
            actor=dispatcher,
            at=NOW,
        )
