"""The facade benchmark runs end to end on a tiny clip, so the suite cannot rot (speed is not tested)."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywatch.bench import cli, runner
from citywatch.bench.facade import bench_facade

FRAMES = 75


@pytest.mark.slow
def test_facade_bench_times_every_stage_and_runs_the_agent(tmp_path: Path) -> None:
    figures = bench_facade(frames=FRAMES, size=(320, 180), repeats=1, workdir=tmp_path)

    assert figures["frames_per_run"] == FRAMES and figures["runs"] == 1
    assert figures["agent_frames_processed"] == FRAMES  # the agent read the same clip, fast-forwarded
    stages = figures["ms_per_frame"]
    assert set(stages) == {"decode", "motion_background", "blobs", "tracking", "fit"}
    assert all(ms >= 0 for ms in stages.values()), stages
    # Each wrapped step was really called: a renamed step in the analyzer would leave its stage at 0.
    motion = figures["motion_background_ms_per_frame"]
    assert motion["grey"] > 0 and motion["shake"] > 0 and motion["background"] > 0, motion
    assert stages["motion_background"] == pytest.approx(sum(motion.values()), abs=0.005)
    assert stages["decode"] > 0 and stages["blobs"] > 0
    # The analyzer includes a decode, so it cannot beat the bare decode of the same stream by much.
    assert figures["reference_decode_fps"] > 0 and 0 < figures["analyzer_to_decode_ratio"] < 1.5
    assert figures["keeps_up_with_25fps"] == (figures["analyzer_fps"] >= 25.0)
    assert figures["agent_peak_rss_mb"] > 30  # numpy, OpenCV and paho loaded: well above a bare interpreter
    assert figures["rss_budget_mb"] == 300
    assert figures["within_rss_budget"] == (figures["agent_peak_rss_mb"] < 300)
    assert list(tmp_path.iterdir()) == []  # the clip, broker and outbox lived in a temporary directory


def test_the_facade_suite_is_registered_and_selectable() -> None:
    assert "facade" in runner.SUITES
    assert set(cli.SUITES) == set(runner.SUITES)
