"""The benchmark's load generator writes MQTT by hand: a real broker and the tests' collector check it."""

from __future__ import annotations

import pytest

from citywatch.bench.publisher import payloads, publish
from citywatch.broker.mosquitto import MosquittoBroker
from tests.support.mqtt import Collector
from tests.support.polling import wait_until


@pytest.mark.slow
def test_every_hand_encoded_publish_arrives_intact_and_acknowledged(mosquitto: MosquittoBroker) -> None:
    # More than the in-flight window and the 16-bit packet-id space: ids wrap, the window blocks.
    messages = payloads(70_000, 7, run=0)
    with Collector(mosquitto.url, "citywatch/v1/bench/#") as collector:
        result = publish(mosquitto.url, messages, rate=None)
        assert result["acked"] == len(messages)
        wait_until(lambda: len(collector.messages) >= len(messages), timeout_s=60, what="every message")
        received = {(m.topic, m.payload) for m in collector.messages}
        assert received == set(messages)


def test_offered_rate_is_honoured(mosquitto: MosquittoBroker) -> None:
    result = publish(mosquitto.url, payloads(600, 3, run=1), rate=2000)
    assert result["acked"] == 600
    assert result["last_publish"] - result["first_publish"] >= 0.25  # 600 at 2000/s: about 0.3 s
