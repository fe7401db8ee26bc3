"""Receipts: the gateway tells a device which of its numbered messages are stored, after the commit.

A real Mosquitto, the real gateway; the test publishes as a device and listens on the receipt topics.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import ReceiptMessage, SnapshotMessage
from citywatch.protocol.topics import Channel, subscription
from gateway.events import service as events_service
from gateway.ingest.receipts import MAX_RUNS, runs_of
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator
from tests.gateway.conftest import FAST_RETRIES, SITE, running_with_devices
from tests.gateway.helpers import BASE_TS, Publisher, telemetry, topic, water_event
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow  # a gateway on Mosquitto per test


@pytest.fixture
def gateway(gateway_settings: Settings) -> Iterator[GatewayApp]:
    settings = gateway_settings.model_copy(update={"RECEIPT_INTERVAL_S": 0.2})
    yield from running_with_devices(GatewayApp(settings, delivery=FAST_RETRIES))


@pytest.fixture
def receipts(mosquitto: MosquittoBroker) -> Iterator[Collector]:
    with Collector(mosquitto.url, subscription(Channel.RECEIPT)) as collector:
        yield collector


def numbered(payload: bytes, seq: int) -> bytes:
    return json.dumps({**json.loads(payload), "outbox_seq": seq}).encode()


def snapshot(seq: int, *, data_b64: str | None = None) -> bytes:
    message = SnapshotMessage(
        device_id="culvert-1",
        snapshot_id="snap-00000001",
        event_id="evt-00000001",
        ts=BASE_TS,
        width=2,
        height=2,
        data_b64=data_b64 if data_b64 is not None else base64.b64encode(b"\xff\xd8jpeg").decode(),
        outbox_seq=seq,
    )
    return message.to_json()


@contextlib.contextmanager
def telemetry_store_locked(gateway: GatewayApp) -> Iterator[None]:
    """The telemetry store cannot write (its writes wait) until the block ends."""
    lock = sqlite3.connect(gateway.settings.telemetry_db_path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def receipted(collector: Collector, device_id: str) -> list[int]:
    """Every outbox_seq listed in the receipts ``device_id`` got (repeats included)."""
    seqs = []
    for message in collector.on(Channel.RECEIPT):
        if message.topic.split("/")[3] == device_id:
            receipt = message.message
            assert isinstance(receipt, ReceiptMessage)
            seqs += [seq for first, last in receipt.stored for seq in range(first, last + 1)]
    return seqs


def test_numbered_messages_are_receipted_coalesced_per_device(
    gateway: GatewayApp, publisher: Publisher, receipts: Collector
) -> None:
    for i in range(1, 51):
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), numbered(telemetry("culvert-1", i), i))
    publisher.publish(
        topic(SITE, "culvert-1", Channel.EVENT), numbered(water_event("culvert-1", "evt-00000001", 0), 51)
    )
    publisher.publish(topic(SITE, "culvert-1", Channel.SNAPSHOT), snapshot(52))
    # a device that does not number its messages (a third party), and a stranger that does
    publisher.publish(topic(SITE, "culvert-2", Channel.TELEMETRY), telemetry("culvert-2", 1))
    publisher.publish(topic(SITE, "stranger-1", Channel.TELEMETRY), numbered(telemetry("stranger-1", 1), 1))

    wait_until(
        lambda: set(receipted(receipts, "culvert-1")) == set(range(1, 53)), what="52 messages receipted"
    )
    assert gateway.store.count(device_id="culvert-1") == 50
    assert len(receipts.on(Channel.RECEIPT)) < 20, "one receipt per device per interval, not per message"
    time.sleep(0.5)  # two more intervals
    assert {m.topic.split("/")[3] for m in receipts.on(Channel.RECEIPT)} == {"culvert-1"}
    assert gateway.ingest_status()["receipts_sent"] == len(receipts.on(Channel.RECEIPT))


def test_no_receipt_before_the_batch_is_committed(
    gateway: GatewayApp, publisher: Publisher, receipts: Collector
) -> None:
    with telemetry_store_locked(gateway):
        publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), numbered(telemetry("culvert-1", 1), 1))
        wait_until(lambda: gateway.stats.snapshot()["received"] >= 1, what="the message taken")
        time.sleep(1.0)  # five receipt intervals
        assert receipts.on(Channel.RECEIPT) == [], "a receipt before the sample is stored"
    wait_until(lambda: receipted(receipts, "culvert-1") == [1], what="the receipt once stored")
    assert gateway.store.count(device_id="culvert-1") == 1


def test_resent_messages_change_nothing_and_are_receipted_again(
    gateway: GatewayApp, publisher: Publisher, receipts: Collector, dispatch_centre: DispatchCentreSimulator
) -> None:
    """What a device sends again (every channel it resends: telemetry, event, snapshot) is stored once."""
    messages = [(Channel.TELEMETRY, numbered(telemetry("culvert-1", i), i)) for i in range(1, 4)]
    messages += [
        (Channel.EVENT, numbered(water_event("culvert-1", "evt-00000001", 0), 4)),
        (Channel.SNAPSHOT, snapshot(5)),
        (Channel.EVENT, numbered(water_event("culvert-1", "evt-00000001", 1, level_cm=16), 6)),
    ]
    for channel, payload in messages:
        publisher.publish(topic(SITE, "culvert-1", channel), payload)
    wait_until(
        lambda: set(receipted(receipts, "culvert-1")) == set(range(1, 7)), what="first copies receipted"
    )
    for channel, payload in messages:  # the device did not get the receipt: it sends them all again
        publisher.publish(topic(SITE, "culvert-1", channel), payload)
    wait_until(lambda: len(receipted(receipts, "culvert-1")) == 12, what="second copies receipted")

    assert gateway.store.count(device_id="culvert-1") == 3
    with gateway.read_session_factory() as session:
        assert events_service.count(session=session) == 1
    assert gateway.stats.snapshot()["events"] == {"created": 1, "updated": 1, "duplicate": 2}
    assert [p.name for p in gateway.settings.snapshot_dir.iterdir()] == ["snap-00000001.jpg"]
    assert dispatch_centre.wait_for(2)
    time.sleep(0.3)
    assert [w.message_type for w in dispatch_centre.received()] == ["event.created", "event.updated"]


def test_refused_for_good_is_receipted_unreadable_is_not(
    gateway: GatewayApp, publisher: Publisher, receipts: Collector
) -> None:
    """A message the gateway read and refused would be refused again: the device may forget it. One it
    could not read (here a field this version does not define) is kept by the device for a gateway that can."""
    publisher.publish(topic(SITE, "culvert-1", Channel.SNAPSHOT), snapshot(1, data_b64="not base64!"))
    unreadable = {**json.loads(telemetry("culvert-1", 2)), "outbox_seq": 2, "firmware_field": 1}
    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), json.dumps(unreadable).encode())
    publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), numbered(telemetry("culvert-1", 3), 3))
    wait_until(lambda: set(receipted(receipts, "culvert-1")) >= {1, 3}, what="receipts for 1 and 3")
    assert gateway.stats.snapshot()["refused"] == {"invalid": 2}
    time.sleep(0.5)
    assert 2 not in receipted(receipts, "culvert-1")


def test_a_receipt_lists_at_most_256_runs_the_rest_follow(
    gateway: GatewayApp, publisher: Publisher, receipts: Collector
) -> None:
    odd = range(1, 2 * (MAX_RUNS + 200), 2)  # every other number: one run each (the device skipped some)
    with telemetry_store_locked(gateway):  # all but the first few are then stored in one batch
        for seq in odd:
            payload = numbered(telemetry("culvert-1", seq), seq)
            publisher.publish(topic(SITE, "culvert-1", Channel.TELEMETRY), payload)
        wait_until(lambda: gateway.stats.snapshot()["received"] == len(odd), what="all taken")
    wait_until(lambda: sorted(receipted(receipts, "culvert-1")) == list(odd), what="every number receipted")
    assert max(len(m.json()["stored"]) for m in receipts.on(Channel.RECEIPT)) == MAX_RUNS


def test_runs_of_merges_neighbours_and_repeats() -> None:
    assert runs_of([5, 1, 2, 3, 3, 9, 10, 7]) == [(1, 3), (5, 5), (7, 7), (9, 10)]
    assert runs_of([]) == []


def test_receipt_runs_are_ordered_pairs() -> None:
    with pytest.raises(ValueError, match="first <= last"):
        ReceiptMessage(ts=BASE_TS + timedelta(seconds=1), stored=[(5, 4)])
