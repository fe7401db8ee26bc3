"""Recorded series replayed against device time: raw distances, or a FloodNet depth profile."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from simulators.water import (
    DistanceSeries,
    ProfileReadings,
    load_distance_series,
    load_floodnet_profiles,
)


class ReplaySource:
    def __init__(
        self, series: DistanceSeries | ProfileReadings, *, origin: datetime, loop: bool = False
    ) -> None:
        self.series = series
        self.origin = origin
        self.loop = loop

    @classmethod
    def from_file(
        cls,
        path: Path,
        *,
        origin: datetime,
        mount_height_mm: int,
        event: int | None = None,
        loop: bool = False,
    ) -> ReplaySource:
        if event is not None:
            profiles = load_floodnet_profiles(path)
            if event >= len(profiles):
                raise ValueError(f"{path} has {len(profiles)} events; event {event} does not exist")
            return cls(ProfileReadings(profiles[event], mount_height_mm), origin=origin, loop=loop)
        return cls(load_distance_series(path), origin=origin, loop=loop)

    @property
    def duration_s(self) -> float:
        if isinstance(self.series, ProfileReadings):
            return self.series.profile.duration_s
        return self.series.duration_s

    def read(self, ts: datetime, count: int) -> list[float | None]:
        t = (ts - self.origin).total_seconds()
        if self.loop and self.duration_s > 0:
            t %= self.duration_s
        if isinstance(self.series, ProfileReadings):
            return list(self.series.readings(t, count))
        return [self.series.reading_at(t)] * count

    def close(self) -> None:
        pass
