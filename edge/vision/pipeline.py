"""One frame through motion gate -> detector -> tracker -> zones -> e-bike analyzer, timed per stage.

The camera agent, the ride evaluation and the benchmark all run this same object, so what is scored
and measured is what runs on the device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edge.vision.config import ElevatorConfig
from edge.vision.detector import Detector, DetectorOptions
from edge.vision.ebike import Action, EbikeAnalyzer
from edge.vision.motion import GateDecision, MotionGate, MotionOptions
from edge.vision.tracker import IouTracker, TrackerOptions
from edge.vision.types import Detection
from edge.vision.zones import Zone, ZoneFilter

STAGES = ("motion", "inference", "tracking", "analyzer")


@dataclass(frozen=True, slots=True)
class FrameResult:
    t: float
    gate: GateDecision
    detections: list[Detection]  # tracked and zone-filtered; empty when the gate skipped the frame
    actions: list[Action]
    inference_ms: float | None
    stage_ms: dict[str, float] = field(default_factory=dict)


def detector_options(config: ElevatorConfig) -> DetectorOptions:
    detector = config.detector
    return DetectorOptions(
        model_path=detector.model,
        layout=detector.layout,
        score_threshold=detector.score_threshold,
        iou_threshold=detector.iou_threshold,
        threads=detector.threads,
        labels=tuple(detector.labels) if detector.labels else None,
        input_size=detector.input_size,
        class_thresholds=dict(detector.class_thresholds),
        label_map=dict(detector.label_map),
        keep_labels=tuple(detector.keep_labels),
    )


def motion_options(config: ElevatorConfig) -> MotionOptions:
    motion = config.motion
    return MotionOptions(
        enabled=motion.enabled,
        width=motion.width,
        threshold=motion.threshold,
        min_changed_fraction=motion.min_changed_fraction,
        full_check_interval_s=motion.full_check_interval_s,
        busy_interval_s=motion.busy_interval_s,
        roi_max_fraction=0.7 if motion.roi else 0.0,
    )


def zone_filter(config: ElevatorConfig) -> ZoneFilter:
    return ZoneFilter(
        zones=tuple(Zone(z.name, tuple(z.polygon)) for z in config.zones),
        masks=tuple(Zone(m.name, tuple(m.polygon)) for m in config.masks),
    )


class VisionPipeline:
    def __init__(
        self,
        *,
        detector: Detector,
        motion: MotionGate,
        tracker: IouTracker,
        zones: ZoneFilter,
        analyzer: EbikeAnalyzer,
    ) -> None:
        self.detector = detector
        self.motion = motion
        self.tracker = tracker
        self.zones = zones
        self.analyzer = analyzer
        self.last_detections: list[Detection] = []

    @classmethod
    def from_config(cls, config: ElevatorConfig, *, detector: Detector | None = None) -> VisionPipeline:
        """Builds every stage; loading the model raises ModelError for a missing or corrupt file."""
        return cls(
            detector=detector or Detector.load(detector_options(config)),
            motion=MotionGate(motion_options(config)),
            tracker=IouTracker(
                TrackerOptions(iou_threshold=config.tracker.iou_threshold, max_age_s=config.tracker.max_age_s)
            ),
            zones=zone_filter(config),
            analyzer=EbikeAnalyzer(config.ebike),
        )

    def process(
        self, t: float, image: np.ndarray, *, door_open: bool | None = None, floor: int | None = None
    ) -> FrameResult:
        stage_ms: dict[str, float] = {}
        start = time.perf_counter()
        tracks_alive = any(
            t - track.last_seen_t <= self.tracker.options.max_age_s for track in self.tracker.tracks
        )
        busy = self.analyzer.busy or tracks_alive
        gate = self.motion.check(t, image, busy=busy)
        after_motion = time.perf_counter()
        stage_ms["motion"] = (after_motion - start) * 1000
        detections: list[Detection] = []
        inference_ms: float | None = None
        if gate.run:
            # While something is tracked, look at the whole car: a parked e-bike does not move.
            roi = None if busy else gate.roi
            raw = self.detector.detect(image, roi=roi)
            inference_ms = self.detector.last_inference_ms
            after_detect = time.perf_counter()
            stage_ms["inference"] = (after_detect - after_motion) * 1000
            height, width = image.shape[:2]
            detections = self.tracker.update(t, self.zones.apply(raw, width, height))
            after_track = time.perf_counter()
            stage_ms["tracking"] = (after_track - after_detect) * 1000
            self.last_detections = detections
        before_analyzer = time.perf_counter()
        actions = self.analyzer.update(t, detections if gate.run else None, door_open=door_open, floor=floor)
        stage_ms["analyzer"] = (time.perf_counter() - before_analyzer) * 1000
        return FrameResult(
            t=t,
            gate=gate,
            detections=detections,
            actions=actions,
            inference_ms=inference_ms,
            stage_ms=stage_ms,
        )
