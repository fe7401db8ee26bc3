"""The water simulator and recorded series behind the culvert agent's sensor interface.

They are the ``simulated`` and ``replay`` sensor types: entry points in the ``citywatch.edge_sources``
group (pyproject.toml) point at the ``from_config`` factories here, so the edge opens them by name
and imports nothing from the simulators itself.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from edge.culvert.config import ReplaySensor, SimulatedSensor
from simulators.water import (
    DistanceSeries,
    FaultPlan,
    ProfileReadings,
    WaterSimulator,
    load_distance_series,
    load_floodnet_profiles,
    scenario,
)


class SimulatedSource:
    def __init__(self, simulator: WaterSimulator, *, origin: datetime) -> None:
        self.simulator = simulator
        self.origin = origin

    @classmethod
    def from_config(
        cls, sensor: SimulatedSensor, *, mount_height_mm: int, origin: datetime
    ) -> SimulatedSource:
        event = scenario(sensor.scenario, peak_cm=sensor.peak_cm, start_s=sensor.start_after_s)
        simulator = WaterSimulator(
            event=event,
            mount_height_mm=mount_height_mm,
            noise_mm=sensor.noise_mm,
            faults=FaultPlan.named(sensor.faults, stuck_from_s=event.start_s + event.rise_s),
            seed=sensor.seed,
        )
        return cls(simulator, origin=origin)

    def read(self, ts: datetime, count: int) -> list[float | None]:
        return list(self.simulator.readings((ts - self.origin).total_seconds(), count))

    def close(self) -> None:
        pass


class ReplaySource:
    """A recorded series replayed against device time: raw distances, or a FloodNet depth profile."""

    def __init__(
        self, series: DistanceSeries | ProfileReadings, *, origin: datetime, loop: bool = False
    ) -> None:
        self.series = series
        self.origin = origin
        self.loop = loop

    @classmethod
    def from_config(cls, sensor: ReplaySensor, *, mount_height_mm: int, origin: datetime) -> ReplaySource:
        return cls.from_file(
            sensor.file, origin=origin, mount_height_mm=mount_height_mm, event=sensor.event, loop=sensor.loop
        )

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
