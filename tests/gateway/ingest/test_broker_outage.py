"""The broker going away: the gateway reports it, reconnects, and its persistent session loses nothing."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.topics import Channel
from gateway.devices import service as devices_service
from gateway.dispatch.worker import DeliveryOptions
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.conftest import SITE
from tests.gateway.helpers import Publisher, telemetry, topic
from tests.gateway.tokens import admin_headers
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # restarts Mosquitto, locks the database: 1-3 s a test


def test_broker_restart_is_reported_and_survived(gateway: GatewayApp, mosquitto: MosquittoBroker) -> None:
    mosquitto.stop()
    wait_until(lambda: not gateway.ingest.connected, what="the gateway noticing the broker is gone")
    health = httpx.get(f"{gateway.url}/health", headers=admin_headers(gateway))
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["mqtt"]["connected"] is False

    mosquitto.start()
    wait_until(lambda: gateway.ingest.connected, what="the gateway reconnecting")
    publisher = Publisher(mosquitto.url)
    try:
        for i in range(20):
            publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", i))
    finally:
        publisher.close()
    wait_until(lambda: gateway.store.count() == 20, what="the stream after the reconnect stored")
    assert httpx.get(f"{gateway.url}/health", headers=admin_headers(gateway)).json()["status"] == "ok"


def test_messages_queued_for_the_gateway_survive_a_broker_restart(
    gateway_settings: Settings, mosquitto: MosquittoBroker
) -> None:
    # Started once: the broker registers the gateway's persistent session.
    with (
        GatewayApp(gateway_settings, delivery=DeliveryOptions()) as gateway,
        gateway.session_factory() as session,
        session.begin(),
    ):
        devices_service.provision(session=session, device_id="culvert-1", site=SITE, device_type="culvert")
    publisher = Publisher(mosquitto.url)
    try:
        for i in range(300):  # the gateway is away: the broker queues these for its session
            publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", i))
    finally:
        publisher.close()
    mosquitto.stop()  # graceful: the queue is saved to the persistence file
    mosquitto.start()
    with GatewayApp(gateway_settings, delivery=DeliveryOptions()) as gateway:
        wait_until(lambda: gateway.store.count() == 300, what="every queued point stored")
        assert gateway.stats.snapshot()["refused"] == {}


def test_a_locked_database_delays_storage_without_losing_anything(
    gateway_settings: Settings, publisher: Publisher
) -> None:
    settings = gateway_settings.model_copy(update={"SQLITE_BUSY_TIMEOUT_S": 0.2})
    with GatewayApp(settings, delivery=DeliveryOptions()) as gateway:
        with gateway.session_factory() as session, session.begin():
            devices_service.provision(
                session=session, device_id="culvert-1", site=SITE, device_type="culvert"
            )
        blocker = sqlite3.connect(settings.telemetry_db_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # e.g. a backup or a stuck admin shell holds the lock
        try:
            for i in range(10):
                publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", i))
            wait_until(lambda: gateway.stats.snapshot()["retries"] >= 2, what="failed attempts being retried")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        wait_until(lambda: gateway.store.count() == 10, what="everything stored once the lock is gone")
        assert gateway.stats.snapshot()["refused"] == {}
    # Each message was acked once stored: the same session has nothing left to redeliver after a restart.
    with GatewayApp(settings, delivery=DeliveryOptions()) as gateway:
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", 10))
        wait_until(lambda: gateway.store.count() == 11, what="the next point")
        assert gateway.stats.snapshot()["received"] == 1
