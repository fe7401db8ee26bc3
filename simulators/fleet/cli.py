"""``citywatch sim fleet``: run the fleet until stopped; optional drop and reconnect storm; ground truth.

With ``--control``, commands are read from stdin, one a line, each answered with one JSON line on
stdout: ``stats``, ``drop K`` (close K sockets at once, wills fire), ``restore`` (all dropped devices
reconnect at once: the figures of the storm), ``truth PATH``, ``stop``. The bench drives it so.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the fleet (asyncio and the contract) is imported when it runs, not to list commands
    from simulators.fleet.fleet import FleetOptions, FleetThread


def add_arguments(fleet: argparse.ArgumentParser) -> None:
    fleet.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883")
    fleet.add_argument("--devices", type=int, default=10_000, help="devices in all (default: %(default)s)")
    fleet.add_argument("--cameras", type=int, default=None, help="of which elevator cameras (default: 23%%)")
    fleet.add_argument("--site", default="fleet")
    fleet.add_argument("--prefix", default="f", help="id prefix: culvert-<prefix>00001, lift-<prefix>00001")
    fleet.add_argument("--seed", type=int, default=1)
    fleet.add_argument(
        "--speed", type=float, default=1.0, help="intervals shortened this many times (60: a minute a second)"
    )
    fleet.add_argument("--events-per-camera-day", type=float, default=2.0)
    fleet.add_argument("--wet-fraction", type=float, default=0.1, help="culverts the storm wets")
    fleet.add_argument(
        "--storm-start-s", type=float, default=600.0, help="simulated seconds before the storm"
    )
    fleet.add_argument("--storm-s", type=float, default=3600.0, help="simulated length of the storm")
    fleet.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight at once")
    fleet.add_argument("--keepalive", type=int, default=60, help="MQTT keepalive, seconds")
    fleet.add_argument("--duration", type=float, default=None, help="wall seconds, then stop")
    fleet.add_argument("--drop", type=int, default=0, help="drop this many devices at once (wills fire) ...")
    fleet.add_argument(
        "--drop-after", type=float, default=60.0, help="... this many wall seconds after all connected"
    )
    fleet.add_argument(
        "--restore-after", type=float, default=30.0, help="... and bring them back after this long"
    )
    fleet.add_argument("--truth", type=Path, default=None, help="write the ground truth JSON here at the end")
    fleet.add_argument(
        "--provision-api", default=None, help="gateway API URL: register the fleet there first"
    )
    fleet.add_argument("--token", default=None, help="API token (installer or admin) for --provision-api")
    fleet.add_argument(
        "--devices-out", type=Path, default=None, help="write the fleet as JSON lines and exit"
    )
    fleet.add_argument("--control", action="store_true", help="take commands on stdin, answer JSON lines")


def options_from(args: argparse.Namespace) -> FleetOptions:
    from simulators.fleet.fleet import FleetOptions

    return FleetOptions(
        mqtt_url=args.mqtt_url,
        devices=args.devices,
        cameras=args.cameras,
        site=args.site,
        prefix=args.prefix,
        seed=args.seed,
        speed=args.speed,
        events_per_camera_day=args.events_per_camera_day,
        wet_fraction=args.wet_fraction,
        storm_start_s=args.storm_start_s,
        storm_s=args.storm_s,
        connect_concurrency=args.connect_concurrency,
        keepalive_s=args.keepalive,
    )


def _say(text: str) -> None:
    print(f"fleet: {text}", file=sys.stderr, flush=True)


def _answer(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


def run(args: argparse.Namespace) -> int:
    from simulators.fleet.fleet import FleetThread, fleet_devices, write_truth

    options = options_from(args)
    devices = fleet_devices(options)
    if args.devices_out is not None:
        from simulators.fleet.provision import devices_jsonl

        args.devices_out.write_text(devices_jsonl(devices))
        return 0
    if args.provision_api:
        if not args.token:
            _say("--provision-api needs --token (an installer or admin token)")
            return 2
        from simulators.fleet.provision import provision_via_api

        _say(f"provisioning {len(devices)} devices at {args.provision_api} ...")
        _say(f"provisioned: {provision_via_api(args.provision_api, args.token, devices)}")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    fleet = FleetThread(options)
    started = time.monotonic()
    fleet.start()
    _say(f"{len(devices)} devices connecting to {options.mqtt_url} (speed {options.speed:g}x)")
    if args.control:
        threading.Thread(target=_control, args=(fleet, stop), daemon=True).start()
    connected_at: float | None = None
    dropped: list[str] = []
    dropped_at = 0.0
    last_status = 0.0
    while not stop.wait(0.2):
        now = time.monotonic()
        if args.duration is not None and now - started >= args.duration:
            break
        if connected_at is None and fleet.wait_connected(0):
            connected_at = now
            _say(f"all connected in {now - started:.1f} s")
        if (
            args.drop
            and connected_at is not None
            and not dropped
            and not dropped_at
            and now - connected_at >= args.drop_after
        ):
            dropped, dropped_at = fleet.drop(args.drop), now
            _say(f"dropped {len(dropped)} devices")
        if dropped and now - dropped_at >= args.restore_after:
            storm = fleet.restore(dropped)
            _say(f"reconnect storm: {storm.seconds_to_all_connected} s, {storm.connects_per_s} connects/s")
            dropped = []
        if now - last_status >= 10:
            last_status = now
            stats = fleet.stats()
            _say(
                f"connected={stats['connected']}/{stats['devices']} sent={sum(stats['sent'].values())} "
                f"unacked={stats['unacked']} queued={stats['queued']} events={stats['events_opened']}"
            )
    truth = fleet.stop()
    if args.truth is not None:
        write_truth(args.truth, truth)
    _answer({"stopped": True, **truth["stats"]})
    return 0


def _control(fleet: FleetThread, stop: threading.Event) -> None:
    from simulators.fleet.fleet import write_truth

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "stats":
                _answer(fleet.stats())
            elif words[0] == "drop":
                _answer({"dropped": fleet.drop(int(words[1]))})
            elif words[0] == "restore":
                storm = fleet.restore()
                _answer({"restored": len(storm.devices), "seconds_to_all_connected": storm.seconds_to_all_connected,
                         "connects_per_s": storm.connects_per_s, "started": storm.started})  # fmt: skip
            elif words[0] == "wait-connected":
                _answer({"connected": fleet.wait_connected(float(words[1]) if len(words) > 1 else 300.0)})
            elif words[0] == "truth":
                write_truth(Path(words[1]), fleet.ground_truth())
                _answer({"truth": words[1]})
            elif words[0] == "stop":
                stop.set()
                return
            else:
                _answer({"error": f"unknown command {words[0]!r}"})
        except Exception as exc:  # a bad command must not end the fleet
            _answer({"error": f"{type(exc).__name__}: {exc}"})
    stop.set()  # stdin closed: the driver is gone


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.fleet", description=__doc__)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
