"""Event lifecycle: the state machine, SLA and escalation, de-duplication. Pure functions, no I/O."""

from citywatch.gateway.lifecycle.dedup import DedupAction, DedupDecision, KnownEvent, RaisedCondition, decide
from citywatch.gateway.lifecycle.models import (
    SYSTEM_ACTOR,
    Action,
    Actor,
    AuditRecord,
    EventState,
    RefusalCode,
    TransitionOutcome,
    TransitionRefused,
    TransitionRequest,
    WorkItem,
)
from citywatch.gateway.lifecycle.sla import (
    EscalationPolicy,
    HandlingMetrics,
    SlaColour,
    SlaView,
    due_escalations,
    handling_metrics,
    sla_colour,
)
from citywatch.gateway.lifecycle.transitions import TRANSITIONS, allowed_actions, apply_transition

__all__ = [
    "SYSTEM_ACTOR",
    "TRANSITIONS",
    "Action",
    "Actor",
    "AuditRecord",
    "DedupAction",
    "DedupDecision",
    "EscalationPolicy",
    "EventState",
    "HandlingMetrics",
    "KnownEvent",
    "RaisedCondition",
    "RefusalCode",
    "SlaColour",
    "SlaView",
    "TransitionOutcome",
    "TransitionRefused",
    "TransitionRequest",
    "WorkItem",
    "allowed_actions",
    "apply_transition",
    "decide",
    "due_escalations",
    "handling_metrics",
    "sla_colour",
]
