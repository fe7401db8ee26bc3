"""Event identity through real parts (Mosquitto, the gateway, the dispatch-centre simulator), on SQLite
and PostgreSQL: one condition is one ``event_id``; a repeat of the condition folds into the open event
and is audited and pushed; an ``update`` or ``end`` of an ``event_id`` never seen begin is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import EventPhase, ReceiptMessage, Severity
from citywatch.protocol.topics import Channel, subscription
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.conftest import FAST_RETRIES, SITE, running_with_devices
from tests.gateway.helpers import Publisher, telemetry, topic, water_event
from tests.gateway.test_postgres import postgres_url  # noqa: F401 (the fixture, for the PostgreSQL runs)
from tests.gateway.tokens import api_client
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto per test

DEVICE = "culvert-1"
EVENTS = topic(SITE, DEVICE, Channel.EVENT)


@pytest.fixture(params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, gateway_settings: Settings) -> Iterator[GatewayApp]:
    update: dict[str, object] = {"RECEIPT_INTERVAL_S": 0.2}
    if request.param == "postgresql":
        update["DB_URL"] = request.getfixturevalue("postgres_url")
    settings = gateway_settings.model_copy(update=update)
    yield from running_with_devices(GatewayApp(settings, delivery=FAST_RETRIES))


@pytest.fixture
def api(gateway: GatewayApp) -> Iterator[httpx.Client]:
    with api_client(gateway) as client:
        yield client


def _only_event(api: httpx.Client, **expected: Any) -> dict[str, Any]:
    def match() -> dict[str, Any] | None:
        page = api.get("/events", params={"device": DEVICE}).json()
        if page["total"] != 1:
            return None
        event: dict[str, Any] = page["items"][0]
        return event if all(event.get(k) == v for k, v in expected.items()) else None

    found = wait_until(match, what=f"one event of {DEVICE} with {expected}")
    assert found is not None
    return found


def _trail(api: httpx.Client, event_id: int) -> list[dict[str, Any]]:
    audit: list[dict[str, Any]] = api.get(f"/events/{event_id}").json()["audit"]
    return [entry for entry in audit if entry["action"] != "push"]


def _refused(gateway: GatewayApp) -> dict[str, int]:
    refused: dict[str, int] = gateway.stats.snapshot()["refused"]
    return refused


def numbered(payload: bytes, seq: int) -> bytes:
    return payload[:-1] + f', "outbox_seq": {seq}}}'.encode()


def _processed_up_to(gateway: GatewayApp, publisher: Publisher, i: int) -> None:
    """A telemetry marker after the messages under test: once it is stored, they were handled."""
    publisher.publish(topic(SITE, DEVICE, Channel.TELEMETRY), telemetry(DEVICE, i))
    wait_until(lambda: gateway.store.count(device_id=DEVICE) == i + 1, what=f"marker {i}")


def test_a_fresh_event_id_folds_into_the_open_event_and_every_message_is_audited_and_pushed(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client, dispatch_centre: DispatchCentreSimulator
) -> None:
    publisher.publish(EVENTS, water_event(DEVICE, "evt-first-0001", 0))
    publisher.publish(EVENTS, water_event(DEVICE, "evt-first-0001", 1, level_cm=13))
    # The device restarted mid-flood and lost its event: the same condition, raised with a new id.
    publisher.publish(EVENTS, water_event(DEVICE, "evt-second-001", 0, level_cm=13))
    publisher.publish(EVENTS, water_event(DEVICE, "evt-second-001", 1, level_cm=14))
    publisher.publish(EVENTS, water_event(DEVICE, "evt-second-001", 2, phase=EventPhase.END, level_cm=3))
    event = _only_event(api, revisions=5)
    assert event["device_event_id"] == "evt-second-001" and event["cleared_at"] is not None
    trail = _trail(api, event["id"])
    assert [entry["action"] for entry in trail] == [
        "created",
        "dispatch",
        "updated",
        "merged",  # the fresh event id: one audit entry, naming it
        "updated",
        "condition_cleared",
    ]
    (merged,) = [entry for entry in trail if entry["action"] == "merged"]
    assert "evt-second-001" in merged["note"] and merged["actor"] == DEVICE
    assert dispatch_centre.wait_for(5), dispatch_centre.summary()
    assert [w.message_type for w in dispatch_centre.received()] == [
        "event.created",
        "event.updated",
        "event.updated",  # the repeat is pushed like any other revision
        "event.updated",
        "event.cleared",
    ]
    assert _refused(gateway) == {}


def _open_then_stranger(gateway: GatewayApp, publisher: Publisher, api: httpx.Client, stranger: bytes) -> int:
    """An open event, then ``stranger`` (a message of an event_id never seen begin): refused, counted."""
    publisher.publish(EVENTS, water_event(DEVICE, "evt-open-00001", 0))
    event_id = int(_only_event(api, state="dispatched")["id"])
    publisher.publish(EVENTS, stranger)
    _processed_up_to(gateway, publisher, 0)
    assert _refused(gateway) == {"unknown_event": 1}
    return event_id


def test_an_update_of_an_event_id_never_seen_is_refused_and_counted(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client
) -> None:
    stranger = water_event(DEVICE, "evt-stranger-1", 3, severity=Severity.CRITICAL)
    event_id = _open_then_stranger(gateway, publisher, api, stranger)
    after = _only_event(api)
    assert (after["revisions"], after["severity"], after["device_event_id"]) == (
        1,
        "notice",
        "evt-open-00001",
    )
    assert [entry["action"] for entry in _trail(api, event_id)] == ["created", "dispatch"]


def test_an_end_of_an_event_id_never_seen_does_not_clear_the_open_event(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client, dispatch_centre: DispatchCentreSimulator
) -> None:
    stranger = water_event(DEVICE, "evt-stranger-2", 1, phase=EventPhase.END)
    event_id = _open_then_stranger(gateway, publisher, api, stranger)
    assert _only_event(api)["cleared_at"] is None
    assert dispatch_centre.wait_for(1)
    # Its own end still clears it.
    publisher.publish(EVENTS, water_event(DEVICE, "evt-open-00001", 1, phase=EventPhase.END))
    cleared = _only_event(api, revisions=2)
    assert cleared["cleared_at"] is not None
    assert [entry["action"] for entry in _trail(api, event_id)][-1] == "condition_cleared"


def test_the_end_of_an_earlier_condition_folded_in_does_not_clear_the_event(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client
) -> None:
    publisher.publish(EVENTS, water_event(DEVICE, "evt-earlier-01", 0))
    publisher.publish(EVENTS, water_event(DEVICE, "evt-later-0001", 0))  # folds in: the event follows it
    _only_event(api, revisions=2)
    publisher.publish(EVENTS, water_event(DEVICE, "evt-earlier-01", 1, phase=EventPhase.END))
    event = _only_event(api, revisions=3)
    assert event["cleared_at"] is None and event["device_event_id"] == "evt-later-0001"
    last = _trail(api, event["id"])[-1]
    assert last["action"] == "updated" and "evt-earlier-01" in last["note"] and "ended" in last["note"]
    publisher.publish(EVENTS, water_event(DEVICE, "evt-later-0001", 1, phase=EventPhase.END))
    assert _only_event(api, revisions=4)["cleared_at"] is not None


def test_a_refused_update_is_not_receipted_and_is_stored_when_sent_again_after_its_new(
    gateway: GatewayApp, publisher: Publisher, api: httpx.Client, mosquitto: MosquittoBroker
) -> None:
    """The broker lost the ``new`` (killed between saves): the ``update`` that got through is refused and
    kept by the device, which sends both again, in order; nothing of the condition is lost."""
    with Collector(mosquitto.url, subscription(Channel.RECEIPT)) as receipts:
        publisher.publish(EVENTS, numbered(water_event(DEVICE, "evt-lost-0001", 1, level_cm=19), 8))
        publisher.publish(topic(SITE, DEVICE, Channel.TELEMETRY), numbered(telemetry(DEVICE, 0), 9))
        wait_until(lambda: receipts.of(ReceiptMessage), what="the receipt for the telemetry")
        assert _refused(gateway) == {"unknown_event": 1}
        assert [run for r in receipts.of(ReceiptMessage) for run in r.stored] == [(9, 9)]
        publisher.publish(EVENTS, numbered(water_event(DEVICE, "evt-lost-0001", 0), 7))
        publisher.publish(EVENTS, numbered(water_event(DEVICE, "evt-lost-0001", 1, level_cm=19), 8))
        event = _only_event(api, revisions=2)
        assert event["details"]["level_cm"] == 19
        wait_until(
            lambda: (
                {s for r in receipts.of(ReceiptMessage) for f, last in r.stored for s in range(f, last + 1)}
                == {7, 8, 9}
            ),
            what="7 and 8 receipted once stored",
        )
