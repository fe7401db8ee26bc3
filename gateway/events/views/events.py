"""/events routes: lists, details with the audit trail, SLA metrics and the dispatch centre's callbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from citywatch.protocol.messages import EventType
from gateway.api.deps import QueryTime, SessionDep
from gateway.api.responses import FORBIDDEN, UNREADABLE_BODY, conflict, not_found
from gateway.auth.deps import AnyCaller, CallbackCaller, DispatcherCaller, EscalationCaller
from gateway.events import service
from gateway.events.lifecycle.models import Action, EventState, RefusalCode, TransitionRefused
from gateway.events.lifecycle.sla import handling_metrics
from gateway.events.lifecycle.transitions import TRANSITIONS
from gateway.events.models import (
    AcknowledgeRequest,
    CallbackRequest,
    EscalationRequest,
    Event,
    EventDetail,
    EventPage,
    MetricsRead,
    read_event,
    sla_view,
)
from gateway.fields import Name

router = APIRouter(prefix="/events", tags=["events"])
EventId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The gateway's event id")]
NO_SUCH_EVENT = not_found("No such event")
TRANSITION_RESPONSES = (
    UNREADABLE_BODY
    | FORBIDDEN
    | NO_SUCH_EVENT
    | conflict("Not allowed from the event's state; the detail says why")
)


def _detail(session: Session, event_id: int) -> EventDetail:
    try:
        event = service.get(session=session, event_id=event_id)
    except service.EventNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    policy = service.policy_of(session)
    read = read_event(event, now=policy.clock(), policy=policy.escalation)
    audit = service.audit_trail(session=session, event_id=event_id)
    return EventDetail.model_validate(read.model_dump() | {"audit": audit})


@router.get("", response_model=EventPage, summary="Events, newest first")
def list_events(
    _caller: AnyCaller,
    session: SessionDep,
    state: EventState | None = None,
    type_: Annotated[EventType | None, Query(alias="type")] = None,
    device: Annotated[str, Name(64)] | None = None,
    site: Annotated[str, Name(64)] | None = None,
    department: Annotated[str, Name(64)] | None = None,
    since: Annotated[
        QueryTime | None, Query(description="Changed at or after (ISO 8601 with offset)")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EventPage:
    filters = service.EventFilter(
        state=state, type=type_, device_id=device, site=site, department=department, since=since
    )
    items, total = service.list_page(session=session, filters=filters, offset=offset, limit=limit)
    policy = service.policy_of(session)
    now = policy.clock()
    return EventPage(
        items=[read_event(e, now=now, policy=policy.escalation) for e in items],
        total=total,
        offset=offset,
        limit=limit,
    )


@router.get("/metrics", response_model=MetricsRead, summary="On-time closure rate and mean handling time")
def metrics(
    _caller: AnyCaller,
    session: SessionDep,
    since: Annotated[
        QueryTime | None, Query(description="Events raised at or after (ISO 8601 with offset)")
    ] = None,
) -> MetricsRead:
    query = select(Event).where(Event.dispatched_at.is_not(None))
    if since is not None:
        query = query.where(Event.created_at >= since)
    policy = service.policy_of(session)
    figures = handling_metrics((sla_view(e) for e in session.scalars(query)), now=policy.clock())
    mean = figures.mean_handling_time
    return MetricsRead(
        finished=figures.finished,
        on_time=figures.on_time,
        on_time_rate=figures.on_time_rate,
        mean_handling_time_s=mean.total_seconds() if mean is not None else None,
        open_overdue=figures.open_overdue,
    )


@router.get(
    "/{event_id}",
    response_model=EventDetail,
    summary="One event with its audit trail",
    responses=NO_SUCH_EVENT,
)
def get_event(event_id: EventId, _caller: AnyCaller, session: SessionDep) -> EventDetail:
    return _detail(session, event_id)


def _act(session: Session, event_id: int, run: Callable[[], object]) -> EventDetail:
    try:
        run()
        session.commit()
    except service.EventNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except TransitionRefused as exc:
        session.rollback()
        code = (
            status.HTTP_403_FORBIDDEN
            if exc.code is RefusalCode.ROLE_NOT_ALLOWED
            else status.HTTP_409_CONFLICT
        )
        raise HTTPException(code, exc.reason) from None
    return _detail(session, event_id)


@router.post(
    "/{event_id}/acknowledge",
    response_model=EventDetail,
    summary="Acknowledge a dispatched event: the lifecycle's accept (kept for issue 2 clients)",
    responses=TRANSITION_RESPONSES,
)
def acknowledge_event(
    event_id: EventId, body: AcknowledgeRequest, _caller: DispatcherCaller, session: SessionDep
) -> EventDetail:
    return _act(
        session,
        event_id,
        lambda: service.acknowledge(session=session, event_id=event_id, by=body.by, note=body.note),
    )


def _add_transition_route(action: Action, handle: Callable[..., EventDetail]) -> None:
    """``POST /events/{event_id}/<action>``, described by the lifecycle table."""
    handle.__name__ = f"{action.value}_event"
    router.add_api_route(
        f"/{{event_id}}/{action.value}",
        handle,
        methods=["POST"],
        response_model=EventDetail,
        summary=f"{action.value.capitalize()}: {TRANSITIONS[action].description}",
        responses=TRANSITION_RESPONSES,
        tags=["lifecycle"],
    )


def _callback_route(action: Action) -> None:
    def handle(
        event_id: EventId, body: CallbackRequest, caller: CallbackCaller, session: SessionDep
    ) -> EventDetail:
        return _act(
            session,
            event_id,
            lambda: service.act(
                session=session,
                event_id=event_id,
                action=action,
                actor=caller.actor(),
                note=body.note,
                rating=body.rating,
                department=body.department,
                assignee=body.assignee,
            ),
        )

    _add_transition_route(action, handle)


for _action in service.CALLBACK_ACTIONS:
    _callback_route(_action)


def _escalation_route(action: Action) -> None:
    """A person urges or supervises an open event: the transition, audit line and push the escalation
    loop makes, by the caller (the lifecycle table decides who may: supervise is not a dispatcher's)."""

    def handle(
        event_id: EventId, body: EscalationRequest, caller: EscalationCaller, session: SessionDep
    ) -> EventDetail:
        return _act(
            session,
            event_id,
            lambda: service.act(
                session=session, event_id=event_id, action=action, actor=caller.actor(), note=body.note
            ),
        )

    _add_transition_route(action, handle)


for _action in service.ESCALATION_ACTIONS:
    _escalation_route(_action)
