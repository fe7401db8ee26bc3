"""Messages -> gateway -> telemetry store / events -> dispatch centre, through a real Mosquitto."""

from __future__ import annotations

import pytest
from sqlalchemy import distinct, func, select

from citywatch.protocol.messages import EventPhase, Severity
from citywatch.protocol.topics import Channel
from gateway.dispatch import service as dispatch_service
from gateway.dispatch.models import OutboxMessage, OutboxStatus
from gateway.events import service as events_service
from gateway.runner import GatewayApp
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.conftest import SITE
from tests.gateway.helpers import Publisher, state, telemetry, topic, water_event
from tests.gateway.tokens import api_client
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto per test: 0.7-1 s each


def _summary(gateway: GatewayApp) -> dict[str, int]:
    """The gateway's own account: points stored, events raised, events and pushes that were delivered."""
    with gateway.read_session_factory() as session:
        events_delivered = session.scalar(
            select(func.count(distinct(OutboxMessage.event_id))).where(
                OutboxMessage.status == OutboxStatus.DELIVERED
            )
        )
        return {
            "telemetry_stored": gateway.store.count(),
            "events_raised": events_service.count(session=session),
            "events_delivered": events_delivered or 0,
            "webhooks_delivered": dispatch_service.counts_by_status(session=session).get(
                OutboxStatus.DELIVERED, 0
            ),
            "messages_refused": int(gateway.stats.snapshot()["refused_total"]),
        }


def test_telemetry_and_event_reach_store_and_dispatch_centre(
    gateway: GatewayApp, publisher: Publisher, dispatch_centre: DispatchCentreSimulator
) -> None:
    for i in range(50):
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", i))
    publisher.publish(topic(SITE, "culvert-1", Channel.EVENT), water_event("culvert-1", "evt-00000001", 0))
    publisher.publish(
        topic(SITE, "culvert-1", Channel.EVENT),
        water_event("culvert-1", "evt-00000001", 1, severity=Severity.WARNING, level_cm=16),
    )
    publisher.publish(
        topic(SITE, "culvert-1", Channel.EVENT),
        water_event("culvert-1", "evt-00000001", 2, phase=EventPhase.END, level_cm=3),
    )

    wait_until(lambda: gateway.store.count(device_id="culvert-1") == 50, what="50 telemetry points stored")
    assert dispatch_centre.wait_for(3), dispatch_centre.summary()
    received = dispatch_centre.received()
    assert [r.message_type for r in received] == ["event.created", "event.updated", "event.cleared"]
    assert {r.event["id"] for r in received} == {received[0].event["id"]}
    # The condition cleared on the device; the work item stays with its department until closed.
    assert [r.event["state"] for r in received] == ["dispatched"] * 3
    assert received[-1].event["cleared_at"] is not None
    assert received[-1].event["severity"] == "warning"  # the highest severity seen is kept

    with api_client(gateway) as api:
        events = api.get("/events").json()
    assert events["total"] == 1
    assert dispatch_centre.duplicates == 0 and dispatch_centre.invalid_signatures == 0
    wait_until(lambda: _summary(gateway)["webhooks_delivered"] == 3, what="deliveries recorded")
    assert _summary(gateway) == {
        "telemetry_stored": 50,
        "events_raised": 1,
        "events_delivered": 1,
        "webhooks_delivered": 3,
        "messages_refused": 0,
    }


def test_qos1_duplicates_and_replays_change_nothing(
    gateway: GatewayApp, publisher: Publisher, dispatch_centre: DispatchCentreSimulator
) -> None:
    telemetry_topic = topic(SITE, "culvert-2", Channel.TELEMETRY)
    event_topic = topic(SITE, "culvert-2", Channel.EVENT)
    for _ in range(3):  # the same messages three times, as a redelivering broker or replaying device would
        for i in range(10):
            publisher.publish(telemetry_topic, telemetry("culvert-2", i))
        publisher.publish(event_topic, water_event("culvert-2", "evt-dup-00001", 0))
        publisher.publish(
            event_topic, water_event("culvert-2", "evt-dup-00001", 1, severity=Severity.WARNING)
        )
    publisher.publish(event_topic, water_event("culvert-2", "evt-dup-00001", 0))  # older seq after newer
    publisher.publish(telemetry_topic, telemetry("culvert-2", 10))  # a marker: everything before is processed

    wait_until(
        lambda: gateway.stats.snapshot()["accepted"].get("telemetry") == 31, what="all 31 points handled"
    )
    assert gateway.store.count(device_id="culvert-2") == 11
    assert gateway.stats.snapshot()["events"] == {"created": 1, "updated": 1, "duplicate": 5}
    assert dispatch_centre.wait_for(2)
    wait_until(lambda: gateway.dispatch_status()["delivered_since_start"] == 2, what="two deliveries")
    assert [w.message_type for w in dispatch_centre.received()] == ["event.created", "event.updated"]
    with api_client(gateway) as api:
        detail = api.get(f"/events/{dispatch_centre.received()[0].event['id']}").json()
    assert detail["revisions"] == 2 and detail["last_seq"] == 1
    actions = [a["action"] for a in detail["audit"]]
    assert [a for a in actions if a != "push"] == ["created", "dispatch", "updated"]
    assert actions.count("push") == 2  # each delivery is audited too


def test_a_condition_returning_while_its_work_item_is_open_merges_into_it(
    gateway: GatewayApp, publisher: Publisher
) -> None:
    event_topic = topic(SITE, "culvert-1", Channel.EVENT)
    publisher.publish(event_topic, water_event("culvert-1", "evt-first-0001", 0))
    publisher.publish(event_topic, water_event("culvert-1", "evt-first-0001", 1, phase=EventPhase.END))
    # The condition comes back (a new device event id) while the department still works on the item:
    # the same event, its count bumped, the condition active again.
    publisher.publish(event_topic, water_event("culvert-1", "evt-second-001", 0))
    publisher.publish(event_topic, water_event("culvert-1", "evt-third-0001", 0, severity=Severity.CRITICAL))
    with api_client(gateway) as api:
        page = wait_until(
            lambda: (p := api.get("/events").json())["total"] == 1 and p["items"][0]["revisions"] == 4 and p,
            what="one event with four reports",
        )
        (event,) = page["items"]
        assert event["state"] == "dispatched" and event["cleared_at"] is None
        assert event["severity"] == "critical" and event["device_event_id"] == "evt-third-0001"
        actions = [a["action"] for a in api.get(f"/events/{event['id']}").json()["audit"]]
    assert actions[:3] == ["created", "dispatch", "condition_cleared"]
    assert "condition_returned" in actions


def test_presence_follows_birth_and_will_and_ignores_a_stale_will(
    gateway: GatewayApp, publisher: Publisher
) -> None:
    state_topic = topic(SITE, "culvert-1", Channel.STATE)

    api = api_client(gateway)

    def device() -> dict[str, object]:
        return dict(api.get("/devices/culvert-1").json())

    assert device()["presence"] == "never_seen"
    publisher.publish(state_topic, state("culvert-1", status="online", session=1))
    wait_until(lambda: device()["presence"] == "online", what="online after the birth")
    publisher.publish(state_topic, state("culvert-1", status="online", session=2, firmware="1.1.0"))
    publisher.publish(
        state_topic, state("culvert-1", status="offline", session=1)
    )  # the old connection's will
    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), telemetry("culvert-1", 0))
    wait_until(lambda: gateway.store.count() == 1, what="the marker point")
    wait_until(lambda: device()["session"] == 2, what="session 2")
    current = device()
    assert current["online"] is True and current["firmware_version"] == "1.1.0"
    publisher.publish(state_topic, state("culvert-1", status="offline", session=2))
    wait_until(lambda: device()["presence"] == "offline", what="offline after the current session's will")
    api.close()


def test_event_ids_are_per_device(gateway: GatewayApp, publisher: Publisher) -> None:
    """Two devices may pick the same event id (e.g. both count from 1): still two events."""
    for device_id in ("culvert-1", "culvert-2"):
        publisher.publish(topic(SITE, device_id, Channel.EVENT), water_event(device_id, "evt-00000001", 0))
    with api_client(gateway) as api:
        wait_until(lambda: api.get("/events").json()["total"] == 2, what="one event per device")
    assert gateway.stats.snapshot()["events"] == {"created": 2}
