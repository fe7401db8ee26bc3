"""Synthetic facade frames drawn with numpy/OpenCV: a textured wall with a window grid, sensor noise,
optional camera shake, and one small dark object following a scripted path.

The building: 10 floors of 3 m; floor n's base is the image row ``460 - 40 (n - 1)`` (0.075 m per pixel,
camera upright), window columns between x = 120, 220, ..., 520.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from edge.facade.ballistic import model_height
from edge.facade.config import FacadeConfig

WIDTH, HEIGHT = 640, 480
FPS = 25.0
FLOOR_PX = 40
GROUND_Y = 460
METRES_PER_PX = 3.0 / FLOOR_PX

Path = Callable[[float], tuple[float, float] | None]


def scene_config(**overrides: Any) -> FacadeConfig:
    raw: dict[str, Any] = {
        "camera": {"source": {"kind": "stream", "url": "rtsp://cam"}, "width": WIDTH, "height": HEIGHT},
        "building": {"floors": 10, "floor_height_m": 3.0},
        "calibration": {"method": "floor_lines", "lines": [GROUND_Y - FLOOR_PX * i for i in range(11)]},
        "columns": {"x_px": [120, 220, 320, 420, 520]},
    }
    raw.update(overrides)
    return FacadeConfig.model_validate(raw)


def facade_background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wall = cv2.GaussianBlur(rng.integers(90, 200, (HEIGHT, WIDTH)).astype(np.uint8), (0, 0), 2)
    for floor in range(11):
        top = GROUND_Y - FLOOR_PX * floor
        for column in range(5):
            left = 130 + 100 * column
            cv2.rectangle(wall, (left, top + 10 - FLOOR_PX), (left + 70, top - 12), 60, -1)
    return cv2.cvtColor(wall, cv2.COLOR_GRAY2BGR)


def pixel_of(height_m: float, u: float) -> tuple[float, float]:
    return u, GROUND_Y - height_m / METRES_PER_PX


def falling(release_t: float, release_h_m: float, u: float, vt: float = math.inf) -> Path:
    """Dropped at rest at (u, release height) at ``release_t``; gone below the frame."""

    def path(t: float) -> tuple[float, float] | None:
        if t < release_t:
            return None
        h = float(model_height(np.array([t]), release_t, release_h_m, vt)[0])
        point = pixel_of(h, u)
        return point if point[1] < HEIGHT + 6 else None

    return path


def hidden(path: Path, start_t: float, end_t: float) -> Path:
    """``path``, unseen between start_t and end_t (behind a balcony, against a dark window)."""
    return lambda t: None if start_t <= t < end_t else path(t)


def sideways(start_t: float, speed_mps: float, height_m: float) -> Path:
    def path(t: float) -> tuple[float, float] | None:
        if t < start_t:
            return None
        u = 40 + speed_mps / METRES_PER_PX * (t - start_t)
        return pixel_of(height_m, u) if u < WIDTH - 40 else None

    return path


def frames(
    path: Path | list[Path],
    *,
    seconds: float,
    seed: int = 0,
    radius_px: float = 3.0,
    shake_px: float = 0.0,
    lights: bool = False,
    brighten_at_s: float | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """(t, BGR frame) at FPS: the wall, noise, the object(s); ``shake_px`` jitters the whole view randomly,
    ``lights`` switches a window's light on and off every half second, ``brighten_at_s`` lifts the whole
    view by 40 grey levels from then on (the sun out of a cloud, the camera's exposure)."""
    paths = path if isinstance(path, list) else [path]
    rng = np.random.default_rng(seed + 1)
    wall = facade_background(seed)
    for index in range(int(seconds * FPS)):
        t = index / FPS
        image = wall.copy()
        if brighten_at_s is not None and t >= brighten_at_s:
            image = cv2.add(image, np.full_like(image, 40))
        if lights and int(t * 2) % 2 == 1:
            cv2.rectangle(image, (232, 308), (288, 322), (230, 230, 230), -1)
        for point in (each(t) for each in paths):
            if point is not None:
                centre = (round(point[0] * 4), round(point[1] * 4))
                cv2.circle(
                    image, centre, round(radius_px * 4), (25, 25, 25), -1, lineType=cv2.LINE_AA, shift=2
                )
        if shake_px > 0:
            dx, dy = rng.uniform(-shake_px, shake_px, 2)
            shift = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float32)
            image = cv2.warpAffine(image, shift, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT)
        noise = rng.integers(-3, 4, image.shape[:2], dtype=np.int16)[..., None]
        yield t, np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
