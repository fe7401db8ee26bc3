"""Street scenarios: seeded, the presets tell their stories, the traffic behaves, the truth judges stops right."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from simulators.street import (
    PRESETS,
    Stop,
    StreetRules,
    held_out_scenarios,
    judge,
    make_scenario,
    truth_document,
)
from simulators.street.scenario import THRESHOLD_MARGIN_S, Scenario
from simulators.street.traffic import DT
from simulators.street.vehicles import VEHICLE_CLASSES, make_vehicle

SIZE = (960, 540)


def _parking(scenario: Scenario) -> list[Stop]:
    return [s for s in scenario.stops if s.parking]


def _judged(scenario: Scenario) -> list[dict[str, Any]]:
    return [
        s
        for s in truth_document(scenario, SIZE, 10)["stops"]
        if s["kind"] in ("parked", "drop_off", "bus_stop", "double_parked")
    ]


def test_a_bus_that_finds_its_stop_taken_comes_later() -> None:
    # Seed 20000691 planned a bus onto a stop still taken by the one before, and the planner raised.
    scenario = make_scenario(20_000_691, "busy_mixed")
    buses = [s for s in scenario.stops if s.kind == "bus_stop"]
    assert buses and scenario.abandoned == []


@pytest.mark.slow
def test_the_same_seed_plans_the_same_scenario_and_another_seed_another() -> None:
    a, b = make_scenario(7, "busy_mixed"), make_scenario(7, "busy_mixed")
    assert a.stops == b.stops
    assert len(a.tracks) == len(b.tracks)
    for ta, tb in zip(a.tracks, b.tracks, strict=True):
        assert ta.spec.plate_text == tb.spec.plate_text and ta.t0 == tb.t0
        np.testing.assert_array_equal(ta.x, tb.x)
        np.testing.assert_array_equal(ta.y, tb.y)
    other = make_scenario(8, "busy_mixed")
    assert [t.spec.plate_text for t in other.tracks][:5] != [t.spec.plate_text for t in a.tracks][:5]


@pytest.mark.slow
def test_every_preset_plans_without_losing_a_scripted_stop() -> None:
    for preset in PRESETS:
        scenario = make_scenario(3, preset)
        assert scenario.abandoned == [], f"{preset}: a scripted stop found its place taken"
        assert scenario.duration_s > 0 and scenario.tracks


@pytest.mark.slow
def test_overstay_is_a_violation_with_its_warning_dwell_seconds_in() -> None:
    scenario = make_scenario(1, "overstay")
    (stop,) = _judged(scenario)
    rules = scenario.rules
    assert stop["zone"] == "kerb_no_parking" and stop["class"] == "car" and stop["plate"]
    assert stop["warning"] and stop["violation"] and not stop["left_in_grace"]
    assert stop["warning_at_s"] == pytest.approx(stop["start_s"] + rules.dwell_s)
    assert stop["violation_at_s"] == pytest.approx(stop["start_s"] + rules.dwell_s + rules.grace_s)
    assert stop["duration_s"] >= rules.dwell_s + rules.grace_s + THRESHOLD_MARGIN_S


@pytest.mark.slow
def test_leaving_in_grace_is_warned_but_no_violation() -> None:
    for seed in (1, 2, 3):
        (stop,) = _judged(make_scenario(seed, "leaves_in_grace"))
        assert stop["warning"] and not stop["violation"] and stop["left_in_grace"], seed
        assert 120 + THRESHOLD_MARGIN_S <= stop["duration_s"] <= 720 - THRESHOLD_MARGIN_S


def test_drop_offs_are_shorter_than_the_dwell_in_four_places() -> None:
    stops = _judged(make_scenario(2, "drop_off"))
    assert {s["zone"] for s in stops} == {"kerb_no_parking", "fire_lane", "bus_stop", "school_gate"}
    assert all(s["kind"] == "drop_off" and not s["warning"] for s in stops)
    assert all(s["duration_s"] < 120 - THRESHOLD_MARGIN_S for s in stops)


@pytest.mark.slow
def test_queued_traffic_stops_at_the_red_light_and_never_warns() -> None:
    scenario = make_scenario(4, "queue")
    assert _parking(scenario) == []
    queued = [s for s in scenario.stops if s.kind == "queue"]
    assert len(queued) >= 20
    layout = scenario.layout
    first_in_line = 0
    for stop in queued:
        track = scenario.track(stop.vehicle_id)
        assert stop.zone is None
        # The front of the first car in a queue stands before the stop line, and it stopped on red or amber.
        front = (
            stop.y_m + track.spec.length_m / 2
            if track.trip.lane == "out"
            else stop.y_m - track.spec.length_m / 2
        )
        if track.trip.lane == "out" and layout.stop_line_out_y - front < 2.6:
            first_in_line += 1
            assert front <= layout.stop_line_out_y
            assert scenario.light.state(stop.start_s) in ("red", "amber")
    assert first_in_line >= 3
    assert not any(s["warning"] for s in truth_document(scenario, SIZE, 10)["stops"])


@pytest.mark.slow
def test_a_jam_stands_longer_than_the_dwell_without_a_warning() -> None:
    scenario = make_scenario(1, "jam")
    jammed = [s for s in scenario.stops if s.kind == "jam"]
    assert (
        jammed and max((s.end_s or scenario.duration_s) - s.start_s for s in jammed) > scenario.rules.dwell_s
    )
    assert not any(s["warning"] for s in truth_document(scenario, SIZE, 10)["stops"])


def test_followers_overtake_a_double_parker_through_the_other_lane() -> None:
    scenario = make_scenario(1, "double_park")
    doubles = [s for s in scenario.stops if s.kind == "double_parked"]
    assert len(doubles) == 2 and all(s.zone is None for s in doubles)
    out_parker = next(s for s in doubles if scenario.track(s.vehicle_id).trip.lane == "out")
    lane_in = scenario.layout.lane_in
    overtakers = []
    for track in scenario.tracks:
        if track.trip.lane != "out" or track.id == out_parker.vehicle_id:
            continue
        during = (track.t0 + np.arange(len(track.x)) * DT >= out_parker.start_s) & (
            track.t0 + np.arange(len(track.x)) * DT <= (out_parker.end_s or scenario.duration_s)
        )
        beside = during & (np.abs(track.y - out_parker.y_m) < 3.0)
        if beside.any() and (track.x[beside] < lane_in.x1).all():
            overtakers.append(track.id)
    assert overtakers, "nobody passed the double parker in the oncoming lane"


@pytest.mark.slow
def test_buses_at_their_stop_are_exempt_even_past_the_dwell() -> None:
    stops = _judged(make_scenario(1, "bus_stop"))
    assert len(stops) == 4 and all(s["class"] == "bus" and s["zone"] == "bus_stop" for s in stops)
    assert all(s["exempt"] and not s["warning"] for s in stops)
    assert max(s["duration_s"] for s in stops) > 120


@pytest.mark.slow
def test_a_different_vehicle_takes_the_same_place_after_the_first_leaves() -> None:
    scenario = make_scenario(1, "swap")
    first, second = sorted(_judged(scenario), key=lambda s: s["start_s"])
    assert first["vehicle_id"] != second["vehicle_id"] and first["plate"] != second["plate"]
    assert first["zone"] == second["zone"] == "kerb_no_parking"
    assert np.hypot(*np.subtract(first["position_m"], second["position_m"])) < 0.5
    assert first["left_in_grace"] and second["violation"]
    assert 0 < second["start_s"] - first["end_s"] < 60


@pytest.mark.slow
def test_the_occluded_overstayer_is_hidden_up_to_about_30_seconds_and_still_a_violation() -> None:
    scenario = make_scenario(1, "occluded")
    document = truth_document(scenario, SIZE, 10)
    fire = next(s for s in document["stops"] if s["zone"] == "fire_lane" and s["kind"] == "parked")
    assert fire["violation"]
    long = [
        o for o in document["occlusions"] if o["vehicle_id"] == fire["vehicle_id"] and o["duration_s"] >= 10
    ]
    assert len(long) == 2
    for occlusion in long:
        assert occlusion["duration_s"] <= 30 and occlusion["min_visible"] < 0.1
        hiders = {document["vehicles"][i - 1]["body"] for i in occlusion["by"] if i < 50_000}
        assert "box_truck" in hiders


def test_custom_rules_shape_the_stories_and_the_judgement() -> None:
    rules = StreetRules(dwell_s=30.0, grace_s=90.0)
    scenario = make_scenario(5, "leaves_in_grace", rules=rules)
    (stop,) = _judged(scenario)
    assert 30 <= stop["duration_s"] < 120
    assert stop["warning_at_s"] == pytest.approx(stop["start_s"] + 30)
    assert stop["left_in_grace"]
    # Judged by stricter rules, the same stop is a violation.
    strict = truth_document(scenario, SIZE, 10, rules=StreetRules(dwell_s=10, grace_s=10))
    assert next(s for s in strict["stops"] if s["kind"] == "parked")["violation"]
    with pytest.raises(ValueError, match="positive"):
        StreetRules(dwell_s=0)


def test_judging_a_stop_that_lasts_past_the_end() -> None:
    stop = Stop(1, 100.0, None, 11.0, 20.0, 0.0, "kerb_no_parking", "parked")
    scenario = make_scenario(1, "overstay", duration_s=400)
    zone = scenario.layout.zone("kerb_no_parking")
    verdict = judge(stop, "car", zone, StreetRules(), scenario.duration_s)
    assert verdict["warning"] and verdict["warning_at_s"] == 220 and not verdict["violation"]
    assert not verdict["left_in_grace"]  # it has not left
    queued = Stop(2, 0.0, 500.0, 11.0, 20.0, 0.0, "kerb_no_parking", "queue")
    assert not judge(queued, "car", zone, StreetRules(), 600)["warning"]  # traffic is not parking
    bus = judge(stop, "bus", scenario.layout.zone("bus_stop"), StreetRules(), 2000)
    assert bus["exempt"] and not bus["violation"]


def test_vehicles_in_one_lane_never_overlap_and_drive_at_town_speeds() -> None:
    scenario = make_scenario(2, "busy_mixed")
    for t in np.arange(0, scenario.duration_s, 7.3):
        for lane in ("in", "out"):
            spans = []
            for track in scenario.tracks:
                pose = track.at(float(t))
                if track.trip.lane != lane or pose is None:
                    continue
                x, y, _ = pose
                lane_obj = scenario.layout.lane(lane)
                if not lane_obj.x0 + 0.3 < x < lane_obj.x1 - 0.3:
                    continue  # pulling in or out, or parked, or overtaking
                half = track.spec.length_m / 2
                spans.append((y - half, y + half, track.id))
            spans.sort()
            for (_a0, a1, ia), (b0, _b1, ib) in itertools.pairwise(spans):
                assert b0 >= a1 - 0.05, f"t={t:.1f}: vehicles {ia} and {ib} overlap in lane {lane}"
    assert max(float(track.speed.max()) for track in scenario.tracks) < 15.0


@pytest.mark.slow
def test_held_out_random_scenarios_differ_and_keep_to_their_seeds() -> None:
    scenarios = held_out_scenarios(3)
    assert [s.seed for s in scenarios] == [1_000_000, 1_000_001, 1_000_002]
    assert len({tuple(t.spec.plate_text for t in s.tracks[:3]) for s in scenarios}) == 3
    assert all(s.preset == "random" and 300 <= s.duration_s <= 1500 for s in scenarios)


def test_vehicles_have_real_world_sizes_by_class() -> None:
    rng = np.random.default_rng(0)
    ranges = {
        "car": (3.8, 5.0),
        "truck": (4.7, 8.6),
        "bus": (10.4, 12.1),
        "motorbike": (1.9, 2.3),
        "ebike": (1.5, 3.1),
    }
    for cls in VEHICLE_CLASSES:
        for _ in range(20):
            spec = make_vehicle(rng, cls)
            low, high = ranges[cls]
            assert low <= spec.length_m <= high, (cls, spec.body, spec.length_m)
            assert (spec.plate_text is None) == (spec.body in ("ebike", "tricycle"))
    with pytest.raises(ValueError, match="unknown vehicle class"):
        make_vehicle(rng, "tank")


def test_bad_options_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        make_scenario(1, "parade")
    with pytest.raises(ValueError, match="time of day"):
        make_scenario(1, "overstay", time_of_day="noon")
    with pytest.raises(ValueError, match="positive"):
        make_scenario(1, "overstay", duration_s=0)
