"""Scenario planning: seeding, throws that fit, distractors that move like what they stand for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simulators.facade import G, iter_frames, make_scenario, truth_document
from simulators.facade.camera import CameraPose, FacadeCamera
from simulators.facade.distractors import simulate_bird, simulate_flutter

SIZE = (320, 180)
# A camera 20 m from the facade, 2 m up, looking 55 degrees up (as the scenarios place it).
VIEW = FacadeCamera(CameraPose(15.0, 2.0, 20.0, 55.0, 0.0, 0.0, 80.0, -0.05, 0.0), 1920, 1080)


def test_the_same_seed_gives_the_same_frames_and_truth() -> None:
    def run(seed: int) -> tuple[str, list[bytes]]:
        scenario = make_scenario(seed, duration_s=8, throws=1, weather="rain")
        truth = json.dumps(truth_document(scenario, SIZE, 10))
        return truth, [image.tobytes() for _, image, _ in iter_frames(scenario, fps=10, size=SIZE)]

    truth, frames = run(21)
    again_truth, again_frames = run(21)
    other_truth, other_frames = run(22)
    assert truth == again_truth and frames == again_frames
    assert truth != other_truth and frames != other_frames
    assert len(frames) == 80


@pytest.mark.parametrize("seed", range(6))
def test_throws_come_one_at_a_time_from_windows_in_view(seed: int) -> None:
    scenario = make_scenario(seed, duration_s=60, throws=3)
    truth = truth_document(scenario, SIZE, 25)
    throws = truth["throws"]
    assert len(throws) == 3
    building = truth["building"]
    for throw, following in zip(throws, [*throws[1:], None], strict=True):
        assert 2 <= throw["floor"] <= building["floors"] and 1 <= throw["column"] <= building["columns"]
        assert 0 < throw["start_s"] < throw["impact_s"] <= 60
        assert throw["impact_s"] - throw["start_s"] == pytest.approx(throw["fall_duration_s"], abs=1e-3)
        # The release point is where the floor says: between that floor's line and the next one.
        floor_height = building["floor_height_m"]
        assert (throw["floor"] - 1) * floor_height < throw["fall_height_m"] < throw["floor"] * floor_height
        u, v = throw["release_px"]
        assert 0 <= u < SIZE[0] and 0 <= v < SIZE[1]
        assert throw["track"] and throw["visible_from_s"] <= throw["track"][-1][0]
        if following is not None:
            assert following["start_s"] > throw["impact_s"]


def test_impossible_requests_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="throws need"):
        make_scenario(1, duration_s=5, throws=4)
    with pytest.raises(ValueError, match="unknown weather 'fog'"):
        make_scenario(1, weather="fog")
    with pytest.raises(ValueError, match="unknown time of day"):
        make_scenario(1, time_of_day="noon")
    with pytest.raises(ValueError, match=r"floors must be 6\.\.33"):
        make_scenario(1, floors=40)


def test_distractors_are_in_the_truth_with_their_spans() -> None:
    scenario = make_scenario(
        3, duration_s=120, throws=0, time_of_day="night", weather="wind", distractor_rate=3
    )
    truth = truth_document(scenario, SIZE, 25)
    kinds = {d["kind"] for d in truth["distractors"]}
    assert {"bird", "leaf", "insect", "camera_shake", "window_light"} <= kinds
    assert truth["throws"] == []
    for distractor in truth["distractors"]:
        assert 0 <= distractor["start_s"] <= distractor["end_s"] <= 120
    rainy = truth_document(make_scenario(3, duration_s=10, throws=0, weather="rain"), SIZE, 25)
    assert any(d["kind"] == "rain" for d in rainy["distractors"])


def _vertical_acceleration(positions: np.ndarray, step_s: float, window_s: float = 0.5) -> np.ndarray:
    """Vertical acceleration of quadratic fits over sliding windows (as a tracker would estimate it)."""
    n = int(window_s / step_s)
    times = np.arange(n) * step_s
    return np.array(
        [2 * np.polyfit(times, positions[i : i + n, 1], 2)[0] for i in range(0, len(positions) - n, n // 2)]
    )


@pytest.mark.parametrize("seed", range(8))
def test_a_bird_never_accelerates_downwards_anywhere_near_g(seed: int) -> None:
    bird = simulate_bird(np.random.default_rng(seed), 1, 0.0, VIEW)
    accelerations = _vertical_acceleration(bird.positions, bird.step_s)
    assert len(accelerations) >= 4
    assert accelerations.min() > -0.5 * G
    horizontal = np.hypot(*np.diff(bird.positions[:, [0, 2]], axis=0).T) / bird.step_s
    assert 3 < float(np.median(horizontal)) < 15
    # Flapping: the silhouette's span pulses between half-closed and spread wings.
    assert bird.span.min() < 0.6 and bird.span.max() > 0.95


@pytest.mark.parametrize("kind", ["leaf", "paper", "plastic_bag"])
def test_fluttering_things_sink_slowly_and_swing(kind: str) -> None:
    for seed in range(4):
        mover = simulate_flutter(np.random.default_rng(seed), 1, kind, 0.0, VIEW, wind_mps=1.0)
        duration = mover.end_s - mover.start_s
        sink = (mover.positions[0, 1] - mover.positions[-1, 1]) / duration
        assert -1.0 < sink < 2.0  # metres per second; a thrown object reaches 10-40
        sideways = np.diff(mover.positions[:, 0]) / mover.step_s
        assert (sideways - sideways.mean()).std() > 0.3
        assert mover.span.min() < 0.5 < mover.span.max()
        assert _vertical_acceleration(mover.positions, mover.step_s).min() > -0.5 * G


def test_the_documented_truth_example_has_the_fields_the_simulator_writes() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "evaluation.md").read_text()
    section = text[text.index("## Facade scenarios") :]
    example = json.loads(
        section[section.index("```json") + 7 : section.index("```", section.index("```json") + 7)]
    )
    written = truth_document(
        make_scenario(2, duration_s=30, throws=1, time_of_day="night", weather="wind"), SIZE, 25
    )
    assert set(example) == set(written) | {"video"}
    assert set(example["calibration"]) == set(written["calibration"])
    assert set(example["throws"][0]) == set(written["throws"][0])
    assert set(example["calibration"]["floor_lines"][1]) == set(written["calibration"]["floor_lines"][0])
    assert set(example["calibration"]["facade_points"][0]) == set(written["calibration"]["facade_points"][0])


def test_throws_can_be_asked_for_from_given_windows() -> None:
    scenario = make_scenario(12, duration_s=40, throws=3, floors=20, windows=[(15, 2), (7, 1)])
    assert {(t.floor, t.column) for t in scenario.throws} <= {(15, 2), (7, 1)}
    for throw in scenario.throws:
        # Released from that floor: above its floor line and below the next one's.
        height = float(throw.fall.positions[0, 1])
        floor_height = scenario.building.floor_height_m
        assert (throw.floor - 1) * floor_height < height < throw.floor * floor_height
    with pytest.raises(ValueError, match="cannot throw from floor 21"):
        make_scenario(12, duration_s=40, throws=1, floors=20, windows=[(21, 1)])
