"""What every camera agent shares: uplink, frame grabber, frame loop thread, frame clock, health.

A camera agent (elevator, facade, street) subclasses ``CameraAgent``, builds what can fail at start
(model, calibration) before calling ``super().__init__`` and implements ``process(frame)``. The hooks
``on_source_end`` (a file ended: flush what is still open), ``health_fields`` (its own telemetry),
``close`` (release hardware) and ``on_command`` have harmless defaults.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, Self

from citywatch.protocol import Channel, CommandMessage, EventType, TelemetryMessage
from edge.events import EventEmitter
from edge.vision.health import HealthCounters
from edge.vision.sources import Frame, FrameGrabber, FrameSource

log = logging.getLogger(__name__)


class ReconnectOptions(Protocol):
    """The part of a camera config the grabber needs (every camera section has these two)."""

    @property
    def reconnect_initial_s(self) -> float: ...
    @property
    def reconnect_max_s(self) -> float: ...


class CameraAgent:
    """Source -> ``process(frame)`` in a thread, health telemetry on an interval, uplink around it."""

    agent_name: ClassVar[str]  # thread name, health tag and log prefix: "elevator", "facade", ...
    event_type: ClassVar[EventType]

    def __init__(
        self,
        config: Any,
        *,
        source: FrameSource,
        camera: ReconnectOptions,
        paced: bool,
        uplink: Any = None,
    ) -> None:
        self.config = config
        self.health = HealthCounters()
        self.uplink = uplink if uplink is not None else self._make_uplink()
        self.events = EventEmitter(device_id=config.device.id, event_type=self.event_type)
        self._paced = paced
        self.grabber = FrameGrabber(
            source,
            health=self.health,
            paced=paced,
            reconnect_initial_s=camera.reconnect_initial_s,
            reconnect_max_s=camera.reconnect_max_s,
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

        return uplink_for(self.config, self.on_command)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> Self:
        self.uplink.start()
        self.grabber.start()
        self._thread = threading.Thread(target=self._run, name=f"{self.agent_name}-agent", daemon=True)
        self._thread.start()
        log.info("%s agent %s started", self.agent_name, self.config.device.id)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.grabber.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.close()
        self.uplink.stop()
        log.info(
            "%s agent %s stopped after %d frames",
            self.agent_name,
            self.config.device.id,
            self.frames_processed,
        )

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until the source ends (files, finite simulations) or stop; True if it ended."""
        return self.finished.wait(timeout_s)

    # -- frame clock ------------------------------------------------------------------------------
    def frame_time(self, frame: Frame) -> float:
        # Live and paced sources: the frame clock is the machine's; fast-forward: the source's own.
        t = time.monotonic() if (self._paced or self.grabber.source.live) else frame.t
        if frame.wall is not None:  # the source knows the frame's wall-clock time: anchor on it
            self._wall0, self._t0 = frame.wall, t
        elif self._t0 is None:  # anchored at the first frame, not at the first event
            self._wall0, self._t0 = datetime.now(UTC), t
        return t

    def timestamp(self, t: float) -> datetime:
        """Wall-clock time of frame time ``t``: when the first frame came plus the frame clock's progress;
        for sources that give their frames' wall-clock time (``Frame.wall``), the latest such frame's
        time plus the frame clock's progress since it."""
        if self._t0 is None:
            self._t0 = t
        return self._wall0 + timedelta(seconds=t - self._t0)

    # -- frame loop -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.grabber.get(timeout_s=0.5)
                if frame is None:
                    if self.grabber.finished.is_set():
                        self.on_source_end()
                        break
                    self._maybe_report_health()
                    continue
                self.process(frame)
                self._maybe_report_health()
        except Exception:
            log.exception("%s agent frame loop failed", self.agent_name)
        finally:
            self.finished.set()

    def process(self, frame: Frame) -> Any:
        raise NotImplementedError

    # -- hooks ------------------------------------------------------------------------------------
    def on_source_end(self) -> None:
        """A finite source ended; report what is still open."""

    def close(self) -> None:
        """Release hardware before the uplink stops."""

    def health_fields(self) -> dict[str, Any]:
        """The agent's own fields in its ``health`` telemetry."""
        return {}

    def on_command(self, command: CommandMessage) -> tuple[bool, str] | None:
        """Handle a command this agent knows (ok, detail), or None for the uplink's default answer."""
        return None

    # -- health -----------------------------------------------------------------------------------
    def _maybe_report_health(self) -> None:
        interval = float(self.config.telemetry.health_interval_s)
        now = time.monotonic()
        if now - self._last_health < interval:
            return
        elapsed, self._last_health = now - self._last_health, now
        fields = self.health.report(elapsed, queue_depth=self.uplink.queue_depth)
        fields["refusals_received"] = self.uplink.refusals_received  # the gateway's, logged as they came
        fields.update(self.health_fields())
        self.uplink.send(
            Channel.TELEMETRY,
            TelemetryMessage(
                device_id=self.config.device.id,
                ts=datetime.now(UTC),
                measurement="health",
                fields=fields,
                tags={"agent": self.agent_name},
            ),
        )
