"""Sensor sources: the RS-232 ranger driver fed real bytes through a pseudo-terminal; replay; simulated."""

from __future__ import annotations

import os
import tty
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.config import validate_config_dict
from edge.sources import open_source
from edge.sources.replay import ReplaySource
from edge.sources.serial_ranger import SerialRanger, parse_reading

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    controller, device = os.openpty()
    tty.setraw(device)
    name = os.ttyname(device)
    yield controller, name
    os.close(controller)
    os.close(device)


def test_serial_ranger_reads_real_bytes_through_a_pty(pty_pair: tuple[int, str]) -> None:
    controller, port = pty_pair
    ranger = SerialRanger.open(port, baudrate=9600, timeout_s=0.5)
    try:
        # A MaxBotix-style stream: good lines, garbage, a partial line, a max-range sentinel.
        os.write(controller, b"R1234\rR1236\rxx\rR12\rR5000\r")
        assert ranger.read(T0, 5) == [1234, 1236, None, None, 5000]
        # A silent sensor: the burst ends at the first timeout instead of waiting five times.
        assert ranger.read(T0, 3) == [None, None, None]
    finally:
        ranger.close()


def test_serial_config_opens_the_driver(pty_pair: tuple[int, str]) -> None:
    controller, port = pty_pair
    config = validate_config_dict(
        {
            "kind": "culvert",
            "device": {"id": "c1", "site": "s1"},
            "sensor": {"type": "serial", "port": port, "baudrate": 9600, "timeout_s": 0.5},
            "culvert": {"mount_height_mm": 2000},
        }
    )
    source = open_source(config, origin=T0)  # type: ignore[arg-type]
    try:
        os.write(controller, b"R1800\r" * 5)
        assert source.read(T0, 5) == [1800] * 5
    finally:
        source.close()


@pytest.mark.parametrize(
    ("line", "value"),
    [(b"R0300\r", 300), (b"R4999", 4999), (b"R9999\r", 9999), (b"r1234\r", None), (b"", None)],
)
def test_parse_reading(line: bytes, value: int | None) -> None:
    assert parse_reading(line) == value


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
