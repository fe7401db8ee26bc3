"""Synthetic camera frames for the evidence tests: a textured facade, stamped with the frame's time."""

from __future__ import annotations

from functools import cache

import numpy as np

WIDTH, HEIGHT = 1920, 1080
FPS = 25.0
STAMP_PX = 96  # the stamp's side at 1920 wide: still 16 px in a 320-wide clip


def facade_frame(t: float, *, size: tuple[int, int] = (WIDTH, HEIGHT), seed: int = 0) -> np.ndarray:
    """A window grid with fine texture (JPEG sizes like a real facade's) and, in the top-left corner,
    a flat grey stamp saying which frame this is (``stamp_value``)."""
    image = _facade(size, seed).copy()
    side = STAMP_PX * size[0] // WIDTH
    image[:side, :side] = stamp_value(t)
    return image


def stamp_value(t: float) -> int:
    """Four grey levels per 25 fps frame, so neighbouring kept frames differ by eight (wraps at 256)."""
    return (round(t * FPS) * 4) % 256


def read_stamp(image: np.ndarray) -> int:
    side = STAMP_PX * image.shape[1] // WIDTH
    inner = image[side // 4 : side * 3 // 4, side // 4 : side * 3 // 4]
    return round(float(inner.mean()))


def stamp_matches(image: np.ndarray, t: float, tolerance: int = 3) -> bool:
    difference = abs(read_stamp(image) - stamp_value(t)) % 256
    return min(difference, 256 - difference) <= tolerance


@cache
def _facade(size: tuple[int, int], seed: int) -> np.ndarray:
    width, height = size
    rng = np.random.default_rng(seed)
    image = rng.integers(90, 140, (height, width, 1), dtype=np.uint8).repeat(3, axis=2)
    image[:, :, 0] //= 2  # a warm facade, not grey
    step_x, step_y = width // 12, height // 10
    for y in range(step_y // 3, height, step_y):
        for x in range(step_x // 4, width, step_x):
            image[y : y + step_y // 2, x : x + step_x // 2] = (60, 50, 40)
    image.flags.writeable = False
    return image
