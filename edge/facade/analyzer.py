"""The facade analyzer: frames in, throws out (each with its ballistic fit, origin floor and column).

``FacadeAnalyzer.process(t, image)`` runs detection and tracking; a track is judged when it ends (no
blob for ``tracking.max_gap_s``: it left the frame, hit the ground or stopped), so one throw gives one
detection about ``max_gap_s`` after its last frame. Besides the ballistic rules (edge/facade/ballistic.py)
two rules need the scene: many downward tracks at once are rain or snow (``max_parallel_tracks``; a
track counts once it has come down, so laundry swinging in the wind does not), and a track seen mostly
while the camera shook is not trusted (``max_shaky_fraction``). With a ``parallax`` section the fit also
follows objects tossed towards the camera (``view_geometry``). One throw is one event: a track is the
same throw as one already reported when their releases nearly coincide, or when it lies on the same fall
(both tracks' points together fit one fall by the same rules, seen within that fall's time): a fall lost
for a few frames against a bright window, or an object seen as two blobs. Of the tracks ending together
the best-fitted is reported; a later one on a reported fall is dropped ("duplicate").
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from edge.facade.ballistic import FallFit, TrackPoints, ViewGeometry, fit_fall
from edge.facade.calibration import FacadeCalibration
from edge.facade.config import FacadeConfig
from edge.facade.detect import FrameMotion, MotionDetector
from edge.facade.tracker import BlobTracker, FacadeTrack

# A track counts as falling for the rain rule once it descends faster than this (m/s) and has come down
# this far since it was first seen (m): laundry and branches swinging in the wind go down half the time too.
DOWNWARD_MPS = 1.0
DOWNWARD_M = 1.0
# Two accepted tracks whose releases are this close are one throw (seconds, floors, metres across).
SAME_THROW_S = 1.0
SAME_THROW_FLOORS = 1.0
SAME_THROW_ACROSS_M = 2.0
RECENT_DETECTIONS = 20


@dataclass(frozen=True, slots=True)
class ThrowDetection:
    track_id: int
    fit: FallFit
    floor: int
    floor_confidence: float
    column: int | None
    first_seen_t: float
    last_seen_t: float
    pixels: tuple[tuple[float, float, float], ...]  # (t, u, v) of every tracked point, for evidence
    size_px: float  # median blob area, calibration pixels
    size_m: float  # rough object size: sqrt(area) times the local metres per pixel
    confidence: float  # the fit's confidence times the floor's


@dataclass(frozen=True, slots=True)
class Rejection:
    track_id: int
    reason: str
    frames: int
    last_seen_t: float


def view_geometry(config: FacadeConfig) -> ViewGeometry | None:
    """Where the camera stands (the parallax section): lets the fit follow objects tossed towards it."""
    parallax = config.parallax
    if parallax is None:
        return None
    return ViewGeometry(
        camera_distance_m=parallax.camera_distance_m,
        camera_height_m=parallax.camera_height_m,
        plane_distance_m=parallax.object_distance_m,
        camera_x_m=parallax.camera_x_m,
    )


class FacadeAnalyzer:
    def __init__(self, config: FacadeConfig, calibration: FacadeCalibration | None = None) -> None:
        self.config = config
        self.calibration = calibration or FacadeCalibration.from_config(config)
        self.detector = MotionDetector(
            config.detection, (config.camera.width, config.camera.height), config.masks
        )
        self.tracker = BlobTracker(config.tracking, self.calibration)
        self.last_motion: FrameMotion | None = None
        self.rejections: deque[Rejection] = deque(maxlen=200)
        self.rejection_counts: Counter[str] = Counter()
        self.detections: deque[ThrowDetection] = deque(maxlen=RECENT_DETECTIONS)
        self._reported_points: deque[TrackPoints] = deque(maxlen=RECENT_DETECTIONS)  # beside detections
        self._falling_counts: deque[tuple[float, int]] = deque()  # (t, downward tracks alive)

    def process(self, t: float, image: np.ndarray) -> list[ThrowDetection]:
        motion = self.detector.detect(image)
        self.last_motion = motion
        ended = self.tracker.update(t, motion.blobs, shaky=motion.shaky)
        falling = sum(
            1
            for track in self.tracker.tracks
            if len(track) >= 3
            and track.vertical_speed() < -DOWNWARD_MPS
            and track.h[0] - track.h[-1] >= DOWNWARD_M
        )
        self._falling_counts.append((t, falling))
        horizon = t - 30.0
        while self._falling_counts and self._falling_counts[0][0] < horizon:
            self._falling_counts.popleft()
        return self._judge(ended)

    def retune(self, config: FacadeConfig, calibration: FacadeCalibration | None = None) -> None:
        """New rules, tracking, detection settings, masks and calibration between two frames (a config
        applied live): tracks in flight and what was judged stay. The camera section must not change."""
        self.config = config
        if calibration is not None:
            self.calibration = calibration
            self.tracker.calibration = calibration
        self.tracker.config = config.tracking
        self.detector.retune(config.detection, config.masks)

    def flush(self) -> list[ThrowDetection]:
        """Judge every live track (the source ended)."""
        return self._judge(self.tracker.flush())

    def _judge(self, tracks: list[FacadeTrack]) -> list[ThrowDetection]:
        candidates = []
        for track in tracks:
            if len(track) < self.config.rules.min_track_frames:
                continue  # most tracks are noise specks: not worth a rejection record
            detection, reason = self._judge_track(track)
            if detection is None:
                self._reject(track, reason)
            else:
                candidates.append((detection, track))
        # Tracks ending together may be one throw (two blobs of one object): the best fit names the origin.
        candidates.sort(key=lambda pair: (-pair[0].confidence, pair[0].first_seen_t))
        found: list[ThrowDetection] = []
        for detection, track in candidates:
            if self._same_throw(detection.fit, track):
                self._reject(track, "duplicate")
                continue
            self.detections.append(detection)
            self._reported_points.append(track.points())
            found.append(detection)
        return sorted(found, key=lambda detection: detection.first_seen_t)

    def _reject(self, track: FacadeTrack, reason: str) -> None:
        self.rejections.append(Rejection(track.track_id, reason, len(track), track.last_t))
        self.rejection_counts[reason] += 1

    def _judge_track(self, track: FacadeTrack) -> tuple[ThrowDetection | None, str]:
        rules = self.config.rules
        if sum(track.shaky) > rules.max_shaky_fraction * len(track):
            return None, "camera_shake"
        fit = fit_fall(track.points(), rules, ground_h_m=0.0, view=view_geometry(self.config))
        if not fit.accepted:
            return None, fit.reason
        if self._parallel_tracks(track) > rules.max_parallel_tracks:
            return None, "precipitation"
        sigma = math.hypot(fit.release_sigma_m, rules.height_sigma_m)
        estimate = self.calibration.floors.estimate(fit.release_h_m, sigma)
        column = self.calibration.column_at(fit.release_x_m, fit.release_h_m)
        size_px = float(np.median(track.area_px))
        middle = len(track) // 2
        size_m = math.sqrt(size_px) * self.calibration.metres_per_pixel(track.u[middle], track.v[middle])
        detection = ThrowDetection(
            track_id=track.track_id,
            fit=fit,
            floor=estimate.floor,
            floor_confidence=round(estimate.confidence, 3),
            column=column,
            first_seen_t=track.t[0],
            last_seen_t=track.t[-1],
            pixels=tuple(zip(track.t, track.u, track.v, strict=True)),
            size_px=size_px,
            size_m=size_m,
            confidence=round(fit.confidence * estimate.confidence, 3),
        )
        return detection, "fall"

    def _parallel_tracks(self, track: FacadeTrack) -> float:
        """Median count of other downward tracks alive while this one was (rain and snow fall together)."""
        counts = [n for t, n in self._falling_counts if track.t[0] <= t <= track.t[-1]]
        if not counts:
            return 0.0
        return max(0.0, float(np.median(counts)) - 1.0)

    def _same_throw(self, fit: FallFit, track: FacadeTrack) -> bool:
        floor_m = self.config.building.floor_height_m
        for previous, points in zip(self.detections, self._reported_points, strict=True):
            if (
                abs(previous.fit.release_t - fit.release_t) < SAME_THROW_S
                and abs(previous.fit.release_h_m - fit.release_h_m) < SAME_THROW_FLOORS * floor_m
                and abs(previous.fit.release_x_m - fit.release_x_m) < SAME_THROW_ACROSS_M
            ):
                return True
            if self._one_fall(previous, points, track):
                return True
        return False

    def _one_fall(self, previous: ThrowDetection, points: TrackPoints, track: FacadeTrack) -> bool:
        """Does ``track`` lie on the reported fall: seen while it fell, and both tracks' points together
        a fall by the same rules (a fragment's own fit may place the release a floor or two off)?"""
        gap = self.config.tracking.max_gap_s
        if track.t[0] > previous.fit.impact_t + gap or track.t[-1] < previous.fit.release_t - gap:
            return False
        both = TrackPoints(
            t=np.concatenate([points.t, track.t]),
            x=np.concatenate([points.x, track.x]),
            h=np.concatenate([points.h, track.h]),
        )
        merged = fit_fall(both, self.config.rules, ground_h_m=0.0, view=view_geometry(self.config))
        return merged.accepted
