"""The facade camera agent: source -> FacadeAnalyzer -> one ``object_thrown`` event per throw + health.

``FacadeAgent(config)`` opens the camera through ``FACADE_CAMERAS`` (file, stream and usb built in; the
facade simulator is the entry point ``camera.facade_simulator``, see edge/registry.py).
Lifecycle, frame loop and health come from ``CameraAgent`` (edge/vision/camera_agent.py). A throw
is instantaneous, so its event is sent as ``new`` (at the impact, ``started_at`` at the release) and
``end`` right after. Evidence clips and stills are a later step.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Literal

from citywatch.protocol import Channel, EventType, Severity
from citywatch.protocol.messages import ObjectThrownDetails
from edge.config import FacadeAgentConfig
from edge.facade.analyzer import FacadeAnalyzer, ThrowDetection
from edge.facade.config import FacadeCameraConfig
from edge.registry import SourceRegistry
from edge.vision.camera_agent import CameraAgent
from edge.vision.sources import Frame, FrameSource, OpenCvSource, SourceError

log = logging.getLogger(__name__)

FacadeCameraFactory = Callable[[Any, FacadeCameraConfig], FrameSource]
# The "camera" family, like the elevator's registry: entry points named camera.<kind> serve both.
FACADE_CAMERAS: SourceRegistry[FacadeCameraFactory] = SourceRegistry(
    "camera", config_field="facade.camera.source.kind"
)


@FACADE_CAMERAS.register("file")
def open_file(source: Any, camera: FacadeCameraConfig) -> FrameSource:
    if not source.path.is_file():
        raise SourceError(f"video file {source.path} does not exist")
    return OpenCvSource(str(source.path), live=False, loop=source.loop, fps=camera.fps)


@FACADE_CAMERAS.register("stream")
def open_stream(source: Any, camera: FacadeCameraConfig) -> FrameSource:
    return OpenCvSource(source.url, live=True, fps=camera.fps)


@FACADE_CAMERAS.register("usb")
def open_usb(source: Any, camera: FacadeCameraConfig) -> FrameSource:
    size = (source.width, source.height) if source.width and source.height else None
    return OpenCvSource(source.index, live=True, fps=camera.fps, size=size)


def make_facade_source(camera: FacadeCameraConfig) -> FrameSource:
    return FACADE_CAMERAS.get(camera.source.kind)(camera.source, camera)


def throw_details(detection: ThrowDetection) -> dict[str, Any]:
    """The protocol's ObjectThrownDetails; what the fit could not measure (not finite) is left out."""
    fit = detection.fit
    return ObjectThrownDetails(
        fall_height_m=_finite(fit.fall_height_m),
        floor_estimate=detection.floor,
        floor_confidence=round(min(max(detection.floor_confidence, 0.0), 1.0), 3),
        origin_column=detection.column,
        release_height_m=_finite(fit.release_h_m),
        fall_duration_s=_finite(fit.fall_duration_s),
        impact=_IMPACTS.get(fit.impact),
        impact_x_m=_finite(fit.impact_x_m),
        object_size_m=_finite(detection.size_m),
    ).model_dump(exclude_none=True)


_IMPACTS: dict[str, Literal["ground", "stopped"]] = {"ground": "ground", "stopped": "stopped"}


def _finite(value: float, digits: int = 2) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


class FacadeAgent(CameraAgent):
    agent_name = "facade"
    event_type = EventType.OBJECT_THROWN
    config: FacadeAgentConfig

    def __init__(self, config: FacadeAgentConfig, *, uplink: Any = None, clock: Any = None) -> None:
        facade = config.facade
        self.analyzer = FacadeAnalyzer(facade)
        self.throws: list[ThrowDetection] = []
        super().__init__(
            config,
            source=make_facade_source(facade.camera),
            camera=facade.camera,
            paced=bool(getattr(facade.camera.source, "realtime", False)),
            uplink=uplink,
        )

    def on_source_end(self) -> None:
        for detection in self.analyzer.flush():  # tracks still open at the end of a file
            self._report(detection)

    def process(self, frame: Frame) -> list[ThrowDetection]:
        started = time.perf_counter()
        t = self.frame_time(frame)
        detections = self.analyzer.process(t, frame.image)
        self.health.processed((time.perf_counter() - started) * 1000)
        self.frames_processed += 1
        for detection in detections:
            self._report(detection)
        return detections

    def _report(self, detection: ThrowDetection) -> None:
        fit = detection.fit
        self.throws.append(detection)
        impact_t = fit.impact_t if math.isfinite(fit.impact_t) else detection.last_seen_t
        ts = self.timestamp(impact_t)
        details = throw_details(detection)
        message = self.events.open(
            ts=ts,
            severity=Severity.CRITICAL,
            details=details,
            confidence=detection.confidence,
            started_at=self.timestamp(fit.release_t),
        )
        self.uplink.send(Channel.EVENT, message)
        self.uplink.send(
            Channel.EVENT, self.events.end(ts=ts, details=details, confidence=detection.confidence)
        )
        log.warning(
            "object thrown: floor %d column %s, %.1f m fall (event %s, confidence %.2f)",
            detection.floor,
            detection.column,
            fit.fall_height_m,
            message.event_id,
            detection.confidence,
        )

    def health_fields(self) -> dict[str, Any]:
        return {"throws": len(self.throws), "tracks_rejected": sum(self.analyzer.rejection_counts.values())}
