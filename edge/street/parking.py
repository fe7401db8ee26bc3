"""The illegal-parking analyzer: vehicle tracks -> cases -> warning, violation, left (pure: no images).

A **case** is one vehicle stopped in one no-parking zone. Per frame (its frame time ``t`` and the local
wall-clock time that zone hours are read in):

1. **Which zone judges it**: the first zone (config order) whose polygon holds the vehicle's ground point
   where it came to rest, that is in force now (hours, days) and does not exempt its class.
2. **Stopped, not merely slow**: its box has stayed within the zone's ``max_move_fraction`` of its length
   of where it came to rest for ``window_s`` (see edge/street/tracker.py). The dwell clock starts when
   it came to rest, or when the zone came into force if that was later; moving further resets it.
3. **Traffic is not parking.** Three things keep queues at a light and jams out: zones are drawn on the
   kerb, not on through lanes; a queue moves within the dwell (default 2 min, longer than a red light),
   which restarts every queued vehicle's clock; and a vehicle whose neighbour (within ``gap_lengths``
   vehicle lengths) came to rest within ``sync_s`` of it and is still stopped is *stopped with the
   traffic*: its warning is held until the neighbour moves or leaves, at most ``hold_max_s`` past the
   dwell (then it is warned all the same: two cars that parked together are still parked). Only
   vehicles seen arriving count (ones standing since they were first seen, at the camera's start, did
   not stop together with anything we know of). A vehicle dropping someone off is gone before the dwell.
4. **Soft enforcement**: dwell reached -> ``warning`` (first photo); still stopped in the zone
   ``grace_s`` after the warning -> ``violation`` (second photo); it leaves during the grace ->
   ``left_in_grace`` (the notice worked), after the violation -> ``left_after_violation``. A warned
   vehicle that moves a few metres and stops again inside the zone keeps its case and its grace clock
   (re-parking does not restart the clocks); one that leaves the zone, or is hidden longer than the
   occlusion tolerance, has left. When the zone's hours end, an open case ends (``zone_hours_ended``).
   A hidden vehicle (occlusion) is warned or recorded when it is seen again, so every photo shows it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from edge.street.config import ParkingZoneConfig, StreetConfig
from edge.street.geometry import Box, contains, displacement
from edge.street.hours import Schedule
from edge.street.tracker import Gone, Sighting, TrackerOptions, VehicleTrack, VehicleTracker

Stage = Literal["warning", "violation", "left_in_grace", "left_after_violation", "zone_hours_ended"]
Departure = Literal["drove_off", "not_seen_again"]
ActionKind = Literal["warning", "violation", "end"]
ARRIVAL_FRACTION = 0.03  # within 3% of its length of where it rests: it has arrived (see _arrival)


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    polygon: tuple[tuple[float, float], ...]
    schedule: Schedule
    dwell_s: float
    grace_s: float
    exempt: frozenset[str]
    max_move_fraction: float
    window_s: float

    @classmethod
    def from_config(cls, zone: ParkingZoneConfig) -> Zone:
        return cls(
            name=zone.name,
            polygon=tuple(zone.polygon),
            schedule=Schedule.parse(zone.hours, zone.days),
            dwell_s=zone.dwell_s,
            grace_s=zone.grace_s,
            exempt=frozenset(zone.exempt_classes),
            max_move_fraction=zone.stopped.max_move_fraction,
            window_s=zone.stopped.window_s,
        )

    def holds(self, box: Box) -> bool:
        return contains(self.polygon, box.ground)


@dataclass(frozen=True, slots=True)
class ParkingAction:
    """What the agent must do: open the case's event (warning), update it (violation), end it."""

    kind: ActionKind
    case_id: int
    track_id: int
    t: float
    stage: Stage
    zone: str
    vehicle_class: str
    box: Box  # the vehicle's box: in this frame for warning and violation, its last one for end
    started_t: float  # when the dwell clock started
    dwell_s: float  # stopped in the zone so far (at end: until it was last seen there)
    grace_s: float | None  # since the warning
    departure: Departure | None = None  # end after leaving only
    violation_recorded: bool = False


@dataclass
class Case:
    case_id: int
    track: VehicleTrack
    zone: Zone
    rest_since: float  # the track's still_since when the case began: a change means it moved
    dwell_start: float
    stage: Literal["watching", "warned", "violation"] = "watching"
    warned_t: float | None = None
    violation_t: float | None = None
    last_parked_t: float = 0.0  # last seen stopped in the zone: when it left, for the end's dwell
    outside_since: float | None = None
    queued_t: float | None = None  # last time it stood in a queue

    @property
    def open(self) -> bool:
        """An event was sent for it (warning or violation)."""
        return self.stage != "watching"


@dataclass
class _ZoneState:
    zone: Zone
    active: bool = False
    active_since: float = -math.inf


@dataclass
class ParkingAnalyzer:
    config: StreetConfig
    tracker: VehicleTracker = field(init=False)
    cases: dict[int, Case] = field(init=False, default_factory=dict)  # by track id

    def __post_init__(self) -> None:
        config = self.config
        self.timezone = ZoneInfo(config.timezone)
        self.zones = [_ZoneState(Zone.from_config(z)) for z in config.zones]
        self.vehicle_classes = frozenset(config.vehicle_classes)
        tracking = config.tracking
        self.tracker = VehicleTracker(
            TrackerOptions(
                max_gap_s=tracking.max_gap_s,
                occlusion_tolerance_s=config.occlusion_tolerance_s,
                iou_gate=tracking.iou_gate,
                min_similarity=tracking.min_similarity,
                reid_min_similarity=tracking.reid_min_similarity,
            ),
            rest_rule=self._rest_rule,
        )
        self._next_case = 1
        self.leave_confirm_s = tracking.max_gap_s
        self.warnings = self.violations = 0

    def retune(self, config: StreetConfig) -> list[ParkingAction]:
        """New rules between two frames (a config applied live). Zones are matched by name: one that
        stays keeps its state and its cases, under its new polygon, hours, dwell and grace; a case whose
        zone is gone ends (``zone_hours_ended``: its ban no longer applies). Tracks stay."""
        before = {state.zone.name: state for state in self.zones}
        self.config = config
        self.timezone = ZoneInfo(config.timezone)
        self.vehicle_classes = frozenset(config.vehicle_classes)
        self.zones = []
        for zone_config in config.zones:
            zone, old = Zone.from_config(zone_config), before.get(zone_config.name)
            self.zones.append(_ZoneState(zone, old.active, old.active_since) if old else _ZoneState(zone))
        zones = {state.zone.name: state.zone for state in self.zones}
        ended = []
        for track_id, case in list(self.cases.items()):
            if case.zone.name in zones:
                case.zone = zones[case.zone.name]
                continue
            del self.cases[track_id]
            if case.open:
                ended.append(self._end(case, case.track.last_seen_t, None, stage="zone_hours_ended"))
        tracking = config.tracking
        self.tracker.options = dataclasses.replace(
            self.tracker.options,
            max_gap_s=tracking.max_gap_s,
            occlusion_tolerance_s=config.occlusion_tolerance_s,
            iou_gate=tracking.iou_gate,
            min_similarity=tracking.min_similarity,
            reid_min_similarity=tracking.reid_min_similarity,
        )
        self.leave_confirm_s = tracking.max_gap_s
        return ended

    def _rest_rule(self, box: Box) -> tuple[float, float]:
        for state in self.zones:
            if state.zone.holds(box):
                return state.zone.max_move_fraction, state.zone.window_s
        first = self.zones[0].zone
        return first.max_move_fraction, first.window_s

    # -- per frame --------------------------------------------------------------------------------
    def update(self, t: float, wall: datetime, sightings: Sequence[Sighting]) -> list[ParkingAction]:
        """One analysed frame: ``wall`` is its wall-clock time (timezone-aware), ``sightings`` every
        detected vehicle (other classes are ignored here)."""
        local = wall.astimezone(self.timezone)
        for state in self.zones:
            active = state.zone.schedule.active(local)
            if active and not state.active:
                state.active_since = t
            state.active = active
        vehicles = [s for s in sightings if s.label in self.vehicle_classes]
        update = self.tracker.update(t, vehicles)
        actions = [a for gone in update.gone if (a := self._gone(gone)) is not None]
        seen = {track.track_id for track in update.seen}
        for track in self.tracker.tracks:
            actions += self._judge(t, track, visible=track.track_id in seen)
        return actions

    def _gone(self, gone: Gone) -> ParkingAction | None:
        case = self.cases.pop(gone.track.track_id, None)
        if case is None or not case.open:
            return None
        track = gone.track
        departure: Departure = (
            "not_seen_again" if gone.reason == "replaced" or track.stopped_when_last_seen else "drove_off"
        )
        return self._end(case, min(case.last_parked_t, track.last_seen_t), departure)

    def _judge(self, t: float, track: VehicleTrack, *, visible: bool) -> list[ParkingAction]:
        case = self.cases.get(track.track_id)
        if case is None:
            case = self._maybe_open(t, track, visible)
            if case is None:
                return []
        state = next(s for s in self.zones if s.zone is case.zone)
        if not state.active:
            self.cases.pop(track.track_id)
            return [self._end(case, t, None, stage="zone_hours_ended")] if case.open else []
        if visible:
            if case.zone.holds(track.box):
                case.outside_since = None
                if track.still_for(t) >= track.rest_window_s:
                    case.last_parked_t = t
            elif case.outside_since is None:
                case.outside_since = t
        if case.stage == "watching":
            return self._watching(t, track, case, visible)
        if case.outside_since is not None and t - case.outside_since >= self.leave_confirm_s:
            self.cases.pop(track.track_id)
            return [self._end(case, case.last_parked_t, "drove_off")]
        if (
            case.stage == "warned"
            and visible
            and case.outside_since is None
            and case.warned_t is not None
            and t - case.warned_t >= case.zone.grace_s
            and track.still_for(t) >= track.rest_window_s
        ):
            case.stage = "violation"
            case.violation_t = t
            self.violations += 1
            return [self._action("violation", case, t, "violation", track.box)]
        return []

    def _maybe_open(self, t: float, track: VehicleTrack, visible: bool) -> Case | None:
        if not visible or track.still_for(t) < track.rest_window_s:
            return None
        label = track.label
        for state in self.zones:
            zone = state.zone
            if state.active and label not in zone.exempt and zone.holds(track.still_box):
                case = Case(
                    case_id=self._next_case,
                    track=track,
                    zone=zone,
                    rest_since=track.still_since,
                    dwell_start=max(_arrival(track), state.active_since),
                    last_parked_t=t,
                )
                self._next_case += 1
                self.cases[track.track_id] = case
                return case
        return None

    def _watching(self, t: float, track: VehicleTrack, case: Case, visible: bool) -> list[ParkingAction]:
        if (
            track.still_since != case.rest_since
            or case.outside_since is not None
            or track.label in case.zone.exempt  # its class vote changed (a bus first seen as a truck)
        ):
            del self.cases[track.track_id]  # it moved before the dwell: no case (yet)
            return []
        dwell = t - case.dwell_start
        queue = self.config.queue
        if visible and dwell >= case.zone.dwell_s - queue.sync_s and self._queued(t, track):
            case.queued_t = t
        if dwell < case.zone.dwell_s or not visible:
            return []  # hidden at the dwell: warned when seen again, so the photo shows it
        # Held while in a queue, and sync_s after its neighbours moved on (it is about to follow them).
        held = case.queued_t is not None and t - case.queued_t <= queue.sync_s
        if held and dwell < case.zone.dwell_s + queue.hold_max_s:
            return []
        case.stage = "warned"
        case.warned_t = t
        self.warnings += 1
        actions = [self._action("warning", case, t, "warning", track.box)]
        if case.zone.grace_s == 0 and track.still_for(t) >= track.rest_window_s:
            case.stage = "violation"
            case.violation_t = t
            self.violations += 1
            actions.append(self._action("violation", case, t, "violation", track.box))
        return actions

    def _queued(self, t: float, track: VehicleTrack) -> bool:
        """Stopped with the traffic: a close neighbour came to rest at about the same time, and still is."""
        queue = self.config.queue
        if not _seen_arriving(track):
            return False
        x, y = track.still_box.ground
        for other in self.tracker.tracks:
            if other is track or t - other.last_seen_t > self.tracker.options.max_gap_s:
                continue
            if other.still_for(t) < other.rest_window_s or not _seen_arriving(other):
                continue  # moving, or standing since it was first seen: not stopped with this one
            if abs(other.still_since - track.still_since) > queue.sync_s:
                continue
            ox, oy = other.still_box.ground
            reach = queue.gap_lengths * max(track.still_box.length, other.still_box.length)
            if math.hypot(ox - x, oy - y) <= reach:
                return True
        return False

    # -- actions ----------------------------------------------------------------------------------
    def _end(
        self, case: Case, t: float, departure: Departure | None, *, stage: Stage | None = None
    ) -> ParkingAction:
        if stage is None:
            stage = "left_after_violation" if case.stage == "violation" else "left_in_grace"
        box = case.track.box
        return ParkingAction(
            kind="end",
            case_id=case.case_id,
            track_id=case.track.track_id,
            t=t,
            stage=stage,
            zone=case.zone.name,
            vehicle_class=case.track.label,
            box=box,
            started_t=case.dwell_start,
            dwell_s=max(0.0, t - case.dwell_start),
            grace_s=max(0.0, t - case.warned_t) if case.warned_t is not None else None,
            departure=departure,
            violation_recorded=case.violation_t is not None,
        )

    def _action(self, kind: ActionKind, case: Case, t: float, stage: Stage, box: Box) -> ParkingAction:
        return ParkingAction(
            kind=kind,
            case_id=case.case_id,
            track_id=case.track.track_id,
            t=t,
            stage=stage,
            zone=case.zone.name,
            vehicle_class=case.track.label,
            box=box,
            started_t=case.dwell_start,
            dwell_s=t - case.dwell_start,
            grace_s=t - case.warned_t if case.warned_t is not None else None,
            violation_recorded=case.violation_t is not None,
        )

    def open_cases(self) -> list[Case]:
        """Cases with an event open (warned or recorded), for plate retries and health."""
        return [case for case in self.cases.values() if case.open]


def _arrival(track: VehicleTrack) -> float:
    """When the vehicle came to rest, to the frame: the first sighting since ``still_since`` that is as
    close to where it rests as the detector's own jitter allows.

    ``still_since`` is the first sighting within ``max_move_fraction`` (15%) of its length of the rest
    box: a car covers its last 0.7 m at walking pace, so that is 1-2 s before it stands. The rest box is
    the median of the sightings since; "close" is ``ARRIVAL_FRACTION`` of its length, or twice the median
    distance of those sightings from it when the detector jitters more. Without the history back to
    ``still_since`` (it stood before it was first seen), ``still_since`` it is.
    """
    boxes = [(seen_t, box) for seen_t, box in track.history if seen_t >= track.still_since]
    if len(boxes) < 3 or boxes[0][0] > track.still_since:
        return track.still_since
    rest = Box(*(statistics.median(getattr(b, side) for _, b in boxes) for side in ("x1", "y1", "x2", "y2")))
    jitter = statistics.median(displacement(b, rest) for _, b in boxes[len(boxes) // 2 :])
    limit = max(ARRIVAL_FRACTION * rest.length, 2.0 * jitter)
    return next((seen_t for seen_t, box in boxes if displacement(box, rest) <= limit), track.still_since)


def _seen_arriving(track: VehicleTrack) -> bool:
    """It was seen moving before it came to rest. Vehicles standing since they were first seen (at the
    camera's start, or back from a long occlusion) did not stop *together* with anything that we know of."""
    return track.still_since > track.first_seen_t
