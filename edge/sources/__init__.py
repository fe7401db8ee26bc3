"""Sensor sources behind one interface: ``read(ts, count)`` returns ``count`` raw distances in mm.

``None`` in the list means the sensor gave no (parsable) reading. Build one from config with
``open_source``; heavy or hardware imports stay inside each driver.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge.config import CulvertAgentConfig


class Source(Protocol):
    def read(self, ts: datetime, count: int) -> list[float | None]: ...

    def close(self) -> None: ...


def open_source(config: CulvertAgentConfig, *, origin: datetime) -> Source:
    """The configured sensor; ``origin`` is device time zero for simulated and replayed series."""
    sensor = config.sensor
    mount = config.culvert.mount_height_mm
    if sensor.type == "serial":
        from edge.sources.serial_ranger import SerialRanger

        return SerialRanger.open(sensor.port, baudrate=sensor.baudrate, timeout_s=sensor.timeout_s)
    if sensor.type == "replay":
        from edge.sources.replay import ReplaySource

        return ReplaySource.from_file(
            sensor.file, origin=origin, mount_height_mm=mount, event=sensor.event, loop=sensor.loop
        )
    from edge.sources.simulated import SimulatedSource

    return SimulatedSource.from_config(sensor, mount_height_mm=mount, origin=origin)
