"""Colour histograms tell paints apart and stay put for the same car; hour ranges and geometry."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from edge.street.appearance import colour_histogram
from edge.street.geometry import Box, contains, displacement, self_intersection
from edge.street.hours import Schedule
from edge.street.tracker import similarity
from tests.edge.street.scripted import SHANGHAI


def car_image(body_bgr: tuple[int, int, int], *, shift: int = 0, seed: int = 0) -> np.ndarray:
    """A grey road with a car body, windows and wheels; sensor noise."""
    rng = np.random.default_rng(seed)
    image = np.full((300, 500, 3), 90, np.uint8)
    x1, y1 = 100 + shift, 80
    image[y1 : y1 + 120, x1 : x1 + 300] = body_bgr
    image[y1 + 10 : y1 + 45, x1 + 60 : x1 + 240] = (40, 40, 40)  # windows
    image[y1 + 100 : y1 + 130, x1 + 30 : x1 + 80] = (15, 15, 15)  # wheels
    image[y1 + 100 : y1 + 130, x1 + 220 : x1 + 270] = (15, 15, 15)
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


BOX = Box(100, 80, 400, 210)


def test_the_same_car_moved_a_little_is_similar_and_other_paints_are_not() -> None:
    red = colour_histogram(car_image((30, 30, 190)), BOX)
    red_again = colour_histogram(car_image((30, 30, 190), shift=6, seed=1), BOX.shifted(6, 0))
    blue = colour_histogram(car_image((170, 80, 30)), BOX)
    white = colour_histogram(car_image((235, 235, 235)), BOX)
    silver = colour_histogram(car_image((160, 160, 160)), BOX)
    assert red is not None and red.sum() == pytest.approx(1.0)
    same = similarity(red, red_again)
    assert same is not None and same > 0.9
    for other in (blue, white):
        value = similarity(red, other)
        assert value is not None and value < 0.4
    grey_pair = similarity(white, silver)  # no hue: told apart by brightness
    assert grey_pair is not None and grey_pair < 0.6


def test_a_box_too_small_has_no_histogram() -> None:
    assert colour_histogram(car_image((30, 30, 190)), Box(10, 10, 14, 13)) is None


def test_displacement_ignores_a_box_cut_by_an_occluder() -> None:
    parked = Box(100, 100, 400, 250)
    half_hidden = Box(100, 100, 250, 250)  # the right half hidden by a pedestrian
    moved = parked.shifted(60, 0)
    assert displacement(parked, half_hidden) == 0.0
    assert displacement(parked, moved) == pytest.approx(60.0)


def test_polygons() -> None:
    square = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]
    assert contains(square, (5, 5)) and contains(square, (10, 5)) and not contains(square, (11, 5))
    assert self_intersection(square) is None
    assert self_intersection([(0.0, 0.0), (10.0, 10.0), (10.0, 0.0), (0.0, 10.0)]) == (0, 2)


def test_schedules_read_local_time_and_overnight_ranges() -> None:
    rush = Schedule.parse(["07:00-09:00", "17:00-24:00"], ["mon", "tue", "wed", "thu", "fri"])
    monday = datetime(2026, 6, 1, 7, 0, tzinfo=SHANGHAI)
    assert rush.active(monday)
    assert not rush.active(monday.replace(hour=9))  # the end is exclusive
    assert rush.active(monday.replace(hour=23, minute=59))
    assert not rush.active(datetime(2026, 6, 6, 8, 0, tzinfo=SHANGHAI))  # Saturday
    night = Schedule.parse(["22:00-06:00"], ["sun"])
    assert night.active(datetime(2026, 6, 8, 5, 59, tzinfo=SHANGHAI))  # Monday early: Sunday's night
    assert not night.active(datetime(2026, 6, 7, 5, 0, tzinfo=SHANGHAI))  # Sunday early: Saturday's
