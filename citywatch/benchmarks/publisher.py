"""A load generator in its own process: QoS 1 telemetry from many simulated devices, as fast as allowed.

    python -m citywatch.benchmarks.publisher --url mqtt://127.0.0.1:1883 --count 20000 --devices 50

Prints one JSON line: first/last publish wall times and how many were acknowledged by the broker.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt

from citywatch.mqtt import MqttOptions
from citywatch.protocol.messages import TelemetryMessage
from citywatch.protocol.topics import Channel, Topic

BENCH_SITE = "bench"


def device_ids(devices: int) -> list[str]:
    return [f"bench-{i:04d}" for i in range(devices)]


def payloads(count: int, devices: int, *, run: int) -> list[tuple[str, bytes]]:
    """Distinct samples: (device, measurement, ts) never repeats within a run or across runs."""
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
        )
        out.append(
            (str(Topic(site=BENCH_SITE, device_id=device, channel=Channel.TELEMETRY)), message.to_json())
        )
    return out


MAX_UNACKED = 1000


def publish(url: str, messages: list[tuple[str, bytes]], *, rate: float | None = None) -> dict[str, float]:
    options = MqttOptions.from_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}")
    client.max_inflight_messages_set(MAX_UNACKED)
    client.max_queued_messages_set(0)
    acked = 0
    all_acked = threading.Event()
    # paho rescans its whole outgoing queue on every PUBACK: a queue beyond the in-flight window makes
    # the generator itself the bottleneck, so it waits for a free slot instead.
    window = threading.BoundedSemaphore(MAX_UNACKED)

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        window.release()
        if acked == len(messages):
            all_acked.set()

    client.on_publish = on_publish
    client.connect(options.host, options.port)
    client.loop_start()
    first = time.time()
    for n, (topic, payload) in enumerate(messages):
        if rate is not None:
            due = first + n / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
        window.acquire()
        client.publish(topic, payload, qos=1)
    last = time.time()
    all_acked.wait(120)
    acked_at = time.time()
    client.loop_stop()
    client.disconnect()
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
    args = parser.parse_args()
    messages = payloads(args.count, args.devices, run=args.run)[args.part :: args.parts]
    print(json.dumps(publish(args.url, messages, rate=args.rate)), flush=True)


if __name__ == "__main__":
    main()
