"""``citywatch sim ...``: simulators for testers (sensors, device fleets, the dispatch centre)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this subsystem's subcommands to the ``citywatch`` parser."""
    sim = commands.add_parser("sim", help="simulators for testers")
    sub = sim.add_subparsers(dest="sim_command", metavar="SIM_COMMAND", required=True)
    _register_water(sub)
    _register_dispatch_centre(sub)
    _register_facade(sub)
    _register_street(sub)
    _register_fleet(sub)


def _register_dispatch_centre(sub: argparse._SubParsersAction[Any]) -> None:
    # Reconstructed after a concurrent edit lost the gateway helper's version; handler is theirs.
    centre = sub.add_parser("dispatch-centre", help="simulated dispatch centre (Standard Webhooks receiver)")
    centre.add_argument("--host", default="127.0.0.1")
    centre.add_argument("--port", type=int, default=8090)
    centre.add_argument("--secret", default=None, help="Standard Webhooks secret (whsec_...); new if absent")
    centre.add_argument("--new-secret", action="store_true", help="print a new secret and exit")
    centre.add_argument("--fail-rate", type=float, default=0.0, help="probability of answering 500")
    centre.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    centre.add_argument("--down", action="store_true", help="drop connections without answering")
    centre.add_argument("--retry-after", type=float, default=None, help="answer 429 with this Retry-After")
    centre.add_argument("--seed", type=int, default=0)
    centre.set_defaults(handler=_dispatch_centre)


def _dispatch_centre(args: argparse.Namespace) -> int:
    from simulators.dispatch_centre import run

    return run(args)


def _register_water(sub: argparse._SubParsersAction[Any]) -> None:
    water = sub.add_parser("water", help="simulated culvert devices (full edge agents, simulated water)")
    water.add_argument("--device", action="append", dest="devices", help="device id (repeatable)")
    water.add_argument("--devices", type=int, dest="count", default=None, help="or: this many devices")
    water.add_argument("--site", default="sim")
    water.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883")
    water.add_argument("--scenario", default="storm", choices=("dry", "drizzle", "storm", "flash_flood"))
    water.add_argument("--peak-cm", type=float, default=30.0)
    water.add_argument("--start-after-s", type=float, default=60.0, help="dry device-seconds before the rain")
    water.add_argument("--faults", default="", help="comma list: spikes,stuck,dropouts,max_range")
    water.add_argument("--seed", type=int, default=1)
    water.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="simulated-clock speed-up (60 = 1 min per s); the devices' clocks then run ahead of a "
        "gateway's, which refuses times over CITYWATCH_CLOCK_SKEW_S ahead: raise it for such a gateway",
    )
    water.add_argument("--mount-height-mm", type=int, default=2000)
    water.add_argument("--outbox-dir", type=Path, default=Path("var/sim-water"))
    water.add_argument(
        "--replay",
        type=Path,
        default=None,
        help="replay a recorded offset_s,dist_mm CSV or FloodNet flood-events.csv",
    )
    water.add_argument(
        "--event", type=int, default=None, help="FloodNet event row to replay (device i: row + i)"
    )
    water.add_argument("--duration", type=float, default=None, help="wall seconds, then stop")
    water.set_defaults(handler=_water)


def _water(args: argparse.Namespace) -> int:
    import signal
    import threading

    from simulators.water_fleet import WaterFleetOptions, run_water_fleet

    devices = args.devices or [f"culvert-sim-{i + 1}" for i in range(args.count or 1)]
    options = WaterFleetOptions(
        devices=devices,
        site=args.site,
        mqtt_url=args.mqtt_url,
        scenario=args.scenario,
        peak_cm=args.peak_cm,
        start_after_s=args.start_after_s,
        faults=[f for f in args.faults.split(",") if f],
        seed=args.seed,
        speed=args.speed,
        mount_height_mm=args.mount_height_mm,
        outbox_dir=args.outbox_dir,
        replay_file=args.replay,
        replay_event=args.event,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return run_water_fleet(options, duration_s=args.duration, stop=stop)


def _register_facade(sub: argparse._SubParsersAction[Any]) -> None:
    facade = sub.add_parser(
        "facade", help="facade scenarios (objects thrown from height): video + truth JSON"
    )
    facade.add_argument("--out", type=Path, required=True, help="directory for the videos and JSON files")
    facade.add_argument("--seed", type=int, default=1, help="first scenario seed")
    facade.add_argument("--count", type=int, default=1, help="scenarios: seeds seed..seed+count-1")
    facade.add_argument("--duration", type=float, default=60.0, help="seconds per scenario")
    facade.add_argument(
        "--throws", type=int, default=None, help="throws per scenario (default: from the seed)"
    )
    facade.add_argument("--time", dest="time_of_day", choices=("day", "dusk", "night"), default=None)
    facade.add_argument("--weather", choices=("clear", "rain", "snow", "wind"), default=None)
    facade.add_argument("--floors", type=int, default=None, help="6..33 (default: from the seed)")
    facade.add_argument("--distractors", type=float, default=1.0, help="distractor rate: 0 none, 1 busy")
    facade.add_argument("--size", default="1920x1080", help="WxH (default: %(default)s)")
    facade.add_argument("--fps", type=float, default=25.0)
    facade.add_argument("--format", choices=("mp4", "avi"), default="mp4", help="mp4 (mp4v) or avi (MJPG)")
    facade.set_defaults(handler=_facade)


def _facade(args: argparse.Namespace) -> int:
    from simulators.facade.cli import run

    return run(args)


def _register_street(sub: argparse._SubParsersAction[Any]) -> None:
    street = sub.add_parser(
        "street", help="street scenarios (illegal parking): video or frame directory + truth JSON"
    )
    street.add_argument("--out", type=Path, required=True, help="directory for the videos and JSON files")
    street.add_argument(
        "--scenario",
        default="busy_mixed",
        help="overstay, leaves_in_grace, drop_off, queue, jam, double_park, bus_stop, occluded, swap, "
        "busy_mixed or random (a held-out style mix drawn from the seed); default: %(default)s",
    )
    street.add_argument("--seed", type=int, default=1, help="first scenario seed")
    street.add_argument("--count", type=int, default=1, help="scenarios: seeds seed..seed+count-1")
    street.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per scenario (default: the scenario's own length)",
    )
    street.add_argument("--time", dest="time_of_day", choices=("day", "dusk", "night"), default=None)
    street.add_argument("--weather", choices=("clear", "rain"), default=None)
    street.add_argument("--size", default="1920x1080", help="WxH (default: %(default)s)")
    street.add_argument("--fps", type=float, default=10.0)
    street.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="fast-forward: scenario seconds per video second (10: a 15-minute scenario in 90 s of video)",
    )
    street.add_argument("--dwell", type=float, default=120.0, help="rules: seconds before the warning")
    street.add_argument("--grace", type=float, default=600.0, help="rules: seconds from warning to violation")
    street.add_argument(
        "--format",
        choices=("mp4", "avi", "frames"),
        default="mp4",
        help="mp4 (mp4v), avi (MJPG) or a JPEG frame directory",
    )
    street.set_defaults(handler=_street)


def _street(args: argparse.Namespace) -> int:
    from simulators.street.cli import run

    return run(args)


def _register_fleet(sub: argparse._SubParsersAction[Any]) -> None:
    from simulators.fleet.cli import add_arguments

    fleet = sub.add_parser(
        "fleet",
        help="thousands of simulated culverts and lift cameras, each a real MQTT session, from one process",
    )
    add_arguments(fleet)
    fleet.set_defaults(handler=_fleet)


def _fleet(args: argparse.Namespace) -> int:
    from simulators.fleet.cli import run

    return run(args)
