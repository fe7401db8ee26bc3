"""Payload models for every channel. JSON on the wire, UTF-8, ``"v": 1`` in every message.

Device -> gateway messages carry ``device_id`` (must equal the topic's) and a device timestamp
``ts`` (timezone-aware, ISO 8601), so that replays after an outage are idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)
from pydantic_core import core_schema

from citywatch.protocol.topics import ID_PATTERN, Channel

PROTOCOL_VERSION = 1
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
CMD_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# The one spelling the page allows; pydantic alone would also take epoch numbers, "1780315200",
# "2026-06-01 12:00Z" or a lower-case "t".
ISO_8601_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


def _iso_8601_schema(_source: object, _handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    """Text must match the pattern before it is parsed; Python code may pass an aware datetime.

    Built from pydantic-core schemas (no Python validator): this runs for every message ingested.
    """
    spelled = core_schema.custom_error_schema(
        core_schema.str_schema(pattern=ISO_8601_PATTERN),
        custom_error_type="iso_8601",
        custom_error_message="a timestamp is an ISO 8601 string with seconds and a UTC offset, "
        "e.g. 2026-06-01T12:00:00.250Z",
    )
    aware = core_schema.datetime_schema(tz_constraint="aware")
    from_text = core_schema.chain_schema([spelled, aware])
    return core_schema.json_or_python_schema(
        json_schema=from_text,
        python_schema=core_schema.union_schema(
            [core_schema.datetime_schema(tz_constraint="aware", strict=True), from_text]
        ),
    )


def _integer(value: object) -> object:
    if type(value) is not int:  # Literal[1] alone takes true and 1.0
        raise ValueError("must be the integer 1")
    return value


DeviceId = Annotated[str, Field(pattern=ID_PATTERN, title="Device id", description="Must equal the topic's.")]
Timestamp = Annotated[
    datetime,
    GetPydanticSchema(_iso_8601_schema),
    Field(
        title="Device time",
        description="ISO 8601 with seconds and a UTC offset.",
        json_schema_extra={"format": "date-time"},
    ),
]
Version = Annotated[
    Literal[1],
    BeforeValidator(_integer),
    Field(title="Schema version", description="Payload schema version; this contract is the integer 1."),
]
# "number or boolean": a string such as "1.5" is refused, not converted; NaN and infinities are refused
# by the models' allow_inf_nan=False (JSON has no such numbers, and stores and readers choke on them).
FieldValue = StrictFloat | StrictInt | StrictBool
OutboxSeq = Annotated[
    StrictInt | None,
    Field(
        ge=1,
        le=2**53 - 1,
        title="Outbox sequence",
        description="Optional. The device's own number for this message, increasing in the order it queued "
        "them; the gateway lists it in a receipt once the message is stored (end-to-end delivery).",
    ),
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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
    fields: dict[Annotated[str, Field(pattern=NAME_PATTERN)], FieldValue] = Field(
        min_length=1,
        max_length=64,
        title="Fields",
        description='Finite numbers or booleans (a string such as "1.5" is refused); units are in the field name.',
    )
    tags: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Annotated[str, Field(max_length=64)]] = Field(
        default_factory=dict, max_length=16, title="Tags"
    )
    outbox_seq: OutboxSeq = None


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
    # Strict: the event stores the details as sent, so "10.6" must not pass as a number here.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


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
    outbox_seq: OutboxSeq = None

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
    outbox_seq: OutboxSeq = None


class AckMessage(_Message):
    v: Version = 1
    device_id: DeviceId
    cmd_id: str = Field(pattern=CMD_ID_PATTERN)
    ts: Timestamp
    ok: bool
    message: str = Field(default="", max_length=1000)
    reason: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        title="Why not",
        description="Optional, with ok false: expired, unknown_command, failed, invalid (a config).",
    )


class CommandMessage(_Message):
    """Gateway -> device. Unknown commands are answered with ``ok: false``; expired ones are not run."""

    v: Version = 1
    cmd_id: str = Field(pattern=CMD_ID_PATTERN)
    ts: Timestamp
    command: str = Field(pattern=NAME_PATTERN, examples=["ping", "report_now", "release_door"])
    args: dict[str, Any] = Field(default_factory=dict)
    expires: Timestamp | None = Field(
        default=None,
        title="Expires",
        description="After this (device time) the device does not run the command and acks ok false, reason "
        "expired. The gateway always sets it; absent: no expiry.",
    )

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


class ConfigMessage(_Message):
    """Gateway -> device, retained: the desired device configuration (same schema as the YAML file)."""

    v: Version = 1
    cmd_id: str = Field(pattern=CMD_ID_PATTERN)
    ts: Timestamp
    config_version: str = Field(max_length=64)
    config: dict[str, Any]


ReceiptRun = Annotated[
    tuple[Annotated[StrictInt, Field(ge=1)], Annotated[StrictInt, Field(ge=1)]],
    Field(title="Run", description="[first, last]: every outbox_seq from first to last, both included."),
]


class ReceiptMessage(_Message):
    """Gateway -> device: the device's numbered messages the gateway has stored (see docs/protocol.md)."""

    v: Version = 1
    ts: Timestamp
    stored: list[ReceiptRun] = Field(
        min_length=1,
        max_length=256,
        title="Stored runs",
        description="Runs of outbox_seq values the gateway has stored (or refused for good after reading "
        "them): the device deletes these and keeps the rest.",
    )

    @model_validator(mode="after")
    def _runs_ascend(self) -> ReceiptMessage:
        if any(first > last for first, last in self.stored):
            raise ValueError("a run is [first, last] with first <= last")
        return self


MESSAGE_BY_CHANNEL: dict[Channel, type[_Message]] = {
    Channel.STATE: StateMessage,
    Channel.TELEMETRY: TelemetryMessage,
    Channel.EVENT: EventMessage,
    Channel.SNAPSHOT: SnapshotMessage,
    Channel.ACK: AckMessage,
    Channel.CMD: CommandMessage,
    Channel.CONFIG: ConfigMessage,
    Channel.RECEIPT: ReceiptMessage,
}

QOS_BY_CHANNEL: dict[Channel, int] = {channel: 1 for channel in Channel}
RETAINED_CHANNELS = frozenset({Channel.STATE, Channel.CONFIG})
