"""The whole leg for a parked car: simulated street -> street agent (COCO detector, parking analyzer) ->
Mosquitto -> gateway: one ``illegal_parking`` event, a warning updated to a violation, with the two photos
(and the plate crop when a plate was read) served by GET /events/{id}/evidence byte for byte.

The scenario is the simulator's ``overstay`` story on a seed whose parked car the shipped COCO detector
sees in every frame (seed 32, a clear day), planned around short rules (8 s dwell, 8 s grace) and cut
after the violation, at 640x360, 5 fps, fast-forward: the agent reads the simulator as a live source
(``camera.street_simulator``) with the zones written from the truth by the one mapping
(citywatch/evaluation/street_config.py). Its frames carry a simulated morning as their wall-clock time,
and the zone's hours begin inside the clip: the dwell clock starts when the ban does.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.evaluation.street_config import analyzer_config_from_truth
from citywatch.protocol import EventMessage
from citywatch.protocol.messages import EvidenceMessage
from edge.config import StreetAgentConfig, validate_config_dict
from edge.street.agent import StreetAgent
from edge.street.config import STREET_MODEL
from edge.street.plates import LOCALISER_FILE, MODEL_DIR, RECOGNISER_FILE
from gateway.auth.roles import Role
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.street.frame_source import StreetSimulatorSource
from tests.gateway.tokens import bearer, issue_token
from tests.support.mqtt import Collector
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # renders ~40 s of street and runs the street detector on it: ~15 s

SIZE = (640, 360)
FPS = 5.0
DEVICE = "street-e2e-1"
SITE = "old-town"
SEED, DWELL_S, GRACE_S = 32, 8.0, 8.0
DURATION_S = 42.0  # the car stops ~19 s in; the ban starts at 20 s: the violation is due 36 s in
# The simulated morning: the zone's ban starts at 08:00, 20 s into the clip (after the car stopped).
START = "2025-03-03T07:59:40+08:00"
HOURS = ["08:00-09:00"]
BAN_STARTS_S = 20.0
# The project's plate reader when its model is there, else none: a plate crop is sent only for a read plate.
PLATE_READER = (
    "citywatch"
    if (MODEL_DIR / LOCALISER_FILE).is_file() and (MODEL_DIR / RECOGNISER_FILE).is_file()
    else "none"
)


def street_source() -> tuple[dict[str, Any], StreetSimulatorSource]:
    section = {
        "kind": "street_simulator",
        "seed": SEED,
        "scenario": "overstay",
        "duration_s": DURATION_S,
        "time_of_day": "day",
        "weather": "clear",
        "dwell_s": DWELL_S,
        "grace_s": GRACE_S,
        "start": START,
        "realtime": False,
    }
    camera = type("Camera", (), {"fps": FPS, "width": SIZE[0], "height": SIZE[1]})()
    return section, StreetSimulatorSource.from_config(section, camera)


def agent_config(tmp_path: Path, broker_url: str, street: dict[str, Any]) -> StreetAgentConfig:
    config = validate_config_dict(
        {
            "kind": "street",
            "device": {"id": DEVICE, "site": SITE},
            "mqtt": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
            "telemetry": {"health_interval_s": 1},
            "street": street,
        }
    )
    assert isinstance(config, StreetAgentConfig)
    return config


def test_a_simulated_overstayer_is_warned_then_recorded_at_the_gateway_with_its_photos(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    section, source = street_source()
    truth = source.truth()
    [stop] = [s for s in truth["stops"] if s["warning"]]
    assert stop["zone"] == "kerb_no_parking" and stop["violation"], stop
    street = analyzer_config_from_truth(
        truth,
        source=section,
        overrides={
            "detector": {"model": str(PROJECT_ROOT / STREET_MODEL)},
            "plate": {"reader": PLATE_READER},
        },
    ).model_dump(mode="json", exclude_none=True)
    for zone in street["zones"]:
        zone["hours"] = HOURS
        zone["stopped"] = {"window_s": 2.0}

    settings = Settings(MQTT_URL=mosquitto.url, DATA_DIR=tmp_path / "gateway", HTTP_PORT=0)
    with GatewayApp(settings) as gateway:
        with gateway.session_factory() as session, session.begin():
            devices_service.provision(session=session, device_id=DEVICE, site=SITE, device_type="street")
        agent = StreetAgent(agent_config(tmp_path, mosquitto.url, street), source=source).start()
        try:
            assert agent.wait(60), "the simulated clip did not finish"
            wait_until(
                lambda: len(_joined(collector.of(EvidenceMessage))) == agent.evidence_sent >= 2,
                what="the evidence on the broker",
            )
        finally:
            agent.stop()
        sent_bytes = _joined(collector.of(EvidenceMessage))
        kinds = sorted(
            m.kind.value for m in {m.evidence_id: m for m in collector.of(EvidenceMessage)}.values()
        )

        viewer = bearer(issue_token(gateway, Role.VIEWER))

        def stored() -> list[dict[str, Any]]:
            page = httpx.get(f"{gateway.url}/events", params={"type": "illegal_parking"}, headers=viewer)
            page.raise_for_status()
            return list(page.json()["items"])

        wait_until(
            lambda: any(e["details"].get("stage") == "violation" for e in stored()),
            what="the violation at the gateway",
        )
        [event] = stored()  # one case is one event, updated

        def evidence() -> list[dict[str, Any]]:
            listing = httpx.get(f"{gateway.url}/events/{event['id']}/evidence", headers=viewer)
            listing.raise_for_status()
            return [item for item in listing.json()["items"] if item["kind"] != "snapshot"]

        wait_until(lambda: len(evidence()) == len(kinds), what="the photos at the gateway")
        items = evidence()
        served = {
            item["evidence_id"]: httpx.get(
                item["url"].replace(settings.public_url, gateway.url), headers=viewer
            )
            for item in items
        }

    # On the wire: the case opened as a warning and was updated to a violation, one event id.
    sent = sorted({(m.event_id, m.seq): m for m in collector.of(EventMessage)}.values(), key=lambda m: m.seq)
    assert len({m.event_id for m in sent}) == 1
    assert [(m.phase, m.severity, m.details["stage"]) for m in sent[:2]] == [
        ("new", "notice", "warning"),
        ("update", "warning", "violation"),
    ]
    warning, violation = sent[:2]
    # The zone's ban began at 08:00 (20 s in, the car already there): the dwell clock started then, and
    # every time is the simulated morning's (the frames' own wall-clock time), not the machine's.
    ban = datetime.fromisoformat(START) + timedelta(seconds=BAN_STARTS_S)
    assert warning.started_at == pytest.approx(ban, abs=timedelta(seconds=0.5))
    assert warning.ts - warning.started_at == pytest.approx(
        timedelta(seconds=DWELL_S), abs=timedelta(seconds=0.5)
    )
    assert violation.ts - warning.ts == pytest.approx(timedelta(seconds=GRACE_S), abs=timedelta(seconds=0.5))

    # At the gateway: that one event, in its violation state.
    assert event["device_id"] == DEVICE and event["type"] == "illegal_parking"
    assert event["severity"] == "warning"
    details = event["details"]
    assert details["stage"] == "violation" and details["zone"] == "kerb_no_parking"
    # The class is the detector's: COCO takes this rendered car for a truck about as often as for a car.
    assert stop["class"] == "car" and details["vehicle_class"] in ("car", "truck")
    x1, y1, x2, y2 = details["box"]
    sx1, sy1, sx2, sy2 = stop["box_px"]
    overlap = max(0, min(x2, sx2) - max(x1, sx1)) * max(0, min(y2, sy2) - max(y1, sy1))
    union = (x2 - x1) * (y2 - y1) + (sx2 - sx1) * (sy2 - sy1) - overlap
    assert overlap / union > 0.5, (details["box"], stop["box_px"])

    # The two photos (and the plate crop when a plate was read), byte for byte what the device sent.
    assert [k for k in kinds if k != "plate_crop"] == ["photo", "photo"]
    assert ("plate_crop" in kinds) == ("plate" in details)
    assert sorted(item["kind"] for item in items) == kinds
    assert sorted(item["caption"] for item in items if item["kind"] == "photo") == [
        "violation kerb_no_parking",
        "warning kerb_no_parking",
    ]
    for item in items:
        response = served[item["evidence_id"]]
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content == sent_bytes[item["evidence_id"]]
    for item in items:
        if item["kind"] == "photo":
            photo = cv2.imdecode(
                np.frombuffer(served[item["evidence_id"]].content, np.uint8), cv2.IMREAD_COLOR
            )
            assert photo is not None and photo.shape[:2] == (SIZE[1], SIZE[0])


def _joined(parts: list[EvidenceMessage]) -> dict[str, bytes]:
    """The complete evidence items on the broker, by id (QoS 1 may repeat a part)."""
    chunks: dict[str, dict[int, EvidenceMessage]] = {}
    for part in parts:
        chunks.setdefault(part.evidence_id, {})[part.part] = part
    return {
        evidence_id: b"".join(base64.b64decode(by_part[i].data_b64) for i in range(len(by_part)))
        for evidence_id, by_part in chunks.items()
        if len(by_part) == next(iter(by_part.values())).parts
    }
