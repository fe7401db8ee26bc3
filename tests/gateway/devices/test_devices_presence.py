"""Device presence on a real broker: silence and wills raise one device_offline event, traffic ends it.

The monitor runs in the gateway as in production; only its clock is moved on by the test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from citywatch.protocol.topics import Channel
from gateway.db import utcnow
from gateway.devices.monitor import PresenceOptions
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.conftest import FAST_RETRIES, SITE, running_with_devices
from tests.gateway.helpers import Publisher, state, telemetry, topic
from tests.gateway.tokens import api_client
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # waits out presence grace periods: 1-3 s a test

OFFLINE_AFTER_S = 60.0


class MovableClock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return utcnow() + self._offset

    def jump(self, seconds: float) -> None:
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta()


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def gateway(gateway_settings: Settings, clock: MovableClock) -> Iterator[GatewayApp]:
    settings = gateway_settings.model_copy(update={"DEVICE_OFFLINE_AFTER_S": OFFLINE_AFTER_S})
    app = GatewayApp(
        settings, delivery=FAST_RETRIES, presence=PresenceOptions(check_every_s=0.05, clock=clock)
    )
    yield from running_with_devices(app)


@pytest.fixture
def api(gateway: GatewayApp) -> Iterator[httpx.Client]:
    with api_client(gateway, "viewer") as client:
        yield client


def _offline_events(api: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/events", params={"type": "device_offline"}).json()["items"]
    return items


def _webhooks_for(centre: DispatchCentreSimulator, event_id: int) -> list[dict[str, Any]]:
    return [w.body for w in centre.received() if w.event.get("id") == event_id]


def _ended(api: httpx.Client, event_id: int) -> dict[str, Any] | None:
    event: dict[str, Any] = api.get(f"/events/{event_id}").json()
    return event if event["cleared_at"] is not None else None


def _passes(gateway: GatewayApp, count: int) -> None:
    start = gateway.presence.checks
    wait_until(lambda: gateway.presence.checks >= start + count, what=f"{count} presence checks")


def test_silent_device_raises_one_offline_event_until_heard_again(
    gateway: GatewayApp,
    publisher: Publisher,
    api: httpx.Client,
    clock: MovableClock,
    dispatch_centre: DispatchCentreSimulator,
) -> None:
    publisher.publish(topic(SITE, "culvert-1", Channel.STATE), state("culvert-1", status="online", session=1))
    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", 0))
    wait_until(lambda: api.get("/devices/culvert-1").json()["presence"] == "online", what="culvert-1 online")
    _passes(gateway, 3)
    assert _offline_events(api) == []  # heard from just now: nothing to raise

    clock.jump(OFFLINE_AFTER_S + 1)
    (event,) = wait_until(lambda: _offline_events(api), what="a device_offline event")
    assert event["device_id"] == "culvert-1" and event["severity"] == "warning"
    assert event["details"]["by_will"] is False and event["details"]["offline_after_s"] == OFFLINE_AFTER_S
    wait_until(lambda: _webhooks_for(dispatch_centre, event["id"]), what="the event at the dispatch centre")
    _passes(gateway, 10)  # still silent, checked again and again: raised once only
    assert [e["id"] for e in _offline_events(api)] == [event["id"]]  # culvert-2 was never seen: not offline
    pushed = len(_webhooks_for(dispatch_centre, event["id"]))
    assert pushed == 1

    clock.reset()
    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", 1))
    ended = wait_until(lambda: _ended(api, event["id"]), what="the offline event ended")
    assert ended is not None and ended["audit"][-1]["actor"] == "gateway"
    wait_until(lambda: len(_webhooks_for(dispatch_centre, event["id"])) > pushed, what="the end pushed")
    _passes(gateway, 5)
    assert len(_offline_events(api)) == 1  # heard from: no new event


def test_will_shows_offline_at_once_and_raises_after_the_grace_period(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client, clock: MovableClock
) -> None:
    publisher.publish(topic(SITE, "culvert-2", Channel.STATE), state("culvert-2", status="online", session=1))
    wait_until(lambda: api.get("/devices/culvert-2").json()["presence"] == "online", what="culvert-2 online")
    publisher.publish(
        topic(SITE, "culvert-2", Channel.STATE), state("culvert-2", status="offline", session=1)
    )
    wait_until(lambda: api.get("/devices/culvert-2").json()["presence"] == "offline", what="will applied")
    _passes(gateway, 3)
    assert _offline_events(api) == []  # a restart within the grace period raises nothing

    clock.jump(OFFLINE_AFTER_S + 1)
    (event,) = wait_until(lambda: _offline_events(api), what="a device_offline event after the will")
    assert event["device_id"] == "culvert-2" and event["details"]["by_will"] is True

    clock.reset()
    publisher.publish(
        topic(SITE, "culvert-2", Channel.STATE),
        state("culvert-2", status="online", session=2, firmware="1.1.0"),
    )
    wait_until(
        lambda: api.get(f"/events/{event['id']}").json()["cleared_at"] is not None,
        what="ended by a new birth",
    )
    device = api.get("/devices/culvert-2").json()
    assert (device["presence"], device["session"], device["firmware_version"]) == ("online", 2, "1.1.0")
