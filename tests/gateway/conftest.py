"""Gateway fixtures: a dispatch-centre simulator and an in-process gateway on a real Mosquitto."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from gateway.devices import service as devices_service
from gateway.dispatch.worker import DeliveryOptions
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator, new_secret
from tests.gateway.helpers import Publisher

SITE = "riverside"
DEVICES = ("culvert-1", "culvert-2")
FAST_RETRIES = DeliveryOptions(base_delay_s=0.05, max_delay_s=0.3, timeout_s=5.0)


@pytest.fixture
def webhook_secret() -> str:
    return new_secret()


@pytest.fixture
def dispatch_centre(webhook_secret: str) -> Iterator[DispatchCentreSimulator]:
    with DispatchCentreSimulator(secret=webhook_secret) as sim:
        yield sim


@pytest.fixture
def gateway_settings(
    tmp_path: Path, mosquitto: MosquittoBroker, dispatch_centre: DispatchCentreSimulator, webhook_secret: str
) -> Settings:
    return Settings(
        MQTT_URL=mosquitto.url,
        MQTT_CLIENT_ID=f"gw-test-{uuid.uuid4().hex[:8]}",
        DATA_DIR=tmp_path / "gateway",
        HTTP_PORT=0,
        DISPATCH_URL=dispatch_centre.url,
        DISPATCH_SECRET=webhook_secret,
    )


@pytest.fixture
def gateway(gateway_settings: Settings) -> Iterator[GatewayApp]:
    app = GatewayApp(gateway_settings, delivery=FAST_RETRIES)
    yield from running_with_devices(app)


def running_with_devices(app: GatewayApp) -> Iterator[GatewayApp]:
    """Start ``app``, provision the test culverts, wait for the broker; stop it afterwards."""
    app.start()
    try:
        with app.session_factory() as session, session.begin():
            for device_id in DEVICES:
                devices_service.provision(
                    session=session, device_id=device_id, site=SITE, device_type="culvert"
                )
        assert app.ingest.wait_connected(10), "gateway did not connect to the test broker"
        yield app
    finally:
        app.stop()


running = contextlib.contextmanager(running_with_devices)  # the same, as a ``with`` block


@pytest.fixture
def publisher(mosquitto: MosquittoBroker) -> Iterator[Publisher]:
    pub = Publisher(mosquitto.url)
    yield pub
    pub.close()
