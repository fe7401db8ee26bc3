"""The telemetry store interface every implementation follows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

Aggregation = Literal["mean", "min", "max", "last", "count"]


@dataclass(frozen=True, slots=True)
class TelemetryPoint:
    site: str
    device_id: str
    measurement: str
    ts: datetime
    fields: Mapping[str, float | int | bool]
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class HistoryRow:
    ts: datetime  # start of the aggregation window (or the sample time when not aggregated)
    value: float


class TelemetryStore(Protocol):
    def write(self, points: Sequence[TelemetryPoint]) -> None:
        """Store points durably (or in a durable local spill) before returning; duplicates are harmless."""

    def history(
        self,
        *,
        device_id: str,
        measurement: str,
        field: str,
        start: datetime,
        stop: datetime,
        window: timedelta | None = None,
        aggregation: Aggregation = "mean",
    ) -> list[HistoryRow]:
        """Samples of one field in [start, stop), aggregated per window when given."""

    def count(self, *, device_id: str | None = None, measurement: str | None = None) -> int:
        """How many distinct points are stored (for health, tests and benchmarks)."""

    def close(self) -> None:
        """Flush everything pending and release resources."""
