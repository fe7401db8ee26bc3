"""The SQLite telemetry store: idempotent batches, history with window aggregation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import Settings
from gateway.telemetry.base import Aggregation, HistoryRow, TelemetryPoint
from gateway.telemetry.factory import make_telemetry_store
from gateway.telemetry.sqlite import SqliteTelemetryStore

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def _point(
    second: int, level: float, *, device_id: str = "culvert-1", measurement: str = "water_level"
) -> TelemetryPoint:
    return TelemetryPoint(
        site="riverside",
        device_id=device_id,
        measurement=measurement,
        ts=T0 + timedelta(seconds=second),
        fields={"level_cm": level, "dry": level == 0},
        tags={"sensor": "ultrasonic"},
    )


@pytest.fixture
def store(tmp_path: Path) -> SqliteTelemetryStore:
    return SqliteTelemetryStore(tmp_path / "telemetry.db")


def test_duplicates_are_ignored_and_counted_once(store: SqliteTelemetryStore) -> None:
    batch = [_point(s, float(s)) for s in range(100)]
    store.write(batch)
    store.write(batch[50:])  # a redelivered tail
    store.write([_point(0, 99.0)])  # same key, other value: the first write stands
    store.write([_point(0, 1.0, device_id="culvert-2"), _point(0, 1.0, measurement="health")])
    assert store.count() == 102
    assert store.count(device_id="culvert-1") == 101
    assert store.count(device_id="culvert-1", measurement="water_level") == 100
    assert store.history(
        device_id="culvert-1",
        measurement="water_level",
        field="level_cm",
        start=T0,
        stop=T0 + timedelta(seconds=1),
    ) == [HistoryRow(ts=T0, value=0.0)]


def test_history_aggregates_per_window(store: SqliteTelemetryStore) -> None:
    store.write([_point(s, float(s)) for s in range(120)])  # level = seconds since T0
    window = timedelta(seconds=60)
    common: dict[str, Any] = {"device_id": "culvert-1", "measurement": "water_level", "field": "level_cm"}
    stop = T0 + timedelta(minutes=2)

    def agg(aggregation: Aggregation) -> list[float]:
        rows = store.history(**common, start=T0, stop=stop, window=window, aggregation=aggregation)
        assert [r.ts for r in rows] == [T0, T0 + window]
        return [r.value for r in rows]

    assert agg("mean") == [29.5, 89.5]
    assert agg("min") == [0.0, 60.0]
    assert agg("max") == [59.0, 119.0]
    assert agg("last") == [59.0, 119.0]
    assert agg("count") == [60.0, 60.0]
    raw = store.history(**common, start=T0 + timedelta(seconds=10), stop=T0 + timedelta(seconds=13))
    assert [r.value for r in raw] == [10.0, 11.0, 12.0]
    assert store.history(**common | {"field": "no_such_field"}, start=T0, stop=stop) == []
    booleans = store.history(
        **common | {"field": "dry"}, start=T0, stop=stop, window=window, aggregation="count"
    )
    assert [r.value for r in booleans] == [60.0, 60.0]


def test_survives_reopening_and_refuses_naive_times(tmp_path: Path) -> None:
    first = SqliteTelemetryStore(tmp_path / "t.db")
    first.write([_point(s, 1.0) for s in range(10)])
    first.close()
    second = SqliteTelemetryStore(tmp_path / "t.db")
    assert second.count() == 10
    with pytest.raises(ValueError, match="timezone-aware"):
        second.write([TelemetryPoint("s", "d", "m", datetime(2026, 1, 1), {"x": 1}, {})])
    with pytest.raises(ValueError, match="window must be positive"):
        second.history(device_id="d", measurement="m", field="x", start=T0, stop=T0, window=timedelta(0))
    second.close()


def test_factory_builds_the_configured_store(tmp_path: Path) -> None:
    store = make_telemetry_store(Settings(DATA_DIR=tmp_path))
    assert isinstance(store, SqliteTelemetryStore) and store.path == tmp_path / "telemetry.db"
    store.close()


def test_factory_builds_the_influx_store_when_asked(tmp_path: Path) -> None:
    from gateway.telemetry.influx import InfluxTelemetryStore

    settings = Settings(DATA_DIR=tmp_path, TELEMETRY_STORE="influx", INFLUX_URL="http://127.0.0.1:9")
    store = make_telemetry_store(settings)
    try:
        assert isinstance(store, InfluxTelemetryStore)
        assert store.options.spill_dir == settings.influx_spill_dir and store.options.bucket == "telemetry"
    finally:
        store.close()
