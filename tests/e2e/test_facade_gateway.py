"""The whole leg for a throw: simulated facade video -> facade agent -> Mosquitto -> gateway -> GET /events,
then the evidence: the clip and the still the device made, served by the gateway byte for byte.

The scenario is seeded and forced: one object dropped from a chosen window early in a clear day with no
distractors, at 640x360 for speed. The agent's calibration is what an installer would measure on this
building (four facade points, the window columns, where the camera stands; ``facade_section``, shared
with the facade benchmark), so the floor the gateway stores can be checked against the ground truth.
The video plays in real time (as a camera delivers it), so the time from the impact to the clip being
complete at the gateway is the real one: the post window (``post_s``), the encoding and the transport.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from lxml import etree

from citywatch.bench.facade import facade_section
from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol import EventMessage
from citywatch.protocol.messages import EvidenceMessage
from edge.config import FacadeAgentConfig, validate_config_dict
from edge.facade.agent import FacadeAgent
from gateway.auth.roles import Role
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.facade import Scenario, make_scenario, write_scenario_video
from tests.gateway.tokens import bearer, issue_token
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # renders a clip, plays it in real time to a gateway on Mosquitto: ~15 s

log = logging.getLogger(__name__)

SIZE = (640, 360)
FPS = 25.0
DEVICE = "facade-e2e-1"
SITE = "tower-a"
# Seed 12: a 23-floor tower seen from 18 m; floor 6, column 2 is in view. The throw starts ~3.9 s in.
SEED, FLOOR, COLUMN = 12, 6, 2
PLANNED_S, DURATION_S = 7.0, 9.5  # the impact ~5.7 s in, then the clip's 3 s after it
CLIP_AT_GATEWAY_S = 30.0  # the issue's target: the clip follows the event within 30 s of the impact
ROUTING = """
version: 1
departments:
  - id: police_station
    name: Police station
rules:
  - id: object-thrown
    event_types: [object_thrown]
    department: police_station
    sla: {critical: 15m, warning: 1h, notice: 4h}
default_sla: {critical: 1h, warning: 4h, notice: 1d, info: 3d}
"""
CAP = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}


def one_throw() -> Scenario:
    planned = make_scenario(
        SEED,
        duration_s=PLANNED_S,
        throws=1,
        time_of_day="day",
        weather="clear",
        distractor_rate=0.0,
        windows=[(FLOOR, COLUMN)],
    )
    # Played longer than planned (the planner spreads throws over the duration): the clip's post window.
    return dataclasses.replace(planned, duration_s=DURATION_S)


def agent_config(tmp_path: Path, broker_url: str, facade: dict[str, Any]) -> FacadeAgentConfig:
    config = validate_config_dict(
        {
            "kind": "facade",
            "device": {"id": DEVICE, "site": SITE},
            "mqtt": {"url": broker_url, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
            "telemetry": {"health_interval_s": 1},
            "facade": facade,
        }
    )
    assert isinstance(config, FacadeAgentConfig)
    return config


def test_a_simulated_throw_reaches_the_gateway_as_one_object_thrown_event(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    scenario = one_throw()
    [throw] = scenario.throws
    assert (throw.floor, throw.column) == (FLOOR, COLUMN)
    video = tmp_path / "facade.avi"  # MJPEG: decoded frame by frame like a camera stream
    write_scenario_video(scenario, video, fps=FPS, size=SIZE)

    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    settings = Settings(
        MQTT_URL=mosquitto.url, DATA_DIR=tmp_path / "gateway", HTTP_PORT=0, ROUTING_FILE=routing
    )
    with GatewayApp(settings) as gateway:
        with gateway.session_factory() as session, session.begin():
            devices_service.provision(session=session, device_id=DEVICE, site=SITE, device_type="facade")
        facade = facade_section(scenario, SIZE, FPS, video)
        facade["camera"]["source"]["realtime"] = True  # paced like a camera: wall-clock latencies are real
        agent = FacadeAgent(agent_config(tmp_path, mosquitto.url, facade)).start()
        try:
            assert agent.wait(60), "the video did not finish"
            wait_until(
                lambda: any(e.phase == "end" for e in collector.of(EventMessage)),
                what="the throw's event end",
            )
            wait_until(
                lambda: len(agent.evidence_sent) == 1, timeout_s=CLIP_AT_GATEWAY_S, what="the evidence"
            )
            wait_until(
                lambda: {m.kind.value for m in collector.of(EvidenceMessage)} == {"clip", "still"},
                what="the evidence on the broker",
            )
        finally:
            agent.stop()

        viewer = bearer(issue_token(gateway, Role.VIEWER))

        def stored() -> list[dict[str, Any]]:
            page = httpx.get(f"{gateway.url}/events", params={"type": "object_thrown"}, headers=viewer)
            page.raise_for_status()
            return list(page.json()["items"])

        wait_until(lambda: any(e["cleared_at"] for e in stored()), what="the ended event at the gateway")
        [event] = stored()  # one throw is one event

        def evidence() -> dict[str, Any]:
            listing = httpx.get(f"{gateway.url}/events/{event['id']}/evidence", headers=viewer)
            listing.raise_for_status()
            return {item["kind"]: item for item in listing.json()["items"]}

        wait_until(
            lambda: {"clip", "still"} <= evidence().keys(), what="the clip and the still at the gateway"
        )
        items = evidence()
        served = {
            kind: httpx.get(items[kind]["url"].replace(settings.public_url, gateway.url), headers=viewer)
            for kind in ("clip", "still")
        }
        cap = httpx.get(f"{gateway.url}/events/{event['id']}/cap", headers=viewer)

    assert event["device_id"] == DEVICE and event["site"] == SITE
    assert event["severity"] == "critical" and event["department"] == "police_station"
    details = event["details"]
    assert abs(details["floor_estimate"] - throw.floor) <= 1, (details, throw.floor)
    assert 0.0 < details["floor_confidence"] <= 1.0
    assert details["origin_column"] == throw.column
    # The fit measured the fall it saw: released about where the floor is, down to the ground.
    floor_base_m = (throw.floor - 1) * scenario.building.floor_height_m
    assert details["release_height_m"] == pytest.approx(
        floor_base_m, abs=2 * scenario.building.floor_height_m
    )
    assert details["impact"] == "ground"
    assert details["fall_duration_s"] == pytest.approx(throw.end_s - throw.start_s, abs=0.5)
    assert details["object_size_m"] > 0
    # The event's own times are the release and the impact, as the device reported them.
    released = datetime.fromisoformat(event["started_at"])
    landed = datetime.fromisoformat(event["last_device_ts"])
    assert (landed - released).total_seconds() == pytest.approx(details["fall_duration_s"], abs=0.1)

    # The evidence the gateway serves is byte for byte what the device made.
    [made] = agent.evidence_sent
    assert made.clip is not None and made.still is not None
    for kind, data, media in (
        ("clip", made.clip.data, "video/mp4"),
        ("still", made.still.jpeg, "image/jpeg"),
    ):
        assert served[kind].status_code == 200, served[kind].text
        assert served[kind].headers["content-type"] == media
        assert served[kind].content == data, f"the gateway's {kind} differs from the device's"
    clip = tmp_path / "served.mp4"
    clip.write_bytes(served["clip"].content)
    capture = cv2.VideoCapture(str(clip))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == len(made.clip.frame_times) > 0
    # The clip starts pre_s (3 s) before the object was first seen and ends post_s (3 s) after the impact.
    [detection] = agent.throws
    assert made.clip.start_t == pytest.approx(detection.first_seen_t - 3.0, abs=0.15)
    assert made.clip.end_t == pytest.approx(detection.fit.impact_t + 3.0, abs=0.15)
    # Impact (the event's device time) to the clip complete at the gateway: the issue's target is 30 s.
    clip_after_impact_s = (datetime.fromisoformat(items["clip"]["received_at"]) - landed).total_seconds()
    log.warning("clip complete at the gateway %.1f s after the impact", clip_after_impact_s)
    print(f"clip complete at the gateway {clip_after_impact_s:.1f} s after the impact")
    assert 3.0 <= clip_after_impact_s <= CLIP_AT_GATEWAY_S

    assert cap.status_code == 200
    alert = etree.fromstring(cap.content)
    assert alert.findtext("cap:info/cap:eventCode/cap:value", namespaces=CAP) == "object_thrown"
    assert alert.findtext("cap:info/cap:event", namespaces=CAP) == "Object thrown from height"
    description = alert.findtext("cap:info/cap:description", namespaces=CAP) or ""
    assert f"floor {details['floor_estimate']}" in description
    # The CAP alert (the Update the completed evidence brought) links the clip and the still, with the
    # SHA-1 digest CAP asks for, of the very bytes the device made.
    resources = {
        element.findtext("cap:mimeType", namespaces=CAP): element
        for element in alert.findall("cap:info/cap:resource", namespaces=CAP)
    }
    assert {"video/mp4", "image/jpeg"} <= resources.keys()
    clip_resource = resources["video/mp4"]
    assert clip_resource.findtext("cap:uri", namespaces=CAP) == items["clip"]["url"]
    assert clip_resource.findtext("cap:digest", namespaces=CAP) == hashlib.sha1(made.clip.data).hexdigest()
