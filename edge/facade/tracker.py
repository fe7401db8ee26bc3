"""Nearest-neighbour tracking of small fast blobs, predicting each track's next place with gravity.

A track's next position is predicted on the facade plane (metres) from its last points: constant
velocity plus its own recent vertical acceleration, clipped to what physics allows (no faster than g
downward), or plain gravity while it has only two points; the prediction goes back to pixels and blobs
are matched greedily, nearest first, within a gate of it: a few pixels plus a share of the track's step
(``FacadeTrack.gate``, at most ``gate_px``). A new track has no velocity yet: its first match may be as
far as a fast fall moves in the time since (``FIRST_STEP_MPS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge.facade.ballistic import G, TrackPoints
from edge.facade.calibration import FacadeCalibration
from edge.facade.config import TrackingConfig
from edge.facade.detect import Blob

FIRST_STEP_MPS = 30.0  # fastest a just-seen object moves (a bottle after ~4 s of fall)
MAX_POINTS = 1000  # a track longer than this (a light left on) keeps its latest points
# Gate of a track with a velocity: this many pixels, plus a multiple of its own recent prediction
# error, plus a share of its step since the last point. Chance chains of specks (rain, snow, noise)
# must be cut young: a track of fewer than MATURE_POINTS must not skip more than YOUNG_GAP_FRAMES.
MIN_GATE_PX = 3.0
ERROR_GATE_FACTOR = 2.5
GATE_STEP_FRACTION = 0.12
MATURE_POINTS = 8
YOUNG_GAP_FRAMES = 2.5
GAP_WIDENING = 0.2  # the gate grows by this share per missed frame
ERROR_MEMORY = 0.3  # weight of the newest prediction error in the running mean


@dataclass
class FacadeTrack:
    track_id: int
    t: list[float] = field(default_factory=list)
    u: list[float] = field(default_factory=list)
    v: list[float] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    h: list[float] = field(default_factory=list)
    area_px: list[float] = field(default_factory=list)
    shaky: list[bool] = field(default_factory=list)
    error2_px: float = 1.0  # running mean of the squared prediction error, pixels

    @property
    def last_t(self) -> float:
        return self.t[-1]

    def __len__(self) -> int:
        return len(self.t)

    def add(self, t: float, blob: Blob, x: float, h: float, shaky: bool, error_px: float | None = None) -> None:
        if error_px is not None:
            self.error2_px += ERROR_MEMORY * (error_px * error_px - self.error2_px)
        self.t.append(t)
        self.u.append(blob.u)
        self.v.append(blob.v)
        self.x.append(x)
        self.h.append(h)
        self.area_px.append(blob.area_px)
        self.shaky.append(shaky)
        if len(self.t) > MAX_POINTS:
            for values in (self.t, self.u, self.v, self.x, self.h, self.area_px, self.shaky):
                del values[0]

    def predict(self, t: float) -> tuple[float, float]:
        """Facade (x, h) expected at ``t``."""
        dt = t - self.t[-1]
        if len(self) == 1:
            return self.x[-1], self.h[-1]
        step = self.t[-1] - self.t[-2]
        vx = (self.x[-1] - self.x[-2]) / step
        vh = (self.h[-1] - self.h[-2]) / step
        if len(self) >= 3:
            earlier = self.t[-2] - self.t[-3]
            vh_before = (self.h[-2] - self.h[-3]) / earlier
            ah = min(max((vh - vh_before) / ((step + earlier) / 2), -1.1 * G), 0.5 * G)
        else:
            ah = -G
        return self.x[-1] + vx * dt, self.h[-1] + vh * dt + 0.5 * ah * dt * dt

    def gate(self, t: float, largest_px: float, metres_per_px: float) -> float:
        """How far (pixels) from its prediction the next blob may be: a few pixels, plus what its own
        predictions have been missing by, plus a share of the step for a fast one, plus how far it could
        have fallen from rest since (a still thing may start to fall); so random specks around a
        gravity-shaped prediction, or next to a still blob, do not make a fall out of nothing. 0: this
        track may not take a blob now (young and already missed too many frames)."""
        if len(self) < 2:
            return MIN_GATE_PX  # widened by the tracker to how far a fast fall moves (FIRST_STEP_MPS)
        step_s = max(self.t[-1] - self.t[-2], 1e-3)
        dt = t - self.t[-1]
        gap = max(1.0, dt / step_s)
        if len(self) < MATURE_POINTS and gap > YOUNG_GAP_FRAMES:
            return 0.0
        speed = math.hypot(self.u[-1] - self.u[-2], self.v[-1] - self.v[-2]) / step_s
        gate = (MIN_GATE_PX + ERROR_GATE_FACTOR * math.sqrt(self.error2_px)) * (1.0 + GAP_WIDENING * (gap - 1.0))
        gate += GATE_STEP_FRACTION * speed * dt + 0.5 * G * dt * dt / max(metres_per_px, 1e-6)
        if len(self) == 2:  # no acceleration of its own yet: predicted with g, which a non-fall lacks
            gate *= 2.0
        return min(largest_px, gate)

    def vertical_speed(self) -> float:
        """Recent vertical speed, m/s (negative: down); 0 for a single point."""
        if len(self) < 2:
            return 0.0
        k = max(0, len(self) - 4)
        span = self.t[-1] - self.t[k]
        return (self.h[-1] - self.h[k]) / span if span > 0 else 0.0

    def points(self) -> TrackPoints:
        return TrackPoints(t=np.array(self.t), x=np.array(self.x), h=np.array(self.h))


class BlobTracker:
    def __init__(self, config: TrackingConfig, calibration: FacadeCalibration) -> None:
        self.config = config
        self.calibration = calibration
        self.tracks: list[FacadeTrack] = []
        self._next_id = 1

    def update(self, t: float, blobs: list[Blob], *, shaky: bool = False) -> list[FacadeTrack]:
        """Add this frame's blobs; returns the tracks that ended (unmatched longer than max_gap_s)."""
        ended = [track for track in self.tracks if t - track.last_t > self.config.max_gap_s]
        self.tracks = [track for track in self.tracks if t - track.last_t <= self.config.max_gap_s]
        if not blobs:
            return ended
        us = np.array([b.u for b in blobs])
        vs = np.array([b.v for b in blobs])
        xs, hs = self.calibration.to_facade(us, vs)
        used_blobs: set[int] = set()
        if self.tracks:
            # Vectorised: snow puts hundreds of tracks and blobs in one frame.
            predicted = np.array([track.predict(t) for track in self.tracks])
            pu, pv = self.calibration.to_pixel(predicted[:, 0], predicted[:, 1])
            scales = self.calibration.metres_per_pixel_at(
                np.array([track.u[-1] for track in self.tracks]), np.array([track.v[-1] for track in self.tracks])
            )
            gates = np.array(
                [track.gate(t, self.config.gate_px, float(scale)) for track, scale in zip(self.tracks, scales, strict=True)]
            )
            new = [ti for ti, track in enumerate(self.tracks) if len(track) == 1]
            if new:
                steps = np.array([FIRST_STEP_MPS * (t - self.tracks[ti].last_t) for ti in new])
                gates[new] = np.maximum(gates[new], steps / np.maximum(scales[new], 1e-6))
            distance = np.hypot(us[None, :] - pu[:, None], vs[None, :] - pv[:, None])
            rows, cols = np.nonzero(distance <= gates[:, None])
            order = np.argsort(distance[rows, cols], kind="stable")
            used_tracks: set[int] = set()
            for ti, bi in zip(rows[order].tolist(), cols[order].tolist(), strict=True):
                if ti in used_tracks or bi in used_blobs:
                    continue
                used_tracks.add(ti)
                used_blobs.add(bi)
                track = self.tracks[ti]
                # The first step is from a guess (no velocity yet): not a prediction error.
                error = float(distance[ti, bi]) if len(track) >= 2 else None
                track.add(t, blobs[bi], float(xs[bi]), float(hs[bi]), shaky, error)
        for bi, blob in enumerate(blobs):
            if bi in used_blobs or len(self.tracks) >= self.config.max_tracks:
                continue
            track = FacadeTrack(self._next_id)
            self._next_id += 1
            track.add(t, blob, float(xs[bi]), float(hs[bi]), shaky)
            self.tracks.append(track)
        return ended

    def flush(self) -> list[FacadeTrack]:
        """End every track (the source ended)."""
        ended, self.tracks = self.tracks, []
        return ended
