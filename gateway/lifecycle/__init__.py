"""Event lifecycle: the state machine, SLA and escalation, de-duplication. Pure functions, no I/O."""

from gateway.lifecycle.dedup import DedupAction, DedupDecision, KnownEvent, RaisedCondition, decide
from gateway.lifecycle.models import (
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
from gateway.lifecycle.sla import (
    EscalationPolicy,
    HandlingMetrics,
    SlaColour,
    SlaView,
    due_escalations,
    handling_metrics,
    sla_colour,
)
from gateway.lifecycle.transitions import TRANSITIONS, allowed_actions, apply_transition

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
