"""From a closed clip window to a clip and a still, off the frame loop.

:class:`EvidenceProducer` does the work (privacy, MP4, still) and is what tests call directly;
:class:`EvidenceWorker` runs it in one background thread at a lower CPU priority (nice +10 on Linux, so
on a single core the frame loop is served first) and hands each result to a sink, the agent's sender.
The frame loop only submits: it never waits for an encoder.

Faces are searched in every ``FACE_EVERY``-th frame (a Haar pass costs tens of milliseconds, a frame
copy one) and a frame blurs the boxes found in the searched frames either side of it, grown by a margin:
a face moves little in a fifth of a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from edge.evidence.buffer import ClipWindow, StoredFrame
from edge.evidence.clip import ClipTooLarge, EncodedClip, write_clip
from edge.evidence.config import EvidenceConfig
from edge.evidence.privacy import Box, FaceFinder, PrivacyFilter
from edge.evidence.still import EncodedStill, Overlay, draw_overlay, encode_still

log = logging.getLogger(__name__)

FACE_EVERY = 3
WORKER_NICE = 10
# Jobs waiting for the worker, each holding its window's frames (up to the ring's budget): past this a
# new one is dropped (logged, counted) rather than letting memory grow; its event has already gone.
MAX_QUEUED_JOBS = 8


@dataclass(frozen=True, slots=True)
class EvidenceJob:
    key: str  # the event id
    window: ClipWindow
    overlay: Overlay
    still_t: float  # frame time of the still (the middle of the fall)
    keep: tuple[float, float]  # the span a shortened clip keeps (first sighting to impact)
    wall_clock: Callable[[float], datetime]  # frame time -> wall-clock time, for taken_at
    submitted: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Evidence:
    key: str
    clip: EncodedClip | None
    clip_taken_at: datetime | None
    still: EncodedStill | None
    still_taken_at: datetime | None
    still_t: float | None
    seconds: float  # CPU-side wall time the producer took


class EvidenceProducer:
    def __init__(
        self, config: EvidenceConfig, *, frame_size: tuple[int, int], face_finder: FaceFinder | None = None
    ) -> None:
        self.config = config
        self.frame_size = frame_size  # the camera's pixels (overlay, zones and corridor are given in them)
        self.face_finder = face_finder

    def produce(self, job: EvidenceJob) -> Evidence:
        started = time.perf_counter()
        frames = job.window.frames
        privacy = PrivacyFilter(
            self.config.privacy, frame_size=self.frame_size, corridor=job.overlay.corridor
        )
        faces = self._faces(frames)
        clip = None
        if frames:
            try:
                clip = write_clip(
                    frames,
                    fps=self.config.clip_fps,
                    width=self.config.clip_width,
                    max_bytes=self.config.max_clip_bytes,
                    keep=job.keep,
                    transform=(lambda i, image: privacy.apply(image, faces.get(i, ())))
                    if privacy.active
                    else None,
                    label=job.key,
                )
            except ClipTooLarge:
                log.exception("evidence %s: the clip is not sent", job.key)
        still, still_t = None, None
        if frames:
            index = min(range(len(frames)), key=lambda i: abs(frames[i].t - job.still_t))
            image = privacy.apply(frames[index].decode(), faces.get(index, ()))
            draw_overlay(image, job.overlay, self.frame_size)
            still = encode_still(image, width=self.config.still_width, quality=self.config.jpeg_quality)
            still_t = frames[index].t
        return Evidence(
            key=job.key,
            clip=clip,
            clip_taken_at=job.wall_clock(clip.start_t) if clip is not None else None,
            still=still,
            still_taken_at=job.wall_clock(still_t) if still_t is not None else None,
            still_t=still_t,
            seconds=time.perf_counter() - started,
        )

    def _faces(self, frames: list[StoredFrame]) -> dict[int, list[Box]]:
        """Face boxes per frame index: each searched frame's and its neighbours' (see module doc)."""
        if self.face_finder is None or not frames:
            return {}
        searched = sorted({*range(0, len(frames), FACE_EVERY), len(frames) - 1})
        found = {i: self.face_finder.find(frames[i].decode()) for i in searched}
        boxes: dict[int, list[Box]] = {}
        for a, b in zip(searched, [*searched[1:], searched[-1]], strict=True):
            around = found[a] + (found[b] if b != a else [])
            for i in range(a, b + 1):
                if around:
                    boxes.setdefault(i, []).extend(around)
        return boxes


def _lower_priority() -> None:
    # Linux: a thread's own id takes setpriority, so this nices the worker alone, not the frame loop.
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + WORKER_NICE))


Sink = Callable[[Evidence, EvidenceJob], None]


class EvidenceWorker:
    """One background thread: jobs in, ``sink(evidence, job)`` out, in submission order."""

    def __init__(self, producer: EvidenceProducer, sink: Sink, *, name: str = "evidence") -> None:
        self.producer = producer
        self.sink = sink
        self._jobs: queue.Queue[EvidenceJob | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self.done = 0
        self.failed = 0
        self.dropped = 0

    def start(self) -> EvidenceWorker:
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def submit(self, job: EvidenceJob) -> bool:
        """Queue ``job``; False (logged, counted) when ``MAX_QUEUED_JOBS`` already wait."""
        if self._jobs.unfinished_tasks >= MAX_QUEUED_JOBS:
            self.dropped += 1
            log.warning(
                "evidence %s dropped: %d clips are already waiting to be written", job.key, MAX_QUEUED_JOBS
            )
            return False
        self._jobs.put(job)
        return True

    @property
    def pending(self) -> int:
        return self._jobs.unfinished_tasks

    def wait_idle(self, timeout_s: float) -> bool:
        """Until every submitted job is done (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + timeout_s
        while self._jobs.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return self._jobs.unfinished_tasks == 0

    def stop(self, timeout_s: float = 60.0) -> None:
        """Finish the jobs already submitted (up to ``timeout_s``), then end the thread."""
        if not self._started:
            return
        self._jobs.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("evidence worker still busy after %.0f s; %d jobs left", timeout_s, self.pending - 1)

    def _run(self) -> None:
        _lower_priority()
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                evidence = self.producer.produce(job)
                self.sink(evidence, job)
                self.done += 1
            except Exception:
                self.failed += 1
                log.exception("evidence %s failed", job.key if job is not None else "?")
            finally:
                self._jobs.task_done()
