"""``citywatch edge run|check|schema``: run a device agent (from a config or a bundle), validate configs
(``check`` is ``citywatch config check``), export the config schema."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_SCHEMA_PATH = Path("firmware_configs/schema/device-config.schema.json")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    edge = commands.add_parser("edge", help="edge device agents")
    sub = edge.add_subparsers(dest="edge_command", metavar="EDGE_COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run the agent described by a device config (or a flashed bundle) until SIGTERM/SIGINT",
        description="Pushed configs are applied while it runs. From a bundle (citywatch config flash) the "
        "agent checks checksums and signature first, runs in the bundle's folder, accepts only configs "
        "signed by the keys it trusts and keeps the last one it accepted for the next boot.",
    )
    run.add_argument("config", type=Path, nargs="?", help="device config YAML (see firmware_configs/)")
    run.add_argument("--bundle", type=Path, help="a bundle folder written by `citywatch config flash`")
    run.set_defaults(handler=_run)

    from edge.installer.cli import add_check_arguments

    check = sub.add_parser(
        "check", help="the same as `citywatch config check`: every mistake in every file (exit 2 on any)"
    )
    add_check_arguments(check)

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
    if (args.config is None) == (args.bundle is None):
        print("give a config file or --bundle DIR (one of them)", file=sys.stderr)
        return 2
    boot = None
    if args.bundle is not None:
        import os

        from edge.installer.bundle import BundleError, load_bundle

        try:
            boot = load_bundle(args.bundle)
        except BundleError as exc:
            print(
                f"{exc.render()}\ncannot start: flash the device again (citywatch config flash)",
                file=sys.stderr,
            )
            return 2
        os.chdir(boot.directory)  # the bundle's config names its files relative to it
        config = boot.config
        origin = "the config pushed since" if boot.from_push else "the flashed config"
        print(f"{args.bundle}: verified; running {origin}, version {config.version}", file=sys.stderr)
    else:
        config = _load(args.config)
        if config is None:
            return 2
    where = args.bundle or args.config
    import sqlite3

    from edge.agent import run_agent
    from edge.registry import NoSourceDriver
    from edge.vision.errors import VisionStartError  # stdlib-only module

    try:
        return run_agent(config, boot=boot)
    except (VisionStartError, NoSourceDriver) as exc:  # missing model, unusable or unprovided source
        print(f"{where}: cannot start: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # serial port missing, outbox directory read-only, ...
        print(f"{where}: cannot start: {exc}", file=sys.stderr)
        return 2


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
