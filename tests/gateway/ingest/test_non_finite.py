"""Non-finite numbers and numeric strings are refused; what an older gateway stored still reads."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from citywatch.protocol.topics import Channel
from gateway.runner import GatewayApp
from gateway.settings import Settings
from gateway.telemetry.base import TelemetryPoint
from tests.gateway.conftest import FAST_RETRIES, SITE, running_with_devices
from tests.gateway.helpers import BASE_TS, Publisher, telemetry, topic, water_event
from tests.gateway.test_postgres import postgres_url  # noqa: F401 (the fixture, for the PostgreSQL runs)
from tests.gateway.tokens import admin_headers
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto per case

DEVICE = "culvert-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, gateway_settings: Settings) -> Iterator[GatewayApp]:
    """The gateway with its event database on SQLite, then on PostgreSQL."""
    settings = gateway_settings
    if request.param == "postgresql":
        settings = settings.model_copy(
            update={
                "DB_URL": request.getfixturevalue("postgres_url"),
                "MQTT_CLIENT_ID": f"gw-pg-{uuid.uuid4().hex[:8]}",
            }
        )
    yield from running_with_devices(GatewayApp(settings, delivery=FAST_RETRIES))


def _raw(payload: bytes, number: str, replacement: str) -> bytes:
    """Spell a number the way a device's JSON library might (Python's json would not write 1e400)."""
    assert number.encode() in payload
    return payload.replace(number.encode(), replacement.encode(), 1)


SAMPLE = telemetry(DEVICE, 0, level_cm=12.5)
FLOOD = water_event(DEVICE, "evt-nonfinite-01", 0, level_cm=12.5)
BAD = [
    # (channel, payload)
    (Channel.TELEMETRY, _raw(SAMPLE, "12.5", "NaN")),
    (Channel.TELEMETRY, _raw(SAMPLE, "12.5", "Infinity")),
    (Channel.TELEMETRY, _raw(SAMPLE, "12.5", "-Infinity")),
    (Channel.TELEMETRY, _raw(SAMPLE, "12.5", "1e400")),
    (Channel.TELEMETRY, _raw(SAMPLE, "12.5", '"1.5"')),
    (Channel.EVENT, _raw(FLOOD, "12.5", "NaN")),
    (Channel.EVENT, _raw(FLOOD, "12.5", "1e400")),
    (Channel.EVENT, _raw(FLOOD, "12.5", '"12.5"')),
]


def test_non_finite_numbers_and_numeric_strings_are_refused_as_invalid(
    gateway: GatewayApp, publisher: Publisher
) -> None:
    for channel, payload in BAD:
        publisher.publish(topic(SITE, DEVICE, channel), payload)
    wait_until(lambda: gateway.stats.snapshot()["refused_total"] == len(BAD), what=f"{len(BAD)} refusals")
    assert gateway.stats.snapshot()["refused"] == {"invalid": len(BAD)}
    assert gateway.store.count() == 0

    # The device's data and events still read, and the next good messages are stored.
    publisher.publish(topic(SITE, DEVICE, Channel.TELEMETRY), SAMPLE)
    publisher.publish(topic(SITE, DEVICE, Channel.EVENT), FLOOD)
    wait_until(lambda: gateway.store.count() == 1, what="the good sample")
    headers = admin_headers(gateway)
    events = wait_until(
        lambda: httpx.get(f"{gateway.url}/events", headers=headers).json()["items"], what="the good event"
    )
    assert events[0]["details"]["level_cm"] == 12.5
    history = httpx.get(
        f"{gateway.url}/devices/{DEVICE}/telemetry",
        headers=headers,
        params={"measurement": "water_level", "field": "level_cm", "start": "2026-06-01T00:00:00Z"},
    )
    assert history.status_code == 200 and [p["value"] for p in history.json()] == [12.5]


@pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)  # telemetry has its own store
def test_reads_survive_non_finite_values_stored_by_an_older_gateway(gateway: GatewayApp) -> None:
    """Before the contract refused them, NaN and infinities were stored (as JSON's non-standard
    spellings): a read leaves those values out and answers with the rest."""
    gateway.store.write(
        [
            TelemetryPoint(
                site=SITE,
                device_id=DEVICE,
                measurement="water_level",
                ts=BASE_TS + timedelta(seconds=i),
                fields={"level_cm": level, "distance_mm": 1800.0 + i},
                tags={},
            )
            for i, level in enumerate([10.0, float("nan"), float("inf"), float("-inf"), 11.0])
        ]
    )
    headers = admin_headers(gateway)

    def read(field: str, **params: str) -> httpx.Response:
        return httpx.get(
            f"{gateway.url}/devices/{DEVICE}/telemetry",
            headers=headers,
            params={"measurement": "water_level", "field": field, "start": "2026-06-01T00:00:00Z", **params},
        )

    levels = read("level_cm")
    assert levels.status_code == 200, levels.text
    assert [p["value"] for p in levels.json()] == [10.0, 11.0]
    distances = read("distance_mm")
    assert distances.status_code == 200
    assert [p["value"] for p in distances.json()] == [1800.0, 1801.0, 1802.0, 1803.0, 1804.0]
    for aggregation in ("mean", "max", "count", "last"):
        window = read("level_cm", window_s="3600", aggregation=aggregation)
        assert window.status_code == 200, (aggregation, window.text)
    assert json.loads(read("level_cm", window_s="3600", aggregation="count").text)[0]["value"] == 2
