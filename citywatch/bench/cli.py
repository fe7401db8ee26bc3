"""``citywatch bench``: the project's speed and memory figures, each beside a same-run reference.

Progress goes to stderr; the last line on stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
from typing import Any

SUITES = ("ingest", "latency", "memory", "influx", "vision", "facade", "street")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser(
        "bench",
        help="measure ingest rate, event latency, memory, InfluxDB ingest, the vision pipeline, the facade analyzer and the street agent",
        description="Runs on loopback with its own Mosquitto (project config). The last stdout line is JSON.",
    )
    parser.add_argument(
        "--only", action="append", choices=SUITES, help="run only these suites (repeatable; default all)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke check")
    parser.add_argument("--messages", type=int, default=None, help="telemetry messages for the ingest suite")
    parser.add_argument("--events", type=int, default=None, help="events for the latency suite")
    parser.add_argument(
        "--sustain-s", type=float, default=None, help="InfluxDB suite: seconds of sustained load (default 60)"
    )
    parser.add_argument("--rate", type=float, default=10_000, help="InfluxDB suite: offered messages/s")
    parser.add_argument("--work-dir", default=None, help="scratch directory (default: a temporary one)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from citywatch.bench.runner import BenchOptions, run_benchmarks

    options = BenchOptions(
        suites=tuple(args.only or SUITES),
        quick=args.quick,
        messages=args.messages,
        events=args.events,
        sustain_s=args.sustain_s,
        rate=args.rate,
        work_dir=args.work_dir,
    )
    return run_benchmarks(options)
