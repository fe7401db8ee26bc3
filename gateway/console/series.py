"""Telemetry for the console's charts and health columns, through the store's own ``history`` (SQLite or
InfluxDB alike).

Device clocks may run ahead of the gateway's by up to ``CLOCK_SKEW_S`` (the demo's culverts run
fast-forward), so "the latest" is looked for up to that far ahead, and a chart's window ends at the
device's latest sample when that is later than now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.telemetry.base import Aggregation, TelemetryStore, TelemetryUnavailableError

MAX_POINTS = 600  # per series: more than a wall screen's chart can show apart


@dataclass(frozen=True, slots=True)
class Series:
    measurement: str
    field: str
    points: list[tuple[datetime, float]]
    error: str | None = None  # the store could not answer (InfluxDB away): said on the chart

    def as_json(self) -> dict[str, object]:
        return {
            "measurement": self.measurement,
            "field": self.field,
            "points": [[int(ts.timestamp() * 1000), value] for ts, value in self.points],
            "error": self.error,
        }


def series(
    store: TelemetryStore,
    *,
    device_id: str,
    measurement: str,
    field: str,
    start: datetime,
    stop: datetime,
    aggregation: Aggregation = "mean",
    max_points: int = MAX_POINTS,
) -> Series:
    """One field over [start, stop), aggregated into at most about ``max_points`` buckets."""
    if start >= stop:
        return Series(measurement, field, [])
    span = stop - start
    # Raw samples while they are few (a fresh culvert at 60 s); buckets beyond.
    window = span / max_points if span > timedelta(hours=2) else None
    try:
        rows = store.history(
            device_id=device_id,
            measurement=measurement,
            field=field,
            start=start,
            stop=stop,
            window=window,
            aggregation=aggregation,
        )
    except TelemetryUnavailableError as exc:
        return Series(measurement, field, [], error=exc.reason)
    if window is None and len(rows) > max_points:  # thin raw samples evenly, keeping the last
        step = len(rows) / max_points
        rows = [rows[int(i * step)] for i in range(max_points - 1)] + [rows[-1]]
    return Series(measurement, field, [(row.ts, row.value) for row in rows])


def latest(
    store: TelemetryStore,
    *,
    device_id: str,
    measurement: str,
    field: str,
    now: datetime,
    ahead: timedelta,
) -> tuple[datetime, float] | None:
    """The newest sample of one field (its exact time, value), looking back at most 30 days; None when none.

    Searched in widening steps, so that a device heard from lately costs one small query; an older sample
    is found by its hour or day first, then looked up within it.
    """
    steps: tuple[tuple[datetime, datetime, timedelta | None], ...] = (
        (now - timedelta(hours=1), now + ahead, None),
        (now - timedelta(days=1), now - timedelta(hours=1), timedelta(hours=1)),
        (now - timedelta(days=30), now - timedelta(days=1), timedelta(days=1)),
    )
    for start, stop, window in steps:
        rows = store.history(
            device_id=device_id,
            measurement=measurement,
            field=field,
            start=start,
            stop=stop,
            window=window,
            aggregation="last",
        )
        if rows and window is not None:  # the bucket holding it: now the sample itself
            bucket = rows[-1].ts
            rows = store.history(
                device_id=device_id,
                measurement=measurement,
                field=field,
                start=bucket,
                stop=min(bucket + window, stop),
            )
        if rows:
            return rows[-1].ts, rows[-1].value
    return None


def values_at(
    store: TelemetryStore, *, device_id: str, measurement: str, fields: tuple[str, ...], ts: datetime
) -> dict[str, float | None]:
    """The fields of the one sample stored at ``ts`` (None where it lacks one)."""
    values: dict[str, float | None] = {}
    for name in fields:
        rows = store.history(
            device_id=device_id,
            measurement=measurement,
            field=name,
            start=ts,
            stop=ts + timedelta(milliseconds=1),  # InfluxDB keeps milliseconds
        )
        values[name] = rows[-1].value if rows else None
    return values
