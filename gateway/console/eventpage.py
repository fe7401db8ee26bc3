"""What the event page shows: the event, its evidence, readings around it, where it is, its audit trail,
and the actions the viewer's role allows from its state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citywatch.protocol.messages import EventType
from gateway.api.deps import Services
from gateway.auth.roles import Role
from gateway.console.evidence import EvidenceView, evidence_of
from gateway.console.series import Series, latest, series
from gateway.console.siteplan import SitePlan, site_plan
from gateway.devices.models import Device
from gateway.events import service as events_service
from gateway.events.lifecycle.models import Action, EventState, Requirement, WorkItem
from gateway.events.lifecycle.transitions import TRANSITIONS, allowed_actions
from gateway.events.models import EventAudit, EventRead, read_event
from gateway.telemetry.base import TelemetryUnavailableError

# Culvert events get the water-level chart around them.
CULVERT_EVENTS = frozenset({EventType.WATER_LEVEL, EventType.WATER_RISING_FAST, EventType.SENSOR_FAULT})
CHART_BEFORE = timedelta(hours=1)
CHART_AFTER = timedelta(minutes=30)
CHART_LONGEST = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class ActionForm:
    """One action button and what its confirmation asks for."""

    action: str
    note_required: bool
    department: str  # "required", "optional" (re-route on reject) or "" (not asked)
    assignee: bool
    rating: bool


# Audit lines that repeat while a condition lasts: shown folded, so the lifecycle steps stand out.
ROUTINE_AUDIT = frozenset({"updated", "push", "merged"})


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One audit line, or a run of routine ones (device updates, pushes) folded together."""

    first: EventAudit
    folded: list[EventAudit]  # empty for a single line

    @property
    def is_group(self) -> bool:
        return bool(self.folded)


def timeline(audit: list[EventAudit]) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    run: list[EventAudit] = []

    def flush() -> None:
        if len(run) == 1:
            entries.append(TimelineEntry(run[0], []))
        elif run:
            entries.append(TimelineEntry(run[0], list(run)))
        run.clear()

    for line in audit:
        if line.action in ROUTINE_AUDIT:
            run.append(line)
            continue
        flush()
        entries.append(TimelineEntry(line, []))
    flush()
    return entries


@dataclass(frozen=True, slots=True)
class EventPage:
    event: EventRead
    device: Device | None
    audit: list[TimelineEntry]
    actions: list[ActionForm]
    departments: list[tuple[str, str]]
    evidence: list[EvidenceView]
    chart: Series | None
    threshold_cm: float | None
    plan: SitePlan


def action_forms(state: EventState, department: str | None, role: Role) -> list[ActionForm]:
    """The lifecycle actions ``role`` may take from ``state`` that a person starts (the gateway's own,
    such as a returned condition, are left out; urge only when a department is responsible)."""
    forms = []
    for action in allowed_actions(WorkItem(state=state, department=department), role):
        if action not in events_service.PERSON_ACTIONS or events_service.lacks_department(action, department):
            continue
        spec = TRANSITIONS[action]
        forms.append(
            ActionForm(
                action=action.value,
                note_required=Requirement.NOTE in spec.requires and action is not Action.ASSIGN,
                department="required"
                if Requirement.DEPARTMENT in spec.requires
                else ("optional" if action is Action.REJECT else ""),
                assignee=action is Action.ASSIGN,
                rating=spec.allows_rating,
            )
        )
    return forms


def event_page(session: Session, services: Services, event_id: int, *, role: Role, prefix: str) -> EventPage:
    """Raises ``events_service.EventNotFound``."""
    policy = events_service.policy_of(session)
    event = events_service.get(session=session, event_id=event_id)
    read = read_event(event, now=policy.clock(), policy=policy.escalation)
    device = session.get(Device, event.device_id)
    site_devices = list(session.scalars(select(Device).where(Device.site == event.site).order_by(Device.id)))
    chart, threshold = None, None
    if event.type in CULVERT_EVENTS:
        chart = _water_chart(services, event.device_id, event.started_at, event.cleared_at, policy.clock())
        threshold = event.details.get("threshold_cm") if isinstance(event.details, dict) else None
    return EventPage(
        event=read,
        device=device,
        audit=timeline(events_service.audit_trail(session=session, event_id=event_id)),
        actions=action_forms(EventState(event.state), event.department, role),
        departments=[(d.id, d.name) for d in policy.routing.departments],
        evidence=evidence_of(session, services.settings, event, prefix=prefix),
        chart=chart,
        threshold_cm=threshold if isinstance(threshold, int | float) else None,
        plan=site_plan(event.site, site_devices, focus=event.device_id),
    )


def _water_chart(
    services: Services, device_id: str, started_at: datetime, cleared_at: datetime | None, now: datetime
) -> Series:
    """Water level from an hour before the condition began to half an hour after it cleared (or to the
    device's latest reading while it lasts: its clock may run ahead of ours)."""
    start = started_at - CHART_BEFORE
    if cleared_at is not None:
        stop = cleared_at + CHART_AFTER
    else:
        try:
            newest = latest(
                services.store,
                device_id=device_id,
                measurement="water_level",
                field="level_cm",
                now=now,
                ahead=timedelta(seconds=services.settings.CLOCK_SKEW_S),
            )
        except TelemetryUnavailableError as exc:
            return Series("water_level", "level_cm", [], error=exc.reason)
        stop = max(now, newest[0] if newest else now) + timedelta(seconds=1)
    stop = min(stop, start + CHART_LONGEST)
    # The highest level of each bucket: a chart must not average a flood's peak away.
    return series(
        services.store,
        device_id=device_id,
        measurement="water_level",
        field="level_cm",
        start=start,
        stop=stop,
        aggregation="max",
    )


def chart_json(page: EventPage) -> dict[str, Any] | None:
    if page.chart is None:
        return None
    return page.chart.as_json() | {"threshold": page.threshold_cm}
