"""Event operations: device conditions through de-duplication, routing and dispatch; queries; callbacks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citywatch.protocol.messages import GATEWAY_EVENT_TYPES, EventMessage, EventPhase, EventType, Severity
from gateway.auth.roles import Role
from gateway.cap import service as cap_service
from gateway.db import utcnow
from gateway.devices.models import Device
from gateway.events import flows
from gateway.events.lifecycle.dedup import DedupAction, KnownEvent, RaisedCondition
from gateway.events.lifecycle.models import (
    FINISHED_STATES,
    SYSTEM_ACTOR,
    Action,
    Actor,
    EventState,
    RefusalCode,
    TransitionRefused,
    TransitionRequest,
    WorkItem,
)
from gateway.events.lifecycle.plans import Area, ConditionPlan, dispatch_request, plan_raised_condition
from gateway.events.lifecycle.transitions import apply_transition
from gateway.events.models import Event, EventAudit, EventRevision
from gateway.events.policy import EVENT_POLICY_KEY, EventPolicy, default_routing
from gateway.routing.service import route

# Webhook types of the changes a department hears about; lifecycle actions are "event.<action>".
CREATED, UPDATED, CLEARED = "event.created", "event.updated", "event.cleared"


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"  # merged into an open event, re-raised, or a repeat recorded
    CLEARED = "cleared"
    DUPLICATE = "duplicate"  # (event_id, seq) already applied: a QoS 1 redelivery or a replay
    STALE = "stale"  # older than a revision already applied, or after the condition's end
    UNKNOWN_EVENT = "unknown_event"  # an update or end of a condition never seen begin: refused


def policy_of(session: Session) -> EventPolicy:
    """The gateway puts its policy in every session's ``info`` (runner); a bare session gets the default."""
    policy = session.info.get(EVENT_POLICY_KEY)
    if isinstance(policy, EventPolicy):
        return policy
    return EventPolicy(routing=default_routing())


def _higher(a: str, b: str) -> str:
    return a if Severity(a).rank >= Severity(b).rank else b


def apply_device_event(
    *, session: Session, device: Device, message: EventMessage
) -> tuple[Outcome, Event | None]:
    """Apply one device event message; idempotent on (device, event_id, seq).

    One condition is one ``event_id``. A ``new`` goes through de-duplication (a repeat of the condition
    folds into the device's open event of that type, audited and pushed); an ``update`` or ``end`` must
    name an ``event_id`` this gateway has seen, else it is refused (``UNKNOWN_EVENT``, nothing written).
    An event follows the condition last folded into it: only that condition's ``end`` clears it.
    """
    applied = session.execute(
        select(EventRevision.event_id, func.max(EventRevision.seq))
        .where(EventRevision.device_id == device.id, EventRevision.device_event_id == message.event_id)
        .group_by(EventRevision.event_id)
    ).first()
    if applied is None:
        if message.phase is not EventPhase.NEW:
            return Outcome.UNKNOWN_EVENT, None
        outcome, raised = raise_condition(
            session=session,
            device=device,
            event_type=message.type,
            severity=message.severity,
            confidence=message.confidence,
            details=dict(message.details),
            snapshot_id=message.snapshot_id,
            device_event_id=message.event_id,
            seq=message.seq,
            started_at=message.started_at,
            seen_at=message.ts,
            actor=device.id,
        )
        _record_revision(session=session, event=raised, message=message)
        return outcome, raised
    event_pk, max_seq = applied
    if message.seq == max_seq or session.scalar(
        select(EventRevision.id).where(
            EventRevision.device_id == device.id,
            EventRevision.device_event_id == message.event_id,
            EventRevision.seq == message.seq,
        )
    ):
        return Outcome.DUPLICATE, None
    if message.seq < max_seq:
        return Outcome.STALE, None
    event = get(session=session, event_id=event_pk, for_update=True)
    if event.device_event_id != message.event_id:
        _record_earlier_condition(session=session, event=event, device=device, message=message)
        return Outcome.UPDATED, event
    if event.cleared_at is not None:
        return Outcome.STALE, None  # the condition already ended; nothing after the end counts
    _merge_message(event, message)
    _record_revision(session=session, event=event, message=message)
    if message.phase is EventPhase.END:
        clear_condition(session=session, event=event, at=message.ts, note="condition cleared on the device")
        return Outcome.CLEARED, event
    policy = policy_of(session)
    now = policy.clock()
    flows.annotate(session=session, event=event, action="updated", actor=device.id, role="device", at=now)
    flows.publish(session=session, event=event, message_type=UPDATED, policy=policy, at=now)
    return Outcome.UPDATED, event


def _record_earlier_condition(
    *, session: Session, event: Event, device: Device, message: EventMessage
) -> None:
    """A message of a condition folded in before the one the event follows (the device raised another
    ``event_id`` since): recorded and audited; it neither changes the event's condition nor ends it."""
    now = policy_of(session).clock()
    event.revisions += 1
    event.last_device_ts = max(event.last_device_ts, message.ts)
    event.updated_at = now
    _record_revision(session=session, event=event, message=message)
    verb = "ended" if message.phase is EventPhase.END else "updated"
    note = (
        f"earlier condition {message.event_id} {verb} (seq {message.seq}); "
        f"this event follows {event.device_event_id}, which is unchanged"
    )
    flows.annotate(
        session=session, event=event, action="updated", actor=device.id, role="device", at=now, note=note
    )


def raise_condition(
    *,
    session: Session,
    device: Device,
    event_type: str,
    severity: Severity,
    confidence: float,
    details: dict[str, Any],
    device_event_id: str,
    started_at: datetime,
    seen_at: datetime,
    actor: str,
    snapshot_id: str | None = None,
    seq: int = 0,
    _retried: bool = False,
) -> tuple[Outcome, Event]:
    """A condition is (newly) raised: de-duplicate, route, dispatch and push in the caller's transaction."""
    policy = policy_of(session)
    now = policy.clock()
    candidates = session.scalars(
        select(Event)
        .where(
            Event.device_id == device.id,
            Event.type == event_type,
            _may_take(seen_at - policy.suppression_window),
        )
        .order_by(Event.id)
        .with_for_update(key_share=True)  # the merge below counts on them: see LOCK
        .execution_options(populate_existing=True)
    ).all()
    plan = _plan(device, event_type, Severity(severity), seen_at, candidates, policy, now)
    decision = plan.decision
    if decision.action is DedupAction.NEW:
        event = _new_event(
            device,
            event_type,
            severity,
            confidence,
            details,
            started_at=started_at,
            seen_at=seen_at,
            device_event_id=device_event_id,
            seq=seq,
            snapshot_id=snapshot_id,
            now=now,
        )
        try:
            # A savepoint: when another gateway opened this (device, type)'s event since the look-up
            # above, the one-open-event index refuses this insert (on PostgreSQL, after waiting for
            # that gateway's commit); the condition is then planned again and merges into that event.
            with session.begin_nested():
                session.add(event)
                session.flush()
            cap_service.started_chain(session=session, event=event)
        except IntegrityError:
            if _retried:
                raise
            return raise_condition(
                session=session,
                device=device,
                event_type=event_type,
                severity=severity,
                confidence=confidence,
                details=details,
                device_event_id=device_event_id,
                started_at=started_at,
                seen_at=seen_at,
                actor=actor,
                snapshot_id=snapshot_id,
                seq=seq,
                _retried=True,
            )
        flows.annotate(session=session, event=event, action="created", actor=actor, role="device", at=now)
        outcome = Outcome.CREATED
    else:
        event = next(e for e in candidates if str(e.id) == decision.event_id)
        event.severity = decision.severity or event.severity
        event.confidence = max(event.confidence, confidence)
        event.details = details
        event.snapshot_id = snapshot_id or event.snapshot_id
        event.device_event_id, event.last_seq = device_event_id, seq
        event.revisions = decision.count
        event.last_device_ts = decision.last_seen or event.last_device_ts
        event.updated_at = now
        if decision.action is DedupAction.MERGE and event.cleared_at is not None:
            flows.transition(
                session=session,
                event=event,
                request=TransitionRequest(
                    action=Action.CONDITION_RETURNED,
                    actor=SYSTEM_ACTOR,
                    at=now,
                    note=f"the condition came back ({device_event_id}) before the work item was finished",
                ),
            )
        elif decision.action is DedupAction.MERGE:  # the other actions audit themselves (plan.requests)
            flows.annotate(
                session=session,
                event=event,
                action="merged",
                actor=actor,
                role="device",
                at=now,
                note=f"the same condition raised again as {device_event_id}: merged into this event",
            )
        event.cleared_at = None
        outcome = Outcome.UPDATED
    _follow_plan(session=session, event=event, plan=plan, now=now)
    if plan.push is not None and event.department is not None:
        message_type = CREATED if outcome is Outcome.CREATED else UPDATED
        flows.publish(session=session, event=event, message_type=message_type, policy=policy, at=now)
    elif outcome is Outcome.CREATED:
        flows.publish(session=session, event=event, message_type=CREATED, policy=policy, at=now)  # feed only
    return outcome, event


def _may_take(window_start: datetime) -> ColumnElement[bool]:
    """SQL: the events a newly raised condition may fold into (de-duplication's candidates)."""
    return or_(Event.state.not_in([s.value for s in FINISHED_STATES]), Event.last_device_ts >= window_start)


def _plan(
    device: Device,
    event_type: str,
    severity: Severity,
    seen_at: datetime,
    candidates: Sequence[Event],
    policy: EventPolicy,
    now: datetime,
) -> ConditionPlan:
    return plan_raised_condition(
        condition=RaisedCondition(
            device_id=device.id, event_type=event_type, severity=severity, seen_at=seen_at
        ),
        known=[_known(event) for event in candidates],
        area=Area(site=device.site, grid=device.grid, town=device.town),
        table=policy.routing,
        suppression_window=policy.suppression_window,
        now=now,
    )


def _new_event(
    device: Device,
    event_type: str,
    severity: Severity,
    confidence: float,
    details: dict[str, Any],
    *,
    started_at: datetime,
    seen_at: datetime,
    device_event_id: str,
    seq: int,
    snapshot_id: str | None,
    now: datetime,
) -> Event:
    return Event(
        device_id=device.id,
        site=device.site,
        type=event_type,
        severity=severity,
        confidence=confidence,
        state=EventState.NEW,
        details=details,
        snapshot_id=snapshot_id,
        device_event_id=device_event_id,
        last_seq=seq,
        revisions=1,
        started_at=started_at,
        last_device_ts=seen_at,
        created_at=now,
        updated_at=now,
    )


def _follow_plan(*, session: Session, event: Event, plan: ConditionPlan, now: datetime) -> None:
    """The routing and lifecycle steps the plan asks for (before the push)."""
    if plan.route is not None and plan.route.rule_id is not None:
        event.rule_id = plan.route.rule_id
    for request in plan.requests:
        flows.transition(session=session, event=event, request=request)
    if plan.triage_deadline is not None:
        event.dispatched_at, event.deadline = now, plan.triage_deadline


def clear_condition(*, session: Session, event: Event, at: datetime, note: str) -> None:
    """The device reports the condition over: recorded and pushed; the work item stays as it is."""
    clear_conditions(session=session, events=[event], at=at, note=note)


def clear_conditions(*, session: Session, events: Sequence[Event], at: datetime, note: str) -> None:
    """``clear_condition`` for many events at once: their changes and pushes written together."""
    policy = policy_of(session)
    now = policy.clock()
    for event in events:
        event.cleared_at = at
        event.updated_at = now
        flows.transition(
            session=session,
            event=event,
            request=TransitionRequest(action=Action.CONDITION_CLEARED, actor=SYSTEM_ACTOR, at=now, note=note),
        )
    session.flush()
    for event in events:
        flows.publish(session=session, event=event, message_type=CLEARED, policy=policy, at=now, flush=False)


def _known(event: Event) -> KnownEvent:
    return KnownEvent(
        event_id=str(event.id),
        device_id=event.device_id,
        event_type=event.type,
        state=EventState(event.state),
        severity=Severity(event.severity),
        count=event.revisions,
        last_seen=event.last_device_ts,
    )


def _merge_message(event: Event, message: EventMessage) -> None:
    event.severity = _higher(event.severity, message.severity)
    event.confidence = max(event.confidence, message.confidence)
    event.details = dict(message.details)
    event.snapshot_id = message.snapshot_id or event.snapshot_id
    event.device_event_id = message.event_id
    event.last_seq = message.seq
    event.revisions += 1
    event.last_device_ts = max(event.last_device_ts, message.ts)
    event.updated_at = utcnow()


def _record_revision(*, session: Session, event: Event, message: EventMessage) -> None:
    session.add(
        EventRevision(
            event_id=event.id,
            device_id=event.device_id,
            device_event_id=message.event_id,
            seq=message.seq,
            phase=message.phase,
            severity=message.severity,
            device_ts=message.ts,
        )
    )


class EventNotFound(LookupError):
    pass


# Row lock for an event about to change: FOR NO KEY UPDATE (what an UPDATE takes; rows referencing the
# event may still be inserted), re-read after the wait, so that of two gateways changing one event the
# second works on the first's result (no lost update). Nothing on SQLite, whose writers take turns.
LOCK: dict[str, bool] = {"key_share": True}


def get(*, session: Session, event_id: int, for_update: bool = False) -> Event:
    event = (
        session.get(Event, event_id, with_for_update=LOCK, populate_existing=True)
        if for_update
        else session.get(Event, event_id)
    )
    if event is None:
        raise EventNotFound(f"event {event_id} does not exist")
    return event


@dataclass(frozen=True, slots=True)
class EventFilter:
    state: str | None = None
    type: str | None = None
    device_id: str | None = None
    site: str | None = None
    department: str | None = None
    since: datetime | None = None


def list_page(*, session: Session, filters: EventFilter, offset: int, limit: int) -> tuple[list[Event], int]:
    query = select(Event)
    if filters.state is not None:
        query = query.where(Event.state == filters.state)
    if filters.type is not None:
        query = query.where(Event.type == filters.type)
    if filters.device_id is not None:
        query = query.where(Event.device_id == filters.device_id)
    if filters.site is not None:
        query = query.where(Event.site == filters.site)
    if filters.department is not None:
        query = query.where(Event.department == filters.department)
    if filters.since is not None:
        query = query.where(Event.updated_at >= filters.since)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(Event.id.desc()).offset(offset).limit(limit))
    return list(items), total


def audit_trail(*, session: Session, event_id: int) -> list[EventAudit]:
    return list(
        session.scalars(select(EventAudit).where(EventAudit.event_id == event_id).order_by(EventAudit.id))
    )


# Callback actions and the webhook type each pushes. DISPATCH after a rejection is new to its department.
CALLBACK_ACTIONS: Sequence[Action] = (
    Action.DISPATCH,
    Action.ACCEPT,
    Action.ASSIGN,
    Action.START,
    Action.RESOLVE,
    Action.CLOSE,
    Action.REOPEN,
    Action.REJECT,
    Action.CANCEL,
)
# Escalations a person may send (the gateway's escalation loop sends them on its schedule): the same
# transition, audit line and push (``event.supervise``, ``event.urge``) as the loop's.
ESCALATION_ACTIONS: Sequence[Action] = (Action.SUPERVISE, Action.URGE)
# Every action the console offers a person, in its order of buttons.
PERSON_ACTIONS: Sequence[Action] = (*CALLBACK_ACTIONS, *ESCALATION_ACTIONS)


def lacks_department(action: Action, department: str | None) -> bool:
    """A person urges a department: with none responsible (the triage queue) there is no one to urge.
    (The gateway's own escalation loop does urge the triage queue.)"""
    return action is Action.URGE and department is None


def act(
    *,
    session: Session,
    event_id: int,
    action: Action,
    actor: Actor,
    note: str | None = None,
    rating: int | None = None,
    department: str | None = None,
    assignee: str | None = None,
) -> Event:
    """A person or the dispatch centre moves an event through its lifecycle (raises ``TransitionRefused``)."""
    policy = policy_of(session)
    now = policy.clock()
    event = get(session=session, event_id=event_id, for_update=True)
    if action is Action.DISPATCH:
        request = _dispatch(
            session=session, event=event, policy=policy, department=department, actor=actor, at=now, note=note
        )
    elif lacks_department(action, event.department):
        # Role and state are checked first, so a closed event is refused for being closed.
        apply_transition(
            item=WorkItem(state=EventState(event.state)),
            request=TransitionRequest(action=action, actor=actor, at=now),
        )
        raise TransitionRefused(
            RefusalCode.DEPARTMENT_REQUIRED,
            f"event {event.id} has no department to urge: it waits in the triage queue; dispatch it "
            "(or supervise it)",
        )
    elif action is Action.ASSIGN:
        if not assignee:
            raise TransitionRefused(RefusalCode.NOTE_REQUIRED, "assign needs an assignee")
        text = f"assigned to {assignee}" + (f": {note}" if note else "")
        request = TransitionRequest(action=action, actor=actor, at=now, note=text)
    else:
        request = TransitionRequest(action=action, actor=actor, at=now, note=note, rating=rating)
    flows.transition(session=session, event=event, request=request)
    if action is Action.ASSIGN:
        event.assignee = assignee
    # An escalation's note goes out with its push, as the escalation loop's does: it is the message.
    pushed_note = request.note if action in ESCALATION_ACTIONS else None
    flows.publish(
        session=session,
        event=event,
        message_type=f"event.{action.value}",
        policy=policy,
        at=now,
        note=pushed_note,
    )
    if action is Action.REJECT:
        _reroute(session=session, event=event, policy=policy, department=department, by=actor, at=now)
    return event


def _dispatch(
    *,
    session: Session,
    event: Event,
    policy: EventPolicy,
    department: str | None,
    actor: Actor,
    at: datetime,
    note: str | None,
) -> TransitionRequest:
    """Routing by hand: the SLA comes from the rule that would send this event to that department."""
    if department is None:
        raise TransitionRefused(RefusalCode.DEPARTMENT_REQUIRED, "dispatch needs a target department")
    device = session.get(Device, event.device_id)
    area = Area(site=event.site, grid=device.grid if device else None, town=device.town if device else None)
    try:
        return dispatch_request(
            table=policy.routing,
            event_type=event.type,
            severity=Severity(event.severity),
            area=area,
            department=department,
            actor=actor,
            at=at,
            note=note,
        )
    except ValueError as exc:  # a department the routing table does not know
        known = ", ".join(d.id for d in policy.routing.departments)
        raise TransitionRefused(RefusalCode.DEPARTMENT_REQUIRED, f"{exc}; departments are: {known}") from None


def _reroute(
    *, session: Session, event: Event, policy: EventPolicy, department: str | None, by: Actor, at: datetime
) -> None:
    """A rejected event goes where the rejecting side says, else back to the triage queue."""
    if department is not None:
        request = _dispatch(
            session=session,
            event=event,
            policy=policy,
            department=department,
            actor=SYSTEM_ACTOR,
            at=at,
            note=f"re-routed to {department} as {by.name} suggested",
        )
        flows.transition(session=session, event=event, request=request)
        event.rule_id = None
        flows.publish(session=session, event=event, message_type=CREATED, policy=policy, at=at)
        return
    triage = route(policy.routing, event_type="__none__", severity=Severity(event.severity))
    flows.transition(
        session=session,
        event=event,
        request=TransitionRequest(
            action=Action.RETURN_TO_TRIAGE,
            actor=SYSTEM_ACTOR,
            at=at,
            note="returned as not theirs: waits in the triage queue for a dispatcher",
            resolve_within=triage.resolve_within,
        ),
    )


def acknowledge(*, session: Session, event_id: int, by: str, note: str) -> Event:
    """The interim acknowledgement (issue 2's route) is the lifecycle's accept, by a dispatcher."""
    return act(
        session=session,
        event_id=event_id,
        action=Action.ACCEPT,
        actor=Actor(name=by, role=Role.DISPATCHER),
        note=note or None,
    )


def count(*, session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Event)) or 0


def active_since(*, session: Session, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Event).where(Event.created_at >= since)) or 0


GATEWAY_ACTOR = "gateway"


def raise_gateway_event(
    *,
    session: Session,
    device: Device,
    event_type: EventType,
    severity: Severity,
    details: dict[str, Any],
    at: datetime | None = None,
) -> Event | None:
    """Raise a condition the gateway itself sees about a device (``device_offline``).

    It goes through the same de-duplication, routing, audit and outbox as device events. Returns
    None when (device, type) already has an event whose condition is active: raised once, not on
    every check.
    """
    active = session.scalars(
        select(Event).where(
            Event.device_id == device.id, Event.type == event_type, Event.cleared_at.is_(None)
        )
    ).first()
    if active is not None:
        return None
    at = at or utcnow()
    _, event = raise_condition(
        session=session,
        device=device,
        event_type=event_type,
        severity=severity,
        confidence=1.0,
        details=dict(details),
        device_event_id=_gateway_event_id(event_type, at),
        started_at=at,
        seen_at=at,
        actor=GATEWAY_ACTOR,
    )
    return event


def raise_gateway_events(
    *,
    session: Session,
    devices: Sequence[Device],
    event_type: EventType,
    severity: Severity,
    details: Mapping[str, dict[str, Any]],
    at: datetime,
) -> list[Event]:
    """``raise_gateway_event`` for many devices at once (a thousand dropping together): one look-up for
    them all, their new events and audit lines written in one flush each, their CAP messages and outbox
    rows with the caller's commit; a device whose condition may fold into a recent event goes the
    one-at-a-time way. ``details`` by device id.

    For the gateway's own event types only (raised under the caller's cluster-wide lock, so no other
    writer inserts the same device's open event meanwhile: no savepoint per event)."""
    assert event_type in GATEWAY_EVENT_TYPES
    policy = policy_of(session)
    now = policy.clock()
    may_take = _may_take(at - policy.suppression_window)
    rows = session.execute(
        select(Event, may_take.label("may_take"))
        .where(
            Event.device_id.in_([device.id for device in devices]),
            Event.type == event_type,
            or_(Event.cleared_at.is_(None), may_take),
        )
        .order_by(Event.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).all()
    known: dict[str, list[tuple[Event, bool]]] = {}
    for row, candidate in rows:
        known.setdefault(row.device_id, []).append((row, bool(candidate)))
    device_event_id = _gateway_event_id(event_type, at)
    raised: list[Event] = []
    fresh: list[tuple[Event, ConditionPlan]] = []
    for device in devices:
        events = known.get(device.id, [])
        if any(event.cleared_at is None for event, _ in events):
            continue  # active: raised once, not on every check
        candidates = [event for event, candidate in events if candidate]
        plan = _plan(device, event_type, severity, at, candidates, policy, now)
        if plan.decision.action is not DedupAction.NEW:
            event = raise_gateway_event(
                session=session,
                device=device,
                event_type=event_type,
                severity=severity,
                details=details[device.id],
                at=at,
            )
            raised += [event] if event is not None else []
            continue
        event = _new_event(
            device,
            event_type,
            severity,
            1.0,
            dict(details[device.id]),
            started_at=at,
            seen_at=at,
            device_event_id=device_event_id,
            seq=0,
            snapshot_id=None,
            now=now,
        )
        fresh.append((event, plan))
    session.add_all([event for event, _ in fresh])
    session.flush()
    for event, plan in fresh:
        cap_service.started_chain(session=session, event=event)
        flows.annotate(
            session=session, event=event, action="created", actor=GATEWAY_ACTOR, role="device", at=now
        )
        _follow_plan(session=session, event=event, plan=plan, now=now)
    session.flush()  # the lifecycle's changes and audit lines, all events' at once
    for event, _ in fresh:
        flows.publish(session=session, event=event, message_type=CREATED, policy=policy, at=now, flush=False)
        raised.append(event)
    return raised


def _gateway_event_id(event_type: EventType, at: datetime) -> str:
    """The condition id of an event the gateway raises (no device names one)."""
    return f"gw-{event_type}-{int(at.timestamp())}"[:64]


def end_gateway_event(
    *, session: Session, device: Device, event_type: EventType, note: str, at: datetime | None = None
) -> Event | None:
    """The gateway-raised condition of (device, type) is over (the device is heard from again)."""
    event = session.scalars(
        select(Event).where(
            Event.device_id == device.id, Event.type == event_type, Event.cleared_at.is_(None)
        )
    ).first()
    if event is None:
        return None
    clear_condition(session=session, event=event, at=at or utcnow(), note=note)
    return event
