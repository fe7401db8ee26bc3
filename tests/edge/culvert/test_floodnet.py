"""Real data: every FloodNet flood-event depth profile and raw ultrasonic uplinks through the agent's logic.

How a profile becomes readings: a ranger mounted ``MOUNT_MM`` above the road reads
``round(MOUNT_MM - depth_mm)`` (1 mm resolution) at every profile point (the profiles are sampled
about once a minute), plus linearly interpolated readings wherever the profile has a gap over
``FILL_GAP_S``, then dry readings until the flood's end hold has passed.

The rule for "one event": the agent ends a flood once the level stays below notice - hysteresis for
``end_hold_s``; a FloodNet event whose profile does that and then floods again is, to the agent,
two floods. The test computes those episodes from the profile with a plain reference
implementation of that rule and requires one agent event per episode, of the right severity, with
the right peak (within 1 cm). It also counts how many FloodNet events split (a property of the
data, reported) and checks single-episode events against FloodNet's own ``max_depth_inches``.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citywatch.protocol.messages import EventMessage, EventPhase, EventType, Severity
from edge.culvert.analyzer import CulvertAnalyzer
from edge.culvert.config import CulvertSection
from edge.culvert.filter import SampleStatus
from simulators.water import DepthProfile, load_floodnet_profiles

MOUNT_MM = 2500
FILL_GAP_S = 90.0
T0 = datetime(2024, 1, 1, tzinfo=UTC)
RANK = {Severity.NOTICE: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True)
class Episode:
    rank: int
    peak_cm: float


def profile_readings(profile: DepthProfile, tail_s: float) -> list[tuple[float, int]]:
    points: list[tuple[float, int]] = []
    previous_t: float | None = None
    for t, depth in zip(profile.times_s, profile.depths_cm, strict=True):
        if previous_t is not None and t - previous_t > FILL_GAP_S:
            fill = previous_t + 60.0
            while fill < t - 30.0:
                points.append((fill, round(MOUNT_MM - profile.depth_cm(fill) * 10)))
                fill += 60.0
        points.append((t, round(MOUNT_MM - depth * 10)))
        previous_t = t
    end = profile.duration_s
    t = end + 60.0
    while t <= end + tail_s:
        points.append((t, MOUNT_MM))
        t += 60.0
    return points


def reference_episodes(readings: list[tuple[float, int]], options: CulvertSection) -> list[Episode]:
    """The flood rule, written plainly: open at notice, peak = max level, close after end_hold below."""
    th = options.thresholds
    thresholds = (th.notice_cm, th.warning_cm, th.critical_cm)
    episodes: list[Episode] = []
    peak: float | None = None
    below_since: float | None = None
    for t, reading in readings:
        level = max(0.0, (MOUNT_MM - reading) / 10)
        if peak is None:
            if level >= th.notice_cm:
                peak, below_since = level, None
            continue
        peak = max(peak, level)
        if level < th.notice_cm - th.hysteresis_cm:
            below_since = t if below_since is None else below_since
            if t - below_since >= options.end_hold_s:
                episodes.append(Episode(sum(peak >= x for x in thresholds), peak))
                peak = None
        else:
            below_since = None
    assert peak is None, "the dry tail must close every episode"
    return episodes


def agent_episodes(events: list[EventMessage]) -> list[Episode]:
    by_id: dict[str, list[EventMessage]] = {}
    for event in events:
        by_id.setdefault(event.event_id, []).append(event)
    episodes = []
    for messages in by_id.values():
        assert messages[0].phase is EventPhase.NEW and messages[-1].phase is EventPhase.END
        assert [m.seq for m in messages] == list(range(len(messages)))
        episodes.append(Episode(max(RANK[m.severity] for m in messages), messages[-1].details["peak_cm"]))
    return episodes


@pytest.mark.slow
def test_every_floodnet_flood_event(shared_dir: Path) -> None:
    profiles = load_floodnet_profiles(shared_dir / "data/floodnet/flood-events.csv")
    assert len(profiles) == 2256
    # Profiles are smoothed series without a ranger's jitter: a depth unchanged for an hour is the
    # profile's resolution, not a stuck sensor, so stuck detection is off here (tested elsewhere).
    options = CulvertSection(
        mount_height_mm=MOUNT_MM, sample_interval_s=60, median_window=1, stuck_after_s=1e9
    )
    tail_s = options.end_hold_s + 180
    figures: Counter[str] = Counter(events=len(profiles))
    mismatches: list[str] = []
    for index, profile in enumerate(profiles):
        readings = profile_readings(profile, tail_s)
        expected = reference_episodes(readings, options)
        analyzer = CulvertAnalyzer(options, device_id="floodnet")
        for k in range(3, 0, -1):  # a dry minute or three before the rain: the filter locks on
            analyzer.process(T0 - timedelta(seconds=60 * k), [MOUNT_MM])
        floods: list[EventMessage] = []
        for t, reading in readings:
            step = analyzer.process(T0 + timedelta(seconds=t), [reading])
            figures["samples"] += 1
            figures["rejected_samples"] += step.sample.status is not SampleStatus.OK
            for event in step.events:
                figures[f"{event.type}_messages"] += 1
                if event.type is EventType.WATER_LEVEL:
                    floods.append(event)
        got = agent_episodes(floods)
        figures["crossing_events" if expected else "below_threshold_events"] += 1
        figures["split_into_several_floods"] += len(expected) > 1
        same = len(got) == len(expected) and all(
            g.rank == e.rank and abs(g.peak_cm - e.peak_cm) <= 1.0 for g, e in zip(got, expected, strict=True)
        )
        summary_cm = profile.max_depth_cm or 0.0
        if abs(max(profile.depths_cm) - summary_cm) > 1.0:
            figures["summary_max_depth_disagrees_with_profile"] += 1  # a property of the data, counted
        elif len(expected) == 1 and same and abs(got[0].peak_cm - summary_cm) > 1.0:
            same = False  # otherwise FloodNet's own max_depth must agree too
        if same:
            figures["matched"] += 1
        else:
            mismatches.append(f"#{index} {profile.name}: expected {expected}, agent raised {got}")
    print(f"\nFloodNet flood events: {dict(figures)}; mismatches: {len(mismatches)}")
    for line in mismatches[:20]:
        print("  ", line)
    assert not mismatches
    assert figures["matched"] == len(profiles)
    assert figures["sensor_fault_messages"] == 0, "clean profiles must never look like a sensor fault"


def load_uplinks(path: Path) -> list[tuple[datetime, float | None]]:
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            value = row["dist_mm"].strip()
            rows.append((datetime.fromisoformat(row["time"]), float(value) if value else None))
    return rows


@pytest.mark.parametrize("deployment", ["easily_dear_mouse", "future_aqua_wildcat", "widely_whole_tarpon"])
def test_raw_uplink_faults_are_faults_not_floods(shared_dir: Path, deployment: str) -> None:
    rows = load_uplinks(shared_dir / f"data/floodnet/raw-uplinks-{deployment}.csv")
    # The installer's surveyed dry distance; here the median in-range reading (these weeks were dry).
    in_range = sorted(v for _, v in rows if v is not None and v < 4999)
    mount = round(in_range[len(in_range) // 2])
    options = CulvertSection(mount_height_mm=mount, sample_interval_s=60, median_window=1)
    analyzer = CulvertAnalyzer(options, device_id="uplinks")
    statuses: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for ts, value in rows:
        step = analyzer.process(ts, [value])
        statuses[step.sample.status.value] += 1
        for event in step.events:
            events[f"{event.type}:{event.phase}"] += 1
        if value is None:
            assert step.sample.status is SampleStatus.NO_READING
        elif value >= 4999 or value > mount + options.below_mount_tolerance_mm:
            assert step.sample.status is SampleStatus.OUT_OF_RANGE, (ts, value)
        elif abs(value - mount) > 500:  # a 50 cm step: something under the sensor, never a trusted level
            assert step.sample.status is not SampleStatus.OK, (ts, value)
        assert step.sample.level_cm is None or step.sample.level_cm < options.thresholds.notice_cm
    print(
        f"\n{deployment}: mount {mount} mm, {len(rows)} uplinks, samples {dict(statuses)}, events {dict(events)}"
    )
    assert not any(key.startswith(("water_level", "water_rising_fast")) for key in events), events
    faulty = statuses["no_reading"] + statuses["out_of_range"] + statuses["implausible"]
    if faulty >= options.fault_after_samples:
        assert events["sensor_fault:new"] >= 1
