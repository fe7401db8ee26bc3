"""A load generator in its own process: QoS 1 telemetry from many simulated devices, as fast as allowed.

    python -m citywatch.bench.publisher --url mqtt://127.0.0.1:1883 --count 20000 --devices 50

Prints one JSON line: first/last publish wall times and how many were acknowledged by the broker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import time
from datetime import UTC, datetime, timedelta

from citywatch.mqtt import MqttOptions
from citywatch.mqtt_packets import connect, publish_qos1, utf8
from citywatch.polling import wait_until
from citywatch.protocol.messages import TelemetryMessage
from citywatch.protocol.topics import Channel, Topic

BENCH_SITE = "bench"


def device_ids(devices: int) -> list[str]:
    return [f"bench-{i:04d}" for i in range(devices)]


def payloads(count: int, devices: int, *, run: int, numbered: bool = False) -> list[tuple[str, bytes]]:
    """Distinct samples: (device, measurement, ts) never repeats within a run or across runs.

    ``numbered``: each carries its device's outbox sequence, as agents that wait for receipts send them,
    so the gateway sends receipts back."""
    ids = device_ids(devices)
    # recent (time-series servers drop points older than their retention), an hour apart per run
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6 - run)
    out = []
    for n in range(count):
        device = ids[n % devices]
        message = TelemetryMessage(
            device_id=device,
            ts=start + timedelta(milliseconds=n),
            measurement="water_level",
            fields={"level_cm": float(n % 400) / 10, "distance_mm": 2000.0 - n % 400},
            outbox_seq=n // devices + 1 if numbered else None,
        )
        out.append(
            (str(Topic(site=BENCH_SITE, device_id=device, channel=Channel.TELEMETRY)), message.to_json())
        )
    return out


MAX_UNACKED = 1000  # the broker's max_inflight_messages in the project config
CHUNK = 100  # packets written per send() call
ACK_WAIT_S = 30.0  # longest wait for a PUBACK before the run fails


def _publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    return publish_qos1(utf8(topic), payload, packet_id)


def publish(url: str, messages: list[tuple[str, bytes]], *, rate: float | None = None) -> dict[str, float]:
    """QoS 1 PUBLISH packets, encoded beforehand, written to a plain socket, PUBACKs counted.

    A load generator must not be what limits the figure: paho costs tens of microseconds of Python
    per message, which on two shared cores took as much CPU as the gateway under test. Here the
    packets are MQTT 3.1.1 as ``docs/protocol.md`` specifies them, with at most ``MAX_UNACKED`` in
    flight (so the broker never has to queue or drop them).
    """
    options = MqttOptions.from_url(url)
    packets = [_publish_packet(t, p, n % 65535 + 1) for n, (t, p) in enumerate(messages)]
    sock = socket.create_connection((options.host, options.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_id = f"bench-pub-{time.time_ns()}"
    sock.sendall(connect(client_id, keepalive_s=60, clean_session=True))
    connack = sock.recv(4)
    if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
        raise ConnectionError(f"broker refused the connection: {connack!r}")
    acked = 0
    pending = b""
    sent = 0
    first = time.time()

    def read_acks(block: bool) -> None:
        nonlocal acked, pending
        # Blocking reads wait a bounded time: a broker that stops acknowledging must fail the
        # benchmark with a reason, not hang it.
        sock.settimeout(ACK_WAIT_S if block else 0.0)
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except TimeoutError:
            if not block:
                return
            raise TimeoutError(
                f"no PUBACK from the broker for {ACK_WAIT_S:.0f} s ({acked} of {sent} acknowledged)"
            ) from None
        if not data:
            raise ConnectionError("broker closed the connection")
        pending += data
        whole = len(pending) // 4  # PUBACK is 4 bytes: 0x40 0x02 id id
        acked += whole
        pending = pending[whole * 4 :]

    while sent < len(packets):
        if rate is not None:
            delay = first + sent / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        while sent - acked + CHUNK > MAX_UNACKED:
            read_acks(block=True)
        chunk = packets[sent : sent + CHUNK]
        sock.settimeout(ACK_WAIT_S)
        sock.sendall(b"".join(chunk))
        sent += len(chunk)
        read_acks(block=False)
    last = time.time()

    def all_acked() -> bool:
        if acked < sent:
            with contextlib.suppress(TimeoutError):
                read_acks(block=True)  # blocks until PUBACKs arrive: no pause between reads
        return acked >= sent

    wait_until(all_acked, timeout_s=120, interval_s=0)
    acked_at = time.time()
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    return {"first_publish": first, "last_publish": last, "all_acked": acked_at, "acked": acked}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--run", type=int, default=0, help="distinct timestamps per run")
    parser.add_argument("--rate", type=float, default=None, help="messages/s (default: as fast as possible)")
    parser.add_argument("--part", type=int, default=0, help="publish every --parts-th message from this one")
    parser.add_argument("--parts", type=int, default=1, help="how many processes share the messages")
    parser.add_argument(
        "--numbered", action="store_true", help="carry outbox_seq (the gateway sends receipts)"
    )
    args = parser.parse_args()
    messages = payloads(args.count, args.devices, run=args.run, numbered=args.numbered)[
        args.part :: args.parts
    ]
    print(json.dumps(publish(args.url, messages, rate=args.rate)), flush=True)


if __name__ == "__main__":
    main()
