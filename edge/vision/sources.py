"""Frame sources behind one interface, and a grabber thread that keeps only the newest frame.

A ``FrameSource`` is opened, read frame by frame and closed. ``read`` returns None at a normal end
(a file without loop, the simulator's last ride) and raises :class:`SourceDropped` when a live stream
breaks. :class:`FrameGrabber` runs a source in a thread for a live agent: it reconnects with
exponential backoff, paces files and the simulator in real time when asked, and hands the consumer
only the newest frame, counting every frame overwritten before the pipeline took it (dropped).
The evaluation and the benchmark read sources directly (fast-forward: no frame dropped).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import cv2
import numpy as np

from edge.registry import SourceRegistry
from edge.vision.config import (
    CameraConfig,
    FileSourceConfig,
    StreamSourceConfig,
    UsbSourceConfig,
)
from edge.vision.errors import VisionStartError
from edge.vision.health import HealthCounters

log = logging.getLogger(__name__)


class SourceError(VisionStartError):
    """A source that cannot be opened (bad path, unreachable stream)."""


class SourceDropped(SourceError):
    """A live stream stopped delivering frames."""


@dataclass(frozen=True, slots=True)
class Frame:
    t: float  # seconds on the source's clock: file position, simulated time, or monotonic for live
    image: np.ndarray
    index: int
    truth: Any = None  # the simulator's FrameTruth, for evaluation
    # The wall-clock time the frame shows (timezone-aware), when the source knows it better than the
    # agent's clock does: a simulated day fast-forwarded, a recording's own timestamps. None: unknown.
    wall: datetime | None = None


class FrameSource(Protocol):
    live: bool  # a camera or stream: reconnect on failure, never pace
    fps: float

    def open(self) -> None: ...
    def read(self) -> Frame | None: ...
    def close(self) -> None: ...


class OpenCvSource:
    """A video file, an RTSP/HTTP stream or a USB camera through OpenCV (FFmpeg / V4L2 backends)."""

    def __init__(
        self,
        target: str | int,
        *,
        live: bool,
        loop: bool = False,
        fps: float = 15.0,
        size: tuple[int, int] | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.target = target
        self.live = live
        self.loop = loop
        self.fps = fps
        self._size = size
        self._timeout_ms = int(timeout_s * 1000)
        self._capture: cv2.VideoCapture | None = None
        self._index = 0
        self._t0 = 0.0

    def open(self) -> None:
        if isinstance(self.target, int):
            capture = cv2.VideoCapture(self.target)
            if self._size is not None:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                self._timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                self._timeout_ms,
            ]
            capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open video source {self.target!r}")
        reported_fps = capture.get(cv2.CAP_PROP_FPS)
        if reported_fps and 0 < reported_fps <= 240 and not self.live:
            self.fps = float(reported_fps)
        self._capture = capture
        self._t0 = time.monotonic()

    def read(self) -> Frame | None:
        if self._capture is None:
            raise SourceError("source is not open")
        ok, image = self._capture.read()
        if not ok or image is None:
            if self.live:
                raise SourceDropped(f"stream {self.target!r} stopped delivering frames")
            if self.loop and self._index > 0:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._capture.read()
            if not ok or image is None:
                return None
        index = self._index
        self._index += 1
        t = time.monotonic() - self._t0 if self.live else index / self.fps
        return Frame(t=t, image=image, index=index)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class CameraRate(Protocol):
    """What the built-in openers need of a camera section (elevator, facade and street all have it)."""

    @property
    def fps(self) -> float: ...


def open_file(source: FileSourceConfig, camera: CameraRate) -> FrameSource:
    if not source.path.is_file():
        raise SourceError(f"video file {source.path} does not exist")
    return OpenCvSource(str(source.path), live=False, loop=source.loop, fps=camera.fps)


def open_stream(source: StreamSourceConfig, camera: CameraRate) -> FrameSource:
    return OpenCvSource(source.url, live=True, fps=camera.fps)


def open_usb(source: UsbSourceConfig, camera: CameraRate) -> FrameSource:
    size = (source.width, source.height) if source.width and source.height else None
    return OpenCvSource(source.index, live=True, fps=camera.fps, size=size)


def camera_registry(config_field: str) -> SourceRegistry[Callable[[Any, Any], FrameSource]]:
    """A camera family's registry with the built-in kinds (file, stream, usb); simulators add theirs as
    ``camera.<kind>`` entry points, which every family shares."""
    registry: SourceRegistry[Callable[[Any, Any], FrameSource]] = SourceRegistry(
        "camera", config_field=config_field
    )
    registry.register("file")(open_file)
    registry.register("stream")(open_stream)
    registry.register("usb")(open_usb)
    return registry


# Opens a frame source from its config section and the camera's (frame rate, size).
CameraFactory = Callable[[Any, CameraConfig], FrameSource]
CAMERAS = camera_registry("elevator.camera.source.kind")


def make_source(camera: CameraConfig) -> FrameSource:
    """The configured camera; the simulated one comes from the simulators (``camera.simulator``)."""
    return CAMERAS.get(camera.source.kind)(camera.source, camera)


def source_paced(camera: CameraConfig) -> bool:
    """Files and the simulator are paced to real time unless configured to fast-forward."""
    source = camera.source
    return bool(getattr(source, "realtime", False))


class FrameGrabber:
    """Reads a source in a thread; the consumer gets the newest frame, older unread ones are dropped."""

    def __init__(
        self,
        source: FrameSource,
        *,
        health: HealthCounters | None = None,
        paced: bool = False,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.health = health or HealthCounters()
        self.paced = paced
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self._on_state = on_state or (lambda state: None)
        self._latest: Frame | None = None
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()  # the source ended normally (file end, last ride)
        self.connected = False
        self._ran_since_open = False
        # A file or the simulator read faster than real time drops nothing: the reader waits.
        self.lossless = not source.live and not paced

    def start(self) -> FrameGrabber:
        self._thread = threading.Thread(target=self._run, name="frame-grabber", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.source.close()

    def get(self, timeout_s: float = 1.0) -> Frame | None:
        """The newest frame not yet taken, waiting up to ``timeout_s``; None if none came."""
        with self._condition:
            if self._latest is None:
                self._condition.wait_for(
                    lambda: self._latest is not None or self._stop.is_set() or self.finished.is_set(),
                    timeout=timeout_s,
                )
            frame, self._latest = self._latest, None
            self._condition.notify_all()
            return frame

    def _publish(self, frame: Frame) -> None:
        self.health.frame_in()
        with self._condition:
            if self.lossless:  # fast-forward: nothing is late, so wait for the consumer instead
                self._condition.wait_for(lambda: self._latest is None or self._stop.is_set())
            elif self._latest is not None:
                self.health.dropped()
            self._latest = frame
            self._condition.notify_all()

    def _run(self) -> None:
        delay = self.reconnect_initial_s
        while not self._stop.is_set():
            try:
                self.source.open()
            except SourceError as exc:
                log.warning("%s; retrying in %.1fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            self.connected = True
            self._on_state("connected")
            log.info("video source open: %s", getattr(self.source, "target", type(self.source).__name__))
            try:
                ended = self._pump()
            except SourceDropped as exc:
                log.warning("%s; reconnecting", exc)
                ended = False
                self.health.reconnected()
            except Exception:
                log.exception("video source failed; reconnecting")
                ended = False
            finally:
                self.connected = False
                self.source.close()
            if ended:
                self.finished.set()
                with self._condition:
                    self._condition.notify_all()
                return
            self._on_state("dropped")
            # It worked until now: retry soon; a source that never delivers backs off.
            if self._ran_since_open:
                delay = self.reconnect_initial_s
            self._stop.wait(delay)
            delay = min(delay * 2, self.reconnect_max_s)

    def _pump(self) -> bool:
        """Read until the source ends (True) or stop is asked (False); SourceDropped propagates."""
        self._ran_since_open = False
        started_wall = time.monotonic()
        first_t: float | None = None
        while not self._stop.is_set():
            frame = self.source.read()
            if frame is None:
                return True
            self._ran_since_open = True
            if self.paced and not self.source.live:
                if first_t is None:
                    first_t, started_wall = frame.t, time.monotonic()
                wait = (frame.t - first_t) - (time.monotonic() - started_wall)
                if wait > 0:
                    self._stop.wait(wait)
            self._publish(frame)
        return False
