"""Run Mosquitto with the project's broker config (tests, demo, bench)."""

from __future__ import annotations

import getpass
import resource
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from citywatch.local_server import LocalServer, free_port
from citywatch.polling import wait_until

__all__ = ["BrokerAuth", "BrokerTls", "MosquittoBroker", "free_port", "mosquitto_binary", "wait_for_port"]

BASE_CONFIG = resources.files("citywatch.broker").joinpath("mosquitto.conf")


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


@dataclass(frozen=True, slots=True)
class BrokerAuth:
    """Accounts and ACL (citywatch/broker/auth.py writes both); anonymous clients are refused."""

    password_file: Path
    acl_file: Path


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """A TLS listener on ``port`` beside the plain one (server certificate signed by ``ca_file``)."""

    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


def write_config(
    data_dir: Path, port: int, *, auth: BrokerAuth | None = None, tls: BrokerTls | None = None
) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "mosquitto.conf"
    base = BASE_CONFIG.read_text()
    extra = ""
    if auth is not None:
        base = base.replace("allow_anonymous true", "allow_anonymous false")
        extra += f"password_file {auth.password_file}\nacl_file {auth.acl_file}\n"
    listeners = f"\nlistener {port} 127.0.0.1\n"
    if tls is not None:
        listeners += (
            f"listener {tls.port} 127.0.0.1\ncafile {tls.ca_file}\ncertfile {tls.cert_file}\n"
            f"keyfile {tls.key_file}\ntls_version tlsv1.2\n"
        )
    # Started as root, mosquitto drops to user "mosquitto", which cannot write our data dir: it would
    # then run without its persistence file, silently forgetting queued messages on restart.
    conf.write_text(
        base
        + f"\nuser {getpass.getuser()}\n"
        + extra
        + listeners
        + f"persistence_location {data_dir}/\n"
        + f"log_dest file {data_dir}/mosquitto.log\n"
    )
    return conf


def _raise_open_files(pid: int) -> None:
    """Mosquitto's soft open-file limit up to its hard one: one descriptor a client, and Mosquitto 2.0
    does not raise it itself (a soft limit of 1024 would refuse a 10,000-device fleet). Set on the
    broker's process alone (prlimit), not inherited from ours: this process keeps its own limit."""
    try:
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
    except ProcessLookupError:
        pass  # it exited at once (a bad config): the wait for its port says so, with its log


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
    """A Mosquitto process on a loopback port; ``stop()`` then ``start()`` restarts it on the same port.

    ``auth``: accounts and ACL, anonymous refused; ``tls``: a TLS listener too (``tls_url``); ``reload()``
    makes it read the password and ACL files again (SIGHUP), as an operator does after a change."""

    auth: BrokerAuth | None = None
    tls: BrokerTls | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        if self.tls is None:
            raise RuntimeError("this broker has no TLS listener")
        return f"mqtts://{self.host}:{self.tls.port}"

    def reload(self) -> None:
        """Read the password and ACL files again (SIGHUP); connected clients are checked again too."""
        if self._process is None:
            raise RuntimeError("mosquitto is not running")
        self._process.send_signal(signal.SIGHUP)

    def start(self) -> MosquittoBroker:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        conf = write_config(self.data_dir, self.port, auth=self.auth, tls=self.tls)
        self._process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _raise_open_files(self._process.pid)  # before any client can connect: it is not listening yet
        try:
            wait_for_port(self.host, self.port)
            if self.tls is not None:
                wait_for_port(self.host, self.tls.port)
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
