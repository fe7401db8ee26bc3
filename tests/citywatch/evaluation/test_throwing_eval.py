"""``citywatch eval throwing``: matching detections to throws, the figures, the config an installer would
write from the truth, the CLI on a tiny video, and one clear throw found from the right floor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citywatch.cli import main
from citywatch.evaluation.facade_config import analyzer_config_from_truth
from citywatch.evaluation.throwing import (
    HELD_OUT_SEED,
    TUNING_SEED,
    Detected,
    ScenarioScore,
    ThrowingJob,
    TrueThrow,
    held_out_jobs,
    match_detections,
    score_job,
    summarize,
    true_throws,
)
from edge.facade.calibration import FacadeCalibration
from simulators.facade import make_scenario, truth_document, write_scenario_video

SMALL = (640, 360)


def throw(ident: int, floor: int, start: float, impact: float, seen_until: float | None = None) -> TrueThrow:
    return TrueThrow(ident, floor, start, impact, impact if seen_until is None else seen_until)


def detected(floor: int, first: float, last: float, emitted: float) -> Detected:
    return Detected(floor=floor, first_seen_s=first, last_seen_s=last, emitted_s=emitted)


def test_detections_match_throws_by_time_overlap() -> None:
    throws = [throw(1, 12, 10.0, 13.0, seen_until=12.0), throw(2, 5, 30.0, 31.5)]
    long_fragment = detected(11, 10.2, 11.9, emitted=12.4)
    short_fragment = detected(12, 11.5, 11.8, emitted=12.3)  # the same throw again: a duplicate
    elsewhere = detected(20, 20.0, 21.0, emitted=21.4)  # no throw then: a false alarm
    result = match_detections(throws, [short_fragment, elsewhere, long_fragment])
    first, second = result.matches
    assert first.detection == long_fragment  # the larger overlap wins, whatever the order
    assert first.floor_error == -1
    assert first.delay_s == pytest.approx(0.4)  # after it left the view, not after the impact
    assert second.detection is None and second.delay_s is None
    assert result.duplicates == [short_fragment]
    assert result.false_alarms == [elsewhere]


def test_a_detection_just_after_impact_still_matches_within_the_slack() -> None:
    result = match_detections([throw(1, 3, 5.0, 6.0)], [detected(3, 6.1, 6.15, emitted=6.6)])
    assert result.matches[0].detection is not None
    late = match_detections([throw(1, 3, 5.0, 6.0)], [detected(3, 6.5, 6.9, emitted=7.3)])
    assert late.matches[0].detection is None and len(late.false_alarms) == 1


def scenario_score(
    name: str, throws: int, errors: list[int], false_alarms: int, duration_s: float
) -> ScenarioScore:
    return ScenarioScore(
        name=name,
        conditions="day/clear",
        duration_s=duration_s,
        throws=throws,
        detected=len(errors),
        floor_exact=sum(1 for e in errors if e == 0),
        floor_within_1=sum(1 for e in errors if abs(e) <= 1),
        false_alarms=false_alarms,
        duplicates=0,
        delays_s=[0.5] * len(errors),
        floor_errors=errors,
    )


def test_summary_figures_and_targets() -> None:
    scores = [
        scenario_score("a", 10, [0] * 7 + [1, -1], false_alarms=1, duration_s=1800.0),
        scenario_score("b", 10, [0] * 9 + [3], false_alarms=0, duration_s=1800.0),
    ]
    summary = summarize(scores)
    assert summary["recall"] == pytest.approx(19 / 20)
    assert summary["false_alarms_per_hour"] == pytest.approx(1.0)
    assert summary["floor_exact"] == pytest.approx(16 / 19, abs=1e-4)
    assert summary["floor_within_1"] == pytest.approx(18 / 19, abs=1e-4)
    targets = summary["targets"]
    assert targets["recall"]["met"] is True and targets["false_alarms_per_hour"]["met"] is True
    assert targets["floor_exact"]["met"] is True
    assert targets["floor_within_1"]["met"] is False  # 94.7% < 95%
    assert summary["detection_delay_s"]["p50"] == pytest.approx(0.5)


def test_held_out_and_tuning_seeds_do_not_overlap_and_include_quiet_scenes() -> None:
    held_out = held_out_jobs(24, HELD_OUT_SEED, 30.0)
    tuning = held_out_jobs(24, TUNING_SEED, 30.0)
    assert not {j.seed for j in held_out} & {j.seed for j in tuning}
    assert sum(1 for j in held_out if j.throws == 0) == 6
    assert {j.weather for j in held_out} == {"clear", "rain", "snow", "wind"}


def test_the_config_is_calibrated_from_the_truth_like_an_installer_would() -> None:
    scenario = make_scenario(7, duration_s=10.0, throws=1, floors=12, distractor_rate=0.0)
    truth = truth_document(scenario, SMALL, 25.0)
    config = analyzer_config_from_truth(truth)
    assert config.calibration.method == "four_points"
    assert config.building.floors == 12 and (config.camera.width, config.camera.height) == SMALL
    calibration = FacadeCalibration.from_config(config.model_copy(update={"parallax": None}))
    # The clicked points' pixels map back onto their facade metres; other facade points land nearby.
    for point in truth["calibration"]["facade_points"]:
        x, h = calibration.to_facade(*point["px"])
        assert (float(x[0]), float(h[0])) == pytest.approx(tuple(point["m"]), abs=0.01)
    line = next(f for f in truth["calibration"]["floor_lines"] if f["in_view"] and f["floor"] > 2)
    _, h = calibration.to_facade(*line["centre_px"])
    assert float(h[0]) == pytest.approx(line["y_m"], abs=0.5)
    # Without four points the floor lines in view are used instead.
    truth["calibration"]["facade_points"] = []
    by_lines = analyzer_config_from_truth(truth)
    assert by_lines.calibration.method == "floor_lines"
    assert by_lines.parallax is not None and by_lines.parallax.camera_x_m is None


def test_one_clear_throw_is_found_from_the_right_floor() -> None:
    job = ThrowingJob(
        name="clear",
        seed=3,
        time_of_day="day",
        weather="clear",
        throws=1,
        duration_s=6.0,
        floors=10,
        distractor_rate=0.0,
        object_kinds=("bottle", "flower_pot"),
    )
    score = score_job(job, size=SMALL)
    assert (score.throws, score.detected, score.false_alarms) == (1, 1, 0)
    assert abs(score.floor_errors[0]) <= 1
    assert 0 <= score.delays_s[0] < 2.0


def test_cli_on_a_tiny_video_prints_a_table_and_the_figures_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = make_scenario(3, duration_s=4.0, throws=0, time_of_day="night", weather="rain", floors=8)
    truth_path = write_scenario_video(scenario, tmp_path / "facade-3.avi", fps=25.0, size=(320, 180))
    assert true_throws(json.loads(truth_path.read_text())) == []
    assert main(["eval", "throwing", "--data", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in (
        "recall",
        "false_alarms_per_hour",
        "floor_exact",
        "floor_within_1",
        "detection_delay_s",
        "targets",
        "per_scenario",
        "throws",
        "throws_detected",
    ):
        assert key in summary
    assert summary["scenarios"] == 1 and summary["throws"] == 0 and summary["recall"] is None
    assert summary["per_scenario"][0]["conditions"] == "night/rain"
    assert summary["video_hours"] == pytest.approx(4.0 / 3600, abs=1e-4)
    assert any(line.startswith("facade-3.avi") for line in lines[:-1])  # the table on stdout
    assert "scoring 1 videos" in err  # progress on stderr


def test_cli_refuses_a_directory_without_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "throwing", "--data", str(tmp_path)]) == 2
    assert "no video with a <video>.json" in capsys.readouterr().err
