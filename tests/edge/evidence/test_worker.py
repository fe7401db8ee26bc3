"""The background worker: jobs made in order off the caller's thread, at a lower priority, bounded."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from edge.evidence.buffer import ClipWindow, EvidenceRecorder, StoredFrame
from edge.evidence.config import EvidenceConfig
from edge.evidence.still import Overlay
from edge.evidence.worker import (
    MAX_QUEUED_JOBS,
    WORKER_NICE,
    Evidence,
    EvidenceJob,
    EvidenceProducer,
    EvidenceWorker,
)
from tests.edge.evidence.frames import FPS, HEIGHT, WIDTH, facade_frame

CONFIG = EvidenceConfig(pre_s=0.5, post_s=0.5, clip_fps=10, clip_width=320, still_width=320)
WALL0 = datetime(2030, 5, 1, tzinfo=UTC)


def window(key: str) -> ClipWindow:
    recorder = EvidenceRecorder(CONFIG)
    for index in range(round(1.0 * FPS)):
        recorder.offer(index / FPS, facade_frame(index / FPS))
    recorder.open_window(key, 0.0, 1.0)
    [closed] = recorder.flush()
    return closed


def job(key: str, frames: ClipWindow | None = None) -> EvidenceJob:
    return EvidenceJob(
        key=key,
        window=frames or window(key),
        overlay=Overlay(points=((960.0, 300.0), (960.0, 500.0)), label="test"),
        still_t=0.5,
        keep=(0.4, 0.6),
        wall_clock=lambda t: WALL0 + timedelta(seconds=t),
    )


def test_jobs_are_made_in_order_on_the_worker_thread_at_a_lower_priority() -> None:
    made: list[tuple[str, str, int]] = []

    def sink(evidence: Evidence, submitted: EvidenceJob) -> None:
        assert evidence.clip is not None and evidence.still is not None and evidence.key == submitted.key
        made.append((evidence.key, threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, 0)))

    base = os.getpriority(os.PRIO_PROCESS, 0)
    worker = EvidenceWorker(EvidenceProducer(CONFIG, frame_size=(WIDTH, HEIGHT)), sink, name="evidence-test")
    worker.start()
    for key in ("a", "b", "c"):
        assert worker.submit(job(key))
    assert worker.wait_idle(30)
    worker.stop()
    assert [key for key, _, _ in made] == ["a", "b", "c"]
    assert {name for _, name, _ in made} == {"evidence-test"}
    assert {nice for _, _, nice in made} == {min(19, base + WORKER_NICE)}  # the worker's, not the caller's
    assert os.getpriority(os.PRIO_PROCESS, 0) == base
    assert worker.done == 3 and worker.failed == 0


def test_a_failing_sink_is_counted_and_the_worker_goes_on() -> None:
    calls: list[str] = []

    def sink(evidence: Evidence, submitted: EvidenceJob) -> None:
        calls.append(evidence.key)
        if evidence.key == "bad":
            raise RuntimeError("uplink gone")

    worker = EvidenceWorker(EvidenceProducer(CONFIG, frame_size=(WIDTH, HEIGHT)), sink).start()
    shared = window("x")
    worker.submit(job("bad", shared))
    worker.submit(job("good", shared))
    worker.stop(timeout_s=30)
    assert calls == ["bad", "good"] and worker.failed == 1 and worker.done == 1


def test_a_backlog_beyond_the_bound_is_dropped_not_queued() -> None:
    worker = EvidenceWorker(EvidenceProducer(CONFIG, frame_size=(WIDTH, HEIGHT)), lambda e, j: None)
    shared = window("x")  # not started: nothing is taken off the queue
    accepted = [worker.submit(job(f"e{n}", shared)) for n in range(MAX_QUEUED_JOBS + 2)]
    assert accepted == [True] * MAX_QUEUED_JOBS + [False, False]
    assert worker.dropped == 2 and worker.pending == MAX_QUEUED_JOBS


def test_an_empty_window_gives_no_clip_and_no_still() -> None:
    empty = ClipWindow(key="none", start_t=0.0, end_t=1.0)
    evidence = EvidenceProducer(CONFIG, frame_size=(WIDTH, HEIGHT)).produce(job("none", empty))
    assert evidence.clip is None and evidence.still is None


def test_faces_found_in_some_frames_are_blurred_in_all_between() -> None:
    from edge.evidence.privacy import FaceFinder
    from tests.edge.evidence.test_privacy import frame_with_face, on_face, sharpness

    image, face = frame_with_face(100)  # 960x540
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    frames = [StoredFrame(t=i / 10, jpeg=jpeg.tobytes(), width=960, height=540) for i in range(8)]
    config = EvidenceConfig(pre_s=0.5, post_s=0.5, clip_fps=10, clip_width=960, still_width=960)
    producer = EvidenceProducer(config, frame_size=(WIDTH, HEIGHT), face_finder=FaceFinder())
    boxes = producer._faces(frames)  # searched every FACE_EVERY frames, held for the ones between
    assert all(on_face(boxes.get(i, []), face) for i in range(len(frames)))
    closed = ClipWindow(key="faces", start_t=0.0, end_t=0.7, frames=frames)
    evidence = producer.produce(job("faces", closed))
    assert evidence.still is not None
    still = cv2.imdecode(np.frombuffer(evidence.still.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert still is not None
    x1, y1, x2, y2 = face
    middle = (slice(y1 + 40, y2 - 40), slice(x1 + 40, x2 - 40))  # the face itself, inside the crop
    assert sharpness(still[middle]) < 0.2 * sharpness(image[middle])
