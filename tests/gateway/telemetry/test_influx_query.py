"""The Flux query path (``history()``, ``count()``), which needs a real InfluxDB 2.

Victoria-metrics does not speak Flux, so these run only where ``CITYWATCH_TEST_INFLUX_URL`` (with
``_TOKEN``, ``_ORG``, ``_BUCKET``) points at an InfluxDB 2 the test may write to.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.telemetry.base import HistoryRow, TelemetryPoint
from gateway.telemetry.influx import InfluxOptions, InfluxTelemetryStore

ENV_PREFIX = "CITYWATCH_TEST_INFLUX_"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[InfluxTelemetryStore]:
    url = os.environ.get(f"{ENV_PREFIX}URL")
    if not url:
        pytest.skip(f"{ENV_PREFIX}URL is not set: the Flux query path needs a real InfluxDB 2")
    missing = [name for name in ("TOKEN", "ORG", "BUCKET") if not os.environ.get(f"{ENV_PREFIX}{name}")]
    if missing:
        pytest.fail(f"{ENV_PREFIX}URL is set but {', '.join(ENV_PREFIX + m for m in missing)} is not")
    influx = InfluxTelemetryStore(
        InfluxOptions(
            url=url,
            token=os.environ[f"{ENV_PREFIX}TOKEN"],
            org=os.environ[f"{ENV_PREFIX}ORG"],
            bucket=os.environ[f"{ENV_PREFIX}BUCKET"],
            spill_dir=tmp_path / "spill",
        )
    )
    yield influx
    influx.close()


def test_history_and_count(store: InfluxTelemetryStore) -> None:
    device_id = f"culvert-{uuid.uuid4().hex[:12]}"  # a series of its own in a shared bucket
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    points = [
        TelemetryPoint(
            site="riverside",
            device_id=device_id,
            measurement="water_level",
            ts=minute + timedelta(seconds=10 * i),
            # an int then floats: stored as one float field, no type conflict
            fields={"level_cm": i + 1 if i == 0 else float(i + 1), "raw_mm": 900.0},
            tags={"sensor": "a02yyuw"} if i % 2 else {},  # extra tags split series; history joins them
        )
        for i in range(12)
    ]
    store.write(points)
    store.write(points[:3])  # a redelivery overwrites, it does not add points
    assert not store.spilling

    start, stop = minute, minute + timedelta(minutes=2)

    def levels(**query: Any) -> list[HistoryRow]:
        return store.history(device_id=device_id, measurement="water_level", field="level_cm", **query)

    raw = levels(start=start, stop=stop)
    assert raw == [HistoryRow(ts=p.ts, value=float(p.fields["level_cm"])) for p in points]

    means = levels(start=start, stop=stop, window=timedelta(minutes=1))
    assert means == [
        HistoryRow(ts=minute, value=3.5),
        HistoryRow(ts=minute + timedelta(minutes=1), value=9.5),
    ]
    peaks = levels(start=start, stop=stop, window=timedelta(minutes=1), aggregation="max")
    assert [row.value for row in peaks] == [6.0, 12.0]
    later = levels(start=minute + timedelta(seconds=60), stop=minute + timedelta(seconds=90))
    assert [row.value for row in later] == [7.0, 8.0, 9.0]

    assert store.count(device_id=device_id) == 12
    assert store.count(device_id=device_id, measurement="health") == 0
