"""A pinhole camera on a pole beside the street, looking down it.

World coordinates: metres, ``x`` across the street (to the right as the camera looks), ``y`` along it
(away from the camera's pole), ``z`` up; the road surface is ``z = 0``. Camera coordinates follow
OpenCV (x right, y down, z forward) and there is no lens distortion, so
``cv2.projectPoints(world, rvec, tvec, camera_matrix, None)`` gives the renderer's pixels and the
ground homography maps road metres to pixels exactly.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
NEAR_M = 0.3  # points nearer than this along the optical axis are clipped away


@dataclass(frozen=True)
class CameraPose:
    """Where the camera is and how it looks; independent of the picture size."""

    x_m: float  # across the street
    y_m: float  # along the street
    height_m: float  # above the road surface
    tilt_deg: float  # down from horizontal
    yaw_deg: float  # turned right (towards +x) from looking straight down the street
    roll_deg: float
    hfov_deg: float


@dataclass(frozen=True, eq=False)
class StreetCamera:
    """A posed camera at one picture size: world points to pixels and back (on the road plane)."""

    pose: CameraPose
    width: int
    height: int

    @cached_property
    def focal(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.pose.hfov_deg) / 2)

    @cached_property
    def camera_matrix(self) -> FloatArray:
        f = self.focal
        return np.array([[f, 0.0, self.width / 2], [0.0, f, self.height / 2], [0.0, 0.0, 1.0]])

    @cached_property
    def position(self) -> FloatArray:
        return np.array([self.pose.x_m, self.pose.y_m, self.pose.height_m])

    @cached_property
    def rotation(self) -> FloatArray:
        """World-to-camera rotation: rows are the camera's right, down and forward axes in world terms."""
        tilt, yaw, roll = (
            math.radians(a) for a in (self.pose.tilt_deg, self.pose.yaw_deg, self.pose.roll_deg)
        )
        forward = np.array([math.sin(yaw) * math.cos(tilt), math.cos(yaw) * math.cos(tilt), -math.sin(tilt)])
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        right, down = (
            math.cos(roll) * right + math.sin(roll) * down,
            -math.sin(roll) * right + math.cos(roll) * down,
        )
        return np.stack([right, down, forward])

    @cached_property
    def tvec(self) -> FloatArray:
        return np.asarray(-self.rotation @ self.position)

    @cached_property
    def rvec(self) -> FloatArray:
        rvec, _ = cv2.Rodrigues(self.rotation)
        return np.asarray(rvec, dtype=np.float64).reshape(3)

    @cached_property
    def homography(self) -> FloatArray:
        """Road-plane metres ``(x, y)`` (z = 0) to pixels."""
        r = self.rotation
        h = self.camera_matrix @ np.column_stack([r[:, 0], r[:, 1], self.tvec])
        return np.asarray(h / h[2, 2])

    def to_camera(self, points: FloatArray) -> FloatArray:
        return np.asarray(
            (np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.position) @ self.rotation.T
        )

    def project(self, points: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Pixels ``(N, 2)`` and depth along the optical axis of world points ``(N, 3)``."""
        cam = self.to_camera(points)
        depth = cam[:, 2]
        safe = np.where(np.abs(depth) < 1e-6, 1e-6, depth)
        f = self.focal
        uv = np.stack([f * cam[:, 0] / safe + self.width / 2, f * cam[:, 1] / safe + self.height / 2], axis=1)
        return uv, depth

    def ground_to_pixels(self, ground_m: FloatArray) -> FloatArray:
        """Road-plane metres ``(N, 2)`` to pixels."""
        xy = np.asarray(ground_m, dtype=np.float64).reshape(-1, 2)
        uv, _ = self.project(np.column_stack([xy, np.zeros(len(xy))]))
        return uv

    def pixels_to_ground(self, pixels: FloatArray) -> FloatArray:
        """Pixels ``(N, 2)`` back to road-plane metres (the inverse of ``ground_to_pixels``)."""
        p = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        out = cv2.perspectiveTransform(p, np.linalg.inv(self.homography))
        return np.asarray(out, dtype=np.float64).reshape(-1, 2)

    def scaled(self, width: int, height: int) -> StreetCamera:
        return StreetCamera(self.pose, width, height)

    def aimed_at(
        self, box: tuple[float, float, float, float], *, fill: float, max_zoom: float
    ) -> StreetCamera:
        """A pan-tilt-zoom camera on the same pole turned to the centre of ``box`` (this camera's pixels)
        and zoomed until the box spans ``fill`` of the picture's width or height (at most ``max_zoom``
        times this camera's focal length). No roll: a PTZ head pans and tilts only."""
        x1, y1, x2, y2 = box
        u, v = (x1 + x2) / 2, (y1 + y2) / 2
        f = self.focal
        ray = self.rotation.T @ np.array([(u - self.width / 2) / f, (v - self.height / 2) / f, 1.0])
        yaw = math.degrees(math.atan2(ray[0], ray[1]))
        tilt = math.degrees(math.asin(-ray[2] / float(np.linalg.norm(ray))))
        # The box's angular size; the picture's narrower side decides how far the zoom may go.
        spread = max((x2 - x1) / f, (y2 - y1) / f * self.width / self.height, 1e-6)
        half = math.atan(spread / fill / 2)
        narrowest = math.atan(math.tan(math.radians(self.pose.hfov_deg) / 2) / max_zoom)
        hfov = math.degrees(2 * max(half, narrowest))
        pose = dataclasses.replace(self.pose, yaw_deg=yaw, tilt_deg=tilt, roll_deg=0.0, hfov_deg=hfov)
        return StreetCamera(pose, self.width, self.height)

    @cached_property
    def _frustum(self) -> FloatArray:
        """Planes (through the eye) bounding what projects within a picture's size of the picture."""
        f, w, h = self.focal, self.width, self.height
        cx, cy = w / 2, h / 2
        return np.array(
            [[f, 0.0, cx + w], [-f, 0.0, 2 * w - cx], [0.0, f, cy + h], [0.0, -f, 2 * h - cy]],
            dtype=np.float64,
        )

    def clip(self, cam_points: FloatArray) -> FloatArray:
        """A polygon in camera coordinates clipped to the near plane and to a picture's size around the
        picture, so its projection is exact and its pixels stay in a range drawing functions take."""
        poly = clip_near(cam_points)
        for normal in self._frustum:
            if len(poly) < 3:
                break
            poly = _clip_plane(poly, normal)
        return poly

    def pixels(self, cam_points: FloatArray) -> FloatArray:
        """Camera coordinates (in front of the near plane) to pixels."""
        f = self.focal
        return np.stack(
            [
                f * cam_points[:, 0] / cam_points[:, 2] + self.width / 2,
                f * cam_points[:, 1] / cam_points[:, 2] + self.height / 2,
            ],
            axis=1,
        )


def clip_near(cam_points: FloatArray) -> FloatArray:
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
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)


def _clip_plane(poly: FloatArray, normal: FloatArray) -> FloatArray:
    """Sutherland-Hodgman: the part of a polygon where ``normal . p >= 0`` (a plane through the eye)."""
    side = poly @ normal
    out = []
    count = len(poly)
    for i in range(count):
        j = (i + 1) % count
        if side[i] >= 0:
            out.append(poly[i])
        if (side[i] >= 0) != (side[j] >= 0):
            f = side[i] / (side[i] - side[j])
            out.append(poly[i] + (poly[j] - poly[i]) * f)
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)
