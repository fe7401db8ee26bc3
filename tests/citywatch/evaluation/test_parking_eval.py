"""``citywatch eval parking``: the events an agent sends read back as cases, cases matched to true stops,
every figure of the issue counted, the one zone mapping from the truth, and the street agent on a short
simulated overstay (oracle boxes) through the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from citywatch.cli import main
from citywatch.evaluation.parking import (
    HELD_OUT_SEED,
    PRESET_EVERY,
    EvalOptions,
    ParkingJob,
    ReportedCase,
    held_out_jobs,
    reported_cases,
    run_job,
    score_cases,
    summarize,
)
from citywatch.evaluation.street_config import analyzer_config_from_truth, zone_configs
from citywatch.protocol import EventType, Severity
from edge.events import EventEmitter
from simulators.street import HELD_OUT_FIRST_SEED


def stop(
    vehicle_id: int,
    box: list[float] | None,
    start: float,
    end: float | None,
    *,
    kind: str = "parked",
    zone: str | None = "kerb",
    warning: bool = True,
    violation: bool = True,
    plate: str | None = "京A12345",
) -> dict[str, Any]:
    return {
        "vehicle_id": vehicle_id,
        "class": "car",
        "kind": kind,
        "zone": zone,
        "start_s": start,
        "end_s": end,
        "warning": warning,
        "violation": violation,
        "left_in_grace": warning and not violation and end is not None,
        "in_view": box is not None,
        "box_px": box,
        "plate": plate,
    }


def case(
    box: tuple[float, float, float, float],
    started: float,
    warned: float,
    *,
    violation: float | None = None,
    dwell: float | None = None,
    plate: str | None = None,
    end: float | None = None,
) -> ReportedCase:
    return ReportedCase(
        event_id=f"e{started}",
        zone="kerb",
        vehicle_class="car",
        box=box,
        started_s=started,
        warning_s=warned,
        violation_s=violation,
        violation_dwell_s=dwell,
        plate=plate,
        end_s=end,
    )


A = [100.0, 100.0, 200.0, 160.0]
B = [400.0, 100.0, 500.0, 160.0]
C = [700.0, 300.0, 800.0, 360.0]
D = [900.0, 300.0, 1000.0, 360.0]


def test_cases_are_matched_to_stops_and_every_figure_counted() -> None:
    truth = {
        "duration_s": 3600.0,
        "time_of_day": "day",
        "weather": "clear",
        "stops": [
            stop(1, A, 10.0, 800.0),  # overstays: recalled, plate read right, dwell 1.5 s long
            stop(2, B, 20.0, None),  # overstays, hidden 20 s: split in two cases, its clock restarted
            stop(3, C, 30.0, 300.0, violation=False),  # left in the grace, but recorded anyway
            stop(4, D, 40.0, 200.0, kind="queue", zone=None, warning=False, violation=False),
            stop(5, None, 50.0, 900.0),  # out of the picture: not counted
        ],
        "occlusions": [{"vehicle_id": 2, "start_s": 200.0, "end_s": 220.0}],
    }
    cases = [
        case(tuple(A), 8.5, 128.5, violation=728.5, dwell=720.0, plate="京A12345"),  # type: ignore[arg-type]
        case((402.0, 101.0, 499.0, 161.0), 20.0, 140.0, end=200.0),
        case((401.0, 100.0, 500.0, 160.0), 221.0, 341.0, violation=941.0, dwell=720.0),  # a duplicate
        case(tuple(C), 30.0, 150.0, violation=250.0, dwell=220.0),  # type: ignore[arg-type]
        case(tuple(D), 40.0, 160.0, violation=190.0, dwell=150.0),  # type: ignore[arg-type]
        case((1500.0, 0.0, 1600.0, 50.0), 0.0, 120.0),  # nothing stood there
    ]
    score = score_cases("x", truth, cases, frames=7200, seconds=1.0)
    assert (score.violations_expected, score.violations_recalled) == (2, 2)
    # 720 - (728.5 - 10), and the restarted clock: 720 - (941 - 20).
    assert score.dwell_errors_s == [pytest.approx(1.5), pytest.approx(-201.0)]
    assert (score.warnings_expected, score.warnings_recalled) == (3, 3)
    assert score.violations_left_in_grace == 1
    assert (score.warnings_traffic, score.violations_traffic) == (1, 1)
    # The queued car, the empty place and the second case on vehicle 2.
    assert score.false_warnings == 3 and score.duplicates == 1
    assert (score.occluded_stops, score.occlusion_losses) == (1, 1)
    assert score.out_of_view == 1
    assert (score.plates_checked, score.plates_read, score.plates_exact) == (2, 1, 1)

    summary = summarize([score], plate_reader="citywatch")
    assert summary["violation_recall"] == 1.0
    assert summary["dwell_within_2s"] == 0.5
    assert summary["false_warnings_per_camera_hour"] == 3.0
    assert summary["plate_exact"] == 0.5
    assert summary["targets"]["violations_traffic"] == {"value": 1, "target": "<= 0", "met": False}
    assert summary["targets"]["violation_recall"]["met"] is True
    assert summarize([score], plate_reader="none")["plate_exact"] is None


def test_a_violation_missed_says_why() -> None:
    truth = {"duration_s": 1000.0, "stops": [stop(1, A, 10.0, None)], "occlusions": []}
    warned_only = score_cases("x", truth, [case(tuple(A), 10.0, 130.0)], frames=10, seconds=0.0)  # type: ignore[arg-type]
    assert warned_only.violations_recalled == 0
    assert [m["reason"] for m in warned_only.misses] == ["warned, no violation by the end"]
    never = score_cases("x", truth, [], frames=10, seconds=0.0)
    assert [m["reason"] for m in never.misses] == ["never warned"]
    # A case elsewhere in the picture, or before the car came, is not its case.
    elsewhere = score_cases("x", truth, [case(tuple(B), 10.0, 130.0)], frames=10, seconds=0.0)  # type: ignore[arg-type]
    early = score_cases("x", truth, [case(tuple(A), 0.0, 5.0)], frames=10, seconds=0.0)  # type: ignore[arg-type]
    assert elsewhere.false_warnings == early.false_warnings == 1


def test_the_events_an_agent_sends_read_back_as_cases() -> None:
    origin = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
    emitter = EventEmitter(device_id="street-1", event_type=EventType.ILLEGAL_PARKING)

    def at(seconds: float) -> datetime:
        return origin + timedelta(seconds=seconds)

    box = [10.0, 20.0, 110.0, 80.0]
    new = emitter.open(
        ts=at(130.0),
        severity=Severity.NOTICE,
        details={"stage": "warning", "zone": "kerb", "dwell_s": 120.0, "vehicle_class": "car", "box": box},
        confidence=0.9,
        started_at=at(10.0),
    )
    update = emitter.update(
        ts=at(730.0),
        severity=Severity.WARNING,
        details={"stage": "violation", "zone": "kerb", "dwell_s": 720.0, "box": box, "plate": "京A12345"},
        confidence=0.9,
    )
    end = emitter.end(ts=at(800.0), details={"stage": "left_after_violation", "zone": "kerb", "box": box})
    [read] = reported_cases([end, update, new], origin)
    assert read.started_s == 10.0 and read.warning_s == 130.0 and read.box == tuple(box)
    assert (read.violation_s, read.violation_dwell_s, read.plate) == (730.0, 720.0, "京A12345")
    assert (read.end_s, read.end_stage) == (800.0, "left_after_violation")


def test_the_held_out_set_is_the_simulators_and_mixes_in_preset_stories() -> None:
    assert HELD_OUT_SEED == HELD_OUT_FIRST_SEED
    jobs = held_out_jobs(8)
    assert [j.seed for j in jobs] == list(range(HELD_OUT_SEED, HELD_OUT_SEED + 8))
    presets = [j.scenario for j in jobs if j.scenario != "random"]
    assert len(presets) == 8 // PRESET_EVERY and presets[0] == "occluded"


def test_the_truths_zones_map_one_to_one_onto_the_config() -> None:
    from types import SimpleNamespace

    from simulators.street.frame_source import StreetSimulatorSource

    section = {"kind": "street_simulator", "seed": 1_000_001, "scenario": "random", "realtime": False}
    source = StreetSimulatorSource.from_config(section, SimpleNamespace(fps=10, width=960, height=540))
    truth = source.truth()
    # The painted zones the picture cuts (the fire lane runs out of its left edge) are clipped to it.
    assert all(0 <= x <= 960 and 0 <= y <= 540 for z in truth["zones"] for x, y in z["polygon"])
    config = analyzer_config_from_truth(truth, source=section)
    assert [(z.name, [list(p) for p in z.polygon], z.exempt_classes) for z in config.zones] == [
        (z["name"], z["polygon"], z["exempt_classes"]) for z in truth["zones"]
    ]
    assert {(z.dwell_s, z.grace_s) for z in config.zones} == {(120.0, 600.0)}
    assert (config.camera.width, config.camera.height, config.camera.fps) == (960, 540, 10.0)
    assert config.camera.source.kind == "street_simulator"
    # Labelled footage may give a zone its own rules; what only the truth has stays out.
    own = zone_configs(
        {
            "rules": {"dwell_s": 60, "grace_s": 300},
            "zones": [{"name": "gate", "polygon": [[0, 0], [9, 0], [9, 9]], "kind": "x", "grace_s": 30}],
        }
    )
    assert own == [{"name": "gate", "polygon": [[0, 0], [9, 0], [9, 9]], "dwell_s": 60.0, "grace_s": 30}]
    with pytest.raises(ValueError, match="video file or the source"):
        analyzer_config_from_truth(truth)
    # An override is merged into the section's defaults: another model keeps the label map that
    # turns COCO's motorcycle and bicycle into the vehicle classes motorbike and ebike.
    other = analyzer_config_from_truth(truth, source=section, overrides={"detector": {"model": "other.onnx"}})
    assert str(other.detector.model) == "other.onnx"
    assert other.detector.label_map == config.detector.label_map
    assert {"motorcycle": "motorbike", "bicycle": "ebike"}.items() <= other.detector.label_map.items()


def test_an_overstayer_through_the_agent_is_recalled_with_its_dwell() -> None:
    options = EvalOptions(
        size=(640, 360), fps=5.0, speed=2.5, dwell_s=10.0, grace_s=20.0, oracle=True, plate_reader="none"
    )
    score = run_job(ParkingJob("overstay", seed=HELD_OUT_SEED, scenario="overstay"), options)
    assert (score.violations_expected, score.violations_recalled) == (1, 1)
    assert score.false_warnings == 0 and score.violations_left_in_grace == 0
    [error] = score.dwell_errors_s
    assert abs(error) <= 2.0


@pytest.mark.slow
def test_the_overstayers_plate_is_read_from_a_closeup_and_not_from_the_fixed_view() -> None:
    def plates(closeup: bool) -> tuple[int, int, int]:
        options = EvalOptions(
            size=(1280, 720), fps=5.0, speed=2.5, dwell_s=10.0, grace_s=20.0, oracle=True, closeup=closeup
        )
        score = run_job(ParkingJob("overstay", seed=HELD_OUT_SEED, scenario="overstay"), options)
        assert (score.violations_expected, score.violations_recalled) == (1, 1)
        return score.plates_checked, score.plates_read, score.plates_exact

    assert plates(closeup=False) == (1, 0, 0)  # the plate is a few pixels high in the fixed view
    assert plates(closeup=True) == (1, 1, 1)


def test_a_failing_closeup_costs_the_plate_not_the_case(monkeypatch: pytest.MonkeyPatch) -> None:
    from simulators.street.frame_source import StreetSimulatorSource

    def broken(*args: Any, **kwargs: Any) -> None:
        raise TimeoutError("PTZ did not answer")

    monkeypatch.setattr(StreetSimulatorSource, "closeup", broken)
    options = EvalOptions(
        size=(640, 360), fps=5.0, speed=2.5, dwell_s=10.0, grace_s=20.0, oracle=True, closeup=True
    )
    score = run_job(ParkingJob("overstay", seed=HELD_OUT_SEED, scenario="overstay"), options)
    assert (score.violations_expected, score.violations_recalled, score.false_warnings) == (1, 1, 0)
    assert (score.plates_checked, score.plates_read) == (1, 0)


@pytest.mark.slow
def test_the_command_scores_held_out_stories_and_ends_in_one_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        main(
            [
                "eval",
                "parking",
                "--quick",
                "--oracle",
                "--plate-reader",
                "none",
                "--workers",
                "1",
                "--size",
                "960x540",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["scenarios"] == 2 and summary["source"] == "simulated"
    assert summary["violations_expected"] == 1 and summary["violation_recall"] == 1.0
    assert summary["violations_left_in_grace"] == 0 and summary["plate_exact"] is None
    assert set(summary["targets"]) == {
        "violation_recall",
        "dwell_within_2s",
        "violations_left_in_grace",
        "violations_traffic",
        "false_warnings_per_camera_hour",
        "occlusion_losses",
        "plate_exact",
    }
    assert "[2/2]" in out.err and "violation_recall" in out.out


def test_the_command_refuses_what_it_cannot_score(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "parking", "--plate-reader", "hyperlpr9"]) == 2
    assert "known readers" in capsys.readouterr().err
    assert main(["eval", "parking", "--data", str(tmp_path), "--oracle"]) == 2
    assert "--oracle needs simulated" in capsys.readouterr().err
    assert main(["eval", "parking", "--data", str(tmp_path)]) == 2
    assert "no video" in capsys.readouterr().err
