"""``citywatch bench``: the project's speed and memory figures, each beside a same-run reference.

Progress goes to stderr; the last line on stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
from typing import Any

SUITES = ("ingest", "latency", "memory", "influx", "vision", "facade", "street", "fleet", "scaleout")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser(
        "bench",
        help="measure ingest rate, event latency, memory, InfluxDB ingest, the vision pipeline, the facade analyzer, the street agent, a 10,000-device fleet and several gateways",
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
    parser.add_argument(
        "--fleet-devices", type=int, default=None, help="fleet suite: devices (default 10,000)"
    )
    parser.add_argument(
        "--fleet-speed", type=float, default=None, help="fleet suite: simulated-time speed-up (default 1)"
    )
    parser.add_argument(
        "--fleet-steady-s", type=float, default=None, help="fleet suite: steady-state seconds"
    )
    parser.add_argument("--fleet-drop", type=int, default=None, help="fleet suite: devices dropped at once")
    parser.add_argument(
        "--scaleout-gateways", type=int, default=3, help="scaleout suite: up to this many gateway processes"
    )
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
        fleet_devices=args.fleet_devices,
        fleet_speed=args.fleet_speed,
        fleet_steady_s=args.fleet_steady_s,
        fleet_drop=args.fleet_drop,
        scaleout_gateways=args.scaleout_gateways,
    )
    return run_benchmarks(options)
