"""``citywatch edge run|check|schema``: run a device agent, validate a config, export the config schema."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_SCHEMA_PATH = Path("firmware_configs/schema/device-config.schema.json")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    edge = commands.add_parser("edge", help="edge device agents")
    sub = edge.add_subparsers(dest="edge_command", metavar="EDGE_COMMAND", required=True)

    run = sub.add_parser("run", help="run the agent described by a device config until SIGTERM/SIGINT")
    run.add_argument("config", type=Path, help="device config YAML (see firmware_configs/)")
    run.set_defaults(handler=_run)

    check = sub.add_parser("check", help="validate a device config and print its version (exit 2 if invalid)")
    check.add_argument("config", type=Path, nargs="+")
    check.set_defaults(handler=_check)

    schema = sub.add_parser("schema", help="write the device config JSON schema")
    schema.add_argument("--output", "-o", type=Path, default=DEFAULT_SCHEMA_PATH, help="'-' for stdout")
    schema.set_defaults(handler=_schema)


def _load(path: Path) -> Any:
    from edge.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return None


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    import sqlite3

    from edge.agent import run_agent
    from edge.registry import NoSourceDriver
    from edge.vision.errors import VisionStartError  # stdlib-only module

    try:
        return run_agent(config)
    except (VisionStartError, NoSourceDriver) as exc:  # missing model, unusable or unprovided source
        print(f"{args.config}: cannot start: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # serial port missing, outbox directory read-only, ...
        print(f"{args.config}: cannot start: {exc}", file=sys.stderr)
        return 2


def _check(args: argparse.Namespace) -> int:
    status = 0
    for path in args.config:
        config = _load(path)
        if config is None:
            status = 2
            continue
        if config.kind == "elevator":  # the model must load and the video file exist, before the truck leaves
            from edge.vision.agent import preflight

            problems = preflight(config)
            if problems:
                print(f"{path}: cannot start:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
                status = 2
                continue
        print(
            f"{path}: ok ({config.kind} {config.device.site}/{config.device.id}, config version {config.version})"
        )
    return status


def _schema(args: argparse.Namespace) -> int:
    import json

    from edge.config import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}")
    return 0
