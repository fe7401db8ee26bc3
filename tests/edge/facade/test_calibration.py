"""Pixels <-> facade metres both ways, and the floor and column a facade position belongs to."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge.facade.calibration import FacadeCalibration, Floors
from edge.facade.config import BuildingConfig, FacadeConfig

# A camera homography facade (x, h) metres -> pixels: looking up, the top of the facade is compressed.
CAMERA = np.array([[30.0, 4.0, 600.0], [0.0, -15.0, 1040.0], [0.0, 0.012, 1.0]])


def project(x: float, h: float) -> list[float]:
    u, v, w = CAMERA @ np.array([x, h, 1.0])
    return [float(u / w), float(v / w)]


def facade_config(calibration: dict[str, Any], **extra: Any) -> FacadeConfig:
    return FacadeConfig.model_validate(
        {
            "camera": {"source": {"kind": "stream", "url": "rtsp://cam"}, "width": 1920, "height": 1080},
            "building": {"floors": 20, "floor_height_m": 3.0},
            "calibration": calibration,
            **extra,
        }
    )


def four_point_config(**extra: Any) -> FacadeConfig:
    corners = [(0.0, 0.0), (24.0, 0.0), (24.0, 60.0), (0.0, 60.0)]
    points = [{"pixel": project(x, h), "facade": [x, h]} for x, h in corners]
    return facade_config({"method": "four_points", "points": points}, **extra)


def test_four_points_map_every_facade_point_like_the_camera() -> None:
    calibration = FacadeCalibration.from_config(four_point_config())
    rng = np.random.default_rng(3)
    xs, hs = rng.uniform(0, 24, 50), rng.uniform(0, 60, 50)
    pixels = np.array([project(x, h) for x, h in zip(xs, hs, strict=True)])
    x_back, h_back = calibration.to_facade(pixels[:, 0], pixels[:, 1])
    np.testing.assert_allclose(x_back, xs, atol=1e-3)
    np.testing.assert_allclose(h_back, hs, atol=1e-3)
    u_back, v_back = calibration.to_pixel(xs, hs)
    np.testing.assert_allclose(u_back, pixels[:, 0], atol=1e-3)
    np.testing.assert_allclose(v_back, pixels[:, 1], atol=1e-3)


def test_four_points_scale_grows_up_the_facade() -> None:
    calibration = FacadeCalibration.from_config(four_point_config())
    low = calibration.metres_per_pixel(*project(12.0, 3.0))
    high = calibration.metres_per_pixel(*project(12.0, 57.0))
    assert high > 1.5 * low  # perspective: a pixel covers more facade near the roof


def test_four_points_floor_and_metric_columns() -> None:
    config = four_point_config(columns={"x_m": [0, 6, 12, 18, 24], "first_column": 1})
    calibration = FacadeCalibration.from_config(config)
    x, h = calibration.to_facade(*project(13.0, 31.0))  # floor 11 spans 30..33 m
    assert calibration.floor_at(float(h[0])) == 11
    assert calibration.column_at(float(x[0]), float(h[0])) == 3
    assert calibration.column_at(-1.0, 31.0) is None
    assert calibration.column_at(24.0, 31.0) == 4  # the right edge belongs to the last column


def test_floor_lines_heights_between_and_beyond_the_lines() -> None:
    lines = [1040 - 80 * i for i in range(6)]  # floors 3..8's bases, 80 px apart
    config = facade_config({"method": "floor_lines", "first_floor": 3, "lines": lines})
    calibration = FacadeCalibration.from_config(config)
    _, h = calibration.to_facade(np.full(4, 960.0), np.array([1040.0, 1000.0, 640.0, 600.0]))
    # Floor 3's base is 6 m up; 40 px above it is half a floor; one line above the last: extrapolated.
    np.testing.assert_allclose(h, [6.0, 7.5, 21.0, 22.5])
    assert [calibration.floor_at(float(v)) for v in h] == [3, 3, 8, 8]
    x, _ = calibration.to_facade(1040.0, 1000.0)
    assert float(x[0]) == pytest.approx(80 * 3.0 / 80)  # 80 px right of centre at 3 m per 80 px


def test_tilted_floor_lines_round_trip_and_pixel_columns() -> None:
    # A rolled camera: every floor base rises 40 px from left to right; floors get shorter upwards.
    lines = [[[0, 1000 - 90 * i + 0.5 * i * i], [1920, 960 - 90 * i + 0.5 * i * i]] for i in range(8)]
    config = facade_config(
        {"method": "floor_lines", "lines": lines}, columns={"x_px": [200, 700, 1200, 1700], "first_column": 2}
    )
    calibration = FacadeCalibration.from_config(config)
    u = np.array([300.0, 960.0, 1500.0])
    v = np.array([950.0, 700.0, 420.0])
    x, h = calibration.to_facade(u, v)
    u_back, v_back = calibration.to_pixel(x, h)
    np.testing.assert_allclose(u_back, u, atol=0.05)
    np.testing.assert_allclose(v_back, v, atol=0.05)
    # On the left end of line 3 (floor 3's base, 6 m): exactly there.
    _, h_line = calibration.to_facade(0.0, 1000 - 180 + 2.0)
    assert float(h_line[0]) == pytest.approx(6.0)
    assert [calibration.column_at(float(a), float(b)) for a, b in zip(x, h, strict=True)] == [2, 3, 4]


@pytest.mark.parametrize(
    ("ground_number", "ground_height", "height", "floor"),
    [
        (1, None, 0.5, 1),
        (1, None, 3.0, 2),
        (1, None, 59.9, 20),
        (1, None, 75.0, 20),
        (1, None, -2.0, 1),
        (0, None, 3.5, 1),
        (0, None, 0.2, 0),
        (1, 5.0, 4.9, 1),
        (1, 5.0, 5.1, 2),
        (1, 5.0, 8.2, 3),
    ],
)
def test_floor_numbering_as_the_building_counts(
    ground_number: int, ground_height: float | None, height: float, floor: int
) -> None:
    building = BuildingConfig(
        floors=20, floor_height_m=3.0, ground_floor_number=ground_number, ground_floor_height_m=ground_height
    )
    assert Floors(building).floor_at(height) == floor


def test_floor_confidence_is_low_at_a_boundary_and_high_mid_floor() -> None:
    floors = Floors(BuildingConfig(floors=20, floor_height_m=3.0))
    middle = floors.estimate(31.5, 0.5)
    edge = floors.estimate(30.05, 0.5)
    assert middle.floor == edge.floor == 11
    assert middle.confidence > 0.99
    assert 0.45 < edge.confidence < 0.6
    assert floors.estimate(80.0, 0.5).confidence == pytest.approx(1.0)  # the top floor is open above


def test_parallax_moves_positions_to_the_plane_where_objects_fall() -> None:
    # Camera 10 m out, lens 2 m up, in front of x = 12 m; objects fall 1 m out: scale 0.9 about the lens.
    parallax = {
        "camera_distance_m": 10.0,
        "camera_height_m": 2.0,
        "camera_x_m": 12.0,
        "object_distance_m": 1.0,
    }
    plain = FacadeCalibration.from_config(four_point_config())
    corrected = FacadeCalibration.from_config(four_point_config(parallax=parallax))
    u, v = project(20.0, 43.0)  # the ray through this pixel meets the facade at (20, 43)
    x_facade, h_facade = plain.to_facade(u, v)
    x, h = corrected.to_facade(u, v)
    assert (float(x_facade[0]), float(h_facade[0])) == pytest.approx((20.0, 43.0), abs=1e-3)
    # 1 m in front of the facade the same ray is at 2 + 41 * 0.9 = 38.9 m, x 12 + 8 * 0.9 = 19.2 m.
    assert (float(x[0]), float(h[0])) == pytest.approx((19.2, 38.9), abs=1e-3)
    assert corrected.floor_at(float(h[0])) == 13 and plain.floor_at(float(h_facade[0])) == 15
    u_back, v_back = corrected.to_pixel(x, h)
    assert (float(u_back[0]), float(v_back[0])) == pytest.approx((u, v), abs=1e-3)


def test_parallax_objects_must_fall_between_facade_and_camera() -> None:
    parallax = {"camera_distance_m": 3.0, "camera_height_m": 2.0, "object_distance_m": 3.0}
    with pytest.raises(ValueError, match=r"object_distance_m \(3.0\) must be less than camera_distance_m"):
        four_point_config(parallax=parallax)
