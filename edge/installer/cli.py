"""``citywatch config|keys|device ...``: the installer's commands (standard library only at module level).

citywatch config check PATH...            every mistake in every file or site folder (exit 2 on any)
citywatch config new --kind K --site S --id I   a commented starting config that passes check
citywatch keys init --site S              the site's Ed25519 signing key (rotate, retire, list)
citywatch config flash CONFIG --to DIR    a signed, complete bundle, read back and verified
citywatch config push CONFIG              a signed config to the live device, through the gateway
citywatch device check DEVICE_ID          the commissioning report (exit 1 on any failure)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

API_HELP = "the gateway's API (default $GATEWAY_API_URL, else http://127.0.0.1:8080)"
TOKEN_HELP = "an installer's API token (default $GATEWAY_API_TOKEN)"
KEYS_HELP = "the desk's key folder (default $SIGNING_KEYS_DIR, else ~/.config/citywatch/keys)"


def register(commands: argparse._SubParsersAction[Any]) -> None:
    config = commands.add_parser("config", help="device configs: check, new, flash, push (the installer's)")
    sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="every mistake in every file (files or site folders); exit 2 on any")
    add_check_arguments(check)

    new = sub.add_parser("new", help="write a commented starting config that passes check")
    new.add_argument("--kind", required=True, help="culvert | elevator | facade | street")
    new.add_argument("--site", required=True, help="the site (topic segment), e.g. maple-gardens")
    new.add_argument("--id", dest="device_id", required=True, help="the device id, e.g. lift-a1")
    new.add_argument("-o", "--output", type=Path, help="file to write (default: <id>.yaml here); '-': stdout")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(handler=_new)

    flash = sub.add_parser("flash", help="write a signed bundle for the device onto a card or folder")
    flash.add_argument("config", type=Path)
    flash.add_argument("--to", dest="target", type=Path, required=True, help="the mounted card or folder")
    flash.add_argument("--force", action="store_true", help="overwrite another device's bundle")
    flash.add_argument("--keys-dir", type=Path, help=KEYS_HELP)
    flash.add_argument("--register", action="store_true", help="register its broker account with the gateway")
    flash.add_argument("--gateway", help=API_HELP)
    flash.add_argument("--token", help=TOKEN_HELP)
    flash.set_defaults(handler=_flash)

    push = sub.add_parser("push", help="send a signed config to the live device (retained, via the gateway)")
    push.add_argument("config", type=Path)
    push.add_argument("--keys-dir", type=Path, help=KEYS_HELP)
    push.add_argument("--gateway", help=API_HELP)
    push.add_argument("--token", help=TOKEN_HELP)
    push.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the device's ack (0: none)"
    )
    push.set_defaults(handler=_push)

    keys = commands.add_parser("keys", help="the site's config signing keys (on the desk machine)")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    for name, text in (
        ("init", "make the site's first signing key"),
        ("rotate", "add a new key: configs are signed by old and new until the old is retired"),
        ("list", "the site's active keys"),
    ):
        action = keys_sub.add_parser(name, help=text)
        action.add_argument("--site", required=True)
        action.add_argument("--keys-dir", type=Path, help=KEYS_HELP)
        action.set_defaults(handler=_keys, keys_action=name)
    retire = keys_sub.add_parser("retire", help="stop signing with a key (devices stop trusting it)")
    retire.add_argument("key_id")
    retire.add_argument("--site", required=True)
    retire.add_argument("--keys-dir", type=Path, help=KEYS_HELP)
    retire.set_defaults(handler=_keys, keys_action="retire")

    device = commands.add_parser("device", help="devices on site: the commissioning report")
    device_sub = device.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    commission = device_sub.add_parser("check", help="the commissioning report; exit 1 on any failure")
    commission.add_argument("device_id")
    commission.add_argument("--gateway", help=API_HELP)
    commission.add_argument("--token", help=TOKEN_HELP)
    commission.add_argument("--json", action="store_true", help="JSON for the installer's app")
    commission.add_argument("--actuators", action="store_true", help="also test door-hold relay and voice")
    commission.add_argument("--window", type=float, default=600.0, help="seconds of telemetry to look at")
    commission.add_argument(
        "--health-interval", type=float, default=300.0, help="the device's telemetry.health_interval_s"
    )
    commission.set_defaults(handler=_device_check)


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="config files or site folders")
    parser.add_argument("--online", action="store_true", help="also connect to camera URLs")
    parser.add_argument("--no-models", action="store_true", help="do not load detector models")
    parser.add_argument("--json", action="store_true", help="findings as JSON")
    parser.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from edge.installer.check import CheckOptions, check_paths

    report = check_paths(args.paths, CheckOptions(online=args.online, models=not args.no_models))
    if args.json:
        print(json.dumps({"ok": report.ok, "findings": [f.as_dict() for f in report.findings]}, indent=2))
        return 0 if report.ok else 2
    by_file: dict[str, list[Any]] = {}
    for finding in report.findings:
        by_file.setdefault(finding.file, []).append(finding)
    for file, findings in by_file.items():
        errors_here = sum(f.severity == "error" for f in findings)
        out = sys.stderr if errors_here else sys.stdout
        print(f"{file}: {errors_here} problem(s), {len(findings) - errors_here} warning(s):", file=out)
        for finding in findings:
            print(f"  {finding.render()}", file=out)
    for checked in report.files:
        if checked.config is not None and not any(f.severity == "error" for f in checked.findings):
            config = checked.config
            print(
                f"{checked.file}: ok ({getattr(config, 'kind', '?')} {config.device.site}/{config.device.id}, "
                f"config version {config.version})"
            )
    errors = len(report.errors)
    if errors:
        print(
            f"{errors} error(s) in {len(report.files)} file(s): fix them before the truck leaves",
            file=sys.stderr,
        )
    return 0 if report.ok else 2


def _new(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from edge.installer.template import new_config

    output: Path = args.output or Path(f"{args.device_id}.yaml")
    try:
        text = new_config(args.kind, args.site, args.device_id, path=str(output))
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if str(output) == "-":
        sys.stdout.write(text)
        return 0
    if output.exists() and not args.force:
        print(f"error: {output} exists: give --force to overwrite it", file=sys.stderr)
        return 2
    output.write_text(text)
    print(f"wrote {output}: replace the values marked CHANGE ME, then citywatch config check {output}")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from edge.installer import keys

    root = keys.keys_dir(args.keys_dir)
    try:
        if args.keys_action == "init":
            key = keys.init(args.site, root)
            print(
                f"site {args.site}: key {key.key_id} in {root / args.site} (keep this folder on this machine)"
            )
        elif args.keys_action == "rotate":
            key = keys.rotate(args.site, root)
            print(
                f"site {args.site}: new key {key.key_id}; configs are signed by every active key from now on: "
                "push to every device, then retire the old key"
            )
        elif args.keys_action == "retire":
            keys.retire(args.site, args.key_id, root)
            print(f"site {args.site}: key {args.key_id} retired")
        for key in keys.signing_keys(args.site, root):
            print(f"  {key.key_id}  {key.trusted.public_key}")
    except keys.KeyringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _signing_keys(args: argparse.Namespace, site: str) -> Any:
    from edge.installer import keys

    return keys.signing_keys(site, keys.keys_dir(args.keys_dir))


def _flash(args: argparse.Namespace) -> int:
    from edge.config import ConfigError, load_config
    from edge.installer.api import ApiError, GatewayApi
    from edge.installer.bundle import BundleError
    from edge.installer.flash import FlashRefused, flash
    from edge.installer.keys import KeyringError

    try:
        site = load_config(args.config).device.site
        flashed = flash(args.config, args.target, _signing_keys(args, site), force=args.force)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except (FlashRefused, KeyringError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BundleError as exc:
        print(f"{exc.render()}\nthe card may be failing: flash again, or use another card", file=sys.stderr)
        return 2
    manifest = flashed.manifest
    print(
        f"{args.target}: bundle for {manifest.site}/{manifest.device_id} ({manifest.kind}), config version "
        f"{manifest.config_version}, {len(manifest.files)} files, signed by {', '.join(flashed.key_ids)}; "
        "read back and verified"
    )
    if args.register:
        try:
            api = GatewayApi.from_args(args.gateway, args.token)
            api.put(
                f"/devices/{manifest.device_id}/mqtt-credential",
                {"username": flashed.username, "password_hash": flashed.password_hash},
            )
        except ApiError as exc:
            print(f"error: the broker account was not registered: {exc}", file=sys.stderr)
            return 1
        print(
            f"broker account {flashed.username} registered: run citywatch gateway broker-acl and reload Mosquitto"
        )
    else:
        print(
            f"broker account {flashed.username}: register it (config flash --register, or PUT "
            f"/devices/{manifest.device_id}/mqtt-credential) with password hash {flashed.password_hash}"
        )
    return 0


def _push(args: argparse.Namespace) -> int:
    from edge.config import ConfigError, load_config
    from edge.installer.api import ApiError, GatewayApi
    from edge.installer.keys import KeyringError
    from edge.installer.push import push

    try:
        config = load_config(args.config)
        api = GatewayApi.from_args(args.gateway, args.token)
        pushed = push(config, _signing_keys(args, config.device.site), api, wait_s=args.wait)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except (KeyringError, ApiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"pushed config {pushed.config_version} to {pushed.device_id} (cmd_id {pushed.cmd_id}), retained")
    if args.wait <= 0:
        return 0
    if pushed.ack is None:
        print(f"no answer within {args.wait:g} s: the device gets it when it connects (see its audit)")
        return 1
    print(f"device answered: {pushed.ack['note']}")
    return 0 if pushed.accepted else 1


def _device_check(args: argparse.Namespace) -> int:
    from edge.installer.api import ApiError, GatewayApi
    from edge.installer.commissioning import CheckWindow, commission

    try:
        api = GatewayApi.from_args(args.gateway, args.token)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = commission(
        api,
        args.device_id,
        window=CheckWindow(window_s=args.window, health_interval_s=args.health_interval),
        actuators=args.actuators,
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1
