"""Painting a facade scenario frame by frame with numpy and OpenCV.

The still scene (sky, ground, facade, windows, balconies, AC units, laundry) is drawn once in the
pinhole image and bent through the lens; what moves is drawn straight at its lens-projected position
every frame: throws and distractors as small blobs smeared over the exposure (motion blur, sub-pixel
coverage conserved), rain streaks, snowflakes, insects near the lens, clouds in the sky, then camera
shake and sensor noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from simulators.facade.building import PARAPET_M, Building
from simulators.facade.camera import FacadeCamera
from simulators.facade.physics import FloatArray
from simulators.facade.scenario import Scenario

Image = npt.NDArray[np.uint8]
SHIFT = 4
SCALE = 1 << SHIFT
SUPERSAMPLE = 4
NEAR_M = 0.1

SKY = {  # (top, towards the horizon), BGR
    "day": ((215, 170, 120), (235, 215, 190)),
    "dusk": ((120, 70, 60), (120, 150, 220)),
    "night": ((25, 12, 8), (55, 40, 35)),
}
WALL_LIGHT = {"day": 1.0, "dusk": 0.45, "night": 0.12}
# Falling things are lit by daylight, or from below by street lamps and the camera's IR lamp:
# colour * gain + lift.
OBJECT_LIGHT = {"day": (1.0, 0.0), "dusk": (0.7, 20.0), "night": (0.45, 55.0)}
NOISE_SIGMA = {"day": 2.0, "dusk": 4.0, "night": 7.0}
EXPOSURE_FRAMES = {"day": 0.5, "dusk": 0.8, "night": 1.0}  # shutter open per frame interval


class Drawable(Protocol):
    """Something painted as a blob: a throw or a mover."""

    @property
    def length_m(self) -> float: ...
    @property
    def width_m(self) -> float: ...
    @property
    def colour(self) -> tuple[float, float, float]: ...
    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...
    def position(self, t: float | FloatArray) -> FloatArray: ...
    def shape(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]: ...


@dataclass(frozen=True)
class FrameTruth:
    """What a frame shows that matters for scoring (frame time, throws in flight, camera shake)."""

    t: float
    index: int
    # (throw id, u, v): centre of each thrown object in the air and in view, without the shake.
    throws: tuple[tuple[int, float, float], ...]
    shake_px: tuple[float, float]


class FacadeRenderer:
    """Renders one scenario at one size and frame rate, frame after frame (stateful: snow, lights)."""

    def __init__(self, scenario: Scenario, size: tuple[int, int], fps: float) -> None:
        self.scenario = scenario
        self.size = size
        self.fps = fps
        self.camera = scenario.camera(size)
        self.rng = np.random.default_rng(scenario.seed + 7919)
        self.scale = size[0] / 1920
        light = scenario.time_of_day
        self.exposure_s = EXPOSURE_FRAMES[light] / fps
        self.object_light = OBJECT_LIGHT[light]
        dark, lit, ids, sky, self._sheets = _render_background(scenario, self.camera, self.rng)
        self._dark, self._lit, self._ids, self._sky_mask = dark, lit, ids, sky
        self._window_boxes = _window_boxes(scenario.building, self.camera)
        self._lit_state = set(scenario.lit_at_start)
        self.background = dark.copy()
        for window in self._lit_state:
            self._set_window(window, True)
        self._switch_index = 0
        self._prepare_noise(NOISE_SIGMA[light])
        self._prepare_clouds()
        self._snow = self._initial_snow()

    # ------------------------------------------------------------------------ static parts

    def _set_window(self, window: tuple[int, int], on: bool) -> None:
        box = self._window_boxes.get(window)
        if box is None:
            return
        x0, y0, x1, y1, ident = box
        mask = self._ids[y0:y1, x0:x1] == ident
        source = self._lit if on else self._dark
        np.copyto(self.background[y0:y1, x0:x1], source[y0:y1, x0:x1], where=mask[..., None])

    def _prepare_noise(self, sigma: float) -> None:
        width, height = self.size
        margin = 32
        noise = self.rng.standard_normal((height + margin, width + margin), dtype=np.float32) * np.float32(
            sigma
        )
        noise3 = cv2.cvtColor(noise, cv2.COLOR_GRAY2BGR)
        self._noise_up = cv2.convertScaleAbs(np.maximum(noise3, 0))
        self._noise_down = cv2.convertScaleAbs(np.minimum(noise3, 0))

    def _prepare_clouds(self) -> None:
        self._clouds: Image | None = None
        if not self.scenario.weather.clouds:
            return
        rows = np.nonzero(self._sky_mask.any(axis=1))[0]
        if len(rows) == 0:
            return
        width = self.size[0]
        self._sky_rows = int(rows[-1]) + 1
        # Two octaves of smooth noise, tiled so the panorama repeats every picture width.
        texture = np.zeros((self._sky_rows, 3 * width), dtype=np.float32)
        for cell, weight in ((160, 0.7), (50, 0.3)):
            cells = max(2, round(self.size[1] / (cell * self.scale)) or 2)
            low = self.rng.random((cells, max(2, round(width / (cell * self.scale)))), dtype=np.float32)
            tiled = np.concatenate([low, low, low], axis=1)
            texture += weight * cv2.resize(tiled, (3 * width, self._sky_rows), interpolation=cv2.INTER_CUBIC)
        # Cover where the noise is high, softly: patches of cloud, blue sky between them. The sky is a
        # vertical gradient, so the cloudy sky is one wide panorama slid sideways (no per-frame blending).
        cover = (np.clip((texture - 0.5) * 3.0, 0, 1) * np.float32(0.75))[..., None]
        top, horizon = (np.asarray(c, dtype=np.float32) for c in SKY[self.scenario.time_of_day])
        ramp = (np.arange(self._sky_rows, dtype=np.float32) / (self.size[1] - 1))[:, None, None]
        sky = top * (1 - ramp) + horizon * ramp
        cloud = np.float32({"day": 245.0, "dusk": 150.0, "night": 40.0}[self.scenario.time_of_day])
        self._clouds = (sky * (1 - cover) + cloud * cover).astype(np.uint8)
        self._sky_where = np.ascontiguousarray(self._sky_mask[: self._sky_rows])

    def _initial_snow(self) -> FloatArray:
        count = (
            int(self.scenario.weather.snow_flakes * self.scale**2 + 0.5)
            if self.scenario.weather.snow_flakes
            else 0
        )
        width, height = self.size
        # Columns: x, y, fall speed (px/s), radius (px), sway phase.
        flakes = np.column_stack(
            [
                self.rng.uniform(0, width, count),
                self.rng.uniform(0, height, count),
                self.rng.uniform(30, 160, count) * self.scale,
                self.rng.uniform(0.6, 3.0, count) * max(self.scale, 0.35),
                self.rng.uniform(0, 2 * math.pi, count),
            ]
        )
        return flakes

    # ------------------------------------------------------------------------ per frame

    def render(self, index: int) -> tuple[Image, FrameTruth]:
        t = index / self.fps
        scenario = self.scenario
        switches = scenario.light_switches
        while self._switch_index < len(switches) and switches[self._switch_index].t <= t:
            switch = switches[self._switch_index]
            self._set_window((switch.floor, switch.column), switch.on)
            self._switch_index += 1
        frame = self.background.copy()
        self._draw_clouds(frame, t)
        self._draw_laundry(frame, t)
        in_flight: list[tuple[int, float, float]] = []
        for throw in scenario.throws:
            if throw.start_s - self.exposure_s <= t <= throw.end_s + self.exposure_s:
                self._draw_blob(frame, throw, t)
                if throw.start_s <= t <= throw.end_s:
                    uv, depth = self.camera.project(throw.position(t)[None])
                    if depth[0] > 0 and bool(self.camera.in_view(uv)[0]):
                        in_flight.append((throw.id, float(uv[0, 0]), float(uv[0, 1])))
        for mover in scenario.movers:
            if mover.start_s <= t <= mover.end_s:
                self._draw_blob(frame, mover, t)
        self._draw_rain(frame)
        self._draw_snow(frame)
        for insect in scenario.insects:
            if insect.start_s <= t <= insect.end_s:
                self._draw_insect(frame, insect.at(t), insect.radius_frac, insect.tone)
        dx = dy = 0.0
        for shake in scenario.shakes:
            ox, oy = shake.offset(t)
            dx, dy = dx + ox * self.size[0], dy + oy * self.size[0]
        # Whole pixels: a bilinear warp of a full frame costs 5x more than the rest of the frame.
        dx, dy = float(round(dx)), float(round(dy))
        if dx or dy:
            frame = _shift(frame, int(dx), int(dy))
        frame = self._sensor(frame)
        return frame, FrameTruth(round(t, 4), index, tuple(in_flight), (round(dx, 3), round(dy, 3)))

    def _draw_clouds(self, frame: Image, t: float) -> None:
        if self._clouds is None:
            return
        width = self.size[0]
        offset = int(t * self.scenario.weather.cloud_speed * width) % width
        # OpenCV's masked copy: several times faster than numpy's copyto(where=...).
        cv2.copyTo(self._clouds[:, offset : offset + width], self._sky_where, frame[: self._sky_rows])

    def _draw_laundry(self, frame: Image, t: float) -> None:
        """Laundry in the wind: the hem swings sideways and out while the top stays on the rack."""
        amplitude = 0.05 * abs(self.scenario.weather.wind_mps)
        for sheet in self._sheets:
            swing = amplitude * (
                math.sin(2 * math.pi * sheet.frequency_hz * t + sheet.phase)
                + 0.4 * math.sin(2 * math.pi * 2.7 * sheet.frequency_hz * t)
            )
            quad = sheet.quad.copy()
            quad[:2, 0] += swing
            quad[:2, 2] += 0.5 * abs(swing)
            uv, depth = self.camera.project(quad)
            if (depth <= NEAR_M).any() or not self.camera.in_view(uv, -50).any():
                continue
            points = np.round(uv * SCALE).astype(np.int32)
            cv2.fillConvexPoly(frame, points, sheet.colour, cv2.LINE_AA, SHIFT)

    def _draw_blob(self, frame: Image, thing: Drawable, t: float) -> None:
        """Smear the object's silhouette over the exposure, with coverage kept at sub-pixel sizes."""
        half = self.exposure_s / 2
        times = np.clip(np.linspace(t - half, t + half, 2), thing.start_s, thing.end_s)
        ends, depth = self.camera.project(thing.position(times))
        if (depth <= NEAR_M).any():
            return
        focal = self.camera.focal
        length_px = focal * thing.length_m / float(depth.mean())
        streak = float(np.hypot(*(ends[1] - ends[0])))
        samples = int(np.clip(math.ceil(streak / max(0.5, 0.5 * length_px)) + 1, 2, 24))
        times = np.clip(np.linspace(t - half, t + half, samples), thing.start_s, thing.end_s)
        centres, depth = self.camera.project(thing.position(times))
        span, angle, brightness = thing.shape(times)
        lengths = focal * thing.length_m * span / depth
        widths = focal * thing.width_m / depth
        pad = float(max(lengths.max(), widths.max())) / 2 + 3
        height, width = frame.shape[:2]
        x0 = max(0, math.floor(centres[:, 0].min() - pad))
        y0 = max(0, math.floor(centres[:, 1].min() - pad))
        x1 = min(width, math.ceil(centres[:, 0].max() + pad))
        y1 = min(height, math.ceil(centres[:, 1].max() + pad))
        if x1 <= x0 or y1 <= y0:
            return
        s = SUPERSAMPLE
        coverage = np.zeros(((y1 - y0) * s, (x1 - x0) * s), dtype=np.float32)
        layer = np.zeros_like(coverage)
        weight = np.float32(1.0 / samples)
        for (u, v), length, wide, a in zip(centres, lengths, widths, angle, strict=True):
            layer.fill(0)
            centre = (round((u - x0) * s * SCALE), round((v - y0) * s * SCALE))
            axes = (max(1, round(length * s * SCALE / 2)), max(1, round(wide * s * SCALE / 2)))
            cv2.ellipse(layer, centre, axes, math.degrees(float(a)), 0, 360, 1.0, -1, cv2.LINE_8, SHIFT)
            coverage += layer
        small = cv2.resize(coverage, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA) * weight
        blurred = cv2.GaussianBlur(small, (0, 0), 0.6)  # the lens and sensor's own blur
        alpha = np.clip(blurred, 0, 1)[..., None]
        gain, lift = self.object_light
        tone = gain * float(np.mean(brightness))
        colour = np.clip(
            np.asarray(thing.colour, dtype=np.float32) * np.float32(tone) + np.float32(lift), 0, 255
        )
        roi = frame[y0:y1, x0:x1]
        roi[:] = (roi.astype(np.float32) * (1 - alpha) + colour * alpha + 0.5).astype(np.uint8)

    def _draw_rain(self, frame: Image) -> None:
        count = int(self.scenario.weather.rain_streaks * self.scale + 0.5)
        if count == 0:
            return
        width, height = self.size
        rng = self.rng
        length = rng.uniform(25, 70, count) * self.scale
        slant = np.clip(self.scenario.weather.wind_mps / 9.0, -0.5, 0.5)
        x = rng.uniform(0, width, count)
        y = rng.uniform(-length, height, count)
        lines = np.stack([x, y, x + slant * length, y + length], axis=1)
        layer = np.zeros_like(frame)
        points = np.round(lines.reshape(-1, 2, 2) * SCALE).astype(np.int32)
        cv2.polylines(layer, list(points), False, (55, 55, 60), 1, cv2.LINE_AA, SHIFT)
        cv2.add(frame, layer, dst=frame)

    def _draw_snow(self, frame: Image) -> None:
        flakes = self._snow
        if len(flakes) == 0:
            return
        width, height = self.size
        dt = 1 / self.fps
        flakes[:, 4] += dt * 2.0
        flakes[:, 1] += flakes[:, 2] * dt
        flakes[:, 0] += (
            np.sin(flakes[:, 4]) * 20 * self.scale + self.scenario.weather.wind_mps * 8 * self.scale
        ) * dt
        fallen = flakes[:, 1] > height + 5
        flakes[fallen, 1] = -5
        flakes[:, 0] %= width
        colour = (235, 235, 235) if self.scenario.time_of_day == "day" else (170, 170, 175)
        for x, y, _, r, _ in flakes:
            cv2.circle(
                frame,
                (round(x * SCALE), round(y * SCALE)),
                max(1, round(r * SCALE)),
                colour,
                -1,
                cv2.LINE_AA,
                SHIFT,
            )

    def _draw_insect(self, frame: Image, where: FloatArray, radius_frac: float, tone: float) -> None:
        width, height = self.size
        radius = radius_frac * width
        cx, cy = where[0] * width, where[1] * height
        reach = int(radius * 2.5) + 2
        x0, y0 = max(0, int(cx) - reach), max(0, int(cy) - reach)
        x1, y1 = min(width, int(cx) + reach), min(height, int(cy) + reach)
        if x1 <= x0 or y1 <= y0:
            return
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        # Out of focus: a soft disc, partly see-through.
        r = np.hypot(xs - np.float32(cx), ys - np.float32(cy)) / np.float32(radius)
        alpha = (np.float32(0.75) / (1 + np.exp((r - 1) * 4)))[..., None]
        roi = frame[y0:y1, x0:x1]
        roi[:] = (roi.astype(np.float32) * (1 - alpha) + np.float32(tone) * alpha).astype(np.uint8)

    def _sensor(self, frame: Image) -> Image:
        height, width = frame.shape[:2]
        oy, ox = int(self.rng.integers(0, 32)), int(self.rng.integers(0, 32))
        cv2.add(frame, self._noise_up[oy : oy + height, ox : ox + width], dst=frame)
        cv2.subtract(frame, self._noise_down[oy : oy + height, ox : ox + width], dst=frame)
        return frame


def _shift(frame: Image, dx: int, dy: int) -> Image:
    """The picture moved by whole pixels (right and down positive), edges repeated."""
    height, width = frame.shape[:2]
    dx = max(-width + 1, min(width - 1, dx))
    dy = max(-height + 1, min(height - 1, dy))
    crop = frame[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
    out = cv2.copyMakeBorder(crop, max(0, dy), max(0, -dy), max(0, dx), max(0, -dx), cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


# ------------------------------------------------------------------------------ the still scene


def _clip_near(cam_points: FloatArray) -> FloatArray:
    """Clip a polygon in camera coordinates to the part in front of the near plane."""
    out = []
    count = len(cam_points)
    for i in range(count):
        a, b = cam_points[i], cam_points[(i + 1) % count]
        a_in, b_in = a[2] >= NEAR_M, b[2] >= NEAR_M
        if a_in:
            out.append(a)
        if a_in != b_in:
            f = (NEAR_M - a[2]) / (b[2] - a[2])
            out.append(a + (b - a) * f)
    return np.asarray(out).reshape(-1, 3)


class _Painter:
    """Draws world polygons into the pinhole image (and an id image, for windows and the sky)."""

    def __init__(self, camera: FacadeCamera) -> None:
        self.camera = camera
        size = (camera.height, camera.width)
        self.image = np.zeros((*size, 3), dtype=np.uint8)
        self.lit = np.zeros((*size, 3), dtype=np.uint8)
        self.ids = np.zeros(size, dtype=np.uint16)
        self.sky = np.full(size, 255, dtype=np.uint8)

    def pixels(self, world: FloatArray) -> npt.NDArray[np.int32] | None:
        cam = _clip_near(self.camera.to_camera(world))
        if len(cam) < 3:
            return None
        f = self.camera.focal
        uv = np.stack(
            [
                f * cam[:, 0] / cam[:, 2] + self.camera.width / 2,
                f * cam[:, 1] / cam[:, 2] + self.camera.height / 2,
            ],
            axis=1,
        )
        # Keep coordinates in a range OpenCV's fixed-point drawing accepts.
        limit = 8 * max(self.camera.width, self.camera.height)
        return np.round(np.clip(uv, -limit, limit) * SCALE).astype(np.int32)

    def quad(
        self,
        world: FloatArray,
        colour: tuple[float, ...],
        *,
        lit_colour: tuple[float, ...] | None = None,
        ident: int = 0,
    ) -> None:
        points = self.pixels(world)
        if points is None:
            return
        cv2.fillPoly(self.image, [points], colour, cv2.LINE_AA, SHIFT)
        cv2.fillPoly(self.lit, [points], lit_colour or colour, cv2.LINE_AA, SHIFT)
        cv2.fillPoly(self.ids, [points], ident, cv2.LINE_8, SHIFT)
        cv2.fillPoly(self.sky, [points], 0, cv2.LINE_8, SHIFT)


def _rect(x0: float, y0: float, x1: float, y1: float, z: float) -> FloatArray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])


def _box_faces(
    x0: float, y0: float, z0: float, x1: float, y1: float, z1: float
) -> list[tuple[FloatArray, float]]:
    """Faces of an axis-aligned box seen from below and in front: front, bottom, sides (with shading)."""
    return [
        (np.array([[x0, y0, z0], [x1, y0, z0], [x1, y0, z1], [x0, y0, z1]]), 0.55),  # underside
        (np.array([[x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]]), 0.95),  # front
        (np.array([[x0, y0, z0], [x0, y0, z1], [x0, y1, z1], [x0, y1, z0]]), 0.75),
        (np.array([[x1, y0, z0], [x1, y0, z1], [x1, y1, z1], [x1, y1, z0]]), 0.75),
    ]


def _shade(colour: tuple[int, ...] | tuple[float, ...], factor: float) -> tuple[float, ...]:
    return tuple(float(min(255.0, c * factor)) for c in colour)


def _render_background(
    scenario: Scenario, camera: FacadeCamera, rng: np.random.Generator
) -> tuple[Image, Image, npt.NDArray[np.uint16], Image, list[Sheet]]:
    """(windows dark, windows lit, window ids, sky mask) through the lens, and swaying laundry."""
    building = scenario.building
    light = scenario.time_of_day
    wall_light = WALL_LIGHT[light]
    painter = _Painter(camera)
    # Sky: a gradient from the zenith (top) towards the horizon (bottom of the picture).
    top, horizon = (np.asarray(c, dtype=np.float32) for c in SKY[light])
    ramp = np.linspace(0, 1, camera.height, dtype=np.float32)[:, None]
    sky = (top[None, :] * (1 - ramp) + horizon[None, :] * ramp).astype(np.uint8)
    painter.image[:] = sky[:, None, :]
    painter.lit[:] = painter.image
    # Ground in front of the tower, and the neighbouring low buildings' roofline at the sides.
    ground = np.array(
        [[-200.0, 0, 0], [building.width_m + 200, 0, 0], [building.width_m + 200, 0, 300], [-200, 0, 300]]
    )
    painter.quad(ground, _shade((90, 95, 100), max(wall_light, 0.2)))
    wall = _shade(building.wall_colour, wall_light)
    painter.quad(_rect(0, 0, building.width_m, building.height_m + PARAPET_M, 0.0), wall)
    trim = _shade(building.trim_colour, wall_light)
    for floor in range(2, building.floors + 2):
        y = building.floor_y(floor)
        painter.quad(_rect(0, y - 0.12, building.width_m, y + 0.12, 0.0), trim)
    glass = _shade(building.glass_colour, 1.3 * wall_light if light == "day" else 0.35 * wall_light)
    ident = 0
    for floor in range(1, building.floors + 1):
        for column in range(1, building.columns + 1):
            ident += 1
            x0, y0, x1, y1 = building.window_rect(floor, column)
            painter.quad(
                _rect(x0 - 0.06, y0 - 0.06, x1 + 0.06, y1 + 0.06, 0.0),
                _shade(building.trim_colour, 0.7 * wall_light),
            )
            warm = (float(rng.uniform(120, 200)), float(rng.uniform(190, 235)), float(rng.uniform(225, 255)))
            painter.quad(_rect(x0, y0, x1, y1, 0.0), glass, lit_colour=warm, ident=ident)
    sheets = _paint_fixtures(painter, building, wall_light, rng, sway=scenario.weather.laundry_sways)
    dark = camera.distort_image(painter.image)
    lit = camera.distort_image(painter.lit)
    ids16 = camera.distort_image(painter.ids, nearest=True)
    sky_mask = camera.distort_image(painter.sky, nearest=True)
    # Light falls off towards the corners of a wide lens.
    vignette = _vignette(camera.width, camera.height, 0.25)
    dark = np.asarray(cv2.multiply(dark, vignette, scale=1 / 255), dtype=np.uint8)
    lit = np.asarray(cv2.multiply(lit, vignette, scale=1 / 255), dtype=np.uint8)
    return dark, lit, np.asarray(ids16, dtype=np.uint16), np.asarray(sky_mask, dtype=np.uint8), sheets


@dataclass(frozen=True)
class Sheet:
    """A piece of laundry hanging from a rack: a world quad (bottom corners first) that may sway."""

    quad: FloatArray
    colour: tuple[float, ...]
    frequency_hz: float
    phase: float


def _paint_fixtures(
    painter: _Painter, building: Building, wall_light: float, rng: np.random.Generator, *, sway: bool
) -> list[Sheet]:
    """Balconies, AC units and laundry, far to near (higher floors are further from the camera).

    With ``sway`` the laundry is left out of the still scene and returned, to be drawn every frame.
    """
    sheets: list[Sheet] = []
    items: list[tuple[float, FloatArray, tuple[float, ...]]] = []
    eye = painter.camera.position
    half = building.column_width_m * 0.45
    for floor in range(building.floors, 0, -1):
        y = building.floor_y(floor)
        for column in range(1, building.columns + 1):
            x = building.column_x(column)
            if building.has_balcony(floor, column):
                depth = building.balcony_depth_m
                slab = _box_faces(x - half, y - 0.05, 0.0, x + half, y + 0.12, depth)
                rail = _rect(x - half, y + 0.12, x + half, y + 1.1, depth)
                for face, shade in slab:
                    items.append(
                        (
                            float(np.linalg.norm(face.mean(axis=0) - eye)),
                            face,
                            _shade(building.trim_colour, shade * wall_light),
                        )
                    )
                items.append(
                    (
                        float(np.linalg.norm(rail.mean(axis=0) - eye)) - 0.01,
                        rail,
                        _shade(building.wall_colour, 0.85 * wall_light),
                    )
                )
            if (floor, column) in building.ac_units:
                side = building.window_width_m / 2 + 0.5
                ax = x + (side if column % 2 else -side)
                for face, shade in _box_faces(ax - 0.4, y + 0.3, 0.0, ax + 0.4, y + 0.9, 0.45):
                    items.append(
                        (
                            float(np.linalg.norm(face.mean(axis=0) - eye)),
                            face,
                            _shade((200, 205, 205), shade * wall_light),
                        )
                    )
            if (floor, column) in building.laundry:
                reach = building.balcony_depth_m + 0.3 if building.has_balcony(floor, column) else 1.0
                pole_y = y + 2.3
                pole = np.array(
                    [
                        [x - 0.02, pole_y, 0.0],
                        [x + 0.02, pole_y, 0.0],
                        [x + 0.02, pole_y, reach],
                        [x - 0.02, pole_y, reach],
                    ]
                )
                items.append(
                    (float(np.linalg.norm(pole.mean(axis=0) - eye)), pole, _shade((90, 90, 90), wall_light))
                )
                for k in range(int(rng.integers(1, 4))):
                    z = reach * (0.35 + 0.3 * k)
                    cloth = rng.uniform(60, 240, 3)
                    hang = float(rng.uniform(0.4, 0.8))
                    sheet = _rect(x - 0.3, pole_y - hang, x + 0.3, pole_y, min(z, reach))
                    if sway:
                        frequency, phase = float(rng.uniform(0.4, 1.5)), float(rng.uniform(0, 2 * math.pi))
                        sheets.append(Sheet(sheet, _shade(tuple(cloth), wall_light), frequency, phase))
                        continue
                    items.append(
                        (
                            float(np.linalg.norm(sheet.mean(axis=0) - eye)) - 0.02,
                            sheet,
                            _shade(tuple(cloth), wall_light),
                        )
                    )
    items.sort(key=lambda item: -item[0])
    for _, face, colour in items:
        painter.quad(face, colour)
    return sheets


def _vignette(width: int, height: int, strength: float) -> Image:
    xs = np.linspace(-1, 1, width)[None, :]
    ys = np.linspace(-1, 1, height)[:, None]
    falloff = 255 * (1 - strength * (xs * xs + ys * ys) / 2)
    return np.asarray(cv2.cvtColor(falloff.astype(np.uint8), cv2.COLOR_GRAY2BGR), dtype=np.uint8)


def _window_boxes(
    building: Building, camera: FacadeCamera
) -> dict[tuple[int, int], tuple[int, int, int, int, int]]:
    """Pixel bounds (lens image) and id of every window, to switch its light without a full-frame mask."""
    boxes = {}
    ident = 0
    for floor in range(1, building.floors + 1):
        for column in range(1, building.columns + 1):
            ident += 1
            x0, y0, x1, y1 = building.window_rect(floor, column)
            uv, depth = camera.project(_rect(x0, y0, x1, y1, 0.0))
            if (depth <= NEAR_M).any():
                continue
            u0, v0 = np.floor(uv.min(axis=0)).astype(int) - 3
            u1, v1 = np.ceil(uv.max(axis=0)).astype(int) + 3
            u0, v0 = max(0, int(u0)), max(0, int(v0))
            u1, v1 = min(camera.width, int(u1)), min(camera.height, int(v1))
            if u1 > u0 and v1 > v0:
                boxes[(floor, column)] = (u0, v0, u1, v1, ident)
    return boxes
