"""The dwell/grace state machine on scripted tracks: warning after the dwell, violation after the grace,
the notice working, occlusions, queues, re-parking, a swapped vehicle, zone hours and exemptions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from edge.street.config import StreetConfig
from edge.street.parking import ParkingAction, ParkingAnalyzer
from tests.edge.street.scripted import (
    KERB_Y,
    KERB_ZONE,
    LANE_Y,
    MONDAY_8AM,
    SHANGHAI,
    Vehicle,
    passing,
    run,
    stop_at,
    street_config,
)


def test_a_vehicle_that_overstays_is_warned_then_recorded_then_seen_leaving() -> None:
    result = run(street_config(), [Vehicle(stop_at(900, 10.0, 900.0))], 930)
    assert result.kinds() == [
        ("warning", "warning", 1),
        ("violation", "violation", 1),
        ("end", "left_after_violation", 1),
    ]
    warning, violation, end = result.actions
    # It came to rest at t=10: warned 120 s later, recorded 600 s after the warning.
    assert warning.t == pytest.approx(130, abs=1.0) and warning.dwell_s == pytest.approx(120, abs=1.0)
    assert warning.started_t == pytest.approx(10, abs=1.0)
    assert violation.t == pytest.approx(730, abs=1.0) and violation.grace_s == pytest.approx(600, abs=1.0)
    assert violation.dwell_s == pytest.approx(720, abs=1.0)
    # It started off at t=900; the end says so, with the dwell to the second.
    assert end.departure == "drove_off" and end.violation_recorded
    assert end.dwell_s == pytest.approx(890, abs=2.0)
    assert warning.zone == "kerb" and warning.vehicle_class == "car"
    assert warning.box.y2 == pytest.approx(KERB_Y, abs=3)


def test_leaving_during_the_grace_ends_the_warning_without_violation() -> None:
    result = run(street_config(), [Vehicle(stop_at(900, 10.0, 400.0))], 430)
    assert result.kinds() == [("warning", "warning", 1), ("end", "left_in_grace", 1)]
    end = result.actions[1]
    assert end.departure == "drove_off" and not end.violation_recorded
    assert end.grace_s == pytest.approx(270, abs=2.0)
    assert end.dwell_s == pytest.approx(390, abs=2.0)


def test_a_drop_off_shorter_than_the_dwell_is_nothing() -> None:
    result = run(street_config(), [Vehicle(stop_at(900, 10.0, 90.0))], 200)
    assert result.actions == []


def test_occluded_for_25_s_keeps_the_case_and_its_clocks() -> None:
    # A bus stops in the lane in front of the parked car: the car is not detected from 300 s to 325 s.
    car = Vehicle(stop_at(900, 10.0, 900.0), paint=3, hidden=[(300.0, 325.0)])
    bus = Vehicle(stop_at(900, 300.0, 322.0, y=KERB_Y + 60), paint=20, label="bus", size=(700.0, 330.0))
    # People walk past: half of the car is hidden for a minute (its box shrinks from the right).
    car.crop_right = [(400.0, 460.0, 0.5)]
    result = run(street_config(), [car, bus], 930)
    assert result.kinds() == [
        ("warning", "warning", 1),
        ("violation", "violation", 1),
        ("end", "left_after_violation", 1),
    ]
    assert result.actions[1].t == pytest.approx(730, abs=1.0)  # the clocks did not restart
    assert result.actions[2].dwell_s == pytest.approx(890, abs=2.0)


def test_hidden_at_the_dwell_is_warned_when_seen_again() -> None:
    car = Vehicle(stop_at(900, 10.0, 900.0), hidden=[(120.0, 140.0)])
    result = run(street_config(), [car], 300)
    [warning] = result.actions
    assert warning.t == pytest.approx(140, abs=1.0) and warning.dwell_s == pytest.approx(130, abs=1.0)


def test_hidden_longer_than_the_tolerance_ends_the_case_and_a_new_one_starts() -> None:
    car = Vehicle(stop_at(900, 10.0, 2000.0), hidden=[(200.0, 240.0)])
    result = run(street_config(), [car], 400)
    assert result.kinds() == [
        ("warning", "warning", 1),
        ("end", "left_in_grace", 1),
        ("warning", "warning", 2),
    ]
    end = result.actions[1]
    assert end.departure == "not_seen_again"
    assert end.t == pytest.approx(199.5, abs=1.0)  # when it was last seen, not when the tolerance ran out
    # Seen again at 240 after 40 s: a new case, whose dwell starts when it is seen again.
    assert result.actions[2].t == pytest.approx(240 + 120, abs=6.0)


def _queue(cycle_s: float, red_s: float, cars: int, seconds: float, y: float) -> list[Vehicle]:
    """Cars queueing at a light at the zone's end: they drive up in the first 10 s, then stand for red_s,
    then each moves up one car length, cycle after cycle."""
    vehicles = []
    for i in range(cars):

        def path(t: float, i: int = i) -> tuple[float, float] | None:
            if t < 10.0:
                return (1700.0 - 320.0 * i - 60.0 * (10.0 - t), y)
            cycle, into = divmod(t - 10.0, cycle_s)
            x = 1700.0 - 320.0 * i + 320.0 * cycle  # one car length forward every cycle
            if into > red_s:  # green: creeping up one car length over the rest of the cycle
                x += 320.0 * (into - red_s) / (cycle_s - red_s)
            return (x, y) if x < 1900 else None

        vehicles.append(Vehicle(path, paint=5 + i))
    return vehicles


def test_a_queue_at_a_light_inside_the_zone_is_not_parking() -> None:
    # 90 s red, then the queue moves up one car length; for a quarter of an hour.
    result = run(street_config(), _queue(110.0, 90.0, cars=5, seconds=900, y=KERB_Y), 900)
    assert result.actions == []


def test_a_jam_longer_than_the_dwell_is_held_while_its_queue_stands() -> None:
    # The whole queue stands 200 s (longer than the 120 s dwell), then moves on: no warning.
    result = run(street_config(), _queue(220.0, 200.0, cars=4, seconds=660, y=KERB_Y), 660)
    assert result.actions == []
    # With the queue hold off, the same jam is warned: the hold is what keeps it out.
    held_off = run(
        street_config(queue={"hold_max_s": 0}), _queue(220.0, 200.0, cars=4, seconds=660, y=KERB_Y), 660
    )
    assert {a.kind for a in held_off.actions} >= {"warning"}


def test_two_cars_that_park_together_are_warned_after_the_longest_hold() -> None:
    first = Vehicle(stop_at(600, 10.0, 2000.0), paint=3)
    second = Vehicle(stop_at(950, 12.0, 2000.0), paint=9)
    result = run(street_config(), [first, second], 500)
    warnings = result.of("warning")
    assert len(warnings) == 2
    assert all(w.dwell_s == pytest.approx(120 + 300, abs=1.0) for w in warnings)


def test_traffic_in_the_through_lane_is_outside_the_zone() -> None:
    stuck = Vehicle(stop_at(900, 10.0, 800.0, y=LANE_Y))
    assert run(street_config(), [stuck], 900).actions == []


def test_re_parking_inside_the_zone_keeps_the_case_and_the_grace_clock() -> None:
    # Warned at 130, moves 1.5 car lengths forward at 300 and stops again, stays till 1000.
    def path(t: float) -> tuple[float, float] | None:
        first = stop_at(600, 10.0, 300.0)(t)
        if t <= 300.0:
            return first
        if t <= 304.0:
            return (600 + 450.0 * (t - 300.0) / 4.0, KERB_Y)
        return (1050.0 + 1500.0 * (max(0.0, t - 1000.0) / 4.0) ** 2, KERB_Y)

    result = run(street_config(), [Vehicle(path)], 1010)
    assert result.kinds() == [
        ("warning", "warning", 1),
        ("violation", "violation", 1),
        ("end", "left_after_violation", 1),
    ]
    assert result.actions[1].t == pytest.approx(730, abs=1.0)  # grace counted from the first warning
    assert result.actions[1].box.x1 == pytest.approx(1050 - 150, abs=3)  # the photo is of where it is now


def test_leaving_the_zone_and_coming_back_is_a_new_case() -> None:
    def path(t: float) -> tuple[float, float] | None:
        if t <= 300.0:
            return stop_at(900, 10.0, 200.0)(t)
        return stop_at(900, 400.0, 2000.0)(t)

    result = run(street_config(), [Vehicle(path)], 560)
    assert result.kinds() == [
        ("warning", "warning", 1),
        ("end", "left_in_grace", 1),
        ("warning", "warning", 2),
    ]
    assert result.actions[2].dwell_s == pytest.approx(120, abs=1.0)


def test_a_different_vehicle_taking_the_spot_is_a_new_case() -> None:
    # Red car parked from 10; a truck stands in front of it 300..330; meanwhile the red car leaves and a
    # blue car parks in the same spot. When the truck goes, the blue car is there.
    red = Vehicle(stop_at(900, 10.0, 305.0), paint=3, hidden=[(300.0, 400.0)])
    blue = Vehicle(stop_at(905, 320.0, 2000.0), paint=30, hidden=[(0.0, 330.0)])
    truck = Vehicle(stop_at(900, 300.0, 326.0, y=KERB_Y + 60), paint=20, label="truck", size=(600.0, 300.0))
    result = run(street_config(), [red, blue, truck], 500)
    assert result.kinds() == [
        ("warning", "warning", 1),
        ("end", "left_in_grace", 1),
        ("warning", "warning", 2),
    ]
    end = result.actions[1]
    assert end.departure == "not_seen_again"
    assert end.t == pytest.approx(300, abs=1.0)  # last seen before the truck came
    assert result.actions[1].track_id != result.actions[2].track_id
    # The red car's case ended as soon as the blue one was seen standing there, not after 30 s.
    assert result.actions[2].started_t == pytest.approx(330, abs=1.0)


def test_the_same_vehicle_reappearing_is_not_a_new_case_even_beside_a_look_alike() -> None:
    # Same paint as the car parked next to it: position tells them apart.
    car = Vehicle(stop_at(700, 10.0, 900.0), paint=3, hidden=[(200.0, 220.0)])
    neighbour = Vehicle(stop_at(1150, 100.0, 900.0), paint=3)
    result = run(street_config(), [car, neighbour], 850)
    cases = {(a.kind, a.case_id) for a in result.actions}
    assert cases == {("warning", 1), ("violation", 1), ("warning", 2), ("violation", 2)}


def test_zone_hours_count_the_dwell_from_the_start_of_the_ban() -> None:
    school = {
        **KERB_ZONE,
        "name": "school_gate",
        "hours": ["07:00-09:00"],
        "days": ["mon", "tue", "wed", "thu", "fri"],
    }
    config = street_config(zones=[school])
    start = datetime(2026, 6, 1, 6, 50, tzinfo=SHANGHAI)
    # Parked from 06:50:10: the ban starts at 07:00, the warning comes at 07:02.
    result = run(config, [Vehicle(stop_at(900, 10.0, 3000.0))], 1400, start=start)
    [warning, violation] = result.actions
    assert warning.t == pytest.approx(600 + 120, abs=1.0) and warning.dwell_s == pytest.approx(120, abs=1.0)
    assert violation.t == pytest.approx(600 + 720, abs=1.0)


def test_outside_zone_hours_nothing_and_the_end_of_the_ban_ends_the_case() -> None:
    school = {
        **KERB_ZONE,
        "name": "school_gate",
        "hours": ["07:00-09:00"],
        "days": ["mon", "tue", "wed", "thu", "fri"],
    }
    config = street_config(zones=[school])
    assert (
        run(
            config,
            [Vehicle(stop_at(900, 10.0, 1000.0))],
            1000,
            start=datetime(2026, 6, 1, 10, 0, tzinfo=SHANGHAI),
        ).actions
        == []
    )
    # Saturday 6 June 2026, 07:30: the ban is for weekdays.
    saturday = datetime(2026, 6, 6, 7, 30, tzinfo=SHANGHAI)
    assert run(config, [Vehicle(stop_at(900, 10.0, 1000.0))], 1000, start=saturday).actions == []
    # Warned at 08:52, the ban ends at 09:00 during the grace: the case ends, no violation.
    result = run(
        config, [Vehicle(stop_at(900, 10.0, 2000.0))], 900, start=datetime(2026, 6, 1, 8, 50, tzinfo=SHANGHAI)
    )
    assert result.kinds() == [("warning", "warning", 1), ("end", "zone_hours_ended", 1)]
    assert result.actions[1].t == pytest.approx(600, abs=1.0) and not result.actions[1].violation_recorded


def test_an_overnight_ban_belongs_to_the_day_it_starts() -> None:
    night = {**KERB_ZONE, "name": "night_ban", "hours": ["22:00-06:00"], "days": ["fri"]}
    config = street_config(zones=[night])
    # Saturday 02:00 is in Friday's night ban; Sunday 02:00 is not.
    saturday_2am = datetime(2026, 6, 6, 2, 0, tzinfo=SHANGHAI)
    sunday_2am = datetime(2026, 6, 7, 2, 0, tzinfo=SHANGHAI)
    assert [
        a.kind for a in run(config, [Vehicle(stop_at(900, 10.0, 400.0))], 420, start=saturday_2am).actions
    ] == ["warning", "end"]
    assert run(config, [Vehicle(stop_at(900, 10.0, 400.0))], 420, start=sunday_2am).actions == []


def test_an_exempt_bus_at_its_stop_is_nothing_and_a_car_there_is_warned() -> None:
    stop = {**KERB_ZONE, "name": "bus_stop", "exempt_classes": ["bus"]}
    config = street_config(zones=[stop])
    bus = Vehicle(stop_at(700, 10.0, 700.0), label="bus", size=(600.0, 300.0), paint=12)
    car = Vehicle(stop_at(1400, 60.0, 700.0), label="car", paint=3)
    result = run(config, [bus, car], 400)
    assert [(a.kind, a.vehicle_class) for a in result.actions] == [("warning", "car")]


def test_overlapping_zones_the_first_in_force_judges() -> None:
    fire_lane = {
        "name": "fire_lane",
        "polygon": [[800, 650], [1100, 650], [1100, 800], [800, 800]],
        "dwell_s": 30,
        "grace_s": 60,
    }
    config = street_config(zones=[fire_lane, KERB_ZONE])
    result = run(
        config, [Vehicle(stop_at(900, 10.0, 2000.0)), Vehicle(stop_at(300, 10.0, 2000.0), paint=9)], 200
    )
    assert [(a.kind, a.zone, round(a.t)) for a in result.actions] == [
        ("warning", "fire_lane", 40),
        ("violation", "fire_lane", 100),
        ("warning", "kerb", 130),
    ]


def test_grace_zero_records_the_violation_with_the_warning() -> None:
    config = street_config(zones=[{**KERB_ZONE, "grace_s": 0}])
    result = run(config, [Vehicle(stop_at(900, 10.0, 2000.0))], 200)
    assert [a.kind for a in result.actions] == ["warning", "violation"]
    assert result.actions[0].t == result.actions[1].t


def test_a_passing_vehicle_of_another_colour_does_not_take_a_hidden_cars_track() -> None:
    # A white van drives past in the kerb lane itself, right through the parked car's box, hiding it.
    car = Vehicle(stop_at(900, 10.0, 900.0), paint=3, hidden=[(196.0, 204.0)])
    van = Vehicle(passing(KERB_Y + 10, 195.0 - 1100.0 / 300.0), paint=25, label="truck")
    result = run(street_config(), [car, van], 760)
    assert result.kinds() == [("warning", "warning", 1), ("violation", "violation", 1)]


def test_cars_already_parked_when_the_camera_starts_are_not_a_queue() -> None:
    # Both stand from the first frame: nothing says they stopped together, so no hold.
    first = Vehicle(lambda t: (600.0, KERB_Y), paint=3)
    second = Vehicle(lambda t: (950.0, KERB_Y), paint=9)
    result = run(street_config(), [first, second], 200)
    assert [(a.kind, round(a.dwell_s)) for a in result.actions] == [("warning", 120), ("warning", 120)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_flaky_detector_does_not_split_or_lose_the_case(seed: int) -> None:
    # 20% of sightings missed, boxes jittering by up to 6 px, five frames a second, traffic passing.
    parked = Vehicle(stop_at(900, 10.0, 800.0), paint=3)
    traffic = [Vehicle(passing(LANE_Y, 20.0 * i, speed=400.0), paint=(7 * i) % 40) for i in range(30)]
    result = run(street_config(), [parked, *traffic], 830, step=0.2, jitter_px=6.0, miss_rate=0.2, seed=seed)
    assert result.kinds() == [
        ("warning", "warning", 1),
        ("violation", "violation", 1),
        ("end", "left_after_violation", 1),
    ]
    assert result.actions[0].dwell_s == pytest.approx(120, abs=1.0)
    assert result.actions[2].dwell_s == pytest.approx(790, abs=2.0)


def _run_retuned(
    config: StreetConfig, vehicle: Vehicle, seconds: float, retune_at: float, retuned: StreetConfig
) -> tuple[list[ParkingAction], list[ParkingAction]]:
    """The analyzer frame by frame, given ``retuned`` at ``retune_at`` (a config applied live): the
    actions of the frames, and those ``retune`` itself returned."""
    analyzer = ParkingAnalyzer(config)
    actions: list[ParkingAction] = []
    from_retune: list[ParkingAction] = []
    for i in range(int(seconds / 0.5) + 1):
        t = i * 0.5
        if t == retune_at:
            from_retune = analyzer.retune(retuned)
        sighting = vehicle.sighting(t)
        actions += analyzer.update(t, MONDAY_8AM + timedelta(seconds=t), [sighting] if sighting else [])
    return actions, from_retune


def test_a_grace_shortened_live_applies_to_the_open_case() -> None:
    # Warned at 130 s (dwell 120 s); at 200 s the grace goes from 600 s to 100 s: recorded at 230 s.
    shorter = street_config(zones=[{**KERB_ZONE, "grace_s": 100}])
    actions, ended = _run_retuned(street_config(), Vehicle(stop_at(900, 10.0, 900.0)), 300, 200.0, shorter)
    assert ended == []
    assert [(a.kind, a.case_id) for a in actions] == [("warning", 1), ("violation", 1)], "the same case"
    assert actions[1].t == pytest.approx(230, abs=1.0) and actions[1].grace_s == pytest.approx(100, abs=1.0)


def test_a_zone_removed_live_ends_its_open_case() -> None:
    elsewhere = {"name": "bus_stop", "polygon": [[100, 900], [600, 900], [600, 1000], [100, 1000]]}
    actions, ended = _run_retuned(
        street_config(), Vehicle(stop_at(900, 10.0, 900.0)), 400, 200.0, street_config(zones=[elsewhere])
    )
    assert [(a.kind, a.case_id) for a in actions] == [("warning", 1)], "nothing more in a zone that is gone"
    [end] = ended
    assert (end.kind, end.case_id, end.stage, end.zone) == ("end", 1, "zone_hours_ended", "kerb")
    assert not end.violation_recorded
