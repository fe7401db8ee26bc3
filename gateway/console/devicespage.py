"""The devices screen: presence, versions and the latest health of every device; one device's charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citywatch.protocol.messages import DeviceType
from gateway.api.deps import Services
from gateway.console.series import Series, latest, series, values_at
from gateway.devices import service as devices_service
from gateway.devices.models import Device, DeviceAudit, Presence
from gateway.events.models import Event
from gateway.telemetry.base import Aggregation, TelemetryUnavailableError

PAGE_SIZE = 50  # health columns cost a few store look-ups per device


@dataclass(frozen=True, slots=True)
class Chart:
    measurement: str
    field: str
    aggregation: Aggregation = "mean"


# Health fields in the columns of the list, per device type (names as the agents send them; a field a
# unit does not report shows as a dash). Culverts on batteries or cellular report battery_pct and
# signal_dbm; the simulated ones do not.
_CAMERA_HEALTH = ("fps_processed", "inference_ms", "dropped_frames", "cpu_temp_c")
HEALTH_COLUMNS: dict[str, tuple[str, ...]] = {
    DeviceType.CULVERT.value: ("battery_pct", "signal_dbm", "outbox_depth", "samples_rejected"),
    DeviceType.ELEVATOR.value: _CAMERA_HEALTH,
    DeviceType.FACADE.value: _CAMERA_HEALTH,
    DeviceType.STREET.value: _CAMERA_HEALTH,
}
# Every health field the agents send (edge/culvert/agent.py, edge/vision/health.py), for the device page.
DETAIL_HEALTH = (
    "uptime_s",
    "rss_mb",
    "cpu_temp_c",
    "battery_pct",
    "signal_dbm",
    "fps_in",
    "fps_processed",
    "inferences_per_s",
    "inference_ms",
    "inference_ms_max",
    "dropped_frames",
    "dropped_frames_total",
    "reconnects",
    "outbox_depth",
    "outbox_dropped",
    "uplink_queue_depth",
    "refusals_received",
    "samples",
    "samples_rejected",
)
# Charts of the device page, per device type.
_CAMERA_CHARTS = (
    Chart("health", "fps_processed"),
    Chart("health", "inference_ms"),
    Chart("health", "dropped_frames", "max"),
    Chart("health", "cpu_temp_c", "max"),
)
CHARTS: dict[str, tuple[Chart, ...]] = {
    DeviceType.CULVERT.value: (
        Chart("water_level", "level_cm", "max"),
        Chart("water_level", "rate_cm_per_min"),
        Chart("health", "battery_pct", "min"),
        Chart("health", "signal_dbm", "min"),
        Chart("health", "outbox_depth", "max"),
    ),
    DeviceType.ELEVATOR.value: _CAMERA_CHARTS,
    DeviceType.FACADE.value: _CAMERA_CHARTS,
    DeviceType.STREET.value: _CAMERA_CHARTS,
}
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


@dataclass(frozen=True, slots=True)
class DeviceRow:
    device: Device
    presence: Presence
    desired_config_version: str | None  # what was last pushed, where the gateway knows it
    health: dict[str, float | None]
    health_error: str | None
    open_events: int


def _desired_config(device: Device) -> str | None:
    # The installer issue adds the desired configuration to the registry; until then there is none to show.
    value = getattr(device, "desired_config_version", None)
    return value if isinstance(value, str) else None


# Every agent's health report has it: the report's time is found by it, then its other fields read.
HEALTH_PROBE = "rss_mb"


def _health(
    services: Services, device: Device, fields: tuple[str, ...], now: datetime
) -> tuple[dict[str, float | None], datetime | None, str | None]:
    """The fields of the device's latest health report, its time, and why not when the store cannot say."""
    ahead = timedelta(seconds=services.settings.CLOCK_SKEW_S)
    store = services.store
    try:
        found = latest(
            store, device_id=device.id, measurement="health", field=HEALTH_PROBE, now=now, ahead=ahead
        )
        if found is None:
            return dict.fromkeys(fields), None, None
        values = values_at(store, device_id=device.id, measurement="health", fields=fields, ts=found[0])
    except TelemetryUnavailableError as exc:
        return dict.fromkeys(fields), None, exc.reason
    return values, found[0], None


def device_rows(
    session: Session, services: Services, *, page: int, now: datetime
) -> tuple[list[DeviceRow], int]:
    total = session.scalar(select(func.count()).select_from(Device)) or 0
    devices = list(
        session.scalars(
            select(Device).order_by(Device.site, Device.id).offset(page * PAGE_SIZE).limit(PAGE_SIZE)
        )
    )
    open_counts = dict(
        session.execute(
            select(Event.device_id, func.count())
            .where(Event.device_id.in_([d.id for d in devices]), Event.state.not_in(["closed", "cancelled"]))
            .group_by(Event.device_id)
        ).all()
    )
    silent_after = timedelta(seconds=services.settings.DEVICE_OFFLINE_AFTER_S)
    rows = []
    for device in devices:
        health, _at, error = _health(services, device, HEALTH_COLUMNS.get(device.device_type, ()), now)
        rows.append(
            DeviceRow(
                device=device,
                presence=devices_service.presence(device, silent_after=silent_after, now=now),
                desired_config_version=_desired_config(device),
                health=health,
                health_error=error,
                open_events=open_counts.get(device.id, 0),
            )
        )
    return rows, total


@dataclass(frozen=True, slots=True)
class DevicePage:
    row: DeviceRow
    all_health: dict[str, float | None]
    charts: list[Series]
    window: str
    start: datetime
    stop: datetime
    audit: list[DeviceAudit]
    events: list[Event]


def device_page(
    session: Session, services: Services, device: Device, *, window: str, now: datetime
) -> DevicePage:
    """One device: every health field, and its charts over ``window`` ending at its latest sample (or now)."""
    charts = CHARTS.get(device.device_type, ())
    health, health_at, error = _health(services, device, DETAIL_HEALTH, now)
    newest = max(now, health_at) if health_at is not None else now
    if charts and charts[0].measurement != "health":  # a culvert's readings may be newer than its health
        try:
            found = latest(
                services.store,
                device_id=device.id,
                measurement=charts[0].measurement,
                field=charts[0].field,
                now=now,
                ahead=timedelta(seconds=services.settings.CLOCK_SKEW_S),
            )
        except TelemetryUnavailableError:
            found = None  # the charts say so below
        if found is not None:
            newest = max(newest, found[0])
    stop = newest + timedelta(seconds=1)
    start = stop - WINDOWS[window]
    series_list = [
        series(
            services.store,
            device_id=device.id,
            measurement=chart.measurement,
            field=chart.field,
            start=start,
            stop=stop,
            aggregation=chart.aggregation,
        )
        for chart in charts
    ]
    silent_after = timedelta(seconds=services.settings.DEVICE_OFFLINE_AFTER_S)
    open_events = (
        session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.device_id == device.id, Event.state.not_in(["closed", "cancelled"]))
        )
        or 0
    )
    row = DeviceRow(
        device=device,
        presence=devices_service.presence(device, silent_after=silent_after, now=now),
        desired_config_version=_desired_config(device),
        health={k: health.get(k) for k in HEALTH_COLUMNS.get(device.device_type, ())},
        health_error=error,
        open_events=open_events,
    )
    events = list(
        session.scalars(select(Event).where(Event.device_id == device.id).order_by(Event.id.desc()).limit(20))
    )
    return DevicePage(
        row=row,
        all_health={k: v for k, v in health.items() if v is not None},
        charts=[s for s in series_list if s.points or s.error] or series_list[:1],
        window=window,
        start=start,
        stop=stop,
        audit=devices_service.audit_trail(session=session, device_id=device.id, limit=50),
        events=events,
    )
