"""Installers see a device's last refused messages in GET /devices/{id}: reason, detail, topic, time."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
import pytest

from citywatch.protocol.topics import Channel
from gateway.ingest.refusals import REFUSALS_PER_DEVICE
from gateway.runner import GatewayApp
from tests.gateway.conftest import SITE
from tests.gateway.helpers import Publisher, telemetry, topic
from tests.gateway.tokens import admin_headers
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto

DEVICE = "culvert-1"
PLANTED = "hunter2-wifi-password"


def _sample_with(**changes: object) -> bytes:
    return json.dumps(json.loads(telemetry(DEVICE, 0)) | changes).encode()


def test_a_devices_last_refusals_are_listed_newest_first_bounded_and_without_payloads(
    gateway: GatewayApp, publisher: Publisher
) -> None:
    samples = topic(SITE, DEVICE, Channel.TELEMETRY)
    publisher.publish(topic("harbour", DEVICE, Channel.TELEMETRY), telemetry(DEVICE, 0))  # wrong_site
    # Refused by the writer, after the registry look-up; the others are refused as they arrive.
    wait_until(lambda: gateway.stats.snapshot()["refused_total"] == 1, what="the wrong site refused")
    publisher.publish(samples, _sample_with(wifi_password=PLANTED))  # unknown field
    publisher.publish(samples, _sample_with(fields={"level_cm": PLANTED}))  # a string, not a number
    publisher.publish(samples, _sample_with(fields={PLANTED.replace("-", "_"): 1.0, "Bad Key!": 2.0}))
    publisher.publish(samples, _sample_with(v=PLANTED))
    publisher.publish(samples, PLANTED.encode())  # not JSON
    headers = admin_headers(gateway)
    wait_until(lambda: gateway.stats.snapshot()["refused_total"] == 6, what="six refusals")

    device = httpx.get(f"{gateway.url}/devices/{DEVICE}", headers=headers)
    assert device.status_code == 200
    refusals = device.json()["refusals"]
    assert [r["reason"] for r in refusals] == [
        "malformed_json",
        "wrong_version",
        "invalid",
        "invalid",
        "invalid",
        "wrong_site",
    ]
    assert set(refusals[0]) == {"reason", "detail", "topic", "at"}
    assert refusals[-1]["topic"] == f"citywatch/v1/harbour/{DEVICE}/telemetry"
    assert "registered at site 'riverside'" in refusals[-1]["detail"]
    assert "wifi_password" in refusals[4]["detail"]  # names the field...
    assert PLANTED not in device.text  # ...never what was sent in it
    times = [datetime.fromisoformat(r["at"]) for r in refusals]
    assert times == sorted(times, reverse=True)

    # The list is for one device; the list of all devices stays lean.
    listed = httpx.get(f"{gateway.url}/devices", headers=headers).json()
    assert all("refusals" not in d for d in listed)
    assert httpx.get(f"{gateway.url}/devices/culvert-2", headers=headers).json()["refusals"] == []

    # Bounded: the newest ten.
    for i in range(REFUSALS_PER_DEVICE):
        publisher.publish(samples, _sample_with(seq=i))
    wait_until(lambda: gateway.stats.snapshot()["refused_total"] == 6 + REFUSALS_PER_DEVICE, what="more")
    refusals = httpx.get(f"{gateway.url}/devices/{DEVICE}", headers=headers).json()["refusals"]
    assert len(refusals) == REFUSALS_PER_DEVICE and {r["reason"] for r in refusals} == {"invalid"}


def test_refusals_from_unknown_devices_are_counted_not_listed(
    gateway: GatewayApp, publisher: Publisher
) -> None:
    publisher.publish(topic(SITE, "ghost-7", Channel.TELEMETRY), telemetry("ghost-7", 0))
    wait_until(lambda: gateway.stats.snapshot()["refused"] == {"unknown_device": 1}, what="the refusal")
    assert httpx.get(f"{gateway.url}/devices/ghost-7", headers=admin_headers(gateway)).status_code == 404
