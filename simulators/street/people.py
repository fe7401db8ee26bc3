"""Pedestrians: walking along the pavements, and across the zebra while the traffic light is red."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.street.layout import StreetLayout
from simulators.street.traffic import LightCycle

BGR = tuple[int, int, int]
_SHIRTS: list[BGR] = [
    (40, 40, 40),
    (200, 200, 205),
    (160, 70, 30),
    (40, 40, 160),
    (60, 130, 60),
    (40, 160, 210),
    (140, 70, 140),
]
_TROUSERS: list[BGR] = [(35, 35, 40), (90, 60, 40), (120, 120, 125), (60, 50, 110)]


@dataclass(frozen=True)
class Pedestrian:
    id: int
    times: np.ndarray  # key times; the walker goes straight from point to point between them
    points: np.ndarray  # (N, 2) road-plane metres
    height_m: float
    shirt: BGR
    trousers: BGR
    stride_hz: float

    @property
    def start_s(self) -> float:
        return float(self.times[0])

    @property
    def end_s(self) -> float:
        return float(self.times[-1])

    def at(self, t: float) -> tuple[float, float, float, float] | None:
        """(x, y, heading, stride phase) at ``t``, None when not on the street."""
        if t < self.times[0] or t > self.times[-1]:
            return None
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        i = min(max(i, 0), len(self.times) - 2)
        t0, t1 = self.times[i], self.times[i + 1]
        w = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        p = self.points[i] + (self.points[i + 1] - self.points[i]) * w
        d = self.points[i + 1] - self.points[i]
        moving = float(np.hypot(*d)) > 1e-6
        heading = math.atan2(d[0], d[1]) if moving else math.atan2(*(self.points[-1] - self.points[0]))
        phase = (t * self.stride_hz) % 1.0 if moving else 0.25
        return float(p[0]), float(p[1]), heading, phase


def plan_pedestrians(
    rng: np.random.Generator,
    layout: StreetLayout,
    light: LightCycle,
    duration_s: float,
    per_minute: float,
    first_id: int,
) -> list[Pedestrian]:
    out: list[Pedestrian] = []
    count = int(rng.poisson(max(per_minute, 0.0) * (duration_s + 120) / 60))
    starts = np.sort(rng.uniform(-120, duration_s, count))
    crossing_y = (layout.crossing[0] + layout.crossing[1]) / 2
    red = [(a, b) for state, a, b in light.phases(duration_s + 400) if state == "red"]
    for k, start in enumerate(starts):
        side = "left" if rng.random() < 0.5 else "right"
        x0, x1 = layout.left_pavement if side == "left" else layout.right_pavement
        x = float(rng.uniform(x0 + 0.5, x1 - 0.5))
        speed = float(rng.uniform(1.1, 1.6))
        away = rng.random() < 0.5
        y_a, y_b = (-8.0, crossing_y) if away else (crossing_y + 40.0, crossing_y)
        times = [float(start)]
        points = [(x, y_a)]
        t = float(start) + abs(y_b - y_a) / speed
        times.append(t)
        points.append((x, y_b))
        if rng.random() < 0.5:  # cross the street on the next red, then walk on
            window = next(((a, b) for a, b in red if b - 4 > t and b - a > 15), None)
            if window is not None:
                go = max(t, window[0] + 0.5)
                other = layout.right_pavement if side == "left" else layout.left_pavement
                x_to = float(rng.uniform(other[0] + 0.5, other[1] - 0.5))
                times.append(go)
                points.append((x, y_b))
                t = go + abs(x_to - x) / speed
                times.append(t)
                points.append((x_to, y_b + float(rng.uniform(-1, 1))))
                x = x_to
        y_end = crossing_y + 60.0 if away else -8.0
        times.append(t + abs(y_end - points[-1][1]) / speed)
        points.append((x, y_end))
        if times[-1] < 0 or times[0] > duration_s:
            continue
        out.append(
            Pedestrian(
                first_id + k,
                np.asarray(times),
                np.asarray(points, dtype=np.float64),
                float(rng.uniform(1.55, 1.85)),
                _SHIRTS[int(rng.integers(len(_SHIRTS)))],
                _TROUSERS[int(rng.integers(len(_TROUSERS)))],
                speed * 0.9,
            )
        )
    return out
