"""The culvert water-level agent: sample the sensor, filter and analyse, send through the uplink.

``CulvertAgent(config)`` (registered for ``kind: culvert`` in edge.agent) opens the configured
sensor; ``start()`` samples in a thread every ``culvert.sample_interval_s``; ``stop()`` flushes the
uplink and closes the sensor.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from citywatch.protocol.messages import CommandMessage, EventMessage, TelemetryMessage
from citywatch.protocol.topics import Channel
from edge.agent import rss_mb, uplink_for
from edge.clock import Clock, SystemClock
from edge.config import CulvertAgentConfig
from edge.culvert.analyzer import CulvertAnalyzer
from edge.culvert.sources import Source, open_source
from edge.events import OpenEventJournal
from edge.live_fields import restart_fields
from edge.uplink import Uplink

log = logging.getLogger(__name__)


class CulvertAgent:
    """Runs in its own thread: ``CulvertAgent(config, clock=...).start()``, later ``.stop()``."""

    def __init__(
        self,
        config: CulvertAgentConfig,
        *,
        clock: Clock | None = None,
        source: Source | None = None,
        uplink: Uplink | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.origin = self.clock.now()
        self.source = source or open_source(config, origin=self.origin)
        self.uplink = uplink or uplink_for(config, self._on_command)
        self.analyzer = CulvertAnalyzer(config.culvert, device_id=config.device.id)
        # Open events on disk: a restart ends them (start) instead of leaving them open at the gateway.
        self.journal = OpenEventJournal.beside(config.outbox.path, fsync=config.outbox.fsync)
        for detector in (self.analyzer.flood, self.analyzer.rise, self.analyzer.faults):
            detector.emitter.journal = self.journal
        self.events_sent = 0
        self.telemetry_sent = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # a live config change waits for the sample in progress
        self._report_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_report: datetime | None = None
        self._last_health: datetime | None = None
        self._started = time.monotonic()
        self._last_logged_depth = 0

    @property
    def device_id(self) -> str:
        return self.config.device.id

    def start(self) -> CulvertAgent:
        log.info(
            "culvert agent %s/%s starting (config %s, sensor %s, outbox %s)",
            self.config.device.site,
            self.device_id,
            self.config.version,
            self.config.sensor.type,
            self.config.outbox.path,
        )
        self.uplink.start()
        # Left open by the last run: ended through the outbox, then forgotten.
        for event in self.journal.restart_ends(send=self._send_event, now=self.clock.now()):
            log.warning("event %s was open when the agent last stopped: ended", event.event_id[:8])
        self._thread = threading.Thread(target=self._loop, name=f"agent-{self.device_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, flush_timeout_s: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.uplink.stop(flush_timeout_s=flush_timeout_s)
        self.source.close()

    def apply_live(self, config: CulvertAgentConfig, changed: list[str]) -> bool:
        """Take a pushed config without a restart when only live fields changed (edge/live_fields.py: the
        analyzer's options and reporting, read at every sample); False: restart."""
        if restart_fields(config.kind, changed):
            return False
        with self._lock:
            self.config = config
            self.analyzer.retune(config.culvert)
            self._report_now.set()  # report at once under the new settings
        return True

    def _on_command(self, command: CommandMessage) -> tuple[bool, str] | None:
        if command.command == "report_now":
            self._report_now.set()
            return True, "reporting"
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._lock:
                    self.tick()
            except Exception:  # keep sampling: one bad reading must not silence the culvert
                log.exception("sample failed")
            if self.clock.wait(self.config.culvert.sample_interval_s, self._stop):
                break

    def tick(self) -> None:
        """One sample: read, analyse, send events, report when due."""
        options = self.config.culvert
        ts = self.clock.now()
        readings = self.source.read(ts, options.median_window)
        step = self.analyzer.process(ts, readings)
        for event in step.events:
            self._send_event(event)
        interval = options.wet_interval_s if self.analyzer.is_wet else options.dry_interval_s
        due = self._last_report is None or (ts - self._last_report).total_seconds() >= interval
        if step.report_now or due or self._report_now.is_set():
            self._report_now.clear()
            self._last_report = ts
            fields: dict[str, float | int | bool] = {"valid": not step.sample.status.is_fault}
            if step.sample.level_cm is not None:
                fields["level_cm"] = round(step.sample.level_cm, 1)
            if step.sample.distance_mm is not None:
                fields["distance_mm"] = float(step.sample.distance_mm)
            if step.rate_cm_per_min is not None:
                fields["rate_cm_per_min"] = round(step.rate_cm_per_min, 2)
            self._send_telemetry(ts, "water_level", fields, {"status": step.sample.status.value})
        health_due = self._last_health is None or (
            (ts - self._last_health).total_seconds() >= self.config.telemetry.health_interval_s
        )
        if health_due:
            self._last_health = ts
            self._send_telemetry(
                ts,
                "health",
                {
                    "uptime_s": round(time.monotonic() - self._started, 1),
                    "rss_mb": round(rss_mb(), 1),
                    "outbox_depth": self.uplink.queue_depth,
                    "outbox_dropped": self.uplink.dropped,
                    "refusals_received": self.uplink.refusals_received,
                    "samples": self.analyzer.samples,
                    "samples_rejected": self.analyzer.rejected,
                },
                {},
            )
        depth = self.uplink.queue_depth
        if depth >= 2 * max(self._last_logged_depth, 50) or (depth == 0 and self._last_logged_depth):
            log.info("outbox depth %d (connected=%s)", depth, self.uplink.connected)
            self._last_logged_depth = depth

    def _send_event(self, event: EventMessage) -> None:
        self.uplink.send(Channel.EVENT, event)
        self.events_sent += 1
        log.info(
            "event %s %s %s seq=%d %s %s",
            event.type,
            event.phase,
            event.severity,
            event.seq,
            event.event_id[:8],
            event.details,
        )

    def _send_telemetry(
        self, ts: datetime, measurement: str, fields: dict[str, Any], tags: dict[str, str]
    ) -> None:
        message = TelemetryMessage(
            device_id=self.device_id, ts=ts, measurement=measurement, fields=fields, tags=tags
        )
        self.uplink.send(Channel.TELEMETRY, message)
        self.telemetry_sent += 1
