"""Fall physics against closed-form results: free fall, drag, terminal speed, tossing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.facade.physics import OBJECT_KINDS, G, ObjectSpec, make_object, simulate_fall

FRAME_S = 1 / 25


def _spec(mass_kg: float, area_m2: float, kind: str = "test") -> ObjectSpec:
    return ObjectSpec(kind, mass_kg, 0.3, 0.2, 1.0, area_m2, (200.0, 200.0, 200.0), 0.0)


def test_a_drop_without_drag_lands_at_the_free_fall_time_within_a_frame() -> None:
    fall = simulate_fall(_spec(1.0, 0.01), (5.0, 30.0, 0.3), (0.0, 0.0, 0.0), drag=False, start_s=2.0)
    expected = math.sqrt(2 * 30.0 / G)
    assert abs(fall.duration_s - expected) < FRAME_S
    assert fall.impact_s == pytest.approx(2.0 + fall.duration_s)
    # Halfway in time the object has fallen a quarter of the height: h(t) = h0 - g t^2 / 2.
    half = fall.position(2.0 + expected / 2)
    assert half[1] == pytest.approx(30.0 - G * (expected / 2) ** 2 / 2, abs=0.01)
    assert fall.impact_speed == pytest.approx(math.sqrt(2 * G * 30.0), rel=0.01)
    assert fall.impact_m[0] == pytest.approx(5.0) and fall.impact_m[2] == pytest.approx(0.3)


def test_drag_makes_a_fall_slower_and_a_light_bag_much_slower() -> None:
    start, still = (5.0, 30.0, 0.3), (0.0, 0.0, 0.0)
    free = simulate_fall(_spec(0.5, 0.015), start, still, drag=False)
    bottle = simulate_fall(_spec(0.5, 0.015), start, still)
    light_bag = simulate_fall(_spec(0.05, 0.12), start, still)
    assert bottle.duration_s > free.duration_s + 0.05
    assert bottle.impact_speed < free.impact_speed
    assert light_bag.duration_s > 3 * free.duration_s
    # The bag reaches its terminal speed sqrt(g m / k) and falls no faster.
    terminal = _spec(0.05, 0.12).terminal_speed
    assert light_bag.impact_speed == pytest.approx(terminal, rel=0.02)
    assert terminal < 4.0


def test_the_vertical_acceleration_starts_at_g_and_drag_reduces_it() -> None:
    fall = simulate_fall(make_object(np.random.default_rng(1), "bottle"), (5.0, 40.0, 0.3), (0.0, 0.0, 0.0))
    times = np.arange(0, fall.duration_s, FRAME_S)
    heights = fall.position(times)[:, 1]
    early = np.polyfit(times[:8], heights[:8], 2)[0] * 2
    late = np.polyfit(times[-8:], heights[-8:], 2)[0] * 2
    assert early == pytest.approx(-G, rel=0.05)
    assert early + 0.5 < late < 0  # still accelerating downwards, less than g


def test_a_tossed_object_lands_away_from_the_facade_and_wind_carries_it() -> None:
    spec = make_object(np.random.default_rng(2), "flower_pot")
    dropped = simulate_fall(spec, (5.0, 20.0, 0.3), (0.0, 0.0, 0.0))
    tossed = simulate_fall(spec, (5.0, 20.0, 0.3), (0.0, 1.0, 3.0))
    assert tossed.impact_m[2] > dropped.impact_m[2] + 3.0
    assert tossed.duration_s > dropped.duration_s  # thrown upwards a little first
    pack = make_object(np.random.default_rng(2), "cigarette_pack")
    calm = simulate_fall(pack, (5.0, 20.0, 0.3), (0.0, 0.0, 0.0))
    windy = simulate_fall(pack, (5.0, 20.0, 0.3), (0.0, 0.0, 0.0), wind=(6.0, 0.0, 0.0))
    assert windy.impact_m[0] > calm.impact_m[0] + 2.0


def test_object_kinds_differ_in_how_fast_they_fall() -> None:
    rng = np.random.default_rng(3)
    speeds = {kind: make_object(rng, kind).terminal_speed for kind in OBJECT_KINDS}
    assert speeds["cigarette_pack"] < min(speeds["bottle"], speeds["flower_pot"], speeds["rubbish_bag"])
    assert 5 < speeds["cigarette_pack"] < 15


def test_bad_inputs_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="unknown object kind 'piano'"):
        make_object(np.random.default_rng(0), "piano")
    with pytest.raises(ValueError, match="above the ground"):
        simulate_fall(_spec(1.0, 0.01), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
