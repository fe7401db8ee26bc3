"""Fall physics: gravity and quadratic air drag, integrated at a fine time step.

World coordinates in metres: ``x`` along the facade (0 at the building's left edge as the camera sees
it), ``y`` up from the ground, ``z`` out of the facade towards the street (the facade is ``z = 0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

G = 9.81
AIR_DENSITY = 1.225  # kg/m^3 at sea level, 15 degrees C
STEP_S = 0.001


@dataclass(frozen=True)
class ObjectSpec:
    """What falls: its mass and the drag it meets (mean over tumbling orientations)."""

    kind: str
    mass_kg: float
    # Largest and smallest extents (metres): what the camera sees as the blob's long and short axes.
    length_m: float
    width_m: float
    drag_coefficient: float
    area_m2: float
    colour: tuple[float, float, float]  # BGR at full daylight
    glint: float  # brightness swing with the spin (glass and foil flash, cloth does not)

    @property
    def drag_per_mass(self) -> float:
        """``k / m`` in ``a = g - (k/m) |v| v``, 1/m."""
        return 0.5 * AIR_DENSITY * self.drag_coefficient * self.area_m2 / self.mass_kg

    @property
    def terminal_speed(self) -> float:
        return float(np.sqrt(G / self.drag_per_mass))


OBJECT_KINDS = ("bottle", "flower_pot", "cigarette_pack", "rubbish_bag")


def make_object(rng: np.random.Generator, kind: str) -> ObjectSpec:
    """A seeded object of ``kind`` (one of ``OBJECT_KINDS``) with plausible size, mass and drag."""
    if kind == "bottle":
        length = float(rng.uniform(0.22, 0.32))
        width = float(rng.uniform(0.06, 0.09))
        colour = [(40, 110, 40), (30, 60, 110), (170, 190, 170)][int(rng.integers(3))]
        # Glass plus what is left in it; tumbling shows on average about half side-on.
        return ObjectSpec(
            kind, float(rng.uniform(0.35, 0.9)), length, width, 0.85, 0.6 * length * width, colour, 0.45
        )
    if kind == "flower_pot":
        size = float(rng.uniform(0.14, 0.26))
        return ObjectSpec(
            kind,
            float(rng.uniform(1.2, 4.5)) * (size / 0.2) ** 3,
            size,
            size * 0.85,
            1.05,
            0.8 * size * size,
            (50, 85, 165),
            0.05,
        )
    if kind == "cigarette_pack":
        return ObjectSpec(kind, 0.025, 0.088, 0.055, 1.1, 0.088 * 0.055 * 0.7, (235, 235, 240), 0.3)
    if kind == "rubbish_bag":
        size = float(rng.uniform(0.3, 0.5))
        colour = [(25, 25, 25), (120, 70, 30), (200, 200, 200)][int(rng.integers(3))]
        return ObjectSpec(
            kind, float(rng.uniform(1.0, 5.0)), size, size * 0.75, 1.0, 0.7 * size * size * 0.75, colour, 0.1
        )
    raise ValueError(f"unknown object kind {kind!r}: expected one of {', '.join(OBJECT_KINDS)}")


@dataclass(frozen=True)
class Fall:
    """A sampled trajectory from release to impact on the ground (``y = 0``)."""

    start_s: float
    step_s: float
    positions: FloatArray  # (N, 3), every ``step_s`` from ``start_s``
    velocities: FloatArray  # (N, 3)
    impact_s: float  # absolute time the object reaches the ground (interpolated)
    impact_m: tuple[float, float, float]
    impact_speed: float

    @property
    def duration_s(self) -> float:
        return self.impact_s - self.start_s

    def position(self, t: float | FloatArray) -> FloatArray:
        """Positions at absolute time(s) ``t`` (clamped to release and impact), shape (..., 3)."""
        times = np.clip(np.asarray(t, dtype=np.float64), self.start_s, self.impact_s)
        f = (times - self.start_s) / self.step_s
        i = np.clip(np.floor(f).astype(np.int64), 0, len(self.positions) - 2)
        frac = (f - i)[..., None]
        return self.positions[i] * (1 - frac) + self.positions[i + 1] * frac


def simulate_fall(
    spec: ObjectSpec,
    start_m: tuple[float, float, float],
    velocity: tuple[float, float, float],
    *,
    start_s: float = 0.0,
    wind: tuple[float, float, float] = (0.0, 0.0, 0.0),
    drag: bool = True,
    step_s: float = STEP_S,
    max_s: float = 60.0,
) -> Fall:
    """Integrate ``a = g + drag(v - wind)`` with classical Runge-Kutta until the object is on the ground."""
    if start_m[1] <= 0:
        raise ValueError(f"a fall must start above the ground, got height {start_m[1]} m")
    k = spec.drag_per_mass if drag else 0.0
    wx, wy, wz = wind

    def acceleration(vx: float, vy: float, vz: float) -> tuple[float, float, float]:
        rx, ry, rz = vx - wx, vy - wy, vz - wz
        c = k * math.sqrt(rx * rx + ry * ry + rz * rz)
        return -c * rx, -G - c * ry, -c * rz

    # Plain floats: a 5 s fall is 5000 RK4 steps, and numpy's per-call cost would dominate them.
    px, py, pz = (float(v) for v in start_m)
    vx, vy, vz = (float(v) for v in velocity)
    positions = [(px, py, pz)]
    velocities = [(vx, vy, vz)]
    h = step_s
    for _ in range(int(max_s / step_s)):
        # RK4 on (p, v): the drag makes v' depend on v only.
        a1 = acceleration(vx, vy, vz)
        v2 = (vx + 0.5 * h * a1[0], vy + 0.5 * h * a1[1], vz + 0.5 * h * a1[2])
        a2 = acceleration(*v2)
        v3 = (vx + 0.5 * h * a2[0], vy + 0.5 * h * a2[1], vz + 0.5 * h * a2[2])
        a3 = acceleration(*v3)
        v4 = (vx + h * a3[0], vy + h * a3[1], vz + h * a3[2])
        a4 = acceleration(*v4)
        px += h / 6 * (vx + 2 * v2[0] + 2 * v3[0] + v4[0])
        py += h / 6 * (vy + 2 * v2[1] + 2 * v3[1] + v4[1])
        pz += h / 6 * (vz + 2 * v2[2] + 2 * v3[2] + v4[2])
        vx += h / 6 * (a1[0] + 2 * a2[0] + 2 * a3[0] + a4[0])
        vy += h / 6 * (a1[1] + 2 * a2[1] + 2 * a3[1] + a4[1])
        vz += h / 6 * (a1[2] + 2 * a2[2] + 2 * a3[2] + a4[2])
        positions.append((px, py, pz))
        velocities.append((vx, vy, vz))
        if py <= 0:
            break
    else:
        raise ValueError(f"the object did not reach the ground within {max_s} s")
    track = np.asarray(positions)
    speeds = np.asarray(velocities)
    before, after = track[-2], track[-1]
    frac = before[1] / (before[1] - after[1])
    impact = before + (after - before) * frac
    impact_velocity = speeds[-2] + (speeds[-1] - speeds[-2]) * frac
    impact_s = start_s + (len(track) - 2 + frac) * step_s
    impact[1] = 0.0
    return Fall(
        start_s=start_s,
        step_s=step_s,
        positions=track,
        velocities=speeds,
        impact_s=float(impact_s),
        impact_m=(float(impact[0]), 0.0, float(impact[2])),
        impact_speed=float(np.linalg.norm(impact_velocity)),
    )
