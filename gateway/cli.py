"""``citywatch gateway``: run the gateway; ``citywatch gateway devices add|list``: the registry.

Only the standard library at module level: the heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this subsystem's subcommands to the ``citywatch`` parser."""
    gateway = commands.add_parser(
        "gateway",
        help="run the gateway (MQTT ingest, dispatch, REST API); settings from CITYWATCH_* variables",
        description="Without a subcommand: run the gateway until SIGTERM/Ctrl-C.\n"
        "Settings come from CITYWATCH_* environment variables, all listed below.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    gateway.add_argument("-h", "--help", action=_HelpWithSettings, help="show this help and every setting")
    gateway.set_defaults(handler=_run)
    sub = gateway.add_subparsers(dest="gateway_command", metavar="SUBCOMMAND")
    run = sub.add_parser(
        "run",
        help="run the gateway (the default)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    run.add_argument("-h", "--help", action=_HelpWithSettings, help="show this help and every setting")
    run.set_defaults(handler=_run)
    sub.add_parser("migrate", help="bring the database schema up to date and exit").set_defaults(
        handler=_migrate
    )

    devices = sub.add_parser("devices", help="the device registry")
    devices_sub = devices.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    add = devices_sub.add_parser("add", help="provision a device (its messages are refused until it is)")
    add.add_argument("device_id", help="as in its MQTT topics, e.g. culvert-017")
    add.add_argument("--site", required=True, help="the topic's site segment, e.g. riverside")
    add.add_argument("--type", dest="device_type", required=True, help="culvert | elevator | facade | street")
    add.add_argument("--grid", default=None, help="grid (for routing)")
    add.add_argument("--town", default=None, help="town/sub-district (for routing)")
    add.add_argument("--latitude", type=float, default=None, help="WGS 84, -90..90 (CAP <circle>)")
    add.add_argument("--longitude", type=float, default=None, help="WGS 84, -180..180 (with --latitude)")
    add.add_argument("--description", default="", help="where it is, for people")
    add.set_defaults(handler=_devices_add)
    list_ = devices_sub.add_parser("list", help="list provisioned devices")
    list_.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    list_.set_defaults(handler=_devices_list)

    # Subcommands of the gateway's other packages (standard library only at their module level).
    from gateway.auth import cli as auth_cli
    from gateway.devices import cli as devices_cli
    from gateway.routing import cli as routing_cli

    auth_cli.register(sub)
    devices_cli.register(sub)
    routing_cli.register(sub)


class _HelpWithSettings(argparse.Action):
    """``--help`` ending with every setting, read from the Settings model when asked: it cannot drift
    from the model, and ``citywatch`` does not import pydantic just to start."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        from gateway.settings import settings_reference

        parser.epilog = settings_reference()
        parser.print_help()
        parser.exit()


def _settings() -> Any:
    from pydantic import ValidationError

    from gateway.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "\n".join(
            f"  CITYWATCH_{'.'.join(str(p) for p in err['loc']) or '?'}: {err['msg']}" for err in exc.errors()
        )
        raise SystemExit(f"gateway settings are invalid:\n{problems}") from None


def _run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from gateway.runner import GatewayApp, GatewayStartError

    try:
        gateway = GatewayApp(_settings()).start(wait_mqtt_s=0)
    except GatewayStartError as exc:
        print(f"error: the gateway cannot start: {exc}")
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"gateway API on {gateway.url} (OpenAPI at {gateway.url}/docs)", flush=True)
    try:
        stop.wait()
    finally:
        gateway.stop()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from gateway.db import make_engine, migrate
    from gateway.redaction import redact_url

    settings = _settings()
    migrate(make_engine(settings.DB_URL))
    print(f"database {redact_url(settings.DB_URL)} is at the latest schema")
    return 0


def _devices_add(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gateway.db import make_engine, make_sessionmaker, migrate
    from gateway.devices import service
    from gateway.devices.models import DeviceCreate

    try:
        device_in = DeviceCreate(
            id=args.device_id,
            site=args.site,
            device_type=args.device_type,
            grid=args.grid,
            town=args.town,
            latitude=args.latitude,
            longitude=args.longitude,
            description=args.description,
        )
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])  # empty for a rule over several options
            print(f"error: {where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}")
        return 2
    engine = make_engine(_settings().DB_URL)
    migrate(engine)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            service.create(session=session, device_in=device_in)
    except service.DeviceExists as exc:
        print(f"error: {exc}")
        return 1
    finally:
        engine.dispose()
    print(f"provisioned {device_in.device_type} {device_in.id} at site {device_in.site}")
    return 0


def _devices_list(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from gateway.db import make_engine, make_sessionmaker, migrate
    from gateway.devices import service

    settings = _settings()
    engine = make_engine(settings.DB_URL)
    migrate(engine)
    silent_after = timedelta(seconds=settings.DEVICE_OFFLINE_AFTER_S)
    with make_sessionmaker(engine)() as session:
        devices = [service.to_read(d, silent_after=silent_after) for d in service.list_all(session=session)]
    engine.dispose()
    if args.json:
        for device in devices:
            print(json.dumps(device.model_dump(mode="json")))
        return 0
    print(f"{'DEVICE':<24} {'SITE':<16} {'TYPE':<10} {'PRESENCE':<10} {'FIRMWARE':<12} LAST SEEN")
    for d in devices:
        last_seen = d.last_seen.isoformat(timespec="seconds") if d.last_seen else "-"
        print(
            f"{d.id:<24} {d.site:<16} {d.device_type:<10} {d.presence:<10} {d.firmware_version or '-':<12} {last_seen}"
        )
    return 0
