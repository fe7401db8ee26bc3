"""``citywatch gateway broker-acl``: Mosquitto's password and ACL files from the device registry.

Each device with a broker account (``citywatch config flash`` registers one) may publish only under its
own topics and read only its own ``cmd``, ``config``, ``receipt`` and ``refusal``; the gateway's account
(the user and password of ``CITYWATCH_MQTT_URL``) reads everything and writes only those four channels.
Mosquitto reads the files again on SIGHUP: a revoked device is locked out after the next run and reload.
Only the standard library at module level.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(commands: argparse._SubParsersAction[Any]) -> None:
    acl = commands.add_parser(
        "broker-acl",
        help="write Mosquitto's password and ACL files from the device registry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    acl.add_argument("--out", type=Path, required=True, help="folder for passwd and acl (mosquitto's)")
    acl.add_argument(
        "--gateway-user",
        default=None,
        help="the gateway's MQTT user; default: the user of CITYWATCH_MQTT_URL (its password too)",
    )
    acl.set_defaults(handler=_broker_acl)


def _broker_acl(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    from pydantic import ValidationError

    from citywatch.broker.auth import DeviceAccount, GatewayAccount, acl_file, hash_password, password_file
    from gateway.db import make_engine, make_sessionmaker, migrate
    from gateway.devices import service
    from gateway.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"error: gateway settings are invalid: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
        return 2
    url = urlsplit(settings.MQTT_URL)
    gateway_user = args.gateway_user or url.username
    gateway = None
    if gateway_user and url.password and gateway_user == url.username:
        gateway = GatewayAccount(gateway_user, hash_password(url.password))
    elif gateway_user:
        print(
            f"warning: no password for the gateway's user {gateway_user!r} in CITYWATCH_MQTT_URL: not in passwd"
        )
    engine = make_engine(settings.DB_URL)
    migrate(engine)
    with make_sessionmaker(engine)() as session:
        devices = [
            DeviceAccount(d.mqtt_username or d.id, d.mqtt_password_hash or "", d.site, d.id)
            for d in service.with_credentials(session=session)
        ]
    engine.dispose()
    if gateway_user and any(d.username == gateway_user for d in devices):
        print(f"error: the gateway's MQTT user {gateway_user!r} is also a device's")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / "passwd", password_file(gateway, devices), mode=0o600)
    _write(args.out / "acl", acl_file(gateway_user, devices), mode=0o644)
    print(
        f"wrote {args.out / 'passwd'} and {args.out / 'acl'}: {len(devices)} device account(s)"
        f"{', the gateway ' + repr(gateway_user) if gateway_user else ''}; reload Mosquitto (SIGHUP) to apply"
    )
    return 0


def _write(path: Path, text: str, *, mode: int) -> None:
    import os

    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.chmod(temporary, mode)
    os.replace(temporary, path)
