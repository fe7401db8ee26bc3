"""MP4 clips: they decode with OpenCV, hold the frames they say, and respect the byte limit."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.evidence.buffer import EvidenceRecorder, StoredFrame
from edge.evidence.clip import CODECS, MIN_WIDTH, ClipTooLarge, clip_codec, write_clip
from edge.evidence.config import EvidenceConfig
from tests.edge.evidence.frames import FPS, facade_frame, stamp_matches


def stored_frames(seconds: float, *, clip_fps: float = 12.5, width: int = 960) -> list[StoredFrame]:
    recorder = EvidenceRecorder(
        EvidenceConfig(
            clip_fps=clip_fps, clip_width=width, still_width=width, pre_s=0, max_event_s=seconds + 1
        )
    )
    for index in range(round(seconds * FPS)):
        recorder.offer(index / FPS, facade_frame(index / FPS))
    return list(recorder.ring)


def decode(data: bytes, tmp_path: Path) -> tuple[list[np.ndarray], float]:
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


def test_the_codec_is_h264_where_the_build_has_it_else_mp4v() -> None:
    codec = clip_codec()
    assert codec in CODECS
    assert clip_codec() is codec  # probed once


def test_a_clip_decodes_with_the_frames_size_and_rate_it_reports(tmp_path: Path) -> None:
    frames = stored_frames(4.0)
    clip = write_clip(frames, fps=12.5, width=640, max_bytes=3_000_000)
    assert clip.data[4:8] == b"ftyp"  # an MP4 (ISO base media) file
    decoded, fps = decode(clip.data, tmp_path)
    assert len(decoded) == len(frames) == len(clip.frame_times) == 50
    assert decoded[0].shape == (clip.height, clip.width, 3) == (360, 640, 3)
    assert fps == pytest.approx(12.5)
    assert clip.frame_times == tuple(frame.t for frame in frames)
    assert clip.notes == ()
    # Frame by frame, the clip shows the camera frame of the time it reports.
    assert all(
        stamp_matches(image, t, tolerance=4) for image, t in zip(decoded, clip.frame_times, strict=True)
    )


def test_a_clip_over_the_byte_limit_is_written_smaller_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frames = stored_frames(4.0)
    full = write_clip(frames, fps=12.5, width=960, max_bytes=50_000_000)
    limit = len(full.data) // 2
    with caplog.at_level(logging.WARNING):
        clip = write_clip(frames, fps=12.5, width=960, max_bytes=limit, label="ev-1")
    assert len(clip.data) <= limit
    assert clip.width < 960 and len(clip.frame_times) == len(frames)  # smaller first, all frames kept
    assert clip.notes and "scaled down" in clip.notes[0]
    assert "ev-1" in caplog.text and "scaled down" in caplog.text
    decoded, _ = decode(clip.data, tmp_path)
    assert len(decoded) == len(frames) and decoded[0].shape[1] == clip.width


def test_when_smaller_is_not_enough_the_clip_is_shortened_around_the_fall(tmp_path: Path) -> None:
    noisy = np.random.default_rng(5).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    frames = []
    for index in range(60):  # 6 s of noise at 10 fps: hard to compress
        ok, jpeg = cv2.imencode(".jpg", np.roll(noisy, index * 7, axis=1))
        assert ok
        frames.append(StoredFrame(t=index / 10, jpeg=jpeg.tobytes(), width=640, height=360))
    keep = (2.5, 3.5)
    at_min = write_clip(frames, fps=10, width=MIN_WIDTH, max_bytes=50_000_000)
    limit = int(len(at_min.data) * 0.45)
    clip = write_clip(frames, fps=10, width=640, max_bytes=limit, keep=keep)
    assert len(clip.data) <= limit
    assert clip.width == MIN_WIDTH
    assert any("shortened" in note for note in clip.notes)
    assert clip.start_t <= keep[0] and clip.end_t >= keep[1]  # the fall is still in the clip
    assert clip.end_t - clip.start_t < 5.9
    decoded, _ = decode(clip.data, tmp_path)
    assert len(decoded) == len(clip.frame_times)


def test_a_limit_no_clip_can_meet_is_an_error_not_a_larger_clip() -> None:
    with pytest.raises(ClipTooLarge):
        write_clip(stored_frames(2.0), fps=12.5, width=640, max_bytes=500)


def test_the_privacy_transform_sees_every_frame_at_the_clip_size() -> None:
    frames = stored_frames(1.0)
    seen: list[tuple[int, tuple[int, ...]]] = []

    def transform(index: int, image: np.ndarray) -> np.ndarray:
        seen.append((index, image.shape))
        return image

    write_clip(frames, fps=12.5, width=480, max_bytes=3_000_000, transform=transform)
    assert [index for index, _ in seen] == list(range(len(frames)))
    assert {shape for _, shape in seen} == {(270, 480, 3)}
