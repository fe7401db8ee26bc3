"""MP4 clips with OpenCV, bounded in bytes.

Codec: H.264 (``avc1``) where the OpenCV build can encode it, else MPEG-4 Part 2 (``mp4v``), probed once
per process (:func:`clip_codec`). The pip wheels' FFmpeg has no software H.264 encoder (x264 is GPL):
``avc1`` there can only work through a hardware encoder (FFmpeg tries ``h264_v4l2m2m``, a Raspberry Pi
4's; not tried here); elsewhere the clip is ``mp4v``, which VLC and FFmpeg play but most browsers do not.

OpenCV's VideoWriter writes files only, so a clip goes through a temporary file (deleted at once)
and comes back as bytes. Over ``max_bytes`` it is written again: first smaller (down to
``MIN_WIDTH``), then shorter (frames outside the span to keep, the fall, go first, evenly from both
ends), then at a lower frame rate; each step is logged.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.evidence.buffer import StoredFrame

log = logging.getLogger(__name__)

CODECS = ("avc1", "mp4v")
MIN_WIDTH = 320
MAX_ATTEMPTS = 8

# A frame transform for privacy: (index in the clip's frame list, decoded frame) -> frame.
FrameTransform = Callable[[int, np.ndarray], np.ndarray]

_codec: str | None = None
_codec_lock = threading.Lock()


class ClipTooLarge(RuntimeError):
    """No smaller, shorter or sparser version of the clip fitted the byte limit."""


@dataclass(frozen=True, slots=True)
class EncodedClip:
    data: bytes
    codec: str  # fourcc: "avc1" or "mp4v"
    width: int
    height: int
    fps: float
    frame_times: tuple[float, ...]  # the agent's frame clock of every frame in the clip
    notes: tuple[str, ...] = ()  # what was done to fit max_bytes

    @property
    def start_t(self) -> float:
        return self.frame_times[0]

    @property
    def end_t(self) -> float:
        return self.frame_times[-1]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """FFmpeg prints its failed encoder probes straight to fd 2; keep them out of the device's log."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        cv2.utils.logging.setLogLevel(previous)


def _can_encode(fourcc: str, directory: str) -> bool:
    path = Path(directory) / f"probe-{fourcc}.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 10.0, (64, 64))
    try:
        if not writer.isOpened():
            return False
        for shade in (0, 128):
            writer.write(np.full((64, 64, 3), shade, np.uint8))
    finally:
        writer.release()
    return path.is_file() and path.stat().st_size > 0


def clip_codec() -> str:
    """The first of ``CODECS`` this OpenCV can write into MP4 (probed once, at most a few ms)."""
    global _codec
    with _codec_lock:
        if _codec is None:
            with tempfile.TemporaryDirectory(prefix="citywatch-codec-") as directory, _quiet_stderr():
                found = next((fourcc for fourcc in CODECS if _can_encode(fourcc, directory)), None)
            if found is None:
                raise RuntimeError(f"this OpenCV can write none of {', '.join(CODECS)} into MP4")
            _codec = found
            if found != CODECS[0]:
                log.info("evidence clips: no H.264 (avc1) encoder in this OpenCV build; writing %s", found)
        return _codec


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _encode(
    frames: Sequence[tuple[int, StoredFrame]],
    *,
    fps: float,
    size: tuple[int, int],
    codec: str,
    transform: FrameTransform | None,
    directory: str,
) -> bytes:
    path = Path(directory) / "clip.mp4"
    path.unlink(missing_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open an {codec} MP4 writer for a {size[0]}x{size[1]} clip")
    try:
        for index, frame in frames:  # one decoded frame at a time: memory stays at one frame
            image = frame.decode()
            if (image.shape[1], image.shape[0]) != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            if transform is not None:
                image = transform(index, image)
            writer.write(image)
    finally:
        writer.release()
    return path.read_bytes()


def _shorten(
    frames: list[tuple[int, StoredFrame]], keep: tuple[float, float], fraction: float
) -> list[tuple[int, StoredFrame]]:
    """Drop frames outside ``keep`` evenly from both ends until ``fraction`` of them remain (or none)."""
    inside = [f for f in frames if keep[0] <= f[1].t <= keep[1]]
    before = [f for f in frames if f[1].t < keep[0]]
    after = [f for f in frames if f[1].t > keep[1]]
    target = max(len(inside), math.floor(len(frames) * fraction))
    spare = target - len(inside)
    if spare <= 0:
        return inside
    share_before = min(len(before), spare // 2 + spare % 2)
    share_after = min(len(after), spare - share_before)
    share_before = min(len(before), spare - share_after)
    return before[len(before) - share_before :] + inside + after[:share_after]


def write_clip(
    frames: Sequence[StoredFrame],
    *,
    fps: float,
    width: int,
    max_bytes: int,
    keep: tuple[float, float] | None = None,
    transform: FrameTransform | None = None,
    label: str = "clip",
) -> EncodedClip:
    """``frames`` (oldest first) as an MP4 of at most ``max_bytes``; ``keep`` is the span never cut.

    ``transform`` (privacy) gets each frame at the clip's size with its index in ``frames``."""
    if not frames:
        raise ValueError("a clip needs at least one frame")
    codec = clip_codec()
    source_w, source_h = frames[0].width, frames[0].height
    clip_w = _even(min(width, source_w))
    current = list(enumerate(frames))
    keep_span = keep if keep is not None else (frames[0].t, frames[-1].t)
    clip_fps = fps
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="citywatch-clip-") as directory:
        for _attempt in range(MAX_ATTEMPTS):
            size = (clip_w, _even(source_h * clip_w / source_w))
            data = _encode(
                current, fps=clip_fps, size=size, codec=codec, transform=transform, directory=directory
            )
            if len(data) <= max_bytes:
                for note in notes:
                    log.warning("evidence %s: %s to fit %d bytes", label, note, max_bytes)
                return EncodedClip(
                    data=data,
                    codec=codec,
                    width=size[0],
                    height=size[1],
                    fps=clip_fps,
                    frame_times=tuple(frame.t for _, frame in current),
                    notes=tuple(notes),
                )
            ratio = max_bytes / len(data) * 0.9  # bytes grow about with pixels times frames
            if clip_w > MIN_WIDTH:
                clip_w = max(MIN_WIDTH, _even(clip_w * math.sqrt(ratio)))
                notes.append(f"scaled down to {clip_w} pixels wide ({len(data)} bytes at the previous size)")
                continue
            shorter = _shorten(current, keep_span, ratio)
            if len(shorter) < len(current):
                notes.append(
                    f"shortened to {shorter[-1][1].t - shorter[0][1].t:.1f} s ({len(shorter)} of {len(current)} frames)"
                )
                current = shorter
                continue
            if len(current) > 2:
                current = current[::2]
                clip_fps = clip_fps / 2
                notes.append(f"frame rate halved to {clip_fps:g} fps")
                continue
            break
    raise ClipTooLarge(
        f"evidence {label}: no version of the clip fits {max_bytes} bytes ({'; '.join(notes)})"
    )
