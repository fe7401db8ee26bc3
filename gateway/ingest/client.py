"""A paho client that reads the socket in large chunks.

paho reads every packet with about four ``recv()`` calls (command byte, length bytes, body). At
thousands of messages a second those system calls, and the GIL hand-offs around each of them while
the writer thread works, cost more than decoding the messages. This client fills a 64 KiB buffer
per ``recv()`` and cuts every whole packet out of it in one slice (paho's byte-by-byte reader only
runs for a packet split across two reads).

It also notes how a connection ended (the broker closed it, or the network failed with which error),
which paho's ``on_disconnect`` reports as "Unspecified error" for both: ``disconnect_cause`` names it.

It also hands MQTT 3.1.1 QoS 0/1 PUBLISH packets (as a lean ``ReceivedMessage``) straight to
``on_message``: paho's handler builds format strings to unpack them, formats a debug line and walks
the topic matcher of ``message_callback_add`` for every message (with paho's message object, a
quarter of the network thread's time). So ``message_callback_add`` is not supported here; QoS 2,
MQTT 5 and automatic acks go through paho unchanged.

Both override paho's private internals, which change between minor releases (2.1 has no
``paho.mqtt.exception`` and keeps ``_last_msg_in`` instead of ``_last_bytes_received``). So
``make_client`` uses this client only on the paho it was tested with (pyproject pins that range) and
otherwise says so at start-up and falls back to paho's public ``Client``: slower, just as correct.
"""

from __future__ import annotations

import logging
import struct
import time
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt

try:
    from paho.mqtt.exception import MalformedPacket
except ImportError:  # another paho than the tested one: make_client() never builds a BufferedReadClient
    MalformedPacket = ValueError  # type: ignore[assignment,misc]

log = logging.getLogger("gateway.ingest")
TESTED_PAHO = "2.2"  # the minor release whose internals are overridden below; keep pyproject's pin in step
# What BufferedReadClient overrides or calls of paho's private API.
PAHO_INTERNALS = (
    "_sock_recv",
    "_sock_send",
    "_packet_read",
    "_packet_handle",
    "_handle_publish",
    "_loop_rc_handle",
    "_easy_log",
)


def make_client(*args: Any, **kwargs: Any) -> mqtt.Client:
    """A ``BufferedReadClient`` on the tested paho, else paho's own ``Client`` (with a warning saying why)."""
    version = getattr(paho.mqtt, "__version__", "unknown")
    missing = [name for name in PAHO_INTERNALS if not hasattr(mqtt.Client, name)]
    if version.startswith(f"{TESTED_PAHO}.") and not missing:
        return BufferedReadClient(*args, **kwargs)
    log.warning(
        "paho-mqtt %s is installed, but the ingest's fast client is tested with paho-mqtt %s.x only%s: "
        "using paho's public client instead (correct, slower). Install paho-mqtt==%s.* for full speed.",
        version,
        TESTED_PAHO,
        f" (missing {', '.join(missing)})" if missing else "",
        TESTED_PAHO,
    )
    return mqtt.Client(*args, **kwargs)


class BufferedReadClient(mqtt.Client):
    READ_CHUNK = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_pos = 0
        self.connection_end: str | None = None  # how the socket ended, for disconnect_cause()

    def reconnect(self) -> mqtt.MQTTErrorCode:
        self._read_buffer, self._read_pos = b"", 0  # bytes of the old connection mean nothing now
        self.connection_end = None
        return super().reconnect()

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_pos >= len(self._read_buffer):
            try:
                self._read_buffer, self._read_pos = super()._sock_recv(self.READ_CHUNK), 0
            except BlockingIOError:
                raise
            except OSError as exc:
                self.connection_end = _socket_error(exc)
                raise
            if not self._read_buffer:
                self.connection_end = CLOSED_BY_BROKER
        chunk = self._read_buffer[self._read_pos : self._read_pos + bufsize]
        self._read_pos += len(chunk)
        return chunk

    def _sock_send(self, buf: bytes | bytearray) -> int:
        try:
            return super()._sock_send(buf)
        except BlockingIOError:
            raise
        except OSError as exc:
            self.connection_end = _socket_error(exc)
            raise

    def _packet_read(self) -> mqtt.MQTTErrorCode:
        # Fast path: paho is between packets and the buffer holds a whole one, so it is cut out in one
        # slice instead of paho's byte-by-byte state machine. Anything else: paho reads it.
        buffer, pos = self._read_buffer, self._read_pos
        if self._in_packet["command"] != 0 or len(buffer) - pos < 2:
            return super()._packet_read()
        length, multiplier, at = 0, 1, pos + 1
        while True:
            if at >= len(buffer) or at - pos > 4:  # incomplete or over-long length: paho decides
                return super()._packet_read()
            byte = buffer[at]
            length += (byte & 127) * multiplier
            multiplier *= 128
            at += 1
            if not byte & 128:
                break
        if at + length > len(buffer):
            return super()._packet_read()
        self._in_packet = {
            "command": buffer[pos],
            "have_remaining": 1,
            "remaining_count": list(buffer[pos + 1 : at]),
            "remaining_mult": multiplier,
            "remaining_length": length,
            "packet": bytearray(memoryview(buffer)[at : at + length]),
            "to_process": 0,
            "pos": 0,
        }
        self._read_pos = at + length
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = mqtt.MQTT_ERR_PROTOCOL
        self._in_packet = _fresh_in_packet()
        with self._msgtime_mutex:
            self._last_bytes_received = time.monotonic()
        return rc

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        # Packets already in the buffer would otherwise wait until the socket is readable again.
        while (
            rc == mqtt.MQTT_ERR_SUCCESS and self._read_pos < len(self._read_buffer) and self._sock is not None
        ):
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == mqtt.MQTT_ERR_AGAIN:
                return mqtt.MQTT_ERR_SUCCESS
        return rc

    def message_callback_add(self, sub: str, callback: Any) -> None:
        raise NotImplementedError("BufferedReadClient delivers every message to on_message only")

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        command: int = self._in_packet["command"]
        qos = (command & 0x06) >> 1
        if qos == 2 or not self._manual_ack or self._protocol == mqtt.MQTTv5:
            return super()._handle_publish()
        packet: bytes | bytearray = self._in_packet["packet"]
        if len(packet) < 2:
            return mqtt.MQTT_ERR_PROTOCOL
        (topic_length,) = _UINT16.unpack_from(packet)
        payload_at = 2 + topic_length + (2 if qos else 0)
        if topic_length == 0 or len(packet) < payload_at:
            return mqtt.MQTT_ERR_PROTOCOL  # what paho answers to a malformed PUBLISH
        message = ReceivedMessage(
            mid=_UINT16.unpack_from(packet, payload_at - 2)[0] if qos else 0,
            topic=bytes(packet[2 : 2 + topic_length]),
            payload=bytes(packet[payload_at:]),
            qos=qos,
            dup=bool(command & 0x08),
            retain=bool(command & 0x01),
        )
        on_message = self.on_message
        if on_message is not None:
            with self._in_callback_mutex:
                try:
                    on_message(self, self._userdata, message)
                except Exception as err:
                    self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise
        return mqtt.MQTT_ERR_SUCCESS


CLOSED_BY_BROKER = "the broker closed the connection"


def disconnect_cause(client: mqtt.Client, flags: Any, reason: Any) -> str:
    """Why a connection ended, in words: what ``on_disconnect`` gives (a reason code that says
    "Unspecified error" for every lost connection) plus what the socket saw."""
    name = str(getattr(reason, "getName", lambda: reason)())
    if getattr(flags, "is_disconnect_packet_from_server", False):
        return f"the broker disconnected the gateway: {name}"
    if name == "Success":
        return "the gateway disconnected (on request)"
    if name == "Keep alive timeout":
        return "no answer from the broker within the keep-alive interval (network or broker hung)"
    if name == "Protocol error":
        return "protocol error: the broker sent something paho could not read"
    seen = getattr(client, "connection_end", None)
    if seen == CLOSED_BY_BROKER:
        return (
            f"{CLOSED_BY_BROKER} (a broker shutdown or restart, or it dropped this client, e.g. for "
            "another connection with the same client id)"
        )
    if seen is not None:
        return f"network error: {seen}"
    return f"connection lost (the broker closed it or the network failed; paho says {name!r})"


def _socket_error(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc.strerror or exc}" if exc.errno else f"{type(exc).__name__}: {exc}"


class ReceivedMessage(mqtt.MQTTMessage):
    """An incoming message without ``info``: paho builds that outgoing-message tracker (a lock and a
    condition) for every incoming message too, a tenth of the network thread's time."""

    __slots__ = ()

    def __init__(self, *, mid: int, topic: bytes, payload: bytes, qos: int, dup: bool, retain: bool) -> None:
        self.timestamp = time.monotonic()
        self.state = mqtt.mqtt_ms_invalid
        self.mid = mid
        self._topic = topic
        self.payload = payload
        self.qos = qos
        self.dup = dup
        self.retain = retain
        self.properties = None


def _fresh_in_packet() -> Any:
    """paho's state between packets (as ``Client._packet_read`` resets it)."""
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }


_UINT16 = struct.Struct("!H")
