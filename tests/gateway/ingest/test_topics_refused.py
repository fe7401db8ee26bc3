"""Topics outside the contract are seen, refused by reason, counted and logged; not silently dropped."""

from __future__ import annotations

import logging

import httpx
import pytest

from citywatch.protocol.messages import CommandMessage, ConfigMessage
from citywatch.protocol.topics import Channel
from gateway.runner import GatewayApp
from tests.gateway.conftest import SITE
from tests.gateway.helpers import BASE_TS, Publisher, state, telemetry, topic
from tests.gateway.tokens import admin_headers
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto

DEVICE = "culvert-1"
OUTSIDE_THE_CONTRACT = [
    # (topic, reason)
    (f"citywatch/v2/{SITE}/{DEVICE}/telemetry", "wrong_version"),
    (f"citywatch/v2/{SITE}/{DEVICE}/measurements/water", "wrong_version"),
    (f"citywatch/v1/{SITE}/{DEVICE}/temperature", "bad_topic"),  # unknown channel
    (f"citywatch/v1/{SITE}/{DEVICE}/telemetry/water_level", "bad_topic"),  # extra level
    (f"citywatch/v1/{SITE}/{DEVICE}", "bad_topic"),  # a level short
]


def test_topics_outside_the_contract_are_refused_by_reason_and_logged(
    gateway: GatewayApp, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.ingest")
    for bad_topic, _reason in OUTSIDE_THE_CONTRACT:
        publisher.publish(bad_topic, telemetry(DEVICE, 0))
    expected = {"wrong_version": 2, "bad_topic": 3}
    wait_until(lambda: gateway.stats.snapshot()["refused"] == expected, what=f"refusals {expected}")

    health = httpx.get(f"{gateway.url}/health", headers=admin_headers(gateway)).json()
    assert health["refused"] == expected
    assert gateway.store.count() == 0
    logged = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("wrong_version" in line and "citywatch/v2/" in line for line in logged)
    assert any("bad_topic" in line for line in logged)
    # Rate-limited: one line per reason within the interval, whatever the number of refusals.
    assert len(logged) == 2

    # The device named in the topic sees what was refused, newest first.
    device = httpx.get(f"{gateway.url}/devices/{DEVICE}", headers=admin_headers(gateway)).json()
    assert [r["topic"] for r in device["refusals"]] == [t for t, _ in reversed(OUTSIDE_THE_CONTRACT)]
    assert [r["reason"] for r in device["refusals"]] == [r for _, r in reversed(OUTSIDE_THE_CONTRACT)]


def test_clearing_a_retained_topic_and_the_gateways_own_messages_are_not_refusals(
    gateway: GatewayApp, publisher: Publisher
) -> None:
    birth = topic(SITE, DEVICE, Channel.STATE)
    publisher.publish(birth, state(DEVICE, status="online", session=1), retain=True)
    wait_until(lambda: gateway.stats.snapshot()["accepted"].get("state") == 1, what="the birth")

    # Decommissioning: the device's retained topics are cleared with empty retained payloads.
    publisher.publish(birth, b"", retain=True)
    publisher.publish(f"citywatch/v2/{SITE}/{DEVICE}/state", b"", retain=True)
    # What the gateway (or an operator's tool) sends to devices is not input to the gateway.
    command = CommandMessage(cmd_id="c-1", ts=BASE_TS, command="ping")
    config = ConfigMessage(cmd_id="cfg-1", ts=BASE_TS, config_version="v2", config={})
    publisher.publish(topic(SITE, DEVICE, Channel.CMD), command.to_json())
    publisher.publish(topic(SITE, DEVICE, Channel.CONFIG), config.to_json(), retain=True)
    publisher.publish(topic(SITE, DEVICE, Channel.CONFIG), b"", retain=True)
    # A marker after them: once it is stored, everything before it was handled.
    publisher.publish(topic(SITE, DEVICE, Channel.TELEMETRY), telemetry(DEVICE, 1))
    wait_until(lambda: gateway.store.count() == 1, what="the marker sample")

    stats = gateway.stats.snapshot()
    assert stats["refused"] == {}
    assert stats["cleared"] == 3
    assert stats["accepted"] == {"state": 1, "telemetry": 1}
