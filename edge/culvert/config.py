"""Configuration of the culvert water-level agent: its sensor and its water-level logic.

The device-level part (device id, site, MQTT, outbox) is the edge core's (edge/config.py); the
``sensor`` and ``culvert`` sections here are what a ``culvert`` device adds. Only pydantic is
imported, so ``citywatch edge check`` validates a config without opening the sensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The simulated and replayed sensors are opened by the simulators package (see edge/registry.py);
# their config stays here so that every device config validates without it.
class SimulatedSensor(_Section):
    type: Literal["simulated"] = "simulated"
    seed: int = Field(default=1, title="Random seed")
    scenario: Literal["dry", "storm", "flash_flood", "drizzle"] = Field(
        default="storm", title="Rain scenario", description="Shape of the simulated rain event."
    )
    peak_cm: float = Field(
        default=30.0, ge=0, le=300, title="Peak depth", description="Centimetres over the road."
    )
    start_after_s: float = Field(default=60.0, ge=0, title="Dry time before the rain", description="Seconds.")
    noise_mm: float = Field(default=3.0, ge=0, le=100, title="Reading noise", description="Std-dev, mm.")
    faults: list[Literal["spikes", "stuck", "dropouts", "max_range"]] = Field(
        default_factory=list, title="Injected faults"
    )


class SerialSensor(_Section):
    type: Literal["serial"] = "serial"
    port: str = Field(title="Serial port", description="e.g. /dev/ttyUSB0 or /dev/serial0.")
    baudrate: int = Field(default=9600, title="Baud rate")
    timeout_s: float = Field(
        default=1.0, gt=0, le=10, title="Read timeout", description="Seconds per reading."
    )

    @field_validator("baudrate")
    @classmethod
    def _standard_baudrate(cls, value: int) -> int:
        allowed = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
        if value not in allowed:
            raise ValueError(f"baud rate {value} is not one of {', '.join(map(str, allowed))}")
        return value


class ReplaySensor(_Section):
    type: Literal["replay"] = "replay"
    file: Path = Field(
        title="Recorded series",
        description="CSV with columns offset_s,dist_mm (or a FloodNet flood-events.csv with `event`).",
    )
    event: int | None = Field(
        default=None, ge=0, title="FloodNet event row", description="Row of flood-events.csv to replay."
    )
    loop: bool = Field(default=False, title="Loop", description="Start again at the end.")


SensorSection = Annotated[SimulatedSensor | SerialSensor | ReplaySensor, Field(discriminator="type")]


class Thresholds(_Section):
    notice_cm: float = Field(default=10.0, gt=0, title="Notice", description="Dispatch a crew, cm.")
    warning_cm: float = Field(default=15.0, gt=0, title="Warning", description="cm.")
    critical_cm: float = Field(default=25.0, gt=0, title="Critical", description="Close the road, cm.")
    hysteresis_cm: float = Field(
        default=2.0,
        ge=0,
        title="Hysteresis",
        description="A level must fall this far below a threshold to leave it.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if not self.notice_cm < self.warning_cm < self.critical_cm:
            raise ValueError(
                f"thresholds must rise: notice_cm ({self.notice_cm}) < warning_cm ({self.warning_cm})"
                f" < critical_cm ({self.critical_cm})"
            )
        if self.hysteresis_cm >= self.notice_cm:
            raise ValueError(
                f"hysteresis_cm ({self.hysteresis_cm}) must be smaller than notice_cm ({self.notice_cm})"
            )
        return self


class CulvertSection(_Section):
    mount_height_mm: int = Field(
        gt=300, le=10_000, title="Mount height", description="Sensor face to the dry road surface, mm."
    )
    sample_interval_s: float = Field(
        default=10.0, gt=0, le=600, title="Sample interval", description="Seconds."
    )
    median_window: int = Field(
        default=5,
        ge=1,
        le=31,
        title="Median window",
        description="Readings per sample; their median is used.",
    )
    min_range_mm: int = Field(
        default=300, ge=0, title="Sensor minimum range", description="Closer is a fault, mm."
    )
    max_range_mm: int = Field(
        default=4999,
        gt=0,
        title="Sensor maximum range",
        description="At or beyond (5000, 9999 sentinels): fault.",
    )
    below_mount_tolerance_mm: int = Field(
        default=50,
        ge=0,
        title="Below-road tolerance",
        description="Distance beyond mount height still read as dry, mm.",
    )
    max_rise_rate_cm_per_min: float = Field(
        default=30.0,
        gt=0,
        title="Physically possible rate",
        description="Faster level changes are implausible (FloodNet's fastest real rise was ~26 cm/min).",
    )
    sustained_rise_rate_cm_per_min: float = Field(
        default=5.0,
        gt=0,
        title="Sustained rate",
        description="Beyond the first minute (with it, every FloodNet rise fits: 53 cm in 5 min, 73 in 10).",
    )
    max_jump_cm: float = Field(
        default=100.0,
        gt=0,
        title="Largest change",
        description="Never trust a change larger than this, however long the gap (FloodNet: 91 cm in 1 h).",
    )
    jump_tolerance_cm: float = Field(
        default=5.0, ge=0, title="Jump tolerance", description="Noise allowance, cm."
    )
    relock_samples: int = Field(
        default=3,
        ge=1,
        title="Re-lock samples",
        description="Good samples needed after a fault before trusting the level.",
    )
    fault_after_samples: int = Field(
        default=3,
        ge=1,
        title="Fault after",
        description="Consecutive bad samples that raise a sensor_fault event.",
    )
    fault_update_interval_s: float = Field(
        default=300.0,
        ge=0,
        title="Fault update interval",
        description="A flapping fault (e.g. out of range / implausible) sends an update at most this often, s.",
    )
    stuck_after_s: float = Field(
        default=3600.0,
        gt=0,
        title="Stuck after",
        description="Identical readings for this long: sensor stuck.",
    )
    thresholds: Thresholds = Field(default_factory=Thresholds, title="Thresholds")
    end_hold_s: float = Field(
        default=900.0,
        ge=0,
        title="End hold",
        description="Time below notice - hysteresis before a flood ends, s.",
    )
    peak_update_cm: float = Field(default=2.0, gt=0, title="Peak update step", description="cm.")
    peak_update_interval_s: float = Field(default=60.0, ge=0, title="Peak update interval", description="s.")
    rise_alarm_cm_per_min: float = Field(
        default=1.0,
        gt=0,
        title="Rate-of-rise alarm",
        description="water_rising_fast above this rate, cm/min.",
    )
    rise_window_s: float = Field(default=300.0, gt=0, title="Rate-of-rise window", description="Seconds.")
    rise_min_level_cm: float = Field(
        default=3.0, ge=0, title="Rate-of-rise floor", description="Ignore rises below this level, cm."
    )
    dry_interval_s: float = Field(default=300.0, gt=0, title="Dry reporting interval", description="Seconds.")
    wet_interval_s: float = Field(default=30.0, gt=0, title="Wet reporting interval", description="Seconds.")
    wet_above_cm: float = Field(default=2.0, ge=0, title="Wet above", description="Level counted as wet, cm.")

    @model_validator(mode="after")
    def _consistent(self) -> CulvertSection:
        if self.max_range_mm <= self.mount_height_mm:
            raise ValueError(
                f"max_range_mm ({self.max_range_mm}) must exceed mount_height_mm ({self.mount_height_mm}):"
                " the sensor cannot see the road"
            )
        if self.min_range_mm >= self.mount_height_mm:
            raise ValueError(
                f"min_range_mm ({self.min_range_mm}) must be below mount_height_mm ({self.mount_height_mm})"
            )
        if self.wet_interval_s > self.dry_interval_s:
            raise ValueError(
                f"wet_interval_s ({self.wet_interval_s}) should not be longer than dry_interval_s ({self.dry_interval_s})"
            )
        return self
