"""amqtt, the pure-Python broker, in a background thread: the fallback when Mosquitto is absent.

amqtt did not redeliver QoS 1 messages queued for a persistent session while the subscriber was
away (measured, see docs/architecture.md), so it carries no delivery guarantee across a gateway
restart; Mosquitto does. ``start_broker`` prefers Mosquitto when it is installed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from citywatch.broker.mosquitto import MosquittoBroker, free_port, mosquitto_binary, wait_for_port

log = logging.getLogger(__name__)


class RunningBroker(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def keeps_persistent_sessions(self) -> bool: ...

    @property
    def name(self) -> str: ...

    def stop(self) -> None: ...


@dataclass
class EmbeddedBroker:
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    name: str = "amqtt (embedded)"
    keeps_persistent_sessions: bool = False
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stopped: asyncio.Event | None = None
    _error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="amqtt-broker", daemon=True)
        self._thread.start()
        ready.wait(15)
        if self._error is not None:
            raise RuntimeError(f"embedded broker failed to start: {self._error}") from self._error
        wait_for_port(self.host, self.port)
        return self

    def _run(self, ready: threading.Event) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        loop = asyncio.new_event_loop()
        self._loop = loop
        stopped = asyncio.Event()
        self._stopped = stopped

        async def serve() -> None:
            broker = Broker(config)
            try:
                await broker.start()
            except BaseException as exc:
                self._error = exc
                ready.set()
                return
            ready.set()
            await stopped.wait()
            await broker.shutdown()

        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        loop.run_until_complete(serve())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = None


@dataclass
class _MosquittoHandle:
    broker: MosquittoBroker
    name: str = "mosquitto"
    keeps_persistent_sessions: bool = True

    @property
    def url(self) -> str:
        return self.broker.url

    def stop(self) -> None:
        self.broker.stop()


def start_broker(
    *, data_dir: Path, port: int | None = None, kind: Literal["auto", "mosquitto", "embedded"] = "auto"
) -> RunningBroker:
    """Mosquitto with the project's config when installed (or asked for), else embedded amqtt."""
    if kind == "mosquitto" or (kind == "auto" and mosquitto_binary() is not None):
        broker = MosquittoBroker(data_dir=data_dir / "mosquitto", port=port or free_port()).start()
        return _MosquittoHandle(broker)
    log.warning(
        "mosquitto is not installed: using the embedded amqtt broker, which does not keep queued messages "
        "for a persistent session across a gateway restart (apt-get install mosquitto for that guarantee)"
    )
    return EmbeddedBroker(port=port or free_port()).start()
