"""The analyzer end to end on frames drawn in the test: a falling object is one detection with its floor
and column; things that do not fall are none."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.facade.analyzer import FacadeAnalyzer, ThrowDetection
from edge.facade.ballistic import model_height
from edge.facade.detect import Blob, MotionDetector
from edge.facade.tracker import FacadeTrack
from tests.edge.facade.scenes import (
    GROUND_Y,
    METRES_PER_PX,
    Path,
    facade_background,
    falling,
    frames,
    hidden,
    pixel_of,
    scene_config,
    sideways,
)


def run(
    analyzer: FacadeAnalyzer, path: Path | list[Path], seconds: float, **scene: object
) -> list[ThrowDetection]:
    found: list[ThrowDetection] = []
    for t, image in frames(path, seconds=seconds, **scene):  # type: ignore[arg-type]
        found += analyzer.process(t, image)
    return found + analyzer.flush()


@pytest.mark.parametrize("background", ["gaussian", "mog2"])
def test_a_falling_object_is_one_detection_with_floor_and_column(background: str) -> None:
    # Dropped from floor 8 (base 21 m) at hand height, in front of column 3 (x 320..420).
    config = scene_config(detection={"background": background})
    found = run(FacadeAnalyzer(config), falling(1.0, 22.0, u=370.0), seconds=4.0)
    assert len(found) == 1
    throw = found[0]
    assert (throw.floor, throw.column) == (8, 3)
    assert throw.floor_confidence > 0.9
    fit = throw.fit
    assert fit.release_h_m == pytest.approx(22.0, abs=0.4)
    assert fit.release_t == pytest.approx(1.0, abs=0.05)
    assert fit.quad_accel_mps2 == pytest.approx(9.81, rel=0.05)
    assert fit.impact == "ground"
    assert fit.impact_t == pytest.approx(1.0 + math.sqrt(2 * 22.0 / 9.81), abs=0.1)
    assert fit.fall_height_m == pytest.approx(22.0, abs=0.4)
    # A 6 px disk: about 0.45 m across at 0.075 m per pixel.
    assert 0.3 < throw.size_m < 0.6
    assert throw.confidence > 0.7


def test_the_same_object_moving_sideways_is_not_a_throw() -> None:
    analyzer = FacadeAnalyzer(scene_config())
    assert run(analyzer, sideways(1.0, 5.0, height_m=15.0), seconds=4.0) == []
    assert analyzer.rejection_counts["not_falling"] == 1  # it was tracked, and judged


def test_camera_shake_is_compensated() -> None:
    # The whole view jitters up to 3 px every frame (wind on the pole); the fall is still found, once.
    found = run(FacadeAnalyzer(scene_config()), falling(1.0, 25.0, u=170.0), seconds=4.0, shake_px=3.0)
    assert [(throw.floor, throw.column) for throw in found] == [(9, 1)]


def test_a_window_light_switching_is_not_a_throw() -> None:
    analyzer = FacadeAnalyzer(scene_config())
    assert run(analyzer, lambda t: None, seconds=4.0, lights=True) == []


def test_a_fall_inside_a_mask_is_ignored() -> None:
    mask = {"name": "left_tree", "polygon": [[300, 0], [440, 0], [440, 480], [300, 480]]}
    analyzer = FacadeAnalyzer(scene_config(masks=[mask]))
    assert run(analyzer, falling(1.0, 22.0, u=370.0), seconds=4.0) == []


def test_shake_estimate_follows_the_camera() -> None:
    # The detector reports the view's offset from its reference: a known shift comes back.
    import cv2
    import numpy as np

    config = scene_config()
    detector = MotionDetector(config.detection, (640, 480), [])
    wall = facade_background()
    detector.detect(wall)
    moved = cv2.warpAffine(wall, np.array([[1, 0, 4.0], [0, 1, -2.0]], np.float32), (640, 480))
    motion = detector.detect(moved)
    assert motion.shift_px == pytest.approx((4.0, -2.0), abs=0.2)
    assert not motion.shaky  # 4.5 px in one frame is compensated (shake_px 8)
    motion = detector.detect(wall)
    assert motion.shift_px == pytest.approx((0.0, 0.0), abs=0.2)
    jolted = cv2.warpAffine(wall, np.array([[1, 0, -6.0], [0, 1, 7.0]], np.float32), (640, 480))
    assert detector.detect(jolted).shaky  # 9.2 px: more than shake_px


def test_scene_geometry_matches_its_calibration() -> None:
    # The scene's own pixel scale agrees with the floor-line calibration the analyzer uses.
    analyzer = FacadeAnalyzer(scene_config())
    _, h = analyzer.calibration.to_facade(370.0, GROUND_Y - 10 / METRES_PER_PX)
    assert float(h[0]) == pytest.approx(10.0)


def test_a_track_seen_through_heavy_shake_is_not_trusted() -> None:
    # Jolts of up to 12 px every frame (a truck passing the pole): the fall is tracked but not reported.
    analyzer = FacadeAnalyzer(scene_config())
    assert run(analyzer, falling(1.0, 22.0, u=370.0), seconds=4.0, shake_px=12.0) == []
    assert analyzer.rejection_counts["camera_shake"] >= 1


def test_a_fall_lost_for_a_moment_is_still_one_throw() -> None:
    # Unseen for half a second mid-fall (longer than max_gap_s): two tracks, one throw.
    analyzer = FacadeAnalyzer(scene_config())
    found = run(analyzer, hidden(falling(1.0, 28.0, u=270.0), 2.0, 2.5), seconds=4.5)
    assert [(throw.floor, throw.column) for throw in found] == [(10, 2)]
    assert analyzer.rejection_counts["duplicate"] == 1


def test_many_objects_falling_together_are_precipitation() -> None:
    # Seven things falling side by side at once is hail or a shower off the roof edge, not a throw.
    analyzer = FacadeAnalyzer(scene_config())
    paths = [falling(1.0 + 0.03 * i, 26.0, u=60.0 + 80 * i) for i in range(7)]
    assert run(analyzer, paths, seconds=4.0) == []
    assert analyzer.rejection_counts["precipitation"] == 7
    # Each of them alone is a throw: allowing more parallel tracks reports all seven, one per column.
    analyzer = FacadeAnalyzer(scene_config(rules={"max_parallel_tracks": 10}))
    found = run(analyzer, paths, seconds=4.0)
    assert [throw.floor for throw in found] == [9] * 7
    # x = 60, 140, ..., 540 against column edges 120, 220, ..., 520 (an edge opens the next column).
    assert [throw.column for throw in sorted(found, key=lambda throw: throw.fit.release_x_m)] == [
        None,
        1,
        2,
        2,
        3,
        4,
        None,
    ]


@pytest.mark.parametrize("background", ["gaussian", "mog2"])
def test_a_fall_just_after_the_light_changed_is_found(background: str) -> None:
    # The whole view brightens at 1.0 s (sun out of a cloud); the object falls from 1.6 s.
    analyzer = FacadeAnalyzer(scene_config(detection={"background": background}))
    found = run(analyzer, falling(1.6, 22.0, u=370.0), seconds=4.5, brighten_at_s=1.0)
    assert [(throw.floor, throw.column) for throw in found] == [(8, 3)]


def swinging(u: float, height_m: float, amplitude_px: float, hz: float, phase: float) -> Path:
    """Laundry or a branch in the wind: up and down about one place, for ever."""

    def path(t: float) -> tuple[float, float] | None:
        u0, v0 = pixel_of(height_m, u)
        return u0, v0 + amplitude_px * math.sin(2 * math.pi * hz * t + phase)

    return path


def test_things_swinging_in_the_wind_are_not_precipitation() -> None:
    # Sixteen things bobbing up and down beside the fall: at any moment some go down fast, but none has
    # come down anywhere, so the fall is not one of many falling together.
    swingers = [
        swinging(40.0 + 80 * (i % 4) + (i // 4) * 15, 6.0 + 7 * (i // 4), 10.0, 0.9, 0.8 * i)
        for i in range(16)
    ]
    found = run(FacadeAnalyzer(scene_config()), [falling(1.0, 22.0, u=370.0), *swingers], seconds=4.0)
    assert [(throw.floor, throw.column) for throw in found] == [(8, 3)]


def scripted_track(track_id: int, t: np.ndarray, h: np.ndarray, u: float) -> FacadeTrack:
    """A track as the tracker would build it: a blob at (u, the height's row) in each frame."""
    calibration = FacadeAnalyzer(scene_config()).calibration
    track = FacadeTrack(track_id)
    for ti, hi in zip(t, h, strict=True):
        u_px, v_px = pixel_of(float(hi), u)
        x, h_m = calibration.to_facade(u_px, v_px)
        track.add(float(ti), Blob(u_px, v_px, 20.0, 5.0, 5.0), float(x[0]), float(h_m[0]), False)
    return track


def test_a_broken_track_whose_halves_fit_different_releases_is_one_event() -> None:
    # Dropped from 28 m at 1.0 s, lost from 2.0 to 2.5 s; the second half drifts 3 m/s off the curve (it
    # left the facade plane: parallax), so its own fit puts the release more than a floor low and later.
    # Both halves together are still one fall: one event, with the first half's (right) floor.
    t = np.arange(1.0, 4.0, 0.04)
    h = model_height(t, 1.0, 28.0, math.inf)
    first = t < 2.0
    second = (t > 2.5) & (h > 0.0)
    h_second = h[second] + 3.0 * (t[second] - t[second][0])
    analyzer = FacadeAnalyzer(scene_config())
    alone = analyzer._judge([scripted_track(2, t[second], h_second, 270.0)])
    assert len(alone) == 1 and alone[0].fit.release_h_m < 28.0 - 3.0  # a floor off on its own
    analyzer = FacadeAnalyzer(scene_config())
    found = analyzer._judge([scripted_track(1, t[first], h[first], 270.0)])
    found += analyzer._judge([scripted_track(2, t[second], h_second, 270.0)])
    assert [(throw.floor, throw.column) for throw in found] == [(10, 2)]
    assert analyzer.rejection_counts["duplicate"] == 1


def test_one_object_seen_as_two_blobs_is_one_event_from_the_better_fit() -> None:
    # A bottle's neck and body as two blobs 6 px apart, tracked separately and ending together (the
    # noisier one listed first): one event, from the better-fitted track.
    t = np.arange(1.0, 3.3, 0.04)
    h = model_height(t, 1.0, 25.0, math.inf)
    wobble = 0.45 * np.sin(np.arange(len(t)) * 2.1) + 3.5 * (t - 1.0) ** 2 / 5.0
    analyzer = FacadeAnalyzer(scene_config())
    noisy, clean = scripted_track(1, t, h + wobble, 276.0), scripted_track(2, t, h, 270.0)
    found = analyzer._judge([noisy, clean])
    assert [(throw.track_id, throw.floor) for throw in found] == [(2, 9)]
    assert analyzer.rejection_counts["duplicate"] == 1
