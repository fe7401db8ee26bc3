"""Run simulated culvert devices: full edge agents with the simulated water source, in one process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge.clock import ScaledClock
from edge.config import CulvertAgentConfig, validate_config_dict
from edge.culvert.agent import CulvertAgent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WaterFleetOptions:
    devices: Sequence[str] = ("culvert-sim-1",)
    site: str = "sim"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    scenario: str = "storm"
    peak_cm: float = 30.0
    start_after_s: float = 60.0
    faults: Sequence[str] = ()
    seed: int = 1
    speed: float = 60.0
    mount_height_mm: int = 2000
    sample_interval_s: float = 10.0
    outbox_dir: Path = Path("var/sim-water")
    replay_file: Path | None = None  # replay instead of simulate: offset_s,dist_mm CSV or FloodNet events
    replay_event: int | None = None  # row of a FloodNet flood-events.csv (device i plays row + i)
    extra_culvert: dict[str, object] = field(default_factory=dict)


def _sensor(options: WaterFleetOptions, index: int) -> dict[str, object]:
    if options.replay_file is not None:
        event = None if options.replay_event is None else options.replay_event + index
        return {"type": "replay", "file": str(options.replay_file), "event": event}
    return {
        "type": "simulated",
        "scenario": options.scenario,
        "peak_cm": options.peak_cm,
        "start_after_s": options.start_after_s,
        "seed": options.seed + index,
        "faults": list(options.faults),
    }


def device_config(options: WaterFleetOptions, device_id: str, index: int) -> CulvertAgentConfig:
    raw = {
        "kind": "culvert",
        "device": {"id": device_id, "site": options.site, "description": "simulated culvert"},
        "mqtt": {"url": options.mqtt_url, "reconnect_min_s": 0.2, "reconnect_max_s": 5.0},
        "outbox": {"path": str(options.outbox_dir / f"{device_id}.sqlite3")},
        "sensor": _sensor(options, index),
        "culvert": {
            "mount_height_mm": options.mount_height_mm,
            "sample_interval_s": options.sample_interval_s,
            **options.extra_culvert,
        },
    }
    config = validate_config_dict(raw, source=f"simulated device {device_id}")
    assert isinstance(config, CulvertAgentConfig)
    return config


def start_water_fleet(options: WaterFleetOptions, *, clock: ScaledClock | None = None) -> list[CulvertAgent]:
    """Start one agent per device id (sharing a fast-forward clock); stop each with ``agent.stop()``."""
    clock = clock or ScaledClock(speed=options.speed)
    return [
        CulvertAgent(device_config(options, d, i), clock=clock).start() for i, d in enumerate(options.devices)
    ]


def run_water_fleet(options: WaterFleetOptions, *, duration_s: float | None, stop: threading.Event) -> int:
    agents = start_water_fleet(options)
    log.info("%d simulated culvert(s) on %s at %gx speed", len(agents), options.mqtt_url, options.speed)
    try:
        stop.wait(duration_s)
    finally:
        for agent in agents:
            agent.stop()
    for agent in agents:
        log.info("%s: %d telemetry, %d events sent", agent.device_id, agent.telemetry_sent, agent.events_sent)
    return 0
