"""Device <-> broker link with a store-and-forward outbox on disk (used by every edge agent).

``send`` appends to the SQLite outbox and returns at once; one network thread connects (with backoff),
publishes the retained birth ``state`` with a fresh session number (the will carries the same number),
drains the outbox in order with QoS 1, and deletes each row only on its PUBACK. Commands and config
pushes arrive on ``cmd`` / ``config`` and are answered on ``ack``.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel

from citywatch import __version__
from citywatch.mqtt import MqttOptions
from citywatch.protocol.codec import RejectedMessage, decode
from citywatch.protocol.messages import AckMessage, CommandMessage, ConfigMessage, DeviceType, StateMessage
from citywatch.protocol.topics import Channel, Topic
from edge.outbox import Outbox

log = logging.getLogger(__name__)

# A command handler answers (ok, message), or None for "not mine" (the uplink then says unknown command).
CommandHandler = Callable[[CommandMessage], "tuple[bool, str] | None"]
ConfigHandler = Callable[[ConfigMessage], "tuple[bool, str]"]


def validate_pushed_config(message: ConfigMessage) -> tuple[bool, str]:
    """Default config handler: validate against the device config model and say why not."""
    from edge.config import ConfigError, validate_config_dict

    try:
        validate_config_dict(message.config, source="pushed config")
    except ConfigError as exc:
        return False, "; ".join(exc.problems)[:1000]
    return True, "valid"


class Uplink:
    def __init__(
        self,
        options: MqttOptions,
        site: str,
        device_id: str,
        device_type: DeviceType | str,
        config_version: str,
        outbox_path: str | Path,
        on_command: CommandHandler | None = None,
        *,
        on_config: ConfigHandler | None = None,
        max_messages: int = 100_000,
        fsync: bool = True,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        max_inflight: int = 50,
        firmware_version: str = __version__,
    ) -> None:
        self.options = options
        self.site = site
        self.device_id = device_id
        self.device_type = DeviceType(device_type)
        self.config_version = config_version
        self.firmware_version = firmware_version
        self.on_command = on_command
        self.on_config = on_config or validate_pushed_config
        self.outbox = Outbox(outbox_path, max_messages=max_messages, fsync=fsync)
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.max_inflight = max_inflight
        self.session = 0
        self.published = 0
        self._connected = threading.Event()
        self._stopping = threading.Event()
        # send() pokes this socket so the network thread publishes at once instead of at its next poll.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._acked: list[int] = []
        self._last_sent_id = 0

    # -- public API -------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def queue_depth(self) -> int:
        return self.outbox.depth

    @property
    def dropped(self) -> int:
        return self.outbox.dropped

    def topic(self, channel: Channel) -> str:
        return str(Topic(self.site, self.device_id, channel))

    def send(self, channel: Channel, message: BaseModel) -> None:
        """Durably queue a message (telemetry may be dropped when the outbox is full; nothing else is)."""
        payload = message.to_json() if hasattr(message, "to_json") else message.model_dump_json().encode()
        self.outbox.append(channel.value, payload, droppable=channel is Channel.TELEMETRY)
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # already poked (buffer full), or closed
            self._wake_w.send(b"x")

    def start(self) -> Uplink:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"uplink-{self.device_id}", daemon=True)
            self._thread.start()
        return self

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def flush(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while self.outbox.depth > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.outbox.depth == 0

    def stop(self, flush_timeout_s: float = 3.0) -> None:
        """Deliver what can be delivered within ``flush_timeout_s``, say offline, disconnect."""
        if self._thread is None:
            self.outbox.close()
            return
        if self.connected and flush_timeout_s > 0:
            self.flush(flush_timeout_s)
        self._stopping.set()
        self._poke()
        self._thread.join(timeout=10)
        self._thread = None
        self.outbox.close()
        self._wake_r.close()
        self._wake_w.close()
        if self.outbox.depth:
            log.info("stopped with %d message(s) still queued in %s", self.outbox.depth, self.outbox.path)

    # -- network thread ---------------------------------------------------------------------------
    def _state(self, status: str) -> bytes:
        return StateMessage(
            device_id=self.device_id,
            ts=datetime.now(UTC),
            status=status,  # type: ignore[arg-type]
            session=self.session,
            device_type=self.device_type,
            firmware_version=self.firmware_version,
            config_version=self.config_version,
        ).to_json()

    def _new_client(self) -> mqtt.Client:
        self.session = self.outbox.next_session()
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"citywatch-{self.site}-{self.device_id}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(0)
        if self.options.username:
            client.username_pw_set(self.options.username, self.options.password)
        if self.options.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self.topic(Channel.STATE), self._state("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _run(self) -> None:
        backoff = self.reconnect_min_s
        while not self._stopping.is_set():
            client = self._new_client()
            try:
                client.connect(self.options.host, self.options.port, keepalive=self.options.keepalive_s)
            except OSError as exc:
                log.info(
                    "broker %s unreachable (%s); retry in %.1fs, %d queued",
                    self.options.url,
                    exc,
                    backoff,
                    self.queue_depth,
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)
                continue
            self._client = client
            self._inflight.clear()
            self._acked.clear()
            self._last_sent_id = 0  # resend everything not yet acknowledged, in order
            alive = True
            while alive and not self._stopping.is_set():
                alive = self._step(client, timeout_s=1.0)
                if self._acked:
                    self.outbox.delete(self._acked)
                    self._acked.clear()
                if alive and self.connected:
                    backoff = self.reconnect_min_s
                    self._pump(client)
            if self._stopping.is_set() and self.connected:
                # Graceful: retained offline (the will only fires on an unexpected loss).
                info = client.publish(self.topic(Channel.STATE), self._state("offline"), qos=1, retain=True)
                deadline = time.monotonic() + 2
                while not info.is_published() and time.monotonic() < deadline:
                    if not self._step(client, timeout_s=0.05):
                        break
                client.disconnect()
            self._connected.clear()
            self._client = None
            if not self._stopping.is_set():
                log.warning(
                    "disconnected from %s; reconnecting in %.1fs, %d queued",
                    self.options.url,
                    backoff,
                    self.queue_depth,
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)

    def _step(self, client: mqtt.Client, *, timeout_s: float) -> bool:
        """One turn of paho's external-loop API, woken by the socket or by send(); False: connection lost."""
        sock = client.socket()
        if sock is None:
            return False
        # poll(), not select(): select() fails on descriptors above 1023, which a simulated fleet of
        # a few hundred devices (socket, wake pipe and SQLite files each) in one process reaches.
        poller = select.poll()
        poller.register(sock, select.POLLIN | (select.POLLOUT if client.want_write() else 0))
        poller.register(self._wake_r, select.POLLIN)
        try:
            ready = dict(poller.poll(timeout_s * 1000))
        except OSError:
            return False
        sock_events = ready.get(sock.fileno(), 0)
        if sock_events & (select.POLLERR | select.POLLNVAL):
            return False
        readable = sock_events & (select.POLLIN | select.POLLHUP)
        writable = sock_events & select.POLLOUT
        if ready.get(self._wake_r.fileno(), 0) & select.POLLIN:
            try:
                while self._wake_r.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass
        ok = mqtt.MQTT_ERR_SUCCESS
        if readable and client.loop_read() != ok:
            return False
        if (writable or client.want_write()) and client.loop_write() != ok:
            return False
        return client.loop_misc() == ok

    def _pump(self, client: mqtt.Client) -> None:
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for row in self.outbox.peek(after_id=self._last_sent_id, limit=room):
            info = client.publish(self.topic(Channel(row.channel)), row.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # connection dropped; resent after reconnect
            self._inflight[info.mid] = row.id
            self._last_sent_id = row.id
            self.published += 1

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker %s refused the connection: %s", self.options.url, reason)
            client.disconnect()
            return
        client.publish(self.topic(Channel.STATE), self._state("online"), qos=1, retain=True)
        client.subscribe([(self.topic(Channel.CMD), 1), (self.topic(Channel.CONFIG), 1)])
        self._connected.set()
        log.info(
            "connected to %s (session %d, resumed=%s), %d queued",
            self.options.url,
            self.session,
            bool(getattr(flags, "session_present", False)),
            self.queue_depth,
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._connected.clear()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        row_id = self._inflight.pop(mid, None)
        if row_id is not None:
            self._acked.append(row_id)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            decoded = decode(message.topic, bytes(message.payload))
        except RejectedMessage as exc:
            log.warning("ignored message on %s: %s", message.topic, exc)
            return
        incoming = decoded.message
        if isinstance(incoming, CommandMessage):
            ok, text = self._handle_command(incoming)
        elif isinstance(incoming, ConfigMessage):
            if incoming.config_version == self.config_version:
                ok, text = True, "already running this config"
            else:
                ok, text = self.on_config(incoming)
        else:
            return
        log.info("%s %s -> ok=%s %s", decoded.topic.channel, getattr(incoming, "command", "config"), ok, text)
        ack = AckMessage(
            device_id=self.device_id, cmd_id=incoming.cmd_id, ts=datetime.now(UTC), ok=ok, message=text[:1000]
        )
        client.publish(self.topic(Channel.ACK), ack.to_json(), qos=1)

    def _handle_command(self, command: CommandMessage) -> tuple[bool, str]:
        if command.command == "ping":
            return True, "pong"
        result = None
        if self.on_command is not None:
            try:
                result = self.on_command(command)
            except Exception as exc:  # a handler bug must not kill the link
                log.exception("command %s failed", command.command)
                return False, f"command failed: {exc}"
        if result is None:
            return False, f"unknown command {command.command!r}"
        return result
