"""End-to-end delivery on the device side: a row stays in the outbox until the gateway's receipt lists it.

A real Mosquitto; the test plays the gateway, publishing receipts on the device's ``receipt`` topic.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import ReceiptMessage
from citywatch.protocol.topics import Channel, Topic
from edge.outbox import Outbox
from edge.uplink import Uplink
from edge.uplink.pump import ReceiptOptions
from tests.edge.test_uplink import make_uplink, telemetry
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

RECEIPT_TOPIC = Topic("s1", "c1", Channel.RECEIPT)


def receipting_uplink(broker: MosquittoBroker, tmp_path: Path, *, resend_after_s: float = 60.0) -> Uplink:
    """An uplink on ``tmp_path / "outbox.sqlite3"`` keeping each message until a receipt lists it."""
    return make_uplink(broker, tmp_path, receipts=ReceiptOptions(resend_after_s=resend_after_s))


def receipt(*runs: tuple[int, int]) -> bytes:
    return ReceiptMessage(ts=datetime.now(UTC), stored=list(runs)).to_json()


def sent_seqs(collector: Collector) -> Counter[int]:
    """How often each outbox sequence reached the broker's subscribers."""
    return Counter(m.json().get("outbox_seq") for m in collector.on(Channel.TELEMETRY))


def wait_subscribed(uplink: Uplink, collector: Collector) -> None:
    """Connected, born, and its SUBSCRIBE to ``receipt`` acknowledged: the tests publish receipts only then."""
    assert uplink.wait_subscribed(10), "the broker never acknowledged the receipt subscription"
    wait_until(lambda: collector.on(Channel.STATE), what="birth")


def test_rows_stay_after_the_puback_until_a_receipt_lists_them(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    uplink = receipting_uplink(mosquitto, tmp_path).start()
    try:
        wait_subscribed(uplink, collector)
        for i in range(10):
            uplink.send(Channel.TELEMETRY, telemetry(i))
        wait_until(lambda: sum(sent_seqs(collector).values()) >= 10, what="10 messages at the broker")
        assert sent_seqs(collector) == Counter(range(1, 11)), "each carries its outbox sequence"
        time.sleep(0.3)  # every PUBACK is back long since
        assert uplink.queue_depth == 10, "a PUBACK is not a receipt: the rows stay"

        collector.publish(RECEIPT_TOPIC, receipt((1, 4)))
        wait_until(lambda: uplink.queue_depth == 6, what="rows 1-4 deleted")
        assert [r.id for r in uplink.outbox.peek(limit=20)] == list(range(5, 11))

        # A run beyond anything this outbox numbered was meant for an earlier outbox of this device id.
        collector.publish(RECEIPT_TOPIC, receipt((5, 7), (9, 10), (11, 30)))
        wait_until(lambda: uplink.queue_depth == 1, what="rows 5-7 and 9-10 deleted")
        assert [r.id for r in uplink.outbox.peek(limit=20)] == [8]
        assert uplink.pump.resends == 0
    finally:
        uplink.stop(flush_timeout_s=0)


def test_unconfirmed_rows_go_again_once_the_gateway_confirms_later_ones(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    """Published to nobody (the broker forgot the gateway's session): resent after the timeout, but only
    once the gateway shows it is there; a silent gateway (away, its session holds our messages) gets
    no resends."""
    uplink = receipting_uplink(mosquitto, tmp_path, resend_after_s=0.5).start()
    try:
        wait_subscribed(uplink, collector)
        for i in range(5):
            uplink.send(Channel.TELEMETRY, telemetry(i))
        wait_until(lambda: sum(sent_seqs(collector).values()) >= 5, what="5 messages at the broker")
        time.sleep(1.5)  # three timeouts, but no receipt at all
        assert sent_seqs(collector) == Counter(range(1, 6)), "a silent gateway gets no resends"

        uplink.send(Channel.TELEMETRY, telemetry(5))
        wait_until(lambda: sent_seqs(collector)[6] == 1, what="the sixth message")
        collector.publish(RECEIPT_TOPIC, receipt((6, 6)))  # the gateway is back, 1-5 never reached it
        wait_until(
            lambda: all(sent_seqs(collector)[seq] >= 2 for seq in range(1, 6)),
            timeout_s=5,
            what="messages 1-5 sent again",
        )
        assert sent_seqs(collector)[6] == 1, "the confirmed one is not resent"
        assert uplink.pump.resends >= 1
        collector.publish(RECEIPT_TOPIC, receipt((1, 5)))
        wait_until(lambda: uplink.queue_depth == 0, what="outbox empty once all are confirmed")
    finally:
        uplink.stop(flush_timeout_s=0)


def test_unconfirmed_rows_go_again_on_reconnect(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    uplink = receipting_uplink(mosquitto, tmp_path).start()
    try:
        wait_subscribed(uplink, collector)
        for i in range(5):
            uplink.send(Channel.TELEMETRY, telemetry(i))
        wait_until(lambda: sum(sent_seqs(collector).values()) >= 5, what="5 messages at the broker")
        collector.publish(RECEIPT_TOPIC, receipt((1, 2)))
        wait_until(lambda: uplink.queue_depth == 3, what="rows 1-2 confirmed")
        mosquitto.stop()  # (saving the collector's session, so that it hears what comes next)
        wait_until(lambda: not uplink.connected, what="the uplink notices")
        mosquitto.start()
        wait_until(
            lambda: all(sent_seqs(collector)[seq] >= 2 for seq in (3, 4, 5)),
            timeout_s=30,
            what="the unconfirmed rows sent again after the reconnect",
        )
        assert sent_seqs(collector)[1] == sent_seqs(collector)[2] == 1
    finally:
        uplink.stop(flush_timeout_s=0)


def test_rows_queued_before_receipts_existed_go_on_their_puback(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    """An outbox written by an agent from before receipts: its rows carry no sequence, so no receipt
    will ever name them; they leave on the broker's PUBACK as they always did."""
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, "
            "droppable INTEGER NOT NULL, payload BLOB NOT NULL);"
        )
        db.executemany(
            "INSERT INTO messages (channel, droppable, payload) VALUES ('telemetry', 1, ?)",
            [(telemetry(i).to_json(),) for i in range(3)],
        )
    uplink = receipting_uplink(mosquitto, tmp_path).start()
    try:
        wait_until(lambda: uplink.queue_depth == 0, what="the old rows delivered and deleted")
        assert [m.payload for m in collector.on(Channel.TELEMETRY)] == [
            telemetry(i).to_json() for i in range(3)
        ]
        uplink.send(Channel.TELEMETRY, telemetry(3))
        wait_until(lambda: sent_seqs(collector).get(4) == 1, what="a new row, numbered after the old ones")
        time.sleep(0.3)
        assert uplink.queue_depth == 1, "the new row waits for its receipt"
    finally:
        uplink.stop(flush_timeout_s=0)
    reopened = Outbox(path)
    assert [r.awaits_receipt for r in reopened.peek()] == [True]
    reopened.close()
