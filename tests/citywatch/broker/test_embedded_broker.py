"""The embedded broker carries the contract's messages (the demo's default without Mosquitto)."""

from __future__ import annotations

from citywatch.broker.embedded import EmbeddedBroker
from tests.support.mqtt import Collector, Publisher
from tests.support.polling import wait_until


def test_embedded_broker_delivers_qos1() -> None:
    broker = EmbeddedBroker().start()
    try:
        with (
            Collector(broker.url, "citywatch/v1/+/+/telemetry") as collector,
            Publisher(broker.url) as publisher,
        ):
            for i in range(20):
                publisher.publish("citywatch/v1/s/d/telemetry", str(i).encode())
            wait_until(lambda: len(collector.messages) >= 20, timeout_s=10, what="all 20 messages")
            assert [m.payload for m in collector.messages] == [str(i).encode() for i in range(20)]
    finally:
        broker.stop()
