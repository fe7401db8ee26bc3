"""What every camera agent shares: uplink, frame grabber, frame loop thread, frame clock, health.

A camera agent (elevator, facade, street) subclasses ``CameraAgent``, builds what can fail at start
(model, calibration) before calling ``super().__init__`` and implements ``process(frame)``. The hooks
``on_source_end`` (a file ended: flush what is still open), ``health_fields`` (its own telemetry),
``close`` (release hardware) and ``on_command`` have harmless defaults.

Pushed configs (edge/installer/live.py) are taken live when every changed field is one the kind's table
says may change while it runs (edge/live_fields.py): ``apply_live`` builds what can fail on the caller's
thread (``prepare_config``: a retuned detector, a new calibration), hands it to the frame loop, which
swaps it in between two frames (``swap_config``), and waits until it has. No lock is held while a frame
is processed and no frame is skipped for it; the loop, its counters and open events go on.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, Self

from citywatch.protocol import Channel, CommandMessage, EventType, TelemetryMessage
from edge.events import EventEmitter, OpenEventJournal, journal_for
from edge.live_fields import restart_fields
from edge.uplink.config_push import Rejected
from edge.vision.errors import VisionStartError
from edge.vision.health import HealthCounters
from edge.vision.sources import Frame, FrameGrabber, FrameSource

log = logging.getLogger(__name__)

LIVE_TAKE_S = 10.0  # a frame loop that takes no new config in this long (stuck inference): restart instead;
# the wait holds the MQTT network thread, so it stays well under the 30 s keepalive


class ReconnectOptions(Protocol):
    """The part of a camera config the grabber needs (every camera section has these two)."""

    @property
    def reconnect_initial_s(self) -> float: ...
    @property
    def reconnect_max_s(self) -> float: ...


@dataclass(eq=False)
class LiveChange:
    """A pushed config on its way to the frame loop: what ``prepare_config`` built, and when it is in."""

    config: Any
    changed: tuple[str, ...]
    prepared: Any
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


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
        # Open events on disk: a restart ends them (start) instead of leaving them open at the gateway.
        self.journal: OpenEventJournal | None = journal_for(config)
        self.events = self.emitter()
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
        self.live_changes = 0  # pushed configs taken without a restart
        self._live_lock = threading.Lock()  # guards the hand-over only, never held over a frame
        self._live_change: LiveChange | None = None
        self._loop_running = False

    def emitter(self) -> EventEmitter:
        """An emitter of this agent's event type that records in its journal (one per open case)."""
        return EventEmitter(device_id=self.config.device.id, event_type=self.event_type, journal=self.journal)

    def _make_uplink(self) -> Any:
        from edge.agent import uplink_for

        return uplink_for(self.config, self.on_command)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> Self:
        self.uplink.start()
        self.end_leftover_events()
        self.grabber.start()
        with self._live_lock:
            self._loop_running = True  # from here a live config goes through the frame loop
        self._thread = threading.Thread(target=self._run, name=f"{self.agent_name}-agent", daemon=True)
        self._thread.start()
        log.info("%s agent %s started", self.agent_name, self.config.device.id)
        return self

    def end_leftover_events(self) -> None:
        """Before the first frame: end, through the outbox, what a previous run of this agent left open."""
        if self.journal is None:
            return
        for message in self.journal.restart_ends(send=lambda end: self.uplink.send(Channel.EVENT, end)):
            log.warning(
                "%s agent: %s event %s was open when the agent last stopped: ended (seq %d)",
                self.agent_name,
                message.type,
                message.event_id,
                message.seq,
            )

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
                self._take_live_change()
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
            with self._live_lock:
                self._loop_running = False
                change, self._live_change = self._live_change, None
            if change is not None:  # handed over as the loop ended: taken here
                self._swap(change)
            self.finished.set()

    def process(self, frame: Frame) -> Any:
        raise NotImplementedError

    # -- live config ------------------------------------------------------------------------------
    def apply_live(self, config: Any, changed: list[str]) -> bool:
        """Take a pushed config without a restart (edge/installer/live.py); False: it needs one (a field
        outside the kind's live table, or a frame loop that did not take it in time). Raises ``Rejected``
        when the new settings do not fit what runs (the running config stays)."""
        if restart_fields(config.kind, changed):
            return False
        try:
            prepared = self.prepare_config(config, changed)
        except Exception as exc:  # it does not fit what runs (a label the model lacks...): keep the old
            if not isinstance(exc, VisionStartError | ValueError):
                log.exception("%s agent: preparing config %s failed", self.agent_name, config.version)
            raise Rejected("invalid", f"cannot apply it live: {exc}") from None
        change = LiveChange(config, tuple(changed), prepared)
        with self._live_lock:
            here = not self._loop_running
            if not here:
                self._live_change = change
        if here:  # no frame loop (not started, or its source ended): nothing runs concurrently
            self._swap(change)
        elif not change.done.wait(LIVE_TAKE_S):
            with self._live_lock:
                withdrawn = self._live_change is change
                if withdrawn:
                    self._live_change = None
            if withdrawn:
                log.warning(
                    "%s frame loop took no config in %.0f s: restarting", self.agent_name, LIVE_TAKE_S
                )
                return False
            change.done.wait()  # taken meanwhile: a swap is quick
        if change.error is not None:
            raise Rejected("invalid", f"cannot apply it live: {change.error}")
        return True

    def _take_live_change(self) -> None:
        """On the frame loop, between two frames."""
        if self._live_change is None:  # read without the lock: the next turn sees it
            return
        with self._live_lock:
            change, self._live_change = self._live_change, None
        if change is not None:
            self._swap(change)

    def _swap(self, change: LiveChange) -> None:
        try:
            self.swap_config(change.config, change.changed, change.prepared)
            self.config = change.config
            self.live_changes += 1
            log.info(
                "%s agent %s: config %s applied live after frame %d",
                self.agent_name,
                self.config.device.id,
                self.config.version,
                self.frames_processed,
            )
        except Exception as exc:  # a bug here must not kill the frame loop nor leave the ack waiting
            log.exception("%s agent: the live config failed", self.agent_name)
            change.error = exc
        finally:
            change.done.set()

    def prepare_config(self, config: Any, changed: tuple[str, ...] | list[str]) -> Any:
        """Build what the new config needs and can fail (off the frame loop); raise VisionStartError or
        ValueError saying why it does not fit. Only fields of the kind's live table have changed."""
        return None

    def swap_config(self, config: Any, changed: tuple[str, ...], prepared: Any) -> None:
        """Put the new settings in place (on the frame loop, between two frames); ``self.config`` is
        still the old config here and becomes the new one after."""

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
