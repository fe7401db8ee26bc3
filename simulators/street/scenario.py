"""Seeded street scenarios: named presets and random held-out sets, and what happened in them.

``make_scenario(seed, preset)`` lays out the street, poses the camera, plans the trips (through
traffic, and the scripted stops each preset is about), and integrates the traffic once; the stops in
the ground truth are read back from the integrated paths, so they hold whatever the traffic did (a
vehicle that had to wait for a gap before pulling out has the longer stop it really had).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from simulators.street.camera import CameraPose, StreetCamera
from simulators.street.layout import StreetLayout, random_layout, random_pose
from simulators.street.people import Pedestrian, plan_pedestrians
from simulators.street.traffic import DT, DoublePark, LightCycle, Park, Track, TrafficSim, Trip
from simulators.street.vehicles import VehicleSpec, make_vehicle, random_class

PRESETS = (
    "overstay",
    "leaves_in_grace",
    "drop_off",
    "queue",
    "jam",
    "double_park",
    "bus_stop",
    "occluded",
    "swap",
    "busy_mixed",
    "random",
)
TIMES_OF_DAY = ("day", "dusk", "night")
WEATHERS = ("clear", "rain")
PARKING_KINDS = ("parked", "drop_off", "bus_stop", "double_parked")  # the rest is traffic: never parking
STOP_MIN_S = 1.0  # a vehicle standing still at least this long has stopped
# Scripted stays keep this far from the dwell and grace thresholds, so a ±2 s reading cannot flip them.
THRESHOLD_MARGIN_S = 25.0
HELD_OUT_FIRST_SEED = 1_000_000  # random scenarios from here on are kept out of tuning and training


@dataclass(frozen=True)
class StreetRules:
    """The soft-enforcement timing every zone uses: a warning after ``dwell_s``, a violation ``grace_s`` later."""

    dwell_s: float = 120.0
    grace_s: float = 600.0

    def __post_init__(self) -> None:
        if self.dwell_s <= 0 or self.grace_s <= 0:
            raise ValueError(f"dwell_s and grace_s must be positive, got {self.dwell_s} and {self.grace_s}")


@dataclass(frozen=True)
class Stop:
    """A vehicle standing still at least ``STOP_MIN_S``; ``end_s`` None: still there when the scenario ends."""

    vehicle_id: int
    start_s: float
    end_s: float | None
    x_m: float
    y_m: float
    heading: float
    zone: str | None
    kind: str  # parked, drop_off, bus_stop, double_parked (PARKING_KINDS); queue, jam, traffic

    @property
    def parking(self) -> bool:
        return self.kind in PARKING_KINDS


@dataclass(eq=False)
class Scenario:
    seed: int
    preset: str
    duration_s: float
    time_of_day: str
    weather: str
    rules: StreetRules
    layout: StreetLayout
    pose: CameraPose
    light: LightCycle
    jam: list[tuple[float, float]]
    tracks: list[Track]
    pedestrians: list[Pedestrian]

    def camera(self, size: tuple[int, int]) -> StreetCamera:
        return StreetCamera(self.pose, size[0], size[1])

    def track(self, vehicle_id: int) -> Track:
        for track in self.tracks:
            if track.id == vehicle_id:
                return track
        raise KeyError(vehicle_id)

    @cached_property
    def stops(self) -> list[Stop]:
        return [stop for track in self.tracks for stop in _stops_of(self, track)]

    @property
    def abandoned(self) -> list[Track]:
        """Scripted stops that did not happen (their place was taken): a preset should have none."""
        return [track for track in self.tracks if track.abandoned]


def make_scenario(
    seed: int,
    preset: str = "random",
    *,
    duration_s: float | None = None,
    time_of_day: str | None = None,
    weather: str | None = None,
    rules: StreetRules | None = None,
) -> Scenario:
    """Plan and integrate a scenario. ``None`` draws the value from the seed; ``duration_s=None`` takes the
    preset's own length (long enough for its story under ``rules``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown scenario {preset!r}: expected one of {', '.join(PRESETS)}")
    if duration_s is not None and duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    rules = rules or StreetRules()
    rng = np.random.default_rng([seed, zlib.crc32(preset.encode())])  # stable if presets are added
    if time_of_day is None:
        time_of_day = str(rng.choice(TIMES_OF_DAY, p=[0.55, 0.2, 0.25]))
    if time_of_day not in TIMES_OF_DAY:
        raise ValueError(f"unknown time of day {time_of_day!r}: expected one of {', '.join(TIMES_OF_DAY)}")
    if weather is None:
        weather = str(rng.choice(WEATHERS, p=[0.75, 0.25]))
    if weather not in WEATHERS:
        raise ValueError(f"unknown weather {weather!r}: expected one of {', '.join(WEATHERS)}")
    layout = random_layout(rng)
    pose = random_pose(rng, layout)
    planner = _Planner(rng, layout, pose, rules)
    story_end = _PLANS[preset](planner)
    duration = float(duration_s) if duration_s is not None else float(math.ceil(story_end / 10.0) * 10.0)
    planner.through_traffic(duration)
    sim = TrafficSim(layout, planner.trips, planner.light, duration, planner.jam)
    tracks = sim.run()
    pedestrians = plan_pedestrians(rng, layout, planner.light, duration, planner.pedestrian_rate, 50_000)
    return Scenario(
        seed=seed,
        preset=preset,
        duration_s=duration,
        time_of_day=time_of_day,
        weather=weather,
        rules=rules,
        layout=layout,
        pose=pose,
        light=planner.light,
        jam=planner.jam,
        tracks=tracks,
        pedestrians=pedestrians,
    )


def held_out_scenarios(
    count: int, first_seed: int = HELD_OUT_FIRST_SEED, **options: object
) -> list[Scenario]:
    """``count`` random scenarios from seeds no preset, test or tuning run uses."""
    return [make_scenario(first_seed + i, "random", **options) for i in range(count)]  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- planning


class _Planner:
    def __init__(self, rng: np.random.Generator, layout: StreetLayout, pose: CameraPose, rules: StreetRules):
        self.rng = rng
        self.layout = layout
        self.pose = pose
        self.rules = rules
        self.trips: list[Trip] = []
        self.next_id = 1
        self.jam: list[tuple[float, float]] = []
        self.rate = {"in": 4.0, "out": 4.0}  # through vehicles per minute
        self.mix: dict[str, float] | None = None
        self.pedestrian_rate = float(rng.uniform(2, 6))
        green = float(rng.uniform(28, 42))
        self.light = LightCycle(green, 3.0, float(rng.uniform(25, 38)), float(rng.uniform(0, 60)))
        # Booked places per strip: (y0, y1, t0, t1).
        self.busy: dict[str, list[tuple[float, float, float, float]]] = {"left": [], "right": []}

    # Stays by story, kept clear of the thresholds.
    def stay(self, story: str) -> float:
        d, g, m = self.rules.dwell_s, self.rules.grace_s, THRESHOLD_MARGIN_S
        # A vehicle may wait some seconds for a gap before it pulls out: stays end that much short.
        if story == "drop_off":
            return float(self.rng.uniform(min(10.0, d / 3), max(d - m - 20, d / 2)))
        if story == "in_grace":
            return float(d + self.rng.uniform(min(m, g / 4), max(g - m - 20, g / 2)))
        if story == "overstay":
            return float(d + g + self.rng.uniform(m, m + 150))
        if story == "brief":  # a bus at its stop
            return float(self.rng.uniform(12, 45))
        raise ValueError(story)

    def vehicle(self, cls: str | None = None, body: str | None = None) -> VehicleSpec:
        return make_vehicle(self.rng, cls or random_class(self.rng, self.mix), body)

    def _id(self) -> int:
        ident = self.next_id
        self.next_id += 1
        return ident

    def arrival(self, lane: str, y: float, depart_s: float, spec: VehicleSpec) -> float:
        """A rough time of arrival at ``y`` (to keep planned stops from sharing a place)."""
        distance = self.layout.lane(lane).s_at(y)
        return depart_s + distance / (0.8 * spec.v0_mps) + 4.0

    def spot(
        self, area: str, spec: VehicleSpec, t0: float, t1: float, near: float | None = None
    ) -> float | None:
        """A free ``y`` for the vehicle's centre in a zone (or ``bays``) between ``t0`` and ``t1``."""
        if area == "bays":
            side, ranges = "right", list(self.layout.parking_bays)
        else:
            zone = self.layout.zone(area)
            side, ranges = zone.side, [(zone.y0, zone.y1)]
        half = spec.length_m / 2 + 0.6
        options: list[float] = []
        for y0, y1 in ranges:
            if y1 - y0 < 2 * half:
                continue
            if near is not None and y0 + half <= near <= y1 - half:
                options.append(near)
            options.extend(float(v) for v in self.rng.uniform(y0 + half, y1 - half, 12))
        for y in options:
            free = all(
                not (b1 > y - half - 0.8 and b0 < y + half + 0.8 and u1 > t0 and u0 < t1)
                for b0, b1, u0, u1 in self.busy[side]
            )
            if free:
                self.busy[side].append((y - half, y + half, t0, t1))
                return y
        return None

    def park(
        self,
        area: str,
        story: str,
        depart_s: float,
        *,
        cls: str = "car",
        body: str | None = None,
        spec: VehicleSpec | None = None,
        stay_s: float | None = None,
        near: float | None = None,
        after: int | None = None,
        kind: str | None = None,
    ) -> tuple[int, float, float]:
        """Plan a stop; returns (trip id, planned y, planned stay)."""
        spec = spec or self.vehicle(cls, body)
        side = "right" if area == "bays" else self.layout.zone(area).side
        lane = "out" if side == "right" else "in"
        stay = self.stay(story) if stay_s is None else stay_s
        eta = self.arrival(lane, 30.0, depart_s, spec)
        y = self.spot(area, spec, eta - 30, eta + stay + 60, near)
        if y is None:
            raise RuntimeError(f"no room in {area} for a {spec.body} at {depart_s:.0f} s")
        label = kind or {"drop_off": "drop_off", "brief": "bus_stop"}.get(story, "parked")
        ident = self._id()
        self.trips.append(Trip(ident, spec, lane, depart_s, Park(y, stay, label), after))
        return ident, y, stay

    def double_park(
        self,
        lane: str,
        y: float,
        stay_s: float,
        depart_s: float,
        *,
        cls: str = "truck",
        body: str | None = "box_truck",
    ) -> int:
        ident = self._id()
        self.trips.append(Trip(ident, self.vehicle(cls, body), lane, depart_s, DoublePark(y, stay_s)))
        return ident

    def occluder_y(self, target_x: float, target_y: float, lane: str) -> float:
        """Where, along ``lane``, a vehicle stands on the camera's line of sight to a target."""
        x_lane = self.layout.lane(lane).centre
        fraction = (x_lane - self.pose.x_m) / (target_x - self.pose.x_m)
        return self.pose.y_m + (target_y - self.pose.y_m) * fraction

    def through_traffic(self, duration_s: float) -> None:
        for lane, per_minute in self.rate.items():
            t = float(self.rng.uniform(0, 3))
            while per_minute > 0 and t < duration_s:
                self.trips.append(Trip(self._id(), self.vehicle(), lane, t))
                t += float(self.rng.exponential(60.0 / per_minute)) + 1.0

    def jam_phases(
        self, start: float, end: float, blocked: tuple[float, float], open_: tuple[float, float]
    ) -> None:
        t = start
        while t < end:
            length = float(self.rng.uniform(*blocked))
            self.jam.append((t, min(t + length, end)))
            t += length + float(self.rng.uniform(*open_))

    def end_of(self, depart_s: float, stay_s: float) -> float:
        """When a planned stop should be over, with room for the traffic on the way."""
        return depart_s + 40.0 + stay_s + 30.0


def _plan_overstay(p: _Planner) -> float:
    depart = float(p.rng.uniform(2, 12))
    _, _, stay = p.park("kerb_no_parking", "overstay", depart, cls="car")
    return p.end_of(depart, stay)


def _plan_leaves_in_grace(p: _Planner) -> float:
    depart = float(p.rng.uniform(2, 12))
    _, _, stay = p.park("kerb_no_parking", "in_grace", depart, cls="car")
    return p.end_of(depart, stay) + 30


def _plan_drop_off(p: _Planner) -> float:
    end = 0.0
    depart = float(p.rng.uniform(2, 10))
    for area, cls in (
        ("kerb_no_parking", "car"),
        ("fire_lane", "car"),
        ("bus_stop", "car"),
        ("school_gate", "ebike"),
    ):
        _, _, stay = p.park(area, "drop_off", depart, cls=cls, body="tricycle" if cls == "ebike" else None)
        end = max(end, p.end_of(depart, stay))
        depart += float(p.rng.uniform(25, 60))
    return max(end, 240.0)


def _plan_queue(p: _Planner) -> float:
    p.rate = {"in": float(p.rng.uniform(6, 10)), "out": float(p.rng.uniform(12, 18))}
    p.light = LightCycle(
        float(p.rng.uniform(18, 25)), 3.0, float(p.rng.uniform(50, 70)), float(p.rng.uniform(0, 60))
    )
    return 300.0


def _plan_jam(p: _Planner) -> float:
    p.rate = {"in": float(p.rng.uniform(10, 14)), "out": float(p.rng.uniform(6, 10))}
    # One stand longer than the dwell (traffic all the same), then stop-and-go.
    start = float(p.rng.uniform(10, 30))
    long = p.rules.dwell_s + float(p.rng.uniform(30, 60))
    p.jam.append((start, start + long))
    p.jam_phases(start + long + float(p.rng.uniform(8, 20)), start + long + 200.0, (30, 90), (8, 20))
    return start + long + 200.0


def _plan_double_park(p: _Planner) -> float:
    p.rate = {"in": float(p.rng.uniform(4, 7)), "out": float(p.rng.uniform(5, 8))}
    kerb = p.layout.zone("kerb_no_parking")
    p.double_park(
        "out",
        float(p.rng.uniform(kerb.y0 + 6, kerb.y1 - 4)),
        float(p.rng.uniform(40, 90)),
        float(p.rng.uniform(5, 20)),
        cls="car",
        body=None,
    )
    fire = p.layout.zone("fire_lane")
    p.double_park(
        "in",
        float(p.rng.uniform(fire.y0 + 6, fire.y1 - 4)),
        float(p.rng.uniform(30, 70)),
        float(p.rng.uniform(120, 160)),
    )
    return 300.0


def _plan_bus_stop(p: _Planner) -> float:
    depart = float(p.rng.uniform(2, 10))
    for _ in range(3):
        _, _, stay = p.park("bus_stop", "brief", depart, cls="bus")
        depart += stay + float(p.rng.uniform(90, 130))
    # A layover longer than the dwell: still exempt.
    _, _, stay = p.park(
        "bus_stop", "brief", depart, cls="bus", stay_s=p.rules.dwell_s + float(p.rng.uniform(30, 60))
    )
    return p.end_of(depart, stay)


def _plan_occluded(p: _Planner) -> float:
    """A car overstays on the fire lane; a truck stops in the lane between it and the camera for up to
    ~25 s (twice), and a truck delivers for a while in front of a car overstaying at the kerb."""
    depart = float(p.rng.uniform(2, 8))
    fire = p.layout.zone("fire_lane")
    _car, y_car, stay = p.park(
        "fire_lane", "overstay", depart, cls="car", near=fire.y0 + float(p.rng.uniform(6, 12))
    )
    spec = p.trips[-1].spec
    x_car = p.layout.kerb_x("left", spec.width_m)
    y_occ = p.occluder_y(x_car, y_car, "in")
    arrive = p.arrival("in", y_car, depart, spec)
    for start in (arrive + p.rules.dwell_s / 2, arrive + p.rules.dwell_s + p.rules.grace_s / 2):
        p.double_park("in", y_occ, float(p.rng.uniform(14, 20)), start - 12.0)
    kerb = p.layout.zone("kerb_no_parking")
    _, y_kerb, stay2 = p.park("kerb_no_parking", "overstay", depart + 20, cls="car", near=kerb.y1 - 4.0)
    p.park(
        "kerb_no_parking",
        "drop_off",
        depart + 20 + p.rules.dwell_s + 60,
        cls="truck",
        body="box_truck",
        stay_s=float(p.rng.uniform(12, 17)),
        near=max(kerb.y0 + 5, y_kerb - 10.5),
    )
    return max(p.end_of(depart, stay), p.end_of(depart + 20, stay2))


def _plan_swap(p: _Planner) -> float:
    depart = float(p.rng.uniform(2, 10))
    kerb = p.layout.zone("kerb_no_parking")
    first, y, stay = p.park(
        "kerb_no_parking",
        "in_grace",
        depart,
        cls="car",
        near=(kerb.y0 + kerb.y1) / 2,
        stay_s=p.rules.dwell_s + float(p.rng.uniform(60, 150)),
    )
    # The second vehicle takes the same place soon after the first drives off. Its time of departure is
    # counted from then (``after``); the place is booked from the first one's end.
    spec = p.vehicle("car")
    second_stay = p.stay("overstay")
    p.busy["right"] = [b for b in p.busy["right"] if not (b[0] <= y <= b[1])]
    ident = p._id()
    p.trips.append(
        Trip(ident, spec, "out", float(p.rng.uniform(3, 15)), Park(y, second_stay, "parked"), first)
    )
    return p.end_of(depart, stay) + 20 + second_stay + 40


def _plan_busy_mixed(p: _Planner) -> float:
    p.rate = {"in": float(p.rng.uniform(4, 7)), "out": float(p.rng.uniform(4, 7))}
    r = p.rules
    ends = []
    _a, _, s = p.park("kerb_no_parking", "overstay", float(p.rng.uniform(2, 10)), cls="car")
    ends.append(p.end_of(5, s))
    _, _, s = p.park(
        "fire_lane", "overstay", float(p.rng.uniform(20, 40)), cls=str(p.rng.choice(["car", "truck"]))
    )
    ends.append(p.end_of(30, s))
    t = float(p.rng.uniform(60, 120))
    _, _, s = p.park("kerb_no_parking", "in_grace", t, cls="car")
    ends.append(p.end_of(t, s))
    areas = ["kerb_no_parking", "school_gate", "hatched_box"]
    for k in range(2):
        t = float(p.rng.uniform(30, 400)) + 200 * k
        for area in p.rng.permutation(areas):
            try:
                p.park(str(area), "drop_off", t, cls=str(p.rng.choice(["car", "ebike", "motorbike"])))
                break
            except RuntimeError:
                continue
    t = 20.0
    while t < r.dwell_s + r.grace_s:
        try:
            _, _, s = p.park("bus_stop", "brief", t, cls="bus")
        except RuntimeError:  # the stop is still taken when this bus would arrive: it comes later
            t += 30.0
            continue
        t += s + float(p.rng.uniform(90, 200))
    p.park("bays", "overstay", float(p.rng.uniform(5, 60)), cls="car")  # legal: no zone
    kerb = p.layout.zone("kerb_no_parking")
    p.double_park(
        "out",
        float(p.rng.uniform(kerb.y0 + 5, kerb.y1 - 5)),
        float(p.rng.uniform(30, 60)),
        float(p.rng.uniform(200, 400)),
        cls="truck",
        body="van",
    )
    p.jam_phases(float(p.rng.uniform(300, 500)), float(p.rng.uniform(600, 700)), (30, 90), (10, 20))
    return max(*ends, r.dwell_s + r.grace_s + 120)


def _plan_random(p: _Planner) -> float:
    """A held-out mix: 1-4 scripted stops of random stories and places, sometimes a double parker, a
    jam or a swap, at a random traffic density."""
    rng = p.rng
    p.rate = {"in": float(rng.uniform(1, 8)), "out": float(rng.uniform(1, 8))}
    areas = [
        "kerb_no_parking",
        "kerb_no_parking",
        "fire_lane",
        "bus_stop",
        "school_gate",
        "hatched_box",
        "bays",
    ]
    stories = ["drop_off", "in_grace", "overstay"]
    ends = [300.0]
    t = float(rng.uniform(2, 30))
    for _ in range(int(rng.integers(1, 5))):
        area = str(rng.choice(areas))
        story = str(rng.choice(stories, p=[0.35, 0.3, 0.35]))
        cls = (
            "bus"
            if area == "bus_stop" and rng.random() < 0.4
            else str(rng.choice(["car"] * 6 + ["truck", "motorbike", "ebike"]))
        )
        try:
            ident, y, stay = p.park(area, "brief" if cls == "bus" else story, t, cls=cls)
        except RuntimeError:
            continue
        ends.append(p.end_of(t, stay))
        if rng.random() < 0.2 and area != "bays":  # swap: another vehicle takes the place
            spec = p.vehicle("car")
            story2 = str(rng.choice(stories))
            stay2 = p.stay(story2)
            side = "right" if area in ("kerb_no_parking", "bus_stop", "school_gate") else "left"
            p.busy[side] = [b for b in p.busy[side] if not (b[0] <= y <= b[1])]
            lane = "out" if side == "right" else "in"
            p.trips.append(
                Trip(p._id(), spec, lane, float(rng.uniform(3, 20)), Park(y, stay2, "parked"), ident)
            )
            ends.append(p.end_of(t, stay) + stay2 + 60)
        t += float(rng.uniform(10, 200))
    if rng.random() < 0.3:
        kerb = p.layout.zone("kerb_no_parking")
        p.double_park(
            "out",
            float(rng.uniform(kerb.y0 + 5, kerb.y1 - 5)),
            float(rng.uniform(20, 80)),
            float(rng.uniform(30, 300)),
            cls=str(rng.choice(["car", "truck"])),
            body=None,
        )
    if rng.random() < 0.3:
        p.jam_phases(float(rng.uniform(0, 200)), float(rng.uniform(300, 600)), (30, 120), (8, 25))
    return min(max(ends), 1500.0)


_PLANS = {
    "overstay": _plan_overstay,
    "leaves_in_grace": _plan_leaves_in_grace,
    "drop_off": _plan_drop_off,
    "queue": _plan_queue,
    "jam": _plan_jam,
    "double_park": _plan_double_park,
    "bus_stop": _plan_bus_stop,
    "occluded": _plan_occluded,
    "swap": _plan_swap,
    "busy_mixed": _plan_busy_mixed,
    "random": _plan_random,
}


# -------------------------------------------------------------------------------------------- stops


def _stops_of(scenario: Scenario, track: Track) -> list[Stop]:
    still = track.speed < 0.01
    if not still.any():
        return []
    layout = scenario.layout
    edges = np.flatnonzero(np.diff(np.concatenate([[0], still.astype(np.int8), [0]])))
    out = []
    for i0, i1 in zip(edges[::2], edges[1::2], strict=True):
        start = float(track.t0 + i0 * DT)
        if (i1 - i0) * DT < STOP_MIN_S - 1e-9:
            continue
        ongoing = i1 >= len(still) and track.t1 >= scenario.duration_s - DT
        end = None if ongoing else float(track.t0 + i1 * DT)
        x, y = float(track.x[i0]), float(track.y[i0])
        in_strip = any(lo <= x <= hi for lo, hi in (layout.left_strip, layout.right_strip))
        zone = layout.zone_at(x, y) if in_strip else None
        action = track.trip.action
        scripted = track.scripted is not None and abs(track.scripted[0] - start) < 2 * DT
        if scripted and isinstance(action, Park):
            kind = action.kind
        elif scripted and isinstance(action, DoublePark):
            kind = "double_parked"
        elif (
            any(a < (end or scenario.duration_s) and b > start for a, b in scenario.jam)
            and track.trip.lane == "in"
        ):
            kind = "jam"
        else:
            kind = "queue" if _before_light(scenario, track, y) else "traffic"
        out.append(
            Stop(
                track.id,
                round(start, 3),
                None if end is None else round(end, 3),
                x,
                y,
                float(track.heading[i0]),
                zone.name if zone else None,
                kind,
            )
        )
    return out


def _before_light(scenario: Scenario, track: Track, y: float) -> bool:
    layout = scenario.layout
    if track.trip.lane == "out":
        return y < layout.stop_line_out_y
    return y > layout.stop_line_in_y
