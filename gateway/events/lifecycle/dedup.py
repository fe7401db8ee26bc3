"""De-duplication policy: does a raised condition open a new event or update an existing one?

One open event per (device, type) for lasting conditions (water, e-bike, faults). Repeats (a device's new event id for the same condition, a QoS 1
duplicate, a flapping sensor) bump the count, last-seen and, if higher, the severity. A condition
raised again within the suppression window after its event finished does not open a new event:
a closed (or resolved) one is re-raised to its department, a cancelled one (judged a false alarm)
only records the repeat.

Incidents are different: every thrown object and every parked vehicle is its own case, even from the
same camera a minute apart, so each device ``event_id`` of those types opens its own event (a QoS 1
duplicate of the same ``event_id`` is caught before de-duplication, by its revision).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from citywatch.protocol.messages import EventType, Severity
from gateway.events.lifecycle.models import EventState

# Types whose every device event id is a separate incident, never folded into another.
INCIDENT_TYPES = frozenset({EventType.OBJECT_THROWN.value, EventType.ILLEGAL_PARKING.value})


class DedupAction(StrEnum):
    NEW = "new"  # open a new event
    MERGE = "merge"  # update the open event
    RERAISE = "reraise"  # the event finished recently: bring it back (Action.RERAISE)
    SUPPRESS = "suppress"  # cancelled as a false alarm recently: record the repeat, open nothing


@dataclass(frozen=True, slots=True)
class RaisedCondition:
    device_id: str
    event_type: str
    severity: Severity
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class KnownEvent:
    """The existing events of the same device (the caller may pass more; others are ignored)."""

    event_id: str
    device_id: str
    event_type: str
    state: EventState
    severity: Severity
    count: int
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class DedupDecision:
    action: DedupAction
    event_id: str | None = None  # the event to update; None for NEW
    count: int = 1
    last_seen: datetime | None = None
    severity: Severity | None = None
    severity_raised: bool = False  # the repeat raised the event's severity


def decide(
    condition: RaisedCondition, known: Iterable[KnownEvent], *, suppression_window: timedelta
) -> DedupDecision:
    """New event, or which existing event the condition merges into, and its updated counters."""
    if condition.event_type in INCIDENT_TYPES:
        return _new(condition)
    same = [
        event
        for event in known
        if event.device_id == condition.device_id and event.event_type == condition.event_type
    ]
    open_events = [event for event in same if event.state.is_open]
    if open_events:
        # There should be one; if a race left two, keep feeding the oldest-seen so the other one drains.
        target = min(open_events, key=lambda event: (event.last_seen, event.event_id))
        # Reported done, yet the condition is back: the department must look again.
        action = DedupAction.RERAISE if target.state is EventState.RESOLVED else DedupAction.MERGE
        return _merged(condition, target, action)
    recent = [event for event in same if condition.seen_at - event.last_seen <= suppression_window]
    if recent:
        target = max(recent, key=lambda event: (event.last_seen, event.event_id))
        action = DedupAction.SUPPRESS if target.state is EventState.CANCELLED else DedupAction.RERAISE
        return _merged(condition, target, action)
    return _new(condition)


def _new(condition: RaisedCondition) -> DedupDecision:
    return DedupDecision(
        action=DedupAction.NEW, count=1, last_seen=condition.seen_at, severity=condition.severity
    )


def _merged(condition: RaisedCondition, target: KnownEvent, action: DedupAction) -> DedupDecision:
    raised = condition.severity.rank > target.severity.rank
    return DedupDecision(
        action=action,
        event_id=target.event_id,
        count=target.count + 1,
        # Replays after an outage arrive late: last-seen never goes backwards.
        last_seen=max(target.last_seen, condition.seen_at),
        severity=condition.severity if raised else target.severity,
        severity_raised=raised,
    )
