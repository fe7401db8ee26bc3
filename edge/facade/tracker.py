"""Nearest-neighbour tracking of small fast blobs, predicting each track's next place with gravity.

A track's next position is predicted on the facade plane (metres) from its last points: constant
velocity plus its own recent vertical acceleration, clipped to what physics allows (no faster than g
downward), or plain gravity while it has only two points; the prediction goes back to pixels and blobs
are matched greedily, nearest first, within ``gate_px`` of it. A new track has no velocity yet: its
first match may be as far as a fast fall moves in the time since (``FIRST_STEP_MPS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.facade.ballistic import G, TrackPoints
from edge.facade.calibration import FacadeCalibration
from edge.facade.config import TrackingConfig
from edge.facade.detect import Blob

FIRST_STEP_MPS = 30.0  # fastest a just-seen object moves (a bottle after ~4 s of fall)
MAX_POINTS = 1000  # a track longer than this (a light left on) keeps its latest points


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

    @property
    def last_t(self) -> float:
        return self.t[-1]

    def __len__(self) -> int:
        return len(self.t)

    def add(self, t: float, blob: Blob, x: float, h: float, shaky: bool) -> None:
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
        if blobs:
            xs, hs = self.calibration.to_facade(
                np.array([b.u for b in blobs]), np.array([b.v for b in blobs])
            )
        else:
            xs = hs = np.zeros(0)
        pairs: list[tuple[float, int, int]] = []
        if self.tracks and blobs:
            # One distance matrix (tracks x blobs): a busy frame has up to 300 blobs and tens of tracks.
            predicted = np.array([track.predict(t) for track in self.tracks])
            pu, pv = self.calibration.to_pixel(predicted[:, 0], predicted[:, 1])
            gates = np.full(len(self.tracks), self.config.gate_px)
            for ti, track in enumerate(self.tracks):
                if len(track) == 1:
                    metres_per_px = max(self.calibration.metres_per_pixel(track.u[-1], track.v[-1]), 1e-6)
                    gates[ti] = max(gates[ti], FIRST_STEP_MPS * (t - track.last_t) / metres_per_px)
            bu = np.array([b.u for b in blobs])
            bv = np.array([b.v for b in blobs])
            distances = np.hypot(bu[None, :] - np.asarray(pu)[:, None], bv[None, :] - np.asarray(pv)[:, None])
            tis, bis = np.nonzero(distances <= gates[:, None])
            pairs = sorted(zip(distances[tis, bis].tolist(), tis.tolist(), bis.tolist(), strict=True))
        used_tracks: set[int] = set()
        used_blobs: set[int] = set()
        for _distance, ti, bi in pairs:
            if ti in used_tracks or bi in used_blobs:
                continue
            used_tracks.add(ti)
            used_blobs.add(bi)
            self.tracks[ti].add(t, blobs[bi], float(xs[bi]), float(hs[bi]), shaky)
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
