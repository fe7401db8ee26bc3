"""The facade analyzer: frames in, throws out (each with its ballistic fit, origin floor and column).

``FacadeAnalyzer.process(t, image)`` runs detection and tracking; a track is judged when it ends (no
blob for ``tracking.max_gap_s``: it left the frame, hit the ground or stopped). Besides the ballistic
rules (edge/facade/ballistic.py) three rules need the scene: a track seen mostly while the camera shook
is not trusted (``max_shaky_fraction``); many accepted falls at once are hail or a shower off the roof
(``max_parallel_tracks``), so an accepted fall is held ``PRECIPITATION_HOLD_S`` after it was judged for
its companions to end too; and fragments of one fall (a few frames lost against a bright window) fit
the same release: the later one is dropped. One throw gives one detection about ``max_gap_s +
PRECIPITATION_HOLD_S`` after its last frame.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from edge.facade.ballistic import FallFit, TrackPoints, fit_fall
from edge.facade.calibration import FacadeCalibration
from edge.facade.config import FacadeConfig
from edge.facade.detect import FrameMotion, MotionDetector
from edge.facade.tracker import BlobTracker, FacadeTrack

# Falls whose tracked spans overlap by this share of the shorter one happened "at once".
AT_ONCE_OVERLAP = 0.5
# An accepted fall waits this long after it was judged for parallel falls (precipitation) to end too.
PRECIPITATION_HOLD_S = 0.5
# Two accepted tracks whose releases are this close are one throw (seconds, floors, metres across).
SAME_THROW_S = 1.0
SAME_THROW_FLOORS = 1.0
SAME_THROW_ACROSS_M = 2.0
RECENT_DETECTIONS = 20
RECENT_FALLS = 200


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


class FacadeAnalyzer:
    def __init__(self, config: FacadeConfig, calibration: FacadeCalibration | None = None) -> None:
        self.config = config
        self.calibration = calibration or FacadeCalibration.from_config(config)
        self.detector = MotionDetector(
            config.detection, (config.camera.width, config.camera.height), config.masks, self._sky()
        )
        self.tracker = BlobTracker(config.tracking, self.calibration)
        self.last_motion: FrameMotion | None = None
        self.rejections: deque[Rejection] = deque(maxlen=200)
        self.rejection_counts: Counter[str] = Counter()
        self.detections: deque[ThrowDetection] = deque(maxlen=RECENT_DETECTIONS)
        self._pending: list[tuple[float, ThrowDetection]] = []  # (judged at, fall) held for precipitation
        self._falls: deque[tuple[float, float]] = deque(maxlen=RECENT_FALLS)  # spans of accepted falls

    def _sky(self) -> list[list[tuple[float, float]]]:
        """The picture above the roof line raised by ``ignore_above_roof_m``, as a polygon (the roof line
        is a straight line in the picture: the calibration maps the facade plane projectively)."""
        margin = self.config.detection.ignore_above_roof_m
        if margin is None:
            return []
        width, height = self.config.camera.width, self.config.camera.height
        across = np.linspace(-500.0, 500.0, 401)
        u, v = self.calibration.to_pixel(across, np.full_like(across, self.config.building.height_m + margin))
        inside = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (u <= width)
        if inside.sum() < 2:
            return []
        slope, offset = np.polyfit(u[inside], v[inside], 1)
        left, right = float(offset), float(offset + slope * width)
        if max(left, right) <= 0:
            return []  # the sky is out of the picture
        return [[(0.0, 0.0), (float(width), 0.0), (float(width), min(right, height)), (0.0, min(left, height))]]

    def process(self, t: float, image: np.ndarray) -> list[ThrowDetection]:
        motion = self.detector.detect(image)
        self.last_motion = motion
        ended = self.tracker.update(t, motion.blobs, shaky=motion.shaky)
        self._judge(ended, t)
        return self._release(t)

    def flush(self) -> list[ThrowDetection]:
        """Judge every live track and report every held fall (the source ended)."""
        self._judge(self.tracker.flush(), math.inf)
        return self._release(math.inf)

    def _judge(self, tracks: list[FacadeTrack], t: float) -> None:
        for track in tracks:
            if len(track) < self.config.rules.min_track_frames:
                continue  # most tracks are noise specks: not worth a rejection record
            detection, reason = self._judge_track(track)
            if detection is None:
                self._reject(track.track_id, reason, len(track), track.last_t)
                continue
            self._falls.append((detection.first_seen_t, detection.last_seen_t))
            self._pending.append((t, detection))

    def _reject(self, track_id: int, reason: str, frames: int, last_t: float) -> None:
        self.rejections.append(Rejection(track_id, reason, frames, last_t))
        self.rejection_counts[reason] += 1

    def _release(self, t: float) -> list[ThrowDetection]:
        """Held falls whose wait is over: precipitation, a fragment of a reported fall, or a throw."""
        due = [d for judged, d in self._pending if judged + PRECIPITATION_HOLD_S <= t]
        if not due:
            return []
        self._pending = [(judged, d) for judged, d in self._pending if judged + PRECIPITATION_HOLD_S > t]
        found = []
        for detection in sorted(due, key=lambda d: d.first_seen_t):
            frames = len(detection.pixels)
            if self._parallel_falls(detection) > self.config.rules.max_parallel_tracks:
                self._reject(detection.track_id, "precipitation", frames, detection.last_seen_t)
            elif self._same_throw(detection.fit):
                self._reject(detection.track_id, "duplicate", frames, detection.last_seen_t)
            else:
                self.detections.append(detection)
                found.append(detection)
        return found

    def _judge_track(self, track: FacadeTrack) -> tuple[ThrowDetection | None, str]:
        rules = self.config.rules
        if sum(track.shaky) > rules.max_shaky_fraction * len(track):
            return None, "camera_shake"
        points = track.points()
        scale = self.calibration.metres_per_pixel_at(np.array(track.u), np.array(track.v))
        points = TrackPoints(points.t, points.x, points.h, scale, float(np.median(track.area_px)))
        fit = fit_fall(points, rules, ground_h_m=0.0, camera=self.calibration.camera)
        if not fit.accepted:
            return None, fit.reason
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

    def _parallel_falls(self, detection: ThrowDetection) -> int:
        """Other accepted falls seen at the same time as this one (hail, a shower off the roof edge)."""
        start, end = detection.first_seen_t, detection.last_seen_t
        count = 0
        for first, last in self._falls:
            overlap = min(end, last) - max(start, first)
            if overlap >= AT_ONCE_OVERLAP * min(end - start, last - first):
                count += 1
        return count - 1  # itself

    def _same_throw(self, fit: FallFit) -> bool:
        floor_m = self.config.building.floor_height_m
        return any(
            abs(previous.fit.release_t - fit.release_t) < SAME_THROW_S
            and abs(previous.fit.release_h_m - fit.release_h_m) < SAME_THROW_FLOORS * floor_m
            and abs(previous.fit.release_x_m - fit.release_x_m) < SAME_THROW_ACROSS_M
            for previous in self.detections
        )
