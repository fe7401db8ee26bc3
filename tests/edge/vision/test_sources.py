"""Frame sources: a real MJPEG stream that drops and comes back, files, newest-wins drop accounting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.vision.config import CameraConfig, FileSourceConfig
from edge.vision.health import HealthCounters
from edge.vision.sources import FrameGrabber, OpenCvSource, SourceError, make_source
from tests.edge.vision.mjpeg_server import MjpegCamera
from tests.support.polling import wait_until


@pytest.fixture
def camera() -> Iterator[MjpegCamera]:
    cam = MjpegCamera(fps=25).start()
    yield cam
    cam.stop()


def write_video(path: Path, frames: int, size: tuple[int, int] = (160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, size)
    for number in range(frames):
        writer.write(np.full((size[1], size[0], 3), number * 20, np.uint8))
    writer.release()
    return path


@pytest.mark.slow
def test_stream_that_drops_is_reconnected_when_it_comes_back(camera: MjpegCamera) -> None:
    health = HealthCounters()
    grabber = FrameGrabber(
        OpenCvSource(camera.url, live=True, timeout_s=2.0),
        health=health,
        reconnect_initial_s=0.1,
        reconnect_max_s=0.4,
    ).start()
    try:
        wait_until(lambda: grabber.get(0.2) is not None, what="the first frame")
        camera.stop()
        wait_until(lambda: health.reconnects >= 1 and not grabber.connected, what="the drop to be noticed")
        grabber.get(0.1)  # discard whatever arrived before the drop
        assert grabber.get(0.5) is None  # camera off: nothing arrives, nothing crashes
        camera.start()
        wait_until(lambda: grabber.connected, what="the reconnect")
        frame = None

        def fresh_frame() -> bool:
            nonlocal frame
            frame = grabber.get(0.2)
            return frame is not None

        wait_until(fresh_frame, what="a frame after the reconnect")
        assert frame is not None and frame.image.shape == (240, 320, 3)
    finally:
        grabber.stop()


@pytest.mark.slow
def test_slow_consumer_gets_the_newest_frame_and_the_rest_are_counted_dropped(camera: MjpegCamera) -> None:
    health = HealthCounters()
    grabber = FrameGrabber(OpenCvSource(camera.url, live=True), health=health).start()
    try:
        wait_until(lambda: health.frames_in >= 10, what="ten frames in")
        taken = 0
        last_index = -1
        for _ in range(3):
            time.sleep(0.2)  # the pipeline is busy: frames pile up
            frame = grabber.get(1.0)
            assert frame is not None and frame.index > last_index
            last_index = frame.index
            taken += 1
    finally:
        grabber.stop()
    assert health.dropped_total > 0
    # Every frame read was either taken, dropped, or is the one still waiting.
    assert health.frames_in - health.dropped_total - taken in (0, 1)


def test_file_source_reads_every_frame_fast_forward_and_loops(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=12)
    source = OpenCvSource(str(video), live=False)
    source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    assert [f.index for f in frames] == list(range(12))
    assert frames[5].t == pytest.approx(0.5)
    assert int(frames[5].image.mean()) == pytest.approx(100, abs=3)

    looping = OpenCvSource(str(video), live=False, loop=True)
    health = HealthCounters()
    grabber = FrameGrabber(looping, health=health).start()  # fast-forward: lossless
    try:
        got = [grabber.get(5.0) for _ in range(30)]
    finally:
        grabber.stop()
    assert [f.index for f in got if f is not None] == list(range(30))
    assert health.dropped_total == 0


def test_missing_video_file_is_a_clear_error(tmp_path: Path) -> None:
    camera = CameraConfig(source=FileSourceConfig(path=tmp_path / "nope.mp4"))
    with pytest.raises(SourceError, match=r"nope\.mp4 does not exist"):
        make_source(camera)


@pytest.mark.slow
def test_unreachable_stream_backs_off_without_crashing(camera: MjpegCamera) -> None:
    camera.stop()
    health = HealthCounters()
    grabber = FrameGrabber(
        OpenCvSource(camera.url, live=True, timeout_s=1.0),
        health=health,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.2,
    ).start()
    try:
        assert grabber.get(0.5) is None
        camera.start()
        wait_until(lambda: grabber.get(0.2) is not None, what="frames once the camera is up")
    finally:
        grabber.stop()
