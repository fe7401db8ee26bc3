"""The still: one evidence frame with what the analyzer saw drawn on it, as a JPEG.

Coordinates in an :class:`Overlay` are the camera's pixels (the calibration's); the renderer scales them
to the frame it draws on. Privacy is applied by the caller first, so the drawing stays sharp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Point = tuple[float, float]

TRACK_COLOUR = (0, 0, 255)  # BGR: red dots where the object was seen
CURVE_COLOUR = (0, 255, 255)  # yellow: the fitted fall
ORIGIN_COLOUR = (255, 0, 255)  # magenta: the origin window
TEXT_COLOUR = (255, 255, 255)


@dataclass(frozen=True, slots=True)
class Overlay:
    points: tuple[Point, ...] = ()  # tracked positions
    curve: tuple[Point, ...] = ()  # the fitted trajectory, release to impact
    origin: tuple[Point, ...] = ()  # the origin window's outline (a polygon)
    label: str = ""  # e.g. "floor 12, column 3 (0.87)"
    caption: str = ""  # a second line: time, fall height

    @property
    def corridor(self) -> list[list[Point]]:
        """The lines the privacy blur leaves sharp: the path and the curve."""
        return [list(line) for line in (self.points, self.curve) if line]


@dataclass(frozen=True, slots=True)
class EncodedStill:
    jpeg: bytes
    width: int
    height: int


def _pixels(points: Sequence[Point], sx: float, sy: float, limit: float) -> np.ndarray:
    array = np.array([[u * sx, v * sy] for u, v in points], np.float64)
    # Curves may run far outside the frame (the fit extrapolates): clip so int32 drawing stays sane.
    return np.round(np.clip(array, -limit, limit)).astype(np.int32)


def draw_overlay(image: np.ndarray, overlay: Overlay, frame_size: tuple[int, int]) -> np.ndarray:
    """Draw ``overlay`` (camera pixels of a ``frame_size`` frame) on ``image`` in place."""
    height, width = image.shape[:2]
    sx, sy = width / frame_size[0], height / frame_size[1]
    limit = 4.0 * max(width, height)
    thickness = max(1, round(width / 480))
    if overlay.origin:
        polygon = _pixels(overlay.origin, sx, sy, limit)
        tinted = image.copy()
        cv2.fillPoly(tinted, [polygon], ORIGIN_COLOUR)
        cv2.addWeighted(tinted, 0.25, image, 0.75, 0, dst=image)
        cv2.polylines(image, [polygon], True, ORIGIN_COLOUR, thickness + 1, cv2.LINE_AA)
    if len(overlay.curve) >= 2:
        cv2.polylines(
            image, [_pixels(overlay.curve, sx, sy, limit)], False, CURVE_COLOUR, thickness, cv2.LINE_AA
        )
    radius = max(2, thickness + 1)
    for u, v in _pixels(overlay.points, sx, sy, limit) if overlay.points else []:
        cv2.circle(image, (int(u), int(v)), radius, TRACK_COLOUR, -1, cv2.LINE_AA)
    scale = max(0.4, width / 1600)
    y = 0
    for line in (overlay.label, overlay.caption):
        if not line:
            continue
        (text_w, text_h), base = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.rectangle(image, (0, y), (text_w + 12, y + text_h + base + 10), (0, 0, 0), -1)
        cv2.putText(
            image,
            line,
            (6, y + text_h + 5),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            TEXT_COLOUR,
            thickness,
            cv2.LINE_AA,
        )
        y += text_h + base + 10
    return image


def encode_still(image: np.ndarray, *, width: int, quality: int) -> EncodedStill:
    """``image`` scaled down to ``width`` (never up) as a JPEG."""
    if image.shape[1] > width:
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the still as JPEG")
    return EncodedStill(buffer.tobytes(), image.shape[1], image.shape[0])
