"""``citywatch sim facade`` writes readable videos with truth; the edge opens the simulated facade camera."""

from __future__ import annotations

import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace

import cv2
import pytest

from citywatch.cli import main
from simulators.facade import FrameTruth, read_facade_truth
from simulators.facade.frame_source import FacadeSimulatorSource, FacadeSimulatorSourceConfig

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("video_format", ["mp4", "avi"])
def test_the_cli_writes_a_video_and_its_ground_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], video_format: str
) -> None:
    code = main(
        [
            "sim", "facade", "--out", str(tmp_path), "--seed", "4", "--duration", "8", "--throws", "1",
            "--time", "night", "--weather", "rain", "--size", "320x180", "--fps", "10", "--format", video_format,
        ]
    )  # fmt: skip
    assert code == 0
    assert {p.name for p in tmp_path.iterdir()} == {f"facade-4.{video_format}", "facade-4.json"}
    capture = cv2.VideoCapture(str(tmp_path / f"facade-4.{video_format}"))
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
    truth = read_facade_truth(tmp_path / "facade-4.json")
    assert frames == truth["frames"] == 80
    assert truth["video"] == f"facade-4.{video_format}"
    assert (truth["time_of_day"], truth["weather"], len(truth["throws"])) == ("night", "rain", 1)
    assert truth["calibration"]["image_size"] == [320, 180]
    out = capsys.readouterr().out
    assert "frame 80/80" in out and "facade-4.json" in out


def test_the_cli_refuses_an_impossible_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "facade", "--out", str(tmp_path), "--duration", "3", "--throws", "5"]) == 2
    assert "throws need" in capsys.readouterr().err


def test_a_truth_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"format": "citywatch-ride-truth/1"}')
    with pytest.raises(ValueError, match="not a citywatch-facade-truth/1"):
        read_facade_truth(path)


def test_the_declared_entry_point_opens_the_facade_simulator() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    target = declared["citywatch.edge_sources"]["camera.facade_simulator"]
    factory = EntryPoint("camera.facade_simulator", target, "citywatch.edge_sources").load()
    camera = SimpleNamespace(fps=5.0, width=320, height=180)
    # The edge hands over its own config section: a model or a mapping with the same fields.
    source = factory(
        {"kind": "facade_simulator", "seed": 3, "duration_s": 8, "throws": 1, "realtime": False}, camera
    )
    assert isinstance(source, FacadeSimulatorSource)
    assert source.calibration()["image_size"] == [320, 180]
    source.open()
    try:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    finally:
        source.close()
    assert [f.index for f in frames] == list(range(40))
    assert frames[3].t == pytest.approx(0.6)
    assert all(isinstance(f.truth, FrameTruth) and f.image.shape == (180, 320, 3) for f in frames)
    flying = [f for f in frames if f.truth.throws]
    throw = source.truth()["throws"][0]
    assert flying and all(throw["start_s"] <= f.t <= throw["impact_s"] for f in flying)


def test_the_edge_frame_grabber_reads_the_facade_simulator() -> None:
    from edge.vision.sources import FrameGrabber, SourceError

    source = FacadeSimulatorSource(
        FacadeSimulatorSourceConfig(seed=2, duration_s=2, throws=0, realtime=False), fps=10, size=(160, 90)
    )
    with pytest.raises(SourceError, match="not open"):
        source.read()
    grabber = FrameGrabber(source).start()
    try:
        indexes: list[int] = []
        while len(indexes) < 20:
            frame = grabber.get(timeout_s=5)
            assert frame is not None
            indexes.append(frame.index)
    finally:
        grabber.stop()
    assert indexes == list(range(20))  # lossless: a fast-forwarded simulator drops nothing


def test_the_edge_camera_registry_knows_the_facade_simulator() -> None:
    from edge.vision.sources import CAMERAS

    assert "facade_simulator" in CAMERAS.kinds()
    assert CAMERAS.get("facade_simulator") == FacadeSimulatorSource.from_config
