"""The tests' MQTT clients, real paho on its own network thread: a QoS 1 publisher and a collector.

The collector records every message raw, as delivered; decoding (which validates against the
contract) and filtering by channel or message type happen when a test asks.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any, Self, TypeVar

import paho.mqtt.client as mqtt
from pydantic import BaseModel

from citywatch.mqtt import MqttOptions
from citywatch.protocol.codec import decode
from citywatch.protocol.topics import ROOT, VERSION_SEGMENT, Channel, Topic

M = TypeVar("M", bound=BaseModel)
EVERY_DEVICE = f"{ROOT}/{VERSION_SEGMENT}/#"


class Received:
    """One message as the broker delivered it; ``raw`` is paho's own (mid, dup) for tests of clients."""

    def __init__(self, raw: mqtt.MQTTMessage) -> None:
        self.raw = raw

    @property
    def topic(self) -> str:
        return self.raw.topic

    @property
    def payload(self) -> bytes:
        return bytes(self.raw.payload)

    @property
    def qos(self) -> int:
        return int(self.raw.qos)

    @property
    def retain(self) -> bool:
        return bool(self.raw.retain)

    @property
    def channel(self) -> str:
        return self.topic.rsplit("/", 1)[-1]

    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.payload)
        return result

    @cached_property
    def message(self) -> BaseModel:
        """The protocol message, decoded with the receivers' own checks (raises when it breaks the contract)."""
        return decode(self.topic, self.payload).message


class Publisher:
    """A device-side client publishing with QoS 1 and waiting for the broker's PUBACK."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        client_class: Callable[..., mqtt.Client] = mqtt.Client,
        **client_options: Any,
    ) -> None:
        options = MqttOptions.from_url(url)
        self.client = client_class(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
            **client_options,
        )
        self._before_connect(self.client)
        self.client.connect(options.host, options.port)
        self.client.loop_start()

    def _before_connect(self, client: mqtt.Client) -> None:
        """Subclasses set their callbacks here."""

    def publish(self, topic: str | Topic, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(str(topic), payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"publish to {topic} was not acknowledged by the broker"

    def close(self) -> None:
        # Disconnect first: it wakes the network thread, which loop_stop() would otherwise wait up to 1 s for.
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Collector(Publisher):
    """A persistent-session QoS 1 subscriber recording everything delivered; it reconnects by itself.

    Persistent: what is published while the broker restarts still reaches it. It can publish too
    (commands, configs). ``client_class`` and ``client_options`` choose the paho client under test.
    """

    def __init__(
        self,
        url: str,
        topic: str = EVERY_DEVICE,
        *,
        client_id: str | None = None,
        client_class: Callable[..., mqtt.Client] = mqtt.Client,
        **client_options: Any,
    ) -> None:
        self._topic = topic
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        super().__init__(
            url, client_id=client_id, clean_session=False, client_class=client_class, **client_options
        )
        if not self._subscribed.wait(10):
            self.close()
            raise AssertionError(f"no SUBACK for {topic} from the broker at {url}")

    def _before_connect(self, client: mqtt.Client) -> None:
        # Back within a tenth of a second after a broker restart (paho's hints say int; it takes floats).
        client.reconnect_delay_set(min_delay=0.1, max_delay=1)  # type: ignore[arg-type]
        client.on_connect = lambda c, *_: c.subscribe(self._topic, qos=1)  # again after each reconnect
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_message = self._on_message

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._received.append(Received(message))

    @property
    def messages(self) -> list[Received]:
        """Everything received so far, in arrival order (QoS 1: duplicates included)."""
        with self._lock:
            return list(self._received)

    def on(self, *channels: Channel) -> list[Received]:
        """The messages on any of ``channels``, in arrival order."""
        wanted = {channel.value for channel in channels}
        return [m for m in self.messages if m.channel in wanted]

    def of(self, kind: type[M]) -> list[M]:
        """The decoded messages of one type; every message received is decoded, so each is validated."""
        decoded = [m.message for m in self.messages]
        return [message for message in decoded if isinstance(message, kind)]


def first_occurrences(items: Iterable[bytes]) -> list[bytes]:
    """QoS 1 may deliver duplicates; the order that matters is that of first arrivals."""
    return list(dict.fromkeys(items))
