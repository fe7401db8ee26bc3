"""Threshold tuning replays recorded detections through the real tracker and analyzer."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.ebike.tune import (
    RecordedRide,
    load_recording,
    rank_key,
    recording_source,
    replay,
    save_recording,
    tracked,
)

FPS = 15


def _ride(seed: int, *, has_ebike: bool, label: str, score: float) -> RecordedRide:
    """Four seconds; from 1 s on, one object in the middle of the frame with ``label`` at ``score``."""
    frames = [
        (i / FPS, [(label, score, 100.0, 60.0, 180.0, 170.0)] if i >= FPS else []) for i in range(4 * FPS)
    ]
    first_full = 1.0 if has_ebike else None
    return RecordedRide(seed, "test", has_ebike, first_full, first_full, frames)


SETTINGS = {
    "provisional_score": 0.3,
    "confirm_fraction": 0.5,
    "window_s": 2.0,
    "confirm_min_s": 1.0,
    "confirm_min_frames": 3,
    "lookalike_iou": 0.5,
}


def test_replay_scores_rides_at_each_detector_threshold() -> None:
    rides = [
        _ride(1, has_ebike=True, label="ebike", score=0.6),
        _ride(2, has_ebike=False, label="ebike", score=0.32),  # a bicycle the model half takes for an e-bike
        _ride(3, has_ebike=False, label="bicycle", score=0.9),
    ]
    strict = replay(rides, tracked(rides, 0.35), {"score_threshold": 0.35, **SETTINGS})
    loose = replay(rides, tracked(rides, 0.3), {"score_threshold": 0.3, **SETTINGS})

    assert (strict["detection_rate"], strict["false_alarm_rate"]) == (1.0, 0.0)
    assert (loose["detection_rate"], loose["false_alarm_rate"]) == (1.0, 0.5)
    assert strict["hold_p95_s"] == 0.0  # held on the first frame the e-bike was fully in
    assert 1.0 <= strict["alarm_p95_s"] <= 1.1  # confirm_min_s (1 s) after the first sighting
    # false alarms within budget rank first, whatever the detection rate
    assert sorted([loose, strict], key=rank_key)[0] is strict


def test_a_recording_is_replayed_only_for_the_model_and_rides_it_was_made_from(tmp_path: Path) -> None:
    model, other_model = tmp_path / "a.onnx", tmp_path / "b.onnx"
    model.write_bytes(b"model a")
    other_model.write_bytes(b"model b")
    rides = [_ride(1, has_ebike=True, label="ebike", score=0.6)]
    recording = tmp_path / "rides.pkl"
    source = recording_source(model, rides=1, seed=97_000_000, fps=FPS)
    save_recording(recording, rides, source)

    assert load_recording(recording, source) == rides
    with pytest.raises(SystemExit, match="model_sha256"):
        load_recording(recording, recording_source(other_model, rides=1, seed=97_000_000, fps=FPS))
    with pytest.raises(SystemExit, match="rides 1 \\(now 2\\)"):
        load_recording(recording, recording_source(model, rides=2, seed=97_000_000, fps=FPS))
