"""Run Debian's ``victoria-metrics`` as a stand-in InfluxDB v2 *write* endpoint (tests, bench).

It accepts ``influxdb-client`` writes at ``/api/v2/write`` and stores field ``level_cm`` of measurement
``water_level`` as series ``water_level_level_cm`` with the line's tags; ``/api/v1/export`` reads samples
back. It does not speak Flux, so it cannot serve ``history()``/``count()``. Started with
``-dedup.minScrapeInterval=1ms`` so that a re-sent point replaces the old one, as in InfluxDB.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from citywatch.local_server import LocalServer
from citywatch.polling import wait_until


def victoria_metrics_binary() -> str | None:
    return shutil.which("victoria-metrics") or (
        "/usr/bin/victoria-metrics" if Path("/usr/bin/victoria-metrics").exists() else None
    )


def _task_state(task: Path) -> str | None:
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None  # the thread has gone


def _all_stopped(tasks: Path) -> bool:
    return all(_task_state(task) in ("T", "t", None) for task in tasks.iterdir())


ALL_SERIES = '{__name__=~".+"}'
SampleKey = tuple[frozenset[tuple[str, str]], int]  # (series labels incl. __name__, timestamp ms)


@dataclass
class VictoriaMetrics(LocalServer):
    """A victoria-metrics process on a loopback port; ``stop()`` then ``start()`` keeps port and data."""

    stop_timeout_s: ClassVar[float] = 30.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> VictoriaMetrics:
        binary = victoria_metrics_binary()
        if binary is None:
            raise FileNotFoundError(
                "victoria-metrics is not installed (Debian: apt-get install victoria-metrics)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.data_dir / "victoria-metrics.log").open("ab")
        self._process = subprocess.Popen(
            [
                binary,
                f"-storageDataPath={self.data_dir / 'storage'}",
                f"-httpListenAddr={self.host}:{self.port}",
                "-loggerLevel=ERROR",
                "-search.latencyOffset=0",  # read back what was just written (with force_flush)
                "-search.disableCache",
                "-dedup.minScrapeInterval=1ms",  # same series and timestamp: one sample, like InfluxDB
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()
        # Stop waiting as soon as it answers, or as soon as it has exited (its log says why).
        if wait_until(lambda: self._healthy() or not self.running, timeout_s=timeout_s) and self.running:
            return self
        self.stop(kill=True)
        log = (self.data_dir / "victoria-metrics.log").read_text(errors="replace")
        raise RuntimeError(f"victoria-metrics did not start on port {self.port}: {log[-2000:]}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def pause(self) -> None:
        """SIGSTOP: a hung server that accepts connections and never answers."""
        assert self._process is not None, "victoria-metrics is not running"
        self._process.send_signal(signal.SIGSTOP)
        # The signal is asynchronous: wait until every thread is really stopped (Linux /proc).
        tasks = Path(f"/proc/{self._process.pid}/task")
        wait_until(lambda: not tasks.exists() or _all_stopped(tasks), timeout_s=10, interval_s=0.01)

    def resume(self) -> None:
        assert self._process is not None, "victoria-metrics is not running"
        self._process.send_signal(signal.SIGCONT)

    def force_flush(self) -> None:
        force_flush(self.url)

    def export(self, match: str = ALL_SERIES) -> list[dict[str, object]]:
        return export(self.url, match)

    def sample_keys(self, match: str = ALL_SERIES) -> set[SampleKey]:
        return sample_keys(self.url, match)


def force_flush(url: str) -> None:
    """Make recent writes searchable now (they are otherwise buffered for about a second)."""
    with urllib.request.urlopen(f"{url}/internal/force_flush", timeout=30):
        pass


def export(url: str, match: str = ALL_SERIES) -> list[dict[str, object]]:
    """Every series matching ``match`` with its values and timestamps (ms), after a flush."""
    force_flush(url)
    query = urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(f"{url}/api/v1/export?{query}", timeout=300) as response:
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


def sample_keys(url: str, match: str = ALL_SERIES) -> set[SampleKey]:
    """Distinct (series, timestamp) pairs stored: one per field of every point."""
    keys: set[SampleKey] = set()
    for series in export(url, match):
        labels = series["metric"]
        timestamps = series["timestamps"]
        assert isinstance(labels, dict) and isinstance(timestamps, list)
        frozen = frozenset((str(k), str(v)) for k, v in labels.items())
        keys.update((frozen, int(ts)) for ts in timestamps)
    return keys
