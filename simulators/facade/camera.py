"""A pinhole camera at the foot of the tower looking up, with OpenCV's radial lens distortion.

World coordinates as in ``physics``: x along the facade, y up, z out of the facade (towards the camera).
Camera coordinates follow OpenCV (x right, y down, z forward), and the lens follows OpenCV's model
(``k1, k2``; no tangential terms), so ``cv2.undistortPoints(px, camera_matrix, dist_coeffs)`` undoes
exactly what the renderer did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from simulators.facade.physics import FloatArray


@dataclass(frozen=True)
class CameraPose:
    """Where the camera stands and how it looks; independent of the output image size."""

    x_m: float  # along the facade, from the building's left edge
    height_m: float  # above the ground
    distance_m: float  # in front of the facade plane
    tilt_deg: float  # up from horizontal
    yaw_deg: float  # turned right (towards +x) from facing the facade squarely
    roll_deg: float
    hfov_deg: float  # horizontal field of view of the pinhole (before distortion)
    k1: float  # OpenCV radial distortion; negative = barrel
    k2: float


@dataclass(frozen=True, eq=False)
class FacadeCamera:
    """A posed camera at one output size: projects world points to pixels."""

    pose: CameraPose
    width: int
    height: int

    @cached_property
    def focal(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.pose.hfov_deg) / 2)

    @cached_property
    def camera_matrix(self) -> FloatArray:
        return np.array(
            [[self.focal, 0.0, self.width / 2], [0.0, self.focal, self.height / 2], [0.0, 0.0, 1.0]]
        )

    @cached_property
    def dist_coeffs(self) -> FloatArray:
        return np.array([self.pose.k1, self.pose.k2, 0.0, 0.0, 0.0])

    @cached_property
    def position(self) -> FloatArray:
        return np.array([self.pose.x_m, self.pose.height_m, self.pose.distance_m])

    @cached_property
    def rotation(self) -> FloatArray:
        """World-to-camera rotation: rows are the camera's right, down and forward axes in world terms."""
        tilt, yaw, roll = (
            math.radians(a) for a in (self.pose.tilt_deg, self.pose.yaw_deg, self.pose.roll_deg)
        )
        forward = np.array([math.sin(yaw) * math.cos(tilt), math.sin(tilt), -math.cos(yaw) * math.cos(tilt)])
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        right, down = (
            math.cos(roll) * right + math.sin(roll) * down,
            -math.sin(roll) * right + math.cos(roll) * down,
        )
        return np.stack([right, down, forward])

    @cached_property
    def tvec(self) -> FloatArray:
        return -self.rotation @ self.position

    @cached_property
    def rvec(self) -> FloatArray:
        rvec, _ = cv2.Rodrigues(self.rotation)
        return np.asarray(rvec, dtype=np.float64).reshape(3)

    @cached_property
    def homography(self) -> FloatArray:
        """Facade-plane metres ``(x, y)`` (z = 0) to undistorted (pinhole) pixels."""
        r = self.rotation
        h = self.camera_matrix @ np.column_stack([r[:, 0], r[:, 1], self.tvec])
        return np.asarray(h / h[2, 2])

    def to_camera(self, points: FloatArray) -> FloatArray:
        return (np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.position) @ self.rotation.T

    def project(self, points: FloatArray, *, distort: bool = True) -> tuple[FloatArray, FloatArray]:
        """Pixels ``(N, 2)`` (through the lens unless ``distort=False``) and depth along the optical axis."""
        cam = self.to_camera(points)
        depth = cam[:, 2]
        safe = np.where(np.abs(depth) < 1e-6, 1e-6, depth)
        x, y = cam[:, 0] / safe, cam[:, 1] / safe
        if distort:
            r2 = x * x + y * y
            radial = 1 + self.pose.k1 * r2 + self.pose.k2 * r2 * r2
            x, y = x * radial, y * radial
        f = self.focal
        return np.stack([f * x + self.width / 2, f * y + self.height / 2], axis=1), depth

    def distort_pixels(self, pixels: FloatArray) -> FloatArray:
        """Undistorted (pinhole) pixels to where the lens puts them."""
        p = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        f = self.focal
        x, y = (p[:, 0] - self.width / 2) / f, (p[:, 1] - self.height / 2) / f
        r2 = x * x + y * y
        radial = 1 + self.pose.k1 * r2 + self.pose.k2 * r2 * r2
        return np.stack([f * x * radial + self.width / 2, f * y * radial + self.height / 2], axis=1)

    def facade_to_pixels(self, facade_m: FloatArray, *, distort: bool = True) -> FloatArray:
        """Facade-plane metres ``(N, 2)`` to pixels."""
        xy = np.asarray(facade_m, dtype=np.float64).reshape(-1, 2)
        uv, _ = self.project(np.column_stack([xy, np.zeros(len(xy))]), distort=distort)
        return uv

    def pixels_to_facade(self, pixels: FloatArray, *, distorted: bool = True) -> FloatArray:
        """Pixels ``(N, 2)`` back to facade-plane metres (the inverse of ``facade_to_pixels``)."""
        p = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        if distorted:
            p = np.asarray(cv2.undistortPoints(p, self.camera_matrix, self.dist_coeffs, P=self.camera_matrix))
        out = cv2.perspectiveTransform(p, np.linalg.inv(self.homography))
        return np.asarray(out, dtype=np.float64).reshape(-1, 2)

    def point_on_plane(self, pixel: tuple[float, float], z_m: float) -> FloatArray:
        """The world point seen at ``pixel`` (through the lens) on the plane ``z = z_m`` in front of the facade."""
        seen = np.asarray(pixel, dtype=np.float64).reshape(1, 1, 2)
        ray = cv2.undistortPoints(seen, self.camera_matrix, self.dist_coeffs).reshape(2)
        direction = self.rotation.T @ np.array([ray[0], ray[1], 1.0])
        if abs(direction[2]) < 1e-9 or (z_m - self.position[2]) / direction[2] <= 0:
            raise ValueError(f"the ray through pixel {pixel} does not meet the plane z = {z_m} m in front")
        return np.asarray(self.position + direction * (z_m - self.position[2]) / direction[2])

    def in_view(self, pixels: FloatArray, margin: float = 0.0) -> npt.NDArray[np.bool_]:
        p = np.asarray(pixels).reshape(-1, 2)
        return np.asarray(
            (p[:, 0] >= margin)
            & (p[:, 0] < self.width - margin)
            & (p[:, 1] >= margin)
            & (p[:, 1] < self.height - margin)
        )

    def distort_image(self, image: npt.NDArray[Any], *, nearest: bool = False) -> npt.NDArray[Any]:
        """Bend a pinhole rendering into what the lens shows."""
        if abs(self.pose.k1) < 1e-6 and abs(self.pose.k2) < 1e-6:
            return image
        map_xy, map_fraction = _distortion_maps(
            round(self.pose.k1, 6), round(self.pose.k2, 6), round(self.focal, 6), self.width, self.height
        )
        interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        out = cv2.remap(image, map_xy, map_fraction, interpolation, borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(out, dtype=image.dtype)


@lru_cache(maxsize=4)
def _distortion_maps(
    k1: float, k2: float, focal: float, width: int, height: int
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint16]]:
    """For every output (lens) pixel, the pinhole pixel it shows: OpenCV's iterative undistortion."""
    matrix = np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-6)
    pinhole = cv2.undistortPoints(
        points, matrix, np.array([k1, k2, 0.0, 0.0, 0.0]), R=None, P=matrix, criteria=criteria
    ).reshape(height, width, 2)
    map_x = pinhole[..., 0].astype(np.float32)
    map_y = pinhole[..., 1].astype(np.float32)
    fixed_xy, fixed_fraction = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    return np.asarray(fixed_xy, dtype=np.int16), np.asarray(fixed_fraction, dtype=np.uint16)
