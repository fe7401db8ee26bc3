"""The elevator camera agent: source -> motion gate -> detector -> tracker -> e-bike analyzer ->
actuators + uplink (events with snapshots, health telemetry).

``ElevatorAgent(config)`` (registered for ``kind: elevator`` in edge.agent) loads the model in
its constructor, so a missing or corrupt model file stops
``citywatch edge run`` at start with a clear ModelError. ``start()`` runs the frame loop in a thread;
``stop()`` releases the door, flushes the uplink and stops the camera.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from citywatch.protocol import Channel, CommandMessage, EventType, Severity, TelemetryMessage
from citywatch.protocol.messages import EbikeDetails
from edge.config import ElevatorAgentConfig
from edge.registry import NoSourceDriver
from edge.vision.actuators import Actuators, make_actuators
from edge.vision.ebike import Action
from edge.vision.errors import VisionStartError
from edge.vision.health import HealthCounters
from edge.vision.pipeline import VisionPipeline
from edge.vision.snapshots import encode_snapshot, new_snapshot_id, snapshot_message
from edge.vision.sources import Frame, FrameGrabber, make_source, source_paced

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
        missing = set(config.elevator.ebike.trigger_labels) - set(detector.labels)
        if missing:
            problems.append(
                f"elevator.ebike.trigger_labels: {sorted(missing)} not among the model's labels {list(detector.labels)}"
            )
    try:
        make_source(config.elevator.camera)
    except (VisionStartError, NoSourceDriver) as exc:
        problems.append(f"elevator.camera.source: {exc}")
    return problems


class ElevatorAgent:
    def __init__(
        self,
        config: ElevatorAgentConfig,
        *,
        uplink: Any = None,
        actuators: Actuators | None = None,
        clock: Any = None,  # accepted for symmetry with the culvert agent; frames carry their own time
    ) -> None:
        self.config = config
        elevator = config.elevator
        self.pipeline = VisionPipeline.from_config(elevator)  # raises ModelError now, not later
        self.health = HealthCounters()
        self.actuators = actuators or make_actuators(elevator.actuators)
        self.uplink = uplink if uplink is not None else self._make_uplink()
        from edge.events import EventEmitter

        self.events = EventEmitter(device_id=config.device.id, event_type=EventType.EBIKE_IN_ELEVATOR)
        self._paced = source_paced(elevator.camera)
        self.grabber = FrameGrabber(
            make_source(elevator.camera),
            health=self.health,
            paced=self._paced,
            reconnect_initial_s=elevator.camera.reconnect_initial_s,
            reconnect_max_s=elevator.camera.reconnect_max_s,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wall0 = datetime.now(UTC)
        self._t0: float | None = None
        self._last_health = time.monotonic()
        self.frames_processed = 0
        self.finished = threading.Event()

    def _make_uplink(self) -> Any:
        from edge.agent import uplink_for

        return uplink_for(self.config, self._on_command)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> ElevatorAgent:
        self.uplink.start()
        self.grabber.start()
        self._thread = threading.Thread(target=self._run, name="camera-agent", daemon=True)
        self._thread.start()
        log.info("camera agent %s started", self.config.device.id)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.grabber.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.actuators.close()
        self.uplink.stop()
        log.info("camera agent %s stopped after %d frames", self.config.device.id, self.frames_processed)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until the source ends (files, finite simulations) or stop; True if it ended."""
        return self.finished.wait(timeout_s)

    # -- frame loop -------------------------------------------------------------------------------
    def _frame_time(self, frame: Frame) -> float:
        # Live and paced sources: the frame clock is the machine's; fast-forward: the source's own.
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
                        break
                    self._maybe_report_health()
                    continue
                self.process(frame)
                self._maybe_report_health()
        except Exception:
            log.exception("camera agent frame loop failed")
        finally:
            self.finished.set()

    def process(self, frame: Frame) -> list[Action]:
        t = self._frame_time(frame)
        result = self.pipeline.process(t, frame.image, door_open=self.actuators.door_open())
        self.health.processed(result.inference_ms)
        self.frames_processed += 1
        for action in result.actions:
            self._apply(action, frame.image)
        return result.actions

    def _apply(self, action: Action, image: np.ndarray) -> None:
        ts = self._timestamp(action.t)
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
            started = self._timestamp(action.started_t if action.started_t is not None else action.t)
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

    def _maybe_report_health(self) -> None:
        interval = float(self.config.telemetry.health_interval_s)
        now = time.monotonic()
        if now - self._last_health < interval:
            return
        elapsed, self._last_health = now - self._last_health, now
        fields = self.health.report(elapsed, queue_depth=self.uplink.queue_depth)
        fields["door_held"] = self.pipeline.analyzer.door_held
        fields["refusals_received"] = self.uplink.refusals_received  # the gateway's, logged as they came
        self.uplink.send(
            Channel.TELEMETRY,
            TelemetryMessage(
                device_id=self.config.device.id,
                ts=datetime.now(UTC),
                measurement="health",
                fields=fields,
                tags={"agent": "elevator"},
            ),
        )

    def _on_command(self, command: CommandMessage) -> tuple[bool, str] | None:
        if command.command == "release_door":
            self.actuators.release_door("remote command")
            self.pipeline.analyzer.door_held = False
            return True, "door released"
        return None
