"""The ingest's fast client overrides paho internals: only on the tested paho, else paho's own client."""

from __future__ import annotations

import logging

import paho.mqtt
import paho.mqtt.client as mqtt
import pytest

from citywatch.protocol.topics import Channel
from gateway.devices import service as devices_service
from gateway.dispatch.worker import DeliveryOptions
from gateway.ingest.client import PAHO_INTERNALS, TESTED_PAHO, BufferedReadClient, make_client
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.conftest import SITE
from tests.gateway.helpers import Publisher, telemetry, topic
from tests.support.polling import wait_until

ARGS = (mqtt.CallbackAPIVersion.VERSION2,)
KWARGS = {"client_id": "test-ingest", "clean_session": False, "protocol": mqtt.MQTTv311, "manual_ack": True}


def test_the_installed_paho_is_the_tested_one(caplog: pytest.LogCaptureFixture) -> None:
    """pyproject pins paho-mqtt to TESTED_PAHO: the gateway runs the fast client, silently."""
    assert paho.mqtt.__version__.startswith(f"{TESTED_PAHO}.")
    with caplog.at_level(logging.WARNING, logger="gateway.ingest"):
        client = make_client(*ARGS, **KWARGS)
    assert isinstance(client, BufferedReadClient)
    assert caplog.records == []


@pytest.mark.parametrize("version", ["2.1.0", "2.3.0", "3.0.0"])
def test_another_paho_version_falls_back_to_the_public_client(
    version: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(paho.mqtt, "__version__", version)
    with caplog.at_level(logging.WARNING, logger="gateway.ingest"):
        client = make_client(*ARGS, **KWARGS)
    assert type(client) is mqtt.Client
    assert client._manual_ack  # the same settings: acks still wait until the batch is stored
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"paho-mqtt {version} is installed" in record.getMessage()
    assert f"paho-mqtt=={TESTED_PAHO}.*" in record.getMessage()


def test_a_missing_paho_internal_falls_back_to_the_public_client(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(mqtt.Client, "_handle_publish")  # as if paho renamed it in a patch release
    with caplog.at_level(logging.WARNING, logger="gateway.ingest"):
        client = make_client(*ARGS, **KWARGS)
    assert type(client) is mqtt.Client
    [record] = caplog.records
    assert "missing _handle_publish" in record.getMessage()


def test_every_overridden_internal_is_checked() -> None:
    overridden = {
        name for name in vars(BufferedReadClient) if name.startswith("_") and not name.startswith("__")
    }
    assert overridden <= set(PAHO_INTERNALS)


def test_the_gateway_ingests_through_the_public_client(
    gateway_settings: Settings, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paho.mqtt, "__version__", "2.3.0")
    with GatewayApp(gateway_settings, delivery=DeliveryOptions()) as gateway:
        assert type(gateway.ingest._client) is mqtt.Client
        with gateway.session_factory() as session, session.begin():
            devices_service.provision(
                session=session, device_id="culvert-1", site=SITE, device_type="culvert"
            )
        for i in range(20):
            publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", i))
        wait_until(lambda: gateway.store.count() == 20, what="20 points stored through plain paho")
