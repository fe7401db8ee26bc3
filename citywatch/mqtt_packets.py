"""MQTT 3.1.1 packets encoded by hand: a few bytes joined, no client library (the fleet simulator and the bench publisher).

paho costs tens of microseconds of Python per message and a thread per client; ten thousand devices
in one process need neither. Only what a device sends and hears is here: CONNECT with a will,
PUBLISH at QoS 1 (and its DUP resend), PUBACK, SUBSCRIBE, PINGREQ; the reader splits the broker's
byte stream into (first byte, body) packets.
"""

from __future__ import annotations

import struct

CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40

PINGREQ_PACKET = b"\xc0\x00"


def varint(length: int) -> bytes:
    out = bytearray()
    while True:
        length, digit = divmod(length, 128)
        out.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def connect(
    client_id: str,
    *,
    keepalive_s: int,
    clean_session: bool,
    will_topic: str | None = None,
    will_payload: bytes = b"",
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """CONNECT; with ``will_topic``, a retained QoS 1 will."""
    flags = 0x02 if clean_session else 0
    tail = utf8(client_id)
    if will_topic is not None:  # will retained (0x20), will QoS 1 (0x08), will (0x04)
        flags |= 0x20 | 0x08 | 0x04
        tail += utf8(will_topic) + struct.pack("!H", len(will_payload)) + will_payload
    if username is not None:
        flags |= 0x80
        tail += utf8(username)
        if password is not None:
            flags |= 0x40
            tail += utf8(password)
    return packet(0x10, utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s) + tail)


def publish_qos1(topic: bytes, payload: bytes, packet_id: int, *, retain: bool = False) -> bytes:
    """``topic``: already length-prefixed (``utf8(topic)``), as the fleet keeps it per device and channel;
    ``as_dup`` marks a resend."""
    first = 0x32 | (0x01 if retain else 0)
    return packet(first, topic + struct.pack("!H", packet_id) + payload)


def as_dup(encoded: bytes) -> bytes:
    """The same PUBLISH with the DUP flag set: a resend after a reconnect."""
    return bytes([encoded[0] | 0x08]) + encoded[1:]


def puback(packet_id: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", packet_id)


def subscribe(packet_id: int, topics: list[str]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(utf8(t) + b"\x01" for t in topics)
    return packet(0x82, body)


class PacketReader:
    """Splits a byte stream into (first byte, body) packets."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        out: list[tuple[int, bytes]] = []
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            length, multiplier, index = 0, 1, pos + 1
            while True:
                if index >= size:
                    self._buffer = buffer[pos:]
                    return out
                digit = buffer[index]
                length += (digit & 0x7F) * multiplier
                multiplier *= 128
                index += 1
                if not digit & 0x80:
                    break
                if multiplier > 128**4:
                    raise ValueError("malformed remaining length")
            if index + length > size:
                break
            out.append((buffer[pos], buffer[index : index + length]))
            pos = index + length
        self._buffer = buffer[pos:]
        return out


def publish_parts(first: int, body: bytes) -> tuple[str, int | None, bytes]:
    """An incoming PUBLISH: topic, packet id (QoS > 0) or None, payload."""
    (topic_len,) = struct.unpack_from("!H", body)
    topic = body[2 : 2 + topic_len].decode()
    pos = 2 + topic_len
    packet_id = None
    if first & 0x06:
        (packet_id,) = struct.unpack_from("!H", body, pos)
        pos += 2
    return topic, packet_id, body[pos:]
