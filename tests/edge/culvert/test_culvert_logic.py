"""The pure water-level logic: filter verdicts and the flood / rate-of-rise / fault event lifecycles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citywatch.protocol.messages import EventMessage, EventPhase, EventType, Severity
from edge.culvert.analyzer import CulvertAnalyzer, Step
from edge.culvert.config import CulvertSection
from edge.culvert.filter import LevelFilter, SampleStatus
from edge.events import EventEmitter

MOUNT = 2000
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def options(**changes: object) -> CulvertSection:
    return CulvertSection(mount_height_mm=MOUNT, sample_interval_s=10, **changes)  # type: ignore[arg-type]


def distance(level_cm: float) -> int:
    return round(MOUNT - level_cm * 10)


class Feeder:
    """Feeds an analyzer one sample every 10 s of device time and keeps every event."""

    def __init__(self, **changes: object) -> None:
        self.analyzer = CulvertAnalyzer(options(**changes), device_id="c1")
        self.t = 0.0
        self.events: list[EventMessage] = []

    def level(self, level_cm: float, *, samples: int = 1, readings: list[float | None] | None = None) -> Step:
        step = None
        for _ in range(samples):
            burst = readings if readings is not None else [distance(level_cm)] * 5
            step = self.analyzer.process(T0 + timedelta(seconds=self.t), burst)
            self.events.extend(step.events)
            self.t += 10
        assert step is not None
        return step

    def ramp(self, start: float, stop: float, per_sample: float) -> None:
        level = start
        while (per_sample > 0 and level <= stop) or (per_sample < 0 and level >= stop):
            self.level(level)
            level += per_sample

    def of(self, kind: EventType) -> list[EventMessage]:
        return [e for e in self.events if e.type is kind]


def test_level_is_mount_height_minus_the_median_distance() -> None:
    level_filter = LevelFilter(options(relock_samples=1))
    sample = level_filter.process(0, [1800, 1801, 600, 1799, 1802])  # one in-burst spike (a leaf)
    assert sample.status is SampleStatus.OK
    assert sample.distance_mm == 1800 and sample.level_cm == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("readings", "status"),
    [
        ([None] * 5, SampleStatus.NO_READING),
        ([5000] * 5, SampleStatus.OUT_OF_RANGE),  # max-range sentinel: no echo
        ([9999, 9999, 9999, 2000, 2000], SampleStatus.OUT_OF_RANGE),  # error sentinel majority
        ([2100] * 5, SampleStatus.OUT_OF_RANGE),  # 10 cm beyond the road surface
        ([150] * 5, SampleStatus.OUT_OF_RANGE),  # inside the blind zone
    ],
)
def test_impossible_readings_are_faults_and_never_move_the_level(
    readings: list[float | None], status: SampleStatus
) -> None:
    level_filter = LevelFilter(options(relock_samples=1))
    assert level_filter.process(0, [2000] * 5).level_cm == 0.0
    sample = level_filter.process(10, readings)
    assert sample.status is status and sample.status.is_fault
    assert sample.level_cm == 0.0


def test_a_jump_faster_than_water_is_rejected_and_relock_follows_a_fault() -> None:
    level_filter = LevelFilter(options(relock_samples=3))
    statuses = [level_filter.process(t * 10, [2000] * 5).status for t in range(3)]
    assert statuses == [SampleStatus.RELOCK, SampleStatus.RELOCK, SampleStatus.OK]
    # 60 cm within 10 s: a car, a person, a bin; rejected every time it persists
    for t in range(3, 10):
        sample = level_filter.process(t * 10, [1400] * 5)
        assert sample.status is SampleStatus.IMPLAUSIBLE and sample.level_cm == 0.0
    # back to the road: trusted again only after three good samples
    statuses = [level_filter.process(t * 10, [1995] * 5).status for t in range(10, 13)]
    assert statuses == [SampleStatus.RELOCK, SampleStatus.RELOCK, SampleStatus.OK]


def test_after_an_outage_a_real_rise_is_accepted_within_the_envelope() -> None:
    level_filter = LevelFilter(options(relock_samples=1))
    level_filter.process(0, [2000] * 5)
    # no readings for 10 minutes (heavy rain scatters the echo), then 40 cm: water can do that
    sample = level_filter.process(600, [distance(40)] * 5)
    assert sample.status is SampleStatus.OK and sample.level_cm == pytest.approx(40)


def test_stuck_sensor() -> None:
    level_filter = LevelFilter(options(relock_samples=1, stuck_after_s=300))
    statuses = [level_filter.process(t * 10, [1990] * 5).status for t in range(40)]
    assert statuses[0] is SampleStatus.OK
    assert statuses[-1] is SampleStatus.STUCK
    assert level_filter.process(400, [1991] * 5).status is SampleStatus.OK


def test_one_flood_is_one_event_new_updates_end() -> None:
    feed = Feeder(relock_samples=1, peak_update_interval_s=0, end_hold_s=120)
    feed.level(0, samples=3)
    feed.ramp(0, 30, 0.5)
    feed.level(30, samples=5)
    feed.ramp(30, 0, -0.5)
    feed.level(0, samples=20)
    floods = feed.of(EventType.WATER_LEVEL)
    assert len({e.event_id for e in floods}) == 1
    assert [e.seq for e in floods] == list(range(len(floods)))
    assert floods[0].phase is EventPhase.NEW and floods[0].severity is Severity.NOTICE
    assert floods[0].details["level_cm"] == pytest.approx(10.0)
    assert floods[-1].phase is EventPhase.END
    assert all(e.phase is EventPhase.UPDATE for e in floods[1:-1])
    severities = [e.severity for e in floods]
    assert severities.index(Severity.WARNING) < severities.index(Severity.CRITICAL)
    assert floods[-1].details["peak_cm"] == 30.0 and floods[-1].details["threshold_cm"] == 25.0
    assert floods[-1].details["level_cm"] < 8.0  # ended on the way down, after end_hold_s below 8 cm
    assert floods[-1].severity is Severity.CRITICAL
    assert all(e.started_at == floods[0].ts for e in floods)


def test_hysteresis_keeps_a_level_hovering_at_a_threshold_from_flapping() -> None:
    feed = Feeder(relock_samples=1)
    feed.level(0, samples=3)
    feed.ramp(0, 14, 1.0)
    for _ in range(20):
        feed.level(14.9)
        feed.level(15.1)
        feed.level(13.5)  # within the 2 cm hysteresis of warning
    floods = feed.of(EventType.WATER_LEVEL)
    assert [e.severity for e in floods] == [Severity.NOTICE, Severity.WARNING]
    feed.level(12.9)  # now clearly below warning - hysteresis: one de-escalation update
    assert [e.severity for e in feed.of(EventType.WATER_LEVEL)][-1] is Severity.NOTICE
    assert not any(e.phase is EventPhase.END for e in feed.of(EventType.WATER_LEVEL))


def test_peak_updates_are_rate_limited() -> None:
    feed = Feeder(relock_samples=1, peak_update_cm=2, peak_update_interval_s=60)
    feed.level(0, samples=3)
    feed.ramp(10, 14.5, 0.1)  # 46 samples over 460 s, +4.5 cm, stays at notice
    updates = [e for e in feed.of(EventType.WATER_LEVEL) if e.phase is EventPhase.UPDATE]
    assert 1 <= len(updates) <= 2


def test_below_threshold_raises_nothing() -> None:
    feed = Feeder(relock_samples=1)
    feed.level(0, samples=3)
    feed.ramp(0, 9.5, 0.5)
    feed.ramp(9.5, 0, -0.5)
    assert not feed.of(EventType.WATER_LEVEL)


def test_rate_of_rise_alarm() -> None:
    feed = Feeder(relock_samples=1, rise_alarm_cm_per_min=1.0, rise_window_s=120)
    feed.level(0, samples=3)
    feed.ramp(0, 8, 0.5)  # 3 cm/min
    feed.level(8, samples=30)
    rising = feed.of(EventType.WATER_RISING_FAST)
    assert [e.phase for e in rising] == [EventPhase.NEW, EventPhase.END]
    assert rising[0].details["rate_cm_per_min"] >= 1.0


def test_sensor_fault_event_lifecycle_and_no_flood_from_faults() -> None:
    feed = Feeder(relock_samples=2, fault_after_samples=3, fault_update_interval_s=0)
    feed.level(0, samples=3)
    feed.level(0, samples=2, readings=[5000] * 5)
    assert not feed.of(EventType.SENSOR_FAULT), "two bad samples are not yet a fault"
    feed.level(0, samples=2, readings=[5000] * 5)
    feed.level(0, samples=3, readings=[None] * 5)
    feed.level(0, samples=5, readings=[800] * 5)  # 120 cm "flood" right after: implausible
    feed.level(0, samples=3)
    faults = feed.of(EventType.SENSOR_FAULT)
    assert [(e.phase, e.details["fault"]) for e in faults] == [
        (EventPhase.NEW, "out_of_range"),
        (EventPhase.UPDATE, "no_reading"),
        (EventPhase.UPDATE, "implausible"),
        (EventPhase.END, "implausible"),
    ]
    assert faults[0].details["reading_mm"] == 5000
    assert not feed.of(EventType.WATER_LEVEL)


def test_report_now_on_threshold_crossing() -> None:
    feed = Feeder(relock_samples=1)
    feed.level(0, samples=3)
    assert not feed.level(5).report_now
    assert feed.level(10.5).report_now
    assert not feed.level(10.6).report_now
    assert feed.level(15.5).report_now


def test_event_emitter_lifecycle() -> None:
    emitter = EventEmitter(device_id="cam1", event_type=EventType.EBIKE_IN_ELEVATOR)
    first = emitter.open(ts=T0, severity=Severity.WARNING, details={"frames_seen": 5})
    second = emitter.update(ts=T0 + timedelta(seconds=1), details={"frames_seen": 9})
    last = emitter.end(ts=T0 + timedelta(seconds=2), details={"frames_seen": 9})
    assert first.event_id == second.event_id == last.event_id
    assert [m.seq for m in (first, second, last)] == [0, 1, 2]
    assert second.severity is Severity.WARNING and last.started_at == T0
    assert not emitter.is_open
    with pytest.raises(RuntimeError, match="no open"):
        emitter.update(ts=T0, details={})
    again = emitter.open(ts=T0, severity=Severity.WARNING, details={})
    assert again.event_id != first.event_id and again.seq == 0


def test_a_flapping_fault_updates_at_most_every_interval() -> None:
    feed = Feeder(relock_samples=2, fault_after_samples=3, fault_update_interval_s=300)
    feed.level(0, samples=3)
    for _ in range(30):  # 10 minutes of alternating sentinels and no readings
        feed.level(0, readings=[5000] * 5)
        feed.level(0, readings=[None] * 5)
    faults = feed.of(EventType.SENSOR_FAULT)
    assert faults[0].phase is EventPhase.NEW
    assert 1 <= len(faults) - 1 <= 2  # one update per 5 minutes, not one per sample
