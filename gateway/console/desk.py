"""The event desk's queries: filtered events, most urgent first, and the choices of each filter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session

from citywatch.protocol.messages import EventType, Severity
from gateway.devices.models import Device
from gateway.events import service as events_service
from gateway.events.lifecycle.models import FINISHED_STATES, SLA_RUNNING_STATES, EventState
from gateway.events.models import Event, EventRead, read_event

ROW_LIMIT = 200
TRIAGE = "__triage__"  # the department filter's value for events waiting in the triage queue
PERIODS: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
STATUS_CHOICES = ("open", "overdue", "all", *(state.value for state in EventState))
AREA_LEVELS = ("site", "grid", "town")


class FilterError(ValueError):
    """A filter value the desk does not offer (a hand-edited address): the desk says which."""


@dataclass(frozen=True, slots=True)
class DeskFilter:
    """What the desk's filter form sends; empty means "any"."""

    type: str = ""
    area: str = ""  # "site:riverside", "grid:g-12" or "town:xinqiao"
    department: str = ""  # a department id, or TRIAGE
    status: str = "open"
    period: str = "all"

    def __post_init__(self) -> None:
        if self.type and self.type not in {t.value for t in EventType}:
            raise FilterError(f"unknown event type {self.type!r}")
        if self.status not in STATUS_CHOICES:
            raise FilterError(f"unknown status {self.status!r}; choose one of {', '.join(STATUS_CHOICES)}")
        if self.period not in PERIODS:
            raise FilterError(f"unknown period {self.period!r}; choose one of {', '.join(PERIODS)}")
        if self.area:
            level, _, value = self.area.partition(":")
            if level not in AREA_LEVELS or not value:
                raise FilterError(f"an area is written site:NAME, grid:NAME or town:NAME, not {self.area!r}")

    def query_string(self) -> dict[str, str]:
        return {
            "type": self.type,
            "area": self.area,
            "department": self.department,
            "status": self.status,
            "period": self.period,
        }


@dataclass(frozen=True, slots=True)
class DeskRow:
    event: EventRead
    overdue: bool
    summary: dict[str, Any]  # the details worth a column, by their protocol names


@dataclass(frozen=True, slots=True)
class DeskPage:
    rows: list[DeskRow]
    total: int
    counts: dict[str, int] = field(default_factory=dict)  # new, dispatched, in_work, overdue: all events
    department_names: dict[str, str] = field(default_factory=dict)  # id -> display name (routing table)


def _overdue(now: datetime) -> Any:
    return and_(
        Event.state.in_([s.value for s in SLA_RUNNING_STATES]),
        Event.deadline.is_not(None),
        Event.deadline < now,
    )


def _filtered(filters: DeskFilter, now: datetime) -> Select[Any]:
    query = select(Event).join(Device, Device.id == Event.device_id)
    if filters.type:
        query = query.where(Event.type == filters.type)
    if filters.area:
        level, _, value = filters.area.partition(":")
        column = {"site": Event.site, "grid": Device.grid, "town": Device.town}[level]
        query = query.where(column == value)
    if filters.department == TRIAGE:
        query = query.where(Event.department.is_(None))
    elif filters.department:
        query = query.where(Event.department == filters.department)
    if filters.status == "open":
        query = query.where(Event.state.not_in([s.value for s in FINISHED_STATES]))
    elif filters.status == "overdue":
        query = query.where(_overdue(now))
    elif filters.status != "all":
        query = query.where(Event.state == filters.status)
    since = PERIODS[filters.period]
    if since is not None:
        query = query.where(Event.created_at >= now - since)
    return query


def desk_page(session: Session, filters: DeskFilter, *, limit: int = ROW_LIMIT) -> DeskPage:
    """Events matching ``filters``: overdue first, then new (and rejected, to re-route), dispatched, in work,
    resolved, finished; within each, the most severe and the nearest deadline first."""
    policy = events_service.policy_of(session)
    now = policy.clock()
    query = _filtered(filters, now)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    urgency = case(
        (_overdue(now), 0),
        (Event.state.in_([EventState.NEW.value, EventState.REJECTED.value]), 1),
        (Event.state == EventState.DISPATCHED.value, 2),
        (Event.state.in_([EventState.ACCEPTED.value, EventState.IN_PROGRESS.value]), 3),
        (Event.state == EventState.RESOLVED.value, 4),
        else_=5,
    )
    severity = case(*((Event.severity == s.value, -s.rank) for s in Severity), else_=0)
    ordered = query.order_by(urgency, severity, Event.deadline.is_(None), Event.deadline, Event.id.desc())
    rows = [
        DeskRow(
            event=read_event(event, now=now, policy=policy.escalation),
            overdue=event.deadline is not None
            and EventState(event.state) in SLA_RUNNING_STATES
            and event.deadline < now,
            summary=summary(event.details),
        )
        for event in session.scalars(ordered.limit(limit))
    ]
    names = {d.id: d.name for d in policy.routing.departments}
    return DeskPage(rows=rows, total=total, counts=counts(session, now), department_names=names)


def counts(session: Session, now: datetime) -> dict[str, int]:
    """The desk's headline figures over every event, whatever the filters."""
    by_state = dict(
        session.execute(
            select(Event.state, func.count())
            .where(Event.state.not_in([s.value for s in FINISHED_STATES]))
            .group_by(Event.state)
        ).all()
    )
    overdue = session.scalar(select(func.count()).select_from(Event).where(_overdue(now))) or 0
    return {
        "new": by_state.get(EventState.NEW.value, 0) + by_state.get(EventState.REJECTED.value, 0),
        "dispatched": by_state.get(EventState.DISPATCHED.value, 0),
        "in_work": by_state.get(EventState.ACCEPTED.value, 0) + by_state.get(EventState.IN_PROGRESS.value, 0),
        "overdue": overdue,
    }


# The details of each event type worth a column on the desk, in order.
_SUMMARY_FIELDS = (
    "level_cm",
    "peak_cm",
    "rate_cm_per_min",
    "fault",
    "floor",
    "door_held",
    "floor_estimate",
    "zone",
    "dwell_s",
    "last_seen",
)


def summary(details: dict[str, Any]) -> dict[str, Any]:
    return {key: details[key] for key in _SUMMARY_FIELDS if details.get(key) is not None}


@dataclass(frozen=True, slots=True)
class FilterChoices:
    types: list[str]
    areas: list[tuple[str, str]]  # (value, level)
    departments: list[tuple[str, str]]  # (id, name)


def filter_choices(session: Session) -> FilterChoices:
    policy = events_service.policy_of(session)
    areas: list[tuple[str, str]] = []
    for level, column in (("site", Device.site), ("grid", Device.grid), ("town", Device.town)):
        values = session.scalars(select(column).distinct().where(column.is_not(None)).order_by(column))
        areas += [(f"{level}:{value}", level) for value in values]
    return FilterChoices(
        types=[t.value for t in EventType],
        areas=areas,
        departments=[(d.id, d.name) for d in policy.routing.departments],
    )
