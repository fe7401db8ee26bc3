"""The whole leg: simulated ride -> elevator agent -> Mosquitto -> gateway -> GET /events/{id}/snapshot."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol import SnapshotMessage
from edge.config import ElevatorAgentConfig, validate_config_dict
from edge.vision.actuators import LoggingActuators
from edge.vision.agent import ElevatorAgent
from gateway.auth.roles import Role
from gateway.devices import service as devices_service
from gateway.events.views import snapshots
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.edge.vision.elevator_helpers import device_config, ebike_everywhere_model, unique
from tests.gateway.tokens import bearer, issue_token
from tests.support.mqtt import Collector
from tests.support.polling import wait_until


@pytest.mark.slow
def test_ride_event_reaches_the_gateway_with_its_snapshot(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    settings = Settings(MQTT_URL=mosquitto.url, DATA_DIR=tmp_path / "gateway", HTTP_PORT=0)
    with GatewayApp(settings) as gateway:
        with gateway.session_factory() as session, session.begin():
            devices_service.provision(
                session=session, device_id="lift-test-1", site="tower-a", device_type="elevator"
            )
        config = validate_config_dict(
            device_config(tmp_path, mosquitto, ebike_everywhere_model(tmp_path / "m.onnx"))
        )
        assert isinstance(config, ElevatorAgentConfig)
        agent = ElevatorAgent(config, actuators=LoggingActuators()).start()
        try:
            wait_until(lambda: collector.of(SnapshotMessage), what="the snapshot on the broker")
        finally:
            agent.stop()
        [published] = unique(collector.of(SnapshotMessage))  # QoS 1 may repeat one

        viewer = bearer(issue_token(gateway, Role.VIEWER))

        def stored_event() -> dict | None:
            page = httpx.get(
                f"{gateway.url}/events", params={"type": "ebike_in_elevator"}, headers=viewer
            ).json()
            return page["items"][0] if page["items"] else None

        wait_until(lambda: stored_event() is not None, what="the event at the gateway")
        event = stored_event()
        assert event is not None and event["snapshot_id"] == published.snapshot_id

        url = f"{gateway.url}/events/{event['id']}/snapshot"
        wait_until(lambda: httpx.get(url, headers=viewer).status_code == 200, what="the JPEG")
        response = httpx.get(url, headers=viewer)
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content == base64.b64decode(published.data_b64)

        assert httpx.get(url).status_code == 401  # evidence needs a token like every other route
        missing = httpx.get(f"{gateway.url}/events/999999/snapshot", headers=viewer)
        assert missing.status_code == 404 and "does not exist" in missing.json()["detail"]


def test_event_without_its_snapshot_file_is_a_clear_404(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    settings = Settings(MQTT_URL=mosquitto.url, DATA_DIR=tmp_path / "gateway", HTTP_PORT=0)
    with GatewayApp(settings) as gateway:
        viewer = bearer(issue_token(gateway, Role.VIEWER))
        assert httpx.get(f"{gateway.url}/events/1/snapshot", headers=viewer).status_code == 404
        with pytest.raises(ValueError, match="not a valid id"):
            snapshots.snapshot_path(settings, "../../etc/passwd")
