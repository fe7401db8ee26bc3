"""The whole leg for a throw: simulated facade video -> facade agent -> Mosquitto -> gateway -> GET /events.

The scenario is seeded and forced: one object dropped from a chosen window early in a clear day with no
distractors, at 640x360 for speed. The agent's calibration is what an installer would measure on this
building (four facade points, the window columns, where the camera stands; ``facade_section``, shared
with the facade benchmark), so the floor the gateway stores can be checked against the ground truth.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from citywatch.bench.facade import facade_section
from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol import EventMessage
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

pytestmark = pytest.mark.slow  # renders a clip, runs a gateway on Mosquitto: ~5 s

SIZE = (640, 360)
FPS = 25.0
DEVICE = "facade-e2e-1"
SITE = "tower-a"
# Seed 12: a 23-floor tower seen from 18 m; floor 6, column 2 is in view. The throw starts ~3.9 s in.
SEED, FLOOR, COLUMN = 12, 6, 2
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
    return make_scenario(
        SEED,
        duration_s=7.0,
        throws=1,
        time_of_day="day",
        weather="clear",
        distractor_rate=0.0,
        windows=[(FLOOR, COLUMN)],
    )


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
        agent = FacadeAgent(
            agent_config(
                tmp_path,
                mosquitto.url,
                facade_section(scenario, SIZE, FPS, video),
            )
        ).start()
        try:
            assert agent.wait(60), "the video did not finish"
            wait_until(
                lambda: any(e.phase == "end" for e in collector.of(EventMessage)),
                what="the throw's event end",
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

    assert cap.status_code == 200
    alert = etree.fromstring(cap.content)
    assert alert.findtext("cap:info/cap:eventCode/cap:value", namespaces=CAP) == "object_thrown"
    assert alert.findtext("cap:info/cap:event", namespaces=CAP) == "Object thrown from height"
    description = alert.findtext("cap:info/cap:description", namespaces=CAP) or ""
    assert f"floor {details['floor_estimate']}" in description
