"""Ingest counters (shown by /health) and a rate-limited log for refused input."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any


class IngestStats:
    """Thread-safe counters: written by the MQTT and writer threads, read by the API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.batches = 0
        self.last_batch_size = 0
        self.accepted: Counter[str] = Counter()  # by channel
        self.events: Counter[str] = Counter()  # by outcome
        self.evidence: Counter[str] = Counter()  # evidence parts by outcome (stored, completed, ...)
        self.refused: Counter[str] = Counter()  # by reason
        self.cleared = 0  # empty payloads: retained topics cleared (not input, not refused)
        self.telemetry_written = 0
        self.retries = 0  # batches stored again after a transient database error
        self.write_failures = 0  # failed attempts to store since the last commit (0: writes work)
        self.write_failing_since: datetime | None = None
        self.last_write_error: str | None = None

    def count_received(self) -> None:
        self.received += 1  # only the MQTT thread writes it: no lock on the hot path

    def count_cleared(self) -> None:
        self.cleared += 1  # the MQTT thread only, like received

    def count_retry(self, *, error: str = "") -> None:
        """A batch could not be stored (database locked, full, read-only, away) and is retried."""
        with self._lock:
            self.retries += 1
            self.write_failures += 1
            self.write_failing_since = self.write_failing_since or datetime.now(UTC)
            self.last_write_error = error

    def write_succeeded(self) -> None:
        if self.write_failures:  # once per batch: the lock only after a failure
            with self._lock:
                self.write_failures, self.write_failing_since = 0, None

    def refuse(self, reason: str) -> None:
        with self._lock:
            self.refused[reason] += 1

    def record_batch(
        self,
        *,
        size: int,
        accepted: Counter[str],
        events: Counter[str],
        telemetry: int,
        evidence: Counter[str] | None = None,
    ) -> None:
        with self._lock:
            self.batches += 1
            self.last_batch_size = size
            self.accepted.update(accepted)
            self.events.update(events)
            self.evidence.update(evidence or {})
            self.telemetry_written += telemetry

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            failing_since = self.write_failing_since
            return {
                "received": self.received,
                "batches": self.batches,
                "last_batch_size": self.last_batch_size,
                "accepted": dict(self.accepted),
                "events": dict(self.events),
                "evidence": dict(self.evidence),
                "telemetry_written": self.telemetry_written,
                "retries": self.retries,
                "writes": {
                    "ok": self.write_failures == 0,
                    "failures": self.write_failures,
                    "failing_since": failing_since.isoformat() if failing_since else None,
                    "last_error": self.last_write_error,
                },
                "refused": dict(self.refused),
                "refused_total": sum(self.refused.values()),
                "cleared": self.cleared,
            }


class RateLimitedLog:
    """Logs the first occurrence of each key, then at most once per interval with a suppressed count."""

    def __init__(self, logger: logging.Logger, *, interval_s: float = 10.0) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval_s:
                self._suppressed[key] += 1
                return
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} more like this not logged)"
        self._logger.warning(message, *args)
