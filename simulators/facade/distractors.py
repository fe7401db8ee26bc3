"""What moves in front of a facade without being thrown, each with its own motion model.

- Birds fly across at 6-14 m/s: flapping (the silhouette's span pulses at 3-8 Hz), gliding (wings
  spread, sinking slowly), climbing and turning; their vertical speed changes with a 0.8 s lag, so they
  never accelerate downwards anywhere near g.
- Leaves, paper and plastic bags drift down slowly (or rise in an updraft), swinging sideways and
  turning over (fluttering).
- Insects near the lens are image-space blobs: large, out of focus, erratic.
- Camera shake moves the whole picture; window lights switch; clouds drift over the sky.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.facade.camera import FacadeCamera
from simulators.facade.physics import FloatArray

MOVER_KINDS = ("bird", "leaf", "paper", "plastic_bag")
STEP_S = 0.02


@dataclass(frozen=True)
class Mover:
    """A sampled 3-D path with the silhouette's state along it (something that is not thrown)."""

    id: int
    kind: str
    start_s: float
    step_s: float
    positions: FloatArray  # (N, 3) world metres
    span: FloatArray  # (N,) factor on the silhouette's length (wing beat, turning over)
    angle: FloatArray  # (N,) in-picture angle of the long axis, radians
    length_m: float
    width_m: float
    colour: tuple[float, float, float]

    @property
    def end_s(self) -> float:
        return self.start_s + (len(self.positions) - 1) * self.step_s

    def _index(self, t: FloatArray) -> tuple[npt.NDArray[np.int64], FloatArray]:
        f = (np.clip(t, self.start_s, self.end_s) - self.start_s) / self.step_s
        i = np.clip(np.floor(f), 0, len(self.positions) - 2).astype(np.int64)
        return i, f - i

    def position(self, t: float | FloatArray) -> FloatArray:
        i, frac = self._index(np.asarray(t, dtype=np.float64))
        return self.positions[i] * (1 - frac[..., None]) + self.positions[i + 1] * frac[..., None]

    def shape(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Length factor, angle and brightness factor at times ``t``."""
        i, frac = self._index(np.asarray(t, dtype=np.float64))
        span = self.span[i] * (1 - frac) + self.span[i + 1] * frac
        angle = self.angle[i] * (1 - frac) + self.angle[i + 1] * frac
        return span, angle, np.ones_like(span)


def simulate_bird(rng: np.random.Generator, ident: int, start_s: float, camera: FacadeCamera) -> Mover:
    """A bird crossing the view: modes of 0.4-1.5 s (flap, glide, climb, turn)."""
    speed = float(rng.uniform(6, 14))
    from_left = bool(rng.random() < 0.5)
    margin = 4.0
    distance = camera.pose.distance_m
    # Across the picture at a height the camera sees at that depth (a steep camera's top rows look
    # back over itself and never meet a plane in front: draw again).
    for _ in range(50):
        z = float(rng.uniform(2.0, max(3.0, distance - 3.0)))
        row = float(rng.uniform(0.05, 0.8)) * camera.height
        try:
            left = camera.point_on_plane((0.0, row), z)
            right = camera.point_on_plane((camera.width - 1.0, row), z)
            middle = camera.point_on_plane((camera.width / 2, row), z)
        except ValueError:
            continue
        if abs(right[0] - left[0]) < 200:  # rows near the horizon of the plane reach absurdly far
            break
    else:
        raise ValueError("no row of this camera's picture sees the space in front of the facade")
    x_min, x_max = float(min(left[0], right[0])), float(max(left[0], right[0]))
    x = x_min - margin if from_left else x_max + margin
    y = max(1.0, float(middle[1]))
    heading = (0.0 if from_left else math.pi) + float(rng.uniform(-0.4, 0.4))
    vy = 0.0
    flap_hz = float(rng.uniform(3, 8))
    flap_phase = float(rng.uniform(0, 2 * math.pi))
    positions, spans = [], []
    mode, mode_left, vy_target, turn_rate = "flap", 0.0, 0.0, 0.0
    t = 0.0
    max_s = float(rng.uniform(4, 12))
    while t <= max_s:
        if mode_left <= 0:
            mode = str(rng.choice(["flap", "glide", "climb", "turn"], p=[0.4, 0.25, 0.15, 0.2]))
            mode_left = float(rng.uniform(0.4, 1.5))
            vy_target = {
                "flap": float(rng.uniform(-0.3, 0.8)),
                "glide": float(rng.uniform(-2.0, -0.5)),
                "climb": float(rng.uniform(1.0, 2.5)),
                "turn": float(rng.uniform(-0.5, 0.5)),
            }[mode]
            turn_rate = float(rng.choice([-1, 1]) * rng.uniform(1.0, 2.0)) if mode == "turn" else 0.0
        flapping = mode != "glide"
        flap_phase += 2 * math.pi * flap_hz * STEP_S if flapping else 0.0
        positions.append((x, y, z))
        # Wings spread when gliding; during a beat the span seen from below pulses.
        spans.append(0.35 + 0.65 * abs(math.cos(flap_phase)) if flapping else 1.0)
        vy += (vy_target - vy) * STEP_S / 0.8
        heading += turn_rate * STEP_S
        x += speed * math.cos(heading) * STEP_S
        z += speed * math.sin(heading) * 0.3 * STEP_S  # mostly across the facade, a little in depth
        z = min(max(z, 1.0), distance - 1.0)
        y = max(y + vy * STEP_S, 1.0)
        t += STEP_S
        mode_left -= STEP_S
        if x < x_min - 2 * margin or x > x_max + 2 * margin:
            break
    length = float(rng.uniform(0.25, 0.7))  # wingspan
    grey = float(rng.uniform(30, 90))
    count = len(positions)
    return Mover(
        id=ident,
        kind="bird",
        start_s=start_s,
        step_s=STEP_S,
        positions=np.asarray(positions),
        span=np.asarray(spans),
        angle=np.full(count, float(rng.uniform(-0.2, 0.2))),
        length_m=length,
        width_m=length * 0.18,
        colour=(grey, grey, grey * 1.05),
    )


def simulate_flutter(
    rng: np.random.Generator, ident: int, kind: str, start_s: float, camera: FacadeCamera, wind_mps: float
) -> Mover:
    """A leaf, a sheet of paper or a plastic bag: slow sinking (bags may rise), swinging, turning over."""
    if kind == "leaf":
        length, sink, swing, rise = float(rng.uniform(0.05, 0.12)), float(rng.uniform(0.6, 1.5)), 0.8, 0.0
        colour = [(40, 120, 150), (30, 90, 60), (40, 80, 120)][int(rng.integers(3))]
    elif kind == "paper":
        length, sink, swing, rise = float(rng.uniform(0.2, 0.3)), float(rng.uniform(0.4, 1.0)), 1.2, 0.3
        colour = (235, 235, 235)
    elif kind == "plastic_bag":
        length, sink, swing, rise = float(rng.uniform(0.25, 0.5)), float(rng.uniform(0.1, 0.6)), 1.6, 0.8
        colour = [(240, 240, 240), (60, 60, 200), (40, 40, 40), (200, 120, 40)][int(rng.integers(4))]
    else:
        raise ValueError(f"not a fluttering kind: {kind!r}")
    # Starting somewhere in the picture, between the facade and 8 m in front of it.
    for _ in range(50):
        z = float(rng.uniform(0.5, max(1.0, min(8.0, camera.pose.distance_m - 2.0))))
        pixel = (float(rng.uniform(0.05, 0.95)) * camera.width, float(rng.uniform(0.05, 0.6)) * camera.height)
        try:
            x, y, _ = (float(v) for v in camera.point_on_plane(pixel, z))
        except ValueError:
            continue
        break
    else:
        raise ValueError("no part of this camera's picture sees the space in front of the facade")
    y = max(y, 2.0)
    swing_hz = float(rng.uniform(0.3, 1.0))
    bob_hz = float(rng.uniform(0.2, 0.6))
    flip_hz = float(rng.uniform(0.5, 2.5))
    phases = rng.uniform(0, 2 * math.pi, size=4)
    duration = float(rng.uniform(5, 15))
    count = int(duration / STEP_S) + 1
    t = np.arange(count) * STEP_S
    vx = wind_mps + swing * np.sin(2 * math.pi * swing_hz * t + phases[0])
    vy = -sink + rise * np.sin(2 * math.pi * bob_hz * t + phases[1])
    vz = 0.3 * np.sin(2 * math.pi * swing_hz * 0.7 * t + phases[2])
    positions = np.stack(
        [x + np.cumsum(vx) * STEP_S, y + np.cumsum(vy) * STEP_S, np.maximum(0.3, z + np.cumsum(vz) * STEP_S)],
        axis=1,
    )
    landed = np.nonzero(positions[:, 1] <= 0)[0]
    if len(landed):
        positions, t = positions[: max(2, landed[0])], t[: max(2, landed[0])]
    flip = 2 * math.pi * flip_hz * t + phases[3]
    return Mover(
        id=ident,
        kind=kind,
        start_s=start_s,
        step_s=STEP_S,
        positions=positions,
        span=0.25 + 0.75 * np.abs(np.cos(flip)),
        angle=0.6 * np.sin(2 * math.pi * swing_hz * t + phases[0]) + 0.3 * flip,
        length_m=length,
        width_m=length * (0.6 if kind != "leaf" else 0.5),
        colour=colour,
    )


@dataclass(frozen=True)
class Insect:
    """A fly or moth a few centimetres from the lens: an image-space blur wandering erratically."""

    id: int
    start_s: float
    step_s: float
    path: FloatArray  # (N, 2) position as fractions of the picture's width and height
    radius_frac: float  # of the picture's width
    tone: float  # BGR grey of the blur (dark by day, lit by a lamp at night)

    @property
    def end_s(self) -> float:
        return self.start_s + (len(self.path) - 1) * self.step_s

    def at(self, t: float) -> FloatArray:
        f = (min(max(t, self.start_s), self.end_s) - self.start_s) / self.step_s
        i = min(int(f), len(self.path) - 2)
        frac = f - i
        return np.asarray(self.path[i] * (1 - frac) + self.path[i + 1] * frac)


def simulate_insect(rng: np.random.Generator, ident: int, start_s: float, night: bool) -> Insect:
    duration = float(rng.uniform(0.6, 4.0))
    count = int(duration / STEP_S) + 2
    position = rng.uniform(0.1, 0.9, size=2)
    velocity = rng.normal(0, 0.4, size=2)
    path = []
    for _ in range(count):
        path.append(position.copy())
        # Erratic: the velocity takes random kicks and darts every few tenths of a second.
        velocity = 0.9 * velocity + rng.normal(0, 0.35, size=2)
        if rng.random() < 0.05:
            velocity = rng.normal(0, 1.5, size=2)
        position = position + velocity * STEP_S
    return Insect(
        id=ident,
        start_s=start_s,
        step_s=STEP_S,
        path=np.asarray(path),
        radius_frac=float(rng.uniform(0.015, 0.05)),
        tone=float(rng.uniform(150, 230)) if night else float(rng.uniform(20, 70)),
    )


@dataclass(frozen=True)
class Shake:
    """A spell of camera shake (wind on the pole, a passing truck): the whole picture jitters."""

    id: int
    start_s: float
    end_s: float
    amplitude_frac: float  # of the picture's width
    frequency_hz: float
    phase: float

    def offset(self, t: float) -> tuple[float, float]:
        """Shift as fractions of the picture's width (x, y); zero outside the spell."""
        if not self.start_s <= t <= self.end_s:
            return 0.0, 0.0
        # Eased in and out so a spell starts and stops smoothly.
        envelope = math.sin(math.pi * (t - self.start_s) / (self.end_s - self.start_s))
        w = 2 * math.pi * self.frequency_hz
        a = self.amplitude_frac * envelope
        return (
            a * (math.sin(w * t + self.phase) + 0.4 * math.sin(2.3 * w * t)),
            a * (math.sin(1.3 * w * t + 2 * self.phase) + 0.3 * math.sin(3.1 * w * t + 1)),
        )


@dataclass(frozen=True)
class LightSwitch:
    """A window's light going on or off at an instant (dusk and night)."""

    id: int
    t: float
    floor: int
    column: int
    on: bool
