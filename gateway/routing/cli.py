"""``citywatch gateway routing check FILE``. Standard library only at module level."""

from __future__ import annotations

import argparse
from typing import Any


def register(gateway_commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``routing`` under the ``citywatch gateway`` subcommands."""
    routing = gateway_commands.add_parser("routing", help="the routing table (departments, rules, SLA)")
    routing_sub = routing.add_subparsers(dest="routing_command", metavar="ACTION", required=True)
    check = routing_sub.add_parser("check", help="validate a routing file, listing every mistake")
    check.add_argument("file", help="e.g. config/routing.example.yaml")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from gateway.routing.service import RoutingConfigError, load_routing

    try:
        table = load_routing(args.file)
    except RoutingConfigError as error:
        print(f"{args.file}: {len(error.problems)} problem(s)")
        for problem in error.problems:
            print(f"  {problem}")
        return 1
    print(
        f"{args.file}: ok ({len(table.departments)} departments, {len(table.rules)} rules, "
        f"unmatched events go to triage queue {table.triage.queue!r})"
    )
    return 0
