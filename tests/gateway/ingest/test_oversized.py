"""The gateway refuses oversized payloads itself, whatever the broker lets through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from citywatch.broker import mosquitto as mosquitto_module
from citywatch.broker.mosquitto import MosquittoBroker, mosquitto_binary
from citywatch.protocol.topics import Channel
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.conftest import FAST_RETRIES, SITE, running_with_devices
from tests.gateway.helpers import Publisher, telemetry, topic
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto

THREE_MEGABYTES = json.dumps(
    json.loads(telemetry("culvert-1", 0)) | {"tags": {"pad": "x" * (3 << 20)}}
).encode()


@pytest.fixture
def unlimited_mosquitto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MosquittoBroker]:
    """The project's Mosquitto config without its ``max_packet_size``: a broker that takes anything."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it with apt)")
    config = mosquitto_module.BASE_CONFIG.read_text()
    assert "max_packet_size" in config
    unlimited = tmp_path / "unlimited.conf"
    unlimited.write_text(
        "\n".join(line for line in config.splitlines() if not line.startswith("max_packet_size"))
    )
    monkeypatch.setattr(mosquitto_module, "BASE_CONFIG", unlimited)
    broker = MosquittoBroker(data_dir=tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture
def gateway(tmp_path: Path, unlimited_mosquitto: MosquittoBroker) -> Iterator[GatewayApp]:
    settings = Settings(MQTT_URL=unlimited_mosquitto.url, DATA_DIR=tmp_path / "gateway", HTTP_PORT=0)
    yield from running_with_devices(GatewayApp(settings, delivery=FAST_RETRIES))


def test_a_broker_without_a_size_limit_does_not_get_past_the_gateways(
    gateway: GatewayApp, unlimited_mosquitto: MosquittoBroker
) -> None:
    samples = topic(SITE, "culvert-1", Channel.TELEMETRY)
    with Publisher(unlimited_mosquitto.url) as publisher:
        publisher.publish(samples, THREE_MEGABYTES)  # the broker takes it
        publisher.publish(samples, telemetry("culvert-1", 1))
    wait_until(lambda: gateway.store.count() == 1, what="the small sample after it")
    assert gateway.stats.snapshot()["refused"] == {"oversized": 1}
