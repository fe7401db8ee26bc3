"""The one state machine of an event, as a declarative table, and the pure function applying it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gateway.auth.roles import Role
from gateway.events.lifecycle.models import (
    SLA_RUNNING_STATES,
    Action,
    AuditRecord,
    EventState,
    RefusalCode,
    Requirement,
    TransitionOutcome,
    TransitionRefused,
    TransitionRequest,
    WorkItem,
)

RATING_RANGE = range(1, 6)


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    description: str
    sources: frozenset[EventState]
    target: EventState | None  # None: an annotation, the state stays
    roles: frozenset[Role]
    requires: frozenset[Requirement] = frozenset()
    allows_rating: bool = False


_STAFF = frozenset({Role.ADMIN, Role.DISPATCHER})
# The dispatch centre's integration acts for the departments it serves.
_HANDLERS = _STAFF | {Role.DISPATCH_CENTRE}
_ALL_STATES = frozenset(EventState)

TRANSITIONS: Mapping[Action, TransitionSpec] = MappingProxyType(
    {
        Action.DISPATCH: TransitionSpec(
            description="Send the event to a department; starts the SLA clock. After a rejection it must go "
            "to another department.",
            sources=frozenset({EventState.NEW, EventState.REJECTED}),
            target=EventState.DISPATCHED,
            roles=_STAFF | {Role.SYSTEM},
            requires=frozenset({Requirement.DEPARTMENT, Requirement.NEW_DEPARTMENT}),
        ),
        Action.ACCEPT: TransitionSpec(
            description="The department signs for the event.",
            sources=frozenset({EventState.DISPATCHED}),
            target=EventState.ACCEPTED,
            roles=_HANDLERS,
        ),
        Action.START: TransitionSpec(
            description="Work on site has begun.",
            sources=frozenset({EventState.ACCEPTED}),
            target=EventState.IN_PROGRESS,
            roles=_HANDLERS,
        ),
        Action.RESOLVE: TransitionSpec(
            description="The department reports the work done, with a result note.",
            sources=frozenset({EventState.ACCEPTED, EventState.IN_PROGRESS}),
            target=EventState.RESOLVED,
            roles=_HANDLERS,
            requires=frozenset({Requirement.NOTE}),
        ),
        Action.CLOSE: TransitionSpec(
            description="The centre verified the result; optional satisfaction rating 1-5.",
            sources=frozenset({EventState.RESOLVED}),
            target=EventState.CLOSED,
            roles=_HANDLERS,
            allows_rating=True,
        ),
        Action.REOPEN: TransitionSpec(
            description="Verification failed: the work goes back to the department, with the reason.",
            sources=frozenset({EventState.RESOLVED}),
            target=EventState.IN_PROGRESS,
            roles=_HANDLERS,
            requires=frozenset({Requirement.NOTE}),
        ),
        Action.RERAISE: TransitionSpec(
            description="The condition returned within the suppression window after the work was reported "
            "done: the same event goes back to its department with a new SLA deadline.",
            sources=frozenset({EventState.RESOLVED, EventState.CLOSED}),
            target=EventState.DISPATCHED,
            roles=_STAFF | {Role.SYSTEM},
            requires=frozenset({Requirement.NOTE}),
        ),
        Action.REJECT: TransitionSpec(
            description="The department returns the event as not theirs, with the reason; it must be re-routed.",
            sources=frozenset({EventState.DISPATCHED, EventState.ACCEPTED}),
            target=EventState.REJECTED,
            roles=_HANDLERS,
            requires=frozenset({Requirement.NOTE}),
        ),
        Action.ASSIGN: TransitionSpec(
            description="Name who works on the event (the note says whom); the state stays.",
            sources=frozenset({EventState.DISPATCHED, EventState.ACCEPTED, EventState.IN_PROGRESS}),
            target=None,
            roles=_HANDLERS,
            requires=frozenset({Requirement.NOTE}),
        ),
        Action.RETURN_TO_TRIAGE: TransitionSpec(
            description="A rejected event goes back to the triage queue for a person to route.",
            sources=frozenset({EventState.REJECTED}),
            target=EventState.NEW,
            roles=_STAFF | {Role.SYSTEM},
        ),
        Action.CANCEL: TransitionSpec(
            description="False alarm: the event is withdrawn, with the reason.",
            sources=frozenset(
                {
                    EventState.NEW,
                    EventState.DISPATCHED,
                    EventState.ACCEPTED,
                    EventState.IN_PROGRESS,
                    EventState.REJECTED,
                }
            ),
            target=EventState.CANCELLED,
            roles=_HANDLERS,
            requires=frozenset({Requirement.NOTE}),
        ),
        Action.CONDITION_CLEARED: TransitionSpec(
            description="The device reports the condition over (e.g. water below threshold). Recorded only: "
            "the work item stays open until a person closes it.",
            sources=_ALL_STATES,
            target=None,
            roles=frozenset({Role.SYSTEM}),
        ),
        Action.CONDITION_RETURNED: TransitionSpec(
            description="The condition came back (a repeat merged into this event). Recorded only.",
            sources=_ALL_STATES,
            target=None,
            roles=frozenset({Role.SYSTEM}),
        ),
        # The gateway sends both on the escalation schedule (role system); people may send them too,
        # any time the event is open and someone owes work: the state stays, the escalation counter too.
        Action.SUPERVISE: TransitionSpec(
            description="Put the event under supervision: the gateway does so when it passes its SLA (or "
            "triage) deadline; a supervisor may at any time. Supervisors are told.",
            sources=SLA_RUNNING_STATES,
            target=None,
            roles=frozenset({Role.SYSTEM, Role.ADMIN, Role.SUPERVISOR}),
        ),
        Action.URGE: TransitionSpec(
            description="Urge the responsible department: the gateway does so on the escalation schedule "
            "after supervising; a dispatcher or supervisor may at any time (the event must have a department).",
            sources=SLA_RUNNING_STATES,
            target=None,
            roles=frozenset({Role.SYSTEM, Role.ADMIN, Role.DISPATCHER, Role.SUPERVISOR}),
        ),
    }
)


def allowed_actions(item: WorkItem, role: Role) -> list[Action]:
    """What a role may do next with an event (for UI buttons); requirements are not checked."""
    return [
        action for action, spec in TRANSITIONS.items() if item.state in spec.sources and role in spec.roles
    ]


def apply_transition(*, item: WorkItem, request: TransitionRequest) -> TransitionOutcome:
    """Check ``request`` against the table; return the new state and its audit record, or refuse.

    Raises ``TransitionRefused`` with a reason a person can act on. ``ROLE_NOT_ALLOWED`` is checked
    first, so a caller without the right never learns the event's state.
    """
    spec = TRANSITIONS[request.action]
    action = request.action.value
    if request.actor.role not in spec.roles:
        raise TransitionRefused(
            RefusalCode.ROLE_NOT_ALLOWED,
            f"role {request.actor.role.value!r} may not {action} an event; allowed: {_names(spec.roles)}",
        )
    if item.state not in spec.sources:
        raise TransitionRefused(
            RefusalCode.WRONG_STATE,
            f"cannot {action} an event that is {item.state.value}: {action} applies only to "
            f"{_names(spec.sources)} events",
        )
    note = (request.note or "").strip() or None
    if Requirement.NOTE in spec.requires and note is None:
        raise TransitionRefused(
            RefusalCode.NOTE_REQUIRED, f"{action} needs a note saying why (or what was done)"
        )
    department = item.department
    if Requirement.DEPARTMENT in spec.requires:
        if not request.department:
            raise TransitionRefused(RefusalCode.DEPARTMENT_REQUIRED, f"{action} needs a target department")
        if (
            Requirement.NEW_DEPARTMENT in spec.requires
            and item.state is EventState.REJECTED
            and request.department == item.department
        ):
            raise TransitionRefused(
                RefusalCode.SAME_DEPARTMENT,
                f"department {item.department!r} returned this event as not theirs; dispatch it to another "
                "department or return it to triage",
            )
        department = request.department
    if request.rating is not None:
        if not spec.allows_rating:
            raise TransitionRefused(
                RefusalCode.RATING_NOT_ALLOWED, f"a rating is given when closing, not on {action}"
            )
        if request.rating not in RATING_RANGE:
            raise TransitionRefused(
                RefusalCode.RATING_OUT_OF_RANGE, f"satisfaction rating must be 1 to 5, got {request.rating}"
            )
    if request.action is Action.RETURN_TO_TRIAGE:
        department = None
    target = spec.target if spec.target is not None else item.state
    deadline = None
    if target in (EventState.DISPATCHED, EventState.NEW) and request.resolve_within is not None:
        deadline = request.at + request.resolve_within
    audit = AuditRecord(
        action=action,
        actor=request.actor.name,
        role=request.actor.role.value,
        at=request.at,
        from_state=item.state,
        to_state=target,
        note=note,
    )
    return TransitionOutcome(
        state=target, audit=audit, department=department, deadline=deadline, rating=request.rating
    )


def _names(values: frozenset[Role] | frozenset[EventState]) -> str:
    return ", ".join(sorted(value.value for value in values))
