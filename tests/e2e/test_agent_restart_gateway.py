"""A street agent restarts with a parking case open -> the gateway's event for it is cleared, not left
open forever: street agent (lit-scene detector) -> Mosquitto -> gateway (SQLite), two agent runs on the
same outbox directory (edge/events.py, the open-events journal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol import EventMessage
from edge.street.agent import StreetAgent
from gateway.auth.roles import Role
from gateway.devices import service as devices_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.edge.street.lit_detector import write_video
from tests.edge.street.test_agent import agent_config
from tests.gateway.tokens import bearer, issue_token
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # two short agent runs and a gateway: ~10 s


def test_the_gateway_clears_the_case_a_restarted_agent_had_open(
    tmp_path: Path, mosquitto: MosquittoBroker, collector: Collector
) -> None:
    settings = Settings(MQTT_URL=mosquitto.url, DATA_DIR=tmp_path / "gateway", HTTP_PORT=0)
    with GatewayApp(settings) as gateway:
        with gateway.session_factory() as session, session.begin():
            devices_service.provision(
                session=session, device_id="street-test-1", site="old-town", device_type="street"
            )
        viewer = bearer(issue_token(gateway, Role.VIEWER))

        def stored() -> list[dict[str, Any]]:
            page = httpx.get(f"{gateway.url}/events", params={"type": "illegal_parking"}, headers=viewer)
            page.raise_for_status()
            return list(page.json()["items"])

        parked = write_video(tmp_path / "parked.mp4", lit_s=6.0, dark_s=0.0)
        first = StreetAgent(agent_config(tmp_path, mosquitto.url, parked)).start()
        try:
            assert first.wait(60), "the file did not finish"
            wait_until(
                lambda: any(e["details"].get("stage") == "violation" for e in stored()),
                what="the violation at the gateway",
            )
        finally:
            first.stop()  # the car is still there: its case stays open, as after a crash
        [event] = stored()
        assert event["cleared_at"] is None

        empty = write_video(tmp_path / "empty.mp4", lit_s=0.0, dark_s=1.0)
        second = StreetAgent(agent_config(tmp_path, mosquitto.url, empty)).start()
        try:
            assert second.wait(60)
            wait_until(lambda: stored()[0]["cleared_at"] is not None, what="the case cleared")
        finally:
            second.stop()
        [event] = stored()
    assert event["details"]["stage"] == event["details"]["end_reason"] == "agent_restarted"
    [end] = {(e.event_id, e.seq): e for e in collector.of(EventMessage) if e.phase == "end"}.values()
    assert end.seq == 2 and end.details["zone"] == "kerb"
