"""Device clocks: a timestamp too far ahead is refused (reason ``clock``) and /health names the device."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from citywatch.protocol.messages import StateMessage, TelemetryMessage
from citywatch.protocol.topics import Channel
from gateway.runner import GatewayApp
from gateway.settings import Settings
from tests.gateway.conftest import FAST_RETRIES, SITE, running_with_devices
from tests.gateway.helpers import Publisher, topic, water_event
from tests.gateway.tokens import admin_headers
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto

DEVICE = "culvert-1"
SKEW_S = 60.0


@pytest.fixture
def gateway(gateway_settings: Settings) -> Iterator[GatewayApp]:
    settings = gateway_settings.model_copy(update={"CLOCK_SKEW_S": SKEW_S})
    yield from running_with_devices(GatewayApp(settings, delivery=FAST_RETRIES))


def _sample(ts: datetime, device_id: str = DEVICE) -> bytes:
    return TelemetryMessage(
        device_id=device_id, ts=ts, measurement="water_level", fields={"level_cm": 5.0}
    ).to_json()


def _event_at(ts: datetime) -> bytes:
    event = json.loads(water_event(DEVICE, "evt-clock-0001", 0))
    return json.dumps(event | {"ts": ts.isoformat(), "started_at": ts.isoformat()}).encode()


def _health(gateway: GatewayApp) -> dict[str, object]:
    answer: dict[str, object] = httpx.get(f"{gateway.url}/health", headers=admin_headers(gateway)).json()
    return answer


def test_a_clock_ahead_is_refused_and_named_in_health_until_it_is_right(
    gateway: GatewayApp, publisher: Publisher
) -> None:
    now = datetime.now(UTC)
    samples = topic(SITE, DEVICE, Channel.TELEMETRY)
    publisher.publish(samples, _sample(now + timedelta(hours=1)))
    publisher.publish(samples, _sample(datetime(2099, 1, 1, tzinfo=UTC)))
    publisher.publish(topic(SITE, DEVICE, Channel.EVENT), _event_at(now + timedelta(minutes=5)))
    publisher.publish(topic(SITE, "ghost-1", Channel.TELEMETRY), _sample(now + timedelta(hours=1), "ghost-1"))
    wait_until(lambda: gateway.stats.snapshot()["refused"].get("clock") == 4, what="4 clock refusals")
    assert gateway.stats.snapshot()["refused"] == {"clock": 4}
    assert gateway.store.count() == 0
    assert httpx.get(f"{gateway.url}/events", headers=admin_headers(gateway)).json()["total"] == 0

    clocks = _health(gateway)["device_clocks"]
    assert isinstance(clocks, dict) and clocks["max_ahead_s"] == SKEW_S
    (off,) = clocks["off"]  # ghost-1 is not registered: counted, not listed
    assert off["device_id"] == DEVICE and 200 < off["offset_s"] <= 300  # the event came last
    assert off["detail"].startswith("ts ") and "ahead of the gateway's clock" in off["detail"]

    # Old times are fine: the device's outbox replays what it measured during an outage...
    publisher.publish(samples, _sample(now - timedelta(days=3)))
    wait_until(lambda: gateway.store.count() == 1, what="the replayed sample")
    assert len(_health(gateway)["device_clocks"]["off"]) == 1  # type: ignore[index]  # ...but prove nothing
    # A current time shows the clock is right again.
    publisher.publish(samples, _sample(datetime.now(UTC)))
    wait_until(lambda: gateway.store.count() == 2, what="the current sample")
    assert _health(gateway)["device_clocks"]["off"] == []  # type: ignore[index]


def test_a_will_set_long_ago_is_accepted(gateway: GatewayApp, publisher: Publisher) -> None:
    """The will carries the time of its connection, which may have lasted months."""
    connected = datetime.now(UTC) - timedelta(days=120)
    state_topic = topic(SITE, DEVICE, Channel.STATE)
    for status in ("online", "offline"):
        message = StateMessage(
            device_id=DEVICE,
            ts=connected,
            status=status,  # type: ignore[arg-type]
            session=4,
            device_type="culvert",  # type: ignore[arg-type]
            firmware_version="1.0",
            config_version="c1",
        )
        publisher.publish(state_topic, message.to_json())
    wait_until(lambda: gateway.stats.snapshot()["accepted"].get("state") == 2, what="birth and will")
    assert gateway.stats.snapshot()["refused"] == {}
