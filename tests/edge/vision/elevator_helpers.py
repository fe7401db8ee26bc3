"""Shared by the elevator agent tests: a validating MQTT collector, a fixed-output model, a device config."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.codec import decode
from tests.support.paths import PROJECT_ROOT
from tests.edge.vision.onnx_builders import yolo_model

LABELS = ["person", "ebike", "bicycle", "stroller", "wheelchair"]
SIZE = 256
REAL_MODEL = PROJECT_ROOT / "models" / "ebike-detector.onnx"


class Collector:
    """A test subscriber that decodes (validates) everything a device publishes."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.messages: list[Any] = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        # A persistent session: what is published while the broker restarts still reaches us.
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="test-collector", clean_session=False
        )
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda client, userdata, flags, reason, properties: self.connected.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("citywatch/v1/#", qos=1)
        self.client.loop_start()
        assert self.connected.wait(10), "the test subscriber did not connect"

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        decoded = decode(message.topic, message.payload)
        with self._lock:
            self.messages.append(decoded.message)

    def of(self, kind: type) -> list[Any]:
        with self._lock:
            return [m for m in self.messages if isinstance(m, kind)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


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
