"""Device configuration: one YAML file per device, validated by pydantic before the agent starts.

Every device kind shares ``device``, ``mqtt``, ``outbox`` and ``telemetry``; ``kind`` selects the
kind-specific part. To add a kind, define its ``*AgentConfig`` (with ``kind: Literal[...]``), add it
to ``DeviceConfig`` below and its agent class to ``AGENT_CLASSES`` in ``edge/agent.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from citywatch import __version__
from citywatch.protocol.topics import ID_PATTERN
from edge.vision.config import ElevatorConfig  # pydantic only: no numpy/OpenCV on import


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceSection(_Section):
    id: str = Field(
        pattern=ID_PATTERN, title="Device id", description="Unique per site; part of every topic."
    )
    site: str = Field(pattern=ID_PATTERN, title="Site", description="Installation site (topic segment).")
    description: str = Field(default="", max_length=200, title="Description", description="Where it is.")

    @property
    def firmware_version(self) -> str:
        return __version__


class MqttSection(_Section):
    url: str = Field(
        default="mqtt://127.0.0.1:1883",
        title="Broker URL",
        description="mqtt://[user:pass@]host[:port] or mqtts://host[:port].",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, title="Keepalive", description="Seconds.")
    reconnect_min_s: float = Field(
        default=0.5, gt=0, le=60, title="First reconnect delay", description="Seconds."
    )
    reconnect_max_s: float = Field(
        default=30.0, gt=0, le=3600, title="Longest reconnect delay", description="Seconds."
    )

    @field_validator("url")
    @classmethod
    def _url_is_mqtt(cls, value: str) -> str:
        if not value.startswith(("mqtt://", "mqtts://", "tcp://")):
            raise ValueError(
                f"MQTT URL {value!r} must start with mqtt:// or mqtts://, e.g. mqtt://10.0.0.2:1883"
            )
        return value

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttSection:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


class OutboxSection(_Section):
    path: Path = Field(
        default=Path("var/outbox.sqlite3"),
        title="Outbox file",
        description="SQLite store-and-forward queue; relative paths are relative to the working directory.",
    )
    max_messages: int = Field(
        default=100_000,
        ge=100,
        title="Outbox bound",
        description="Above this, the oldest telemetry is dropped (and counted); events are never dropped.",
    )
    fsync: bool = Field(
        default=True,
        title="fsync every message",
        description="True: power-loss safe. False: survives crashes and kill -9, not power loss; faster.",
    )


class TelemetrySection(_Section):
    health_interval_s: float = Field(
        default=300.0, ge=1, title="Health interval", description="Seconds between health telemetry points."
    )


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


class _AgentConfigBase(_Section):
    device: DeviceSection = Field(title="Device")
    mqtt: MqttSection = Field(default_factory=MqttSection, title="MQTT")
    outbox: OutboxSection = Field(default_factory=OutboxSection, title="Outbox")
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection, title="Telemetry")

    @property
    def version(self) -> str:
        return config_version(self)


class CulvertAgentConfig(_AgentConfigBase):
    """A culvert / underpass water-level sensor."""

    kind: Literal["culvert"] = Field(title="Device kind")
    sensor: SensorSection = Field(title="Sensor")
    culvert: CulvertSection = Field(title="Water-level logic")


class ElevatorAgentConfig(_AgentConfigBase):
    """An elevator-car camera with the e-bike guard (its vision part: edge/vision/config.py)."""

    kind: Literal["elevator"] = Field(title="Device kind")
    elevator: ElevatorConfig = Field(title="Camera, detector and e-bike analyzer")


AgentConfig = _AgentConfigBase
# Register further kinds here (and their agent class in AGENT_CLASSES, edge/agent.py).
DeviceConfig = Annotated[CulvertAgentConfig | ElevatorAgentConfig, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(DeviceConfig)


def config_version(config: BaseModel) -> str:
    """Short hash of the normalized config: equal meaning, equal version."""
    normalized = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(normalized.encode()).hexdigest()[:12]


def json_schema() -> dict[str, Any]:
    schema = _ADAPTER.json_schema()
    schema["title"] = "citywatch device config"
    return schema


class ConfigError(Exception):
    """Every mistake in a config file, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: {len(problems)} problem(s)")
        self.source = source
        self.problems = problems

    def render(self) -> str:
        lines = [f"{self.source}: config is invalid ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _describe(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        # Drop the union tag pydantic adds (e.g. 'culvert' or 'serial') from the field path.
        loc = [str(p) for p in err["loc"]]
        if len(loc) > 1 and loc[0] in ("culvert", "elevator"):  # the DeviceConfig union's tag
            loc = loc[1:]
        if len(loc) > 2 and loc[0] == "sensor" and loc[1] in ("simulated", "serial", "replay"):
            loc = [loc[0], *loc[2:]]  # the sensor union's tag
        path = ".".join(loc) or "<top level>"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (typo?)"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif "input" in err and err["type"] not in ("model_type",) and not isinstance(err["input"], dict):
            message += f" (got {err['input']!r})"
        problems.append(f"{path}: {message}")
    return problems


def validate_config_dict(raw: Any, *, source: str = "<config>") -> AgentConfig:
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"the top level must be a mapping of sections, got {type(raw).__name__}"])
    try:
        config: AgentConfig = _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(source, _describe(exc)) from None
    return config


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate a YAML config; raises ConfigError listing every mistake."""
    import yaml

    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, [f"{where}YAML syntax error: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"YAML error: {exc}"]) from None
    if raw is None:
        raise ConfigError(source, ["the file is empty"])
    return validate_config_dict(raw, source=source)
