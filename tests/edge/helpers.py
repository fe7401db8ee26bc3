"""Test helpers for the edge tests: a real MQTT subscriber and condition polling."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

import paho.mqtt.client as mqtt

from citywatch.protocol.topics import Channel
from tests.support.polling import wait_until

T = TypeVar("T")


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def channel(self) -> str:
        return self.topic.rsplit("/", 1)[-1]

    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.payload)
        return result


class Subscriber:
    """A persistent-session QoS 1 subscriber that records everything (and reconnects by itself)."""

    def __init__(self, port: int, topic: str = "citywatch/#", *, host: str = "127.0.0.1") -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self._client.reconnect_delay_set(1, 2)
        self._client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        wait_until(self._subscribed.is_set, timeout_s=10, what="subscription")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, channel: Channel) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.channel == channel.value]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def first_occurrences(items: list[bytes]) -> list[bytes]:
    """QoS 1 may deliver duplicates; the order that matters is that of first arrivals."""
    seen: set[bytes] = set()
    ordered = []
    for item in items:
        if item not in seen:
            seen.add(item)
            ordered.append(item)
    return ordered
