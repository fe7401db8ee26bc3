"""Vehicle tracks that survive occlusions of a stopped vehicle, with re-identification by place and colour.

Per frame, each track is matched to at most one detection, best score first:

- a track seen within ``max_gap_s``: the detection must overlap its predicted box (the last box moved by
  its velocity; a vehicle at rest does not move) by ``iou_gate``, and its colours must not be unlike
  (``min_similarity``), so a passing vehicle of another colour cannot take over a parked one's track;
- a stopped track hidden for longer (a bus in front, people on the pavement) is kept up to
  ``occlusion_tolerance_s``; a detection re-identifies it when it stands where the vehicle came to rest
  (the same movement test as "at rest") with similar colours (``reid_min_similarity``).

A different vehicle coming to rest where a hidden one stood (its track began after the hidden one was last
seen) means the hidden one has left: its track ends at once ("replaced") instead of at the tolerance.

Each track keeps where and since when it has been still: ``still_since`` is the earliest time from which
every sighting stayed within ``max_move_fraction`` of its length (the longer box side) of the current box,
measured on the box edge that moved least (:func:`~edge.street.geometry.displacement`). So a vehicle
creeping forward in a queue becomes still again each time it has moved that far, and the dwell clock of a
parked one starts when it came to rest, not when the test was first satisfied.

Why not a library: ByteTrack/SORT-style trackers (supervision, norfair, boxmot) keep a lost track for a
number of frames at its predicted (moving) place and re-identify with a learned appearance model (torch);
a parked car hidden for 30 s is neither, and norfair pins numpy<2 (see edge/vision/tracker.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edge.street.geometry import Box, displacement, iou

# (max_move_fraction, window_s) for a vehicle standing at this box: the rule of the zone it stands in.
RestRule = Callable[[Box], tuple[float, float]]


@dataclass(frozen=True, slots=True)
class TrackerOptions:
    max_gap_s: float = 2.0
    occlusion_tolerance_s: float = 30.0
    iou_gate: float = 0.2
    min_similarity: float = 0.3
    reid_min_similarity: float = 0.6
    history_s: float = 20.0  # sightings kept to find when a vehicle came to rest
    appearance_rate: float = 0.2  # weight of a new unoccluded sighting in the colour reference


@dataclass(frozen=True, slots=True)
class Sighting:
    """One detected vehicle in one frame; ``appearance`` is a normalised colour histogram, or None."""

    label: str
    score: float
    box: Box
    appearance: np.ndarray | None = None


def similarity(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Bhattacharyya coefficient of two normalised histograms (1: the same colours), None if one lacks."""
    if a is None or b is None:
        return None
    return float(np.sqrt(a * b).sum())


@dataclass
class VehicleTrack:
    track_id: int
    box: Box
    first_seen_t: float
    last_seen_t: float
    still_since: float
    still_box: Box
    hits: int = 1
    velocity: tuple[float, float] = (0.0, 0.0)  # ground point, pixels per second
    appearance: np.ndarray | None = None
    label_votes: dict[str, float] = field(default_factory=dict)
    history: deque[tuple[float, Box]] = field(default_factory=deque)
    rest_window_s: float = 5.0  # of the rule where it stands, for still_for / stopped

    @property
    def label(self) -> str:
        """The label with the most score over the track's life (steadier than one frame's)."""
        return max(self.label_votes, key=lambda k: self.label_votes[k]) if self.label_votes else "vehicle"

    def still_for(self, t: float) -> float:
        """Seconds it has been still, as of ``t`` (hidden time counts while the track is kept)."""
        return t - self.still_since

    @property
    def stopped_when_last_seen(self) -> bool:
        return self.last_seen_t - self.still_since >= self.rest_window_s


Departure = Literal["lost", "replaced"]


@dataclass(frozen=True, slots=True)
class Gone:
    track: VehicleTrack
    reason: Departure  # lost: not seen for too long; replaced: another vehicle stands where it stood


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    seen: list[VehicleTrack]  # tracks matched or created in this frame
    gone: list[Gone]  # tracks that ended in this frame


class VehicleTracker:
    def __init__(self, options: TrackerOptions | None = None, rest_rule: RestRule | None = None) -> None:
        self.options = options or TrackerOptions()
        self.rest_rule: RestRule = rest_rule or (lambda box: (0.15, 5.0))
        self._tracks: list[VehicleTrack] = []
        self._next_id = 1

    @property
    def tracks(self) -> list[VehicleTrack]:
        """Live tracks, seen in this frame or kept while hidden."""
        return list(self._tracks)

    def update(self, t: float, sightings: Sequence[Sighting]) -> TrackUpdate:
        gone = self._expire(t)
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._tracks):
            for si, sighting in enumerate(sightings):
                score = self._match_score(t, track, sighting)
                if score is not None:
                    pairs.append((score, ti, si))
        pairs.sort(reverse=True)
        assigned: dict[int, VehicleTrack] = {}
        used: set[int] = set()
        for _, ti, si in pairs:
            if ti in used or si in assigned:
                continue
            used.add(ti)
            assigned[si] = self._tracks[ti]
        seen = []
        for si, sighting in enumerate(sightings):
            clear = all(iou(sighting.box, o.box) < 0.05 for j, o in enumerate(sightings) if j != si)
            if si in assigned:
                track = assigned[si]
                self._advance(track, t, sighting, clear)
            else:
                track = self._create(t, sighting)
            seen.append(track)
        gone += self._replaced(t, seen)
        return TrackUpdate(seen=seen, gone=gone)

    # -- matching ---------------------------------------------------------------------------------
    def _match_score(self, t: float, track: VehicleTrack, sighting: Sighting) -> float | None:
        gap = t - track.last_seen_t
        sim = similarity(track.appearance, sighting.appearance)
        if gap <= self.options.max_gap_s:
            # A vehicle at rest stays put: its velocity is the detector's jitter, not motion.
            vx, vy = (0.0, 0.0) if track.stopped_when_last_seen else track.velocity
            predicted = track.box.shifted(vx * gap, vy * gap)
            overlap = iou(predicted, sighting.box)
            if overlap < self.options.iou_gate:
                return None
            if sim is not None and sim < self.options.min_similarity:
                return None
            return overlap + 0.5 * (sim if sim is not None else 0.5)
        # Hidden longer than a blink: only a stopped track is still here; it must reappear where it stood.
        fraction, _ = self.rest_rule(track.still_box)
        limit = fraction * track.still_box.length
        moved = displacement(track.still_box, sighting.box)
        if moved > limit:
            return None
        ratio = sighting.box.area / max(track.still_box.area, 1e-6)
        if not 0.3 <= ratio <= 3.0:
            return None
        if sim is not None and sim < self.options.reid_min_similarity:
            return None
        return (1.0 - moved / max(limit, 1e-6)) + (sim if sim is not None else 0.5)

    # -- track state ------------------------------------------------------------------------------
    def _create(self, t: float, sighting: Sighting) -> VehicleTrack:
        track = VehicleTrack(
            track_id=self._next_id,
            box=sighting.box,
            first_seen_t=t,
            last_seen_t=t,
            still_since=t,
            still_box=sighting.box,
            appearance=sighting.appearance,
            label_votes={sighting.label: sighting.score},
        )
        track.history.append((t, sighting.box))
        track.rest_window_s = self.rest_rule(sighting.box)[1]
        self._next_id += 1
        self._tracks.append(track)
        return track

    def _advance(self, track: VehicleTrack, t: float, sighting: Sighting, clear: bool) -> None:
        dt = t - track.last_seen_t
        if 0 < dt <= self.options.max_gap_s:
            (x0, y0), (x1, y1) = track.box.ground, sighting.box.ground
            vx, vy = (x1 - x0) / dt, (y1 - y0) / dt
            track.velocity = (0.5 * track.velocity[0] + 0.5 * vx, 0.5 * track.velocity[1] + 0.5 * vy)
        else:
            track.velocity = (0.0, 0.0)  # back from hiding: it stood still
        track.box = sighting.box
        track.last_seen_t = t
        track.hits += 1
        track.label_votes[sighting.label] = track.label_votes.get(sighting.label, 0.0) + sighting.score
        if sighting.appearance is not None and (clear or track.appearance is None):
            # Only unoccluded sightings teach the colours: a pedestrian in front is not the car.
            if track.appearance is None:
                track.appearance = sighting.appearance
            else:
                rate = self.options.appearance_rate
                mixed = (1 - rate) * track.appearance + rate * sighting.appearance
                track.appearance = mixed / max(float(mixed.sum()), 1e-12)
        track.history.append((t, sighting.box))
        while track.history and t - track.history[0][0] > self.options.history_s:
            track.history.popleft()
        self._update_rest(track, t, sighting.box)

    def _update_rest(self, track: VehicleTrack, t: float, box: Box) -> None:
        fraction, window_s = self.rest_rule(track.still_box)
        track.rest_window_s = window_s
        if displacement(track.still_box, box) <= fraction * track.still_box.length:
            return  # still where it came to rest (or still approaching it within the tolerance)
        # It moved: it has been still only since the earliest recent sighting near where it is now.
        fraction, window_s = self.rest_rule(box)
        track.rest_window_s = window_s
        limit = fraction * box.length
        since = t
        for seen_t, seen_box in reversed(track.history):
            if displacement(seen_box, box) > limit:
                break
            since = seen_t
        track.still_since = since
        track.still_box = box

    def _expire(self, t: float) -> list[Gone]:
        kept, gone = [], []
        for track in self._tracks:
            gap = t - track.last_seen_t
            limit = (
                self.options.occlusion_tolerance_s if track.stopped_when_last_seen else self.options.max_gap_s
            )
            if gap > max(limit, self.options.max_gap_s):
                gone.append(Gone(track, "lost"))
            else:
                kept.append(track)
        self._tracks = kept
        return gone

    def _replaced(self, t: float, seen: list[VehicleTrack]) -> list[Gone]:
        """Hidden stopped tracks whose place a newer, stopped vehicle now holds."""
        gone = []
        seen_ids = {track.track_id for track in seen}
        for hidden in [tr for tr in self._tracks if tr.track_id not in seen_ids]:
            if t - hidden.last_seen_t <= self.options.max_gap_s or not hidden.stopped_when_last_seen:
                continue
            fraction, _ = self.rest_rule(hidden.still_box)
            for other in seen:
                if (
                    other.first_seen_t >= hidden.last_seen_t - self.options.max_gap_s
                    and other.still_for(t) >= other.rest_window_s
                    and displacement(hidden.still_box, other.still_box) <= fraction * hidden.still_box.length
                ):
                    gone.append(Gone(hidden, "replaced"))
                    self._tracks.remove(hidden)
                    break
        return gone
