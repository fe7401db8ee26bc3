"""A broker that comes back without the gateway's persistent session is reported loudly."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.topics import Channel
from gateway.dispatch.worker import DeliveryOptions
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.conftest import SITE, running_with_devices
from tests.gateway.helpers import Publisher, telemetry, topic
from tests.gateway.tokens import api_client
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # broker restarts and gateway reconnects: seconds each

LOST = "has no session"


def reconnected(gateway: GatewayApp, broker: MosquittoBroker, *, kill: bool) -> None:
    broker.stop(kill=kill)
    wait_until(lambda: not gateway.ingest.connected, what="the gateway notices the broker is gone")
    broker.start()
    assert gateway.ingest.wait_connected(15), "the gateway did not reconnect"


def test_a_broker_killed_before_saving_forgot_the_session_and_says_so(
    gateway: GatewayApp, mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.ingest")
    assert gateway.ingest_status()["session"] == {
        "present": False,  # a new gateway on a new broker: nothing to miss
        "lost": 0,
        "lost_at": None,
        "degraded": False,
    }
    reconnected(gateway, mosquitto, kill=True)  # SIGKILL long before autosave_interval: nothing saved
    session = gateway.ingest_status()["session"]
    assert session["present"] is False and session["lost"] == 1 and session["degraded"] is True
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and LOST in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "devices that wait for receipts send them again" in warnings[0].getMessage()
    with api_client(gateway, "viewer") as api:
        health = api.get("/health").json()
    assert health["status"] == "degraded" and health["mqtt"]["session"]["lost"] == 1

    reconnected(gateway, mosquitto, kill=False)  # a clean stop saves the (new) session
    session = gateway.ingest_status()["session"]
    assert session["present"] is True and session["lost"] == 1
    assert len([r for r in caplog.records if LOST in r.getMessage()]) == 1
    watch = gateway.ingest.session_watch
    assert watch.lost_at is not None
    watch.lost_at -= timedelta(hours=1)  # as if long ago: /health is ok again
    with api_client(gateway, "viewer") as api:
        assert api.get("/health").json()["status"] == "ok"


def test_first_connect_without_a_session_is_reported_when_the_database_knows_devices(
    gateway_settings: Settings,
    mosquitto: MosquittoBroker,
    publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.ingest")
    quick = DeliveryOptions(base_delay_s=0.05, max_delay_s=0.3, timeout_s=5.0)
    first = running_with_devices(GatewayApp(gateway_settings, delivery=quick))
    gateway = next(first)
    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", 1))
    wait_until(lambda: gateway.store.count() == 1, what="a sample stored")
    next(first, None)  # stop: presence (last_seen) is written on the way out
    assert LOST not in caplog.text

    # The same database, but the broker has no session for this client id (as after a crash that
    # lost it while the gateway was down, or a changed CITYWATCH_MQTT_CLIENT_ID).
    renamed = gateway_settings.model_copy(update={"MQTT_CLIENT_ID": f"gw-test-{uuid.uuid4().hex[:8]}"})
    second = running_with_devices(GatewayApp(renamed, delivery=quick))
    gateway = next(second)
    try:
        assert gateway.ingest_status()["session"]["lost"] == 1
        assert LOST in caplog.text
    finally:
        next(second, None)
