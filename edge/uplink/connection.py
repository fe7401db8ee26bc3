"""The network thread: connect (backing off while the broker is away), birth and will, paho's external loop.

Each connection gets a fresh session number from the outbox; the retained birth ``state`` and the
will carry it. Every turn of the loop lets the pump put the outbox on the wire; what arrives on
``cmd`` / ``config`` is answered by the inbox, receipts on ``receipt`` go to the pump, and what the
gateway refused (``refusal``) is logged and counted. ``wake()`` (any thread) ends the current wait at once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from citywatch.mqtt import MqttOptions
from citywatch.protocol.codec import RejectedMessage, decode
from citywatch.protocol.messages import ReceiptMessage
from citywatch.protocol.topics import Channel
from edge.outbox import Outbox
from edge.uplink.commands import Inbox
from edge.uplink.identity import DeviceIdentity
from edge.uplink.pump import OutboxPump
from edge.uplink.refusals import RefusalInbox

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: the first, then doubling up to the longest; each wait is jittered."""

    first_s: float
    longest_s: float

    def after(self, delay_s: float) -> float:
        return min(delay_s * 2, self.longest_s)

    @staticmethod
    def jittered(delay_s: float, *, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """A wait between half the delay and the delay: a fleet that lost its broker together does not
        knock on it again in one wave."""
        return uniform(delay_s / 2, delay_s)


class Connection:
    def __init__(
        self,
        options: MqttOptions,
        device: DeviceIdentity,
        outbox: Outbox,
        pump: OutboxPump,
        inbox: Inbox,
        backoff: Backoff,
        refusals: RefusalInbox | None = None,
    ) -> None:
        self.options = options
        self.device = device
        self.outbox = outbox
        self.pump = pump
        self.inbox = inbox
        self.backoff = backoff
        self.refusals = refusals or RefusalInbox()
        self.session = 0
        self.connected = threading.Event()
        # Set once the broker has acknowledged the inbound subscriptions: only then can a command
        # published elsewhere reach this device (before, a fresh session would drop it).
        self.subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self._stopping = threading.Event()
        # wake() pokes this socket so the loop publishes at once instead of at its next poll.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"uplink-{self.device.device_id}", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # already poked (buffer full), or closed
            self._wake_w.send(b"x")

    def stop(self) -> None:
        """Say offline, disconnect and end the thread (without waiting for the outbox: the caller does)."""
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._wake_r.close()
        self._wake_w.close()

    def _new_client(self) -> mqtt.Client:
        self.session = self.outbox.next_session()
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"citywatch-{self.device.site}-{self.device.device_id}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.max_inflight_messages_set(self.pump.max_inflight)
        client.max_queued_messages_set(0)
        if self.options.username:
            client.username_pw_set(self.options.username, self.options.password)
        if self.options.tls:
            client.tls_set(ca_certs=self.options.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(
            self.device.topic(Channel.STATE), self.device.state("offline", self.session), qos=1, retain=True
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _run(self) -> None:
        backoff = self.backoff.first_s
        while not self._stopping.is_set():
            client = self._new_client()
            try:
                client.connect(self.options.host, self.options.port, keepalive=self.options.keepalive_s)
            except OSError as exc:
                wait_s = Backoff.jittered(backoff)
                log.info(
                    "broker %s unreachable (%s); retry in %.1fs, %d queued",
                    self.options.url,
                    exc,
                    wait_s,
                    self.outbox.depth,
                )
                self._stopping.wait(wait_s)
                backoff = self.backoff.after(backoff)
                continue
            self.pump.restart()
            alive = True
            while alive and not self._stopping.is_set():
                alive = self._step(client, timeout_s=1.0)
                self.pump.delete_acknowledged()
                if alive and self.connected.is_set():
                    backoff = self.backoff.first_s
                    self.pump.resend_if_unconfirmed()
                    self.pump.publish_next(client)
            if self._stopping.is_set() and self.connected.is_set():
                self._say_goodbye(client)
            self.connected.clear()
            self.subscribed.clear()
            if not self._stopping.is_set():
                wait_s = Backoff.jittered(backoff)
                log.warning(
                    "disconnected from %s; reconnecting in %.1fs, %d queued",
                    self.options.url,
                    wait_s,
                    self.outbox.depth,
                )
                self._stopping.wait(wait_s)
                backoff = self.backoff.after(backoff)

    def _say_goodbye(self, client: mqtt.Client) -> None:
        # Graceful: retained offline (the will only fires on an unexpected loss).
        info = client.publish(
            self.device.topic(Channel.STATE), self.device.state("offline", self.session), qos=1, retain=True
        )
        deadline = time.monotonic() + 2
        while not info.is_published() and time.monotonic() < deadline:
            if not self._step(client, timeout_s=0.05):
                break
        client.disconnect()

    def _step(self, client: mqtt.Client, *, timeout_s: float) -> bool:
        """One turn of paho's external-loop API, woken by the socket or by wake(); False: connection lost."""
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

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker %s refused the connection: %s", self.options.url, reason)
            client.disconnect()
            return
        client.publish(
            self.device.topic(Channel.STATE), self.device.state("online", self.session), qos=1, retain=True
        )
        inbound = [Channel.CMD, Channel.CONFIG, Channel.REFUSAL]
        inbound += [Channel.RECEIPT] if self.pump.receipts else []
        _, self._subscribe_mid = client.subscribe([(self.device.topic(channel), 1) for channel in inbound])
        self.connected.set()
        log.info(
            "connected to %s (session %d, resumed=%s), %d queued",
            self.options.url,
            self.session,
            bool(getattr(flags, "session_present", False)),
            self.outbox.depth,
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        refused = [str(reason) for reason in reasons if getattr(reason, "is_failure", False)]
        if refused:
            log.error("broker %s refused a subscription: %s", self.options.url, ", ".join(refused))
        if mid == self._subscribe_mid:
            self.subscribed.set()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self.pump.acknowledged(mid)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.device.topic(Channel.RECEIPT):
            self._take_receipt(message.topic, bytes(message.payload))
            return
        if message.topic == self.device.topic(Channel.REFUSAL):
            self.refusals.take(message.topic, bytes(message.payload))
            return
        ack = self.inbox.answer(message.topic, bytes(message.payload))
        if ack is not None:
            client.publish(self.device.topic(Channel.ACK), ack.to_json(), qos=1)

    def _take_receipt(self, topic: str, payload: bytes) -> None:
        try:
            receipt = decode(topic, payload).message
        except RejectedMessage as exc:
            log.warning("ignored receipt on %s: %s", topic, exc)
            return
        if isinstance(receipt, ReceiptMessage):
            self.pump.receipt(receipt)
