"""The elevator camera agent: source -> motion gate -> detector -> tracker -> e-bike analyzer ->
actuators + uplink (events with snapshots, health telemetry).

``ElevatorAgent(config)`` (registered for ``kind: elevator`` in edge.agent) loads the model in
its constructor, so a missing or corrupt model file stops
``citywatch edge run`` at start with a clear ModelError. ``start()`` runs the frame loop in a thread;
``stop()`` releases the door, flushes the uplink and stops the camera.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from citywatch.protocol import Channel, CommandMessage, EventType, Severity
from citywatch.protocol.messages import EbikeDetails
from edge.config import ElevatorAgentConfig
from edge.registry import NoSourceDriver
from edge.vision.actuators import Actuators, make_actuators
from edge.vision.camera_agent import CameraAgent
from edge.vision.detector import Detector, labels_problem
from edge.vision.ebike import Action
from edge.vision.errors import VisionStartError
from edge.vision.motion import MotionGate
from edge.vision.pipeline import VisionPipeline, detector_options, motion_options, zone_filter
from edge.vision.snapshots import encode_snapshot, new_snapshot_id, snapshot_message
from edge.vision.sources import Frame, make_source, source_paced
from edge.vision.zones import ZoneFilter

log = logging.getLogger(__name__)


def preflight(config: ElevatorAgentConfig) -> list[str]:
    """What ``citywatch edge check`` adds for a camera: the model loads and the video file exists."""
    from edge.vision.detector import Detector
    from edge.vision.pipeline import detector_options

    problems = []
    try:
        detector = Detector.load(detector_options(config.elevator))
    except VisionStartError as exc:
        problems.append(f"elevator.detector.model: {exc}")
    else:
        trigger = config.elevator.ebike.trigger_labels
        if problem := labels_problem("elevator.ebike.trigger_labels", trigger, detector):
            problems.append(problem)
    try:
        make_source(config.elevator.camera)
    except (VisionStartError, NoSourceDriver) as exc:
        problems.append(f"elevator.camera.source: {exc}")
    return problems


@dataclass(frozen=True, slots=True)
class _Retuned:
    detector: Detector
    motion: MotionGate | None
    zones: ZoneFilter


class ElevatorAgent(CameraAgent):
    agent_name = "elevator"
    event_type = EventType.EBIKE_IN_ELEVATOR
    config: ElevatorAgentConfig

    def __init__(
        self,
        config: ElevatorAgentConfig,
        *,
        uplink: Any = None,
        actuators: Actuators | None = None,
        clock: Any = None,  # accepted for symmetry with the culvert agent; frames carry their own time
    ) -> None:
        elevator = config.elevator
        self.pipeline = VisionPipeline.from_config(elevator)  # raises ModelError now, not later
        self.actuators = actuators or make_actuators(elevator.actuators)
        super().__init__(
            config,
            source=make_source(elevator.camera),
            camera=elevator.camera,
            paced=source_paced(elevator.camera),
            uplink=uplink,
        )

    def close(self) -> None:
        self.actuators.close()

    # -- live config (edge/live_fields.py: what may change while it runs) -------------------------
    def prepare_config(self, config: ElevatorAgentConfig, changed: tuple[str, ...] | list[str]) -> _Retuned:
        elevator = config.elevator
        detector = self.pipeline.detector
        if any(path.startswith("elevator.detector.") for path in changed):
            detector = detector.retuned(detector_options(elevator))  # ModelError: not for this model
        if problem := labels_problem(
            "elevator.ebike.trigger_labels", elevator.ebike.trigger_labels, detector
        ):
            raise ValueError(problem)
        motion_changed = any(path.startswith("elevator.motion.") for path in changed)
        return _Retuned(
            detector=detector,
            motion=MotionGate(motion_options(elevator)) if motion_changed else None,
            zones=zone_filter(elevator),
        )

    def swap_config(self, config: ElevatorAgentConfig, changed: tuple[str, ...], prepared: _Retuned) -> None:
        pipeline, elevator = self.pipeline, config.elevator
        pipeline.detector = prepared.detector
        pipeline.zones = prepared.zones
        if prepared.motion is not None:
            pipeline.motion = prepared.motion  # learns its reference frame again on the next frame
        pipeline.tracker.options = dataclasses.replace(
            pipeline.tracker.options,
            iou_threshold=elevator.tracker.iou_threshold,
            max_age_s=elevator.tracker.max_age_s,
        )
        pipeline.analyzer.config = elevator.ebike  # its phase, held door and open event stay

    def process(self, frame: Frame) -> list[Action]:
        t = self.frame_time(frame)
        result = self.pipeline.process(t, frame.image, door_open=self.actuators.door_open())
        self.health.processed(result.inference_ms)
        self.frames_processed += 1
        for action in result.actions:
            self._apply(action, frame.image)
        return result.actions

    def _apply(self, action: Action, image: np.ndarray) -> None:
        ts = self.timestamp(action.t)
        details = EbikeDetails(
            track_id=action.track_id,
            frames_seen=action.frames_seen,
            door_held=action.door_held,
            floor=action.floor,
        ).model_dump(exclude_none=True)
        if action.kind == "hold_door":
            self.actuators.hold_door(action.reason)
        elif action.kind == "release_door":
            self.actuators.release_door(action.reason)
        elif action.kind == "voice_warning":
            self.actuators.voice_warning(action.reason)
        elif action.kind == "event_new":
            snapshot_id = new_snapshot_id()
            started = self.timestamp(action.started_t if action.started_t is not None else action.t)
            message = self.events.open(
                ts=ts,
                severity=Severity.WARNING,
                details=details,
                confidence=action.confidence,
                started_at=started,
                snapshot_id=snapshot_id,
            )
            self.uplink.send(Channel.EVENT, message)
            self._send_snapshot(image, message.event_id, snapshot_id, ts)
            log.warning("e-bike in elevator: event %s (confidence %.2f)", message.event_id, action.confidence)
        elif action.kind == "event_update" and self.events.is_open:
            self.uplink.send(
                Channel.EVENT, self.events.update(ts=ts, details=details, confidence=action.confidence)
            )
        elif action.kind == "event_end" and self.events.is_open:
            message = self.events.end(ts=ts, details=details, confidence=max(action.confidence, 0.0))
            self.uplink.send(Channel.EVENT, message)
            log.info("e-bike left: event %s ended", message.event_id)

    def _send_snapshot(self, image: np.ndarray, event_id: str, snapshot_id: str, ts: datetime) -> None:
        snapshot = encode_snapshot(image, self.pipeline.last_detections, self.config.elevator.snapshots)
        self.uplink.send(
            Channel.SNAPSHOT,
            snapshot_message(
                device_id=self.config.device.id,
                event_id=event_id,
                snapshot_id=snapshot_id,
                ts=ts,
                snapshot=snapshot,
            ),
        )

    def health_fields(self) -> dict[str, Any]:
        return {"door_held": self.pipeline.analyzer.door_held}

    def on_command(self, command: CommandMessage) -> tuple[bool, str] | None:
        if command.command == "release_door":
            self.actuators.release_door("remote command")
            self.pipeline.analyzer.door_held = False
            return True, "door released"
        return None
