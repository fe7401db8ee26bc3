"""The facade device config: the example passes `citywatch edge check`, calibration mistakes are refused
with a message that says what is wrong and where."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import ConfigError, FacadeAgentConfig, validate_config_dict
from tests.support.paths import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "firmware_configs/facade.example.yaml"


def example() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return raw


def floor_lines_example() -> dict[str, Any]:
    raw = example()
    raw["facade"]["calibration"] = {"method": "floor_lines", "lines": [1040, 960, 885, 815, 750]}
    raw["facade"]["columns"] = {"x_px": [600, 800, 1000, 1200]}
    return raw


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config_dict(raw, source="facade.yaml")
    return caught.value.problems


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
    assert "ok (facade tower-a/facade-0001, config version" in result.stdout


def test_the_example_reads_as_written() -> None:
    config = validate_config_dict(example())
    assert isinstance(config, FacadeAgentConfig)
    facade = config.facade
    assert facade.calibration.method == "four_points"
    assert facade.building.top_floor == 18 and facade.building.height_m == pytest.approx(54.0)
    assert facade.columns is not None and facade.columns.x_m is not None and len(facade.columns.x_m) == 7
    assert facade.rules.min_accel_fraction == 0.5


def test_floor_lines_and_a_tall_ground_floor_are_accepted() -> None:
    raw = floor_lines_example()
    raw["facade"]["building"]["ground_floor_height_m"] = 4.5
    config = validate_config_dict(raw)
    assert isinstance(config, FacadeAgentConfig)
    assert config.facade.building.base_height_m(2) == 4.5
    assert config.facade.building.base_height_m(3) == 7.5


def test_floors_not_ascending_are_refused() -> None:
    raw = floor_lines_example()
    raw["facade"]["calibration"]["lines"] = [1040, 960, 990, 815]
    [problem] = problems(raw)
    assert problem.startswith("facade.calibration.floor_lines:")
    assert "floors not ascending: line 3 (y=990) is not above line 2 (y=960)" in problem


def test_crossing_tilted_lines_are_refused() -> None:
    raw = floor_lines_example()
    raw["facade"]["calibration"]["lines"] = [[[0, 1000], [1920, 1040]], [[0, 1060], [1920, 900]]]
    [problem] = problems(raw)
    assert "floors not ascending: line 2" in problem and "must not cross" in problem


def test_points_outside_the_frame_are_refused() -> None:
    raw = example()
    raw["facade"]["calibration"]["points"][2]["pixel"] = [2100, 60]
    raw["facade"]["masks"][0]["polygon"][2] = [420, 1200]
    [problem] = problems(raw)
    assert "calibration.points[3]: pixel [2100, 60] is outside the 1920x1080 frame" in problem
    assert "masks.tree_left: corner [420, 1200] is outside the 1920x1080 frame" in problem


def test_floor_lines_outside_the_frame_are_refused() -> None:
    raw = floor_lines_example()
    raw["facade"]["calibration"]["lines"] = [1100, 960]
    [problem] = problems(raw)
    assert "calibration.lines[1]: point [0, 1100] is outside the 1920x1080 frame" in problem


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # Points 1, 2 and 3 on one image row.
        (
            {2: {"pixel": [1000, 1040]}},
            "degenerate quadrilateral: points 1, 2 and 3 are (nearly) on one line in the image",
        ),
        # Points 1, 2 and 4 on one facade line (height 0).
        (
            {3: {"facade": [10.0, 0.0]}},
            "degenerate quadrilateral: points 1, 2 and 4 are (nearly) on one line on the facade",
        ),
        # Pixels listed in another order than the facade positions.
        ({0: {"pixel": [1360, 1040]}, 1: {"pixel": [560, 1040]}}, "in a different order (or mirrored)"),
    ],
)
def test_degenerate_or_inconsistent_quadrilaterals_are_refused(
    change: dict[int, dict[str, Any]], expected: str
) -> None:
    raw = example()
    for index, fields in change.items():
        raw["facade"]["calibration"]["points"][index].update(fields)
    [problem] = problems(raw)
    assert problem.startswith("facade.calibration.four_points:")
    assert expected in problem


def test_columns_must_match_the_calibration_and_rise() -> None:
    raw = example()
    raw["facade"]["columns"] = {"x_px": [100, 200]}
    assert "columns: x_px needs the floor_lines calibration" in problems(raw)[0]
    raw = floor_lines_example()
    raw["facade"]["columns"] = {"x_m": [0, 4]}
    assert "columns: x_m needs the four_points calibration" in problems(raw)[0]
    raw["facade"]["columns"] = {"x_px": [300, 200, 400]}
    assert "column edges must increase from left to right" in problems(raw)[0]


def test_lines_beyond_the_building_are_refused() -> None:
    raw = floor_lines_example()
    raw["facade"]["building"]["floors"] = 2
    [problem] = problems(raw)
    assert (
        "5 lines from floor 1 reach floor 5, beyond the building (floors 1..2, plus one roof line)" in problem
    )


def test_edge_check_lists_every_facade_mistake(tmp_path: Path) -> None:
    raw = floor_lines_example()
    raw["facade"]["calibration"]["lines"] = [1040, 1050]
    raw["facade"]["rules"]["min_accel_fraction"] = 1.5
    raw["facade"]["detection"]["threshold"] = 3
    bad = tmp_path / "facade.yaml"
    bad.write_text(yaml.safe_dump(copy.deepcopy(raw)))
    result = run_cli("edge", "check", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "3 problem(s)" in result.stderr, result.stderr
    assert "floors not ascending" in result.stderr
    assert "facade.rules.min_accel_fraction: Input should be less than 1" in result.stderr
    assert "facade.detection.threshold: unknown field (typo?)" in result.stderr
