"""Gateways and the device fleet as processes of their own, as they run in production: each one's CPU
time and memory are its own, and none shares another's interpreter lock."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from citywatch.local_server import free_port
from citywatch.polling import wait_until


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a live process (VmHWM), MB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


@dataclass
class Usage:
    """CPU seconds and resident memory of a process, sampled."""

    process: psutil.Process
    cpu_s: float = 0.0
    at: float = 0.0

    def mark(self) -> None:
        times = self.process.cpu_times()
        self.cpu_s, self.at = times.user + times.system, time.monotonic()

    def cpu_percent_since_mark(self) -> float:
        times = self.process.cpu_times()
        return 100 * (times.user + times.system - self.cpu_s) / max(time.monotonic() - self.at, 1e-6)

    def rss_mb(self) -> float:
        return float(self.process.memory_info().rss) / 2**20


@dataclass
class GatewayProcess:
    """``citywatch gateway`` with ``CITYWATCH_*`` settings from ``env``; its API on a free port."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def telemetry_db(self) -> Path:
        return self.data_dir / "telemetry.db"

    def start(self) -> GatewayProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = (self.data_dir / "gateway.log").open("ab")
        env = {
            **os.environ,
            "CITYWATCH_DATA_DIR": str(self.data_dir),
            "CITYWATCH_HTTP_HOST": "127.0.0.1",
            "CITYWATCH_HTTP_PORT": str(self.port),
            **self.env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "citywatch.cli", "gateway"], env=env, stdout=self._log, stderr=self._log
        )
        return self

    def wait_ready(self, token: str, timeout_s: float = 60.0) -> None:
        """Until ``/health`` says the MQTT check passes (connected and subscribed)."""

        def ready() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_tail()}")
            try:
                health = httpx.get(
                    f"{self.url}/health", headers={"Authorization": f"Bearer {token}"}, timeout=5
                )
            except httpx.HTTPError:
                return False
            checks = {c["name"]: c["ok"] for c in health.json().get("checks", [])}
            return bool(checks.get("mqtt"))

        if not wait_until(ready, timeout_s=timeout_s, interval_s=0.2):
            raise TimeoutError(f"gateway on port {self.port} not ready in {timeout_s} s: {self.log_tail()}")

    def usage(self) -> Usage:
        assert self.process is not None
        usage = Usage(psutil.Process(self.process.pid))
        usage.mark()
        return usage

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.process.pid) if self.process is not None else 0.0

    def telemetry_count(self) -> int:
        """Rows in its SQLite telemetry store (read-only, beside the gateway's own connections)."""
        if not self.telemetry_db.exists():
            return 0
        with sqlite3.connect(f"file:{self.telemetry_db}?mode=ro", uri=True, timeout=10) as db:
            return int(db.execute("SELECT count(*) FROM telemetry").fetchone()[0])

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout_s: float = 60.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self) -> str:
        path = self.data_dir / "gateway.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class FleetProcess:
    """``python -m simulators.fleet --control``: the device fleet in its own process, driven over stdin."""

    def __init__(self, args: list[str], *, log_path: Path) -> None:
        self._log = log_path.open("ab")
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "simulators.fleet", "--control", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )

    def command(self, line: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"fleet exited: {self.log_path.read_text(errors='replace')[-2000:]}")
        result: dict[str, Any] = json.loads(answer)
        if "error" in result:
            raise RuntimeError(f"fleet: {result['error']}")
        return result

    def usage(self) -> Usage:
        usage = Usage(psutil.Process(self.process.pid))
        usage.mark()
        return usage

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.process.pid)

    def stop(self, timeout_s: float = 120.0) -> dict[str, Any]:
        """Drain, say offline, disconnect; the fleet's final figures."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()
            out, _ = self.process.communicate(timeout=timeout_s)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.process.kill()
            out, _ = self.process.communicate()
        finally:
            self._log.close()
        lines = [line for line in (out or "").splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}
