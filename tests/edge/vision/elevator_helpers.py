"""Shared by the elevator agent tests: a fixed-output model, a device config, snapshots by id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from citywatch.broker.mosquitto import MosquittoBroker
from tests.edge.vision.onnx_builders import yolo_model
from tests.support.paths import PROJECT_ROOT

LABELS = ["person", "ebike", "bicycle", "stroller", "wheelchair"]
SIZE = 256
REAL_MODEL = PROJECT_ROOT / "models" / "ebike-detector.onnx"


def unique(snapshots: list[Any]) -> list[Any]:
    """Snapshots by id (QoS 1 delivers at least once)."""
    return list({s.snapshot_id: s for s in snapshots}.values())


def ebike_everywhere_model(path: Path) -> Path:
    """One e-bike (score 0.9) and one person in the middle of every frame."""
    rows = [
        [128.0, 150.0, 60.0, 80.0, 0.05, 0.9, 0.02, 0.01, 0.01],
        [100.0, 120.0, 40.0, 100.0, 0.85, 0.02, 0.01, 0.01, 0.01],
    ]
    return yolo_model(path, np.array(rows), size=SIZE, names=LABELS)


def device_config(tmp_path: Path, broker: MosquittoBroker, model: Path, **elevator: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "camera": {
            "source": {
                "kind": "simulator",
                "seed": 4242,
                "ride_kind": "ebike",
                "rides": 1,
                "realtime": False,
            },
            "width": 320,
            "height": 180,
        },
        "detector": {"model": str(model)},
        "snapshots": {"privacy": "blur_people"},
    }
    section.update(elevator)
    return {
        "kind": "elevator",
        "device": {"id": "lift-test-1", "site": "tower-a"},
        "mqtt": {"url": broker.url, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "telemetry": {"health_interval_s": 1},
        "elevator": section,
    }
