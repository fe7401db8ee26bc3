"""Governance figures over a reporting period, read from the event rows (no table of their own).

- events per day by type and by area (site, grid or town of the device), by the district's calendar day
  (the gateway's TIMEZONE: an event at 23:30 UTC is the next day's in Asia/Shanghai);
- on-time closure rate, mean and median handling time (dispatched -> resolved, the SLA clock of
  ``gateway.events.lifecycle.sla``) of the events raised in the period;
- open overdue events by department, now (whatever the period);
- false alarms per device: events raised in the period that were cancelled (the lifecycle's "false alarm")
  over all events raised.

A period is whole local days, from local midnight ``PERIODS[period] - 1`` days ago until now. Rows are
bucketed in Python (``created_at`` converted to the zone), so SQLite and PostgreSQL give the same days
with no zone support needed in either database.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.console.desk import AREA_LEVELS
from gateway.devices.models import Device
from gateway.events import service as events_service
from gateway.events.lifecycle.models import SLA_RUNNING_STATES, EventState
from gateway.events.lifecycle.sla import handling_metrics
from gateway.events.models import Event, sla_view

PERIODS = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
TRIAGE = "triage"  # the department column for events waiting in the triage queue
CSV_TABLES = ("summary", "per_day_type", "per_day_area", "overdue", "false_alarms")


@dataclass(frozen=True, slots=True)
class DeviceAlarms:
    device_id: str
    site: str
    device_type: str
    events: int
    cancelled: int

    @property
    def rate(self) -> float:
        return self.cancelled / self.events if self.events else 0.0


@dataclass(frozen=True, slots=True)
class Governance:
    start: datetime  # local midnight of the first day, in ``zone``
    stop: datetime  # now, in ``zone``
    zone: ZoneInfo
    area_level: str
    days: list[date]
    per_day_type: dict[str, list[int]]  # type -> count per day, aligned with ``days``
    per_day_area: dict[str, list[int]]  # area -> count per day
    raised: int
    finished: int
    on_time: int
    on_time_rate: float | None
    mean_handling_s: float | None
    median_handling_s: float | None
    open_overdue: dict[str, int]  # department (or TRIAGE) -> events past their deadline now
    false_alarms: list[DeviceAlarms]


def governance(session: Session, *, period: str, area_level: str, zone: ZoneInfo | None = None) -> Governance:
    """The figures of ``period`` with days in ``zone`` (default UTC)."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; choose one of {', '.join(PERIODS)}")
    if area_level not in AREA_LEVELS:
        raise ValueError(f"unknown area level {area_level!r}; choose one of {', '.join(AREA_LEVELS)}")
    policy = events_service.policy_of(session)
    zone = zone or ZoneInfo("UTC")
    now = policy.clock()
    local_now = now.astimezone(zone)
    first_day = local_now.date() - timedelta(days=PERIODS[period] - 1)
    # Local midnight (zoneinfo resolves a midnight skipped or repeated by a DST change to a real instant).
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=zone)
    rows = session.execute(
        select(Event, Device.grid, Device.town, Device.device_type)
        .join(Device, Device.id == Event.device_id)
        .where(Event.created_at >= start.astimezone(UTC))
        .order_by(Event.id)
    ).all()
    days = [first_day + timedelta(days=i) for i in range(PERIODS[period])]
    index = {day: i for i, day in enumerate(days)}
    per_type: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    per_area: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    alarms: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    device_info: dict[str, tuple[str, str]] = {}
    handling: list[float] = []
    for event, grid, town, device_type in rows:
        day = index.get(event.created_at.astimezone(zone).date())
        if day is not None:
            per_type[event.type][day] += 1
            area = {"site": event.site, "grid": grid, "town": town}[area_level] or "-"
            per_area[area][day] += 1
        counts = alarms[event.device_id]
        counts[0] += 1
        counts[1] += event.state == EventState.CANCELLED.value
        device_info[event.device_id] = (event.site, device_type)
        if (
            event.state in (EventState.RESOLVED.value, EventState.CLOSED.value)
            and event.dispatched_at is not None
            and event.deadline is not None
            and event.resolved_at is not None
        ):
            handling.append((event.resolved_at - event.dispatched_at).total_seconds())
    metrics = handling_metrics((sla_view(event) for event, *_ in rows), now=now)
    overdue = Counter(
        department or TRIAGE
        for department in session.scalars(
            select(Event.department).where(
                Event.state.in_([s.value for s in SLA_RUNNING_STATES]),
                Event.deadline.is_not(None),
                Event.deadline < now,
            )
        )
    )
    false_alarms = sorted(
        (
            DeviceAlarms(device_id, *device_info[device_id], events=total, cancelled=cancelled)
            for device_id, (total, cancelled) in alarms.items()
        ),
        key=lambda d: (-d.rate, -d.events, d.device_id),
    )
    mean = metrics.mean_handling_time
    return Governance(
        start=start,
        stop=local_now,
        zone=zone,
        area_level=area_level,
        days=days,
        per_day_type=dict(sorted(per_type.items())),
        per_day_area=dict(sorted(per_area.items())),
        raised=len(rows),
        finished=metrics.finished,
        on_time=metrics.on_time,
        on_time_rate=metrics.on_time_rate,
        mean_handling_s=mean.total_seconds() if mean is not None else None,
        median_handling_s=statistics.median(handling) if handling else None,
        open_overdue=dict(sorted(overdue.items(), key=lambda item: (-item[1], item[0]))),
        false_alarms=false_alarms,
    )


def to_csv(figures: Governance, table: str) -> str:
    """One table of the governance screen as CSV (header row first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if table == "summary":
        writer.writerow(["figure", "value"])
        writer.writerows(
            [
                ["time_zone", figures.zone.key],
                ["period_start", figures.start.isoformat()],
                ["period_stop", figures.stop.isoformat()],
                ["events_raised", figures.raised],
                ["finished_with_sla", figures.finished],
                ["finished_on_time", figures.on_time],
                ["on_time_rate", _blank(figures.on_time_rate)],
                ["mean_handling_time_s", _blank(figures.mean_handling_s)],
                ["median_handling_time_s", _blank(figures.median_handling_s)],
                ["open_overdue", sum(figures.open_overdue.values())],
            ]
        )
    elif table in ("per_day_type", "per_day_area"):
        counts = figures.per_day_type if table == "per_day_type" else figures.per_day_area
        writer.writerow(["day", "type" if table == "per_day_type" else figures.area_level, "events"])
        for key, per_day in counts.items():
            writer.writerows([day.isoformat(), key, n] for day, n in zip(figures.days, per_day, strict=True))
    elif table == "overdue":
        writer.writerow(["department", "open_overdue"])
        writer.writerows(figures.open_overdue.items())
    elif table == "false_alarms":
        writer.writerow(["device_id", "site", "device_type", "events", "cancelled_false_alarms", "rate"])
        writer.writerows(
            [d.device_id, d.site, d.device_type, d.events, d.cancelled, f"{d.rate:.4f}"]
            for d in figures.false_alarms
        )
    else:
        raise ValueError(f"unknown table {table!r}; tables are: {', '.join(CSV_TABLES)}")
    return out.getvalue()


def _blank(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
