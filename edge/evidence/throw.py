"""What the facade's evidence shows of a throw: the tracked points, the fitted fall and the origin window.

The fitted curve is the drag model of edge/facade/ballistic.py from the release to the impact, with x
drifting linearly from the release's x to the impact's. The origin window is the reported floor (between
its base and the next floor's) across the reported column, or about one window (``WINDOW_HALF_M`` each
side of the release) without columns; it is drawn on the facade itself, so with a parallax correction
the objects' plane is mapped back to the facade plane first.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edge.evidence.still import Overlay, Point
from edge.facade.analyzer import ThrowDetection
from edge.facade.ballistic import model_height
from edge.facade.calibration import FacadeCalibration
from edge.facade.config import FacadeConfig, FourPointsCalibration

CURVE_POINTS = 48
WINDOW_HALF_M = 1.5


def _to_objects_plane(config: FacadeConfig, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Facade-plane metres -> the objects' plane the calibration maps (see ParallaxConfig)."""
    parallax = config.parallax
    if parallax is None:
        return x, h
    scale = (parallax.camera_distance_m - parallax.object_distance_m) / parallax.camera_distance_m
    h = parallax.camera_height_m + (h - parallax.camera_height_m) * scale
    if parallax.camera_x_m is not None and isinstance(config.calibration, FourPointsCalibration):
        x = parallax.camera_x_m + (x - parallax.camera_x_m) * scale
    return x, h


def _points(u: Any, v: Any) -> tuple[Point, ...]:
    return tuple(
        (float(a), float(b)) for a, b in zip(np.ravel(u), np.ravel(v), strict=True) if math.isfinite(a + b)
    )


def fitted_curve(detection: ThrowDetection, calibration: FacadeCalibration) -> tuple[Point, ...]:
    fit = detection.fit
    start = fit.release_t if math.isfinite(fit.release_t) else detection.first_seen_t
    end = fit.impact_t if math.isfinite(fit.impact_t) else detection.last_seen_t
    if not (math.isfinite(fit.release_h_m) and end > start):
        return ()
    ts = np.linspace(start, end, CURVE_POINTS)
    heights = model_height(ts, fit.release_t, fit.release_h_m, fit.terminal_velocity_mps)
    x0 = fit.release_x_m if math.isfinite(fit.release_x_m) else 0.0
    x1 = fit.impact_x_m if math.isfinite(fit.impact_x_m) else x0
    xs = x0 + (x1 - x0) * (ts - start) / (end - start)
    return _points(*calibration.to_pixel(xs, heights))


def origin_window(
    detection: ThrowDetection, config: FacadeConfig, calibration: FacadeCalibration
) -> tuple[Point, ...]:
    """The origin window's outline in camera pixels (floor band across the column)."""
    building = config.building
    low_m, high_m = building.base_height_m(detection.floor), building.base_height_m(detection.floor + 1)
    fit = detection.fit
    release_x = fit.release_x_m if math.isfinite(fit.release_x_m) else 0.0
    left_m, right_m = release_x - WINDOW_HALF_M, release_x + WINDOW_HALF_M
    columns = config.columns
    if columns is not None and detection.column is not None:
        index = detection.column - columns.first_column
        if columns.x_m is not None and 0 <= index < len(columns.x_m) - 1:
            left_m, right_m = columns.x_m[index], columns.x_m[index + 1]
        elif columns.x_px is not None and 0 <= index < len(columns.x_px) - 1:
            # Pixel columns (floor lines): the facade x at those image columns, at the release's height.
            _, release_v = calibration.to_pixel(release_x, fit.release_h_m)
            edges_u = np.array([columns.x_px[index], columns.x_px[index + 1]], np.float64)
            edges_x, _ = calibration.to_facade(edges_u, np.full(2, float(release_v[0])))
            left_m, right_m = float(edges_x[0]), float(edges_x[1])
    xs = np.array([left_m, right_m, right_m, left_m], np.float64)
    hs = np.array([low_m, low_m, high_m, high_m], np.float64)
    return _points(*calibration.to_pixel(*_to_objects_plane(config, xs, hs)))


def throw_overlay(detection: ThrowDetection, config: FacadeConfig, calibration: FacadeCalibration) -> Overlay:
    fit = detection.fit
    column = f", column {detection.column}" if detection.column is not None else ""
    height = f"{fit.fall_height_m:.0f} m fall" if math.isfinite(fit.fall_height_m) else "fall"
    duration = f" in {fit.fall_duration_s:.1f} s" if math.isfinite(fit.fall_duration_s) else ""
    return Overlay(
        points=tuple((u, v) for _t, u, v in detection.pixels),
        curve=fitted_curve(detection, calibration),
        origin=origin_window(detection, config, calibration),
        label=f"object thrown: floor {detection.floor}{column} (confidence {detection.confidence:.2f})",
        caption=f"{height}{duration}",
    )


def still_time(detection: ThrowDetection) -> float:
    """The middle of the fall as seen: the object is in the picture there."""
    return (detection.first_seen_t + detection.last_seen_t) / 2.0
