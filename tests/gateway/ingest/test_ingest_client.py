"""The ingest's paho client: buffered reads and PUBLISH handed straight to on_message.

Real Mosquitto; the publisher is plain paho, the collector runs the client under test. Messages cross
64 KiB read chunks (a large payload and hundreds of small ones), unacknowledged QoS 1 messages come
back after a reconnect.
"""

from __future__ import annotations

import uuid

import paho.mqtt.client as mqtt
import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from gateway.ingest.client import BufferedReadClient, ReceivedMessage
from tests.support.mqtt import Collector, Publisher
from tests.support.polling import wait_until


def buffered_read_collector(broker: MosquittoBroker, client_id: str) -> Collector:
    """A persistent-session collector whose client is the one under test, acknowledging by hand."""
    return Collector(broker.url, "t/#", client_id=client_id, client_class=BufferedReadClient, manual_ack=True)


def test_messages_of_every_kind_arrive_whole(mosquitto: MosquittoBroker) -> None:
    publisher = Publisher(mosquitto.url)
    publisher.publish("t/retained", b"kept", retain=True)
    collector = buffered_read_collector(mosquitto, f"test-sub-{uuid.uuid4().hex[:8]}")
    try:
        big = bytes(range(256)) * 400  # 100 KiB: spans two read chunks
        publisher.client.publish("t/zero", b"at most once", qos=0)
        publisher.publish("t/big", big)
        for n in range(500):
            publisher.publish(f"t/small/{n}", str(n).encode())
        wait_until(lambda: len(collector.messages) >= 503, what="every message")
        by_topic = {message.topic: message for message in collector.messages}
        assert all(isinstance(message.raw, ReceivedMessage) for message in collector.messages)
        assert by_topic["t/retained"].retain and by_topic["t/retained"].payload == b"kept"
        assert by_topic["t/zero"].qos == 0 and by_topic["t/zero"].payload == b"at most once"
        assert by_topic["t/big"].qos == 1 and by_topic["t/big"].payload == big
        assert [by_topic[f"t/small/{n}"].payload for n in range(500)] == [str(n).encode() for n in range(500)]
        assert all(m.raw.mid > 0 and not m.raw.dup for m in collector.messages if m.qos == 1)
    finally:
        collector.close()
        publisher.close()


def test_unacknowledged_messages_come_back_after_a_reconnect(mosquitto: MosquittoBroker) -> None:
    client_id = f"test-sub-{uuid.uuid4().hex[:8]}"
    publisher = Publisher(mosquitto.url)
    collector = buffered_read_collector(mosquitto, client_id)
    try:
        for n in range(10):
            publisher.publish(f"t/n/{n}", str(n).encode())
        wait_until(lambda: len(collector.messages) >= 10, what="ten messages")
        for message in collector.messages[:4]:
            collector.client.ack(message.raw.mid, message.qos)
        wait_until(lambda: collector.client.want_write() is False, what="the acks sent")
    finally:
        collector.close()
    again = buffered_read_collector(mosquitto, client_id)
    try:
        wait_until(lambda: len(again.messages) >= 6, what="the six unacknowledged messages again")
        assert sorted(m.payload for m in again.messages) == [str(n).encode() for n in range(4, 10)]
        assert all(m.raw.dup for m in again.messages)
    finally:
        again.close()
        publisher.close()


def test_topic_callbacks_are_refused_rather_than_ignored() -> None:
    client = BufferedReadClient(mqtt.CallbackAPIVersion.VERSION2, manual_ack=True)
    with pytest.raises(NotImplementedError):
        client.message_callback_add("t/#", lambda *_: None)


def test_a_truncated_publish_is_a_protocol_error() -> None:
    client = BufferedReadClient(mqtt.CallbackAPIVersion.VERSION2, manual_ack=True)
    client.on_message = lambda *_: pytest.fail("a malformed packet must not be delivered")
    client._in_packet["command"] = mqtt.PUBLISH | 0x02  # QoS 1
    client._in_packet["packet"] = bytearray(b"\x00\x09t/short")  # topic length past the end
    assert client._handle_publish() == mqtt.MQTT_ERR_PROTOCOL
