"""Plain values of the event lifecycle: states, actions, the audit record. No I/O, no ORM."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.auth.roles import Role


class EventState(StrEnum):
    """Where a work item stands at the dispatch centre."""

    NEW = "new"  # raised, not yet sent to a department (or waiting in triage)
    DISPATCHED = "dispatched"  # sent to a department; the SLA clock runs
    ACCEPTED = "accepted"  # the department signed for it
    IN_PROGRESS = "in_progress"  # someone is on it
    RESOLVED = "resolved"  # the department reports it done, with a result note
    CLOSED = "closed"  # the centre verified the result (optional satisfaction rating)
    REJECTED = "rejected"  # the department returned it as not theirs: re-route it
    CANCELLED = "cancelled"  # false alarm

    @property
    def is_open(self) -> bool:
        """Still a work item: repeats of its condition merge into it."""
        return self not in FINISHED_STATES

    @property
    def sla_running(self) -> bool:
        """Someone owes work: the SLA clock (or, for ``new``, the triage clock) runs; escalation applies."""
        return self in SLA_RUNNING_STATES


# Only the gateway's RERAISE (the condition returned within the suppression window) leaves CLOSED.
FINISHED_STATES = frozenset({EventState.CLOSED, EventState.CANCELLED})
# A new event has a deadline only while it waits in the triage queue (the triage SLA).
SLA_RUNNING_STATES = frozenset(
    {EventState.NEW, EventState.DISPATCHED, EventState.ACCEPTED, EventState.IN_PROGRESS}
)


class Action(StrEnum):
    """Every way an event's state changes, or is annotated without changing."""

    DISPATCH = "dispatch"
    ACCEPT = "accept"
    START = "start"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    RERAISE = "reraise"
    REJECT = "reject"
    ASSIGN = "assign"  # who works on it; recorded, the state stays
    RETURN_TO_TRIAGE = "return_to_triage"
    CANCEL = "cancel"
    CONDITION_CLEARED = "condition_cleared"
    CONDITION_RETURNED = "condition_returned"
    SUPERVISE = "supervise"  # first escalation of an overdue event
    URGE = "urge"  # every later escalation


class Requirement(StrEnum):
    """What a transition needs besides the right state and role."""

    NOTE = "note"
    DEPARTMENT = "department"
    NEW_DEPARTMENT = "new_department"  # after a rejection: someone other than the department that returned it


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs a transition: a token's name and role, or the gateway itself."""

    name: str
    role: Role


SYSTEM_ACTOR = Actor(name="gateway", role=Role.SYSTEM)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """The part of an event the state machine needs to decide."""

    state: EventState
    department: str | None = None


@dataclass(frozen=True, slots=True)
class TransitionRequest:
    action: Action
    actor: Actor
    at: datetime
    note: str | None = None
    rating: int | None = None  # satisfaction 1-5, only when closing
    department: str | None = None  # target department for dispatch
    # SLA from the routing decision: sets the deadline on dispatch (or the triage deadline when returned to new)
    resolve_within: timedelta | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One append-only line of an event's history: a transition, an annotation, an escalation or a push."""

    action: str
    actor: str
    role: str
    at: datetime
    from_state: EventState
    to_state: EventState
    note: str | None = None


@dataclass(frozen=True, slots=True)
class TransitionOutcome:
    state: EventState
    audit: AuditRecord
    department: str | None  # the department responsible after the transition
    deadline: datetime | None = None  # set when (re-)dispatched or queued with an SLA; None means "unchanged"
    rating: int | None = None


class RefusalCode(StrEnum):
    WRONG_STATE = "wrong_state"
    ROLE_NOT_ALLOWED = "role_not_allowed"
    NOTE_REQUIRED = "note_required"
    DEPARTMENT_REQUIRED = "department_required"
    SAME_DEPARTMENT = "same_department"
    RATING_OUT_OF_RANGE = "rating_out_of_range"
    RATING_NOT_ALLOWED = "rating_not_allowed"


class TransitionRefused(Exception):
    """An invalid transition; ``reason`` is for people (the API answers 409 with it)."""

    def __init__(self, code: RefusalCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
