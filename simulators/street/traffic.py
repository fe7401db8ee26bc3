"""The traffic: every vehicle's path, integrated once in 0.1 s steps before anything is drawn.

Each lane is a car-following simulation (the Intelligent Driver Model): vehicles keep their distance,
queue at the red light and behind a jam whose head is behind the camera, and start again when the one
in front has moved. Scripted trips add what the parking rules care about: pulling into the kerbside
strip to park for a given time (and out again once the lane has a gap), double parking in the lane
(followers wait, then overtake through the other lane when it is clear), and a trip that starts only
when another vehicle has driven off (a different vehicle taking the same spot).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from simulators.street.layout import Lane, StreetLayout
from simulators.street.vehicles import VehicleSpec

DT = 0.1
PULL_M = 14.0  # distance over which a vehicle pulls into or out of the kerbside strip
OVERTAKE_M = 9.0
S0 = 2.0  # IDM jam distance
HEADWAY_S = 1.2
COMFORT_DECEL = 2.0
JAM_HEAD_Y = -4.0  # where the jam's head stands (behind the camera, out of view)
PATIENCE_S = 6.0  # a parked vehicle waits this long for a proper gap, then noses out


@dataclass(frozen=True)
class Park:
    """Pull into the kerbside strip with the vehicle's centre at ``y``, stay ``stay_s``, then leave."""

    y: float
    stay_s: float
    kind: str = "parked"  # parked, drop_off, bus_stop: what the story is (the truth says)


@dataclass(frozen=True)
class DoublePark:
    """Stop in the lane beside the kerbside strip with the centre at ``y`` for ``stay_s``."""

    y: float
    stay_s: float


@dataclass(frozen=True)
class Trip:
    id: int
    spec: VehicleSpec
    lane: str  # "in" or "out"
    depart_s: float  # when it enters the lane; with ``after``: this long after that vehicle drove off
    action: Park | DoublePark | None = None
    after: int | None = None


@dataclass(frozen=True)
class LightCycle:
    """Both lanes' signal: green, then amber, then red, repeating; ``offset_s`` into the cycle at t = 0."""

    green_s: float
    amber_s: float
    red_s: float
    offset_s: float

    @property
    def period_s(self) -> float:
        return self.green_s + self.amber_s + self.red_s

    def state(self, t: float) -> str:
        phase = (t + self.offset_s) % self.period_s
        if phase < self.green_s:
            return "green"
        return "amber" if phase < self.green_s + self.amber_s else "red"

    def phases(self, duration_s: float) -> list[tuple[str, float, float]]:
        """(state, start, end) of every phase between 0 and ``duration_s``."""
        out: list[tuple[str, float, float]] = []
        t = -((self.offset_s) % self.period_s)
        while t < duration_s:
            for state, length in (("green", self.green_s), ("amber", self.amber_s), ("red", self.red_s)):
                start, end = max(t, 0.0), min(t + length, duration_s)
                if end > start:
                    out.append((state, round(start, 3), round(end, 3)))
                t += length
        return out


@dataclass
class Track:
    """One vehicle's path: samples every ``DT`` seconds from ``t0``."""

    trip: Trip
    t0: float
    x: np.ndarray
    y: np.ndarray
    heading: np.ndarray
    speed: np.ndarray
    flags: np.ndarray  # FLAG_* bits
    abandoned: bool = False  # a scripted stop that could not happen (its place was taken)
    scripted: tuple[float, float | None] | None = None  # when its scripted stop began and ended

    @property
    def id(self) -> int:
        return self.trip.id

    @property
    def spec(self) -> VehicleSpec:
        return self.trip.spec

    @property
    def t1(self) -> float:
        return self.t0 + (len(self.x) - 1) * DT

    def index(self, t: float) -> float:
        return (t - self.t0) / DT

    def at(self, t: float) -> tuple[float, float, float] | None:
        """(x, y, heading) at ``t`` (linear between samples), None outside the track."""
        f = self.index(t)
        if f < -1e-9 or f > len(self.x) - 1 + 1e-9:
            return None
        i = min(int(f), len(self.x) - 2) if len(self.x) > 1 else 0
        w = f - i if len(self.x) > 1 else 0.0
        j = min(i + 1, len(self.x) - 1)
        dh = math.remainder(float(self.heading[j] - self.heading[i]), 2 * math.pi)
        return (
            float(self.x[i] + (self.x[j] - self.x[i]) * w),
            float(self.y[i] + (self.y[j] - self.y[i]) * w),
            float(self.heading[i] + dh * w),
        )

    def flag_at(self, t: float) -> int:
        i = round(self.index(t))
        return int(self.flags[min(max(i, 0), len(self.flags) - 1)])


FLAG_BRAKE = 1
FLAG_HAZARD = 2


@dataclass
class _Agent:
    trip: Trip
    lane: Lane
    s: float
    v: float
    t0: float
    mode: str = "drive"  # drive, parked, double, gone
    in_lane: bool = True  # followers in the lane see it
    target_s: float | None = None
    until: float = math.inf
    stop_done: bool = False
    abandoned: bool = False
    kerb_x: float = 0.0
    pull_in: tuple[float, float] | None = None  # s range over which it moves to the kerb
    pull_out: tuple[float, float] | None = None
    overtake: tuple[float, float, float, float] | None = None  # s: start, across, start back, back
    overtake_dx: float = 0.0
    arrived_at: float | None = None
    left_stop_at: float | None = None
    waiting_since: float | None = None  # wanted to leave its spot since
    limit: float = math.inf  # never past this (the one in front)
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    vs: list[float] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    acc: float = 0.0

    @property
    def length(self) -> float:
        return self.trip.spec.length_m

    def offset(self, s: float) -> float:
        """Lateral offset from the lane's centre at ``s`` (towards +x)."""
        dx = 0.0
        if self.pull_in is not None:
            dx += (self.kerb_x - self.lane.centre) * _smooth(
                (s - self.pull_in[0]) / (self.pull_in[1] - self.pull_in[0])
            )
        if self.pull_out is not None:
            dx += (self.kerb_x - self.lane.centre) * (
                1 - _smooth((s - self.pull_out[0]) / (self.pull_out[1] - self.pull_out[0]))
            )
        if self.overtake is not None:
            a, b, c, d = self.overtake
            if s < c:
                dx += self.overtake_dx * _smooth((s - a) / (b - a))
            else:
                dx += self.overtake_dx * (1 - _smooth((s - c) / (d - c)))
        return dx


def _smooth(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3 - 2 * u)


def _idm(v: float, v0: float, a: float, gap: float, dv: float) -> float:
    s_star = S0 + max(0.0, v * HEADWAY_S + v * dv / (2 * math.sqrt(a * COMFORT_DECEL)))
    return a * (1 - (v / v0) ** 4 - (s_star / max(gap, 0.1)) ** 2)


class TrafficSim:
    def __init__(
        self,
        layout: StreetLayout,
        trips: Sequence[Trip],
        light: LightCycle,
        duration_s: float,
        jam: Sequence[tuple[float, float]] = (),
    ) -> None:
        self.layout = layout
        self.light = light
        self.duration_s = duration_s
        self.jam = list(jam)  # (start, end) intervals when the in lane's head is blocked
        self.pending: dict[str, list[Trip]] = {"in": [], "out": []}
        self.waiting_for: dict[int, list[Trip]] = {}
        for trip in sorted(trips, key=lambda tr: (tr.depart_s, tr.id)):
            if trip.after is not None:
                self.waiting_for.setdefault(trip.after, []).append(trip)
            else:
                self.pending[trip.lane].append(trip)
        self.agents: list[_Agent] = []
        self.done: list[_Agent] = []
        self.parked: list[_Agent] = []  # in a kerbside strip (pulling in, parked, pulling out)

    # ------------------------------------------------------------------ run

    def run(self) -> list[Track]:
        steps = math.ceil(self.duration_s / DT) + 1
        for k in range(steps):
            self._step(k * DT)
        tracks = []
        for agent in self.done + self.agents:
            if not agent.xs:
                continue
            x, y = np.asarray(agent.xs), np.asarray(agent.ys)
            tracks.append(
                Track(
                    agent.trip,
                    round(agent.t0, 6),
                    x,
                    y,
                    _headings(x, y, agent.lane.direction),
                    np.asarray(agent.vs),
                    np.asarray(agent.flags, dtype=np.uint8),
                    agent.abandoned,
                    None if agent.arrived_at is None else (agent.arrived_at, agent.left_stop_at),
                )
            )
        tracks.sort(key=lambda tr: tr.id)
        return tracks

    def _step(self, t: float) -> None:
        self._spawn(t)
        by_lane: dict[str, list[_Agent]] = {"in": [], "out": []}
        for agent in self.agents:
            if agent.in_lane:
                by_lane[agent.lane.name].append(agent)
        for members in by_lane.values():
            members.sort(key=lambda ag: ag.s)
        light = self.light.state(t)
        for agent in self.agents:
            self._decide(agent, t, by_lane, light)
        for agent in self.agents:
            self._move(agent, t)
        still = []
        for agent in self.agents:
            if agent.s - agent.length / 2 > agent.lane.length:
                agent.mode = "gone"
                self.done.append(agent)
            else:
                still.append(agent)
        self.agents = still

    def _spawn(self, t: float) -> None:
        for name, queue in self.pending.items():
            if not queue or queue[0].depart_s > t + 1e-9:
                continue
            lane = self.layout.lane(name)
            trip = queue[0]
            followers = [ag for ag in self.agents if ag.lane.name == name and ag.in_lane]
            last = min(followers, key=lambda ag: ag.s, default=None)
            v = trip.spec.v0_mps * 0.85
            if last is not None:
                room = last.s - last.length / 2 - trip.spec.length_m
                if room < 8.0:
                    continue  # the lane's entry is busy: try again next step
                v = min(v, last.v + 1.0)
            queue.pop(0)
            agent = _Agent(trip, lane, trip.spec.length_m / 2, v, t)
            if isinstance(trip.action, Park):
                agent.target_s = lane.s_at(trip.action.y)
                agent.kerb_x = self.layout.kerb_x(lane.kerb, trip.spec.width_m)
            elif isinstance(trip.action, DoublePark):  # it edges over towards the kerb a little
                agent.target_s = lane.s_at(trip.action.y)
                agent.kerb_x = lane.centre + (0.6 if lane.kerb == "right" else -0.6)
            self.agents.append(agent)

    # ------------------------------------------------------------------ decisions

    def _decide(self, agent: _Agent, t: float, by_lane: dict[str, list[_Agent]], light: str) -> None:
        spec = agent.trip.spec
        lane = agent.lane
        agent.limit = math.inf
        if agent.mode == "parked":
            agent.acc = 0.0
            if t >= agent.until and agent.waiting_since is None:
                agent.waiting_since = t
            # After a while without a gap, it noses out and the lane makes room for it.
            pushy = agent.waiting_since is not None and t - agent.waiting_since > PATIENCE_S
            if t >= agent.until and self._lane_clear_beside(agent, by_lane[lane.name], pushy):
                agent.mode = "drive"
                agent.stop_done = True
                agent.left_stop_at = t
                agent.in_lane = True
                agent.pull_in = None
                agent.pull_out = (agent.s, agent.s + PULL_M)
                self._release_followers(agent, t)
            return
        if agent.mode == "double":
            agent.acc = 0.0
            if t >= agent.until:
                agent.mode = "drive"
                agent.stop_done = True
                agent.left_stop_at = t
                agent.pull_in = None
                agent.pull_out = (agent.s, agent.s + PULL_M)
                self._release_followers(agent, t)
            return
        # Obstacles ahead: the leader in the lane, the red light, the jam's head, its own stop.
        front = agent.s + agent.length / 2
        acc = _idm(agent.v, spec.v0_mps, spec.accel_mps2, 1e9, 0.0)
        members = by_lane[lane.name] if agent.in_lane else []
        leader = self._leader(agent, members)
        if leader is not None:
            gap = leader.s - leader.length / 2 - front
            acc = min(acc, _idm(agent.v, spec.v0_mps, spec.accel_mps2, gap, agent.v - leader.v))
            agent.limit = leader.s - leader.length / 2 - agent.length / 2 - 0.3
            if self._should_overtake(agent, leader, gap, t, by_lane):
                self._start_overtake(agent, leader)
        stop_line = lane.s_at(
            self.layout.stop_line_out_y if lane.direction > 0 else self.layout.stop_line_in_y
        )
        if light != "green" and front < stop_line + 0.5:
            gap = stop_line - front
            need = agent.v**2 / (2 * max(gap, 0.1))
            if light == "red" or need < 3.0:
                acc = min(acc, _idm(agent.v, spec.v0_mps, spec.accel_mps2, gap + S0 - 0.5, agent.v))
        if lane.direction < 0 and any(a <= t < b for a, b in self.jam):
            head = lane.s_at(JAM_HEAD_Y)
            if front < head + 0.5:
                acc = min(acc, _idm(agent.v, spec.v0_mps, spec.accel_mps2, head - front + S0 - 0.5, agent.v))
        if agent.target_s is not None and not agent.stop_done:
            self._approach_stop(agent, t, by_lane)
            remaining = agent.target_s - agent.s
            if remaining > 0.02:
                need = agent.v**2 / (2 * remaining)
                if need > 0.6 * COMFORT_DECEL or remaining < 3.0:
                    acc = min(acc, -need)
                if remaining < 3.0:  # roll up to the spot
                    acc = min(acc, 0.5) if agent.v < 1.2 else acc
            else:
                acc = min(acc, -agent.v / DT)
        # Do not creep up on a queue: start only once the one ahead has moved off.
        if agent.v < 0.05 and acc > 0 and leader is not None:
            gap = leader.s - leader.length / 2 - front
            if gap < S0 + 1.5 and leader.v < 0.3:
                acc = 0.0
        agent.acc = acc

    def _leader(self, agent: _Agent, members: list[_Agent]) -> _Agent | None:
        best: _Agent | None = None
        for other in members:
            if other is agent or other.s <= agent.s:
                continue
            if agent.overtake is not None and other.mode == "double":
                continue  # passing it in the other lane
            if best is None or other.s < best.s:
                best = other
        return best

    def _approach_stop(self, agent: _Agent, t: float, by_lane: dict[str, list[_Agent]]) -> None:
        """Start pulling in near the spot; give up (drive on) when the spot is taken."""
        action = agent.trip.action
        assert agent.target_s is not None
        if agent.pull_in is not None or agent.target_s - agent.s >= PULL_M + 6:
            return
        if isinstance(action, DoublePark):
            agent.pull_in = (agent.target_s - PULL_M, agent.target_s)
        elif isinstance(action, Park):
            if self._spot_taken(agent):
                agent.abandoned = True
                agent.stop_done = True
                return
            agent.pull_in = (agent.target_s - PULL_M, agent.target_s)

    def _spot_taken(self, agent: _Agent) -> bool:
        assert agent.target_s is not None
        y = agent.lane.y_at(agent.target_s)
        half = agent.length / 2 + 0.8
        for other in self.parked:
            if other is agent or other.lane.kerb != agent.lane.kerb:
                continue
            other_y = other.lane.y_at(other.s)
            if abs(other_y - y) < half + other.length / 2:
                return True
        return False

    def _lane_clear_beside(self, agent: _Agent, members: list[_Agent], pushy: bool) -> bool:
        narrow = agent.trip.spec.width_m < 1.2  # a two-wheeler filters out past a queue
        behind = 3.0 if narrow else (6.0 if pushy else 30.0)
        for other in members:
            if other is agent:
                continue
            if narrow:
                if abs(other.s - agent.s) < (other.length + agent.length) / 2 + behind:
                    return False
                continue
            if pushy and other.v > 4.0 and other.s < agent.s:
                gap = agent.s - agent.length / 2 - (other.s + other.length / 2)
                if gap < other.v**2 / (2 * 4.0) + S0:
                    return False  # too close to stop for it
            if pushy:  # only what is right beside it, or standing just ahead, keeps it in
                ahead = 6.0 if other.v < 2.0 else 1.0
                behind = 1.0
            else:
                ahead = 15.0 if other.v < 2.0 else 4.0  # never into a queue standing just ahead
            rear = agent.s - agent.length / 2 - other.length / 2 - behind
            if rear < other.s < agent.s + agent.length / 2 + other.length / 2 + ahead:
                return False
        return True

    def _should_overtake(
        self, agent: _Agent, leader: _Agent, gap: float, t: float, by_lane: dict[str, list[_Agent]]
    ) -> bool:
        if leader.mode != "double" or agent.overtake is not None or gap > 12.0 or agent.v > 2.0:
            return False
        if agent.target_s is not None and not agent.stop_done and agent.target_s < leader.s:
            return False  # its own spot is before the double-parker
        other_lane = next(lane for lane in self.layout.lanes if lane is not agent.lane)
        start_y = agent.lane.y_at(agent.s)
        end_y = agent.lane.y_at(leader.s + leader.length / 2 + agent.length / 2 + 3.0 + OVERTAKE_M)
        y0, y1 = min(start_y, end_y), max(start_y, end_y)
        horizon = 9.0  # seconds the manoeuvre takes from standstill, with a margin
        for other in by_lane[other_lane.name]:
            other_y = other_lane.y_at(other.s)
            # The oncoming vehicle's reach within the horizon, against the stretch the overtaker uses.
            reach = other.v * horizon + other.length
            lo, hi = (
                (other_y - reach, other_y + other.length)
                if other_lane.direction < 0
                else (other_y - other.length, other_y + reach)
            )
            if hi > y0 - 3 and lo < y1 + 3:
                return False
        return True

    def _start_overtake(self, agent: _Agent, leader: _Agent) -> None:
        other_lane = next(lane for lane in self.layout.lanes if lane is not agent.lane)
        a = agent.s
        b = a + OVERTAKE_M
        c = max(b, leader.s + leader.length / 2 + agent.length / 2 + 2.0)
        d = c + OVERTAKE_M
        agent.overtake = (a, b, c, d)
        # The other lane's centre, in this lane's offset terms (towards +x).
        agent.overtake_dx = other_lane.centre - agent.lane.centre

    def _release_followers(self, agent: _Agent, t: float) -> None:
        for trip in self.waiting_for.pop(agent.trip.id, []):
            queue = self.pending[trip.lane]
            queue.append(Trip(trip.id, trip.spec, trip.lane, t + trip.depart_s, trip.action, None))
            queue.sort(key=lambda tr: (tr.depart_s, tr.id))

    # ------------------------------------------------------------------ motion

    def _move(self, agent: _Agent, t: float) -> None:
        lane = agent.lane
        flags = 0
        if agent.mode == "drive":
            v_new = max(0.0, agent.v + agent.acc * DT)
            if v_new == 0.0 and agent.acc < 0 and agent.v > 0:
                ds = agent.v**2 / (2 * -agent.acc)
            else:
                ds = (agent.v + v_new) / 2 * DT
            s_new = agent.s + max(0.0, min(ds, agent.limit - agent.s))
            if agent.target_s is not None and not agent.stop_done and s_new >= agent.target_s - 0.03:
                s_new, v_new = max(agent.s, agent.target_s), 0.0
                self._arrive(agent, t)
            if agent.overtake is not None and s_new > agent.overtake[3]:
                agent.overtake = None
            if agent.pull_out is not None and s_new > agent.pull_out[1]:
                agent.pull_out = None
                if agent in self.parked:
                    self.parked.remove(agent)
            agent.s, agent.v = s_new, v_new
            if agent.acc < -1.0 or (v_new == 0.0 and agent.mode == "drive"):
                flags |= FLAG_BRAKE
            if agent.pull_in is not None and isinstance(agent.trip.action, Park):
                progress = (agent.s - agent.pull_in[0]) / (agent.pull_in[1] - agent.pull_in[0])
                if progress > 0.5 and agent.in_lane:
                    agent.in_lane = False
                if progress > 0.0 and agent not in self.parked:
                    self.parked.append(agent)
        if agent.mode in ("parked", "double"):
            action = agent.trip.action
            if agent.mode == "double" or (isinstance(action, Park) and action.kind == "drop_off"):
                flags |= FLAG_HAZARD
        x = lane.centre + agent.offset(agent.s)
        agent.xs.append(x)
        agent.ys.append(lane.y_at(agent.s))
        agent.vs.append(agent.v)
        agent.flags.append(flags)

    def _arrive(self, agent: _Agent, t: float) -> None:
        action = agent.trip.action
        agent.arrived_at = t
        if isinstance(action, Park):
            agent.mode = "parked"
            agent.until = t + action.stay_s
            agent.in_lane = False
        elif isinstance(action, DoublePark):
            agent.mode = "double"
            agent.until = t + action.stay_s


def _headings(x: np.ndarray, y: np.ndarray, direction: int) -> np.ndarray:
    """Heading (radians from +y towards +x) from the path, held while the vehicle stands."""
    heading = np.full(len(x), 0.0 if direction > 0 else math.pi)
    if len(x) < 2:
        return heading
    dx, dy = np.gradient(x), np.gradient(y)
    moving = np.hypot(dx, dy) > 1e-4
    raw = np.arctan2(dx, dy)
    last = heading[0]
    for i in range(len(x)):
        if moving[i]:
            last = raw[i]
        heading[i] = last
    return heading
