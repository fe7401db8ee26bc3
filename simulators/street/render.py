"""Painting a street scenario frame by frame with numpy and OpenCV.

Every frame copies the still scene (``background``) and paints what is on the street far to near:
vehicles as shaded blocks with windows, wheels, lights and their plate (the plate image warped onto
its place), pedestrians as walking figures; then the signal, headlight glow, rain and sensor noise.
Vehicles standing still are painted once into a cached layer over the still scene and repainted in a
frame only when something drawn in it overlaps them: a car parked for twelve minutes costs nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from simulators.street.background import LIGHTING, lamp_pool, render_background
from simulators.street.camera import NEAR_M, StreetCamera
from simulators.street.geometry import (
    CIRCLE_SIDES,
    Placed,
    Population,
    block_order,
    face_visible,
    frame_matrix,
    order_far_to_near,
)
from simulators.street.layout import StreetLayout
from simulators.street.plates import PlateColour, render_plate
from simulators.street.scenario import Scenario
from simulators.street.traffic import FLAG_BRAKE, FLAG_HAZARD
from simulators.street.vehicles import FACES, GLASS, RIM, TYRE

Image = npt.NDArray[np.uint8]
SHIFT = 4
SCALE = 1 << SHIFT
SUN = np.array([-0.35, -0.45, 0.82]) / np.linalg.norm([-0.35, -0.45, 0.82])
HAZARD: tuple[int, int, int] = (0, 160, 255)
HEAD_ON = (235, 245, 250)
TAIL_ON = (40, 40, 215)
BRAKE_ON = (70, 70, 255)


@dataclass(frozen=True)
class VehicleInView:
    """A vehicle the frame shows: its box, how much of it is in sight, and where its plate is."""

    id: int
    cls: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, clipped to the picture
    visible: float | None  # share of its in-picture outline not hidden by nearer things (None: not computed)
    in_picture: float | None  # share of its outline inside the picture
    plate: tuple[tuple[float, float], ...] | None  # corners (top-left, top-right, bottom-right, bottom-left)
    moving: bool


@dataclass(frozen=True)
class FrameTruth:
    t: float  # scenario seconds
    index: int
    vehicles: tuple[VehicleInView, ...]
    light: str  # the signal's state: green, amber, red


class StreetRenderer:
    """Renders one scenario at one size; frame ``index`` shows scenario time ``index * speed / fps``."""

    def __init__(
        self,
        scenario: Scenario,
        size: tuple[int, int],
        fps: float,
        *,
        speed: float = 1.0,
        visibility: bool = True,
    ) -> None:
        if speed <= 0 or fps <= 0:
            raise ValueError(f"fps and speed must be positive, got fps={fps}, speed={speed}")
        self.scenario = scenario
        self.size = size
        self.fps = fps
        self.speed = speed
        self.visibility = visibility
        self.camera = scenario.camera(size)
        self.light = LIGHTING[scenario.time_of_day]
        self.rain = scenario.weather == "rain"
        self.rng = np.random.default_rng([scenario.seed, 7919])
        self.scale = size[0] / 1920
        self.background = render_background(scenario, self.camera, self.light, self.rain, self.rng)
        self._prepare_noise(self.light.noise * (1.3 if self.rain else 1.0))
        self._population = Population(scenario)
        self._plates: dict[tuple[int, int], Image] = {}
        self._signal = _signal_lamps(scenario.layout)
        self._layer_key: tuple[object, ...] | None = None
        self._layer = self.background
        self._layer_glows: list[tuple[float, float, float, tuple[int, int, int]]] = []
        self._layer_plates: dict[int, tuple[tuple[float, float], ...]] = {}
        from simulators.street.visibility import (
            VisibilityProbe,  # here: visibility imports this module's types
        )

        self._probe = VisibilityProbe(scenario, size) if visibility else None

    def time_of(self, index: int) -> float:
        return index * self.speed / self.fps

    # ------------------------------------------------------------------------ per frame

    def placed_at(self, t: float, camera: StreetCamera | None = None) -> list[Placed]:
        """Everything on the street at ``t`` that the camera may see, unordered."""
        return self._population.at(t, camera or self.camera)

    def render(self, index: int) -> tuple[Image, FrameTruth]:
        t = self.time_of(index)
        placed = self.placed_at(t)
        ordered = order_far_to_near(placed, self.camera)
        signal = self.scenario.light.state(t)
        # Vehicles standing still are painted once into a cached layer over the background; a frame
        # repaints one of them only when something drawn in this frame behind it overlaps it.
        still = [p for p in ordered if p.kind == "vehicle" and p.speed == 0.0 and not p.flags & FLAG_HAZARD]
        key = tuple((p.ident, p.x, p.y, p.heading, p.flags, self._lights_on(p)) for p in still)
        if key != self._layer_key:
            self._build_layer(still, t)
            self._layer_key = key
        frame = self._layer.copy()
        plates = dict(self._layer_plates)
        glows = list(self._layer_glows)
        drawn: list[tuple[float, float, float, float]] = []
        box = self._draw_signal(frame, signal)
        if box is not None:
            drawn.append(box)
        still_ids = {id(p) for p in still}
        if self.light.lights_on:
            for p in ordered:
                if id(p) not in still_ids and p.kind == "vehicle" and self._lights_on(p):
                    box = self._draw_beam(frame, p)
                    if box is not None:
                        drawn.append(box)
        for p in ordered:
            if id(p) in still_ids:
                if not any(_overlap(p.bbox, b) for b in drawn):
                    continue
                self._draw_vehicle(frame, p, t, [])  # its glows are in the layer's list already
            elif p.kind == "vehicle":
                quad = self._draw_vehicle(frame, p, t, glows)
                if quad is not None:
                    plates[p.ident] = quad
            else:
                self._draw_pedestrian(frame, p)
            drawn.append(p.bbox)
        self._draw_glows(frame, glows)
        if self.rain:
            self._draw_rain(frame)
        frame = self._sensor(frame)
        return frame, self._truth(t, index, ordered, plates, signal)

    def _build_layer(self, still: list[Placed], t: float) -> None:
        layer = self.background.copy()
        glows: list[tuple[float, float, float, tuple[int, int, int]]] = []
        plates: dict[int, tuple[tuple[float, float], ...]] = {}
        if self.light.lights_on:
            for p in still:
                if self._lights_on(p):
                    self._draw_beam(layer, p)
        for p in still:
            quad = self._draw_vehicle(layer, p, t, glows)
            if quad is not None:
                plates[p.ident] = quad
        self._layer, self._layer_glows, self._layer_plates = layer, glows, plates

    def _truth(
        self,
        t: float,
        index: int,
        ordered: list[Placed],
        plates: dict[int, tuple[tuple[float, float], ...]],
        signal: str,
    ) -> FrameTruth:
        width, height = self.size
        shares = self._probe.shares(ordered) if self._probe is not None else {}
        out = []
        for p in ordered:
            if p.kind != "vehicle":
                continue
            x0, y0, x1, y1 = p.bbox
            box = (
                max(0, math.floor(x0)),
                max(0, math.floor(y0)),
                min(width, math.ceil(x1)),
                min(height, math.ceil(y1)),
            )
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            visible, in_picture = shares.get(p.ident, (None, None))
            assert p.model is not None
            out.append(
                VehicleInView(
                    p.ident, p.model.spec.cls, box, visible, in_picture, plates.get(p.ident), p.speed > 0.05
                )
            )
        return FrameTruth(round(t, 4), index, tuple(out), signal)

    # ------------------------------------------------------------------------ vehicles

    def _lights_on(self, p: Placed) -> bool:
        return self.light.lights_on and (p.speed > 0.05 or bool(p.flags & FLAG_BRAKE))

    def _illumination(self, x: float, y: float) -> float:
        """Light falling on a vehicle: daylight, plus street lamps after dark."""
        light = self.light
        if light.lamps <= 0:
            return light.gain
        return min(0.6, light.gain + 0.4 * light.lamps * lamp_pool(self.scenario.layout, x, y))

    def _draw_vehicle(
        self, frame: Image, p: Placed, t: float, glows: list[tuple[float, float, float, tuple[int, int, int]]]
    ) -> tuple[tuple[float, float], ...] | None:
        model = p.model
        assert model is not None
        camera = self.camera
        visible = face_visible(p, camera)
        rot = frame_matrix(p.heading)
        illum = self._illumination(p.x, p.y)
        shade = (
            self.light.ambient + (1 - self.light.ambient) * np.clip((model.normals @ rot) @ SUN, 0, 1)
        ) * illum
        face_colours = np.minimum(model.colours[:, None, :] * shade[..., None], 255.0).tolist()
        lit = self._lights_on(p)
        blink = bool(p.flags & FLAG_HAZARD) and (t * 1.4) % 1.0 < 0.5
        # Far away a vehicle is a few pixels: its body and lights are all that show.
        small = p.bbox[3] - p.bbox[1] < 14
        draw = _Polygons(frame, p, camera)
        plate_quad: tuple[tuple[float, float], ...] | None = None
        side_seen = self._sides_seen(p)
        wheels_done = small
        if not small:
            for wheel in model.wheels:  # two-wheelers' wheels stand in the middle plane: drawn first
                if wheel.side == 0:
                    self._draw_wheel(draw, wheel.row, illum)
        for bi in block_order(p, camera):
            if model.layers[bi] < 0 and small:
                continue
            if model.layers[bi] >= 1 and not wheels_done:
                wheels_done = True
                self._draw_side_wheels(draw, p, side_seen, illum)
            seen = visible[bi]
            for fi in range(len(FACES)):
                if seen[fi]:
                    draw.fill(model.face_rows[bi, fi], face_colours[bi][fi])
            for panel in model.panels_by_block[bi]:
                if not seen[panel.face]:
                    continue
                rows = _ROWS4 + panel.row
                if panel.role == "plate":
                    quad = self._draw_plate(frame, p, rows, illum)
                    if quad is not None:
                        plate_quad = quad
                    continue
                glowing = panel.role in ("head", "tail") and (
                    lit or blink or (panel.role == "tail" and bool(p.flags & FLAG_BRAKE))
                )
                if small and not glowing:
                    continue
                colour = self._panel_colour(
                    panel.role, panel.colour, float(shade[bi, panel.face]), illum, lit, blink, p.flags
                )
                draw.fill(rows, colour)
                if glowing:
                    centre = p.uv[rows].mean(axis=0)
                    depth = float(p.depth[rows].mean())
                    if depth > NEAR_M:
                        size = camera.focal * (0.9 if panel.role == "head" else 0.5) / depth
                        glow = HAZARD if blink else (HEAD_ON if panel.role == "head" else TAIL_ON)
                        strength = 1.0 if self.light.lights_on else 0.35
                        glows.append((float(centre[0]), float(centre[1]), size * strength, glow))
        if not wheels_done:
            self._draw_side_wheels(draw, p, side_seen, illum)
        return plate_quad

    def _sides_seen(self, p: Placed) -> tuple[bool, bool]:
        """(left, right) side of the vehicle turned towards the camera."""
        assert p.model is not None
        rot = frame_matrix(p.heading)
        to_camera = self.camera.position[:2] - np.array([p.x, p.y])
        across = float(np.dot(rot[1, :2], to_camera))
        half = p.model.spec.width_m / 2
        return across < -half, across > half

    def _draw_side_wheels(
        self, draw: _Polygons, p: Placed, side_seen: tuple[bool, bool], illum: float
    ) -> None:
        assert p.model is not None
        for wheel in p.model.wheels:
            if (wheel.side < 0 and side_seen[0]) or (wheel.side > 0 and side_seen[1]):
                self._draw_wheel(draw, wheel.row, illum)

    def _draw_wheel(self, draw: _Polygons, row: int, illum: float) -> None:
        draw.fill(_CIRCLE_ROWS + row, _tint(TYRE, max(illum, 0.3)))
        draw.fill(_CIRCLE_ROWS + row + CIRCLE_SIDES, _tint(RIM, illum))

    def _panel_colour(
        self,
        role: str,
        colour: tuple[int, int, int],
        shade: float,
        illum: float,
        lit: bool,
        blink: bool,
        flags: int,
    ) -> tuple[float, ...]:
        if role == "glass":
            sky = 0.25 if self.light.gain > 0.4 else 0.05
            base = np.asarray(GLASS, dtype=np.float64) * shade
            return tuple(float(v) for v in base + sky * np.asarray(self.light.sky[1]) * shade)
        if role in ("head", "tail"):
            if blink:
                return HAZARD
            if role == "tail" and flags & FLAG_BRAKE:
                return BRAKE_ON if lit or self.light.gain > 0.4 else TAIL_ON
            if lit:
                return HEAD_ON if role == "head" else TAIL_ON
            return _tint(colour, shade * (1.2 if role == "head" else 0.9))
        if role == "sign" and self.light.lights_on:
            return tuple(float(c) for c in colour)
        return _tint(colour, shade)

    def _draw_plate(
        self, frame: Image, p: Placed, rows: npt.NDArray[np.intp], illum: float
    ) -> tuple[tuple[float, float], ...] | None:
        model = p.model
        assert model is not None
        spec = model.spec
        if spec.plate_text is None or spec.plate_colour is None or p.crosses_near:
            return None
        quad = p.uv[rows]  # bottom-left, bottom-right, top-right, top-left
        corners = (quad[3], quad[2], quad[1], quad[0])
        truth = tuple((round(float(u), 2), round(float(v), 2)) for u, v in corners)
        height_px = max(float(np.hypot(*(quad[3] - quad[0]))), float(np.hypot(*(quad[2] - quad[1]))))
        width, height = self.size
        x0, y0 = np.floor(quad.min(axis=0)).astype(int)
        x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1))
        if x1 <= x0 or y1 <= y0:
            return truth
        light = max(illum, 0.55) if self.light.lights_on else illum  # the plate lamp
        if height_px < 4:  # a few pixels: its mean colour is all a camera gets
            colour = _tint(_plate_mean(spec.plate_colour), light)
            _fill(frame, quad, colour)
            return truth
        bucket = _plate_bucket(2 * height_px)
        texture = self._plate_texture(p.ident, spec.plate_text, spec.plate_colour, bucket)
        if abs(light - 1.0) > 0.02:
            texture = np.asarray(cv2.convertScaleAbs(texture, alpha=light), dtype=np.uint8)
        th, tw = texture.shape[:2]
        src = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], dtype=np.float32)
        dst = np.array([c - (x0, y0) for c in corners], dtype=np.float32)
        matrix = cv2.getPerspectiveTransform(src, dst)
        roi = frame[y0:y1, x0:x1]
        flags = cv2.INTER_AREA if height_px < th else cv2.INTER_LINEAR
        cv2.warpPerspective(
            texture, matrix, (x1 - x0, y1 - y0), dst=roi, flags=flags, borderMode=cv2.BORDER_TRANSPARENT
        )
        return truth

    def _plate_texture(self, ident: int, text: str, colour: PlateColour, height_px: int) -> Image:
        key = (ident, height_px)
        texture = self._plates.get(key)
        if texture is None:
            if len(self._plates) > 256:
                self._plates.clear()
            texture = render_plate(text, colour, height_px=height_px)
            self._plates[key] = texture
        return texture

    def _draw_beam(self, frame: Image, p: Placed) -> tuple[float, float, float, float] | None:
        """The pool of headlight on the road ahead of a vehicle."""
        assert p.model is not None
        spec = p.model.spec
        rot = frame_matrix(p.heading)
        reach = 14.0 if spec.cls not in ("motorbike", "ebike") else 8.0
        front = spec.length_m / 2
        local = np.array(
            [[front + 0.5, -0.8, 0], [front + reach, -2.2, 0], [front + reach, 2.2, 0], [front + 0.5, 0.8, 0]]
        )
        world = local @ rot + np.array([p.x, p.y, 0.0])
        cam = self.camera.clip(self.camera.to_camera(world))
        if len(cam) < 3:
            return None
        f = self.camera.focal
        uv = np.stack(
            [f * cam[:, 0] / cam[:, 2] + self.size[0] / 2, f * cam[:, 1] / cam[:, 2] + self.size[1] / 2],
            axis=1,
        )
        x0, y0 = np.floor(uv.min(axis=0)).astype(int)
        x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + 1
        width, height = self.size
        x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1))
        if x1 <= x0 or y1 <= y0:
            return None
        roi = frame[y0:y1, x0:x1]
        strength = 16 if self.scenario.time_of_day == "night" else 8
        # Nested pools, shorter ones brighter: the light fades with distance from the lamps.
        for fraction in (1.0, 0.65, 0.35):
            pool = local.copy()
            pool[1:3, 0] = front + 0.5 + (reach - 0.5) * fraction
            pool[1:3, 1] *= 0.55 + 0.45 * fraction
            cam = self.camera.clip(self.camera.to_camera(pool @ rot + np.array([p.x, p.y, 0.0])))
            if len(cam) < 3:
                continue
            uv = np.stack(
                [f * cam[:, 0] / cam[:, 2] + self.size[0] / 2, f * cam[:, 1] / cam[:, 2] + self.size[1] / 2],
                axis=1,
            )
            layer = np.zeros_like(roi)
            _fill(layer, uv - (x0, y0), (strength, strength + 2, strength + 3))
            cv2.add(roi, layer, dst=roi)
        return (float(x0), float(y0), float(x1), float(y1))

    # ------------------------------------------------------------------------ people

    def _draw_pedestrian(self, frame: Image, p: Placed) -> None:
        person = p.pedestrian
        assert person is not None
        if p.crosses_near:
            return
        depth = float(p.depth[2])
        px_per_m = self.camera.focal / depth
        illum = self._illumination(p.x, p.y)
        trousers = _tint(person.trousers, illum)
        shirt = _tint(person.shirt, illum)
        feet, hips, shoulders, head = p.uv[0:2], p.uv[2], p.uv[3], p.uv[4]
        if px_per_m * person.height_m < 12:  # a few pixels tall: a body and legs are all that show
            _line(frame, hips, (feet[0] + feet[1]) / 2, trousers, max(1, round(0.25 * px_per_m)))
            _line(frame, hips, head, shirt, max(1, round(0.36 * px_per_m)))
            return
        limb = max(1, round(0.14 * px_per_m))
        for foot in feet:
            _line(frame, hips, foot, trousers, limb)
        _line(frame, hips, shoulders, shirt, max(1, round(0.36 * px_per_m)))
        arm = max(1, round(0.1 * px_per_m))
        swing = (p.uv[0] - p.uv[1]) * 0.35
        _line(frame, shoulders, (hips + shoulders) / 2 - swing * 0.5 + (0, 0.15 * px_per_m), shirt, arm)
        radius = max(1.0, 0.11 * person.height_m * px_per_m)
        cv2.circle(
            frame,
            _fixed(head),
            max(1, round(radius * SCALE)),
            _tint((105, 135, 180), illum),
            -1,
            cv2.LINE_AA,
            SHIFT,
        )
        hair = head - (0, radius * 0.45)
        cv2.circle(
            frame,
            _fixed(hair),
            max(1, round(radius * 0.75 * SCALE)),
            _tint((30, 30, 35), illum),
            -1,
            cv2.LINE_AA,
            SHIFT,
        )

    # ------------------------------------------------------------------------ light, weather, sensor

    def _draw_signal(self, frame: Image, state: str) -> tuple[float, float, float, float] | None:
        lamp = self._signal[state]
        uv, depth = self.camera.project(lamp[None])
        if depth[0] <= NEAR_M:
            return None
        radius = self.camera.focal * 0.11 / float(depth[0])
        colour = {"green": (150, 230, 60), "amber": (40, 190, 255), "red": (60, 60, 255)}[state]
        cv2.circle(frame, _fixed(uv[0]), max(1, round(radius * SCALE)), colour, -1, cv2.LINE_AA, SHIFT)
        reach = radius
        if self.light.lights_on or radius > 1.5:
            reach = radius * 5
            self._draw_glows(frame, [(float(uv[0, 0]), float(uv[0, 1]), reach, colour)])
        u, v = float(uv[0, 0]), float(uv[0, 1])
        return (u - reach - 1, v - reach - 1, u + reach + 1, v + reach + 1)

    def _draw_glows(
        self, frame: Image, glows: list[tuple[float, float, float, tuple[int, int, int]]]
    ) -> None:
        height, width = frame.shape[:2]
        for u, v, size, colour in glows:
            r = int(min(max(size, 2.0), 200))
            x0, y0, x1, y1 = int(u) - r, int(v) - r, int(u) + r + 1, int(v) + r + 1
            if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
                continue
            sprite = _coloured_glow(
                2 * r + 1, tuple(int(c) for c in colour), 0.8 if self.light.lights_on else 0.35
            )  # type: ignore[arg-type]
            cx0, cy0 = max(0, x0), max(0, y0)
            cx1, cy1 = min(width, x1), min(height, y1)
            roi = frame[cy0:cy1, cx0:cx1]
            cv2.add(roi, sprite[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], dst=roi)

    def _draw_rain(self, frame: Image) -> None:
        count = int(450 * self.scale + 0.5)
        width, height = self.size
        rng = self.rng
        length = rng.uniform(20, 55, count) * self.scale
        x = rng.uniform(0, width, count)
        y = rng.uniform(-length, height, count)
        lines = np.stack([x, y, x + 0.12 * length, y + length], axis=1)
        layer = np.zeros_like(frame)
        points = np.round(lines.reshape(-1, 2, 2) * SCALE).astype(np.int32)
        tone = (48, 48, 52) if self.light.gain > 0.4 else (30, 30, 34)
        cv2.polylines(layer, list(points), False, tone, 1, cv2.LINE_AA, SHIFT)
        cv2.add(frame, layer, dst=frame)

    def _prepare_noise(self, sigma: float) -> None:
        width, height = self.size
        margin = 32
        noise = self.rng.standard_normal((height + margin, width + margin), dtype=np.float32) * np.float32(
            sigma
        )
        noise3 = cv2.cvtColor(noise, cv2.COLOR_GRAY2BGR)
        self._noise_up = cv2.convertScaleAbs(np.maximum(noise3, 0))
        self._noise_down = cv2.convertScaleAbs(np.minimum(noise3, 0))

    def _sensor(self, frame: Image) -> Image:
        height, width = frame.shape[:2]
        oy, ox = int(self.rng.integers(0, 32)), int(self.rng.integers(0, 32))
        cv2.add(frame, self._noise_up[oy : oy + height, ox : ox + width], dst=frame)
        cv2.subtract(frame, self._noise_down[oy : oy + height, ox : ox + width], dst=frame)
        return frame


def placed_at(
    scenario: Scenario, t: float, camera: StreetCamera, population: Population | None = None
) -> list[Placed]:
    """Every vehicle and pedestrian on the street at ``t`` that is in front of the camera and in the picture."""
    return (population or Population(scenario)).at(t, camera)


_ROWS4 = np.arange(4)
_CIRCLE_ROWS = np.arange(CIRCLE_SIDES)


class _Polygons:
    """Fills a placed thing's polygons (rows of its projected points) into the frame, clipping at the
    near plane only for things that reach it."""

    def __init__(self, frame: Image, p: Placed, camera: StreetCamera) -> None:
        self.frame = frame
        self.p = p
        self.camera = camera
        # Points behind the eye or far outside the picture: clip each polygon in camera space first.
        self.near = p.crosses_near or bool((np.abs(p.uv) > 2 * max(frame.shape[:2])).any())
        if not self.near:
            self.fixed = np.round(p.uv * SCALE).astype(np.int32)

    def fill(self, rows: npt.NDArray[np.intp], colour: Sequence[float]) -> None:
        if not self.near:
            cv2.fillConvexPoly(self.frame, self.fixed[rows], colour, cv2.LINE_AA, SHIFT)
            return
        cam = self.camera.clip(self.p.cam[rows])
        if len(cam) < 3:
            return
        f = self.camera.focal
        uv = np.stack(
            [
                f * cam[:, 0] / cam[:, 2] + self.camera.width / 2,
                f * cam[:, 1] / cam[:, 2] + self.camera.height / 2,
            ],
            axis=1,
        )
        _fill(self.frame, uv, tuple(colour))


@functools.lru_cache(maxsize=8)
def _plate_mean(colour: PlateColour) -> tuple[int, int, int]:
    """The mean colour of a plate of this colour (what a plate a few pixels big looks like)."""
    text = {"blue": "京A12345", "yellow": "京A12345", "green": "京AD12345"}[colour]
    b, g, r = (int(c) for c in render_plate(text, colour, height_px=16).reshape(-1, 3).mean(axis=0))
    return (b, g, r)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _tint(colour: tuple[int, ...] | tuple[float, ...], factor: float) -> tuple[float, ...]:
    return tuple(float(min(255.0, c * factor)) for c in colour)


def _fixed(point: npt.NDArray[np.float64] | tuple[float, float]) -> tuple[int, int]:
    return (round(float(point[0]) * SCALE), round(float(point[1]) * SCALE))


def _fill(image: Image, uv: npt.NDArray[np.float64], colour: tuple[float, ...]) -> None:
    limit = 8 * max(image.shape[:2])
    points = np.round(np.clip(uv, -limit, limit) * SCALE).astype(np.int32)
    cv2.fillConvexPoly(image, points, colour, cv2.LINE_AA, SHIFT)


def _line(
    image: Image,
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    colour: tuple[float, ...],
    thickness: int,
) -> None:
    cv2.line(image, _fixed(a), _fixed(b), colour, thickness, cv2.LINE_AA, SHIFT)


def _plate_bucket(height: float) -> int:
    for bucket in (16, 24, 32, 48, 64, 96, 128):
        if height <= bucket:
            return bucket
    return 160


@functools.lru_cache(maxsize=4)
def _glow_sprite(size: int) -> npt.NDArray[np.float32]:
    r = np.hypot(*np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size)))
    return np.asarray(np.exp(-(r**2) * 5.0) * (r < 1.0), dtype=np.float32)


@functools.lru_cache(maxsize=1024)
def _coloured_glow(size: int, colour: tuple[int, int, int], strength: float) -> Image:
    alpha = cv2.resize(_glow_sprite(64), (size, size), interpolation=cv2.INTER_LINEAR)
    out = alpha[..., None] * (np.asarray(colour, dtype=np.float32) * np.float32(strength))
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)


def _signal_lamps(layout: StreetLayout) -> dict[str, npt.NDArray[np.float64]]:
    """World centres of the signal's three lamps (on the housing's face towards the camera)."""
    x = layout.light_x
    y = layout.stop_line_out_y + 0.3 - 0.16
    top = layout.light_height_m
    return {
        "red": np.array([x, y, top - 0.2]),
        "amber": np.array([x, y, top - 0.5]),
        "green": np.array([x, y, top - 0.8]),
    }
