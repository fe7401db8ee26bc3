"""Console fixtures: a whole gateway on a real Mosquitto with positioned culverts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.console.support import provision


@pytest.fixture
def console_gateway(tmp_path: Path, mosquitto: MosquittoBroker) -> Iterator[GatewayApp]:
    """A whole gateway (ingest, escalation, API and console) on the test broker, default routing: every
    event is dispatched to the one department at once."""
    settings = Settings(
        MQTT_URL=mosquitto.url,
        MQTT_CLIENT_ID=f"gw-console-{uuid.uuid4().hex[:8]}",
        DATA_DIR=tmp_path / "gateway",
        HTTP_PORT=0,
    )
    gateway = GatewayApp(settings).start()
    try:
        provision(gateway)
        assert gateway.ingest.wait_connected(10), "gateway did not connect to the test broker"
        yield gateway
    finally:
        gateway.stop()
