"""Device presence on a real broker: silence and wills raise one device_offline event, traffic ends it.

The monitor runs in the gateway as in production; only its clock is moved on by the test.
"""

from __future__ import annotations

import json
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


def _device(api: httpx.Client, device_id: str) -> dict[str, Any]:
    device: dict[str, Any] = api.get(f"/devices/{device_id}").json()
    return device


def _audit(api: httpx.Client, device_id: str) -> list[dict[str, Any]]:
    trail: list[dict[str, Any]] = api.get(f"/devices/{device_id}/audit").json()
    return trail


def test_a_device_whose_session_went_back_after_it_was_offline_is_taken_as_reset(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client
) -> None:
    state_topic = topic(SITE, "culvert-1", Channel.STATE)
    publisher.publish(state_topic, state("culvert-1", status="online", session=17))
    publisher.publish(state_topic, state("culvert-1", status="offline", session=17))
    wait_until(lambda: _device(api, "culvert-1")["presence"] == "offline", what="offline after the will")
    # Factory reset (or a replacement unit): the counter starts again at 1.
    publisher.publish(state_topic, state("culvert-1", status="online", session=1, firmware="2.0.0"))
    device = wait_until(
        lambda: (d := _device(api, "culvert-1"))["presence"] == "online" and d, what="online after the reset"
    )
    assert (device["session"], device["firmware_version"]) == (1, "2.0.0")
    (reset,) = [entry for entry in _audit(api, "culvert-1") if entry["action"] == "session_reset"]
    assert reset["actor"] == "culvert-1" and "17" in reset["note"] and "1" in reset["note"]
    # From now on it counts from the new number: its own will takes it offline, an older will does not.
    publisher.publish(state_topic, state("culvert-1", status="online", session=2))
    publisher.publish(state_topic, state("culvert-1", status="offline", session=1))
    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", 0))
    wait_until(lambda: gateway.store.count(device_id="culvert-1") == 1, what="the marker point")
    assert _device(api, "culvert-1")["presence"] == "online"
    publisher.publish(state_topic, state("culvert-1", status="offline", session=2))
    wait_until(lambda: _device(api, "culvert-1")["presence"] == "offline", what="offline by its own will")
    assert len([entry for entry in _audit(api, "culvert-1") if entry["action"] == "session_reset"]) == 1


def _stamped(device_id: str, *, status: str, session: int, ts: datetime) -> bytes:
    return json.dumps(
        json.loads(state(device_id, status=status, session=session)) | {"ts": ts.isoformat()}
    ).encode()


def test_a_lower_session_stamped_after_the_current_one_began_is_a_reset_and_the_old_will_is_stale(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client
) -> None:
    """The replacement unit connected before the broker noticed the old one was gone: its birth comes
    while the device still counts as online, and the old connection's will (higher number) after it."""
    state_topic = topic(SITE, "culvert-2", Channel.STATE)
    began = utcnow() - timedelta(hours=2)
    publisher.publish(state_topic, _stamped("culvert-2", status="online", session=9, ts=began))
    publisher.publish(state_topic, _stamped("culvert-2", status="online", session=1, ts=utcnow()))
    publisher.publish(state_topic, _stamped("culvert-2", status="offline", session=9, ts=began))
    publisher.publish(topic(SITE, "culvert-2", Channel.TELEMETRY), telemetry("culvert-2", 0))
    wait_until(lambda: gateway.store.count(device_id="culvert-2") == 1, what="the marker point")
    device = _device(api, "culvert-2")
    assert (device["presence"], device["online"], device["session"]) == ("online", True, 1)
    assert [entry["action"] for entry in _audit(api, "culvert-2")] == ["session_reset"]


def test_data_after_the_will_shows_the_device_online_and_ends_its_offline_event(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client, clock: MovableClock
) -> None:
    """A reset unit whose clock is not set yet: its birth (lower session, stamped before the current one,
    while the device still counted as online) is stale; then the old will takes the device offline."""
    state_topic = topic(SITE, "culvert-2", Channel.STATE)
    publisher.publish(state_topic, state("culvert-2", status="online", session=5))
    publisher.publish(state_topic, state("culvert-2", status="online", session=1))
    publisher.publish(state_topic, state("culvert-2", status="offline", session=5))
    wait_until(lambda: _device(api, "culvert-2")["presence"] == "offline", what="offline by the old will")
    clock.jump(OFFLINE_AFTER_S + 1)
    (event,) = wait_until(lambda: _offline_events(api), what="a device_offline event")
    clock.reset()

    publisher.publish(topic(SITE, "culvert-2", Channel.TELEMETRY), telemetry("culvert-2", 0))
    wait_until(lambda: _device(api, "culvert-2")["presence"] == "online", what="online by its data")
    assert _device(api, "culvert-2")["online"] is False  # no birth accepted since the will: the flag says so
    wait_until(lambda: _ended(api, event["id"]), what="the offline event ended by the data")
    # Its next birth resets the counter: the device is offline by its flag (the will), so no birth is stale.
    publisher.publish(state_topic, state("culvert-2", status="online", session=2))
    wait_until(lambda: _device(api, "culvert-2")["session"] == 2, what="the next birth accepted")
    assert _device(api, "culvert-2")["online"] is True


def test_the_offline_time_is_when_the_gateway_learns_of_the_drop_not_the_wills_ts(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client
) -> None:
    state_topic = topic(SITE, "culvert-1", Channel.STATE)
    publisher.publish(state_topic, state("culvert-1", status="online", session=3))
    wait_until(lambda: _device(api, "culvert-1")["presence"] == "online", what="online")
    before = utcnow()
    # The will's ts was set when the connection was made (hours or months ago), not when it dropped.
    publisher.publish(state_topic, state("culvert-1", status="offline", session=3))
    wait_until(lambda: _device(api, "culvert-1")["presence"] == "offline", what="offline")
    changed = datetime.fromisoformat(_device(api, "culvert-1")["presence_changed_at"])
    assert before <= changed <= utcnow()


def test_a_birth_whose_device_type_differs_from_the_registry_is_flagged(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client
) -> None:
    state_topic = topic(SITE, "culvert-1", Channel.STATE)
    camera = json.loads(state("culvert-1", status="online", session=1)) | {"device_type": "elevator"}
    publisher.publish(state_topic, json.dumps(camera).encode())
    device = wait_until(
        lambda: (d := _device(api, "culvert-1"))["presence"] == "online" and d, what="online, flagged"
    )
    assert (device["device_type"], device["reported_device_type"]) == ("culvert", "elevator")
    publisher.publish(state_topic, json.dumps(camera | {"session": 2}).encode())  # the next connection
    wait_until(lambda: _device(api, "culvert-1")["session"] == 2, what="the next birth")
    (flag,) = [entry for entry in _audit(api, "culvert-1") if entry["action"] == "type_mismatch"]
    assert flag["note"] == "birth says device_type 'elevator', the registry says 'culvert'"
    health = api.get("/health").json()
    assert health["device_types"]["mismatch"] == [
        {"device_id": "culvert-1", "registered": "culvert", "reported": "elevator"}
    ]
    assert all(check["ok"] for check in health["checks"]), "a device's mistake is not the gateway's"
    # The unit is put right (or the registry corrected): the flag goes.
    publisher.publish(state_topic, state("culvert-1", status="online", session=3))
    wait_until(lambda: _device(api, "culvert-1")["reported_device_type"] == "culvert", what="types agree")
    assert api.get("/health").json()["device_types"]["mismatch"] == []
