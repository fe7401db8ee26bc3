"""``citywatch sim street`` writes readable videos or frame directories with truth; the edge opens the
simulated street camera by name."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace

import cv2
import pytest
from pydantic import ValidationError

from citywatch.cli import main
from edge.registry import SourceRegistry
from edge.vision.sources import Frame
from simulators.street import FrameTruth, read_street_truth
from simulators.street.frame_source import StreetSimulatorSource, StreetSimulatorSourceConfig

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_the_cli_writes_a_fast_forward_video_and_its_ground_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "sim",
            "street",
            "--out",
            str(tmp_path),
            "--scenario",
            "drop_off",
            "--seed",
            "2",
            "--duration",
            "60",
            "--size",
            "320x180",
            "--fps",
            "5",
            "--speed",
            "4",
            "--time",
            "night",
            "--weather",
            "rain",
        ]
    )
    assert code == 0
    assert {p.name for p in tmp_path.iterdir()} == {"street-drop_off-2.mp4", "street-drop_off-2.json"}
    capture = cv2.VideoCapture(str(tmp_path / "street-drop_off-2.mp4"))
    try:
        frames = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            assert image.shape == (180, 320, 3)
            frames += 1
    finally:
        capture.release()
    truth = read_street_truth(tmp_path / "street-drop_off-2.json")
    assert frames == truth["frames"] == 75  # 60 scenario seconds, 4 of them per video second at 5 fps
    assert (truth["speed"], truth["frame_interval_s"], truth["video"]) == (4.0, 0.8, "street-drop_off-2.mp4")
    assert (truth["time_of_day"], truth["weather"], truth["scenario"]) == ("night", "rain", "drop_off")
    assert truth["camera"]["image_size"] == [320, 180]
    assert {z["name"] for z in truth["zones"]} >= {"kerb_no_parking", "bus_stop", "fire_lane"}
    out = capsys.readouterr().out
    assert "frame 75/75" in out and "street-drop_off-2.json" in out and "x real time" in out


def test_the_cli_writes_a_frame_directory_with_custom_rules(tmp_path: Path) -> None:
    code = main(
        [
            "sim",
            "street",
            "--out",
            str(tmp_path),
            "--scenario",
            "leaves_in_grace",
            "--seed",
            "5",
            "--format",
            "frames",
            "--size",
            "160x90",
            "--fps",
            "2",
            "--speed",
            "10",
            "--dwell",
            "30",
            "--grace",
            "90",
        ]
    )
    assert code == 0
    truth = json.loads((tmp_path / "street-leaves_in_grace-5.json").read_text())
    frames = sorted((tmp_path / "street-leaves_in_grace-5").iterdir())
    assert len(frames) == truth["frames"] and frames[0].name == "000000.jpg"
    last = cv2.imread(str(frames[-1]))
    assert last is not None and last.shape == (90, 160, 3)
    assert truth["frames_dir"] == "street-leaves_in_grace-5" and truth["rules"] == {
        "dwell_s": 30.0,
        "grace_s": 90.0,
    }
    (parked,) = [s for s in truth["stops"] if s["kind"] == "parked"]
    assert parked["left_in_grace"] and parked["duration_s"] < 120


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "big"], "must look like 1920x1080"),
        (["--scenario", "parade"], "unknown scenario"),
        (["--dwell", "0"], "positive"),
    ],
)
def test_the_cli_refuses_bad_arguments_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["sim", "street", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_truth_file_of_another_format_or_missing_fields_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"format": "citywatch-facade-truth/1"}')
    with pytest.raises(ValueError, match="not a citywatch-street-truth/1"):
        read_street_truth(path)
    path.write_text(
        '{"format": "citywatch-street-truth/1", "fps": 10, "width": 1, "height": 1, "zones": [], "stops": [{}]}'
    )
    with pytest.raises(ValueError, match=r"stops\[0\] lacks vehicle_id"):
        read_street_truth(path)


def _read_all(source: StreetSimulatorSource) -> list[Frame]:
    source.open()
    try:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        return frames
    finally:
        source.close()


def test_the_declared_entry_point_opens_the_street_simulator() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    target = declared["citywatch.edge_sources"]["camera.street_simulator"]
    factory = EntryPoint("camera.street_simulator", target, "citywatch.edge_sources").load()
    camera = SimpleNamespace(fps=4.0, width=320, height=180)
    # The edge hands over its own config section: a model or a mapping with the same fields.
    source = factory(
        {"kind": "street_simulator", "seed": 3, "scenario": "overstay", "duration_s": 10, "realtime": False},
        camera,
    )
    assert isinstance(source, StreetSimulatorSource) and not source.live
    assert [z["name"] for z in source.zones()][:2] == ["kerb_no_parking", "bus_stop"]
    assert source.truth()["width"] == 320
    frames = _read_all(source)
    assert len(frames) == 40
    assert [f.t for f in frames[:3]] == [0.0, 0.25, 0.5]
    assert all(isinstance(f.truth, FrameTruth) and f.image.shape == (180, 320, 3) for f in frames)


def test_the_edge_registry_finds_the_street_simulator_when_installed() -> None:
    registry: SourceRegistry[Callable[..., StreetSimulatorSource]] = SourceRegistry(
        "camera", config_field="camera.source.kind"
    )
    if "street_simulator" not in registry.kinds():
        pytest.skip(
            "the installed distribution's metadata predates the entry point (pip install -e . refreshes it)"
        )
    factory = registry.get("street_simulator")
    source = factory(
        StreetSimulatorSourceConfig(seed=2, scenario="queue", duration_s=3, speed=3.0),
        SimpleNamespace(fps=2, width=160, height=90),
    )
    frames = _read_all(source)
    assert [f.t for f in frames] == [0.0, 1.5]


def test_a_source_config_with_a_mistake_says_which() -> None:
    with pytest.raises(ValidationError, match="not a preset"):
        StreetSimulatorSourceConfig(scenario="parade")
    with pytest.raises(ValidationError, match="extra"):
        StreetSimulatorSource.from_config(
            {"kind": "street_simulator", "sede": 3}, SimpleNamespace(fps=1, width=64, height=64)
        )
