"""Seeded facade scenarios: a tower, a camera at its foot, throws from its windows and distractors.

``make_scenario(seed, ...)`` plans everything up front (falls integrated, distractor paths sampled), so
a scenario is the same whatever the frame rate or picture size it is rendered at; the ground truth in
pixels (``truth_document``) is computed for one size and frame rate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulators.facade.building import Building, random_building, random_camera_pose
from simulators.facade.camera import CameraPose, FacadeCamera
from simulators.facade.distractors import (
    Insect,
    LightSwitch,
    Mover,
    Shake,
    simulate_bird,
    simulate_flutter,
    simulate_insect,
)
from simulators.facade.physics import OBJECT_KINDS, Fall, FloatArray, ObjectSpec, make_object, simulate_fall

TIMES_OF_DAY = ("day", "dusk", "night")
WEATHERS = ("clear", "rain", "snow", "wind")
REFERENCE_SIZE = (1920, 1080)
# Throws start where the reference view sees the release point with this margin (fraction of width).
VIEW_MARGIN = 0.04
GAP_AFTER_IMPACT_S = 2.0
LEAD_S = 1.0
TAIL_S = 0.5

# Distractors per minute of video at distractor_rate 1 ("busy facade"), by time of day.
BIRDS_PER_MIN = {"day": 2.0, "dusk": 1.5, "night": 0.3}
INSECTS_PER_MIN = {"day": 0.5, "dusk": 1.0, "night": 1.5}
LIGHT_SWITCHES_PER_MIN = {"day": 0.0, "dusk": 10.0, "night": 6.0}
LIT_AT_START = {"day": 0.0, "dusk": 0.3, "night": 0.45}


@dataclass(frozen=True)
class Throw:
    """An object released from a window at ``fall.start_s`` that hits the ground at ``fall.impact_s``."""

    id: int
    spec: ObjectSpec
    floor: int
    column: int
    tossed: bool  # thrown outwards (else dropped)
    velocity: tuple[float, float, float]  # at release, m/s
    spin_hz: float  # tumbling rate
    spin_phase: float
    fall: Fall

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def start_s(self) -> float:
        return self.fall.start_s

    @property
    def end_s(self) -> float:
        return self.fall.impact_s

    @property
    def length_m(self) -> float:
        return self.spec.length_m

    @property
    def width_m(self) -> float:
        return self.spec.width_m

    @property
    def colour(self) -> tuple[float, float, float]:
        return self.spec.colour

    def position(self, t: float | FloatArray) -> FloatArray:
        return self.fall.position(t)

    def shape(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Length factor (turning end over end), in-picture angle and brightness (glints) at ``t``."""
        phase = 2 * math.pi * self.spin_hz * (np.asarray(t) - self.start_s) + self.spin_phase
        ratio = self.spec.width_m / self.spec.length_m
        span = np.sqrt(np.cos(phase) ** 2 + (ratio * np.sin(phase)) ** 2)
        brightness = 1.0 + self.spec.glint * np.maximum(0.0, np.cos(2 * phase)) ** 4
        return span, 0.7 * phase, brightness


@dataclass(frozen=True)
class Weather:
    kind: str  # clear, rain, snow, wind
    wind_mps: float  # along the facade (+x), at the height of the falls
    rain_streaks: int  # per frame at the reference size
    snow_flakes: int
    clouds: bool
    cloud_speed: float  # fraction of the picture's width per second

    @property
    def laundry_sways(self) -> bool:
        return abs(self.wind_mps) > 3.0


@dataclass(eq=False)
class Scenario:
    seed: int
    duration_s: float
    time_of_day: str
    weather: Weather
    building: Building
    pose: CameraPose
    throws: list[Throw]
    movers: list[Mover]
    insects: list[Insect]
    shakes: list[Shake]
    light_switches: list[LightSwitch]
    lit_at_start: frozenset[tuple[int, int]]  # (floor, column) lit at t = 0

    def camera(self, size: tuple[int, int]) -> FacadeCamera:
        return FacadeCamera(self.pose, size[0], size[1])


def visible_windows(building: Building, camera: FacadeCamera) -> list[tuple[int, int]]:
    """(floor, column) of every window whose centre the camera sees, away from the picture's edges."""
    out = []
    margin = VIEW_MARGIN * camera.width
    for floor in range(1, building.floors + 1):
        for column in range(1, building.columns + 1):
            x0, y0, x1, y1 = building.window_rect(floor, column)
            uv, depth = camera.project(np.array([[(x0 + x1) / 2, (y0 + y1) / 2, 0.0]]))
            if depth[0] > 0 and bool(camera.in_view(uv, margin)[0]):
                out.append((floor, column))
    return out


def make_scenario(
    seed: int,
    *,
    duration_s: float = 60.0,
    throws: int | None = None,
    time_of_day: str | None = None,
    weather: str | None = None,
    floors: int | None = None,
    object_kinds: tuple[str, ...] = OBJECT_KINDS,
    distractor_rate: float = 1.0,
    windows: Sequence[tuple[int, int]] | None = None,
) -> Scenario:
    """Plan a seeded scenario. ``None`` draws the value from the seed; ``distractor_rate`` scales every
    distractor's frequency (0: none, 1: a busy facade); ``windows``: (floor, column) pairs to throw from
    (default: any window above the ground floor that the camera sees)."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    rng = np.random.default_rng(seed)
    if time_of_day is None:
        time_of_day = str(rng.choice(TIMES_OF_DAY, p=[0.5, 0.2, 0.3]))
    if time_of_day not in TIMES_OF_DAY:
        raise ValueError(f"unknown time of day {time_of_day!r}: expected one of {', '.join(TIMES_OF_DAY)}")
    if weather is None:
        weather = str(rng.choice(WEATHERS, p=[0.55, 0.2, 0.1, 0.15]))
    if weather not in WEATHERS:
        raise ValueError(f"unknown weather {weather!r}: expected one of {', '.join(WEATHERS)}")
    for kind in object_kinds:
        if kind not in OBJECT_KINDS:
            raise ValueError(f"unknown object kind {kind!r}: expected some of {', '.join(OBJECT_KINDS)}")
    building = random_building(rng, floors)
    pose = random_camera_pose(rng, building)
    camera = FacadeCamera(pose, *REFERENCE_SIZE)
    windy = weather == "wind"
    conditions = Weather(
        kind=weather,
        wind_mps=float(rng.uniform(4, 9) if windy else rng.uniform(0, 2)) * float(rng.choice([-1, 1])),
        rain_streaks=int(rng.integers(150, 500)) if weather == "rain" else 0,
        snow_flakes=int(rng.integers(150, 600)) if weather == "snow" else 0,
        clouds=time_of_day != "night" and weather != "rain" and bool(rng.random() < 0.7),
        cloud_speed=float(rng.uniform(0.002, 0.01)) * (3 if windy else 1),
    )
    seen = visible_windows(building, camera)
    if windows is not None:
        for floor, column in windows:
            if not (2 <= floor <= building.floors and 1 <= column <= building.columns):
                raise ValueError(
                    f"cannot throw from floor {floor}, column {column}: this building has floors "
                    f"2..{building.floors} above the ground floor and columns 1..{building.columns}"
                )
    candidates = list(windows) if windows is not None else [w for w in seen if w[0] >= 2]
    throw_list = _plan_throws(rng, building, candidates, conditions, duration_s, throws, object_kinds)
    movers, insects, shakes, switches, lit = _plan_distractors(
        rng, building, seen, camera, conditions, time_of_day, duration_s, distractor_rate
    )
    return Scenario(
        seed=seed,
        duration_s=duration_s,
        time_of_day=time_of_day,
        weather=conditions,
        building=building,
        pose=pose,
        throws=throw_list,
        movers=movers,
        insects=insects,
        shakes=shakes,
        light_switches=switches,
        lit_at_start=lit,
    )


def _plan_throws(
    rng: np.random.Generator,
    building: Building,
    candidates: list[tuple[int, int]],
    weather: Weather,
    duration_s: float,
    count: int | None,
    object_kinds: tuple[str, ...],
) -> list[Throw]:
    if count is None:
        count = int(rng.integers(1, 2 + int(duration_s // 45)))
    if count == 0:
        return []
    if not candidates:
        raise ValueError("the camera sees no window above the ground floor to throw from")
    planned: list[Throw] = []
    for ident in range(1, count + 1):
        floor, column = candidates[int(rng.integers(len(candidates)))]
        spec = make_object(rng, str(rng.choice(object_kinds)))
        tossed = bool(rng.random() < 0.5)
        if tossed:
            velocity = (float(rng.uniform(-1, 1)), float(rng.uniform(0, 2.5)), float(rng.uniform(1, 4)))
        else:
            velocity = (
                float(rng.uniform(-0.2, 0.2)),
                float(rng.uniform(-0.2, 0.3)),
                float(rng.uniform(0, 0.4)),
            )
        start = building.release_point(floor, column, rng)
        fall = simulate_fall(spec, start, velocity, wind=(weather.wind_mps, 0.0, 0.0))
        planned.append(
            Throw(
                id=ident,
                spec=spec,
                floor=floor,
                column=column,
                tossed=tossed,
                velocity=velocity,
                spin_hz=float(rng.uniform(0, 4)),
                spin_phase=float(rng.uniform(0, 2 * math.pi)),
                fall=fall,
            )
        )
    # One throw at a time, each after the previous one's impact plus a gap; the slack spread at random.
    # The first starts after LEAD_S (a background to learn), the last lands TAIL_S before the end.
    busy = LEAD_S + sum(t.fall.duration_s for t in planned) + GAP_AFTER_IMPACT_S * (count - 1) + TAIL_S
    slack = duration_s - busy
    if slack < 0:
        raise ValueError(
            f"{count} throws need {busy:.1f} s but the scenario lasts {duration_s} s: "
            "ask for fewer throws or a longer duration"
        )
    shares = rng.dirichlet(np.ones(count + 1)) * slack
    cursor = LEAD_S
    out = []
    for throw, share in zip(planned, shares[:-1], strict=True):
        cursor += float(share)
        fall = throw.fall
        shifted = dataclasses.replace(fall, start_s=cursor, impact_s=fall.impact_s + cursor)
        out.append(dataclasses.replace(throw, fall=shifted))
        cursor += fall.duration_s + GAP_AFTER_IMPACT_S
    return out


def _in_view_part(mover: Mover, camera: FacadeCamera) -> Mover | None:
    """The mover from shortly before it enters the reference view to shortly after it leaves (None if
    it never shows), so its truth span is the time it can be seen."""
    uv, depth = camera.project(mover.positions)
    seen = np.nonzero(camera.in_view(uv, -0.02 * camera.width) & (depth > 0))[0]
    if len(seen) == 0:
        return None
    first, last = max(0, int(seen[0]) - 5), min(len(mover.positions) - 1, int(seen[-1]) + 5)
    last = max(last, first + 1)
    return dataclasses.replace(
        mover,
        start_s=mover.start_s + first * mover.step_s,
        positions=mover.positions[first : last + 1],
        span=mover.span[first : last + 1],
        angle=mover.angle[first : last + 1],
    )


def _poisson_starts(rng: np.random.Generator, per_minute: float, duration_s: float) -> list[float]:
    count = int(rng.poisson(max(0.0, per_minute) * duration_s / 60))
    return sorted(float(s) for s in rng.uniform(0, duration_s, size=count))


def _plan_distractors(
    rng: np.random.Generator,
    building: Building,
    windows: list[tuple[int, int]],
    camera: FacadeCamera,
    weather: Weather,
    time_of_day: str,
    duration_s: float,
    rate: float,
) -> tuple[list[Mover], list[Insect], list[Shake], list[LightSwitch], frozenset[tuple[int, int]]]:
    windy = weather.kind == "wind"
    ident = 1000  # distractor ids never collide with throw ids
    movers: list[Mover] = []
    for start in _poisson_starts(rng, rate * BIRDS_PER_MIN[time_of_day], duration_s):
        ident += 1
        movers.append(simulate_bird(rng, ident, start, camera))
    flutter_rates = {
        "leaf": 4.0 if windy else 1.0,
        "paper": 1.0 if windy else 0.3,
        "plastic_bag": 1.2 if windy else 0.3,
    }
    for kind, per_minute in flutter_rates.items():
        for start in _poisson_starts(rng, rate * per_minute, duration_s):
            ident += 1
            movers.append(simulate_flutter(rng, ident, kind, start, camera, weather.wind_mps))
    movers = [
        m for m in (_in_view_part(m, camera) for m in movers) if m is not None and m.start_s < duration_s
    ]
    insects = []
    for start in _poisson_starts(rng, rate * INSECTS_PER_MIN[time_of_day], duration_s):
        ident += 1
        insects.append(simulate_insect(rng, ident, start, time_of_day != "day"))
    shakes = []
    for start in _poisson_starts(rng, rate * (1.5 if windy else 0.4), duration_s):
        ident += 1
        length = float(rng.uniform(1, 5))
        shakes.append(
            Shake(
                ident,
                start,
                start + length,
                float(rng.uniform(0.0005, 0.002)),
                float(rng.uniform(2, 9)),
                float(rng.uniform(0, 2 * math.pi)),
            )
        )
    lit = frozenset(w for w in windows if rng.random() < LIT_AT_START[time_of_day])
    switches = []
    state = set(lit)
    if windows:
        for t in _poisson_starts(rng, rate * LIGHT_SWITCHES_PER_MIN[time_of_day], duration_s):
            ident += 1
            floor, column = windows[int(rng.integers(len(windows)))]
            on = (floor, column) not in state
            state.symmetric_difference_update({(floor, column)})
            switches.append(LightSwitch(ident, t, floor, column, on))
    return movers, insects, shakes, switches, lit


# ------------------------------------------------------------------------------------------ truth


def _point(values: FloatArray | tuple[float, ...], digits: int = 2) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(values).ravel()]


def _pixels(camera: FacadeCamera, points: Sequence[Sequence[float]]) -> list[list[float] | None]:
    """Where the picture shows world points; None for a point behind the camera or so far outside the
    picture (over one picture size beyond its edges) that the lens polynomial means nothing there."""
    uv, depth = camera.project(np.asarray(points, dtype=np.float64))
    out: list[list[float] | None] = []
    for (u, v), d in zip(uv, depth, strict=True):
        near = -camera.width <= u <= 2 * camera.width and -camera.height <= v <= 2 * camera.height
        out.append(_point((u, v)) if d > 0 and near else None)
    return out


def calibration(scenario: Scenario, size: tuple[int, int]) -> dict[str, Any]:
    """The building and camera calibration at ``size``, as JSON-ready data (docs/evaluation.md).

    ``px`` values are where the lens puts a point (what the picture shows); ``px_undistorted`` and the
    homography are the pinhole image before the lens (``cv2.undistortPoints`` with ``camera_matrix``
    and ``dist_coeffs`` maps one to the other).
    """
    building = scenario.building
    camera = scenario.camera(size)
    floor_lines = []
    for floor in range(1, building.floors + 2):
        y = building.floor_y(floor)
        left, right, centre = _pixels(
            camera, [(0.0, y, 0.0), (building.width_m, y, 0.0), (camera.pose.x_m, y, 0.0)]
        )
        floor_lines.append(
            {
                "floor": floor,
                "y_m": round(y, 3),
                "left_px": left,
                "right_px": right,
                "centre_px": centre,
                "in_view": centre is not None and bool(camera.in_view(np.array([centre]))[0]),
            }
        )
    columns = []
    for column in range(1, building.columns + 1):
        x = building.column_x(column)
        ground, roof = _pixels(camera, [(x, 0.0, 0.0), (x, building.height_m, 0.0)])
        columns.append(
            {
                "column": column,
                "x_m": round(x, 3),
                "left_m": round(x - building.column_width_m / 2, 3),
                "right_m": round(x + building.column_width_m / 2, 3),
                "ground_px": ground,
                "roof_px": roof,
            }
        )
    return {
        "image_size": [size[0], size[1]],
        "camera_matrix": [_point(row, 4) for row in camera.camera_matrix],
        "dist_coeffs": _point(camera.dist_coeffs, 6),
        "rvec": _point(camera.rvec, 6),
        "tvec": _point(camera.tvec, 4),
        "pose": {k: round(v, 4) for k, v in dataclasses.asdict(camera.pose).items()},
        "homography_facade_to_px": [[float(f"{v:.8g}") for v in row] for row in camera.homography],
        "floors": building.floors,
        "floor_height_m": round(building.floor_height_m, 4),
        "columns": building.columns,
        "column_width_m": round(building.column_width_m, 4),
        "building_width_m": round(building.width_m, 3),
        "building_height_m": round(building.height_m, 3),
        "floor_lines": floor_lines,
        "window_columns": columns,
        "facade_points": _facade_points(scenario, camera),
    }


def _facade_points(scenario: Scenario, camera: FacadeCamera) -> list[dict[str, Any]]:
    """Four facade points in view (a rectangle of floor lines and column centres), as a surveyor would
    pick them: bottom-left, bottom-right, top-right, top-left."""
    building = scenario.building
    margin = VIEW_MARGIN * camera.width
    xs = [building.column_x(c) for c in range(1, building.columns + 1)]
    ys = [building.floor_y(f) for f in range(1, building.floors + 2)]

    def seen(x: float, y: float) -> bool:
        uv = camera.facade_to_pixels(np.array([[x, y]]))
        return bool(camera.in_view(uv, margin)[0]) and camera.project(np.array([[x, y, 0.0]]))[1][0] > 0

    best: tuple[float, float, float, float] | None = None
    best_area = 0.0
    for i, left in enumerate(xs):
        for right in xs[i + 1 :]:
            rows = [y for y in ys if seen(left, y) and seen(right, y)]
            if len(rows) >= 2 and (right - left) * (rows[-1] - rows[0]) > best_area:
                best, best_area = (left, rows[0], right, rows[-1]), (right - left) * (rows[-1] - rows[0])
    if best is None:
        return []
    x0, y0, x1, y1 = best
    metres = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    px = camera.facade_to_pixels(metres)
    pinhole = camera.facade_to_pixels(metres, distort=False)
    return [
        {"m": _point(m, 3), "px": _point(p), "px_undistorted": _point(q)}
        for m, p, q in zip(metres, px, pinhole, strict=True)
    ]


def throw_track(throw: Throw, camera: FacadeCamera, fps: float) -> list[tuple[float, float, float]]:
    """(frame time, u, v) of the object's centre in every frame between release and impact it is in view."""
    first = math.ceil(throw.start_s * fps - 1e-9)
    last = math.floor(throw.end_s * fps + 1e-9)
    if last < first:
        return []
    times = np.arange(first, last + 1) / fps
    uv, depth = camera.project(throw.position(times))
    keep = camera.in_view(uv) & (depth > 0)
    return [(float(t), float(p[0]), float(p[1])) for t, p, k in zip(times, uv, keep, strict=True) if k]


def truth_document(scenario: Scenario, size: tuple[int, int], fps: float) -> dict[str, Any]:
    """Everything that happened, in the ``citywatch-facade-truth/1`` format (docs/evaluation.md)."""
    camera = scenario.camera(size)
    building = scenario.building
    throws = []
    for throw in scenario.throws:
        fall = throw.fall
        release = fall.positions[0]
        release_px, impact_px = _pixels(camera, [tuple(release), fall.impact_m])
        track = throw_track(throw, camera, fps)
        throws.append(
            {
                "id": throw.id,
                "kind": throw.kind,
                "floor": throw.floor,
                "column": throw.column,
                "start_s": round(throw.start_s, 4),
                "impact_s": round(throw.end_s, 4),
                "fall_duration_s": round(fall.duration_s, 4),
                "fall_height_m": round(float(release[1]), 3),
                "release_m": _point(release, 3),
                "release_px": release_px,
                "impact_m": _point(fall.impact_m, 3),
                "impact_px": impact_px,
                "impact_in_view": impact_px is not None and bool(camera.in_view(np.array([impact_px]))[0]),
                "impact_speed_mps": round(fall.impact_speed, 2),
                "size_m": [round(throw.spec.length_m, 3), round(throw.spec.width_m, 3)],
                "mass_kg": round(throw.spec.mass_kg, 3),
                "tossed": throw.tossed,
                "release_velocity_mps": _point(throw.velocity, 3),
                "spin_hz": round(throw.spin_hz, 3),
                "visible_from_s": round(track[0][0], 4) if track else None,
                "visible_to_s": round(track[-1][0], 4) if track else None,
                "track": [[round(t, 4), round(u, 2), round(v, 2)] for t, u, v in track],
            }
        )
    distractors: list[dict[str, Any]] = []
    for mover in scenario.movers:
        distractors.append(
            {
                "id": mover.id,
                "kind": mover.kind,
                "start_s": round(mover.start_s, 3),
                "end_s": round(min(mover.end_s, scenario.duration_s), 3),
                "size_m": round(mover.length_m, 3),
            }
        )
    for insect in scenario.insects:
        distractors.append(
            {
                "id": insect.id,
                "kind": "insect",
                "start_s": round(insect.start_s, 3),
                "end_s": round(min(insect.end_s, scenario.duration_s), 3),
            }
        )
    for shake in scenario.shakes:
        distractors.append(
            {
                "id": shake.id,
                "kind": "camera_shake",
                "start_s": round(shake.start_s, 3),
                "end_s": round(min(shake.end_s, scenario.duration_s), 3),
                "amplitude_px": round(shake.amplitude_frac * size[0], 2),
            }
        )
    for switch in scenario.light_switches:
        distractors.append(
            {
                "id": switch.id,
                "kind": "window_light",
                "start_s": round(switch.t, 3),
                "end_s": round(switch.t, 3),
                "floor": switch.floor,
                "column": switch.column,
                "on": switch.on,
            }
        )
    weather = scenario.weather
    # Whole-scene distractors have fixed ids below the others' (which start at 1001).
    scene_wide = (
        (901, "rain", weather.rain_streaks),
        (902, "snow", weather.snow_flakes),
        (903, "clouds", weather.clouds),
    )
    for ident, kind, present in scene_wide:
        if present:
            distractors.append({"id": ident, "kind": kind, "start_s": 0.0, "end_s": scenario.duration_s})
    if weather.laundry_sways:
        seen = set(visible_windows(building, camera))
        for index, (floor, column) in enumerate(sorted(building.laundry & seen)):
            distractors.append(
                {
                    "id": 5001 + index,
                    "kind": "laundry",
                    "start_s": 0.0,
                    "end_s": scenario.duration_s,
                    "floor": floor,
                    "column": column,
                }
            )
    distractors.sort(key=lambda d: (d["start_s"], d["id"]))
    return {
        "format": TRUTH_FORMAT,
        "fps": fps,
        "width": size[0],
        "height": size[1],
        "seed": scenario.seed,
        "duration_s": scenario.duration_s,
        "frames": math.floor(scenario.duration_s * fps + 1e-9),
        "time_of_day": scenario.time_of_day,
        "weather": weather.kind,
        "wind_mps": round(weather.wind_mps, 3),
        "building": {
            "floors": building.floors,
            "floor_height_m": round(building.floor_height_m, 4),
            "columns": building.columns,
            "column_width_m": round(building.column_width_m, 4),
            "width_m": round(building.width_m, 3),
            "height_m": round(building.height_m, 3),
            "balcony_columns": sorted(building.balcony_columns),
            "balcony_depth_m": round(building.balcony_depth_m, 3),
        },
        "calibration": calibration(scenario, size),
        "throws": throws,
        "distractors": distractors,
    }


TRUTH_FORMAT = "citywatch-facade-truth/1"
