"""Water-level sensor simulator: a rain event's depth over the road, seen as an ultrasonic ranger would.

It produces raw DISTANCE readings (mount height - depth, with noise and injectable faults) so the
agent's real filter runs on them. Seeded and deterministic for a given (seed, time).
Replay mode reads recorded series: ``offset_s,dist_mm`` CSVs or FloodNet flood-event depth profiles.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SENTINEL_MAX_RANGE_MM = 5000
INCH_CM = 2.54


@dataclass(frozen=True, slots=True)
class RainEvent:
    """Dry until ``start_s``, rises for ``rise_s`` to ``peak_cm``, holds ``hold_s``, recedes over ``recede_s``."""

    peak_cm: float = 30.0
    start_s: float = 60.0
    rise_s: float = 900.0
    hold_s: float = 600.0
    recede_s: float = 1800.0

    def depth_cm(self, t_s: float) -> float:
        t = t_s - self.start_s
        if t <= 0 or self.peak_cm <= 0:
            return 0.0
        if t < self.rise_s:  # smooth S-shaped rise
            return self.peak_cm * (1 - math.cos(math.pi * t / self.rise_s)) / 2
        t -= self.rise_s
        if t < self.hold_s:
            return self.peak_cm
        t -= self.hold_s
        if t < self.recede_s:
            return self.peak_cm * (1 + math.cos(math.pi * t / self.recede_s)) / 2
        return 0.0

    @property
    def end_s(self) -> float:
        return self.start_s + self.rise_s + self.hold_s + self.recede_s


SCENARIOS: dict[str, RainEvent] = {
    "dry": RainEvent(peak_cm=0.0),
    "drizzle": RainEvent(peak_cm=5.0, rise_s=1200, hold_s=600, recede_s=1800),
    "storm": RainEvent(peak_cm=30.0, rise_s=900, hold_s=600, recede_s=1800),
    "flash_flood": RainEvent(peak_cm=45.0, rise_s=240, hold_s=300, recede_s=1200),
}


def scenario(name: str, *, peak_cm: float | None = None, start_s: float | None = None) -> RainEvent:
    base = SCENARIOS[name]
    return RainEvent(
        peak_cm=base.peak_cm if peak_cm is None or name == "dry" else peak_cm,
        start_s=base.start_s if start_s is None else start_s,
        rise_s=base.rise_s,
        hold_s=base.hold_s,
        recede_s=base.recede_s,
    )


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which faults to inject. Probabilities are per reading (spikes, max_range) or per burst (dropouts)."""

    spike_probability: float = 0.0
    dropout_probability: float = 0.0
    max_range_probability: float = 0.0
    stuck_from_s: float | None = None
    stuck_for_s: float = 1800.0

    @classmethod
    def named(cls, names: Iterable[str], *, stuck_from_s: float = 600.0) -> FaultPlan:
        chosen = set(names)
        unknown = chosen - {"spikes", "stuck", "dropouts", "max_range"}
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}: use spikes, stuck, dropouts, max_range")
        return cls(
            spike_probability=0.03 if "spikes" in chosen else 0.0,
            dropout_probability=0.05 if "dropouts" in chosen else 0.0,
            max_range_probability=0.03 if "max_range" in chosen else 0.0,
            stuck_from_s=stuck_from_s if "stuck" in chosen else None,
        )


@dataclass
class WaterSimulator:
    """Raw distance readings (mm) for any simulated time; faults per ``FaultPlan``."""

    event: RainEvent
    mount_height_mm: int
    noise_mm: float = 3.0
    faults: FaultPlan = field(default_factory=FaultPlan)
    seed: int = 1

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._stuck_value: int | None = None

    def depth_cm(self, t_s: float) -> float:
        return self.event.depth_cm(t_s)

    def readings(self, t_s: float, count: int) -> list[int | None]:
        f = self.faults
        rng = self._rng
        if f.stuck_from_s is not None and f.stuck_from_s <= t_s < f.stuck_from_s + f.stuck_for_s:
            if self._stuck_value is None:
                self._stuck_value = self._distance(t_s, rng)
            return [self._stuck_value] * count
        self._stuck_value = None
        if f.dropout_probability and rng.random() < f.dropout_probability:
            return [None] * count
        out: list[int | None] = []
        for _ in range(count):
            if f.max_range_probability and rng.random() < f.max_range_probability:
                out.append(SENTINEL_MAX_RANGE_MM)
            elif f.spike_probability and rng.random() < f.spike_probability:
                out.append(rng.randint(300, max(301, self.mount_height_mm // 2)))  # e.g. a bird, a leaf
            else:
                out.append(self._distance(t_s, rng))
        return out

    def _distance(self, t_s: float, rng: random.Random) -> int:
        noise = rng.gauss(0.0, self.noise_mm) if self.noise_mm else 0.0
        return round(self.mount_height_mm - self.depth_cm(t_s) * 10 + noise)


@dataclass(frozen=True, slots=True)
class DepthProfile:
    """A recorded depth series (cm) at offsets (s); linear between points, 0 outside."""

    times_s: Sequence[float]
    depths_cm: Sequence[float]
    name: str = ""
    max_depth_cm: float | None = None

    def depth_cm(self, t_s: float) -> float:
        times = self.times_s
        if not times or t_s < times[0] or t_s > times[-1]:
            return 0.0
        i = bisect.bisect_right(times, t_s)
        if i >= len(times):
            return self.depths_cm[-1]
        t0, t1 = times[i - 1], times[i]
        d0, d1 = self.depths_cm[i - 1], self.depths_cm[i]
        return d0 if t1 == t0 else d0 + (d1 - d0) * (t_s - t0) / (t1 - t0)

    @property
    def duration_s(self) -> float:
        return self.times_s[-1] if self.times_s else 0.0


def load_floodnet_profiles(path: str | Path) -> list[DepthProfile]:
    """FloodNet ``flood-events.csv``: ``flood_profile_depth_inches`` / ``flood_profile_time_secs`` arrays."""
    profiles = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            depths = [float(d) * INCH_CM for d in json.loads(row["flood_profile_depth_inches"])]
            times = [float(t) for t in json.loads(row["flood_profile_time_secs"])]
            if len(depths) != len(times):
                raise ValueError(
                    f"{path}: event {row.get('sensor_id')} has {len(depths)} depths, {len(times)} times"
                )
            profiles.append(
                DepthProfile(
                    times_s=times,
                    depths_cm=depths,
                    name=f"{row['sensor_id']}@{row['flood_start_time']}",
                    max_depth_cm=float(row["max_depth_inches"]) * INCH_CM,
                )
            )
    return profiles


@dataclass(frozen=True, slots=True)
class DistanceSeries:
    """Recorded raw readings: ``dist_mm`` at ``offset_s`` (None = the sensor gave nothing)."""

    offsets_s: Sequence[float]
    distances_mm: Sequence[float | None]

    def reading_at(self, t_s: float) -> float | None:
        i = bisect.bisect_right(self.offsets_s, t_s) - 1
        return self.distances_mm[max(i, 0)] if self.offsets_s else None

    @property
    def duration_s(self) -> float:
        return self.offsets_s[-1] if self.offsets_s else 0.0


def load_distance_series(path: str | Path) -> DistanceSeries:
    """CSV with ``offset_s,dist_mm`` columns (empty ``dist_mm``: no reading)."""
    offsets: list[float] = []
    distances: list[float | None] = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"offset_s", "dist_mm"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected offset_s,dist_mm")
        for row in reader:
            offsets.append(float(row["offset_s"]))
            distances.append(float(row["dist_mm"]) if row["dist_mm"].strip() else None)
    return DistanceSeries(offsets, distances)


@dataclass
class ProfileReadings:
    """A depth profile seen by a ranger mounted at ``mount_height_mm`` (noise-free, for replays)."""

    profile: DepthProfile
    mount_height_mm: int

    def readings(self, t_s: float, count: int) -> list[int | None]:
        return [round(self.mount_height_mm - self.profile.depth_cm(t_s) * 10)] * count
