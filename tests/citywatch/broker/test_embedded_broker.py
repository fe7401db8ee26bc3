"""The embedded broker carries the contract's messages (the demo's default without Mosquitto)."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from citywatch.broker.embedded import EmbeddedBroker


def test_embedded_broker_delivers_qos1() -> None:
    broker = EmbeddedBroker().start()
    try:
        received: list[bytes] = []
        got = threading.Event()

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            received.append(msg.payload)
            if len(received) == 20:
                got.set()

        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sub")
        sub.on_message = on_message
        subscribed = threading.Event()
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.connect(broker.host, broker.port)
        sub.subscribe("citywatch/v1/+/+/telemetry", qos=1)
        sub.loop_start()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub")
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        assert subscribed.wait(10), "no SUBACK from the embedded broker"
        for i in range(20):
            pub.publish("citywatch/v1/s/d/telemetry", str(i).encode(), qos=1).wait_for_publish(5)
        assert got.wait(10), f"only {len(received)} of 20 arrived"
        assert received == [str(i).encode() for i in range(20)]
        pub.loop_stop()
        sub.loop_stop()
        pub.disconnect()
        sub.disconnect()
    finally:
        broker.stop()
