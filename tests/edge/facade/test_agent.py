"""The facade agent end to end: a video file of a fall -> analyzer -> real Mosquitto -> one object_thrown event."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol import EventMessage
from edge.config import FacadeAgentConfig, validate_config_dict
from edge.facade.agent import FacadeAgent
from edge.vision.sources import SourceError
from tests.edge.facade.scenes import FPS, HEIGHT, WIDTH, falling, frames, scene_config
from tests.support.mqtt import Collector
from tests.support.polling import wait_until


def write_video(path: Path, **scene: Any) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for _, image in frames(falling(1.0, 22.0, u=370.0), seconds=4.0, **scene):
        writer.write(image)
    writer.release()
    return path


def agent_config(tmp_path: Path, broker_url: str, source: dict[str, Any]) -> FacadeAgentConfig:
    facade = scene_config().model_dump(mode="json")
    facade["camera"]["source"] = source
    raw = {
        "kind": "facade",
        "device": {"id": "facade-test-1", "site": "tower-a"},
        "mqtt": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "telemetry": {"health_interval_s": 1},
        "facade": facade,
    }
    config = validate_config_dict(raw)
    assert isinstance(config, FacadeAgentConfig)
    return config


@pytest.mark.slow
def test_a_recorded_fall_raises_one_object_thrown_event(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    video = write_video(tmp_path / "fall.mp4")
    config = agent_config(tmp_path, mosquitto.url, {"kind": "file", "path": str(video), "realtime": False})
    agent = FacadeAgent(config).start()
    try:
        assert agent.wait(60), "the file did not finish"
        wait_until(
            lambda: any(e.phase == "end" for e in collector.of(EventMessage)), what="the throw's event end"
        )
    finally:
        agent.stop()
    events = {(e.event_id, e.phase): e for e in collector.of(EventMessage)}  # QoS 1 may repeat one
    assert sorted(phase for _, phase in events) == ["end", "new"]
    new = next(e for (_, phase), e in events.items() if phase == "new")
    assert new.type == "object_thrown" and new.device_id == "facade-test-1"
    assert new.details["floor_estimate"] == 8
    assert new.details["fall_height_m"] == pytest.approx(22.0, abs=0.5)
    # started_at is the release, ts the impact: the fall's duration apart.
    assert (new.ts - new.started_at).total_seconds() == pytest.approx(math.sqrt(2 * 22.0 / 9.81), abs=0.1)
    assert new.confidence > 0.5
    assert agent.frames_processed == int(4.0 * FPS)


def test_a_missing_video_file_is_a_clear_start_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.mp4"
    config = agent_config(tmp_path, "mqtt://127.0.0.1:1", {"kind": "file", "path": str(missing)})
    with pytest.raises(SourceError, match=f"video file {missing} does not exist"):
        FacadeAgent(config, uplink=object())
