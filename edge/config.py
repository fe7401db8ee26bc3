"""Device configuration: one YAML file per device, validated by pydantic before the agent starts.

Every device kind shares ``device``, ``mqtt``, ``outbox`` and ``telemetry``; ``kind`` selects the
kind-specific part, defined in the kind's own package (``edge/culvert/config.py``,
``edge/vision/config.py``). To add a kind, define its sections there, its ``*AgentConfig`` (with
``kind: Literal[...]``) here, add it to ``DeviceConfig`` below and its agent class to
``AGENT_CLASSES`` in ``edge/agent.py``.
"""

from __future__ import annotations

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
from citywatch.protocol.messages import config_version as document_version
from citywatch.protocol.topics import ID_PATTERN
from edge.culvert.config import CulvertSection, SensorSection
from edge.facade.config import FacadeConfig  # pydantic only, like the elevator's
from edge.street.config import StreetConfig  # pydantic only, like the elevator's
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
    username: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        title="MQTT user",
        description="The device's broker account; `citywatch config flash` sets it to the device id and "
        "writes a fresh password to the bundle (mqtt/password).",
    )
    password_file: Path | None = Field(
        default=None,
        title="MQTT password file",
        description="File holding the password (never the password itself: a config is pushed over MQTT); "
        "in a bundle mqtt/password.",
    )
    ca_file: Path | None = Field(
        default=None,
        title="Broker CA certificate",
        description="PEM file the broker's TLS certificate is checked against (mqtts:// only); default: the "
        "system's CAs. `citywatch config flash` copies it into the bundle (mqtt/ca.crt).",
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
        if self.ca_file is not None and not self.url.startswith("mqtts://"):
            raise ValueError("ca_file is for TLS: use an mqtts:// URL (port 8883) or drop ca_file")
        if self.username is not None and "@" in self.url:
            raise ValueError("the URL carries a user too: give the user in username only")
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
    keep_until: Literal["receipt", "puback"] = Field(
        default="receipt",
        title="Keep each message until",
        description="receipt: the gateway confirms it is stored (end to end: survives a broker crash; needs "
        "a gateway that sends receipts). puback: the broker has it (lost if the broker dies before saving).",
    )
    resend_after_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        title="Resend unconfirmed after",
        description="Seconds a sent message may stay unconfirmed while the gateway confirms later ones "
        "before it is sent again (doubling while it stays unconfirmed). keep_until: receipt only.",
    )


class TelemetrySection(_Section):
    health_interval_s: float = Field(
        default=300.0, ge=1, title="Health interval", description="Seconds between health telemetry points."
    )


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


class FacadeAgentConfig(_AgentConfigBase):
    """A facade camera watching for objects thrown from height (its part: edge/facade/config.py)."""

    kind: Literal["facade"] = Field(title="Device kind")
    facade: FacadeConfig = Field(title="Camera, building calibration and fall rules")


class StreetAgentConfig(_AgentConfigBase):
    """A street camera over no-parking zones: warn, give grace, record violations (edge/street/config.py)."""

    kind: Literal["street"] = Field(title="Device kind")
    street: StreetConfig = Field(title="Camera, detector, no-parking zones and their rules")


AgentConfig = _AgentConfigBase
# Register further kinds here (and their agent class in AGENT_CLASSES, edge/agent.py).
DeviceConfig = Annotated[
    CulvertAgentConfig | ElevatorAgentConfig | FacadeAgentConfig | StreetAgentConfig,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(DeviceConfig)


def config_version(config: BaseModel) -> str:
    """Short hash of the normalized config (the protocol's ``config_version``): equal meaning, equal version."""
    return document_version(config.model_dump(mode="json"))


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
        # the DeviceConfig union's tag
        if len(loc) > 1 and loc[0] in ("culvert", "elevator", "facade", "street"):
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
