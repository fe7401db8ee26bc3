"""Every change of an event goes through here: the lifecycle transition, its audit record, the push.

``transition`` applies one lifecycle request to an event row (state, department, SLA fields) and
appends the audit record; ``annotate`` appends a record that changes nothing else; ``publish``
renders the event's next CAP 1.2 message (kept for the feed and later references) and queues the
push to the responsible department's endpoints, in the caller's transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.cap import service as cap_service
from gateway.dispatch import service as dispatch_service
from gateway.events.lifecycle.models import (
    Action,
    AuditRecord,
    EventState,
    TransitionOutcome,
    TransitionRequest,
    WorkItem,
)
from gateway.events.lifecycle.transitions import apply_transition
from gateway.events.models import Event, EventAudit
from gateway.events.policy import EventPolicy
from gateway.evidence.links import event_links

log = logging.getLogger("gateway.events")


def record(*, session: Session, event: Event, audit: AuditRecord) -> None:
    """Append one audit line (the event must be flushed, so it has an id)."""
    session.add(
        EventAudit(
            event_id=event.id,
            at=audit.at,
            actor=audit.actor,
            role=audit.role,
            action=audit.action,
            from_status=audit.from_state.value,
            to_status=audit.to_state.value,
            note=audit.note or "",
        )
    )


def annotate(
    *, session: Session, event: Event, action: str, actor: str, role: str, at: datetime, note: str = ""
) -> None:
    """An audit line that changes no state (device updates, pushes)."""
    state = EventState(event.state)
    record(
        session=session,
        event=event,
        audit=AuditRecord(
            action=action, actor=actor, role=role, at=at, from_state=state, to_state=state, note=note
        ),
    )


def transition(*, session: Session, event: Event, request: TransitionRequest) -> TransitionOutcome:
    """Apply ``request`` (raises ``TransitionRefused``), update the row's lifecycle fields, audit it."""
    outcome = apply_transition(
        item=WorkItem(state=EventState(event.state), department=event.department), request=request
    )
    event.state, event.department = outcome.state, outcome.department
    at = request.at
    if outcome.deadline is not None:  # (re-)dispatched or queued in triage: a new SLA clock
        event.dispatched_at, event.deadline = at, outcome.deadline
        event.escalations_sent, event.last_escalated_at = 0, None
    action = request.action
    if action is Action.RESOLVE:
        event.resolved_at = at
    elif action is Action.CLOSE:
        event.closed_at, event.rating = at, outcome.rating
    elif action in (Action.REOPEN, Action.RERAISE):
        event.resolved_at = event.closed_at = None
    elif action is Action.RETURN_TO_TRIAGE:
        event.rule_id = None
    if action is not Action.SUPERVISE and action is not Action.URGE:
        event.updated_at = at
    record(session=session, event=event, audit=outcome.audit)
    log.info(
        "event %s: %s by %s (%s -> %s)",
        event.id,
        action.value,
        request.actor.name,
        outcome.audit.from_state.value,
        outcome.state.value,
    )
    return outcome


def publish(
    *,
    session: Session,
    event: Event,
    message_type: str,
    policy: EventPolicy,
    at: datetime,
    note: str | None = None,
    flush: bool = True,
) -> None:
    """Render the next CAP message of the event and queue the push to its department's endpoints.
    ``flush=False``: the caller has flushed the event (it has its id and uid); what this adds is then
    written with the caller's other rows, many events' in one statement."""
    if flush:
        session.flush()  # the event needs its id and uid
    # The evidence links, read once: the CAP <resource>s and the webhook's ``evidence`` are the same list.
    links = event_links(session, event, base_url=policy.cap.web_base_url)
    message = cap_service.next_message(
        session=session, event=event, options=policy.cap, at=at, note=note, links=links
    )
    xml = message.xml.decode()
    if event.department is not None:
        dispatch_service.enqueue(
            session=session,
            event=event,
            message_type=message_type,
            cap_xml=xml,
            policy=policy,
            at=at,
            links=links,
        )
