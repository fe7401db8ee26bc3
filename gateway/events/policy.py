"""How the gateway treats events: the routing table, the suppression window, CAP options, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.cap.models import CapOptions
from gateway.db import utcnow
from gateway.events.lifecycle.sla import EscalationPolicy
from gateway.routing.models import RoutingTable

# The department every event goes to without a routing file: issue 2's single dispatch-centre endpoint.
DEFAULT_DEPARTMENT = "dispatch-centre"
# Sessions of a running gateway carry its policy under this ``Session.info`` key (runner.py).
EVENT_POLICY_KEY = "citywatch.event_policy"


@dataclass(frozen=True, slots=True)
class EventPolicy:
    routing: RoutingTable
    suppression_window: timedelta = timedelta(minutes=10)
    cap: CapOptions = field(default_factory=CapOptions)
    clock: Callable[[], datetime] = utcnow  # injectable for SLA tests

    @property
    def escalation(self) -> EscalationPolicy:
        return self.routing.escalation.policy()


def default_routing(*, dispatch_url: str = "", dispatch_secret: str = "") -> RoutingTable:
    """Everything to one department, pushed to CITYWATCH_DISPATCH_URL (none when it is empty)."""
    department: dict[str, object] = {"id": DEFAULT_DEPARTMENT, "name": "City dispatch centre"}
    if dispatch_url:
        department["webhook"] = {"url": dispatch_url, "secrets": [dispatch_secret]}
    return RoutingTable.model_validate(
        {
            "departments": [department],
            "rules": [{"id": "everything", "event_types": "*", "department": DEFAULT_DEPARTMENT}],
            "default_sla": {"critical": "1h", "warning": "4h", "notice": "1d", "info": "3d"},
        }
    )
