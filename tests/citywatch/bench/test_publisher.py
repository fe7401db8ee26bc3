"""The benchmark's load generator writes MQTT by hand: a real broker and a paho subscriber check it."""

from __future__ import annotations

from citywatch.bench.publisher import payloads, publish
from citywatch.broker.mosquitto import MosquittoBroker
from tests.edge.helpers import Subscriber
from tests.support.polling import wait_until


def test_every_hand_encoded_publish_arrives_intact_and_acknowledged(mosquitto: MosquittoBroker) -> None:
    # More than the in-flight window and the 16-bit packet-id space: ids wrap, the window blocks.
    messages = payloads(70_000, 7, run=0)
    subscriber = Subscriber(mosquitto.port, "citywatch/v1/bench/#")
    try:
        result = publish(mosquitto.url, messages, rate=None)
        assert result["acked"] == len(messages)
        wait_until(lambda: len(subscriber.messages) >= len(messages), timeout_s=60, what="every message")
        received = {(m.topic, m.payload) for m in subscriber.messages}
        assert received == set(messages)
    finally:
        subscriber.close()


def test_offered_rate_is_honoured(mosquitto: MosquittoBroker) -> None:
    result = publish(mosquitto.url, payloads(600, 3, run=1), rate=2000)
    assert result["acked"] == 600
    assert result["last_publish"] - result["first_publish"] >= 0.25  # 600 at 2000/s: about 0.3 s
