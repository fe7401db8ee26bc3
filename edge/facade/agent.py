"""The facade camera agent: source -> FacadeAnalyzer -> one ``object_thrown`` event per throw + health.

``FacadeAgent(config)`` opens the camera through ``FACADE_CAMERAS`` (file, stream and usb built in; the
facade simulator is the entry point ``camera.facade_simulator``, see edge/registry.py).
``start()`` runs the frame loop in a thread; ``stop()`` flushes the uplink and stops the camera. A throw
is instantaneous, so its event is sent as ``new`` (at the impact, ``started_at`` at the release) and
``end`` right after. Evidence clips and stills are a later step.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from citywatch.protocol import Channel, CommandMessage, EventType, Severity, TelemetryMessage
from citywatch.protocol.messages import ObjectThrownDetails
from edge.config import FacadeAgentConfig
from edge.events import EventEmitter
from edge.facade.analyzer import FacadeAnalyzer, ThrowDetection
from edge.facade.config import FacadeCameraConfig
from edge.registry import SourceRegistry
from edge.vision.health import HealthCounters
from edge.vision.sources import Frame, FrameGrabber, FrameSource, OpenCvSource, SourceError

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


class FacadeAgent:
    def __init__(self, config: FacadeAgentConfig, *, uplink: Any = None, clock: Any = None) -> None:
        self.config = config
        facade = config.facade
        self.analyzer = FacadeAnalyzer(facade)
        self.health = HealthCounters()
        self.uplink = uplink if uplink is not None else self._make_uplink()
        self.events = EventEmitter(device_id=config.device.id, event_type=EventType.OBJECT_THROWN)
        self._paced = bool(getattr(facade.camera.source, "realtime", False))
        self.grabber = FrameGrabber(
            make_facade_source(facade.camera),
            health=self.health,
            paced=self._paced,
            reconnect_initial_s=facade.camera.reconnect_initial_s,
            reconnect_max_s=facade.camera.reconnect_max_s,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wall0 = datetime.now(UTC)
        self._t0: float | None = None
        self._last_health = time.monotonic()
        self.frames_processed = 0
        self.throws: list[ThrowDetection] = []
        self.finished = threading.Event()

    def _make_uplink(self) -> Any:
        from edge.agent import uplink_for

        return uplink_for(self.config, self._on_command)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FacadeAgent:
        self.uplink.start()
        self.grabber.start()
        self._thread = threading.Thread(target=self._run, name="facade-agent", daemon=True)
        self._thread.start()
        log.info("facade agent %s started", self.config.device.id)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.grabber.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.uplink.stop()
        log.info("facade agent %s stopped after %d frames", self.config.device.id, self.frames_processed)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until the source ends (files) or stop; True if it ended."""
        return self.finished.wait(timeout_s)

    # -- frame loop -------------------------------------------------------------------------------
    def _frame_time(self, frame: Frame) -> float:
        return time.monotonic() if (self._paced or self.grabber.source.live) else frame.t

    def _timestamp(self, t: float) -> datetime:
        if self._t0 is None:
            self._t0 = t
        return self._wall0 + timedelta(seconds=t - self._t0)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.grabber.get(timeout_s=0.5)
                if frame is None:
                    if self.grabber.finished.is_set():
                        for detection in self.analyzer.flush():  # tracks still open at the end of a file
                            self._report(detection)
                        break
                    self._maybe_report_health()
                    continue
                self.process(frame)
                self._maybe_report_health()
        except Exception:
            log.exception("facade agent frame loop failed")
        finally:
            self.finished.set()

    def process(self, frame: Frame) -> list[ThrowDetection]:
        started = time.perf_counter()
        t = self._frame_time(frame)
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
        ts = self._timestamp(impact_t)
        details = throw_details(detection)
        message = self.events.open(
            ts=ts,
            severity=Severity.CRITICAL,
            details=details,
            confidence=detection.confidence,
            started_at=self._timestamp(fit.release_t),
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

    def _maybe_report_health(self) -> None:
        interval = float(self.config.telemetry.health_interval_s)
        now = time.monotonic()
        if now - self._last_health < interval:
            return
        elapsed, self._last_health = now - self._last_health, now
        fields = self.health.report(elapsed, queue_depth=self.uplink.queue_depth)
        fields["throws"] = len(self.throws)
        fields["tracks_rejected"] = sum(self.analyzer.rejection_counts.values())
        self.uplink.send(
            Channel.TELEMETRY,
            TelemetryMessage(
                device_id=self.config.device.id,
                ts=datetime.now(UTC),
                measurement="health",
                fields=fields,
                tags={"agent": "facade"},
            ),
        )

    def _on_command(self, command: CommandMessage) -> tuple[bool, str] | None:
        return None  # no facade commands yet
