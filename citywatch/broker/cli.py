"""``citywatch broker``: run an MQTT broker with the project's settings."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser(
        "broker",
        help="run an MQTT broker (Mosquitto with the project config if installed, else embedded amqtt)",
    )
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--data-dir", default="var/broker", help="persistence directory")
    parser.add_argument("--kind", choices=("auto", "mosquitto", "embedded"), default="auto")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading
    from pathlib import Path

    from citywatch.broker.embedded import start_broker

    broker = start_broker(data_dir=Path(args.data_dir), port=args.port, kind=args.kind)
    logging.getLogger("citywatch.broker").info("%s listening on %s (Ctrl-C to stop)", broker.name, broker.url)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    broker.stop()
    return 0
