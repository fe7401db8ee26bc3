"""A bounded write benchmark of the InfluxDB store against victoria-metrics, for ``citywatch bench``.

Three runs of the same points, each under its own ``run`` tag so they cannot overwrite each other:
the store (line protocol, gzip, retries, spill machinery), and two same-run references without any
of that: ``influxdb-client`` synchronous writes of ``Point`` objects, and a plain HTTP POST of
ready-made line protocol. With ``outage=True`` (only when the benchmark starts its own server) the
server is then stopped, the points go to the disk spill, the server comes back and the spill is
replayed. ``bench_influx_sustained`` holds the store at a set rate (the issue's 10,000 points/s for
60 s). Every run is checked by reading the samples back (``/api/v1/export``): ``lost`` must be 0.
"""

from __future__ import annotations

import gzip
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from citywatch.bench.victoria import VictoriaMetrics, sample_keys
from citywatch.polling import wait_until
from gateway.telemetry.base import TelemetryPoint
from gateway.telemetry.influx import (
    PRECISION,
    InfluxOptions,
    InfluxTelemetryStore,
    to_epoch_ms,
    to_line_protocol,
)

MEASUREMENT = "bench_water_level"


def bench_points(n_points: int, *, run: str, devices: int = 100, first: int = 0) -> list[TelemetryPoint]:
    """Culvert samples from ``devices`` devices, 1 ms apart, from about two hours ago."""
    return [_bench_point(i, run=run, devices=devices) for i in range(first, first + n_points)]


_BENCH_BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def _bench_point(i: int, *, run: str, devices: int) -> TelemetryPoint:
    return TelemetryPoint(
        site="bench",
        device_id=f"culvert-{i % devices:03d}",
        measurement=MEASUREMENT,
        ts=_BENCH_BASE + timedelta(milliseconds=i),
        fields={"level_cm": 10.0 + i % 400 / 8, "raw_mm": float(900 + i % 13)},
        tags={"run": run},
    )


def _stored(url: str, run: str) -> int:
    """Points of one run read back: distinct samples of one of its two fields."""
    return len(sample_keys(url, f'{{__name__="{MEASUREMENT}_level_cm",run="{run}"}}'))


def _chunks(points: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [points[start : start + size] for start in range(0, len(points), size)]


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def bench_influx_write(
    n_points: int = 100_000,
    *,
    url: str | None = None,
    call_points: int = 500,
    batch_size: int = 5000,
    outage: bool = True,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Points/s into victoria-metrics with zero loss, beside same-run references.

    ``url`` is a running victoria-metrics; without it the benchmark starts (and stops) its own.
    ``call_points`` points go to each ``write()`` call, as a gateway batching MQTT messages would.
    """
    if n_points < 1 or call_points < 1:
        raise ValueError("n_points and call_points must be at least 1")
    return _with_server(
        url,
        work_dir,
        lambda target, server, tmp: _bench(
            target, server, n_points, call_points, batch_size, outage and server is not None, tmp
        ),
    )


def bench_influx_sustained(
    rate_per_s: float = 10_000,
    duration_s: float = 60.0,
    *,
    url: str | None = None,
    call_points: int = 500,
    batch_size: int = 5000,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """The store held at ``rate_per_s`` points/s for ``duration_s``: does it keep up, losing nothing?

    Points are made chunk by chunk (memory stays small); ``write_ms`` is the time each
    ``write()`` call of ``call_points`` points took, ``lag_s`` how far behind schedule the run ended.
    """
    if rate_per_s <= 0 or duration_s <= 0 or call_points < 1:
        raise ValueError("rate_per_s, duration_s and call_points must be positive")
    return _with_server(
        url,
        work_dir,
        lambda target, _server, tmp: _sustained(target, rate_per_s, duration_s, call_points, batch_size, tmp),
    )


def _with_server(
    url: str | None,
    work_dir: Path | None,
    body: Callable[[str, VictoriaMetrics | None, Path], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``body`` against ``url``, or against a victoria-metrics of its own in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="citywatch-bench-influx-", dir=work_dir) as tmp:
        server = None if url else VictoriaMetrics(data_dir=Path(tmp) / "vm").start()
        try:
            return body(url or cast(VictoriaMetrics, server).url, server, Path(tmp))
        finally:
            if server is not None:
                server.stop()


def _options(url: str, spill_dir: Path, batch_size: int) -> InfluxOptions:
    return InfluxOptions(
        url=url,
        token="bench",
        org="citywatch",
        bucket="telemetry",
        spill_dir=spill_dir,
        batch_size=batch_size,
        retry_backoff_s=0.05,
        replay_interval_s=0.2,
    )


def _sustained(
    url: str, rate_per_s: float, duration_s: float, call_points: int, batch_size: int, tmp: Path
) -> dict[str, Any]:
    run = f"{uuid.uuid4().hex[:8]}-sustained"
    n_points = int(rate_per_s * duration_s)
    store = InfluxTelemetryStore(_options(url, tmp / "spill-sustained", batch_size))
    latencies_ms: list[float] = []
    started = time.perf_counter()
    for first in range(0, n_points, call_points):
        due = started + first / rate_per_s
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        chunk = bench_points(min(call_points, n_points - first), run=run, first=first)
        call_started = time.perf_counter()
        store.write(chunk)
        latencies_ms.append((time.perf_counter() - call_started) * 1000)
    elapsed = time.perf_counter() - started
    store.close()
    stored = _stored(url, run)
    latencies_ms.sort()
    return {
        "target_points_per_s": rate_per_s,
        "duration_s": round(elapsed, 2),
        "points_per_s": _rate(n_points, elapsed),
        "lag_s": round(max(0.0, elapsed - n_points / rate_per_s), 3),
        "write_calls": len(latencies_ms),
        "call_points": call_points,
        "write_ms_p50": round(latencies_ms[len(latencies_ms) // 2], 2),
        "write_ms_p99": round(latencies_ms[min(len(latencies_ms) - 1, int(len(latencies_ms) * 0.99))], 2),
        "write_ms_max": round(latencies_ms[-1], 2),
        "stored": stored,
        "lost": n_points - stored,
        "spilled": store.spilled_points(),
    }


def _bench(
    url: str,
    server: VictoriaMetrics | None,
    n_points: int,
    call_points: int,
    batch_size: int,
    outage: bool,
    tmp: Path,
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    options = _options(url, tmp / "spill", batch_size)
    results: dict[str, Any] = {"n_points": n_points, "call_points": call_points, "batch_size": batch_size}

    # The store, as the gateway calls it.
    points = bench_points(n_points, run=f"{run}-store")
    store = InfluxTelemetryStore(options)
    started = time.perf_counter()
    for chunk in _chunks(points, call_points):
        store.write(chunk)
    elapsed = time.perf_counter() - started
    store.close()
    stored = _stored(url, f"{run}-store")
    results["store"] = {
        "points_per_s": _rate(n_points, elapsed),
        "stored": stored,
        "lost": n_points - stored,
        "spilled": store.spilled_points(),
    }

    # Reference 1: influxdb-client synchronous writes of Point objects, nothing around them.
    from influxdb_client import InfluxDBClient, Point
    from influxdb_client.client.write_api import SYNCHRONOUS

    ref_points = bench_points(n_points, run=f"{run}-client")
    with InfluxDBClient(url=url, token="bench", org="citywatch", enable_gzip=True) as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        started = time.perf_counter()
        for chunk in _chunks(ref_points, call_points):
            records = [
                Point(p.measurement)
                .tag("device_id", p.device_id)
                .tag("site", p.site)
                .tag("run", p.tags["run"])
                .field("level_cm", p.fields["level_cm"])
                .field("raw_mm", p.fields["raw_mm"])
                .time(to_epoch_ms(p.ts), PRECISION)
                for p in chunk
            ]
            write_api.write(bucket="telemetry", record=records, write_precision=PRECISION)
        elapsed = time.perf_counter() - started
    stored = _stored(url, f"{run}-client")
    results["reference_influxdb_client"] = {
        "points_per_s": _rate(n_points, elapsed),
        "stored": stored,
        "lost": n_points - stored,
    }

    # Reference 2: the server's own ceiling here, line protocol made in advance and POSTed raw.
    bodies = [
        gzip.compress("\n".join(map(to_line_protocol, chunk)).encode())
        for chunk in _chunks(bench_points(n_points, run=f"{run}-raw"), call_points)
    ]
    started = time.perf_counter()
    for body in bodies:
        request = urllib.request.Request(
            f"{url}/api/v2/write?bucket=telemetry&org=citywatch&precision=ms",
            data=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=30):
            pass
    elapsed = time.perf_counter() - started
    stored = _stored(url, f"{run}-raw")
    results["reference_raw_http_prebuilt"] = {
        "points_per_s": _rate(n_points, elapsed),
        "stored": stored,
        "lost": n_points - stored,
    }

    if outage and server is not None:
        results["outage"] = _bench_outage(server, replace(options, spill_dir=tmp / "spill-outage"), run)
    return results


def _bench_outage(server: VictoriaMetrics, options: InfluxOptions, run: str) -> dict[str, Any]:
    """Server stopped: the spill's write rate; server back: how fast the spill drains."""
    points = bench_points(options.batch_size * 4, run=f"{run}-outage")
    store = InfluxTelemetryStore(options)
    server.stop()
    store.write(points[:1])  # detects the outage (retries with backoff), then spills
    started = time.perf_counter()
    for chunk in _chunks(points[1:], 500):
        store.write(chunk)
    spill_elapsed = time.perf_counter() - started
    spilled = store.spilled_points()
    server.start()
    started = time.perf_counter()
    if not wait_until(lambda: not store.spilling, timeout_s=300, interval_s=0.01):
        raise TimeoutError(f"the spill was not replayed in 300 s ({store.spilled_points()} points left)")
    replay_elapsed = time.perf_counter() - started  # includes up to one replay_interval_s of waiting
    store.close()
    stored = _stored(server.url, f"{run}-outage")
    return {
        "n_points": len(points),
        "spill_points_per_s": _rate(len(points) - 1, spill_elapsed),
        "spilled": spilled,
        "replay_points_per_s": _rate(spilled, replay_elapsed),
        "stored": stored,
        "lost": len(points) - stored,
    }
