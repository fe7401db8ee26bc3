"""A pinhole ceiling camera with barrel distortion, placed in a corner of the car looking at the door.

World coordinates in metres: ``x`` across the car (0..width), ``y`` up from the floor, ``z`` from the
back wall (0) to the door wall (depth). Camera coordinates follow OpenCV: x right, y down, z forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CameraPose:
    """Where the camera is and what it looks at; independent of the output image size."""

    position: tuple[float, float, float]
    target: tuple[float, float, float]
    roll_deg: float
    hfov_deg: float
    # Radial distortion coefficient of the wide CCTV lens (negative = barrel).
    k1: float


@dataclass(frozen=True, eq=False)
class Camera:
    """A posed camera for one output size: projects world points and casts pixel rays."""

    pose: CameraPose
    width: int
    height: int

    @cached_property
    def focal(self) -> float:
        return (self.width / 2) / float(np.tan(np.radians(self.pose.hfov_deg) / 2))

    @cached_property
    def position(self) -> FloatArray:
        return np.asarray(self.pose.position, dtype=np.float64)

    @cached_property
    def rotation(self) -> FloatArray:
        """Rows are the camera's right, down and forward axes in world coordinates."""
        forward = np.asarray(self.pose.target, dtype=np.float64) - self.position
        forward /= np.linalg.norm(forward)
        right = np.cross(np.array([0.0, 1.0, 0.0]), forward)
        right /= np.linalg.norm(right)
        down = np.cross(right, forward)
        roll = np.radians(self.pose.roll_deg)
        right, down = (
            np.cos(roll) * right + np.sin(roll) * down,
            -np.sin(roll) * right + np.cos(roll) * down,
        )
        return np.stack([right, down, forward])

    def to_camera(self, points: FloatArray) -> FloatArray:
        return (np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.position) @ self.rotation.T

    def project(self, points: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Pixel coordinates (undistorted) and depth along the optical axis of world points."""
        cam = self.to_camera(points)
        depth = cam[:, 2]
        safe = np.maximum(depth, 1e-3)
        u = self.focal * cam[:, 0] / safe + self.width / 2
        v = self.focal * cam[:, 1] / safe + self.height / 2
        return np.stack([u, v], axis=1), depth

    def ray_directions(self) -> FloatArray:
        """World direction of the ray through every pixel centre, shape (H, W, 3)."""
        xs = (np.arange(self.width) + 0.5 - self.width / 2) / self.focal
        ys = (np.arange(self.height) + 0.5 - self.height / 2) / self.focal
        grid_x, grid_y = np.meshgrid(xs, ys)
        cam = np.stack([grid_x, grid_y, np.ones_like(grid_x)], axis=-1)
        return cam @ self.rotation

    @property
    def distortion_maps(self) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint16]] | None:
        """``cv2.remap`` maps that bend the pinhole image into the lens's barrel image."""
        if abs(self.pose.k1) < 1e-3:
            return None
        return _distortion_maps(round(self.pose.k1, 4), self.width, self.height)

    def distort(self, image: npt.NDArray[Any], *, nearest: bool = False) -> npt.NDArray[Any]:
        maps = self.distortion_maps
        if maps is None:
            return image
        interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.remap(image, maps[0], maps[1], interpolation, borderMode=cv2.BORDER_REPLICATE)


@lru_cache(maxsize=8)
def _distortion_maps(
    k1: float, width: int, height: int
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint16]]:
    cx, cy = width / 2, height / 2
    norm = np.hypot(cx, cy)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height))
    dx, dy = (grid_x - cx) / norm, (grid_y - cy) / norm
    r2 = dx * dx + dy * dy
    # Each output pixel samples the pinhole image further out: the lens squeezes the edges.
    scale = (1 - k1 * r2) / (1 - k1 * 0.5)
    map_x = (cx + dx * scale * norm).astype(np.float32)
    map_y = (cy + dy * scale * norm).astype(np.float32)
    # Fixed-point maps remap several times faster than float ones.
    fixed_xy, fixed_fraction = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    return fixed_xy, fixed_fraction
