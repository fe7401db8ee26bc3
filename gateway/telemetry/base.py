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


class TelemetryUnavailableError(RuntimeError):
    """The store cannot answer now: its server is away or refuses the gateway (the API answers 503)."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s  # when the server said to ask again, if it did


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """What ``/health`` shows of the store."""

    kind: str
    ok: bool
    error: str | None = None  # why it is not ok
    spilling: bool = False  # batches wait on disk for the server
    spilled_points: int = 0
    spilled_bytes: int = 0
    dropped_points_spill_full: int = 0  # since this process started


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
        """Samples of one field in [start, stop), aggregated per window when given; raises
        ``TelemetryUnavailableError`` when the store cannot answer now."""

    def count(self, *, device_id: str | None = None, measurement: str | None = None) -> int:
        """How many distinct points are stored (for health, tests and benchmarks)."""

    def status(self) -> StoreStatus:
        """Whether the store can take and serve telemetry now (for ``/health``)."""

    def close(self) -> None:
        """Flush everything pending and release resources."""
