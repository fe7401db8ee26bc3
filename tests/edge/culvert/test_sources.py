"""Sensor sources: the RS-232 ranger driver fed real bytes through a pseudo-terminal."""

from __future__ import annotations

import os
import tty
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from edge.config import validate_config_dict
from edge.culvert.serial_ranger import SerialRanger, parse_reading
from edge.culvert.sources import open_source

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
