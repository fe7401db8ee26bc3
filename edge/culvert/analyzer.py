"""Trusted levels -> flood, rate-of-rise and sensor-fault events. Pure: time comes in with each sample."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from citywatch.protocol.messages import EventMessage, EventType, Severity
from edge.culvert.config import CulvertSection
from edge.culvert.filter import LevelFilter, Sample, SampleStatus
from edge.events import EventEmitter

_RANKED = (Severity.NOTICE, Severity.WARNING, Severity.CRITICAL)


@dataclass(frozen=True, slots=True)
class Step:
    """What one sample produced: the filter's verdict, events to publish, and whether to report now."""

    sample: Sample
    events: list[EventMessage] = field(default_factory=list)
    report_now: bool = False
    rate_cm_per_min: float | None = None


class FloodDetector:
    """One flood = one ``water_level`` event: new at the lowest threshold, update on every severity change
    (hysteresis both ways) and rate-limited peak growth, end after ``end_hold_s`` below notice - hysteresis."""

    def __init__(self, options: CulvertSection, device_id: str) -> None:
        self.options = options
        t = options.thresholds
        self.thresholds_cm = (t.notice_cm, t.warning_cm, t.critical_cm)
        self.emitter = EventEmitter(device_id=device_id, event_type=EventType.WATER_LEVEL)
        self.rank = 0  # 1..3 while a flood is open
        self.max_rank = 0
        self.peak_cm = 0.0
        self._sent_peak_cm = 0.0
        self._sent_ts_s = 0.0
        self._below_since_s: float | None = None

    def _details(self, level_cm: float) -> dict[str, float]:
        return {
            "level_cm": round(level_cm, 1),
            "peak_cm": round(self.peak_cm, 1),
            "threshold_cm": self.thresholds_cm[self.max_rank - 1],
        }

    def _rank_for(self, level_cm: float) -> int:
        hysteresis = self.options.thresholds.hysteresis_cm
        rank = self.rank
        while rank < 3 and level_cm >= self.thresholds_cm[rank]:
            rank += 1
        while rank > 1 and level_cm < self.thresholds_cm[rank - 1] - hysteresis:
            rank -= 1
        return rank

    def observe(self, ts: datetime, ts_s: float, level_cm: float) -> EventMessage | None:
        o = self.options
        if not self.emitter.is_open:
            if level_cm < self.thresholds_cm[0]:
                return None
            self.rank = self.max_rank = self._rank_for(level_cm)
            self.peak_cm = self._sent_peak_cm = level_cm
            self._sent_ts_s = ts_s
            self._below_since_s = None
            return self.emitter.open(ts=ts, severity=_RANKED[self.rank - 1], details=self._details(level_cm))

        self.peak_cm = max(self.peak_cm, level_cm)
        if level_cm < self.thresholds_cm[0] - o.thresholds.hysteresis_cm:
            if self._below_since_s is None:
                self._below_since_s = ts_s
            if ts_s - self._below_since_s >= o.end_hold_s:
                message = self.emitter.end(
                    ts=ts, severity=_RANKED[self.max_rank - 1], details=self._details(level_cm)
                )
                self.rank = self.max_rank = 0
                return message
        else:
            self._below_since_s = None
        rank = self._rank_for(level_cm)
        if rank != self.rank:
            self.rank = rank
            self.max_rank = max(self.max_rank, rank)
            return self._update(ts, ts_s, level_cm)
        grew = self.peak_cm - self._sent_peak_cm >= o.peak_update_cm
        if grew and ts_s - self._sent_ts_s >= o.peak_update_interval_s:
            return self._update(ts, ts_s, level_cm)
        return None

    def _update(self, ts: datetime, ts_s: float, level_cm: float) -> EventMessage:
        self._sent_peak_cm, self._sent_ts_s = self.peak_cm, ts_s
        return self.emitter.update(ts=ts, severity=_RANKED[self.rank - 1], details=self._details(level_cm))


class RiseDetector:
    """``water_rising_fast`` while the level over ``rise_window_s`` climbs faster than the alarm rate."""

    def __init__(self, options: CulvertSection, device_id: str) -> None:
        self.options = options
        self.emitter = EventEmitter(device_id=device_id, event_type=EventType.WATER_RISING_FAST)
        self._history: deque[tuple[float, float]] = deque()
        self.rate_cm_per_min: float | None = None

    def observe(self, ts: datetime, ts_s: float, level_cm: float) -> EventMessage | None:
        o = self.options
        self._history.append((ts_s, level_cm))
        while len(self._history) > 2 and ts_s - self._history[1][0] >= o.rise_window_s:
            self._history.popleft()
        first_ts, first_level = self._history[0]
        if ts_s - first_ts < o.rise_window_s / 2:
            self.rate_cm_per_min = None
            return None
        rate = (level_cm - first_level) / ((ts_s - first_ts) / 60.0)
        self.rate_cm_per_min = rate
        details = {"level_cm": round(level_cm, 1), "rate_cm_per_min": round(rate, 2)}
        if not self.emitter.is_open:
            if rate >= o.rise_alarm_cm_per_min and level_cm >= o.rise_min_level_cm:
                return self.emitter.open(ts=ts, severity=Severity.WARNING, details=details)
        elif rate < o.rise_alarm_cm_per_min / 2:
            return self.emitter.end(ts=ts, details=details)
        return None


class FaultDetector:
    """One ``sensor_fault`` event per fault episode: opens after ``fault_after_samples`` bad samples in a
    row, updates when the kind of fault changes (at most every ``fault_update_interval_s``), ends after
    ``relock_samples`` good samples."""

    def __init__(self, options: CulvertSection, device_id: str) -> None:
        self.options = options
        self.emitter = EventEmitter(device_id=device_id, event_type=EventType.SENSOR_FAULT)
        self.bad_run = 0
        self.good_run = 0
        self._kind: str | None = None  # the kind last reported
        self._sent_ts_s = 0.0

    def observe(self, ts: datetime, sample: Sample) -> EventMessage | None:
        if not sample.status.is_fault:
            self.bad_run, self.good_run = 0, self.good_run + 1
            if self.emitter.is_open and self.good_run >= self.options.relock_samples:
                details = self._details(
                    sample, self._kind or "no_reading", "recovered: readings are good again"
                )
                self._kind = None
                return self.emitter.end(ts=ts, details=details)
            return None
        self.bad_run, self.good_run = self.bad_run + 1, 0
        if self.bad_run < self.options.fault_after_samples:
            return None
        kind = sample.status.value
        ts_s = ts.timestamp()
        if not self.emitter.is_open:
            self._kind, self._sent_ts_s = kind, ts_s
            return self.emitter.open(
                ts=ts, severity=Severity.WARNING, details=self._details(sample, kind, sample.reason)
            )
        if kind != self._kind and ts_s - self._sent_ts_s >= self.options.fault_update_interval_s:
            self._kind, self._sent_ts_s = kind, ts_s
            return self.emitter.update(ts=ts, details=self._details(sample, kind, sample.reason))
        return None

    def _details(self, sample: Sample, kind: str, message: str) -> dict[str, object]:
        details: dict[str, object] = {"fault": kind, "message": (message or kind)[:500]}
        if sample.distance_mm is not None:
            details["reading_mm"] = float(sample.distance_mm)
        return details


class CulvertAnalyzer:
    """Filter + detectors for one culvert. Feed it every sample burst; publish what it returns."""

    def __init__(self, options: CulvertSection, *, device_id: str) -> None:
        self.options = options
        self.filter = LevelFilter(options)
        self.flood = FloodDetector(options, device_id)
        self.rise = RiseDetector(options, device_id)
        self.faults = FaultDetector(options, device_id)
        self.samples = 0
        self.rejected = 0

    def retune(self, options: CulvertSection) -> None:
        """New options from a pushed config, applied live: an open event, the trusted level and the
        rate history stay; the next sample is judged by the new thresholds and gates."""
        self.options = options
        self.filter.options = options
        self.flood.options = options
        t = options.thresholds
        self.flood.thresholds_cm = (t.notice_cm, t.warning_cm, t.critical_cm)
        self.rise.options = options
        self.faults.options = options

    @property
    def level_cm(self) -> float | None:
        return self.filter.level_cm

    @property
    def is_wet(self) -> bool:
        return self.flood.emitter.is_open or (self.level_cm or 0.0) >= self.options.wet_above_cm

    def process(self, ts: datetime, readings: Sequence[float | None]) -> Step:
        ts_s = ts.timestamp()
        sample = self.filter.process(ts_s, readings)
        self.samples += 1
        events: list[EventMessage] = []
        fault_event = self.faults.observe(ts, sample)
        if fault_event is not None:
            events.append(fault_event)
        if sample.status is not SampleStatus.OK:
            self.rejected += 1
            return Step(sample, events, report_now=bool(events))
        assert sample.level_cm is not None
        previous_rank = self.flood.rank
        for detector in (self.flood, self.rise):
            event = detector.observe(ts, ts_s, sample.level_cm)
            if event is not None:
                events.append(event)
        crossed = self.flood.rank != previous_rank
        return Step(
            sample, events, report_now=crossed or bool(events), rate_cm_per_min=self.rise.rate_cm_per_min
        )
