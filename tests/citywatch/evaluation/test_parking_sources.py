"""The simulated street the parking evaluation reads: one source config (the edge's, which the simulator's
extends), and frames that carry the simulated day's wall-clock time so zone hours follow it."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from edge.config import StreetAgentConfig, validate_config_dict
from edge.street.config import StreetConfig
from edge.street.config import StreetSimulatorSourceConfig as EdgeSource
from simulators.street.frame_source import StreetSimulatorSource, StreetSimulatorSourceConfig

CAMERA = SimpleNamespace(fps=2.0, width=160, height=90)
ZONE = {"name": "kerb", "polygon": [[0, 0], [100, 0], [100, 80]]}


def test_the_simulators_source_model_is_the_edges_extended() -> None:
    assert issubclass(StreetSimulatorSourceConfig, EdgeSource)
    assert set(EdgeSource.model_fields) == set(StreetSimulatorSourceConfig.model_fields)
    # The edge validates the section a device config holds; the simulator adds its presets check.
    street = StreetConfig.model_validate(
        {"camera": {"source": {"kind": "street_simulator", "scenario": "parade"}}, "zones": [ZONE]}
    )
    assert isinstance(street.camera.source, EdgeSource) and street.camera.source.scenario == "parade"
    with pytest.raises(ValidationError, match="not a preset"):
        StreetSimulatorSource.from_config(street.camera.source, CAMERA)


def test_a_start_needs_its_utc_offset() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        EdgeSource(start="2025-03-03T08:00:00")  # type: ignore[arg-type]
    source = EdgeSource(start="2025-03-03T08:00:00+08:00")  # type: ignore[arg-type]
    assert source.start is not None and source.start.utcoffset() == timedelta(hours=8)


def test_frames_carry_the_simulated_days_time_when_a_start_is_given() -> None:
    section = {"kind": "street_simulator", "seed": 2, "scenario": "queue", "duration_s": 3, "speed": 3.0}
    config = validate_config_dict(
        {
            "kind": "street",
            "device": {"id": "street-1", "site": "s"},
            "street": {
                "camera": {"source": section | {"start": "2025-03-03T07:59:59+08:00"}, "fps": 2},
                "zones": [ZONE],
            },
        }
    )
    assert isinstance(config, StreetAgentConfig)
    # The device config's own section opens the simulator (the registry hands it over as it is).
    source = StreetSimulatorSource.from_config(config.street.camera.source, CAMERA)
    source.open()
    frames = [source.read(), source.read(), source.read()]
    source.close()
    start = datetime.fromisoformat("2025-03-03T07:59:59+08:00")
    assert [f.wall for f in frames if f is not None] == [start, start + timedelta(seconds=1.5)]
    # Without a start the frames leave the time to the agent's clock.
    plain = StreetSimulatorSource.from_config(section, CAMERA)
    plain.open()
    first = plain.read()
    plain.close()
    assert first is not None and first.wall is None
