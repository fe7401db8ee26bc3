"""`citywatch demo` as a user runs it: a flood reaches the simulated dispatch centre within 60 s."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the whole demo: ~30 s


def test_demo_delivers_a_flood_event_and_ends_with_a_json_summary(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "citywatch.cli", "demo", "--duration", "25", "--http-port", "0",
         "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("citywatch demo: console http://127.0.0.1:")  # the console first
    assert lines[1].startswith("  console login (paste the token; this demo's database only): dispatcher cw_")
    assert any(line.startswith("[") and "telemetry=" in line for line in lines), "no live status lines"
    summary = json.loads(lines[-1])
    assert summary["events_raised"] >= 2  # two of the three culverts flood past 10 cm
    assert summary["events_delivered"] >= 2
    assert summary["telemetry_stored"] > 50
    assert summary["duplicates_at_dispatch"] == 0
    assert summary["first_delivery_after_s"] is not None and summary["first_delivery_after_s"] < 60
