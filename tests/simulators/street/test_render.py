"""Rendered street frames agree with the ground truth: a vehicle and its plate are where it says, a hidden
vehicle is hidden, a standing vehicle stands still exactly between its stop's start and end."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from simulators.street import FrameTruth, StreetRenderer, make_scenario, truth_document
from simulators.street.plates import render_plate
from simulators.street.scenario import Scenario

FPS = 10.0


def _without(scenario: Scenario, vehicle_id: int) -> Scenario:
    return dataclasses.replace(scenario, tracks=[t for t in scenario.tracks if t.id != vehicle_id])


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > 0)


def _frame(renderer: StreetRenderer, t: float) -> tuple[np.ndarray, FrameTruth]:
    return renderer.render(round(t * FPS / renderer.speed))


def test_the_same_scenario_renders_the_same_frames() -> None:
    scenario = make_scenario(5, "busy_mixed", duration_s=60, time_of_day="dusk", weather="rain")
    a, b = StreetRenderer(scenario, (320, 180), FPS), StreetRenderer(scenario, (320, 180), FPS)
    for index in (0, 7, 300):
        np.testing.assert_array_equal(a.render(index)[0], b.render(index)[0])


@pytest.mark.slow
def test_a_parked_car_and_its_plate_are_where_the_truth_says() -> None:
    size = (1920, 1080)
    scenario = make_scenario(1, "overstay", time_of_day="day", weather="clear")
    stop = next(s for s in truth_document(scenario, size, FPS)["stops"] if s["kind"] == "parked")
    t = (stop["start_s"] + stop["end_s"]) / 2
    image, truth = _frame(StreetRenderer(scenario, size, FPS), t)
    empty, _ = _frame(StreetRenderer(_without(scenario, stop["vehicle_id"]), size, FPS), t)
    changed = _changed(image, empty)
    x0, y0, x1, y1 = stop["box_px"]
    inside = np.zeros_like(changed)
    inside[int(y0) - 2 : int(np.ceil(y1)) + 2, int(x0) - 2 : int(np.ceil(x1)) + 2] = True
    assert changed[inside].mean() > 0.5, "the car is not drawn in its box"
    assert not changed[~inside].any(), "the car changed pixels outside its box"
    # The frame's own truth says the same.
    (seen,) = [v for v in truth.vehicles if v.id == stop["vehicle_id"]]
    assert seen.box == pytest.approx((int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))), abs=1)
    assert np.asarray(seen.plate) == pytest.approx(np.asarray(stop["plate_px"]), abs=0.05)
    assert seen.visible == 1.0 and not seen.moving
    # Inside its plate corners the picture has the plate's colours.
    quad = np.asarray(stop["plate_px"], dtype=np.float64)
    centre = quad.mean(axis=0)
    inner = np.round(centre + (quad - centre) * 0.7).astype(np.int32)
    mask = np.zeros(image.shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(mask, inner, 1)
    assert mask.sum() > 60, "the plate is too small to check"
    plate = render_plate(stop["plate"], stop["plate_colour"], height_px=32)
    shown = np.median(image[mask > 0], axis=0)
    expected = np.median(plate.reshape(-1, 3), axis=0)
    road = np.median(empty[mask > 0], axis=0)
    assert np.abs(shown - expected).max() < 45, (shown, expected)
    assert np.abs(road - expected).max() > 60  # what was there before is nothing like it


@pytest.mark.slow
def test_an_occluded_car_is_really_hidden_and_seen_again_after() -> None:
    size = (960, 540)
    scenario = make_scenario(1, "occluded", time_of_day="day", weather="clear")
    document = truth_document(scenario, size, FPS)
    fire = next(s for s in document["stops"] if s["zone"] == "fire_lane" and s["kind"] == "parked")
    mine = [o for o in document["occlusions"] if o["vehicle_id"] == fire["vehicle_id"]]
    hidden = next(o for o in mine if o["duration_s"] >= 10)
    t_hidden = (hidden["start_s"] + hidden["end_s"]) / 2
    t_seen = hidden["start_s"] - 12.0
    assert not any(o["start_s"] - 1 <= t_seen <= o["end_s"] + 1 for o in mine)
    with_car = StreetRenderer(scenario, size, FPS)
    without = StreetRenderer(_without(scenario, fire["vehicle_id"]), size, FPS)
    x0, y0, x1, y1 = (int(v) for v in fire["box_px"])
    area = (x1 - x0) * (y1 - y0)
    for t, expect_hidden in ((t_hidden, True), (t_seen, False)):
        image, truth = _frame(with_car, t)
        empty, _ = _frame(without, t)
        shown = int(_changed(image, empty).sum())
        (seen,) = [v for v in truth.vehicles if v.id == fire["vehicle_id"]]
        assert seen.visible is not None
        if expect_hidden:
            assert shown < 0.03 * area, f"t={t}: {shown} pixels of the hidden car show"
            assert seen.visible < 0.1
        else:
            assert shown > 0.3 * area
            assert seen.visible > 0.9


def test_a_standing_vehicle_stands_still_exactly_through_its_stop() -> None:
    scenario = make_scenario(2, "drop_off", time_of_day="day", weather="clear")
    renderer = StreetRenderer(scenario, (480, 270), FPS, visibility=False)
    stop = next(s for s in scenario.stops if s.kind == "drop_off" and s.zone == "kerb_no_parking")
    assert stop.end_s is not None

    def box(t: float) -> tuple[int, int, int, int] | None:
        _, truth = _frame(renderer, t)
        return next((v.box for v in truth.vehicles if v.id == stop.vehicle_id), None)

    standing = box(stop.start_s + 0.1)
    assert standing is not None
    assert box((stop.start_s + stop.end_s) / 2) == standing == box(stop.end_s - 0.1)
    assert box(stop.start_s - 2.0) != standing  # still pulling in
    assert box(stop.end_s + 3.0) != standing  # pulling out


def test_fast_forward_frames_show_scenario_time_speed_over_fps_apart() -> None:
    scenario = make_scenario(1, "overstay", duration_s=120)
    renderer = StreetRenderer(scenario, (320, 180), FPS, speed=6.0, visibility=False)
    assert [renderer.render(k)[1].t for k in (0, 1, 10)] == [0.0, 0.6, 6.0]


@pytest.mark.slow
def test_night_is_dark_with_lights_and_rain_streaks_fall() -> None:
    day = make_scenario(4, "queue", time_of_day="day", weather="clear")
    night = dataclasses.replace(day, time_of_day="night")
    rain = dataclasses.replace(day, weather="rain")
    size = (640, 360)
    day_frames = [StreetRenderer(day, size, FPS, visibility=False).render(k)[0] for k in (600, 601)]
    night_image = StreetRenderer(night, size, FPS, visibility=False).render(600)[0]
    assert night_image.mean() < 0.6 * day_frames[0].mean()
    assert (night_image.max(axis=2) > 230).sum() > 20  # headlights, tail lights, lamps
    rain_renderer = StreetRenderer(rain, size, FPS, visibility=False)
    rain_frames = [rain_renderer.render(k)[0] for k in (600, 601)]
    sky = (slice(0, size[1] // 4), slice(size[0] * 3 // 4, size[0]))  # the buildings on the right

    def streaks(frames: list[np.ndarray]) -> int:
        diff = np.abs(frames[0][sky].astype(np.int16) - frames[1][sky].astype(np.int16)).max(axis=2)
        return int((diff > 25).sum())

    assert streaks(rain_frames) > 10 * max(1, streaks(day_frames))
