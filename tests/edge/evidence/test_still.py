"""The still and the producer, on a real detection: the facade analyzer on a scripted fall.

The scene (tests/edge/facade/scenes.py): 10 floors of 40 px, an object dropped from 22 m (floor 8,
column 3) at u=370 one second in; the analyzer reports it, the recorder has kept the frames around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.evidence.buffer import ClipWindow, EvidenceRecorder
from edge.evidence.config import EvidenceConfig, PrivacyConfig, PrivacyZoneConfig
from edge.evidence.still import CURVE_COLOUR, ORIGIN_COLOUR, TRACK_COLOUR, draw_overlay
from edge.evidence.throw import still_time, throw_overlay
from edge.evidence.worker import EvidenceJob, EvidenceProducer
from edge.facade.analyzer import FacadeAnalyzer, ThrowDetection
from edge.facade.config import FacadeConfig
from tests.edge.facade.scenes import HEIGHT, WIDTH, falling, frames, scene_config

WALL0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Thrown:
    config: FacadeConfig
    analyzer: FacadeAnalyzer
    detection: ThrowDetection
    window: ClipWindow


def run_throw(evidence: EvidenceConfig) -> Thrown:
    config = scene_config(evidence=evidence.model_dump(mode="json"))
    analyzer = FacadeAnalyzer(config)
    recorder = EvidenceRecorder(config.evidence)
    found: list[ThrowDetection] = []
    closed: list[ClipWindow] = []
    for t, image in frames(falling(1.0, 22.0, u=370.0), seconds=6.0):
        closed += recorder.offer(t, image)
        for detection in analyzer.process(t, image):
            found.append(detection)
            recorder.open_window(
                "ev", detection.first_seen_t - evidence.pre_s, detection.fit.impact_t + evidence.post_s
            )
    closed += recorder.flush()
    [detection] = found
    [window] = closed
    return Thrown(config, analyzer, detection, window)


@pytest.fixture(scope="module")
def thrown() -> Thrown:
    return run_throw(EvidenceConfig(pre_s=0.5, post_s=1.0, clip_fps=12.5, clip_width=640, still_width=640))


def colour_near(
    image: np.ndarray, point: tuple[float, float], colour: tuple[int, int, int], tol: int = 60
) -> bool:
    u, v = round(point[0]), round(point[1])
    patch = image[max(0, v - 2) : v + 3, max(0, u - 2) : u + 3].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(colour)).max(axis=1) < tol).any())


def test_the_overlay_holds_the_track_the_fitted_curve_and_the_origin_window(thrown: Thrown) -> None:
    overlay = throw_overlay(thrown.detection, thrown.config, thrown.analyzer.calibration)
    assert len(overlay.points) == len(thrown.detection.pixels)
    # The curve starts at the release (22 m: row 460 - 22 / 0.075) and ends at the ground (row 460).
    assert overlay.curve[0][1] == pytest.approx(460 - 22 / 0.075, abs=6)
    assert overlay.curve[-1][1] == pytest.approx(460, abs=6)
    assert all(u == pytest.approx(370, abs=8) for u, _ in overlay.curve)
    # Floor 8 (base row 180, top row 140), column 3 (x 320..420): the window where it came from.
    us = sorted(u for u, _ in overlay.origin)
    vs = sorted(v for _, v in overlay.origin)
    assert us[0] == pytest.approx(320, abs=3) and us[-1] == pytest.approx(420, abs=3)
    assert vs[0] == pytest.approx(140, abs=3) and vs[-1] == pytest.approx(180, abs=3)
    assert "floor 8, column 3" in overlay.label


def test_the_still_is_drawn_from_the_middle_of_the_fall(thrown: Thrown, tmp_path: Path) -> None:
    evidence = thrown.config.evidence
    overlay = throw_overlay(thrown.detection, thrown.config, thrown.analyzer.calibration)
    producer = EvidenceProducer(evidence, frame_size=(WIDTH, HEIGHT))
    job = EvidenceJob(
        key="ev",
        window=thrown.window,
        overlay=overlay,
        still_t=still_time(thrown.detection),
        keep=(thrown.detection.first_seen_t, thrown.detection.fit.impact_t),
        wall_clock=lambda t: WALL0 + timedelta(seconds=t),
    )
    result = producer.produce(job)
    assert result.still is not None and result.clip is not None
    still = cv2.imdecode(np.frombuffer(result.still.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert still is not None and result.still_t is not None
    assert still.shape == (result.still.height, result.still.width, 3) == (480, 640, 3)
    assert result.still_t == pytest.approx(still_time(thrown.detection), abs=0.05)
    assert result.still_taken_at == WALL0 + timedelta(seconds=result.still_t)
    # The drawing is there: the curve (yellow), the track (red dots) and the origin outline (magenta).
    mid_curve = overlay.curve[len(overlay.curve) // 2]
    assert colour_near(still, mid_curve, CURVE_COLOUR) or colour_near(still, mid_curve, TRACK_COLOUR)
    assert sum(colour_near(still, p, TRACK_COLOUR) for p in overlay.points) >= 0.8 * len(overlay.points)
    assert colour_near(still, (320, 160), ORIGIN_COLOUR) and colour_near(still, (420, 160), ORIGIN_COLOUR)
    # The clip runs from pre_s before the first sighting to the end of the frames (post_s after impact).
    clip = result.clip
    assert clip.start_t == pytest.approx(thrown.detection.first_seen_t - evidence.pre_s, abs=0.09)
    assert clip.end_t == pytest.approx(thrown.detection.fit.impact_t + evidence.post_s, abs=0.09)
    assert result.clip_taken_at == WALL0 + timedelta(seconds=clip.start_t)
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip.data)
    capture = cv2.VideoCapture(str(path))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(clip.frame_times)
    capture.release()


def test_a_privacy_zone_over_the_fall_is_blurred_around_a_sharp_corridor() -> None:
    zone = PrivacyZoneConfig(name="balconies", polygon=[(250, 100), (500, 100), (500, 300), (250, 300)])
    evidence = EvidenceConfig(
        pre_s=0.5,
        post_s=1.0,
        clip_fps=12.5,
        clip_width=640,
        still_width=640,
        privacy=PrivacyConfig(zones=[zone], track_corridor_px=25),
    )
    thrown = run_throw(evidence)
    overlay = throw_overlay(thrown.detection, thrown.config, thrown.analyzer.calibration)
    job = EvidenceJob(
        key="ev",
        window=thrown.window,
        overlay=overlay,
        still_t=still_time(thrown.detection),
        keep=(thrown.detection.first_seen_t, thrown.detection.fit.impact_t),
        wall_clock=lambda t: WALL0 + timedelta(seconds=t),
    )
    result = EvidenceProducer(evidence, frame_size=(WIDTH, HEIGHT)).produce(job)
    assert result.still is not None
    still = cv2.imdecode(np.frombuffer(result.still.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert still is not None and result.still_t is not None
    frame = min(thrown.window.frames, key=lambda f: abs(f.t - still_time(thrown.detection))).decode()
    plain = draw_overlay(frame.copy(), overlay, (WIDTH, HEIGHT))
    grey = cv2.cvtColor(still, cv2.COLOR_BGR2GRAY).astype(float)
    plain_grey = cv2.cvtColor(plain, cv2.COLOR_BGR2GRAY).astype(float)
    zone_far = (slice(200, 290), slice(260, 320))  # in the zone, 50+ px from the fall at u=370
    corridor = (slice(200, 290), slice(385, 392))  # in the zone, within 25 px of it, clear of the drawing
    assert np.abs(grey[zone_far] - plain_grey[zone_far]).mean() > 8  # blurred: no longer the wall
    assert np.abs(grey[corridor] - plain_grey[corridor]).mean() < 4  # sharp: as the camera saw it
