"""The pre/post ring: what it keeps, for how long, within what bytes, and the clip windows' bounds."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest

from edge.evidence.buffer import MAX_OPEN_WINDOWS, EvidenceRecorder, FrameRing, StoredFrame
from edge.evidence.config import EvidenceConfig
from tests.edge.evidence.frames import FPS, facade_frame, stamp_matches


def feed(recorder: EvidenceRecorder, start_s: float, end_s: float, **frame: object) -> list:
    closed = []
    for index in range(round(start_s * FPS), round(end_s * FPS)):
        t = index / FPS
        closed += recorder.offer(t, facade_frame(t, **frame))  # type: ignore[arg-type]
    return closed


def test_a_window_runs_from_pre_s_before_the_first_sighting_to_post_s_after_the_impact() -> None:
    config = EvidenceConfig(pre_s=3.0, post_s=3.0, clip_fps=12.5, clip_width=640, still_width=640)
    recorder = EvidenceRecorder(config)
    first_seen, impact = 6.0, 7.8
    assert feed(recorder, 0.0, 8.2) == []  # the throw is reported 0.4 s after the impact
    recorder.open_window("event-1", first_seen - config.pre_s, impact + config.post_s)
    closed = feed(recorder, 8.2, 10.8)
    assert closed == []  # the post window has not passed yet
    closed = feed(recorder, 10.8, 11.0)
    [window] = closed
    times = [frame.t for frame in window.frames]
    period = 1.0 / config.clip_fps
    assert times[0] == pytest.approx(first_seen - config.pre_s, abs=period)
    assert times[-1] == pytest.approx(impact + config.post_s, abs=period)
    assert times[-1] <= impact + config.post_s
    assert all(b - a == pytest.approx(period, abs=0.041) for a, b in itertools.pairwise(times))
    assert len(times) == pytest.approx((config.pre_s + impact - first_seen + config.post_s) * 12.5, abs=1)
    assert not window.closed_early and not window.truncated
    # Each kept frame is the camera frame of that time, scaled to the store width.
    for frame in window.frames[::10]:
        image = frame.decode()
        assert image.shape == (360, 640, 3)
        assert stamp_matches(image, frame.t)


def test_only_the_clip_rate_is_encoded_and_the_ring_forgets_past_its_span() -> None:
    config = EvidenceConfig(pre_s=1.0, max_event_s=2.0, clip_fps=5, clip_width=320, still_width=320)
    recorder = EvidenceRecorder(config)
    feed(recorder, 0.0, 10.0)
    assert recorder.frames_stored == pytest.approx(10.0 * 5, abs=1)  # 50 of the 250 camera frames
    times = [frame.t for frame in recorder.ring]
    assert times[-1] - times[0] <= config.ring_span_s
    assert times[0] >= 10.0 - config.ring_span_s - 0.2


def test_the_ring_never_holds_more_than_its_byte_budget() -> None:
    config = EvidenceConfig(
        pre_s=1.0, max_event_s=2.0, clip_fps=12.5, clip_width=640, still_width=640, buffer_max_mb=2.0
    )
    recorder = EvidenceRecorder(config)
    # Noise compresses badly (~250 kB a frame at 640x360): a scene far busier than the budget assumed.
    noisy = np.random.default_rng(3).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    worst = 0
    for index in range(60):
        recorder.offer(index / FPS, noisy)
        worst = max(worst, recorder.ring.nbytes)
        assert sum(frame.nbytes for frame in recorder.ring) == recorder.ring.nbytes
    assert worst <= 2_000_000 and recorder.ring.peak_bytes <= 2_000_000
    assert recorder.ring.dropped_for_bytes > 0  # the budget, not the span, decided
    assert len(recorder.ring) >= 1


def test_a_frame_larger_than_the_budget_is_not_kept() -> None:
    ring = FrameRing(span_s=10.0, max_bytes=100)
    ring.add(StoredFrame(t=0.0, jpeg=b"x" * 60, width=2, height=2))
    ring.add(StoredFrame(t=0.1, jpeg=b"y" * 500, width=2, height=2))
    assert ring.nbytes <= 100 and len(ring) == 0


def test_a_clip_reaching_back_past_the_ring_starts_at_its_oldest_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = EvidenceConfig(pre_s=1.0, max_event_s=2.0, clip_fps=5, clip_width=320, still_width=320)
    recorder = EvidenceRecorder(config)
    feed(recorder, 0.0, 10.0)
    with caplog.at_level(logging.WARNING):
        recorder.open_window("late", 2.0, 10.5)
    [window] = feed(recorder, 10.0, 10.6)
    assert window.frames[0].t == pytest.approx(10.0 - config.ring_span_s, abs=0.25)
    assert "starts" in caplog.text and "later than asked" in caplog.text


def test_the_source_ending_closes_open_windows_with_what_they_have() -> None:
    config = EvidenceConfig(pre_s=1.0, post_s=3.0, clip_fps=10, clip_width=320, still_width=320)
    recorder = EvidenceRecorder(config)
    feed(recorder, 0.0, 3.0)
    recorder.open_window("end", 1.0, 6.0)
    feed(recorder, 3.0, 4.0)
    [window] = recorder.flush()
    assert window.closed_early
    assert window.frames[0].t == pytest.approx(1.0, abs=0.1)
    assert window.frames[-1].t == pytest.approx(3.96, abs=0.1)
    assert recorder.windows == []


def test_a_burst_of_events_closes_the_oldest_window_early() -> None:
    config = EvidenceConfig(pre_s=1.0, post_s=3.0, clip_fps=5, clip_width=320, still_width=320)
    recorder = EvidenceRecorder(config)
    feed(recorder, 0.0, 2.0)
    early = []
    for n in range(MAX_OPEN_WINDOWS + 1):
        early += recorder.open_window(f"e{n}", 1.0, 9.0)
    assert [w.key for w in early] == ["e0"] and early[0].closed_early
    assert len(recorder.windows) == MAX_OPEN_WINDOWS
