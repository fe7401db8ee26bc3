"""The street benchmark runs end to end on a tiny clip, so the suite cannot rot (speed is not tested)."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywatch.bench import cli, runner
from citywatch.bench.street import STAGES, bench_street

SECONDS, FPS = 3.0, 10.0


@pytest.mark.slow
def test_street_bench_times_every_stage_and_runs_the_agent(tmp_path: Path) -> None:
    figures = bench_street(seconds=SECONDS, size=(320, 180), repeats=1, workdir=tmp_path)

    frames = round(SECONDS * FPS)
    assert figures["frames_per_run"] == frames and figures["runs"] == 1
    assert figures["agent_frames_processed"] == frames  # the agent read the same clip, fast-forwarded
    stages = figures["ms_per_frame"]
    assert set(stages) == set(STAGES)
    assert all(ms >= 0 for ms in stages.values()), stages
    # Each wrapped step was really called: a renamed step in the agent would leave its stage at 0.
    assert stages["decode"] > 0 and stages["detect"] > 0 and stages["analyzer"] > 0, stages
    # The agent's path includes a decode, so it cannot beat the bare decode of the same stream.
    assert figures["reference_decode_fps"] > 0 and 0 < figures["agent_path_to_decode_ratio"] < 1.5
    assert figures["keeps_up_with_10fps"] == (figures["agent_path_fps"] >= 10.0)
    assert figures["agent_peak_rss_mb"] > 30  # numpy, OpenCV, onnxruntime and paho loaded
    assert figures["rss_budget_mb"] == 300
    assert figures["within_rss_budget"] == (figures["agent_peak_rss_mb"] < 300)
    assert figures["plate_reader"] in ("citywatch", "none")
    assert list(tmp_path.iterdir()) == []  # the clip, broker and outbox lived in a temporary directory


def test_the_street_suite_is_registered_and_selectable() -> None:
    assert "street" in runner.SUITES
    assert set(cli.SUITES) == set(runner.SUITES)
