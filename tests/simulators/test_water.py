"""The water-level simulator: a realistic rain event as raw distances, seeded faults, fast-forward, replay."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import EventType
from citywatch.protocol.topics import Channel
from edge.clock import ScaledClock
from edge.culvert.analyzer import CulvertAnalyzer
from edge.culvert.config import CulvertSection
from simulators.water import (
    SENTINEL_MAX_RANGE_MM,
    FaultPlan,
    RainEvent,
    WaterSimulator,
    load_floodnet_profiles,
    scenario,
)
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_rain_event_goes_dry_rising_peak_receding_dry() -> None:
    event = RainEvent(peak_cm=30, start_s=100, rise_s=600, hold_s=300, recede_s=900)
    depths = [event.depth_cm(t) for t in (0, 100, 400, 700, 900, 1450, 1900, 5000)]
    assert depths[0] == depths[1] == 0
    assert 0 < depths[2] < depths[3] == 30 == depths[4]
    assert 0 < depths[5] < 30 and depths[6] == 0 == depths[7]
    rising = [event.depth_cm(t) for t in range(100, 700, 10)]
    assert rising == sorted(rising)


def test_readings_are_distances_mount_height_minus_depth() -> None:
    sim = WaterSimulator(scenario("storm", start_s=0), mount_height_mm=2000, noise_mm=0)
    peak_t = sim.event.rise_s + 1
    assert sim.readings(0, 3) == [2000] * 3
    assert sim.readings(peak_t, 1) == [2000 - 300]


def test_seeded_runs_are_identical_and_seeds_differ() -> None:
    def run(seed: int) -> list[int | None]:
        sim = WaterSimulator(
            scenario("storm"), mount_height_mm=2000, faults=FaultPlan.named(["spikes", "dropouts"]), seed=seed
        )
        return [r for t in range(0, 3600, 10) for r in sim.readings(t, 5)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_injected_faults_show_up_as_the_agent_would_see_them() -> None:
    sim = WaterSimulator(
        scenario("dry"),
        mount_height_mm=2000,
        faults=FaultPlan(
            spike_probability=0.1, dropout_probability=0.1, max_range_probability=0.1, stuck_from_s=500
        ),
        seed=3,
    )
    bursts = [sim.readings(t, 5) for t in range(0, 500, 10)]
    flat = [r for b in bursts for r in b]
    assert any(b == [None] * 5 for b in bursts)  # dropouts
    assert SENTINEL_MAX_RANGE_MM in flat
    assert any(r is not None and r < 1000 for r in flat)  # spikes: something close to the sensor
    stuck = [sim.readings(t, 5) for t in range(500, 900, 10)]
    assert len({tuple(b) for b in stuck}) == 1
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan.named(["lightning"])


def test_the_agent_logic_sees_one_flood_despite_faults() -> None:
    sim = WaterSimulator(
        scenario("storm", peak_cm=30),
        mount_height_mm=2000,
        faults=FaultPlan.named(["spikes", "max_range"]),
        seed=5,
    )
    analyzer = CulvertAnalyzer(CulvertSection(mount_height_mm=2000), device_id="c1")
    events = []
    for t in range(0, int(sim.event.end_s) + 1800, 10):
        events += analyzer.process(T0 + timedelta(seconds=t), sim.readings(t, 5)).events
    floods = [e for e in events if e.type is EventType.WATER_LEVEL]
    assert len({e.event_id for e in floods}) == 1
    assert floods[-1].phase == "end" and abs(floods[-1].details["peak_cm"] - 30) <= 1


def test_scaled_clock_fast_forwards() -> None:
    clock = ScaledClock(speed=600, start=T0)
    stop = threading.Event()
    assert not clock.wait(60, stop)  # one device minute = 0.1 s
    assert clock.now() - T0 >= timedelta(seconds=60)
    stop.set()
    assert clock.wait(3600, stop)  # returns at once when stopped


def test_floodnet_profiles_load(shared_dir: Path) -> None:
    profiles = load_floodnet_profiles(shared_dir / "data/floodnet/flood-events.csv")
    assert len(profiles) == 2256
    first = profiles[0]
    assert first.depth_cm(0) == 0 and first.max_depth_cm == pytest.approx(17.72 * 2.54)
    assert max(first.depths_cm) == pytest.approx(first.max_depth_cm)


@pytest.mark.slow
def test_sim_water_command_runs_simulated_devices(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    subscriber = Collector(mosquitto.url)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "citywatch.cli",
                "sim",
                "water",
                "--mqtt-url",
                mosquitto.url,
                "--device",
                "cv-a",
                "--device",
                "cv-b",
                "--scenario",
                "flash_flood",
                "--speed",
                "1200",
                "--start-after-s",
                "0",
                "--duration",
                "4",
                "--outbox-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        wait_until(
            lambda: {m.topic.split("/")[3] for m in subscriber.on(Channel.EVENT)} == {"cv-a", "cv-b"},
            what="flood events from both simulated devices",
        )
    finally:
        subscriber.close()
    assert "Traceback" not in result.stderr
    assert {m.json()["status"] for m in subscriber.on(Channel.STATE)} == {"online", "offline"}


@pytest.mark.slow
def test_sim_water_replays_a_floodnet_event(
    mosquitto: MosquittoBroker, shared_dir: Path, tmp_path: Path
) -> None:
    subscriber = Collector(mosquitto.url)
    try:
        # Event 0: Beach 84 St, 2023-10-30, peak 17.72 in = 45.0 cm over 4.6 hours; 3000x plays it in ~6 s.
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "citywatch.cli",
                "sim",
                "water",
                "--mqtt-url",
                mosquitto.url,
                "--device",
                "beach-84",
                "--replay",
                str(shared_dir / "data/floodnet/flood-events.csv"),
                "--event",
                "0",
                "--speed",
                "3000",
                "--duration",
                "7",
                "--outbox-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        floods = wait_until(
            lambda: [m.json() for m in subscriber.on(Channel.EVENT) if m.json()["type"] == "water_level"],
            what="the replayed flood",
        )
    finally:
        subscriber.close()
    assert len({f["event_id"] for f in floods}) == 1
    assert floods[0]["phase"] == "new" and floods[0]["severity"] == "notice"
    assert max(f["details"]["peak_cm"] for f in floods) >= 25 and floods[-1]["details"]["threshold_cm"] == 25
