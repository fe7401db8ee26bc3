"""The SQLite store writes each point's fields as the JSON the standard encoder would write."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.telemetry.base import TelemetryPoint
from gateway.telemetry.sqlite import SqliteTelemetryStore


class _Level(float):
    """A float subclass (what a library might hand over): encoded as the encoder does it."""


FIELDS: list[dict[str, float | int | bool]] = [
    {"level_cm": 12.5, "distance_mm": 2000.0},
    {"ok": True, "fault": False, "count": 3, "big": 10**30},
    {"tiny": 1e-7, "huge": 1e300, "minus_zero": -0.0, "negative": -4.25},
    {"not_a_number": float("nan"), "up": float("inf"), "down": float("-inf")},
    {"subclass": _Level(2.5)},
    {'quote"and\\slash': 1, "ünïcode": 2.0},
]


@pytest.mark.parametrize("fields", FIELDS)
def test_fields_column_is_standard_json(tmp_path: Path, fields: dict[str, float | int | bool]) -> None:
    store = SqliteTelemetryStore(tmp_path / "t.db")
    ts = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    store.write([TelemetryPoint("s", "d", "m", ts + timedelta(seconds=1), fields, {})])
    store.close()
    with sqlite3.connect(tmp_path / "t.db") as db:
        (stored,) = db.execute("SELECT fields FROM telemetry").fetchone()
    assert stored == json.dumps(fields, separators=(",", ":"))
