"""Health counters of the camera pipeline, reported as the ``health`` measurement every interval."""

from __future__ import annotations

import resource
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

THERMAL_ZONES = Path("/sys/class/thermal")


def cpu_temperature_c(root: Path = THERMAL_ZONES) -> float | None:
    """The hottest CPU-ish thermal zone, or None where the machine exposes none (VMs, containers)."""
    readings = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip().lower()
            millideg = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        if any(word in kind for word in ("cpu", "soc", "x86_pkg", "acpitz")) or kind.startswith("cpu"):
            readings.append(millideg / 1000.0)
    return max(readings) if readings else None


def _proc_status_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM first: ru_maxrss keeps the parent's peak across the
    fork+exec of a spawned child on Linux, VmHWM belongs to this process image only."""
    hwm = _proc_status_mb("VmHWM:")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    current = _proc_status_mb("VmRSS:")
    return current if current is not None else peak_rss_mb()


@dataclass
class HealthCounters:
    """Thread-safe counters; ``report`` returns one interval's fields and starts the next interval."""

    frames_in: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    inferences: int = 0
    inference_ms_total: float = 0.0
    inference_ms_max: float = 0.0
    reconnects: int = 0
    dropped_total: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1

    def dropped(self, count: int = 1) -> None:
        with self._lock:
            self.frames_dropped += count
            self.dropped_total += count

    def reconnected(self) -> None:
        with self._lock:
            self.reconnects += 1

    def processed(self, inference_ms: float | None) -> None:
        with self._lock:
            self.frames_processed += 1
            if inference_ms is not None:
                self.inferences += 1
                self.inference_ms_total += inference_ms
                self.inference_ms_max = max(self.inference_ms_max, inference_ms)

    def report(self, interval_s: float, *, queue_depth: int | None = None) -> dict[str, float | int | bool]:
        with self._lock:
            inferences = self.inferences
            fields: dict[str, float | int | bool] = {
                "fps_in": round(self.frames_in / interval_s, 2),
                "fps_processed": round(self.frames_processed / interval_s, 2),
                "inferences_per_s": round(inferences / interval_s, 2),
                "inference_ms": round(self.inference_ms_total / inferences, 2) if inferences else 0.0,
                "inference_ms_max": round(self.inference_ms_max, 2),
                "dropped_frames": self.frames_dropped,
                "dropped_frames_total": self.dropped_total,
                "reconnects": self.reconnects,
                "rss_mb": round(current_rss_mb(), 1),
            }
            self.frames_in = self.frames_processed = self.frames_dropped = self.inferences = 0
            self.inference_ms_total = self.inference_ms_max = 0.0
        if queue_depth is not None:
            fields["uplink_queue_depth"] = queue_depth
        temperature = cpu_temperature_c()
        if temperature is not None:
            fields["cpu_temp_c"] = round(temperature, 1)
        return fields
