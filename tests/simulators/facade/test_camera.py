"""The facade camera's projection against OpenCV's own, and the calibration it publishes."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from simulators.facade import calibration, make_scenario
from simulators.facade.building import random_building, random_camera_pose
from simulators.facade.camera import FacadeCamera

SIZE = (480, 270)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_projection_matches_opencv_project_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    building = random_building(rng)
    camera = FacadeCamera(random_camera_pose(rng, building), *SIZE)
    points = np.column_stack(
        [
            rng.uniform(0, building.width_m, 50),
            rng.uniform(0, building.height_m, 50),
            rng.uniform(0, 3, 50),
        ]
    )
    ours, depth = camera.project(points)
    theirs, _ = cv2.projectPoints(points, camera.rvec, camera.tvec, camera.camera_matrix, camera.dist_coeffs)
    front = depth > 0
    assert front.sum() > 40
    assert np.allclose(ours[front], theirs.reshape(-1, 2)[front], atol=1e-6)
    # The lens model is OpenCV's: undistorting the picture's pixels gives the pinhole ones.
    pinhole, _ = camera.project(points, distort=False)
    seen = front & camera.in_view(ours)
    assert seen.sum() >= 5
    undone = cv2.undistortPoints(
        ours[seen].reshape(-1, 1, 2), camera.camera_matrix, camera.dist_coeffs, P=camera.camera_matrix
    )
    assert np.allclose(undone.reshape(-1, 2), pinhole[seen], atol=0.05)


def test_the_homography_maps_facade_metres_to_pinhole_pixels_and_back() -> None:
    scenario = make_scenario(5, duration_s=10, throws=0)
    camera = scenario.camera(SIZE)
    metres = np.array([[1.0, 3.0], [10.0, 20.0], [scenario.building.width_m, scenario.building.height_m]])
    through_h = cv2.perspectiveTransform(metres.reshape(-1, 1, 2), camera.homography).reshape(-1, 2)
    assert np.allclose(through_h, camera.facade_to_pixels(metres, distort=False), atol=1e-6)
    assert np.allclose(camera.pixels_to_facade(camera.facade_to_pixels(metres)), metres, atol=0.01)


def test_the_published_calibration_says_where_facade_points_are() -> None:
    scenario = make_scenario(6, duration_s=10, throws=0)
    camera = scenario.camera(SIZE)
    data = calibration(scenario, SIZE)
    building = scenario.building
    assert data["image_size"] == list(SIZE)
    h = np.asarray(data["homography_facade_to_px"])
    k, dist = np.asarray(data["camera_matrix"]), np.asarray(data["dist_coeffs"])
    placed = [line for line in data["floor_lines"] if line["centre_px"] is not None]
    assert len(placed) >= 4
    for line in placed:
        y = (line["floor"] - 1) * data["floor_height_m"]
        # From the published numbers alone: the homography, then the lens.
        pinhole = cv2.perspectiveTransform(np.array([[[camera.pose.x_m, y]]]), h)
        rays = cv2.undistortPoints(pinhole, k, None)
        seen, _ = cv2.projectPoints(
            np.array([[rays[0, 0, 0], rays[0, 0, 1], 1.0]]), np.zeros(3), np.zeros(3), k, dist
        )
        assert np.allclose(seen.reshape(2), line["centre_px"], atol=0.05)
    for point in data["facade_points"]:
        assert 0 <= point["px"][0] < SIZE[0] and 0 <= point["px"][1] < SIZE[1]
        assert np.allclose(camera.facade_to_pixels(np.array([point["m"]]))[0], point["px"], atol=0.02)
    assert len(data["facade_points"]) == 4
    assert [c["column"] for c in data["window_columns"]] == list(range(1, building.columns + 1))


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_floor_lines_ascend_in_the_picture_with_sky_above_the_roof(seed: int) -> None:
    scenario = make_scenario(seed, duration_s=10, throws=0)
    data = calibration(scenario, SIZE)
    lines = data["floor_lines"]
    # Lines with no pixel position are behind the camera or far below the picture: the lowest floors.
    unplaced = [line["floor"] for line in lines if line["centre_px"] is None]
    assert unplaced == list(range(1, len(unplaced) + 1))
    rows = [line["centre_px"][1] for line in lines if line["centre_px"] is not None]
    # Higher floors are higher in the picture (smaller row), all the way to the roof line.
    assert all(b < a for a, b in itertools.pairwise(rows))
    roof = lines[-1]
    assert roof["floor"] == scenario.building.floors + 1 and roof["in_view"]
    assert roof["centre_px"][1] > 0.1 * SIZE[1]  # room for sky above it
    visible = [line for line in lines if line["in_view"]]
    assert len(visible) >= 4
