"""Sensor sources behind one interface: ``read(ts, count)`` returns ``count`` raw distances in mm.

``None`` in the list means the sensor gave no (parsable) reading. ``open_source`` builds the
configured one through the ``sensor`` registry: the serial ranger is the edge's own driver; the
simulated and replayed series are the simulators', loaded only when a config names them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from edge.culvert.serial_ranger import SerialRanger
from edge.registry import SourceRegistry

if TYPE_CHECKING:
    from edge.config import CulvertAgentConfig
    from edge.culvert.config import SerialSensor


class Source(Protocol):
    def read(self, ts: datetime, count: int) -> list[float | None]: ...

    def close(self) -> None: ...


class SensorFactory(Protocol):
    """Opens a sensor from its config section; ``origin`` is device time zero for recorded series."""

    def __call__(self, sensor: Any, *, mount_height_mm: int, origin: datetime) -> Source: ...


SENSORS: SourceRegistry[SensorFactory] = SourceRegistry("sensor", config_field="sensor.type")


@SENSORS.register("serial")
def open_serial_ranger(sensor: SerialSensor, *, mount_height_mm: int, origin: datetime) -> Source:
    return SerialRanger.open(sensor.port, baudrate=sensor.baudrate, timeout_s=sensor.timeout_s)


def open_source(config: CulvertAgentConfig, *, origin: datetime) -> Source:
    """The configured sensor; ``origin`` is device time zero for simulated and replayed series."""
    sensor = config.sensor
    return SENSORS.get(sensor.type)(sensor, mount_height_mm=config.culvert.mount_height_mm, origin=origin)
