"""The pre/post ring: frames kept at the clip's rate, scaled and JPEG-compressed, and the clip windows.

A 1920x1080 BGR frame is 6.2 MB; ten seconds of them at 25 fps would be 1.5 GB. The recorder keeps one
frame in ``camera fps / clip_fps`` (the others cost a comparison), scales it to ``store_width`` and
JPEG-encodes it: about 50 kB at 960x540. The ring drops its oldest frames past ``ring_span_s`` seconds
or ``buffer_max_mb``, whichever comes first.

An event asks for a window ``[start_t, end_t]`` (``pre_s`` before the first sighting to ``post_s`` after
the impact): the frames already in the ring from ``start_t`` on are taken at once (references to the same
immutable JPEG bytes, not copies), later ones are added as they come, and the window is returned, closed,
by the first ``offer`` at or after ``end_t`` (or by ``flush`` when the source ends). A window holds at
most ``buffer_max_mb`` itself; at most ``MAX_OPEN_WINDOWS`` are open at once (a burst closes the oldest
early), so the evidence never holds more than ``(1 + MAX_OPEN_WINDOWS)`` budgets.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge.evidence.config import EvidenceConfig

log = logging.getLogger(__name__)

MAX_OPEN_WINDOWS = 4
# A frame up to this share of the clip's frame period early still counts as on time (sources jitter).
DECIMATION_SLACK = 0.25


@dataclass(frozen=True, slots=True)
class StoredFrame:
    t: float  # the agent's frame clock, the same as the analyzer's
    jpeg: bytes
    width: int
    height: int

    @property
    def nbytes(self) -> int:
        return len(self.jpeg)

    def decode(self) -> np.ndarray:
        image = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("a stored evidence frame is not a JPEG")
        return image


class FrameRing:
    """Stored frames, oldest first, bounded by time span and bytes."""

    def __init__(self, *, span_s: float, max_bytes: int) -> None:
        self.span_s = span_s
        self.max_bytes = max_bytes
        self._frames: deque[StoredFrame] = deque()
        self.nbytes = 0
        self.peak_bytes = 0
        self.dropped_for_bytes = 0  # frames that left before their time because the budget was full

    def __len__(self) -> int:
        return len(self._frames)

    def __iter__(self) -> Iterator[StoredFrame]:
        return iter(self._frames)

    @property
    def oldest_t(self) -> float | None:
        return self._frames[0].t if self._frames else None

    def add(self, frame: StoredFrame) -> None:
        self._frames.append(frame)
        self.nbytes += frame.nbytes
        while self._frames and (self.nbytes > self.max_bytes or frame.t - self._frames[0].t > self.span_s):
            old = self._frames.popleft()
            self.nbytes -= old.nbytes
            if frame.t - old.t <= self.span_s:
                self.dropped_for_bytes += 1
        self.peak_bytes = max(self.peak_bytes, self.nbytes)

    def since(self, t: float) -> list[StoredFrame]:
        return [frame for frame in self._frames if frame.t >= t]


@dataclass
class ClipWindow:
    """The frames of one event's clip, gathered until ``end_t``; ``context`` is the caller's (the event)."""

    key: str
    start_t: float
    end_t: float
    context: Any = None
    frames: list[StoredFrame] = field(default_factory=list)
    nbytes: int = 0
    truncated: bool = False  # its byte budget ran out: later frames were not added
    closed_early: bool = False  # closed before end_t (source ended, or too many open windows)

    def add(self, frame: StoredFrame, max_bytes: int) -> None:
        if self.nbytes + frame.nbytes > max_bytes:
            self.truncated = True
            return
        self.frames.append(frame)
        self.nbytes += frame.nbytes


class EvidenceRecorder:
    """Fed every frame by the frame loop; keeps the ring and the open windows. Not thread-safe: the
    frame loop's own object (closed windows go to the worker, which only reads them)."""

    def __init__(self, config: EvidenceConfig) -> None:
        self.config = config
        self.max_bytes = int(config.buffer_max_mb * 1e6)
        self.ring = FrameRing(span_s=config.ring_span_s, max_bytes=self.max_bytes)
        self.windows: list[ClipWindow] = []
        self._step = 1.0 / config.clip_fps
        self._next_t: float | None = None
        self.frames_stored = 0
        self.store_ms = 0.0  # scaling and encoding, summed: what the evidence costs the frame loop

    def offer(self, t: float, image: np.ndarray) -> list[ClipWindow]:
        """One camera frame at frame time ``t``; returns the windows that closed (``t`` >= their end)."""
        if self._next_t is None or t >= self._next_t - DECIMATION_SLACK * self._step:
            stored = self._store(t, image)
            self.ring.add(stored)
            for window in self.windows:
                if window.start_t <= stored.t <= window.end_t:
                    window.add(stored, self.max_bytes)
            following = (self._next_t if self._next_t is not None else t) + self._step
            self._next_t = following if following > t else t + self._step  # after a gap: start again
        closed = [window for window in self.windows if t >= window.end_t]
        self.windows = [window for window in self.windows if t < window.end_t]
        return closed

    def open_window(self, key: str, start_t: float, end_t: float, context: Any = None) -> list[ClipWindow]:
        """Start gathering ``[start_t, end_t]``; returns windows closed early to make room (rare)."""
        window = ClipWindow(key=key, start_t=start_t, end_t=end_t, context=context)
        for frame in self.ring.since(start_t):
            if frame.t <= end_t:
                window.add(frame, self.max_bytes)
        oldest = self.ring.oldest_t
        if oldest is not None and oldest > start_t + self._step:
            log.warning(
                "evidence %s: the clip starts %.1f s later than asked: the ring holds %.1f s "
                "(evidence.max_event_s or buffer_max_mb too small for this event)",
                key,
                oldest - start_t,
                self.ring.span_s,
            )
        closed = []
        while len(self.windows) >= MAX_OPEN_WINDOWS:
            early = self.windows.pop(0)
            early.closed_early = True
            log.warning(
                "evidence %s: closed early, %d clips were being gathered", early.key, MAX_OPEN_WINDOWS
            )
            closed.append(early)
        self.windows.append(window)
        return closed

    def flush(self) -> list[ClipWindow]:
        """Close every open window (the source ended): their clips end at the last frame seen."""
        closed, self.windows = self.windows, []
        for window in closed:
            window.closed_early = True
        return closed

    def _store(self, t: float, image: np.ndarray) -> StoredFrame:
        started = time.perf_counter()
        height, width = image.shape[:2]
        target = self.config.store_width
        if width > target:
            size = (target, max(2, round(height * target / width / 2) * 2))
            # INTER_AREA has a fast path for whole ratios only (1920 -> 960: 2 ms; -> 1280: 30 ms on one
            # core, measured): other ratios take bilinear (7 ms), a little aliasing on fine texture.
            whole = (width / target).is_integer() and (height / size[1]).is_integer()
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if whole else cv2.INTER_LINEAR)
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode an evidence frame as JPEG")
        self.frames_stored += 1
        self.store_ms += (time.perf_counter() - started) * 1000
        return StoredFrame(t=t, jpeg=buffer.tobytes(), width=image.shape[1], height=image.shape[0])
