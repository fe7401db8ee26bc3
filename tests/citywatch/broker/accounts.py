"""MQTT test clients that log in (user, password, and a CA for mqtts://) on a broker with accounts."""

from __future__ import annotations

import ssl
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from citywatch.mqtt import MqttOptions
from tests.support.mqtt import Collector


class AccountCollector(Collector):
    """``Collector`` logged in as ``username``."""

    def __init__(
        self, url: str, topic: str, *, username: str, password: str, ca_file: str | None = None
    ) -> None:
        self._login = (username, password, ca_file)
        super().__init__(url, topic)

    def _before_connect(self, client: mqtt.Client) -> None:
        super()._before_connect(client)
        username, password, ca_file = self._login
        client.username_pw_set(username, password)
        if ca_file is not None:
            client.tls_set(ca_certs=ca_file)


def connect_result(
    url: str, *, username: str | None, password: str | None, ca_file: str | None = None
) -> Any:
    """The broker's answer to a CONNECT (paho's reason code), or the exception of a TLS failure."""
    options = MqttOptions.from_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
    if username is not None:
        client.username_pw_set(username, password)
    if options.tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    answered = threading.Event()
    result: dict[str, Any] = {}

    def on_connect(_client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        result["reason"] = reason
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(options.host, options.port)
    except (ssl.SSLError, OSError) as exc:
        return exc
    client.loop_start()
    try:
        if not answered.wait(10):
            return TimeoutError("no CONNACK")
        return result["reason"]
    finally:
        client.disconnect()
        client.loop_stop()
