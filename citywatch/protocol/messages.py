"""Payload models for every channel. JSON on the wire, UTF-8, ``"v": 1`` in every message.

Device -> gateway messages carry ``device_id`` (must equal the topic's) and a device timestamp
``ts`` (timezone-aware, ISO 8601), so that replays after an outage are idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from citywatch.protocol.topics import ID_PATTERN, Channel

PROTOCOL_VERSION = 1
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"

DeviceId = Annotated[str, Field(pattern=ID_PATTERN, title="Device id", description="Must equal the topic's.")]
Timestamp = Annotated[AwareDatetime, Field(title="Device time", description="ISO 8601 with a UTC offset.")]
Version = Annotated[
    Literal[1], Field(title="Schema version", description="Payload schema version; this contract is 1.")
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class DeviceType(StrEnum):
    CULVERT = "culvert"
    ELEVATOR = "elevator"
    FACADE = "facade"
    STREET = "street"


class StateMessage(_Message):
    """Retained birth (``online``) on every connect; the MQTT will publishes the matching ``offline``."""

    v: Version = 1
    device_id: DeviceId
    ts: Timestamp
    status: Literal["online", "offline"] = Field(title="Presence")
    session: int = Field(
        ge=1,
        title="Session number",
        description="Incremented by the device on every connection; birth and will of one connection share it.",
    )
    device_type: DeviceType = Field(title="Device type")
    firmware_version: str = Field(max_length=64, title="Firmware (agent) version")
    config_version: str = Field(
        max_length=64, title="Config version", description="Hash of the loaded config."
    )


class TelemetryMessage(_Message):
    """One sample of one measurement. ``(device_id, measurement, ts)`` identifies it: repeats are ignored."""

    v: Version = 1
    device_id: DeviceId
    ts: Timestamp
    measurement: str = Field(pattern=NAME_PATTERN, title="Measurement", examples=["water_level", "health"])
    fields: dict[Annotated[str, Field(pattern=NAME_PATTERN)], float | int | bool] = Field(
        min_length=1,
        max_length=64,
        title="Fields",
        description="Numeric values; units are in the field name.",
    )
    tags: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Annotated[str, Field(max_length=64)]] = Field(
        default_factory=dict, max_length=16, title="Tags"
    )


class EventType(StrEnum):
    WATER_LEVEL = "water_level"
    WATER_RISING_FAST = "water_rising_fast"
    SENSOR_FAULT = "sensor_fault"
    EBIKE_IN_ELEVATOR = "ebike_in_elevator"
    OBJECT_THROWN = "object_thrown"
    ILLEGAL_PARKING = "illegal_parking"
    DEVICE_OFFLINE = "device_offline"  # raised by the gateway, never by a device


class Severity(StrEnum):
    INFO = "info"
    NOTICE = "notice"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.NOTICE: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}


class EventPhase(StrEnum):
    NEW = "new"
    UPDATE = "update"
    END = "end"


class _Details(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WaterLevelDetails(_Details):
    level_cm: float = Field(title="Current level", description="Water depth over the road, centimetres.")
    peak_cm: float = Field(
        title="Peak level", description="Highest filtered level since the event began, cm."
    )
    threshold_cm: float = Field(title="Threshold", description="Highest threshold crossed so far, cm.")


class WaterRisingFastDetails(_Details):
    level_cm: float
    rate_cm_per_min: float = Field(title="Rate of rise", description="Centimetres per minute.")


class SensorFaultDetails(_Details):
    fault: Literal["stuck", "out_of_range", "no_reading", "implausible"] = Field(title="Fault kind")
    message: str = Field(max_length=500)
    reading_mm: float | None = Field(default=None, description="Last raw reading, millimetres.")


class EbikeDetails(_Details):
    track_id: int | None = None
    frames_seen: int = Field(
        default=0, ge=0, description="Frames with the e-bike in the confirmation window."
    )
    door_held: bool = False
    floor: int | None = None


class ObjectThrownDetails(_Details):
    fall_height_m: float | None = None
    floor_estimate: int | None = None


class IllegalParkingDetails(_Details):
    zone: str | None = Field(default=None, max_length=64)
    dwell_s: float | None = None


class DeviceOfflineDetails(_Details):
    last_seen: AwareDatetime | None = None
    reason: Literal["will", "timeout"] = "timeout"


DETAILS_BY_TYPE: dict[EventType, type[_Details]] = {
    EventType.WATER_LEVEL: WaterLevelDetails,
    EventType.WATER_RISING_FAST: WaterRisingFastDetails,
    EventType.SENSOR_FAULT: SensorFaultDetails,
    EventType.EBIKE_IN_ELEVATOR: EbikeDetails,
    EventType.OBJECT_THROWN: ObjectThrownDetails,
    EventType.ILLEGAL_PARKING: IllegalParkingDetails,
    EventType.DEVICE_OFFLINE: DeviceOfflineDetails,
}


class EventMessage(_Message):
    """A dispatchable condition. ``event_id`` is stable across its phases; ``seq`` orders its revisions."""

    v: Version = 1
    device_id: DeviceId
    event_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{8,64}$", title="Event id", description="Assigned on the device."
    )
    seq: int = Field(
        ge=0, title="Revision", description="0 for phase new, +1 for every later message of the event."
    )
    phase: EventPhase
    type: EventType
    severity: Severity
    confidence: float = Field(ge=0.0, le=1.0)
    ts: Timestamp
    started_at: Timestamp = Field(title="Condition start", description="Device time the condition began.")
    details: dict[str, Any] = Field(default_factory=dict, description="Type-specific; see docs/protocol.md.")
    snapshot_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{8,64}$")

    @model_validator(mode="after")
    def _details_match_type(self) -> EventMessage:
        if self.type is EventType.DEVICE_OFFLINE:
            raise ValueError("device_offline events are raised by the gateway, not by devices")
        if (self.phase is EventPhase.NEW) != (self.seq == 0):
            raise ValueError("phase 'new' must have seq 0 and later phases seq >= 1")
        DETAILS_BY_TYPE[self.type].model_validate(self.details)
        return self

    def typed_details(self) -> BaseModel:
        return DETAILS_BY_TYPE[self.type].model_validate(self.details)


class SnapshotMessage(_Message):
    """Evidence image for an event (JPEG, base64). Kept under the gateway's message size limit."""

    v: Version = 1
    device_id: DeviceId
    snapshot_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    event_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    ts: Timestamp
    content_type: Literal["image/jpeg"] = "image/jpeg"
    width: int = Field(gt=0, le=8192)
    height: int = Field(gt=0, le=8192)
    data_b64: str = Field(max_length=200_000)


class AckMessage(_Message):
    v: Version = 1
    device_id: DeviceId
    cmd_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    ts: Timestamp
    ok: bool
    message: str = Field(default="", max_length=1000)


class CommandMessage(_Message):
    """Gateway -> device. Unknown commands are answered with ``ok: false``."""

    v: Version = 1
    cmd_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    ts: Timestamp
    command: str = Field(pattern=NAME_PATTERN, examples=["ping", "report_now", "release_door"])
    args: dict[str, Any] = Field(default_factory=dict)


class ConfigMessage(_Message):
    """Gateway -> device, retained: the desired device configuration (same schema as the YAML file)."""

    v: Version = 1
    cmd_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    ts: Timestamp
    config_version: str = Field(max_length=64)
    config: dict[str, Any]


MESSAGE_BY_CHANNEL: dict[Channel, type[_Message]] = {
    Channel.STATE: StateMessage,
    Channel.TELEMETRY: TelemetryMessage,
    Channel.EVENT: EventMessage,
    Channel.SNAPSHOT: SnapshotMessage,
    Channel.ACK: AckMessage,
    Channel.CMD: CommandMessage,
    Channel.CONFIG: ConfigMessage,
}

QOS_BY_CHANNEL: dict[Channel, int] = {channel: 1 for channel in Channel}
RETAINED_CHANNELS = frozenset({Channel.STATE, Channel.CONFIG})
