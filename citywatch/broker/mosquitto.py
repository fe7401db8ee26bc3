"""Run Mosquitto with the project's broker config (tests, demo, bench)."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from citywatch.local_server import LocalServer, free_port
from citywatch.polling import wait_until

__all__ = ["MosquittoBroker", "free_port", "mosquitto_binary", "wait_for_port"]

BASE_CONFIG = resources.files("citywatch.broker").joinpath("mosquitto.conf")


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def write_config(data_dir: Path, port: int) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "mosquitto.conf"
    # Started as root, mosquitto drops to user "mosquitto", which cannot write our data dir: it would
    # then run without its persistence file, silently forgetting queued messages on restart.
    conf.write_text(
        BASE_CONFIG.read_text()
        + f"\nuser {getpass.getuser()}\n"
        + f"\nlistener {port} 127.0.0.1\npersistence_location {data_dir}/\n"
        + f"log_dest file {data_dir}/mosquitto.log\n"
    )
    return conf


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    if not wait_until(lambda: _accepts_connections(host, port), timeout_s=timeout_s):
        raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")


@dataclass
class MosquittoBroker(LocalServer):
    """A Mosquitto process on a loopback port; ``stop()`` then ``start()`` restarts it on the same port."""

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> MosquittoBroker:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        conf = write_config(self.data_dir, self.port)
        self._process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_for_port(self.host, self.port)
        except TimeoutError:
            self.stop()
            log_path = self.data_dir / "mosquitto.log"
            log = log_path.read_text() if log_path.exists() else ""
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {log[-2000:]}") from None
        return self

    @property
    def persistence_file(self) -> Path:
        return self.data_dir / "mosquitto.db"

    def save(self, timeout_s: float = 10.0) -> None:
        """Write the persistence file now (SIGUSR1), as the periodic autosave would; wait until written."""
        if self._process is None:
            raise RuntimeError("mosquitto is not running")
        before = self.persistence_file.stat().st_mtime_ns if self.persistence_file.exists() else 0
        self._process.send_signal(signal.SIGUSR1)
        saved = wait_until(
            lambda: self.persistence_file.exists() and self.persistence_file.stat().st_mtime_ns > before,
            timeout_s=timeout_s,
            interval_s=0.01,
        )
        if not saved:
            raise TimeoutError(f"mosquitto did not write {self.persistence_file} within {timeout_s} s")
