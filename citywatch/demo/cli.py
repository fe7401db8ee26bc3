"""``citywatch demo``: the whole system on embedded defaults, with a flood on simulated culverts.

Broker (Mosquitto with the project config when installed, else embedded amqtt) -> simulated culvert
agents (real edge agents on a fast-forward clock) -> gateway on SQLite -> simulated dispatch centre.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser(
        "demo",
        help="run broker, gateway, simulated culverts and a simulated dispatch centre together",
        description="Runs the whole system locally on embedded defaults and prints a live log. "
        "With --duration it stops by itself and prints a JSON summary as its last line.",
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per wall second (default 60)"
    )
    parser.add_argument("--http-port", type=int, default=8080, help="API port (0 = any free port)")
    parser.add_argument("--data-dir", default="var/demo", help="working directory, emptied at start")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between status lines")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from citywatch.demo.runner import DemoOptions, run_demo

    options = DemoOptions(
        duration_s=args.duration,
        speed=args.speed,
        http_port=args.http_port,
        data_dir=args.data_dir,
        broker=args.broker,
        interval_s=args.interval,
    )
    return run_demo(options)
