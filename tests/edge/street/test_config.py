"""The street device config: the example passes `citywatch edge check`, zone mistakes are refused with a
message that says what is wrong and where."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import ConfigError, StreetAgentConfig, validate_config_dict
from edge.street.config import COCO_LABEL_MAP, StreetConfig
from tests.support.paths import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "firmware_configs/street.example.yaml"


def example() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return raw


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config_dict(raw, source="street.yaml")
    return caught.value.problems


def with_zone(**zone: Any) -> dict[str, Any]:
    raw = example()
    raw["street"]["zones"] = [
        {"name": "kerb", "polygon": [[100, 600], [1800, 600], [1800, 800], [100, 800]], **zone}
    ]
    return raw


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citywatch.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def test_the_example_passes_edge_check() -> None:
    result = run_cli("edge", "check", str(EXAMPLE.relative_to(PROJECT_ROOT)))
    assert result.returncode == 0, result.stderr
    assert "street-0001" in result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()


def test_the_example_reads_as_written() -> None:
    config = validate_config_dict(example())
    assert isinstance(config, StreetAgentConfig)
    street = config.street
    assert [z.name for z in street.zones] == ["fire_lane", "school_gate", "bus_stop"]
    school = street.zones[1]
    assert school.hours == ["07:00-09:00", "15:30-17:30"] and school.days == [
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    ]
    assert street.zones[2].exempt_classes == ["bus"]
    assert street.occlusion_tolerance_s == 30 and street.timezone == "Asia/Shanghai"


def test_defaults_are_the_street_detector_with_cocos_labels_and_the_issue_times() -> None:
    config = StreetConfig.model_validate(
        {
            "camera": {"source": {"kind": "usb"}},
            "zones": [{"name": "kerb", "polygon": [[0, 0], [10, 0], [10, 10]]}],
        }
    )
    assert config.detector.model == Path("models/street-detector.onnx")
    assert config.detector.label_map == COCO_LABEL_MAP
    assert COCO_LABEL_MAP["motorcycle"] == "motorbike" and COCO_LABEL_MAP["bicycle"] == "ebike"
    zone = config.zones[0]
    assert (zone.dwell_s, zone.grace_s, zone.hours) == (120.0, 600.0, ["00:00-24:00"])
    assert config.occlusion_tolerance_s == 30.0


def test_a_yolo_export_with_a_label_map_is_accepted() -> None:
    raw = example()
    raw["street"]["detector"] = {
        "model": "models/yolo11n.onnx",
        "layout": "yolo",
        "label_map": {"motorcycle": "motorbike", "bicycle": "ebike"},
        "keep_labels": [],
    }
    assert isinstance(validate_config_dict(raw), StreetAgentConfig)


def test_a_zone_with_two_corners_is_refused() -> None:
    raw = with_zone(polygon=[[100, 600], [1800, 600]])
    [problem] = problems(raw)
    assert problem.startswith("street.zones.0.polygon: a zone needs at least 3 corners, got 2")


def test_a_self_intersecting_zone_is_refused() -> None:
    # A bow tie: the corners are not in order around the zone.
    raw = with_zone(polygon=[[100, 600], [1800, 800], [1800, 600], [100, 800]])
    [problem] = problems(raw)
    assert problem.startswith("street.zones.0.polygon: the polygon crosses itself: edge 1")
    assert "list the corners in order around the zone" in problem


def test_a_flat_zone_is_refused() -> None:
    [problem] = problems(with_zone(polygon=[[100, 600], [500, 600], [900, 600]]))
    assert "no area" in problem


def test_corners_outside_the_frame_are_refused() -> None:
    [problem] = problems(with_zone(polygon=[[100, 600], [2100, 600], [1800, 800]]))
    assert "zones.kerb: corner [2100, 600] is outside the 1920x1080 frame" in problem


def test_two_zones_with_one_name_are_refused() -> None:
    raw = example()
    raw["street"]["zones"][1]["name"] = "fire_lane"
    [problem] = problems(raw)
    assert "the name 'fire_lane' is used twice" in problem


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        (["7-9"], "hour range '7-9' must look like '07:00-09:00'"),
        (["25:00-26:00"], "25:00 is not a time of day"),
        (["07:60-09:00"], "07:60 is not a time of day"),
        (["09:00-09:00"], "is empty (start equals end)"),
        (["07:00-09:00", "08:30-10:00"], "hour ranges '07:00-09:00' and '08:30-10:00' overlap"),
        (["22:00-06:00", "05:00-07:00"], "overlap"),
    ],
)
def test_bad_hour_ranges_are_refused(hours: list[str], message: str) -> None:
    [problem] = problems(with_zone(hours=hours))
    assert problem.startswith("street.zones.0.hours: ") and message in problem


def test_negative_grace_and_bad_days_are_refused() -> None:
    found = problems(with_zone(grace_s=-5, days=["mon", "mon"]))
    assert len(found) == 2
    assert any(p.startswith("street.zones.0.grace_s: grace_s (-5) must be >= 0") for p in found)
    assert any(p.startswith("street.zones.0.days: a day is listed twice") for p in found)
    [problem] = problems(with_zone(days=["monday"]))
    assert problem.startswith("street.zones.0.days.0: Input should be 'mon'")


def test_exempt_classes_must_be_vehicle_classes() -> None:
    [problem] = problems(with_zone(exempt_classes=["tram"]))
    assert "zones.kerb.exempt_classes: ['tram'] are not vehicle classes" in problem


def test_an_unknown_timezone_is_refused() -> None:
    raw = example()
    raw["street"]["timezone"] = "Mars/Olympus"
    [problem] = problems(raw)
    assert problem.startswith("street.timezone: unknown time zone 'Mars/Olympus'")


def test_keep_labels_that_drop_a_vehicle_class_are_refused() -> None:
    raw = example()
    raw["street"]["detector"]["keep_labels"] = ["car", "person"]
    [problem] = problems(raw)
    assert "detector.keep_labels drops the vehicle classes ['bus', 'ebike', 'motorbike', 'truck']" in problem


def test_edge_check_lists_every_street_mistake(tmp_path: Path) -> None:
    raw = example()
    raw["street"]["zones"][0]["polygon"] = [[1180, 640], [1500, 640]]
    raw["street"]["zones"][1]["hours"] = ["09:00-07:00x"]
    raw["street"]["zones"][2]["grace_s"] = -1
    raw["street"]["zones"][2]["dwel_s"] = 60
    bad = tmp_path / "street.yaml"
    bad.write_text(yaml.safe_dump(copy.deepcopy(raw), allow_unicode=True))
    result = run_cli("edge", "check", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    out = result.stdout + result.stderr
    # Each mistake named with its place (the check's layout may add file and line).
    flat = out.replace("[", ".").replace("]", "")  # zones[0].polygon or zones.0.polygon
    assert "zones.0.polygon: a zone needs at least 3 corners, got 2" in flat
    assert "zones.1.hours: hour range '09:00-07:00x' must look like '07:00-09:00'" in flat
    assert "zones.2.grace_s: grace_s (-1) must be >= 0" in flat
    assert "dwel_s" in out
