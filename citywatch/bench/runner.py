"""Run the selected benchmark suites, print progress to stderr and one JSON line to stdout."""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class BenchOptions:
    suites: tuple[str, ...]
    quick: bool = False
    messages: int | None = None
    events: int | None = None
    sustain_s: float | None = None
    rate: float = 10_000
    work_dir: str | None = None
    fleet_devices: int | None = None  # fleet suite (default 10,000; quick 1,000)
    fleet_speed: float | None = None  # fleet suite: simulated-time speed-up (default 1; quick 10)
    fleet_steady_s: float | None = None
    fleet_drop: int | None = None
    scaleout_gateways: int = 3


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _suite_ingest(options: BenchOptions, work: Path) -> dict[str, Any]:
    from citywatch.bench.pipeline import bench_ingest

    return bench_ingest(work, count=options.messages or (5_000 if options.quick else 30_000))


def _suite_latency(options: BenchOptions, work: Path) -> dict[str, Any]:
    from citywatch.bench.pipeline import bench_event_latency

    return bench_event_latency(work, events=options.events or (50 if options.quick else 200))


def _suite_memory(options: BenchOptions, work: Path) -> dict[str, Any]:
    from citywatch.bench.pipeline import bench_culvert_memory

    return bench_culvert_memory(work, seconds=4.0 if options.quick else 8.0)


def _suite_influx(options: BenchOptions, work: Path) -> dict[str, Any]:
    from citywatch.bench.influx import bench_influx_write
    from citywatch.bench.pipeline import bench_sustained_influx
    from citywatch.bench.victoria import victoria_metrics_binary

    if victoria_metrics_binary() is None:
        return {"skipped": "victoria-metrics is not installed (apt-get install victoria-metrics)"}
    store_only = bench_influx_write(20_000 if options.quick else 100_000, work_dir=work)
    sustain_s = options.sustain_s or (10.0 if options.quick else 60.0)
    end_to_end = bench_sustained_influx(work, rate=options.rate, seconds=sustain_s)
    return {"store_only": store_only, "mqtt_to_influx_sustained": end_to_end}


def _suite_vision(options: BenchOptions, work: Path) -> dict[str, Any]:
    from citywatch.bench.vision import bench_pipeline

    model = PROJECT_ROOT / "models" / "ebike-detector.onnx"
    if not model.is_file():
        return {"skipped": f"{model} is missing (make models)"}
    return bench_pipeline(model=model, frames=45 if options.quick else 120, workdir=work)


def _suite_facade(options: BenchOptions, work: Path) -> dict[str, Any]:
    from citywatch.bench.facade import bench_facade

    return bench_facade(frames=100 if options.quick else 250, workdir=work)


def _suite_street(options: BenchOptions, work: Path) -> dict[str, Any]:
    from citywatch.bench.street import bench_street

    return bench_street(seconds=20.0 if options.quick else 55.0, workdir=work)


def _suite_fleet(options: BenchOptions, work: Path) -> dict[str, Any]:
    from citywatch.bench.fleet import bench_fleet

    devices = options.fleet_devices or (1_000 if options.quick else 10_000)
    return bench_fleet(
        work,
        devices=devices,
        speed=options.fleet_speed or (10.0 if options.quick else 1.0),
        steady_s=options.fleet_steady_s or (20.0 if options.quick else 60.0),
        drop=options.fleet_drop or max(1, devices // 10),
    )


def _suite_scaleout(options: BenchOptions, work: Path) -> dict[str, Any]:
    from citywatch.bench.scaleout import bench_scaleout

    return bench_scaleout(
        work,
        count=options.messages or (5_000 if options.quick else 30_000),
        events=options.events or (50 if options.quick else 200),
        gateways=options.scaleout_gateways,
    )


SUITES: dict[str, Callable[[BenchOptions, Path], dict[str, Any]]] = {
    "ingest": _suite_ingest,
    "latency": _suite_latency,
    "memory": _suite_memory,
    "influx": _suite_influx,
    "vision": _suite_vision,
    "facade": _suite_facade,
    "street": _suite_street,
    "fleet": _suite_fleet,
    "scaleout": _suite_scaleout,
}


def run_benchmarks(options: BenchOptions) -> int:
    logging.getLogger().setLevel(logging.WARNING)  # the components' info logs would drown the figures
    results: dict[str, Any] = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        }
    }
    failed = False
    with tempfile.TemporaryDirectory(prefix="citywatch-bench-", dir=options.work_dir) as tmp:
        for name in options.suites:
            _say(f"{name} ...")
            started = time.monotonic()
            work = Path(tmp) / name
            work.mkdir()
            try:
                results[name] = SUITES[name](options, work)
            except Exception as exc:  # one failing suite must not hide the others' figures
                failed = True
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc(file=sys.stderr)
            _say(f"{name} done in {time.monotonic() - started:.1f}s: {json.dumps(results[name])}")
    results["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results), flush=True)
    return 1 if failed else 0
