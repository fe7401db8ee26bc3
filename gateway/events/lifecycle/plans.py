"""What the gateway does when a condition is raised or a dispatcher routes by hand: pure plans.

The gateway loads the device's events, calls a ``plan_*`` function, then in ONE transaction creates
or updates the event as ``plan.decision`` says, applies ``plan.requests`` in order with
``apply_transition`` (appending each audit record), stores the deadline, and queues the push.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from citywatch.protocol.messages import Severity
from gateway.cap.models import CapChange
from gateway.events.lifecycle.dedup import DedupAction, DedupDecision, KnownEvent, RaisedCondition, decide
from gateway.events.lifecycle.models import SYSTEM_ACTOR, Action, Actor, TransitionRequest
from gateway.routing.models import RoutingTable
from gateway.routing.service import RouteDecision, route


@dataclass(frozen=True, slots=True)
class Area:
    """Where the device is: the topic's site, and grid/town from the device registry."""

    site: str
    grid: str | None = None
    town: str | None = None


@dataclass(frozen=True, slots=True)
class ConditionPlan:
    decision: DedupDecision  # NEW: create the event; otherwise update decision.event_id
    route: RouteDecision | None  # for NEW and RERAISE: department and SLA (record rule_id)
    requests: tuple[TransitionRequest, ...]  # to apply in order
    triage_deadline: datetime | None  # NEW and unmatched: it waits in the triage queue until then
    push: CapChange | None  # what to tell the responsible department, if anything


def plan_raised_condition(
    *,
    condition: RaisedCondition,
    known: Iterable[KnownEvent],
    area: Area,
    table: RoutingTable,
    suppression_window: timedelta,
    now: datetime,
) -> ConditionPlan:
    """De-duplicate, route and dispatch a raised condition."""
    decision = decide(condition, known, suppression_window=suppression_window)
    if decision.action is DedupAction.MERGE:
        return ConditionPlan(
            decision=decision,
            route=None,
            requests=(),
            triage_deadline=None,
            push=CapChange.UPDATED,  # a repeat is a revision like any other: the department hears of it
        )
    if decision.action is DedupAction.SUPPRESS:
        note = "the condition came back within the suppression window of an event cancelled as a false alarm"
        return ConditionPlan(
            decision=decision,
            route=None,
            requests=(_system(Action.CONDITION_RETURNED, now, note=note),),
            triage_deadline=None,
            push=None,
        )
    severity = decision.severity or condition.severity
    decided = route(
        table,
        event_type=condition.event_type,
        severity=severity,
        site=area.site,
        grid=area.grid,
        town=area.town,
    )
    if decision.action is DedupAction.RERAISE:
        request = _system(
            Action.RERAISE,
            now,
            note="the condition came back after the work was reported done",
            resolve_within=decided.resolve_within,
        )
        return ConditionPlan(
            decision=decision,
            route=decided,
            requests=(request,),
            triage_deadline=None,
            push=CapChange.UPDATED,
        )
    if decided.department is None:
        return ConditionPlan(
            decision=decision,
            route=decided,
            requests=(),
            triage_deadline=now + decided.resolve_within,
            push=None,
        )
    dispatch = _system(
        Action.DISPATCH,
        now,
        note=f"routed by rule {decided.rule_id}",
        department=decided.department.id,
        resolve_within=decided.resolve_within,
    )
    return ConditionPlan(
        decision=decision, route=decided, requests=(dispatch,), triage_deadline=None, push=CapChange.RAISED
    )


def dispatch_request(
    *,
    table: RoutingTable,
    event_type: str,
    severity: Severity,
    area: Area,
    department: str,
    actor: Actor,
    at: datetime,
    note: str | None = None,
) -> TransitionRequest:
    """A dispatcher routes by hand (from triage or after a rejection): the SLA comes from the rule
    that would send this event to that department, else from the default SLA."""
    if department not in {known.id for known in table.departments}:
        raise ValueError(f"unknown department {department!r}")
    decided = route(
        table, event_type=event_type, severity=severity, site=area.site, grid=area.grid, town=area.town
    )
    if decided.department is not None and decided.department.id == department:
        within = decided.resolve_within
    else:
        default = table.default_sla.for_severity(severity)
        assert default is not None  # default_sla has every severity
        within = default
    return TransitionRequest(
        action=Action.DISPATCH, actor=actor, at=at, note=note, department=department, resolve_within=within
    )


def _system(
    action: Action,
    at: datetime,
    *,
    note: str,
    department: str | None = None,
    resolve_within: timedelta | None = None,
) -> TransitionRequest:
    return TransitionRequest(
        action=action,
        actor=SYSTEM_ACTOR,
        at=at,
        note=note,
        department=department,
        resolve_within=resolve_within,
    )
