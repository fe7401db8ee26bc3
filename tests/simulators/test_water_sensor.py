"""The simulators' sensor sources as the culvert agent opens them: recorded series and FloodNet profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators.water_sensor import ReplaySource

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_replay_source_plays_a_recorded_series(tmp_path: Path) -> None:
    csv_path = tmp_path / "series.csv"
    csv_path.write_text("offset_s,dist_mm\n0,2000\n60,1900\n120,\n180,1700\n")
    source = ReplaySource.from_file(csv_path, origin=T0, mount_height_mm=2000)
    at = [source.read(T0 + timedelta(seconds=s), 2) for s in (0, 30, 60, 130, 200)]
    assert at == [[2000, 2000], [2000, 2000], [1900, 1900], [None, None], [1700, 1700]]
    with pytest.raises(ValueError, match="offset_s"):
        bad = tmp_path / "bad.csv"
        bad.write_text("t,d\n1,2\n")
        ReplaySource.from_file(bad, origin=T0, mount_height_mm=2000)


def test_replay_source_plays_a_floodnet_profile(tmp_path: Path) -> None:
    csv_path = tmp_path / "events.csv"
    csv_path.write_text(
        '"sensor_id","flood_start_time","max_depth_inches","flood_profile_depth_inches","flood_profile_time_secs"\n'
        '"s1","2024-01-01T00:00:00","10","[0.0, 10.0, 0.0]","[0, 600, 1200]"\n'
    )
    source = ReplaySource.from_file(csv_path, origin=T0, mount_height_mm=2000, event=0)
    assert source.read(T0 + timedelta(seconds=600), 1) == [2000 - 254]
    assert source.read(T0 + timedelta(seconds=300), 1) == [2000 - 127]
    with pytest.raises(ValueError, match="event 3 does not exist"):
        ReplaySource.from_file(csv_path, origin=T0, mount_height_mm=2000, event=3)


def test_a_simulated_sensor_config_opens_the_water_simulator() -> None:
    from edge.config import validate_config_dict
    from edge.culvert.sources import open_source
    from simulators.water_sensor import SimulatedSource

    config = validate_config_dict(
        {
            "kind": "culvert",
            "device": {"id": "c1", "site": "s1"},
            "sensor": {"type": "simulated", "scenario": "dry", "noise_mm": 0},
            "culvert": {"mount_height_mm": 2000},
        }
    )
    source = open_source(config, origin=T0)  # type: ignore[arg-type]
    assert isinstance(source, SimulatedSource)
    assert source.read(T0 + timedelta(seconds=30), 3) == [2000, 2000, 2000]
