"""Raw distance readings -> a trusted water level, or a verdict saying why not. Pure, no I/O."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from edge.culvert.config import CulvertSection

# Sparse series (a reading every few minutes) repeat a value by chance; a stuck sensor repeats it often.
STUCK_MIN_SAMPLES = 30


class SampleStatus(StrEnum):
    OK = "ok"  # level accepted
    RELOCK = "relock"  # good readings, but not yet trusted after a fault or at start
    NO_READING = "no_reading"  # the sensor gave nothing
    OUT_OF_RANGE = "out_of_range"  # sentinel (5000, 9999), too close, or beyond the road surface
    STUCK = "stuck"  # the same reading for too long
    IMPLAUSIBLE = "implausible"  # a jump faster than water can rise or fall

    @property
    def is_fault(self) -> bool:
        return self not in (SampleStatus.OK, SampleStatus.RELOCK)


@dataclass(frozen=True, slots=True)
class Sample:
    ts_s: float
    status: SampleStatus
    distance_mm: float | None  # median of the usable readings (None: nothing usable)
    level_cm: float | None  # the trusted level after this sample (held through faults; None: unknown)
    reason: str = ""


class LevelFilter:
    """Median of each burst, range checks, a rate-of-change gate, stuck detection and re-lock after faults.

    A reading the gate rejects never moves the level, so sentinels, spikes and things parked under
    the sensor cannot raise a flood; after any fault, ``relock_samples`` consecutive good samples are
    needed before the level is trusted again.
    """

    def __init__(self, options: CulvertSection) -> None:
        self.options = options
        self.level_cm: float | None = None
        self._relock: list[tuple[float, float]] = []  # (ts, level) of good samples while not trusted
        self._trusted = False
        self._stuck_value: float | None = None
        self._stuck_since: float | None = None
        self._stuck_count = 0
        self._last_usable_ts: float | None = None

    def _allowed_jump_cm(self, dt_s: float) -> float:
        """How far real water can move in ``dt_s``: fast for a minute, then the sustained rate, capped.

        ``dt_s`` runs from the previous usable reading (not the last accepted one), so an object that
        stays under the sensor is rejected every time instead of being accepted once time has passed.
        """
        o = self.options
        dt = max(dt_s, 0.0)
        envelope = o.max_rise_rate_cm_per_min * min(dt, 60.0) / 60.0
        envelope += o.sustained_rise_rate_cm_per_min * max(dt - 60.0, 0.0) / 60.0
        return o.jump_tolerance_cm + min(envelope, o.max_jump_cm)

    def process(self, ts_s: float, readings: Sequence[float | None]) -> Sample:
        o = self.options
        present = [r for r in readings if r is not None]
        if not present:
            return self._fault(ts_s, SampleStatus.NO_READING, None, "no reading from the sensor")
        usable = [
            r
            for r in present
            if o.min_range_mm <= r < o.max_range_mm and r <= o.mount_height_mm + o.below_mount_tolerance_mm
        ]
        if len(usable) * 2 <= len(readings):
            raw = statistics.median(present)
            return self._fault(ts_s, SampleStatus.OUT_OF_RANGE, raw, f"reading {raw:g} mm is out of range")
        distance = statistics.median(usable)
        level = max(0.0, (o.mount_height_mm - distance) / 10.0)

        if distance != self._stuck_value:
            self._stuck_value, self._stuck_since, self._stuck_count = distance, ts_s, 0
        self._stuck_count += 1
        stuck_for_s = ts_s - self._stuck_since if self._stuck_since is not None else 0.0
        if stuck_for_s >= o.stuck_after_s and self._stuck_count >= STUCK_MIN_SAMPLES:
            minutes = stuck_for_s / 60
            return self._fault(
                ts_s, SampleStatus.STUCK, distance, f"reading {distance:g} mm unchanged for {minutes:.0f} min"
            )

        since_usable_s = ts_s - self._last_usable_ts if self._last_usable_ts is not None else 0.0
        self._last_usable_ts = ts_s
        if self.level_cm is not None:
            jump = abs(level - self.level_cm)
            if jump > self._allowed_jump_cm(since_usable_s):
                return self._fault(
                    ts_s,
                    SampleStatus.IMPLAUSIBLE,
                    distance,
                    f"level {level:.1f} cm is {jump:.1f} cm from the trusted {self.level_cm:.1f} cm"
                    " (faster than water moves: something under the sensor?)",
                )
        if not self._trusted:
            if self._relock and self.level_cm is None:
                prev_ts, prev_level = self._relock[-1]
                if abs(level - prev_level) > self._allowed_jump_cm(ts_s - prev_ts):
                    self._relock.clear()  # readings disagree among themselves: start over
            self._relock.append((ts_s, level))
            if len(self._relock) < o.relock_samples:
                return Sample(ts_s, SampleStatus.RELOCK, distance, self.level_cm, "re-locking after a fault")
            self._trusted = True
            self._relock.clear()
        self.level_cm = level
        return Sample(ts_s, SampleStatus.OK, distance, level)

    def _fault(self, ts_s: float, status: SampleStatus, distance: float | None, reason: str) -> Sample:
        self._trusted = False
        self._relock.clear()
        return Sample(ts_s, status, distance, self.level_cm, reason)
