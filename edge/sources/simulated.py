"""The water simulator behind the sensor interface."""

from __future__ import annotations

from datetime import datetime

from edge.config import SimulatedSensor
from simulators.water import FaultPlan, WaterSimulator, scenario


class SimulatedSource:
    def __init__(self, simulator: WaterSimulator, *, origin: datetime) -> None:
        self.simulator = simulator
        self.origin = origin

    @classmethod
    def from_config(
        cls, sensor: SimulatedSensor, *, mount_height_mm: int, origin: datetime
    ) -> SimulatedSource:
        event = scenario(sensor.scenario, peak_cm=sensor.peak_cm, start_s=sensor.start_after_s)
        simulator = WaterSimulator(
            event=event,
            mount_height_mm=mount_height_mm,
            noise_mm=sensor.noise_mm,
            faults=FaultPlan.named(sensor.faults, stuck_from_s=event.start_s + event.rise_s),
            seed=sensor.seed,
        )
        return cls(simulator, origin=origin)

    def read(self, ts: datetime, count: int) -> list[float | None]:
        return list(self.simulator.readings((ts - self.origin).total_seconds(), count))

    def close(self) -> None:
        pass
