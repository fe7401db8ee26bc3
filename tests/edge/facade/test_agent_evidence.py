"""The facade agent's evidence through a real Mosquitto: the event at once, then the clip and the still.

A video file of a scripted fall (tests/edge/facade/scenes.py: dropped from 22 m one second in, on the
ground ~2.1 s later) runs through the agent; the collector joins the ``evidence`` parts it receives and
checks what they hold: an MP4 from ``pre_s`` before the first sighting to ``post_s`` after the impact that
OpenCV decodes, and a JPEG still with the drawing.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol import Channel, EventMessage
from citywatch.protocol.messages import EvidenceMessage
from edge.config import FacadeAgentConfig, validate_config_dict
from edge.evidence.privacy import EvidenceStartError
from edge.facade.agent import FacadeAgent
from tests.edge.facade.scenes import FPS, HEIGHT, WIDTH, falling, frames, scene_config
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

EVIDENCE = {"pre_s": 1.0, "post_s": 1.0, "clip_fps": 12.5, "clip_width": 640, "still_width": 640}


def write_video(path: Path, seconds: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for _, image in frames(falling(1.0, 22.0, u=370.0), seconds=seconds):
        writer.write(image)
    writer.release()
    return path


def agent_config(tmp_path: Path, broker_url: str, video: Path, evidence: dict[str, Any]) -> FacadeAgentConfig:
    facade = scene_config(evidence=evidence).model_dump(mode="json")
    facade["camera"]["source"] = {"kind": "file", "path": str(video), "realtime": False}
    config = validate_config_dict(
        {
            "kind": "facade",
            "device": {"id": "facade-ev-1", "site": "tower-a"},
            "mqtt": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
            "facade": facade,
        }
    )
    assert isinstance(config, FacadeAgentConfig)
    return config


def joined(parts: list[EvidenceMessage]) -> dict[str, tuple[EvidenceMessage, bytes]]:
    """evidence_id -> (part 0, the item's bytes) for every item whose parts all arrived."""
    by_id: dict[str, dict[int, EvidenceMessage]] = defaultdict(dict)
    for part in parts:
        by_id[part.evidence_id][part.part] = part  # QoS 1 may repeat a part
    items = {}
    for evidence_id, got in by_id.items():
        first = got[0] if 0 in got else next(iter(got.values()))
        if len(got) == first.parts:
            data = b"".join(base64.b64decode(got[i].data_b64) for i in range(first.parts))
            items[evidence_id] = (got[0], data)
    return items


@pytest.mark.slow
def test_the_event_goes_at_once_and_the_clip_and_still_follow(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    video = write_video(tmp_path / "fall.avi", seconds=6.0)
    agent = FacadeAgent(agent_config(tmp_path, mosquitto.url, video, EVIDENCE)).start()
    try:
        assert agent.wait(60), "the file did not finish"
        wait_until(lambda: len(joined(collector.of(EvidenceMessage))) == 2, what="the clip and the still")
    finally:
        agent.stop()
    [detection] = agent.throws
    [event_new] = {e.event_id: e for e in collector.of(EventMessage) if e.phase == "new"}.values()
    items = {part.kind.value: (part, data) for part, data in joined(collector.of(EvidenceMessage)).values()}
    assert set(items) == {"clip", "still"}
    # The event was on the broker before any evidence part: the clip did not hold it back.
    channels = [m.channel for m in collector.on(Channel.EVENT, Channel.EVIDENCE)]
    assert channels.index(Channel.EVENT.value) < channels.index(Channel.EVIDENCE.value)

    clip_part, clip = items["clip"]
    assert clip_part.event_id == event_new.event_id and clip_part.content_type == "video/mp4"
    assert clip_part.sha256 == hashlib.sha256(clip).hexdigest() and clip_part.size == len(clip)
    [produced] = agent.evidence_sent
    assert produced.clip is not None and produced.clip.data == clip  # the bytes the device made
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip)
    capture = cv2.VideoCapture(str(path))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    assert decoded == len(produced.clip.frame_times)
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)
    capture.release()
    # Bounds on the agent's frame clock: pre_s before the first sighting, post_s after the impact.
    impact_t = detection.fit.impact_t
    assert produced.clip.start_t == pytest.approx(detection.first_seen_t - 1.0, abs=0.09)
    assert produced.clip.end_t == pytest.approx(impact_t + 1.0, abs=0.09)
    assert impact_t == pytest.approx(1.0 + math.sqrt(2 * 22.0 / 9.81), abs=0.1)
    # taken_at is the wall clock of the clip's first frame, on the event's own clock.
    expected_start = event_new.ts - timedelta(seconds=impact_t - produced.clip.start_t)
    assert abs((clip_part.taken_at - expected_start).total_seconds()) < 0.01

    still_part, still = items["still"]
    assert still_part.content_type == "image/jpeg" and still_part.caption is not None
    assert "floor 8" in still_part.caption
    image = cv2.imdecode(np.frombuffer(still, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (480, 640, 3)
    magenta = (np.abs(image.astype(int) - (255, 0, 255)).max(axis=2) < 60).sum()
    assert magenta > 100  # the origin window's outline is drawn
    assert agent.evidence_worker is not None and agent.evidence_worker.failed == 0


def test_evidence_off_sends_none_and_keeps_no_ring(tmp_path: Path) -> None:
    video = write_video(tmp_path / "fall.avi", seconds=0.2)
    agent = FacadeAgent(
        agent_config(tmp_path, "mqtt://127.0.0.1:1", video, {"enabled": False}), uplink=object()
    )
    assert agent.recorder is None and agent.evidence_worker is None


def test_a_missing_face_cascade_is_a_clear_start_error(tmp_path: Path) -> None:
    video = write_video(tmp_path / "fall.avi", seconds=0.2)
    evidence = {"privacy": {"blur_faces": True, "face_cascade": str(tmp_path / "faces.xml")}}
    with pytest.raises(EvidenceStartError, match=r"faces\.xml does not exist"):
        FacadeAgent(agent_config(tmp_path, "mqtt://127.0.0.1:1", video, evidence), uplink=object())
