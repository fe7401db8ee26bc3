"""``citywatch protocol check``: the conformance kit a device vendor runs against a broker.

It watches a device's topics and reports, message by message, every deviation from docs/protocol.md.
Exit status: 0 no error, 1 an error, 2 bad options or the broker unreachable.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


def register(commands: argparse._SubParsersAction[Any]) -> None:
    protocol = commands.add_parser("protocol", help="the device protocol (docs/protocol.md): conformance kit")
    sub = protocol.add_subparsers(dest="protocol_command", metavar="PROTOCOL_COMMAND", required=True)
    check = sub.add_parser(
        "check",
        help="watch a device on a broker and report every deviation from the protocol",
        description="Watch a device's topics on an MQTT broker and report, message by message, every "
        "deviation from docs/protocol.md (topic, QoS, retain, payload, clock, sessions, event phases, "
        "outbox_seq, acks). Exit 0: no error; 1: an error; 2: bad options or the broker is unavailable.",
    )
    check.add_argument(
        "--broker",
        default=None,
        help=f"mqtt://[user:password@]host:port or mqtts://... (default $CITYWATCH_MQTT_URL or {DEFAULT_BROKER}); "
        "credentials may also come from $MQTT_USERNAME and $MQTT_PASSWORD",
    )
    check.add_argument("--site", help="only this site (default: every site)")
    check.add_argument("--device", help="only this device id (default: every device)")
    until = check.add_mutually_exclusive_group()
    until.add_argument(
        "--duration", type=_positive, metavar="S", help="watch for S seconds (default: until Ctrl-C)"
    )
    until.add_argument("--messages", type=_positive_int, metavar="N", help="stop after N messages")
    check.add_argument(
        "--json", action="store_true", help="JSON Lines: one object per finding, then a summary"
    )
    check.add_argument(
        "--probe",
        action="store_true",
        help="send the device a ping and an expired command (needs --site and --device) and expect their acks",
    )
    check.add_argument(
        "--ack-timeout",
        type=_positive,
        default=10.0,
        metavar="S",
        help="how long an online device may take to answer a cmd, the probes' included (default 10 s)",
    )
    check.add_argument(
        "--silent-after",
        type=_positive,
        default=600.0,
        metavar="S",
        help="how long an online device may go unheard (default 600 s, the gateway's "
        "CITYWATCH_DEVICE_OFFLINE_AFTER_S)",
    )
    check.add_argument(
        "--clock-skew",
        type=_non_negative,
        default=300.0,
        metavar="S",
        help="how far ahead of this computer's clock a device time may be (default 300 s, as the gateway)",
    )
    check.add_argument(
        "--max-payload-bytes",
        type=_positive_int,
        default=256 * 1024,
        metavar="N",
        help="payload size limit (default 262144, the gateway's CITYWATCH_MAX_PAYLOAD_BYTES)",
    )
    check.add_argument("--list-rules", action="store_true", help="list the rules with their ids and exit")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from citywatch.protocol.conformance.cli_support import run_check

    args.broker = args.broker or os.environ.get("CITYWATCH_MQTT_URL") or DEFAULT_BROKER
    return run_check(args, environ=os.environ, out=sys.stdout, err=sys.stderr)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value
