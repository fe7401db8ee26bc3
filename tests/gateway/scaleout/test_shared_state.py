"""Three gateway processes, one share group, one PostgreSQL: what is one stays one.

One migration when they start together on an empty database; one open event per (device, type) while
the same device's conditions reach different gateways at once; each notification sent by one worker
(the dispatch centre sees no duplicate, each event's notifications in order); one escalation per
deadline and one device_offline per silence while every gateway runs those loops.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from citywatch import polling
from citywatch.protocol.topics import Channel
from gateway.db import utcnow
from gateway.dispatch.models import OutboxStatus
from gateway.events.models import Event, EventAudit, EventCapMessage
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.helpers import Publisher, telemetry, topic, water_event
from tests.gateway.scaleout.cluster import MIGRATED, SITE, Cluster, open_events_per_device_type, outbox
from tests.gateway.scaleout.conftest import MakeCluster
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # three gateway processes and a PostgreSQL cluster: ~20 s each

DEVICES = [f"culvert-{n:02d}" for n in range(1, 7)]
CONDITIONS = 6  # per device, published back to back: they land on different gateways at once


def all_delivered(cluster: Cluster, centre: DispatchCentreSimulator) -> bool:
    rows = outbox(cluster.engine)
    received = {hook.webhook_id for hook in centre.received()}
    return (
        bool(rows)
        and all(status == OutboxStatus.DELIVERED for _, status, _, _ in rows)
        and (received >= {webhook_id for webhook_id, *_ in rows})
    )


def assert_each_notification_once(cluster: Cluster, centre: DispatchCentreSimulator) -> None:
    rows = outbox(cluster.engine)
    assert centre.duplicates == 0, "a notification was sent twice (two workers took one outbox row)"
    assert sorted(hook.webhook_id for hook in centre.received()) == sorted(w for w, *_ in rows)
    assert centre.invalid_signatures == 0
    by_event: defaultdict[int, list[str]] = defaultdict(list)
    for hook in centre.received():
        by_event[hook.event["id"]].append(hook.message_type)
    for event_id, types in by_event.items():  # an update never overtakes its created, across gateways
        assert types[0] == "event.created", f"event {event_id} notified out of order: {types}"


def test_one_migration_one_open_event_one_sender_one_escalation(
    make_cluster: MakeCluster, dispatch_centre: DispatchCentreSimulator
) -> None:
    cluster = make_cluster().start()
    migrated = [g.name for g in cluster.gateways if MIGRATED in g.log()]
    assert len(migrated) == 1, f"the schema should be migrated by exactly one gateway, was by {migrated}"
    cluster.provision(DEVICES)

    publishers = [Publisher(cluster.gateways[0].env["CITYWATCH_MQTT_URL"]) for _ in range(3)]
    try:
        infos = []
        for n in range(CONDITIONS):
            for d, device_id in enumerate(DEVICES):
                client = publishers[(n + d) % len(publishers)].client
                payload = water_event(device_id, f"evt-{device_id}-{n}", 0)
                infos.append(client.publish(str(topic(SITE, device_id, Channel.EVENT)), payload, qos=1))
        for info in infos:
            info.wait_for_publish(timeout=10)
    finally:
        for publisher in publishers:
            publisher.close()

    def revisions_per_event() -> dict[str, int]:
        with cluster.engine.connect() as connection:
            rows = connection.execute(
                select(Event.device_id, Event.revisions).where(Event.type == "water_level")
            )
            return {device_id: revisions for device_id, revisions in rows}

    folded = dict.fromkeys(DEVICES, CONDITIONS)
    if not polling.wait_until(lambda: revisions_per_event() == folded, timeout_s=30):
        raise AssertionError(f"conditions folded per device: {revisions_per_event()}\n{cluster.logs()}")
    assert open_events_per_device_type(cluster.engine) == {(d, "water_level"): 1 for d in DEVICES}
    for gateway in cluster.gateways:
        assert "processing_error" not in gateway.log(), gateway.log()[-3000:]

    wait_until(
        lambda: all_delivered(cluster, dispatch_centre), timeout_s=30, what="every notification delivered"
    )
    assert_each_notification_once(cluster, dispatch_centre)

    # Every gateway runs the escalation loop (every 0.5 s): each overdue event is escalated once.
    with cluster.engine.begin() as connection:
        connection.execute(
            update(Event).where(Event.type == "water_level").values(deadline=utcnow() - timedelta(minutes=1))
        )
    wait_until(
        lambda: sorted(row for row in _audit_count(cluster, "supervise").values()) == [1] * len(DEVICES),
        timeout_s=20,
        what="one supervise escalation per overdue event",
    )
    time.sleep(2)  # a dozen more rounds across the three gateways: none may escalate again
    assert sorted(_audit_count(cluster, "supervise").values()) == [1] * len(DEVICES)
    wait_until(lambda: all_delivered(cluster, dispatch_centre), timeout_s=30, what="escalations delivered")
    assert_each_notification_once(cluster, dispatch_centre)
    assert Counter(h.message_type for h in dispatch_centre.received())["event.supervise"] == len(DEVICES)
    with cluster.engine.connect() as connection:  # CAP: one message per (event, sequence number)
        duplicated = connection.execute(
            select(EventCapMessage.event_id, EventCapMessage.sequence)
            .group_by(EventCapMessage.event_id, EventCapMessage.sequence)
            .having(func.count() > 1)
        ).all()
    assert duplicated == []
    cluster.stop()


def _audit_count(cluster: Cluster, action: str) -> dict[int, int]:
    with cluster.engine.connect() as connection:
        rows = connection.execute(
            select(EventAudit.event_id, func.count())
            .where(EventAudit.action == action)
            .group_by(EventAudit.event_id)
        )
        return {event_id: count for event_id, count in rows}


def test_one_device_offline_per_silence(
    make_cluster: MakeCluster, dispatch_centre: DispatchCentreSimulator
) -> None:
    cluster = make_cluster(DEVICE_OFFLINE_AFTER_S=2).start()
    devices = DEVICES[:4]
    cluster.provision(devices)
    url = cluster.gateways[0].env["CITYWATCH_MQTT_URL"]

    def heard(i: int) -> None:
        publisher = Publisher(url)
        try:
            for device_id in devices:
                publisher.publish(topic(SITE, device_id, Channel.TELEMETRY), telemetry(device_id, i))
        finally:
            publisher.close()

    def offline_events() -> list[tuple[str, int, bool]]:
        with cluster.engine.connect() as connection:
            return [
                (row.device_id, row.revisions, row.cleared_at is None)
                for row in connection.execute(
                    select(Event.device_id, Event.revisions, Event.cleared_at).where(
                        Event.type == "device_offline"
                    )
                )
            ]

    heard(0)  # then silence, watched by three presence monitors
    wait_until(
        lambda: sorted(offline_events()) == [(d, 1, True) for d in devices],
        timeout_s=20,
        what="one device_offline per silent device",
    )
    time.sleep(2)  # four more passes per gateway
    assert sorted(offline_events()) == [(d, 1, True) for d in devices]

    heard(1)  # back: each event ends once; silent again: the same work item is raised again, once
    wait_until(
        lambda: sorted(offline_events()) == [(d, 2, True) for d in devices],
        timeout_s=20,
        what="the second silence raised once",
    )
    time.sleep(2)
    assert sorted(offline_events()) == [(d, 2, True) for d in devices]
    assert sorted(_audit_count(cluster, "created").values()) == [1] * len(devices)
    assert sorted(_audit_count(cluster, "condition_cleared").values()) == [1] * len(devices)
    assert sorted(_audit_count(cluster, "condition_returned").values()) == [1] * len(devices)
    wait_until(
        lambda: all_delivered(cluster, dispatch_centre), timeout_s=30, what="every notification delivered"
    )
    assert_each_notification_once(cluster, dispatch_centre)
    cluster.stop()
