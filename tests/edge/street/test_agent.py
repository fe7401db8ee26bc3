"""The street agent end to end: a video file -> real ONNX detector -> parking analyzer -> real Mosquitto:
one illegal_parking event (warning, violation, left) with its evidence photos, privacy applied."""

from __future__ import annotations

import base64
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol import EventMessage
from citywatch.protocol.messages import EvidenceMessage
from edge.config import StreetAgentConfig, load_config, validate_config_dict
from edge.street.agent import StreetAgent, StreetStartError, preflight
from tests.edge.street.lit_detector import (
    CAR,
    HEIGHT,
    OTHER_CAR,
    PERSON,
    WIDTH,
    ZONE,
    build_model,
    scene,
    write_video,
)
from tests.support.mqtt import Collector
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until


def agent_config(tmp_path: Path, broker_url: str, video: Path, **street: Any) -> StreetAgentConfig:
    model = build_model(tmp_path / "lit.onnx")
    raw = {
        "kind": "street",
        "device": {"id": "street-test-1", "site": "old-town"},
        "mqtt": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "telemetry": {"health_interval_s": 1},
        "street": {
            "camera": {
                "source": {"kind": "file", "path": str(video), "realtime": False},
                "fps": 5,
                "width": WIDTH,
                "height": HEIGHT,
            },
            "detector": {
                "model": str(model),
                "label_map": {
                    "car": "car",
                    "bus": "bus",
                    "truck": "truck",
                    "motorcycle": "motorbike",
                    "bicycle": "ebike",
                },
            },
            "zones": [
                {"name": "kerb", "polygon": ZONE, "dwell_s": 2, "grace_s": 2, "stopped": {"window_s": 1}}
            ],
            "occlusion_tolerance_s": 2,
            "plate": {"reader": "none"},
            **street,
        },
    }
    config = validate_config_dict(raw)
    assert isinstance(config, StreetAgentConfig)
    return config


def joined(parts: list[EvidenceMessage]) -> dict[str, tuple[EvidenceMessage, bytes]]:
    by_id: dict[str, dict[int, EvidenceMessage]] = defaultdict(dict)
    for part in parts:
        by_id[part.evidence_id][part.part] = part  # QoS 1 may repeat a part
    items = {}
    for evidence_id, chunks in by_id.items():
        first = chunks[0]
        assert sorted(chunks) == list(range(first.parts))
        data = b"".join(base64.b64decode(chunks[i].data_b64) for i in range(first.parts))
        items[evidence_id] = (first, data)
    return items


def texture(image: np.ndarray, box: tuple[float, float, float, float], *, inset: int = 3) -> float:
    x1, y1, x2, y2 = (int(v) for v in box)
    region = cv2.cvtColor(image[y1 + inset : y2 - inset, x1 + inset : x2 - inset], cv2.COLOR_BGR2GRAY)
    return float(np.abs(np.diff(region.astype(np.float32), axis=1)).mean())


@pytest.mark.slow
def test_a_parked_car_is_warned_recorded_and_seen_gone_with_blurred_photos(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    video = write_video(tmp_path / "street.mp4", lit_s=8.0, dark_s=6.0)
    agent = StreetAgent(agent_config(tmp_path, mosquitto.url, video)).start()
    try:
        assert agent.wait(60), "the file did not finish"
        wait_until(lambda: any(e.phase == "end" for e in collector.of(EventMessage)), what="the case's end")
        wait_until(lambda: len(joined(collector.of(EvidenceMessage))) >= 2, what="two photos")
    finally:
        agent.stop()
    events = {(e.event_id, e.seq): e for e in collector.of(EventMessage)}  # QoS 1 may repeat one
    ordered = [events[key] for key in sorted(events, key=lambda k: k[1])]
    assert len({e.event_id for e in ordered}) == 1, "one case is one event"
    assert [(e.phase, e.severity, e.details["stage"]) for e in ordered] == [
        ("new", "notice", "warning"),
        ("update", "warning", "violation"),
        ("end", "warning", "left_after_violation"),
    ]
    new, update, end = ordered
    assert new.type == "illegal_parking" and new.details["zone"] == "kerb"
    assert new.details["vehicle_class"] == "car"
    assert new.details["dwell_s"] == pytest.approx(2.0, abs=0.5)
    assert new.details["box"] == pytest.approx(list(CAR), abs=2.0)
    assert update.details["grace_s"] == pytest.approx(2.0, abs=0.5)
    assert end.details["departure"] == "not_seen_again" and end.details["violation_recorded"] is True
    assert end.details["dwell_s"] == pytest.approx(8.0, abs=0.5)  # it vanished with the light at 8 s
    assert "plate" not in new.details  # the reader is 'none'

    photos = joined(collector.of(EvidenceMessage))
    assert sorted(m.kind for m, _ in photos.values()) == ["photo", "photo"]
    assert {m.event_id for m, _ in photos.values()} == {new.event_id}
    assert sorted(m.caption or "" for m, _ in photos.values()) == ["violation kerb", "warning kerb"]
    original = scene(lit=True)
    for _, data in photos.values():
        photo = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert photo is not None and photo.shape[:2] == (HEIGHT, WIDTH)
        other_plate = (OTHER_CAR[0] + 50, OTHER_CAR[3] - 25, OTHER_CAR[0] + 110, OTHER_CAR[3] - 5)
        own_plate = (CAR[0] + 90, CAR[3] - 30, CAR[0] + 150, CAR[3] - 10)
        assert texture(original, other_plate) > 40
        assert texture(photo, other_plate) < 0.25 * texture(original, other_plate), "other plate not blurred"
        assert texture(photo, PERSON) < 0.25 * texture(original, PERSON), "person not blurred"
        assert texture(photo, own_plate) > 0.6 * texture(original, own_plate), "own vehicle must stay sharp"
        # The zone is drawn in amber on its top edge.
        b, g, r = photo[ZONE[0][1], (ZONE[0][0] + ZONE[1][0]) // 2].astype(int)
        assert r > 180 and g > 150 and b < 100


def test_an_unknown_plate_reader_is_a_clear_start_error(tmp_path: Path) -> None:
    video = write_video(tmp_path / "street.mp4", lit_s=1.0, dark_s=0.0)
    config = agent_config(tmp_path, "mqtt://127.0.0.1:1", video, plate={"reader": "nosuch"})
    with pytest.raises(StreetStartError, match=r"street\.plate\.reader: unknown plate reader 'nosuch'"):
        StreetAgent(config, uplink=object())


def test_preflight_loads_the_model_and_names_what_is_missing(tmp_path: Path) -> None:
    raw = yaml.safe_load((PROJECT_ROOT / "firmware_configs/street.example.yaml").read_text())
    raw["street"]["plate"]["reader"] = "none"
    raw["street"]["evidence"]["blur_faces"] = False
    path = tmp_path / "street.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    config = load_config(path)
    assert isinstance(config, StreetAgentConfig)
    assert preflight(config) == []  # the COCO model in models/ reports every vehicle class
    raw["street"]["detector"]["model"] = str(tmp_path / "missing.onnx")
    raw["street"]["vehicle_classes"] = ["car"]
    raw["street"]["zones"][2]["exempt_classes"] = []
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    config = load_config(path)
    assert isinstance(config, StreetAgentConfig)
    [problem] = preflight(config)
    assert (
        problem.startswith("street.detector.model: model file") and "missing.onnx does not exist" in problem
    )


class _HeldFaceFinder:
    """Finds no face, but only once the test lets it: a photo in the making that takes its time."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.asked = threading.Event()

    def find(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        self.asked.set()
        assert self.release.wait(30), "the test never released the photo"
        return []


def test_the_frame_loop_never_waits_for_a_photo(tmp_path: Path) -> None:
    from citywatch.protocol import Channel
    from edge.vision.sources import OpenCvSource

    class Uplink:
        queue_depth = 0
        refusals_received = 0

        def __init__(self) -> None:
            self.sent: list[tuple[Channel, Any]] = []

        def send(self, channel: Channel, message: Any) -> None:
            self.sent.append((channel, message))

    video = write_video(tmp_path / "street.mp4", lit_s=8.0, dark_s=6.0)
    config = agent_config(tmp_path, "mqtt://127.0.0.1:9", video, evidence={"blur_faces": True})
    faces, uplink = _HeldFaceFinder(), Uplink()
    agent = StreetAgent(
        config, uplink=uplink, face_finder=faces, source=OpenCvSource(str(video), live=False, fps=5)
    )
    source = agent.grabber.source
    source.open()
    while (frame := source.read()) is not None:
        agent.process(frame)  # would block at the warning's photo if photos were made in the loop
    source.close()
    assert faces.asked.wait(10), "the warning's photo was started"
    channels = [channel for channel, _ in uplink.sent]
    assert Channel.EVENT in channels and Channel.EVIDENCE not in channels, "events went out, photos wait"
    faces.release.set()
    agent.close()
    evidence = [m for channel, m in uplink.sent if channel is Channel.EVIDENCE]
    assert {m.kind.value for m in evidence} == {"photo"} and agent.evidence_sent == 2


def test_closeups_need_a_source_that_can_zoom(tmp_path: Path) -> None:
    video = write_video(tmp_path / "street.mp4", lit_s=1.0, dark_s=0.0)
    config = agent_config(
        tmp_path,
        "mqtt://127.0.0.1:1",
        video,
        plate={"reader": "citywatch"},
        camera={
            "source": {"kind": "file", "path": str(video), "realtime": False},
            "fps": 5,
            "width": WIDTH,
            "height": HEIGHT,
            "closeup": {"enabled": True},
        },
    )
    message = r"street\.camera\.closeup\.enabled: the 'file' source kind has no PTZ camera to zoom with"
    with pytest.raises(StreetStartError, match=message):
        StreetAgent(config, uplink=object())
    assert any("has no PTZ camera" in problem for problem in preflight(config))


class _PoleWithPtz:
    """The fixed camera's frames (the lit scene) and a PTZ that is hardware we do not have here: its
    close-up is a drawn vehicle front with a known plate, made large the way a zoom makes it."""

    live = False
    fps = 5.0

    def __init__(self, frames: int, *, fail: bool = False) -> None:
        from tests.edge.street.plate_scenes import closeup_front

        self.frames, self.fail, self.shots = frames, fail, 0
        self.front, self.image, (x, y) = closeup_front(0)
        h, w = self.front.image.shape[:2]
        self.box = (float(x), float(y), float(x + w), float(y + h))
        self._next = 0

    def open(self) -> None:
        self._next = 0

    def read(self) -> Any:
        from edge.vision.sources import Frame

        if self._next >= self.frames:
            return None
        index, self._next = self._next, self._next + 1
        return Frame(t=index / self.fps, image=scene(lit=True), index=index)

    def close(self) -> None:
        pass

    def closeup(self, box: Any, t: float, *, fill: float, max_zoom: float, frames: int) -> Any:
        from edge.street.closeup import CloseUp

        self.shots += 1
        if self.fail:
            raise TimeoutError("the PTZ did not answer")
        return CloseUp(frames=tuple(self.image.copy() for _ in range(frames)), box=self.box, zoom=8.0)


@pytest.mark.parametrize("fail", [False, True])
def test_with_a_ptz_the_plate_comes_from_its_closeup_and_a_failing_ptz_loses_no_event(
    tmp_path: Path, fail: bool
) -> None:
    from citywatch.evaluation.parking import RecordingUplink

    video = write_video(tmp_path / "street.mp4", lit_s=1.0, dark_s=0.0)  # the config needs a path only
    source = {"kind": "file", "path": str(video), "realtime": False}
    camera = {"source": source, "fps": 5, "width": WIDTH, "height": HEIGHT}
    config = agent_config(
        tmp_path,
        "mqtt://127.0.0.1:1",
        video,
        plate={"reader": "citywatch"},
        camera={**camera, "closeup": {"enabled": True}},
    )
    pole = _PoleWithPtz(frames=30, fail=fail)
    uplink = RecordingUplink()
    agent = StreetAgent(config, uplink=uplink, source=pole, face_finder=None)
    pole.open()
    while (frame := pole.read()) is not None:
        agent.process(frame)
    agent.close()
    stages = [(m.phase, m.details["stage"]) for m in uplink.events]
    assert stages == [("new", "warning"), ("update", "violation")]  # the case is whole either way
    assert pole.shots == 1  # one close-up per case and retry interval (60 s), not one per frame
    if fail:
        assert all("plate" not in m.details for m in uplink.events)
        return
    assert [m.details["plate"] for m in uplink.events] == [pole.front.text] * 2
    assert uplink.events[0].details["plate_colour"] == pole.front.colour
    # The photo and the plate crop (from the close-up) for each stage.
    assert agent.evidence_sent == 4
