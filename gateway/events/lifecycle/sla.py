"""SLA indicator, escalation schedule and handling metrics: pure functions over event views.

The SLA clock starts when an event is dispatched (deadline = dispatched_at + the routing table's
duration for its type and severity) and stops when the department reports it resolved: verification
by the centre is not the department's delay. An unmatched event waiting in the triage queue runs the
triage clock the same way (``dispatched_at`` = when it was queued, state ``new``). The caller passes
``now`` (an injectable clock).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.events.lifecycle.models import SYSTEM_ACTOR, Action, AuditRecord, EventState


class SlaColour(StrEnum):
    GREEN = "green"  # in time
    YELLOW = "yellow"  # most of the allowed time is used
    RED = "red"  # past the deadline
    NONE = "none"  # no clock (new outside triage, rejected, cancelled)


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """When the indicator turns yellow and how often an overdue event is escalated again."""

    yellow_at: float = 0.8  # fraction of the allowed time
    urge_every: timedelta = timedelta(minutes=30)
    max_urges: int | None = None  # None: urge until it is resolved

    def __post_init__(self) -> None:
        if not 0.0 < self.yellow_at < 1.0:
            raise ValueError(
                f"yellow_at is a fraction of the allowed time, between 0 and 1; got {self.yellow_at}"
            )
        if self.urge_every <= timedelta(0):
            raise ValueError("urge_every must be a positive duration")
        if self.max_urges is not None and self.max_urges < 0:
            raise ValueError("max_urges must be 0 or more (or None for no limit)")


@dataclass(frozen=True, slots=True)
class SlaView:
    """What the SLA functions need to know about one event."""

    event_id: str
    state: EventState
    dispatched_at: datetime | None = None  # when the clock started (dispatched, or queued in triage)
    deadline: datetime | None = None
    resolved_at: datetime | None = None
    escalations_sent: int = 0  # supervise + urges already recorded
    last_escalated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Escalation:
    event_id: str
    action: Action  # SUPERVISE for the first one, URGE afterwards
    level: int  # 1 = supervise, 2.. = urges
    due_at: datetime
    overdue_by: timedelta
    state: EventState

    def audit(self, *, at: datetime) -> AuditRecord:
        minutes = int(self.overdue_by.total_seconds() // 60)
        return AuditRecord(
            action=self.action.value,
            actor=SYSTEM_ACTOR.name,
            role=SYSTEM_ACTOR.role.value,
            at=at,
            from_state=self.state,
            to_state=self.state,
            note=f"overdue by {minutes} min; escalation {self.level}",
        )


def sla_colour(event: SlaView, *, now: datetime, policy: EscalationPolicy) -> SlaColour:
    """Green / yellow / red for a live screen. Resolved events show how they finished."""
    if event.dispatched_at is None or event.deadline is None:
        return SlaColour.NONE
    if event.state in (EventState.REJECTED, EventState.CANCELLED):
        return SlaColour.NONE
    clock_stop = event.resolved_at if event.resolved_at is not None else now
    if event.state in (EventState.RESOLVED, EventState.CLOSED):
        return SlaColour.RED if clock_stop > event.deadline else SlaColour.GREEN
    if clock_stop >= event.deadline:
        return SlaColour.RED
    allowed = event.deadline - event.dispatched_at
    if clock_stop - event.dispatched_at >= allowed * policy.yellow_at:
        return SlaColour.YELLOW
    return SlaColour.GREEN


def next_escalation_due(event: SlaView, *, policy: EscalationPolicy) -> datetime | None:
    """When the next escalation of this event falls due, or None when none ever will."""
    if not event.state.sla_running or event.deadline is None:
        return None
    done = event.escalations_sent
    if policy.max_urges is not None and done > policy.max_urges:
        return None
    scheduled = event.deadline + done * policy.urge_every
    if event.last_escalated_at is not None:
        # After an outage, catch up one step at a time instead of sending a burst of urges.
        scheduled = max(scheduled, event.last_escalated_at + policy.urge_every)
    return scheduled


def due_escalations(
    events: Iterable[SlaView], *, now: datetime, policy: EscalationPolicy
) -> list[Escalation]:
    """The escalations to record and push now: at most one per event, oldest deadline first."""
    due: list[Escalation] = []
    for event in events:
        due_at = next_escalation_due(event, policy=policy)
        if due_at is None or due_at > now:
            continue
        assert event.deadline is not None  # next_escalation_due checked it
        level = event.escalations_sent + 1
        due.append(
            Escalation(
                event_id=event.event_id,
                action=Action.SUPERVISE if level == 1 else Action.URGE,
                level=level,
                due_at=due_at,
                overdue_by=now - event.deadline,
                state=event.state,
            )
        )
    due.sort(key=lambda escalation: (escalation.due_at, escalation.event_id))
    return due


@dataclass(frozen=True, slots=True)
class HandlingMetrics:
    finished: int  # events resolved (or closed) with an SLA clock
    on_time: int
    on_time_rate: float | None  # None when nothing finished yet
    mean_handling_time: timedelta | None  # dispatched -> resolved
    open_overdue: int  # still running and past the deadline


def handling_metrics(events: Iterable[SlaView], *, now: datetime) -> HandlingMetrics:
    """On-time closure rate and mean handling time over a set of events (e.g. a reporting period)."""
    finished = on_time = open_overdue = 0
    total = timedelta(0)
    for event in events:
        if event.dispatched_at is None or event.deadline is None:
            continue
        if event.state in (EventState.RESOLVED, EventState.CLOSED) and event.resolved_at is not None:
            finished += 1
            total += event.resolved_at - event.dispatched_at
            on_time += event.resolved_at <= event.deadline
        elif event.state.sla_running and now > event.deadline:
            open_overdue += 1
    return HandlingMetrics(
        finished=finished,
        on_time=on_time,
        on_time_rate=on_time / finished if finished else None,
        mean_handling_time=total / finished if finished else None,
        open_overdue=open_overdue,
    )
