"""The source registry: built-in drivers, providers found by entry point, and what it says when none fits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from edge import registry
from edge.culvert.sources import SENSORS, open_serial_ranger
from edge.registry import ENTRY_POINT_GROUP, NoSourceDriver, SourceRegistry
from tests.support.paths import PROJECT_ROOT


def fresh_sensors() -> SourceRegistry[Any]:
    return SourceRegistry("sensor", config_field="sensor.type")


def test_an_unknown_kind_names_the_config_field_and_what_is_known() -> None:
    with pytest.raises(NoSourceDriver) as caught:
        fresh_sensors().get("sonar")
    message = str(caught.value)
    assert "sensor.type 'sonar' has no driver" in message
    assert f"entry point 'sensor.sonar' in group {ENTRY_POINT_GROUP!r}" in message
    assert "known here: replay, simulated" in message  # the simulators' entry points
    assert "pip install citywatch" in message


def test_the_edge_drivers_are_built_in_and_the_simulators_come_by_entry_point() -> None:
    from simulators.water_sensor import ReplaySource, SimulatedSource

    assert SENSORS.get("serial") is open_serial_ranger
    assert SENSORS.get("simulated") == SimulatedSource.from_config
    assert SENSORS.get("replay") == ReplaySource.from_config
    assert SENSORS.kinds() == ["replay", "serial", "simulated"]


def test_a_registered_factory_wins_over_entry_points() -> None:
    sensors = fresh_sensors()

    @sensors.register("simulated")
    def stand_in(sensor: Any, *, mount_height_mm: int, origin: datetime) -> str:
        return "stand-in"

    assert sensors.get("simulated") is stand_in


def test_a_provider_that_cannot_be_imported_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = EntryPoint(name="sensor.lidar", value="citywatch_no_such_module:open", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken])
    with pytest.raises(NoSourceDriver, match=r"sensor\.type 'lidar' needs citywatch_no_such_module:open.*"):
        fresh_sensors().get("lidar")


def test_a_serial_culvert_imports_neither_the_simulators_nor_numpy(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from edge.config import validate_config_dict
        from edge.culvert.agent import CulvertAgent

        config = validate_config_dict({{
            "kind": "culvert",
            "device": {{"id": "c1", "site": "s1"}},
            "outbox": {{"path": {str(tmp_path / "outbox.sqlite3")!r}}},
            "sensor": {{"type": "serial", "port": "loop://"}},
            "culvert": {{"mount_height_mm": 2000}},
        }})
        agent = CulvertAgent(config)
        print(type(agent.source).__name__)
        agent.stop()
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("simulators", "numpy", "cv2")))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SerialRanger", "[]"]
