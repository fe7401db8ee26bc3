"""SLA colours, the escalation schedule and handling metrics, with an injected clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.events.lifecycle.models import Action, EventState
from gateway.events.lifecycle.sla import (
    EscalationPolicy,
    SlaColour,
    SlaView,
    due_escalations,
    handling_metrics,
    sla_colour,
)

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
POLICY = EscalationPolicy(yellow_at=0.8, urge_every=timedelta(minutes=30), max_urges=2)


def _dispatched(
    event_id: str = "ev1", *, within: timedelta = timedelta(hours=1), **fields: object
) -> SlaView:
    view = SlaView(event_id=event_id, state=EventState.DISPATCHED, dispatched_at=T0, deadline=T0 + within)
    return replace(view, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("minutes", "colour"),
    [
        (0, SlaColour.GREEN),
        (47, SlaColour.GREEN),
        (48, SlaColour.YELLOW),
        (59, SlaColour.YELLOW),
        (60, SlaColour.RED),
    ],
)
def test_colour_turns_yellow_at_80_percent_and_red_at_the_deadline(minutes: int, colour: SlaColour) -> None:
    assert sla_colour(_dispatched(), now=T0 + timedelta(minutes=minutes), policy=POLICY) is colour


def test_yellow_threshold_is_configurable() -> None:
    early = EscalationPolicy(yellow_at=0.5)
    assert sla_colour(_dispatched(), now=T0 + timedelta(minutes=30), policy=early) is SlaColour.YELLOW
    assert sla_colour(_dispatched(), now=T0 + timedelta(minutes=30), policy=POLICY) is SlaColour.GREEN


def test_resolved_events_keep_the_colour_they_finished_with() -> None:
    in_time = _dispatched(state=EventState.CLOSED, resolved_at=T0 + timedelta(minutes=59))
    late = _dispatched(state=EventState.RESOLVED, resolved_at=T0 + timedelta(minutes=61))
    much_later = T0 + timedelta(days=3)
    assert sla_colour(in_time, now=much_later, policy=POLICY) is SlaColour.GREEN
    assert sla_colour(late, now=much_later, policy=POLICY) is SlaColour.RED


@pytest.mark.parametrize("state", [EventState.REJECTED, EventState.CANCELLED])
def test_no_colour_without_a_running_clock(state: EventState) -> None:
    assert sla_colour(_dispatched(state=state), now=T0, policy=POLICY) is SlaColour.NONE
    assert sla_colour(SlaView(event_id="x", state=state), now=T0, policy=POLICY) is SlaColour.NONE


def test_new_event_has_a_colour_only_while_it_waits_in_triage() -> None:
    assert sla_colour(SlaView(event_id="x", state=EventState.NEW), now=T0, policy=POLICY) is SlaColour.NONE
    queued = _dispatched(state=EventState.NEW, within=timedelta(minutes=15))
    assert sla_colour(queued, now=T0 + timedelta(minutes=12), policy=POLICY) is SlaColour.YELLOW
    assert sla_colour(queued, now=T0 + timedelta(minutes=15), policy=POLICY) is SlaColour.RED
    due = due_escalations([queued], now=T0 + timedelta(minutes=15), policy=POLICY)
    assert [(e.action, e.state) for e in due] == [(Action.SUPERVISE, EventState.NEW)]


def test_escalation_schedule_supervise_then_urge_then_stop() -> None:
    """Drive a scheduler minute by minute, recording what it emits, as the gateway would."""
    event = _dispatched(state=EventState.IN_PROGRESS)
    emitted = []
    now = T0
    while now <= T0 + timedelta(hours=5):
        for escalation in due_escalations([event], now=now, policy=POLICY):
            emitted.append((now, escalation.action, escalation.level))
            event = replace(event, escalations_sent=escalation.level, last_escalated_at=now)
        now += timedelta(minutes=1)
    deadline = T0 + timedelta(hours=1)
    assert emitted == [
        (deadline, Action.SUPERVISE, 1),
        (deadline + timedelta(minutes=30), Action.URGE, 2),
        (deadline + timedelta(minutes=60), Action.URGE, 3),
    ]


def test_no_escalation_before_the_deadline_or_once_resolved() -> None:
    assert due_escalations([_dispatched()], now=T0 + timedelta(minutes=59), policy=POLICY) == []
    for state in (
        EventState.RESOLVED,
        EventState.CLOSED,
        EventState.CANCELLED,
        EventState.REJECTED,
    ):
        assert due_escalations([_dispatched(state=state)], now=T0 + timedelta(days=1), policy=POLICY) == []


def test_after_an_outage_escalations_catch_up_one_step_at_a_time() -> None:
    late = T0 + timedelta(hours=4)  # deadline + 3 h: all three escalations are overdue
    event = _dispatched()
    first = due_escalations([event], now=late, policy=POLICY)
    assert [(e.action, e.level) for e in first] == [(Action.SUPERVISE, 1)]
    assert first[0].overdue_by == timedelta(hours=3)
    event = replace(event, escalations_sent=1, last_escalated_at=late)
    assert due_escalations([event], now=late + timedelta(minutes=1), policy=POLICY) == []
    second = due_escalations([event], now=late + timedelta(minutes=30), policy=POLICY)
    assert [(e.action, e.level) for e in second] == [(Action.URGE, 2)]


def test_escalations_come_oldest_deadline_first_and_make_audit_records() -> None:
    events = [
        _dispatched("later", within=timedelta(hours=2)),
        _dispatched("sooner", within=timedelta(minutes=30)),
        _dispatched("in-time", within=timedelta(hours=6)),
    ]
    now = T0 + timedelta(hours=3)
    due = due_escalations(events, now=now, policy=POLICY)
    assert [e.event_id for e in due] == ["sooner", "later"]
    record = due[0].audit(at=now)
    assert record.action == "supervise" and record.actor == "gateway"
    assert record.from_state is record.to_state is EventState.DISPATCHED
    assert record.note == "overdue by 150 min; escalation 1"


def test_unlimited_urges_continue() -> None:
    policy = EscalationPolicy(urge_every=timedelta(minutes=10))
    event = _dispatched(escalations_sent=48, last_escalated_at=T0 + timedelta(hours=9))
    due = due_escalations([event], now=T0 + timedelta(hours=9, minutes=10), policy=policy)
    assert [(e.action, e.level) for e in due] == [(Action.URGE, 49)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"yellow_at": 1.0}, "between 0 and 1"),
        ({"yellow_at": 0.0}, "between 0 and 1"),
        ({"urge_every": timedelta(0)}, "positive"),
        ({"max_urges": -1}, "0 or more"),
    ],
)
def test_policy_mistakes_are_explained(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EscalationPolicy(**fields)  # type: ignore[arg-type]


def test_handling_metrics() -> None:
    events = [
        _dispatched("a", state=EventState.CLOSED, resolved_at=T0 + timedelta(minutes=30)),
        _dispatched("b", state=EventState.RESOLVED, resolved_at=T0 + timedelta(minutes=90)),
        _dispatched("c", state=EventState.CLOSED, resolved_at=T0 + timedelta(minutes=60)),
        _dispatched("d", state=EventState.IN_PROGRESS),  # overdue at `now`
        _dispatched("e", state=EventState.ACCEPTED, within=timedelta(days=1)),  # running, in time
        SlaView(event_id="f", state=EventState.NEW),  # never dispatched
        _dispatched("g", state=EventState.CANCELLED),  # false alarm: not counted
    ]
    metrics = handling_metrics(events, now=T0 + timedelta(hours=2))
    assert metrics.finished == 3
    assert metrics.on_time == 2  # exactly at the deadline counts as on time
    assert metrics.on_time_rate == pytest.approx(2 / 3)
    assert metrics.mean_handling_time == timedelta(minutes=60)
    assert metrics.open_overdue == 1


def test_handling_metrics_of_nothing() -> None:
    metrics = handling_metrics([], now=T0)
    assert metrics.finished == 0 and metrics.on_time_rate is None and metrics.mean_handling_time is None
