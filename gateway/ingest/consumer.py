"""The MQTT side of ingest: a persistent QoS 1 session with manual acks and a batching writer thread."""

from __future__ import annotations

import logging
import queue
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy.exc import IntegrityError, OperationalError

from citywatch.mqtt import MqttOptions
from citywatch.protocol.codec import ClockBounds, RejectedMessage, decode
from citywatch.protocol.messages import EventMessage, TelemetryMessage
from citywatch.protocol.topics import DEVICE_TO_GATEWAY, EVERYTHING, gateway_to_device, subscription
from gateway.ingest.broker_session import BrokerSessionWatch
from gateway.ingest.client import disconnect_cause, make_client
from gateway.ingest.processor import BatchProcessor, Delivery
from gateway.ingest.receipts import ReceiptDesk
from gateway.ingest.stats import IngestStats
from gateway.redaction import redact_text

log = logging.getLogger("gateway.ingest")

# Database errors worth waiting out (server down, file locked); anything else is a bad message.
TRANSIENT_ERRORS = (OperationalError, sqlite3.OperationalError, OSError)
QUEUED = frozenset({mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN})  # paho has a message we publish
DEFERRED_RETRY_S = 0.2  # how often deferred messages are tried again


@dataclass(frozen=True, slots=True)
class IngestOptions:
    client_id: str
    max_payload_bytes: int
    max_batch: int = 1000
    event_batch: int = 8  # events taken ahead of the rest of a batch, committed this many at a time
    presence_flush_s: float = 2.0
    linger_s: float = 0.005
    retry_delay_s: float = 0.5
    retry_delay_max_s: float = 10.0
    clock: ClockBounds | None = None  # device timestamps are judged against the gateway's clock
    share_group: str = ""  # non-empty: $share/<group>/citywatch/#, one of the group's gateways takes each

    @property
    def subscription(self) -> str:
        return f"$share/{self.share_group}/{EVERYTHING}" if self.share_group else EVERYTHING


class MqttIngest:
    """Subscribe to everything under ``citywatch/`` (what breaks the contract is refused by reason, not
    missed); ack each message only after its batch is committed."""

    def __init__(
        self,
        *,
        mqtt_options: MqttOptions,
        options: IngestOptions,
        processor: BatchProcessor,
        stats: IngestStats,
        on_outbox_changed: Callable[[], None] = lambda: None,
        receipts: ReceiptDesk | None = None,
        session_watch: BrokerSessionWatch | None = None,
    ) -> None:
        self._mqtt_options = mqtt_options
        self.receipts = receipts or ReceiptDesk(interval_s=1.0)
        self.session_watch = session_watch or BrokerSessionWatch(had_session_before=lambda: False)
        self._options = options
        self._processor = processor
        self._refusals = processor.refusals
        self._stats = stats
        self._on_outbox_changed = on_outbox_changed
        self._queue: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self._accepting = threading.Event()
        self._stop_writer = threading.Event()
        self._connected = threading.Event()
        self._storing_since: float | None = None
        # Updates of events not seen begin yet (BatchProcessor unknown_event_wait_s): tried again with
        # later batches, acknowledged once stored or refused.
        self._deferred: list[Delivery] = []
        self._just_deferred: list[Delivery] = []
        self._next_deferred_try = 0.0
        self.last_disconnect: str | None = None  # why the last connection ended, in words (for /health)
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._client = self._make_client()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def writer_alive(self) -> bool:
        return self._writer.is_alive()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def _make_client(self) -> mqtt.Client:
        client = make_client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self._options.client_id,
            clean_session=False,  # the broker queues QoS 1 messages for us while we are away
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if self._mqtt_options.username:
            client.username_pw_set(self._mqtt_options.username, self._mqtt_options.password)
        if self._mqtt_options.tls:
            client.tls_set(ca_certs=self._mqtt_options.ca_file)  # None: the system's CAs
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        self._accepting.set()
        self._writer.start()
        self._client.connect_async(
            self._mqtt_options.host, self._mqtt_options.port, self._mqtt_options.keepalive_s
        )
        self._client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking messages, store and ack everything already taken, then disconnect."""
        self._accepting.clear()  # messages arriving now stay unacked: the broker redelivers them
        self._stop_writer.set()
        self._writer.join(timeout_s)
        if self._writer.is_alive():
            log.error(
                "ingest writer did not finish within %.0f s; unacked messages will be redelivered", timeout_s
            )
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def publish(self, topic: str, payload: bytes, retain: bool) -> bool:
        """Gateway -> device (``cmd``, ``config``) on this session, QoS 1; False: not connected, nothing sent.

        True means paho has it: it is sent now, or again after a reconnect, until the broker acknowledges."""
        if not self.connected:
            return False
        # NO_CONN: the connection dropped just now; paho keeps a QoS 1 message and sends it on reconnect.
        return self._client.publish(topic, payload, qos=1, retain=retain).rc in QUEUED

    # -- network thread: decode and enqueue only ------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT connection to %s refused: %s", self._mqtt_options.url, reason)
            return
        client.subscribe(self._options.subscription, 1)
        # Then leave the filters this session held before (a persistent session keeps them: per-channel
        # ones of older gateways, the plain one once it joins a share group) after the new one is in
        # place, so that nothing published meanwhile is missed and nothing arrives twice.
        stale = [subscription(channel) for channel in sorted(DEVICE_TO_GATEWAY)]
        stale += [EVERYTHING] if self._options.share_group else []
        client.unsubscribe(stale)
        self._connected.set()
        log.info(
            "MQTT connected to %s as %s (session present: %s)",
            self._mqtt_options.url,
            self._options.client_id,
            flags.session_present,
        )
        self.session_watch.connected(
            session_present=bool(flags.session_present),
            broker=self._mqtt_options.url,
            client_id=self._options.client_id,
        )

    def _on_disconnect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if self._connected.is_set() and self._accepting.is_set():
            self.last_disconnect = disconnect_cause(client, flags, reason)
            log.warning("MQTT disconnected from %s: %s", self._mqtt_options.url, self.last_disconnect)
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if not self._accepting.is_set():
            return
        try:
            topic = message.topic
            payload = bytes(message.payload)
            if not payload:  # a retained topic cleared (a decommissioned device, a stale config): not input
                self._stats.count_cleared()
            elif not gateway_to_device(topic):  # what the gateway (or an operator) sends devices is not input
                self._stats.count_received()
                decoded = decode(
                    topic, payload, max_bytes=self._options.max_payload_bytes, clock=self._options.clock
                )
                device_time = getattr(decoded.message, "ts", None)
                if device_time is not None:
                    self._refusals.observe_clock(decoded.topic.device_id, device_time)
                self._queue.put(Delivery(decoded=decoded, mid=message.mid, qos=message.qos))
                return
        except RejectedMessage as exc:
            offset_s = getattr(exc, "offset_s", None)  # a ClockRejected: the device's clock is off
            self._refusals.record(
                exc.reason,
                exc.detail,
                _safe_topic(message),
                clock_offset_s=offset_s,
                refused=bytes(message.payload),
            )
        except Exception as exc:  # never let input kill the network loop
            self._refusals.record("undecodable", repr(exc), _safe_topic(message))
        client.ack(message.mid, message.qos)  # refused for good, or not input: never redeliver

    # -- writer thread --------------------------------------------------------------------------

    def _take_batch(self) -> list[Delivery]:
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        # Linger once so a stream makes few large commits (one fsync each) rather than many tiny ones.
        # Sleeping, then taking what came, rather than waiting on the queue: a wait is woken by every
        # message, a thread switch and a GIL hand-off per message while the network thread is busiest.
        self._drain_into(batch)
        # ...but not with an event in hand: an event is stored at once, whatever came with it.
        if (
            len(batch) < self._options.max_batch
            and self._options.linger_s > 0
            and not any(isinstance(delivery.decoded.message, EventMessage) for delivery in batch)
        ):
            time.sleep(self._options.linger_s)
            self._drain_into(batch)
        return batch

    def _drain_into(self, batch: list[Delivery]) -> None:
        get = self._queue.get_nowait
        try:
            while len(batch) < self._options.max_batch:
                batch.append(get())
        except queue.Empty:
            pass

    def _write_loop(self) -> None:
        try:
            self._write_batches()
        except Exception:  # a bug here would silently stop ingest: make it loud
            log.exception("ingest writer crashed; unacknowledged messages are redelivered after a restart")
            raise

    def _write_batches(self) -> None:
        last_presence_flush = time.monotonic()
        while True:
            batch = self._due_deferred() + self._take_batch()
            flush_presence = time.monotonic() - last_presence_flush >= self._options.presence_flush_s
            if not batch:
                if self._stop_writer.is_set():
                    break
                if flush_presence and self._processor.presence_pending:
                    self._store([], flush_presence=True)
                    last_presence_flush = time.monotonic()
                self._processor.housekeeping()
                self.receipts.publish_due(self._client, connected=self.connected)
                continue
            parts = events_first(batch, size=self._options.event_batch)
            if not all(
                self._store_part(part, flush_presence=flush_presence and part is parts[-1]) for part in parts
            ):
                break  # stopping while the database is unreachable: leave the rest unacked
            if flush_presence:
                last_presence_flush = time.monotonic()
        self._store([], flush_presence=True)
        self.receipts.publish_due(self._client, connected=self.connected, force=True)  # before disconnecting

    def _store_part(self, part: list[Delivery], *, flush_presence: bool) -> bool:
        """Store, then acknowledge, one part of a batch; False: stopping with it not stored."""
        if not self._store(part, flush_presence=flush_presence):
            return False
        if self._just_deferred:
            waiting = {delivery.mid for delivery in self._just_deferred}  # unique while unacked
            self._deferred += self._just_deferred
            self._just_deferred = []
            part = [delivery for delivery in part if delivery.mid not in waiting]
        ack_all(self._client, part)
        self.receipts.publish_due(self._client, connected=self.connected)
        return True

    def _due_deferred(self) -> list[Delivery]:
        if not self._deferred or time.monotonic() < self._next_deferred_try:
            return []
        self._next_deferred_try = time.monotonic() + DEFERRED_RETRY_S
        due, self._deferred = self._deferred, []
        return due

    @property
    def storing_for_s(self) -> float:
        """How long the writer has been on its current batch (0 when idle): grows while the database
        hangs or keeps refusing writes, which /health reports."""
        since = self._storing_since
        return 0.0 if since is None else time.monotonic() - since

    def _store(self, batch: list[Delivery], *, flush_presence: bool) -> bool:
        if self._storing_since is not None:  # the message-by-message retry inside a batch
            return self._store_batch(batch, flush_presence=flush_presence)
        self._storing_since = time.monotonic()
        try:
            return self._store_batch(batch, flush_presence=flush_presence)
        finally:
            self._storing_since = None

    def _store_batch(self, batch: list[Delivery], *, flush_presence: bool) -> bool:
        """True once the batch is committed (bad messages refused); False if told to stop while retrying."""
        delay = self._options.retry_delay_s
        attempts_while_stopping = 0
        conflict_retried = False
        while True:
            try:
                result = self._processor.process(batch, flush_presence=flush_presence)
                break
            except TRANSIENT_ERRORS as exc:
                self._stats.count_retry(error=redact_text(f"{type(exc).__name__}: {exc}")[:500])
                log.warning("storing a batch of %d failed (%s); retrying in %.1f s", len(batch), exc, delay)
            except IntegrityError as exc:
                # Usually another gateway of the share group committed the same row (a device's message
                # redelivered to it, an event opened at the same moment): once more, the look-ups see
                # it and the message is a duplicate or an update. Twice in a row is a real fault.
                if len(batch) <= 1 and not conflict_retried:
                    conflict_retried = True
                    log.info("storing a message conflicted with another writer (%s); once more", exc.orig)
                    continue
                if len(batch) <= 1:
                    log.exception("message could not be stored; refused as processing_error")
                    self._stats.refuse("processing_error")
                    return True
                return all(self._store([delivery], flush_presence=flush_presence) for delivery in batch)
            except Exception:
                if len(batch) <= 1:
                    log.exception("message could not be stored; refused as processing_error")
                    self._stats.refuse("processing_error")
                    return True
                # Find the message at fault: store one by one (each is idempotent).
                return all(self._store([delivery], flush_presence=flush_presence) for delivery in batch)
            if self._stop_writer.is_set():
                attempts_while_stopping += 1
                if attempts_while_stopping >= 3:
                    return False
            time.sleep(delay)
            delay = min(delay * 2, self._options.retry_delay_max_s)
        self._stats.write_succeeded()
        self._just_deferred += result.deferred
        self.receipts.stored(result.numbered)  # committed: the devices may forget these
        if batch:
            self._stats.record_batch(
                size=len(batch),
                accepted=result.accepted,
                events=result.events,
                telemetry=result.telemetry,
                evidence=result.evidence,
            )
        if result.outbox_changed:
            self._on_outbox_changed()
        return True


def events_first(batch: list[Delivery], *, size: int) -> list[list[Delivery]]:
    """A batch in parts to store one after the other: its events first, ``size`` per transaction, so
    an event is committed (and its notification sent) without waiting for the telemetry and evidence
    that came with it; then the rest. A device's messages other than telemetry keep their order (an
    event behind its device's state or evidence stays behind it); telemetry goes to its own store,
    after the events of its batch as before."""
    events: list[Delivery] = []
    rest: list[Delivery] = []
    held: set[str] = set()  # devices with a message in ``rest`` that their events must not overtake
    for delivery in batch:
        device = delivery.decoded.topic.device_id
        message = delivery.decoded.message
        if isinstance(message, EventMessage) and device not in held:
            events.append(delivery)
            continue
        rest.append(delivery)
        if not isinstance(message, TelemetryMessage):
            held.add(device)
    parts = [events[start : start + size] for start in range(0, len(events), max(1, size))]
    return [*parts, rest] if rest or not parts else parts


def ack_all(client: mqtt.Client, deliveries: list[Delivery]) -> None:
    """PUBACK every QoS 1 message of a batch in ONE socket write.

    ``client.ack()`` per message costs a wake-up of paho's loop and a send() each, which halves the
    ingest rate; the packets are the same 4 bytes paho would build (MQTT 3.1.1, 3.4).
    """
    mids = [d.mid for d in deliveries if d.qos == 1]
    if not mids:
        return
    queue_packet = getattr(client, "_packet_queue", None)
    if queue_packet is None:  # a paho without the private helper: the slow, public way
        for mid in mids:
            client.ack(mid, 1)
        return
    packets = b"".join(struct.pack("!BBH", mqtt.PUBACK, 2, mid) for mid in mids)
    queue_packet(mqtt.PUBACK, packets, 0, 1)


def _safe_topic(message: mqtt.MQTTMessage) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:
        return repr(message._topic)
