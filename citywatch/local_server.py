"""A server process on a loopback port (Mosquitto, victoria-metrics) for the demo, tests and benchmarks."""

from __future__ import annotations

import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalServer:
    """Subclasses start the process in ``start()``; ``stop()`` then ``start()`` keeps port and data."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    _process: subprocess.Popen[bytes] | None = None
    stop_timeout_s: ClassVar[float] = 10.0

    def start(self) -> Self:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, *, kill: bool = False) -> None:
        """Graceful stop (SIGTERM) lets the server save its data; ``kill=True`` simulates a crash."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
        self._process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self._process.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
