"""The one ``citywatch`` command. Each subsystem registers its own subcommands.

Subsystem ``cli`` modules import only the standard library at module level, so that
``citywatch edge run`` on a small device never imports the gateway or vision stacks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from citywatch import __version__

COMMAND_MODULES = (
    "edge.cli",
    "edge.installer.cli",
    "gateway.cli",
    "simulators.cli",
    "citywatch.broker.cli",
    "citywatch.protocol.cli",
    "citywatch.demo.cli",
    "citywatch.bench.cli",
    "citywatch.evaluation.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citywatch", description="City-safety edge agents and gateway.")
    parser.add_argument("--version", action="version", version=f"citywatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
