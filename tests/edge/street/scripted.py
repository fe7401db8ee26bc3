"""Scripted street scenes for the parking analyzer: vehicles on timed paths, hidden when told, with
colour histograms as the agent would compute them; run through the real analyzer frame by frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from edge.street.config import StreetConfig
from edge.street.geometry import Box
from edge.street.parking import ParkingAction, ParkingAnalyzer
from edge.street.tracker import Sighting

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_8AM = datetime(2026, 6, 1, 8, 0, tzinfo=SHANGHAI)  # 1 June 2026 is a Monday
CAR_W, CAR_H = 300.0, 150.0
KERB_Y = 750.0  # ground line of vehicles parked at the kerb (inside the zone)
LANE_Y = 900.0  # ground line of the through lane (outside the zone)
KERB_ZONE = {"name": "kerb", "polygon": [[100, 600], [1800, 600], [1800, 800], [100, 800]]}
BINS = 40

Path = Callable[[float], tuple[float, float] | None]  # time -> ground point (x centre, y bottom) or away


def colour(bin_index: int) -> np.ndarray:
    """A colour histogram dominated by one bin, as a car of one paint gives."""
    hist = np.full(BINS, 0.1 / (BINS - 1))
    hist[bin_index] = 0.9
    return hist


def street_config(**street: Any) -> StreetConfig:
    raw: dict[str, Any] = {
        "camera": {"source": {"kind": "stream", "url": "rtsp://10.0.0.9/s"}, "width": 1920, "height": 1080},
        "zones": [KERB_ZONE],
    }
    raw.update(street)
    return StreetConfig.model_validate(raw)


def ease(a: float, b: float, u: float) -> float:
    return a + (b - a) * u


def stop_at(x: float, arrive_t: float, leave_t: float, *, y: float = KERB_Y, approach_s: float = 4.0) -> Path:
    """Drives in from the left (slowing to a halt), stands at x from arrive_t, drives off to the right
    from leave_t (speeding up)."""

    def path(t: float) -> tuple[float, float] | None:
        if t < arrive_t - approach_s or t > leave_t + approach_s:
            return None
        if t < arrive_t:
            u = (arrive_t - t) / approach_s  # 1 -> 0
            return (x - 1200.0 * u * u, y)  # quadratic: slows down to a stop
        if t <= leave_t:
            return (x, y)
        u = (t - leave_t) / approach_s
        return (x + 1500.0 * u * u, y)

    return path


def passing(y: float, start_t: float, *, speed: float = 300.0, x0: float = -200.0) -> Path:
    """Drives through at a steady speed (pixels per second)."""

    def path(t: float) -> tuple[float, float] | None:
        if t < start_t:
            return None
        x = x0 + speed * (t - start_t)
        return (x, y) if x < 2200 else None

    return path


@dataclass
class Vehicle:
    path: Path
    paint: int = 3
    label: str = "car"
    size: tuple[float, float] = (CAR_W, CAR_H)
    hidden: Sequence[tuple[float, float]] = ()  # intervals in which the detector does not see it
    crop_right: Sequence[tuple[float, float, float]] = ()  # (from, to, fraction of width hidden)
    score: float = 0.8

    def sighting(self, t: float) -> Sighting | None:
        point = self.path(t)
        if point is None or any(a <= t < b for a, b in self.hidden):
            return None
        x, y = point
        w, h = self.size
        box = Box(x - w / 2, y - h, x + w / 2, y)
        for a, b, fraction in self.crop_right:
            if a <= t < b:
                box = Box(box.x1, box.y1, box.x2 - w * fraction, box.y2)
        return Sighting(self.label, self.score, box, colour(self.paint))


@dataclass
class Run:
    actions: list[ParkingAction] = field(default_factory=list)
    analyzer: ParkingAnalyzer | None = None

    def kinds(self) -> list[tuple[str, str, int]]:
        return [(a.kind, a.stage, a.case_id) for a in self.actions]

    def of(self, kind: str) -> list[ParkingAction]:
        return [a for a in self.actions if a.kind == kind]


def run(
    config: StreetConfig,
    vehicles: Sequence[Vehicle],
    seconds: float,
    *,
    step: float = 0.5,
    start: datetime = MONDAY_8AM,
    jitter_px: float = 2.0,
    miss_rate: float = 0.0,
    seed: int = 0,
) -> Run:
    """Every vehicle's sighting each ``step`` seconds into the analyzer, with detector jitter on the box
    edges and a share of sightings missed."""
    rng = np.random.default_rng(seed)
    analyzer = ParkingAnalyzer(config)
    result = Run(analyzer=analyzer)
    for i in range(int(seconds / step) + 1):
        t = i * step
        sightings = []
        for vehicle in vehicles:
            sighting = vehicle.sighting(t)
            if sighting is None or (miss_rate and rng.random() < miss_rate):
                continue
            j = rng.uniform(-jitter_px, jitter_px, 4)
            b = sighting.box
            box = Box(b.x1 + j[0], b.y1 + j[1], b.x2 + j[2], b.y2 + j[3])
            sightings.append(Sighting(sighting.label, sighting.score, box, sighting.appearance))
        result.actions += analyzer.update(t, start + timedelta(seconds=t), sightings)
    return result
