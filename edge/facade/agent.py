"""The facade camera agent: source -> FacadeAnalyzer -> one ``object_thrown`` event per throw + health.

``FacadeAgent(config)`` opens the camera through ``FACADE_CAMERAS`` (file, stream and usb built in; the
facade simulator is the entry point ``camera.facade_simulator``, see edge/registry.py).
Lifecycle, frame loop and health come from ``CameraAgent`` (edge/vision/camera_agent.py). A throw
is instantaneous, so its event is sent as ``new`` (at the impact, ``started_at`` at the release) and
``end`` right after.

Evidence (``facade.evidence``, edge/evidence/): every frame is offered to the recorder (it keeps one in
``camera fps / clip_fps``, scaled and JPEG-compressed, in its ring); a reported throw opens a window from
``pre_s`` before its first sighting to ``post_s`` after its impact, and once the frames pass its end (or
the source ends) the window goes to a background worker that writes the MP4 clip and the annotated still
and sends both as ``evidence`` messages (edge/uplink/evidence.py). The frame loop never waits for it.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Literal

from citywatch.protocol import Channel, EventType, Severity
from citywatch.protocol.messages import ObjectThrownDetails
from edge.config import FacadeAgentConfig
from edge.evidence.buffer import ClipWindow, EvidenceRecorder
from edge.evidence.clip import clip_codec
from edge.evidence.privacy import FaceFinder
from edge.evidence.throw import still_time, throw_overlay
from edge.evidence.worker import Evidence, EvidenceJob, EvidenceProducer, EvidenceWorker
from edge.facade.analyzer import FacadeAnalyzer, ThrowDetection
from edge.facade.calibration import FacadeCalibration
from edge.facade.config import FacadeCameraConfig
from edge.uplink.evidence import evidence_messages
from edge.vision.camera_agent import CameraAgent
from edge.vision.sources import Frame, FrameSource, camera_registry

log = logging.getLogger(__name__)

EVIDENCE_STOP_S = 60.0  # stopping waits this long for clips being written

# The "camera" family: the built-in kinds, and entry points named camera.<kind> that every family shares.
FACADE_CAMERAS = camera_registry("facade.camera.source.kind")


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
        self.recorder: EvidenceRecorder | None = None
        self.evidence_worker: EvidenceWorker | None = None
        self.evidence_sent: list[Evidence] = []
        if facade.evidence.enabled:
            # What can fail (no face cascade) fails here, before anything starts; the codec probe runs
            # before the threads do (it silences FFmpeg's stderr for a moment).
            faces = (
                FaceFinder(facade.evidence.privacy.face_cascade)
                if facade.evidence.privacy.blur_faces
                else None
            )
            log.info("facade evidence: MP4 clips with %s", clip_codec())
            self.recorder = EvidenceRecorder(facade.evidence)
            producer = EvidenceProducer(
                facade.evidence, frame_size=(facade.camera.width, facade.camera.height), face_finder=faces
            )
            self.evidence_worker = EvidenceWorker(producer, self._send_evidence, name="facade-evidence")
        super().__init__(
            config,
            source=make_facade_source(facade.camera),
            camera=facade.camera,
            paced=bool(getattr(facade.camera.source, "realtime", False)),
            uplink=uplink,
        )

    # -- live config (edge/live_fields.py: what may change while it runs) -------------------------
    def prepare_config(
        self, config: FacadeAgentConfig, changed: tuple[str, ...] | list[str]
    ) -> FacadeCalibration | None:
        """A new calibration when the building, calibration, columns or parallax changed."""
        sections = ("facade.building", "facade.calibration", "facade.columns", "facade.parallax")
        if not any(path.startswith(sections) for path in changed):
            return None
        return FacadeCalibration.from_config(config.facade)

    def swap_config(
        self, config: FacadeAgentConfig, changed: tuple[str, ...], prepared: FacadeCalibration | None
    ) -> None:
        self.analyzer.retune(config.facade, prepared)

    def start(self) -> FacadeAgent:
        if self.evidence_worker is not None:
            self.evidence_worker.start()
        super().start()
        return self

    def close(self) -> None:
        """Stopping: clips still gathering are cut at the last frame and finished before the uplink stops."""
        if self.recorder is not None:
            self._submit_evidence(self.recorder.flush())
        if self.evidence_worker is not None:
            self.evidence_worker.stop(timeout_s=EVIDENCE_STOP_S)

    def on_source_end(self) -> None:
        for detection in self.analyzer.flush():  # tracks still open at the end of a file
            self._report(detection)
        if self.recorder is not None:
            self._submit_evidence(self.recorder.flush())

    def process(self, frame: Frame) -> list[ThrowDetection]:
        started = time.perf_counter()
        t = self.frame_time(frame)
        detections = self.analyzer.process(t, frame.image)
        closed = self.recorder.offer(t, frame.image) if self.recorder is not None else []
        self.health.processed((time.perf_counter() - started) * 1000)
        self.frames_processed += 1
        for detection in detections:
            self._report(detection)
        self._submit_evidence(closed)
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
        if self.recorder is not None:
            evidence = self.config.facade.evidence
            # A fitted impact far beyond what was seen (it fell behind a canopy) must not hold the clip open.
            end_t = min(impact_t, detection.last_seen_t + evidence.max_event_s) + evidence.post_s
            early = self.recorder.open_window(
                message.event_id, detection.first_seen_t - evidence.pre_s, end_t, context=detection
            )
            self._submit_evidence(early)
        log.warning(
            "object thrown: floor %d column %s, %.1f m fall (event %s, confidence %.2f)",
            detection.floor,
            detection.column,
            fit.fall_height_m,
            message.event_id,
            detection.confidence,
        )

    def health_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "throws": len(self.throws),
            "tracks_rejected": sum(self.analyzer.rejection_counts.values()),
        }
        if self.recorder is not None and self.evidence_worker is not None:
            fields["evidence_sent"] = self.evidence_worker.done
            fields["evidence_failed"] = self.evidence_worker.failed + self.evidence_worker.dropped
            fields["evidence_ring_kb"] = self.recorder.ring.nbytes // 1000
        return fields

    # -- evidence ---------------------------------------------------------------------------------
    def _submit_evidence(self, windows: list[ClipWindow]) -> None:
        if self.evidence_worker is None:
            return
        for window in windows:
            detection: ThrowDetection = window.context
            fit = detection.fit
            impact_t = fit.impact_t if math.isfinite(fit.impact_t) else detection.last_seen_t
            self.evidence_worker.submit(
                EvidenceJob(
                    key=window.key,
                    window=window,
                    overlay=throw_overlay(detection, self.config.facade, self.analyzer.calibration),
                    still_t=still_time(detection),
                    keep=(detection.first_seen_t, impact_t),
                    wall_clock=self.timestamp,
                )
            )

    def _send_evidence(self, evidence: Evidence, job: EvidenceJob) -> None:
        """The worker's sink: clip and still as evidence messages, through the outbox like events."""
        device_id = self.config.device.id
        clip, still = evidence.clip, evidence.still
        if clip is not None and evidence.clip_taken_at is not None:
            first_seen_t, impact_t = job.keep
            caption = (
                f"{first_seen_t - clip.start_t:.1f} s before the first sighting to "
                f"{clip.end_t - impact_t:.1f} s after the impact, {clip.width}x{clip.height} at "
                f"{clip.fps:g} fps ({clip.codec})"
            )
            for message in evidence_messages(
                device_id=device_id,
                event_id=evidence.key,
                kind="clip",
                content_type="video/mp4",
                data=clip.data,
                taken_at=evidence.clip_taken_at,
                caption=caption,
            ):
                self.uplink.send(Channel.EVIDENCE, message)
        if still is not None and evidence.still_taken_at is not None:
            for message in evidence_messages(
                device_id=device_id,
                event_id=evidence.key,
                kind="still",
                content_type="image/jpeg",
                data=still.jpeg,
                taken_at=evidence.still_taken_at,
                caption=job.overlay.label,
            ):
                self.uplink.send(Channel.EVIDENCE, message)
        self.evidence_sent.append(evidence)
        log.info(
            "evidence for event %s: clip %s bytes, still %s bytes, made in %.1f s (%.1f s after the window closed)",
            evidence.key,
            len(clip.data) if clip is not None else "no",
            len(still.jpeg) if still is not None else "no",
            evidence.seconds,
            time.monotonic() - job.submitted,
        )
