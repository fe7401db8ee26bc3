"""The still street, painted once per renderer: sky, buildings, road, pavements, painted zones and words,
street lamps, the signal's housing; after dark the lamps' pools of light, lit windows and shop signs,
and on a wet road the lamps' reflections.

Polygons are drawn at ``SUPERSAMPLE`` times the picture's size and shrunk, for smooth edges on the
fine hatching far away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from simulators.street.camera import NEAR_M, StreetCamera
from simulators.street.layout import FAR_Y_M, StreetLayout
from simulators.street.scenario import Scenario

Image = npt.NDArray[np.uint8]
SHIFT = 4
SCALE = 1 << SHIFT
SUPERSAMPLE = 2


@dataclass(frozen=True)
class Lighting:
    gain: float  # daylight on everything
    ambient: float  # share of light from everywhere (the rest from the sun, on faces turned to it)
    sky: tuple[tuple[int, int, int], tuple[int, int, int]]  # top, horizon (BGR)
    lamps: float  # street lamp strength (0 by day)
    lights_on: bool  # vehicles' head and tail lights
    noise: float  # sensor noise sigma
    windows_lit: float  # share of lit windows


LIGHTING = {
    "day": Lighting(1.0, 0.62, ((225, 175, 120), (240, 222, 205)), 0.0, False, 2.0, 0.0),
    "dusk": Lighting(0.5, 0.7, ((120, 70, 70), (110, 150, 225)), 0.6, True, 4.0, 0.35),
    "night": Lighting(0.12, 0.85, ((28, 14, 8), (60, 42, 36)), 1.0, True, 6.0, 0.45),
}
ASPHALT = (78, 80, 84)
PAVEMENT = (165, 170, 172)
YELLOW = (20, 190, 235)
WHITE = (235, 235, 235)
RED_PAINT = (40, 40, 190)


def tint(colour: tuple[int, ...] | tuple[float, ...], factor: float) -> tuple[float, ...]:
    return tuple(float(min(255.0, c * factor)) for c in colour)


def lamp_pool(layout: StreetLayout, x: float, y: float) -> float:
    """How much street-lamp light reaches a point of the road (0..~1)."""
    total = 0.0
    for side, lamp_y in layout.lamp_ys:
        lx = lamp_head_x(layout, side)
        d2 = (x - lx) ** 2 + (y - lamp_y) ** 2
        total += math.exp(-d2 / (2 * 7.0**2))
    return min(total, 1.2)


def lamp_head_x(layout: StreetLayout, side: str) -> float:
    return layout.left_strip[0] + 1.2 if side == "left" else layout.right_strip[1] - 0.8


# ------------------------------------------------------------------------------ the still scene


class _Painter:
    """Draws world polygons into an image (at ``SUPERSAMPLE`` times the size), with a region map."""

    GROUND, BUILDING, FIXTURE, EMISSIVE = 1, 2, 3, 4

    def __init__(self, camera: StreetCamera) -> None:
        self.camera = camera.scaled(camera.width * SUPERSAMPLE, camera.height * SUPERSAMPLE)
        size = (self.camera.height, self.camera.width)
        self.image = np.zeros((*size, 3), dtype=np.uint8)
        self.glow = np.zeros((*size, 3), dtype=np.uint8)  # light sources, added on top after dark
        self.region = np.zeros(size, dtype=np.uint8)

    def pixels(self, world: npt.NDArray[np.float64]) -> npt.NDArray[np.int32] | None:
        cam = self.camera.clip(self.camera.to_camera(world))
        if len(cam) < 3:
            return None
        return np.round(self.camera.pixels(cam) * SCALE).astype(np.int32)

    def poly(
        self,
        world: npt.NDArray[np.float64],
        colour: tuple[float, ...],
        region: int,
        *,
        glow: tuple[float, ...] | None = None,
    ) -> None:
        points = self.pixels(np.asarray(world, dtype=np.float64))
        if points is None:
            return
        cv2.fillPoly(self.image, [points], colour, cv2.LINE_AA, SHIFT)
        cv2.fillPoly(self.region, [points], region, cv2.LINE_8, SHIFT)
        if glow is not None:
            cv2.fillPoly(self.glow, [points], glow, cv2.LINE_AA, SHIFT)

    def ground(
        self, x0: float, x1: float, y0: float, y1: float, colour: tuple[float, ...], z: float = 0.0
    ) -> None:
        self.poly(np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]]), colour, self.GROUND)

    def box(
        self,
        x0: float,
        x1: float,
        y0: float,
        y1: float,
        z0: float,
        z1: float,
        colour: tuple[float, ...],
        region: int = FIXTURE,
    ) -> None:
        """An upright box, its faces that look towards the camera (shaded)."""
        eye = self.camera.position
        faces = [
            (np.array([[x0, y0, z0], [x1, y0, z0], [x1, y0, z1], [x0, y0, z1]]), np.array([0, -1, 0]), 0.8),
            (np.array([[x0, y1, z0], [x1, y1, z0], [x1, y1, z1], [x0, y1, z1]]), np.array([0, 1, 0]), 0.8),
            (np.array([[x0, y0, z0], [x0, y1, z0], [x0, y1, z1], [x0, y0, z1]]), np.array([-1, 0, 0]), 0.65),
            (np.array([[x1, y0, z0], [x1, y1, z0], [x1, y1, z1], [x1, y0, z1]]), np.array([1, 0, 0]), 0.9),
            (np.array([[x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]]), np.array([0, 0, 1]), 1.05),
        ]
        for quad, normal, shade in faces:
            if np.dot(normal, eye - quad.mean(axis=0)) > 0:
                self.poly(quad, tint(colour, shade), region)

    def finish(self) -> tuple[Image, Image, npt.NDArray[np.uint8]]:
        size = (self.camera.width // SUPERSAMPLE, self.camera.height // SUPERSAMPLE)
        image = cv2.resize(self.image, size, interpolation=cv2.INTER_AREA)
        glow = cv2.resize(self.glow, size, interpolation=cv2.INTER_AREA)
        region = cv2.resize(self.region, size, interpolation=cv2.INTER_NEAREST)
        return np.asarray(image, np.uint8), np.asarray(glow, np.uint8), np.asarray(region, np.uint8)


def render_background(
    scenario: Scenario, camera: StreetCamera, light: Lighting, rain: bool, rng: np.random.Generator
) -> Image:
    layout = scenario.layout
    painter = _Painter(camera)
    height = painter.camera.height
    top, horizon = (np.asarray(c, dtype=np.float32) for c in light.sky)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None] ** 0.7
    painter.image[:] = (top[None, :] * (1 - ramp) + horizon[None, :] * ramp).astype(np.uint8)[:, None, :]
    far = FAR_Y_M + 400
    wet = 0.72 if rain else 1.0
    painter.ground(-400, 400, -40, far, (95, 100, 104))
    # The cross street, then the street itself.
    painter.ground(-400, 400, layout.junction[0], layout.junction[1], tint(ASPHALT, wet))
    painter.ground(layout.left_strip[0], layout.right_strip[1], -40, far, tint(ASPHALT, wet))
    for x0, x1 in (layout.left_pavement, layout.right_pavement):
        for y0, y1 in ((-40, layout.junction[0]), (layout.junction[1], far)):
            painter.ground(x0, x1, y0, y1, tint(PAVEMENT, 0.9 * wet if rain else 1.0), z=0.15)
            kerb_x = x1 if x0 < 0 else x0
            painter.poly(
                np.array([[kerb_x, y0, 0.0], [kerb_x, y1, 0.0], [kerb_x, y1, 0.15], [kerb_x, y0, 0.15]]),
                (120, 124, 126),
                painter.GROUND,
            )
    _paint_markings(painter, layout, wet)
    _paint_words(painter, layout)
    _paint_buildings(painter, layout, light, rng)
    _paint_fixtures(painter, layout, light)
    image, glow, region = painter.finish()
    # Light: daylight everywhere, then lamps on the road after dark; lit windows and lamps glow.
    gain = np.full(region.shape, light.gain, dtype=np.float32)
    if light.lamps > 0:
        ground = region == _Painter.GROUND
        xy = camera.pixels_to_ground(np.argwhere(ground)[:, ::-1].astype(np.float64))
        pool = np.zeros(len(xy), dtype=np.float32)
        for side, lamp_y in layout.lamp_ys:
            d2 = (xy[:, 0] - lamp_head_x(layout, side)) ** 2 + (xy[:, 1] - lamp_y) ** 2
            pool += np.exp(-d2 / (2 * 7.0**2)).astype(np.float32)
        gain[ground] = np.minimum(0.6, light.gain + light.lamps * np.minimum(pool, 1.2) * 0.4)
    lit = np.clip(image.astype(np.float32) * gain[..., None], 0, 255)
    lit = np.clip(lit + glow.astype(np.float32), 0, 255).astype(np.uint8)
    if rain and light.lamps > 0:
        _wet_reflections(lit, camera, layout)
    # Texture: a little grain in the road and pavement, fixed (it is the same surface every frame).
    grain = rng.normal(0, 5.0, region.shape).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 0.8) * (region == _Painter.GROUND)
    lit = np.clip(lit.astype(np.float32) + grain[..., None] * max(light.gain, 0.3), 0, 255).astype(np.uint8)
    # Light falls off towards the corners of the lens.
    xs = np.linspace(-1, 1, camera.width, dtype=np.float32)[None, :]
    ys = np.linspace(-1, 1, camera.height, dtype=np.float32)[:, None]
    vignette = 1 - 0.22 * (xs * xs + ys * ys) / 2
    lit = (lit.astype(np.float32) * vignette[..., None]).astype(np.uint8)
    return lit


def _paint_markings(painter: _Painter, layout: StreetLayout, wet: float) -> None:
    yellow, white, red = tint(YELLOW, wet), tint(WHITE, wet), tint(RED_PAINT, wet)
    lane_in, lane_out = layout.lanes
    far = FAR_Y_M + 100
    line = 0.15
    # Centre: a double yellow line; strip edges: solid white; the stop lines and the zebra.
    mid = lane_in.x1
    for dx in (-0.2, 0.2):
        for y0, y1 in ((-40, layout.crossing[0] - 0.5), (layout.junction[1], far)):
            painter.ground(mid + dx - line / 2, mid + dx + line / 2, y0, y1, yellow)
    for x in (lane_in.x0, lane_out.x1):
        for y0, y1 in ((-40, layout.stop_line_out_y), (layout.junction[1], far)):
            painter.ground(x - line / 2, x + line / 2, y0, y1, white)
    painter.ground(
        lane_out.x0 + 0.25, lane_out.x1, layout.stop_line_out_y - 0.4, layout.stop_line_out_y, white
    )
    painter.ground(lane_in.x0, lane_in.x1 - 0.25, layout.stop_line_in_y, layout.stop_line_in_y + 0.4, white)
    x = layout.left_strip[0] + 0.3
    while x < layout.right_strip[1] - 0.3:
        painter.ground(x, x + 0.45, layout.crossing[0], layout.crossing[1], white)
        x += 0.9
    # Zones.
    for zone in layout.zones:
        kerb_x = zone.x1 - 0.12 if zone.side == "right" else zone.x0 + 0.12
        if zone.kind == "no_parking":  # a solid yellow line along the kerb
            painter.ground(kerb_x - 0.09, kerb_x + 0.09, zone.y0, zone.y1, yellow)
        elif zone.kind == "bus_stop":  # a dashed yellow box with a yellow kerb line
            _dashed_box(painter, zone.x0 + 0.1, zone.x1 - 0.1, zone.y0, zone.y1, yellow)
            painter.ground(kerb_x - 0.09, kerb_x + 0.09, zone.y0, zone.y1, yellow)
        elif zone.kind == "fire_lane":  # a solid box, red and yellow hatching
            _box_outline(painter, zone.x0 + 0.1, zone.x1 - 0.1, zone.y0, zone.y1, yellow, 0.2)
            _hatch(
                painter,
                zone.x0 + 0.2,
                zone.x1 - 0.2,
                zone.y0 + 0.2,
                zone.y1 - 0.2,
                3.0,
                red,
                0.25,
                exclude=(zone.y0 + 5, zone.y0 + 13),
            )
        else:  # no-stopping box: yellow outline and cross-hatching
            _box_outline(painter, zone.x0 + 0.1, zone.x1 - 0.1, zone.y0, zone.y1, yellow, 0.2)
            _hatch(painter, zone.x0 + 0.2, zone.x1 - 0.2, zone.y0 + 0.2, zone.y1 - 0.2, 1.6, yellow, 0.15)
            _hatch(
                painter,
                zone.x0 + 0.2,
                zone.x1 - 0.2,
                zone.y0 + 0.2,
                zone.y1 - 0.2,
                1.6,
                yellow,
                0.15,
                mirrored=True,
            )
    for y0, y1 in layout.parking_bays:  # legal parking bays: white boxes
        _box_outline(painter, layout.right_strip[0] + 0.1, layout.right_strip[1] - 0.1, y0, y1, white, 0.12)


def _dashed_box(
    painter: _Painter, x0: float, x1: float, y0: float, y1: float, colour: tuple[float, ...]
) -> None:
    w = 0.15
    y = y0
    while y < y1:
        painter.ground(x0, x0 + w, y, min(y + 1.0, y1), colour)
        y += 2.0
    painter.ground(x0, x1, y0, y0 + w, colour)
    painter.ground(x0, x1, y1 - w, y1, colour)


def _box_outline(
    painter: _Painter, x0: float, x1: float, y0: float, y1: float, colour: tuple[float, ...], w: float
) -> None:
    painter.ground(x0, x0 + w, y0, y1, colour)
    painter.ground(x1 - w, x1, y0, y1, colour)
    painter.ground(x0, x1, y0, y0 + w, colour)
    painter.ground(x0, x1, y1 - w, y1, colour)


def _hatch(
    painter: _Painter,
    x0: float,
    x1: float,
    y0: float,
    y1: float,
    step: float,
    colour: tuple[float, ...],
    w: float,
    *,
    mirrored: bool = False,
    exclude: tuple[float, float] | None = None,
) -> None:
    """Diagonal stripes at 45 degrees inside a rectangle (clipped to it)."""
    span = x1 - x0
    y = y0 - span
    while y < y1:
        a, b = y, y + span  # the stripe's y at x0 and at x1
        if mirrored:
            a, b = b, a
        quad = np.array([[x0, a, 0.0], [x1, b, 0.0], [x1, b + w * 1.4, 0.0], [x0, a + w * 1.4, 0.0]])
        clipped = _clip_rect(quad, x0, x1, y0, y1)
        if exclude is not None and len(clipped):
            ys = clipped[:, 1]
            if ys.min() > exclude[0] and ys.max() < exclude[1]:
                clipped = np.zeros((0, 3))
        if len(clipped) >= 3:
            painter.poly(clipped, colour, painter.GROUND)
        y += step


def _clip_rect(
    poly: npt.NDArray[np.float64], x0: float, x1: float, y0: float, y1: float
) -> npt.NDArray[np.float64]:
    """Sutherland-Hodgman clipping of a ground polygon to a rectangle."""
    out = [p for p in poly]
    for axis, bound, keep_above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if not out:
            break
        clipped = []
        for i in range(len(out)):
            a, b = out[i], out[(i + 1) % len(out)]
            a_in = a[axis] >= bound if keep_above else a[axis] <= bound
            b_in = b[axis] >= bound if keep_above else b[axis] <= bound
            if a_in:
                clipped.append(a)
            if a_in != b_in:
                f = (bound - a[axis]) / (b[axis] - a[axis])
                clipped.append(a + (b - a) * f)
        out = clipped
    return np.asarray(out).reshape(-1, 3)


def _paint_words(painter: _Painter, layout: StreetLayout) -> None:
    """Words painted on the road, read by drivers coming towards them."""
    for zone in layout.zones:
        words = {"no_parking": "禁止停车", "bus_stop": "公交车站", "fire_lane": "消防通道"}.get(zone.kind)
        if words is None:
            continue
        colour = RED_PAINT if zone.kind == "fire_lane" else YELLOW
        xc = (zone.x0 + zone.x1) / 2
        yc = zone.y0 + 9.0 if zone.kind == "fire_lane" else (zone.y0 + zone.y1) / 2
        if zone.kind == "no_parking":
            yc = zone.y0 + 6.0
        facing = -1 if zone.side == "left" else 1  # in-lane drivers read it the other way up
        _ground_text(painter, words, xc, yc, 1.4, 6.0, colour, facing)


def _ground_text(
    painter: _Painter,
    text: str,
    xc: float,
    yc: float,
    width_m: float,
    length_m: float,
    colour: tuple[int, int, int],
    facing: int,
) -> None:
    """Characters stretched along the road, read from near to far by a driver travelling ``facing`` (+1: +y)."""
    from PIL import Image as PilImage
    from PIL import ImageDraw, ImageFont

    from simulators.street.plates import font_path

    cell = 96
    canvas = PilImage.new("L", (cell, cell * len(text)), 0)
    font = ImageFont.truetype(str(font_path()), size=cell - 8)
    draw = ImageDraw.Draw(canvas)
    for i, ch in enumerate(reversed(text)):  # upright glyphs, the first character at the bottom (nearest)
        draw.text((4, i * cell + 2), ch, font=font, fill=255)
    mask = np.asarray(canvas)
    h, w = mask.shape
    x0, x1 = xc - width_m / 2, xc + width_m / 2
    y0, y1 = yc - length_m / 2, yc + length_m / 2
    # Image corners (top-left, top-right, bottom-right, bottom-left) on the ground, as the reader sees them.
    if facing > 0:
        ground = np.array([[x0, y1], [x1, y1], [x1, y0], [x0, y0]], dtype=np.float64)
    else:
        ground = np.array([[x1, y0], [x0, y0], [x0, y1], [x1, y1]], dtype=np.float64)
    cam = painter.camera
    uv, depth = cam.project(np.column_stack([ground, np.zeros(4)]))
    if (depth <= NEAR_M).any():
        return
    matrix = cv2.getPerspectiveTransform(
        np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32), uv.astype(np.float32)
    )
    warped = cv2.warpPerspective(mask, matrix, (cam.width, cam.height), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(warped)
    if len(xs) == 0:
        return
    y_lo, y_hi, x_lo, x_hi = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    alpha = (warped[y_lo:y_hi, x_lo:x_hi].astype(np.float32) / 255.0)[..., None]
    roi = painter.image[y_lo:y_hi, x_lo:x_hi]
    roi[:] = (roi * (1 - alpha) + np.asarray(colour, np.float32) * alpha).astype(np.uint8)


def _paint_buildings(
    painter: _Painter, layout: StreetLayout, light: Lighting, rng: np.random.Generator
) -> None:
    warm = (90, 150, 190)
    items = sorted(layout.buildings, key=lambda b: -b.y0)
    for building in items:
        x = layout.left_pavement[0] if building.side == "left" else layout.right_pavement[1]
        depth = -25.0 if building.side == "left" else 25.0
        shade = 0.85 if building.side == "left" else 0.7
        wall = tint(building.colour, shade)
        y0, y1, h = building.y0, building.y1, building.height_m
        # The end wall towards the camera, where a building starts after a gap (or the cross street).
        painter.poly(
            np.array([[x, y0, 0], [x + depth, y0, 0], [x + depth, y0, h], [x, y0, h]]),
            tint(building.colour, 0.55),
            painter.BUILDING,
        )
        painter.poly(np.array([[x, y0, 0], [x, y1, 0], [x, y1, h], [x, y0, h]]), wall, painter.BUILDING)
        # Shop fronts on the ground floor: glass, a sign band above.
        shop_glass = (60, 55, 50)
        lit_shop = (55, 80, 100) if light.lights_on and rng.random() < 0.6 else None
        painter.poly(
            np.array([[x, y0 + 0.4, 0.15], [x, y1 - 0.4, 0.15], [x, y1 - 0.4, 2.6], [x, y0 + 0.4, 2.6]]),
            tint(shop_glass, shade),
            painter.BUILDING,
            glow=lit_shop,
        )
        painter.poly(
            np.array([[x, y0 + 0.2, 2.7], [x, y1 - 0.2, 2.7], [x, y1 - 0.2, 3.5], [x, y0 + 0.2, 3.5]]),
            tint(building.shop_colour, shade),
            painter.BUILDING,
            glow=tuple(0.5 * c for c in building.shop_colour) if light.lights_on else None,
        )
        floors = int((h - 4.0) // building.floor_m)
        columns = int((y1 - y0 - 1.0) // 3.2)
        for f in range(floors):
            z = 4.2 + f * building.floor_m
            for c in range(columns):
                wy = y0 + 1.0 + c * 3.2 + 0.6
                lit = rng.random() < light.windows_lit
                painter.poly(
                    np.array([[x, wy, z], [x, wy + 1.6, z], [x, wy + 1.6, z + 1.5], [x, wy, z + 1.5]]),
                    tint((95, 85, 75), shade),
                    painter.BUILDING,
                    glow=warm if lit else None,
                )


def _paint_fixtures(painter: _Painter, layout: StreetLayout, light: Lighting) -> None:
    """Street lamps and the traffic signal, far to near."""
    pole = (90, 95, 100)
    items: list[tuple[float, str, float]] = [(y, side, 0.0) for side, y in layout.lamp_ys]
    items.append((layout.stop_line_out_y + 0.3, "signal", 0.0))
    items.sort(key=lambda item: -item[0])
    for y, side, _ in items:
        if side == "signal":
            x_pole = layout.right_strip[1] + 0.4
            top = layout.light_height_m
            painter.box(x_pole - 0.1, x_pole + 0.1, y - 0.1, y + 0.1, 0.0, top + 0.3, pole)
            painter.box(layout.light_x, x_pole, y - 0.06, y + 0.06, top + 0.1, top + 0.22, pole)
            painter.box(
                layout.light_x - 0.18, layout.light_x + 0.18, y - 0.15, y + 0.15, top - 1.0, top, (30, 30, 32)
            )
            for k in range(3):  # the dark lamps; the lit one is drawn every frame
                zc = top - 0.2 - 0.3 * k
                disc = [
                    (layout.light_x + 0.1 * math.cos(a), y - 0.16, zc + 0.1 * math.sin(a))
                    for a in np.linspace(0, 2 * math.pi, 12, endpoint=False)
                ]
                painter.poly(np.asarray(disc), (45, 45, 50), painter.FIXTURE)
            # The other direction's signal, seen from behind across the road.
            x_far = layout.left_strip[0] - 0.4
            y_far = layout.stop_line_in_y + 0.3
            painter.box(x_far - 0.1, x_far + 0.1, y_far - 0.1, y_far + 0.1, 0.0, top + 0.3, pole)
            painter.box(x_far, layout.lane_in.centre, y_far - 0.06, y_far + 0.06, top + 0.1, top + 0.22, pole)
            painter.box(
                layout.lane_in.centre - 0.18,
                layout.lane_in.centre + 0.18,
                y_far - 0.15,
                y_far + 0.15,
                top - 1.0,
                top,
                (30, 30, 32),
            )
            continue
        # Right-hand poles stand at the back of the pavement: nothing on the street is ever behind them.
        x_pole = layout.left_pavement[1] - 0.5 if side == "left" else layout.right_pavement[1] - 0.6
        head_x = lamp_head_x(layout, side)
        painter.box(x_pole - 0.09, x_pole + 0.09, y - 0.09, y + 0.09, 0.0, 8.0, pole)
        lo, hi = sorted((x_pole, head_x))
        painter.box(lo, hi, y - 0.05, y + 0.05, 7.9, 8.0, pole)
        painter.box(head_x - 0.35, head_x + 0.35, y - 0.15, y + 0.15, 7.75, 7.9, (70, 70, 75))
        if light.lamps > 0:
            under = np.array(
                [
                    [head_x - 0.3, y - 0.12, 7.74],
                    [head_x + 0.3, y - 0.12, 7.74],
                    [head_x + 0.3, y + 0.12, 7.74],
                    [head_x - 0.3, y + 0.12, 7.74],
                ]
            )
            painter.poly(under, (200, 230, 250), painter.EMISSIVE, glow=(180, 220, 250))


def _wet_reflections(image: Image, camera: StreetCamera, layout: StreetLayout) -> None:
    """Lamps mirrored in a wet road: soft vertical streaks below each lamp's foot."""
    layer = np.zeros(image.shape[:2], dtype=np.float32)
    for side, y in layout.lamp_ys:
        head = np.array([[lamp_head_x(layout, side), y, 0.0]])
        uv, depth = camera.project(head)
        if depth[0] <= NEAR_M:
            continue
        width = camera.focal * 0.5 / float(depth[0])
        length = camera.focal * 2.5 / float(depth[0])
        cv2.ellipse(
            layer,
            (int(uv[0, 0]), int(uv[0, 1] + length * 0.3)),
            (max(1, int(width)), max(1, int(length))),
            0,
            0,
            360,
            1.0,
            -1,
        )
    blurred = cv2.GaussianBlur(layer, (0, 0), max(2.0, camera.width / 300))
    add = np.asarray(blurred, dtype=np.float32)[..., None] * np.array([60, 90, 110], dtype=np.float32)
    np.copyto(image, np.clip(image.astype(np.float32) + add, 0, 255).astype(np.uint8))
