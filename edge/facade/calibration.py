"""Pixels <-> metres on the facade plane, and the floor and window column of a facade position.

Facade coordinates: ``x`` metres across the facade, ``h`` metres above the ground floor's base.

* Four points: a homography (``cv2.getPerspectiveTransform``) maps the image to the facade plane exactly,
  perspective included.
* Floor lines: each listed floor's base is a line in the image; height is interpolated linearly between
  the two lines around a pixel (and extrapolated from the nearest pair outside them). These lines say
  nothing about x, so x is approximate: pixels from the frame centre times the local metres per pixel
  (floor height over the floor's pixel height there), good enough for lateral speeds and jitter. Window
  columns for this method are given in image x and looked up in pixels.

With ``parallax`` (the camera's position), positions are on the plane ``object_distance_m`` in front of
the facade instead of on the facade itself: each facade point is moved along its camera ray, a scaling
about the camera by ``(D - d) / D`` (see ParallaxConfig).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.facade.config import (
    BuildingConfig,
    ColumnsConfig,
    FacadeConfig,
    FloorLinesCalibration,
    ParallaxConfig,
)

FloatArray = np.ndarray


@dataclass(frozen=True, slots=True)
class FloorEstimate:
    floor: int
    confidence: float  # probability that the height lies within this floor, given its uncertainty


class Floors:
    """The building's floor bases in metres, and the floor a height belongs to (the building's numbering)."""

    def __init__(self, building: BuildingConfig) -> None:
        self.building = building
        self.numbers = list(range(building.ground_floor_number, building.top_floor + 1))
        self.bases_m = np.array([building.base_height_m(f) for f in [*self.numbers, building.top_floor + 1]])

    def floor_at(self, height_m: float) -> int:
        """Floor containing ``height_m``; below ground -> ground floor, above the roof -> top floor."""
        index = int(np.searchsorted(self.bases_m[1:-1], height_m, side="right"))
        return self.numbers[index]

    def estimate(self, height_m: float, sigma_m: float) -> FloorEstimate:
        """The floor and the probability mass of N(height, sigma) inside it (end floors open-ended)."""
        floor = self.floor_at(height_m)
        index = floor - self.building.ground_floor_number
        low = -math.inf if index == 0 else float(self.bases_m[index])
        high = math.inf if index == len(self.numbers) - 1 else float(self.bases_m[index + 1])
        sigma = max(sigma_m, 1e-6)

        def cdf(value: float) -> float:
            if math.isinf(value):
                return 0.0 if value < 0 else 1.0
            return 0.5 * (1.0 + math.erf((value - height_m) / (sigma * math.sqrt(2.0))))

        return FloorEstimate(floor=floor, confidence=cdf(high) - cdf(low))


class FacadeCalibration:
    """Maps image pixels to facade metres and back, and names floors and columns."""

    def __init__(
        self,
        *,
        floors: Floors,
        homography: FloatArray | None = None,
        lines: FloatArray | None = None,
        line_heights_m: FloatArray | None = None,
        frame_width: int = 1920,
        columns: ColumnsConfig | None = None,
        parallax: ParallaxConfig | None = None,
    ) -> None:
        if (homography is None) == (lines is None):
            raise ValueError("give a homography or floor lines")
        self.floors = floors
        self.columns = columns
        self.frame_width = frame_width
        self.parallax = parallax
        # Facade plane -> the plane where objects fall: scale about the camera by this factor.
        self._depth_scale = (
            (parallax.camera_distance_m - parallax.object_distance_m) / parallax.camera_distance_m
            if parallax is not None
            else 1.0
        )
        self._h = homography
        self._h_inv = np.linalg.inv(homography) if homography is not None else None
        # Floor lines as y = a + b * x, one row per line, lowest floor first.
        self._lines = lines
        self._line_heights = line_heights_m

    @classmethod
    def from_config(cls, config: FacadeConfig) -> FacadeCalibration:
        floors = Floors(config.building)
        calibration = config.calibration
        if isinstance(calibration, FloorLinesCalibration):
            rows = []
            for line in calibration.lines:
                if isinstance(line, (int, float)):
                    rows.append((float(line), 0.0))
                else:
                    (x1, y1), (x2, y2) = line
                    slope = (y2 - y1) / (x2 - x1) if x2 != x1 else 0.0
                    rows.append((y1 - slope * x1, slope))
            first = config.first_line_floor
            heights = [config.building.base_height_m(first + i) for i in range(len(rows))]
            return cls(
                floors=floors,
                lines=np.array(rows, dtype=np.float64),
                line_heights_m=np.array(heights, dtype=np.float64),
                frame_width=config.camera.width,
                columns=config.columns,
                parallax=config.parallax,
            )
        pixels = np.array([p.pixel for p in calibration.points], dtype=np.float32)
        facade = np.array([p.facade for p in calibration.points], dtype=np.float32)
        homography = cv2.getPerspectiveTransform(pixels, facade).astype(np.float64)
        return cls(
            floors=floors,
            homography=homography,
            frame_width=config.camera.width,
            columns=config.columns,
            parallax=config.parallax,
        )

    # -- pixels <-> metres ------------------------------------------------------------------------
    def to_facade(self, u: FloatArray | float, v: FloatArray | float) -> tuple[FloatArray, FloatArray]:
        """Facade (x, h) in metres of image points (arrays or scalars), on the objects' plane."""
        x, h = self._facade_plane(u, v)
        return self._toward_camera(x, h, self._depth_scale)

    def _facade_plane(self, u: FloatArray | float, v: FloatArray | float) -> tuple[FloatArray, FloatArray]:
        u_arr, v_arr = np.atleast_1d(np.asarray(u, np.float64)), np.atleast_1d(np.asarray(v, np.float64))
        if self._h is not None:
            return _apply(self._h, u_arr, v_arr)
        h, metres_per_px = self._height_from_lines(u_arr, v_arr)
        return (u_arr - self.frame_width / 2.0) * metres_per_px, h

    def _toward_camera(self, x: FloatArray, h: FloatArray, scale: float) -> tuple[FloatArray, FloatArray]:
        parallax = self.parallax
        if parallax is None:
            return x, h
        h = parallax.camera_height_m + (h - parallax.camera_height_m) * scale
        if parallax.camera_x_m is not None and self._h is not None:
            x = parallax.camera_x_m + (x - parallax.camera_x_m) * scale
        return x, h

    def to_pixel(self, x_m: FloatArray | float, h_m: FloatArray | float) -> tuple[FloatArray, FloatArray]:
        """Image (u, v) of points on the objects' plane (the inverse of ``to_facade``)."""
        x_arr, h_arr = np.atleast_1d(np.asarray(x_m, np.float64)), np.atleast_1d(np.asarray(h_m, np.float64))
        x_arr, h_arr = self._toward_camera(x_arr, h_arr, 1.0 / self._depth_scale)
        if self._h_inv is not None:
            return _apply(self._h_inv, x_arr, h_arr)
        assert self._lines is not None and self._line_heights is not None
        heights = self._line_heights
        j = np.clip(np.searchsorted(heights, h_arr, side="right") - 1, 0, len(heights) - 2)
        frac = (h_arr - heights[j]) / (heights[j + 1] - heights[j])
        u_arr = np.full_like(x_arr, self.frame_width / 2.0)
        v_arr = np.zeros_like(x_arr)
        for _ in range(3):  # tilted lines: u and v depend on each other; converges in a step or two
            y_low = self._lines[j, 0] + self._lines[j, 1] * u_arr
            y_high = self._lines[j + 1, 0] + self._lines[j + 1, 1] * u_arr
            v_arr = y_low - frac * (y_low - y_high)
            metres_per_px = (heights[j + 1] - heights[j]) / (y_low - y_high)
            u_arr = self.frame_width / 2.0 + x_arr / metres_per_px
        return u_arr, v_arr

    def metres_per_pixel(self, u: float, v: float) -> float:
        """Vertical metres per image pixel around (u, v): the scale of noise and gates."""
        _, h0 = self.to_facade(u, v - 0.5)
        _, h1 = self.to_facade(u, v + 0.5)
        return float(abs(h0[0] - h1[0]))

    def _height_from_lines(self, u: FloatArray, v: FloatArray) -> tuple[FloatArray, FloatArray]:
        assert self._lines is not None and self._line_heights is not None
        ys = self._lines[None, :, 0] + self._lines[None, :, 1] * u[:, None]  # (points, lines), decreasing
        below = (ys >= v[:, None]).sum(axis=1) - 1  # the line just below (or at) each point
        j = np.clip(below, 0, ys.shape[1] - 2)
        rows = np.arange(len(u))
        y_low, y_high = ys[rows, j], ys[rows, j + 1]
        h_low, h_high = self._line_heights[j], self._line_heights[j + 1]
        frac = (y_low - v) / (y_low - y_high)
        return h_low + frac * (h_high - h_low), (h_high - h_low) / (y_low - y_high)

    # -- floors and columns -----------------------------------------------------------------------
    def floor_at(self, h_m: float) -> int:
        return self.floors.floor_at(h_m)

    def column_at(self, x_m: float, h_m: float) -> int | None:
        """Window column of a facade point, or None without columns or outside them."""
        columns = self.columns
        if columns is None:
            return None
        if columns.x_px is not None:
            u, _ = self.to_pixel(x_m, h_m)
            position, edges = float(u[0]), columns.x_px
        else:
            assert columns.x_m is not None
            position, edges = x_m, columns.x_m
        if not edges[0] <= position <= edges[-1]:
            return None
        index = min(int(np.searchsorted(edges, position, side="right")) - 1, len(edges) - 2)
        return columns.first_column + index


def _apply(matrix: FloatArray, a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    points = np.stack([a, b], axis=-1).reshape(-1, 1, 2)
    mapped = cv2.perspectiveTransform(points, matrix).reshape(-1, 2)
    return mapped[:, 0], mapped[:, 1]
