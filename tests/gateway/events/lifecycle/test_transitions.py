"""The event state machine: every allowed path, every refusal with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.auth.roles import Role
from gateway.events.lifecycle.models import (
    SYSTEM_ACTOR,
    Action,
    Actor,
    EventState,
    RefusalCode,
    Requirement,
    TransitionRefused,
    TransitionRequest,
    WorkItem,
)
from gateway.events.lifecycle.transitions import TRANSITIONS, allowed_actions, apply_transition

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
DISPATCHER = Actor(name="li.na", role=Role.DISPATCHER)
CENTRE = Actor(name="city-dispatch", role=Role.DISPATCH_CENTRE)


def _request(action: Action, actor: Actor, **fields: object) -> TransitionRequest:
    """A request that satisfies every requirement of ``action`` unless a field overrides it."""
    spec = TRANSITIONS[action]
    defaults: dict[str, object] = {"at": T0}
    if Requirement.NOTE in spec.requires:
        defaults["note"] = "checked on site"
    if Requirement.DEPARTMENT in spec.requires:
        defaults["department"] = "transport_bureau"
    defaults.update(fields)
    return TransitionRequest(action=action, actor=actor, **defaults)  # type: ignore[arg-type]


def _allowed_actor(action: Action) -> Actor:
    return Actor(name="someone", role=sorted(TRANSITIONS[action].roles)[0])


def test_happy_path_records_every_step_and_sets_the_deadline() -> None:
    item = WorkItem(state=EventState.NEW)
    steps = [
        (
            SYSTEM_ACTOR,
            Action.DISPATCH,
            {"department": "transport_bureau", "resolve_within": timedelta(hours=2)},
        ),
        (CENTRE, Action.ACCEPT, {}),
        (CENTRE, Action.START, {}),
        (CENTRE, Action.RESOLVE, {"note": "culvert cleared, road reopened"}),
        (CENTRE, Action.CLOSE, {"rating": 5}),
    ]
    audit = []
    deadline = None
    for minute, (actor, action, fields) in enumerate(steps):
        outcome = apply_transition(
            item=item,
            request=TransitionRequest(
                action=action, actor=actor, at=T0 + timedelta(minutes=minute), **fields
            ),  # type: ignore[arg-type]
        )
        audit.append(outcome.audit)
        deadline = outcome.deadline or deadline
        item = WorkItem(state=outcome.state, department=outcome.department)
    assert item == WorkItem(state=EventState.CLOSED, department="transport_bureau")
    assert deadline == T0 + timedelta(hours=2)
    assert [(record.from_state, record.to_state) for record in audit] == [
        (EventState.NEW, EventState.DISPATCHED),
        (EventState.DISPATCHED, EventState.ACCEPTED),
        (EventState.ACCEPTED, EventState.IN_PROGRESS),
        (EventState.IN_PROGRESS, EventState.RESOLVED),
        (EventState.RESOLVED, EventState.CLOSED),
    ]
    assert audit[0].actor == "gateway" and audit[0].role == "system"
    assert audit[3].note == "culvert cleared, road reopened"
    assert audit[4].at == T0 + timedelta(minutes=4)


def test_close_keeps_the_rating() -> None:
    outcome = apply_transition(
        item=WorkItem(state=EventState.RESOLVED, department="d1"),
        request=TransitionRequest(action=Action.CLOSE, actor=CENTRE, at=T0, rating=3),
    )
    assert outcome.rating == 3 and outcome.state is EventState.CLOSED


@pytest.mark.parametrize("action", [Action.CONDITION_CLEARED, Action.CONDITION_RETURNED])
@pytest.mark.parametrize("state", list(EventState))
def test_condition_changes_are_recorded_but_do_not_move_the_work_item(
    action: Action, state: EventState
) -> None:
    outcome = apply_transition(
        item=WorkItem(state=state, department="d1"),
        request=TransitionRequest(
            action=action, actor=SYSTEM_ACTOR, at=T0, note="water 3 cm below threshold"
        ),
    )
    assert outcome.state is state
    assert outcome.audit.from_state is state and outcome.audit.to_state is state
    assert outcome.audit.action == action.value and outcome.department == "d1"


def test_rejected_event_must_go_to_another_department() -> None:
    rejected = apply_transition(
        item=WorkItem(state=EventState.DISPATCHED, department="police_station"),
        request=TransitionRequest(action=Action.REJECT, actor=CENTRE, at=T0, note="not a police matter"),
    )
    item = WorkItem(state=rejected.state, department=rejected.department)
    assert item.state is EventState.REJECTED
    with pytest.raises(TransitionRefused) as refused:
        apply_transition(
            item=item,
            request=TransitionRequest(
                action=Action.DISPATCH, actor=DISPATCHER, at=T0, department="police_station"
            ),
        )
    assert refused.value.code is RefusalCode.SAME_DEPARTMENT
    assert "police_station" in refused.value.reason and "another department" in refused.value.reason
    rerouted = apply_transition(
        item=item,
        request=TransitionRequest(
            action=Action.DISPATCH,
            actor=DISPATCHER,
            at=T0 + timedelta(minutes=5),
            department="property_management",
            resolve_within=timedelta(hours=4),
        ),
    )
    assert rerouted.state is EventState.DISPATCHED
    assert rerouted.department == "property_management"
    assert rerouted.deadline == T0 + timedelta(minutes=5, hours=4)


def test_return_to_triage_forgets_the_department_and_starts_the_triage_clock() -> None:
    outcome = apply_transition(
        item=WorkItem(state=EventState.REJECTED, department="police_station"),
        request=TransitionRequest(
            action=Action.RETURN_TO_TRIAGE, actor=DISPATCHER, at=T0, resolve_within=timedelta(minutes=15)
        ),
    )
    assert outcome.state is EventState.NEW and outcome.department is None
    assert outcome.deadline == T0 + timedelta(minutes=15)


def test_reraise_sends_a_closed_event_back_with_a_new_deadline() -> None:
    outcome = apply_transition(
        item=WorkItem(state=EventState.CLOSED, department="transport_bureau"),
        request=TransitionRequest(
            action=Action.RERAISE,
            actor=SYSTEM_ACTOR,
            at=T0,
            note="water back within the suppression window",
            resolve_within=timedelta(minutes=30),
        ),
    )
    assert outcome.state is EventState.DISPATCHED
    assert outcome.department == "transport_bureau"
    assert outcome.deadline == T0 + timedelta(minutes=30)


WRONG_STATE_CASES = [
    (action, state)
    for action, spec in TRANSITIONS.items()
    for state in EventState
    if state not in spec.sources
]


@pytest.mark.parametrize(("action", "state"), WRONG_STATE_CASES, ids=lambda value: str(value))
def test_every_transition_from_a_wrong_state_is_refused_with_the_reason(
    action: Action, state: EventState
) -> None:
    with pytest.raises(TransitionRefused) as refused:
        apply_transition(
            item=WorkItem(state=state, department="d1"), request=_request(action, _allowed_actor(action))
        )
    assert refused.value.code is RefusalCode.WRONG_STATE
    reason = refused.value.reason
    assert f"cannot {action.value} an event that is {state.value}" in reason
    for source in TRANSITIONS[action].sources:
        assert source.value in reason


ROLE_CASES = [
    (action, role) for action, spec in TRANSITIONS.items() for role in Role if role not in spec.roles
]


@pytest.mark.parametrize(("action", "role"), ROLE_CASES, ids=lambda value: str(value))
def test_every_role_without_the_right_is_refused(action: Action, role: Role) -> None:
    source = sorted(TRANSITIONS[action].sources)[0]
    with pytest.raises(TransitionRefused) as refused:
        apply_transition(
            item=WorkItem(state=source, department="d1"), request=_request(action, Actor(name="x", role=role))
        )
    assert refused.value.code is RefusalCode.ROLE_NOT_ALLOWED
    assert f"role {role.value!r} may not {action.value}" in refused.value.reason


def test_viewer_and_installer_can_change_nothing() -> None:
    for role in (Role.VIEWER, Role.INSTALLER):
        for state in EventState:
            assert allowed_actions(WorkItem(state=state), role) == []


def test_role_is_checked_before_the_state_so_the_state_does_not_leak() -> None:
    with pytest.raises(TransitionRefused) as refused:
        apply_transition(
            item=WorkItem(state=EventState.CLOSED),
            request=TransitionRequest(action=Action.ACCEPT, actor=Actor(name="v", role=Role.VIEWER), at=T0),
        )
    assert refused.value.code is RefusalCode.ROLE_NOT_ALLOWED
    assert "closed" not in refused.value.reason


NOTE_ACTIONS = [action for action, spec in TRANSITIONS.items() if Requirement.NOTE in spec.requires]


@pytest.mark.parametrize("action", NOTE_ACTIONS)
@pytest.mark.parametrize("note", [None, "", "   "])
def test_transitions_needing_a_note_refuse_without_one(action: Action, note: str | None) -> None:
    source = sorted(TRANSITIONS[action].sources)[0]
    with pytest.raises(TransitionRefused) as refused:
        apply_transition(
            item=WorkItem(state=source, department="d1"),
            request=_request(action, _allowed_actor(action), note=note),
        )
    assert refused.value.code is RefusalCode.NOTE_REQUIRED
    assert action.value in refused.value.reason and "note" in refused.value.reason


def test_dispatch_needs_a_department() -> None:
    with pytest.raises(TransitionRefused) as refused:
        apply_transition(
            item=WorkItem(state=EventState.NEW),
            request=_request(Action.DISPATCH, DISPATCHER, department=None),
        )
    assert refused.value.code is RefusalCode.DEPARTMENT_REQUIRED


@pytest.mark.parametrize("rating", [0, 6, -1, 10])
def test_rating_out_of_range_is_refused(rating: int) -> None:
    with pytest.raises(TransitionRefused) as refused:
        apply_transition(
            item=WorkItem(state=EventState.RESOLVED),
            request=TransitionRequest(action=Action.CLOSE, actor=CENTRE, at=T0, rating=rating),
        )
    assert refused.value.code is RefusalCode.RATING_OUT_OF_RANGE
    assert str(rating) in refused.value.reason


def test_rating_is_only_given_when_closing() -> None:
    with pytest.raises(TransitionRefused) as refused:
        apply_transition(
            item=WorkItem(state=EventState.IN_PROGRESS),
            request=TransitionRequest(action=Action.RESOLVE, actor=CENTRE, at=T0, note="done", rating=4),
        )
    assert refused.value.code is RefusalCode.RATING_NOT_ALLOWED


def test_finished_states_are_not_open() -> None:
    assert {state for state in EventState if not state.is_open} == {EventState.CLOSED, EventState.CANCELLED}
    # Only the gateway's re-raise leaves closed; nothing leaves cancelled.
    assert {a for a, spec in TRANSITIONS.items() if EventState.CLOSED in spec.sources and spec.target} == {
        Action.RERAISE
    }
    assert not [a for a, spec in TRANSITIONS.items() if EventState.CANCELLED in spec.sources and spec.target]


def test_every_action_is_in_the_table_with_a_description() -> None:
    assert set(TRANSITIONS) == set(Action)
    assert all(spec.description and spec.roles and spec.sources for spec in TRANSITIONS.values())
