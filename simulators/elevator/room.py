"""The elevator car and its landing: procedural textures and a ray-cast, lit background.

The background is computed once per camera (rides keep the camera still) as two images, door
closed and landing seen through a fully open door, plus the per-pixel door coordinate that decides,
for any opening fraction, which of the two a pixel shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from simulators.elevator.camera import Camera, FloatArray

# BGR uint8 pictures (typed loosely: OpenCV's stubs return generic arrays).
Image = npt.NDArray[Any]
PIXELS_PER_METRE = 120

WALL_STYLES = ("steel", "steel", "wood", "painted", "patterned", "mirror_steel")
FLOOR_STYLES = ("tiles", "marble", "rubber", "carpet", "steel_plate")
LANDING_STYLES = ("painted", "tiles_wall", "concrete")


@dataclass(frozen=True)
class Car:
    """Car geometry, door and look (all seeded)."""

    width: float
    depth: float
    height: float
    door_center_x: float
    door_width: float
    door_height: float
    door_center_opening: bool
    wall_style: str
    floor_style: str
    landing_style: str
    wall_tint: tuple[float, float, float]
    floor_tint: tuple[float, float, float]
    landing_tint: tuple[float, float, float]
    light_strength: float
    ambient: float
    landing_light: float
    posters: int
    texture_seed: int
    landing_depth: float = 2.5

    def door_open_mask(self, door_x: FloatArray, opening: float) -> npt.NDArray[np.bool_]:
        """Which door-plane points are open for an opening fraction in 0..1 (door_x is inf off the door)."""
        if opening <= 0:
            return np.zeros(door_x.shape, dtype=bool)
        if self.door_center_opening:
            return np.abs(door_x - self.door_center_x) < opening * self.door_width / 2
        left = self.door_center_x - self.door_width / 2
        return (door_x > left) & (door_x < left + opening * self.door_width)


def random_car(rng: np.random.Generator) -> Car:
    width = float(rng.uniform(1.4, 2.1))
    door_width = float(min(width - 0.3, rng.uniform(0.8, 1.1)))
    slack = (width - door_width) / 2 - 0.1
    return Car(
        width=width,
        depth=float(rng.uniform(1.4, 2.4)),
        height=float(rng.uniform(2.2, 2.5)),
        door_center_x=float(width / 2 + rng.uniform(-slack, slack)),
        door_width=door_width,
        door_height=float(rng.uniform(1.95, 2.15)),
        door_center_opening=bool(rng.random() < 0.6),
        wall_style=str(rng.choice(WALL_STYLES)),
        floor_style=str(rng.choice(FLOOR_STYLES)),
        landing_style=str(rng.choice(LANDING_STYLES)),
        wall_tint=_tint(rng, 0.15),
        floor_tint=_tint(rng, 0.3),
        landing_tint=_tint(rng, 0.3),
        light_strength=float(rng.uniform(0.55, 1.0)),
        ambient=float(rng.uniform(0.25, 0.55)),
        landing_light=float(rng.uniform(0.35, 1.0)),
        posters=int(rng.integers(0, 4)),
        texture_seed=int(rng.integers(0, 2**31)),
    )


def _tint(rng: np.random.Generator, spread: float) -> tuple[float, float, float]:
    values = 1 + rng.uniform(-spread, spread, 3)
    return (float(values[0]), float(values[1]), float(values[2]))


# ----------------------------------------------------------------------------------------- textures


def _noise(rng: np.random.Generator, height: int, width: int, blur: tuple[int, int]) -> FloatArray:
    raw = rng.normal(0, 1, (height, width)).astype(np.float32)
    smooth = cv2.blur(raw, blur) if blur != (1, 1) else raw
    return np.asarray(smooth / (smooth.std() + 1e-6), dtype=np.float64)


def _colour_image(base: FloatArray, colour: tuple[float, float, float]) -> FloatArray:
    return np.clip(base[..., None] * np.asarray(colour)[None, None, :], 0, 255)


def wall_texture(rng: np.random.Generator, style: str, height: int, width: int, tint: tuple) -> FloatArray:
    """BGR float texture of a car wall, ``PIXELS_PER_METRE`` pixels per metre."""
    if style in ("steel", "mirror_steel"):
        streaks = _noise(rng, height, width, (1, 61))
        level = float(rng.uniform(120, 190))
        base = level + 6 * streaks + 25 * np.sin(np.linspace(0, rng.uniform(3, 9), width))[None, :]
        if style == "mirror_steel":
            base += 40 * _noise(rng, height, width, (25, 25))
        image = _colour_image(base, (1.0, 1.0, 1.02))
        panel = int(rng.uniform(0.35, 0.6) * PIXELS_PER_METRE)
        image[:, ::panel] *= 0.55
        image[:, 1::panel] *= 0.75
    elif style == "wood":
        grain = _noise(rng, height, width, (41, 2))
        base = rng.uniform(110, 170) + 9 * grain
        image = _colour_image(base, (0.55, 0.75, 1.0))
        plank = int(rng.uniform(0.2, 0.4) * PIXELS_PER_METRE)
        image[:, ::plank] *= 0.6
    elif style == "patterned":
        base = rng.uniform(140, 200) + 6 * _noise(rng, height, width, (3, 3))
        colour = rng.uniform(0.6, 1.0, 3)
        image = _colour_image(base, (float(colour[0]), float(colour[1]), float(colour[2])))
        step = int(rng.uniform(0.08, 0.2) * PIXELS_PER_METRE)
        for y in range(step // 2, height, step):
            for x in range(step // 2 + (y // step % 2) * step // 2, width, step):
                cv2.circle(image, (x, y), max(2, step // 5), (image[y, x] * 0.7).tolist(), -1)
    else:
        base = rng.uniform(150, 220) + 5 * _noise(rng, height, width, (5, 5))
        paint = rng.uniform(0.55, 1.0, 3)
        image = _colour_image(base, (float(paint[0]), float(paint[1]), float(paint[2])))
    # Handrail: a bright horizontal bar at about 0.9 m.
    if rng.random() < 0.6:
        rail = height - int(rng.uniform(0.85, 1.0) * PIXELS_PER_METRE)
        thickness = max(2, PIXELS_PER_METRE // 25)
        image[rail : rail + thickness] = rng.uniform(170, 240)
        image[rail + thickness : rail + 2 * thickness] *= 0.5
    return image * np.asarray(tint)[None, None, :]


def floor_texture(rng: np.random.Generator, style: str, height: int, width: int, tint: tuple) -> FloatArray:
    if style == "tiles":
        base = rng.uniform(90, 200) + 10 * _noise(rng, height, width, (9, 9))
        colour = rng.uniform(0.6, 1.0, 3)
        image = _colour_image(base, (float(colour[0]), float(colour[1]), float(colour[2])))
        step = int(rng.uniform(0.25, 0.6) * PIXELS_PER_METRE)
        if rng.random() < 0.5:
            for y in range(0, height, step):
                for x in range(((y // step) % 2) * step, width, 2 * step):
                    image[y : y + step, x : x + step] *= 0.7
        image[::step] *= 0.5
        image[:, ::step] *= 0.5
    elif style == "marble":
        veins = np.abs(
            np.sin(6 * _noise(rng, height, width, (21, 21)) + 3 * _noise(rng, height, width, (5, 5)))
        )
        base = rng.uniform(100, 200) + 40 * veins
        colour = rng.uniform(0.7, 1.0, 3)
        image = _colour_image(base, (float(colour[0]), float(colour[1]), float(colour[2])))
    elif style == "rubber":
        base = rng.uniform(40, 90) + 6 * _noise(rng, height, width, (3, 3))
        image = _colour_image(base, (1.0, 1.0, 1.0))
        step = max(6, PIXELS_PER_METRE // 10)
        for y in range(step // 2, height, step):
            for x in range(step // 2, width, step):
                cv2.circle(image, (x, y), step // 4, (image[y, x] * 1.4).tolist(), -1)
    elif style == "carpet":
        base = rng.uniform(70, 150) + 20 * _noise(rng, height, width, (2, 2))
        wool = (float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.9, 1.3)))
        image = _colour_image(base, wool)
        border = int(0.12 * PIXELS_PER_METRE)
        image[:border] *= 0.6
        image[-border:] *= 0.6
        image[:, :border] *= 0.6
        image[:, -border:] *= 0.6
    else:
        base = rng.uniform(110, 180) + 10 * _noise(rng, height, width, (1, 31))
        image = _colour_image(base, (1.0, 1.0, 1.0))
        step = max(8, PIXELS_PER_METRE // 8)
        for y in range(0, height, step):
            for x in range((y // step % 2) * step // 2, width, step):
                cv2.line(image, (x, y), (x + step // 3, y + step // 3), (image[y, x] * 1.3).tolist(), 2)
    return image * np.asarray(tint)[None, None, :]


def add_posters(rng: np.random.Generator, image: FloatArray, count: int) -> None:
    """Notices and adverts stuck on a wall: coloured blocks and text."""
    height, width = image.shape[:2]
    for _ in range(count):
        w = int(rng.uniform(0.3, 0.7) * PIXELS_PER_METRE)
        h = int(w * rng.uniform(1.0, 1.5))
        if w >= width - 4 or h >= height - 4:
            continue
        x = int(rng.integers(0, width - w))
        y = int(
            rng.integers(
                int(0.2 * height), max(int(0.2 * height) + 1, height - h - int(0.7 * PIXELS_PER_METRE))
            )
        )
        y = min(y, height - h)
        poster = np.empty((h, w, 3), dtype=np.uint8)
        poster[:] = rng.uniform(80, 255, 3).astype(np.uint8)
        for _ in range(int(rng.integers(2, 6))):
            bx, by = int(rng.integers(0, w - 4)), int(rng.integers(0, h - 4))
            bw, bh = int(rng.integers(4, max(5, w // 2))), int(rng.integers(4, max(5, h // 3)))
            poster[by : by + bh, bx : bx + bw] = rng.uniform(0, 255, 3).astype(np.uint8)
        for line in range(int(rng.integers(1, 4))):
            text = "".join(rng.choice(list("ABCDEFGHKLMNPRSTUVXZ0123456789 "), int(rng.integers(4, 9))))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.putText(poster, text, (3, 12 + line * 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1)
        image[y : y + h, x : x + w] = poster


def control_panel(rng: np.random.Generator, image: FloatArray, x: int) -> None:
    """Floor buttons and a display on the wall beside the door."""
    height = image.shape[0]
    width = int(0.18 * PIXELS_PER_METRE)
    top = height - int(1.6 * PIXELS_PER_METRE)
    bottom = height - int(0.9 * PIXELS_PER_METRE)
    x = int(np.clip(x, 0, image.shape[1] - width))
    image[top:bottom, x : x + width] = rng.uniform(150, 220)
    image[top : top + 12, x + 3 : x + width - 3] = (30, 30, 30)
    image[top + 3 : top + 9, x + 6 : x + 16] = (40, 200, 60)
    for row in range(top + 20, bottom - 6, 11):
        for col in (x + 6, x + width - 8):
            cv2.circle(image, (col, row), 3, (80, 80, 80), -1)


# ----------------------------------------------------------------------------------------- ray casting


@dataclass(eq=False)
class Background:
    """Lit background of one car seen by one camera."""

    closed: Image
    open: Image
    # x coordinate on the door plane for pixels whose ray hits the door opening, else inf.
    door_x: FloatArray
    floor_points: FloatArray = field(repr=False)
    _masks: dict[float, npt.NDArray[np.bool_]] = field(default_factory=dict, repr=False)

    def compose(self, car: Car, opening: float) -> tuple[Image, npt.NDArray[np.bool_]]:
        """The background for an opening fraction and the mask of pixels seen through the door."""
        key = round(opening, 2)
        through = self._masks.get(key)
        if through is None:
            through = car.door_open_mask(self.door_x, key)
            if len(self._masks) < 128:
                self._masks[key] = through
        if not through.any():
            return self.closed.copy(), through
        image = self.closed.copy()
        np.copyto(image, self.open, where=through[..., None])
        return image, through


def _box_exit(origin: FloatArray, directions: FloatArray, low: FloatArray, high: FloatArray) -> tuple:
    """Distance to, and axis/side of, the wall where rays from inside an axis-aligned box leave it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t_high = (high - origin) / directions
        t_low = (low - origin) / directions
    t_axis = np.where(directions > 0, t_high, np.where(directions < 0, t_low, np.inf))
    t_axis = np.where(np.isfinite(t_axis) & (t_axis >= 0), t_axis, np.inf)
    axis = np.argmin(t_axis, axis=-1)
    distance = np.take_along_axis(t_axis, axis[..., None], axis=-1)[..., 0]
    positive = np.take_along_axis(directions, axis[..., None], axis=-1)[..., 0] > 0
    return distance, axis, positive


def _sample(texture: FloatArray, a: FloatArray, b: FloatArray, mask: npt.NDArray[np.bool_]) -> FloatArray:
    """Texture values at plane coordinates (metres) a (columns) and b (rows) for masked pixels."""
    h, w = texture.shape[:2]
    cols = np.clip((a[mask] * PIXELS_PER_METRE).astype(np.int64), 0, w - 1)
    rows = np.clip((b[mask] * PIXELS_PER_METRE).astype(np.int64), 0, h - 1)
    return texture[rows, cols]


def _shade(
    points: FloatArray, normals: FloatArray, light: FloatArray, strength: float, ambient: float
) -> FloatArray:
    to_light = light - points
    distance = np.linalg.norm(to_light, axis=-1)
    cosine = np.clip(np.sum(to_light * normals, axis=-1) / np.maximum(distance, 1e-6), 0, 1)
    return ambient + strength * (0.35 + cosine) / (1 + 0.35 * distance * distance)


def render_background(car: Car, camera: Camera) -> Background:
    rng = np.random.default_rng(car.texture_seed)
    ppm = PIXELS_PER_METRE
    W, D, H = car.width, car.depth, car.height
    size = lambda a, b: (int(b * ppm) + 2, int(a * ppm) + 2)  # noqa: E731 - (rows, cols) of a plane
    textures = {
        "side": wall_texture(rng, car.wall_style, *size(D, H), car.wall_tint),
        "back": wall_texture(rng, car.wall_style, *size(W, H), car.wall_tint),
        "front": wall_texture(rng, "steel", *size(W, H), car.wall_tint),
        "floor": floor_texture(rng, car.floor_style, *size(W, D), car.floor_tint),
    }
    ceiling = _colour_image(np.full(size(W, D), rng.uniform(180, 240)), (1.0, 1.0, 1.0))
    lx0, lx1 = int((W / 2 - 0.35) * ppm), int((W / 2 + 0.35) * ppm)
    lz0, lz1 = int((D / 2 - 0.3) * ppm), int((D / 2 + 0.3) * ppm)
    ceiling[lz0:lz1, lx0:lx1] = 255 * 3
    textures["ceiling"] = ceiling
    add_posters(rng, textures["side"], car.posters)
    add_posters(rng, textures["back"], int(rng.integers(0, 2)))
    control_panel(rng, textures["front"], int((car.door_center_x + car.door_width / 2 + 0.08) * ppm))
    # Door frame and panels on the front wall.
    front = textures["front"]
    dl = int((car.door_center_x - car.door_width / 2) * ppm)
    dr = int((car.door_center_x + car.door_width / 2) * ppm)
    dt = front.shape[0] - int(car.door_height * ppm)
    frame = max(3, ppm // 20)
    front[max(0, dt - frame) :, max(0, dl - frame) : dr + frame] *= 0.7
    door_panel = wall_texture(rng, "steel", front.shape[0] - dt, dr - dl, (1.0, 1.0, 1.0))
    door_panel *= rng.uniform(0.8, 1.1)
    front[dt:, dl:dr] = door_panel[: front.shape[0] - dt, : dr - dl]
    if car.door_center_opening:
        mid = (dl + dr) // 2
        front[dt:, mid - 1 : mid + 1] *= 0.3

    origin = camera.position
    directions = camera.ray_directions()
    distance, axis, positive = _box_exit(origin, directions, np.zeros(3), np.array([W, H, D]))
    points = origin + directions * distance[..., None]
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    image = np.zeros(points.shape, dtype=np.float64)
    normals = np.zeros(points.shape, dtype=np.float64)
    planes = {
        "floor": (axis == 1) & ~positive,
        "ceiling": (axis == 1) & positive,
        "left": (axis == 0) & ~positive,
        "right": (axis == 0) & positive,
        "back": (axis == 2) & ~positive,
        "front": (axis == 2) & positive,
    }
    image[planes["floor"]] = _sample(textures["floor"], x, z, planes["floor"])
    normals[planes["floor"]] = (0, 1, 0)
    image[planes["ceiling"]] = _sample(textures["ceiling"], x, z, planes["ceiling"])
    normals[planes["ceiling"]] = (0, -1, 0)
    image[planes["left"]] = _sample(textures["side"], z, H - y, planes["left"])
    normals[planes["left"]] = (1, 0, 0)
    image[planes["right"]] = _sample(textures["side"][:, ::-1], D - z, H - y, planes["right"])
    normals[planes["right"]] = (-1, 0, 0)
    image[planes["back"]] = _sample(textures["back"], W - x, H - y, planes["back"])
    normals[planes["back"]] = (0, 0, 1)
    image[planes["front"]] = _sample(textures["front"], x, H - y, planes["front"])
    normals[planes["front"]] = (0, 0, -1)
    light = np.array([W / 2, H - 0.05, D / 2])
    shade = _shade(points, normals, light, car.light_strength * 2.2, car.ambient)
    shade[planes["ceiling"]] = 0.6 + 0.4 * car.light_strength
    closed = image * shade[..., None]

    in_door = planes["front"] & (np.abs(x - car.door_center_x) < car.door_width / 2) & (y < car.door_height)
    door_x = np.where(in_door, x, np.inf)
    open_image = closed.copy()
    if in_door.any():
        open_image[in_door] = _landing(rng, car, points[in_door], directions[in_door])

    return Background(
        closed=np.clip(closed, 0, 255).astype(np.uint8),
        open=np.clip(open_image, 0, 255).astype(np.uint8),
        door_x=door_x,
        floor_points=points,
    )


def _landing(rng: np.random.Generator, car: Car, origins: FloatArray, directions: FloatArray) -> FloatArray:
    """Colours of the landing outside the door for rays leaving through the opening."""
    ppm = PIXELS_PER_METRE
    low = np.array([car.door_center_x - 3.0, 0.0, car.depth])
    high = np.array([car.door_center_x + 3.0, car.height + 0.4, car.depth + car.landing_depth])
    distance, axis, positive = _box_exit(origins, directions, low, high)
    points = origins + directions * distance[..., None]
    x, y, z = points[:, 0] - low[0], points[:, 1], points[:, 2] - car.depth
    wall = wall_texture(
        rng,
        "painted" if car.landing_style != "tiles_wall" else "patterned",
        int(3 * ppm),
        int(6 * ppm),
        car.landing_tint,
    )
    add_posters(rng, wall, int(rng.integers(0, 3)))
    floor = floor_texture(
        rng,
        "tiles" if car.landing_style != "concrete" else "steel_plate",
        int(car.landing_depth * ppm) + 2,
        int(6 * ppm),
        car.landing_tint,
    )
    colours = np.zeros(points.shape)
    normals = np.zeros(points.shape)
    is_floor = (axis == 1) & ~positive
    is_ceiling = (axis == 1) & positive
    is_back = axis == 2
    is_side = axis == 0
    colours[is_floor] = _sample(floor, x, z, is_floor)
    normals[is_floor] = (0, 1, 0)
    colours[is_ceiling] = 200
    normals[is_ceiling] = (0, -1, 0)
    colours[is_back] = _sample(wall, x, car.height + 0.4 - y, is_back)
    normals[is_back] = (0, 0, -1)
    colours[is_side] = _sample(wall, z, car.height + 0.4 - y, is_side)
    normals[is_side] = np.where(positive[is_side, None], -1.0, 1.0) * np.array([1.0, 0, 0])
    light = np.array([car.door_center_x, car.height + 0.3, car.depth + car.landing_depth / 2])
    shade = _shade(points, normals, light, car.landing_light * 2.0, 0.2 + 0.3 * car.landing_light)
    return colours * shade[:, None]
