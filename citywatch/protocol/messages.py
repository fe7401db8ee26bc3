"""Payload models for every channel. JSON on the wire, UTF-8, ``"v": 1`` in every message.

Device -> gateway messages carry ``device_id`` (must equal the topic's) and a device timestamp
``ts`` (timezone-aware, ISO 8601), so that replays after an outage are idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
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
EVENT_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"

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
    session: StrictInt = Field(
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
    """``details`` of a ``water_level`` event."""

    level_cm: float = Field(title="Current level", description="Water depth over the road, centimetres.")
    peak_cm: float = Field(
        title="Peak level", description="Highest filtered level since the event began, cm."
    )
    threshold_cm: float = Field(title="Threshold", description="Highest threshold crossed so far, cm.")


class WaterRisingFastDetails(_Details):
    """``details`` of a ``water_rising_fast`` event."""

    level_cm: float = Field(title="Current level", description="Water depth over the road, centimetres.")
    rate_cm_per_min: float = Field(title="Rate of rise", description="Centimetres per minute.")


class SensorFaultDetails(_Details):
    """``details`` of a ``sensor_fault`` event."""

    fault: Literal["stuck", "out_of_range", "no_reading", "implausible"] = Field(title="Fault kind")
    message: str = Field(
        max_length=500,
        title="Message",
        description="For people: what is wrong (or, at the end, that it recovered).",
    )
    reading_mm: float | None = Field(
        default=None, title="Reading", description="Last raw reading, millimetres."
    )


class EbikeDetails(_Details):
    """``details`` of an ``ebike_in_elevator`` event."""

    track_id: int | None = Field(default=None, title="Track", description="The tracker's id of the e-bike.")
    frames_seen: int = Field(
        default=0, ge=0, title="Frames seen", description="Frames with the e-bike in the confirmation window."
    )
    door_held: bool = Field(
        default=False, title="Door held", description="The device is holding the door open."
    )
    floor: int | None = Field(default=None, title="Floor", description="Where the car is, when known.")


class ObjectThrownDetails(_Details):
    """``details`` of an ``object_thrown`` event."""

    fall_height_m: float | None = Field(default=None, title="Fall height", description="Metres.")
    floor_estimate: int | None = Field(
        default=None, title="Floor estimate", description="Floor thrown from, 1-based as the building counts."
    )
    floor_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, title="Floor confidence", description="How sure the floor is, 0 to 1."
    )
    origin_column: int | None = Field(
        default=None,
        ge=1,
        title="Window column",
        description="1-based from the facade's left, where calibrated.",
    )
    release_height_m: float | None = Field(
        default=None, title="Release height", description="Metres above the ground where the fall began."
    )
    fall_duration_s: float | None = Field(default=None, ge=0.0, title="Fall duration", description="Seconds.")
    impact: Literal["ground", "stopped"] | None = Field(
        default=None,
        title="Impact",
        description="ground: the fitted fall reaches the ground; stopped: it was seen coming to rest.",
    )
    impact_x_m: float | None = Field(
        default=None, title="Impact place", description="Metres along the facade from its left edge."
    )
    object_size_m: float | None = Field(
        default=None, ge=0.0, title="Object size", description="Rough size of the object, metres."
    )


class IllegalParkingDetails(_Details):
    """``details`` of an ``illegal_parking`` event."""

    zone: str | None = Field(
        default=None, max_length=64, title="Zone", description="The no-parking zone's name."
    )
    dwell_s: float | None = Field(default=None, title="Dwell", description="Seconds parked so far.")


class DeviceOfflineDetails(_Details):
    """What the gateway puts in the ``device_offline`` events it raises (devices never send them)."""

    last_seen: str = Field(
        title="Last seen", description="Gateway time of the device's last message, ISO 8601."
    )
    offline_after_s: float = Field(gt=0, title="Offline after", description="The silence that raised it, s.")
    by_will: bool = Field(
        title="By will", description="True when the device's will (not only silence) said so."
    )


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
    event_id: str = Field(pattern=EVENT_ID_PATTERN, title="Event id", description="Assigned on the device.")
    seq: StrictInt = Field(
        ge=0, title="Revision", description="0 for phase new, +1 for every later message of the event."
    )
    phase: EventPhase = Field(title="Phase", description="new (seq 0), update, end.")
    type: EventType = Field(title="Event type", description="Decides the schema of details.")
    severity: Severity = Field(title="Severity")
    confidence: StrictFloat = Field(ge=0.0, le=1.0, title="Confidence", description="The device's, 0 to 1.")
    ts: Timestamp
    started_at: Timestamp = Field(title="Condition start", description="Device time the condition began.")
    details: dict[str, Any] = Field(
        default_factory=dict, title="Details", description="Type-specific; see docs/protocol.md."
    )
    snapshot_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        title="Snapshot id",
        description="Optional: the snapshot message carrying this event's evidence image.",
    )
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
    snapshot_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{8,64}$", title="Snapshot id", description="Named by the event's snapshot_id."
    )
    event_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{8,64}$", title="Event id", description="The event it shows."
    )
    ts: Timestamp
    content_type: Literal["image/jpeg"] = Field(default="image/jpeg", title="Content type")
    width: StrictInt = Field(gt=0, le=8192, title="Width", description="Pixels.")
    height: StrictInt = Field(gt=0, le=8192, title="Height", description="Pixels.")
    data_b64: str = Field(
        max_length=200_000,
        title="Image",
        description="The JPEG, base64 (standard alphabet, padded); the gateway refuses what is not base64.",
        json_schema_extra={"contentEncoding": "base64", "contentMediaType": "image/jpeg"},
    )
    outbox_seq: OutboxSeq = None


class AckMessage(_Message):
    """Device -> gateway: the answer to a ``cmd`` or a ``config``."""

    v: Version = 1
    device_id: DeviceId
    cmd_id: str = Field(
        pattern=CMD_ID_PATTERN, title="Command id", description="Of the cmd or config answered."
    )
    ts: Timestamp
    ok: StrictBool = Field(title="Done", description="Done (a command) or accepted (a configuration).")
    message: str = Field(
        default="", max_length=1000, title="Message", description="For people: the result, or every mistake."
    )
    reason: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        title="Why not",
        description="Optional, with ok false: expired, unknown_command, failed, invalid (a config).",
    )


class CommandMessage(_Message):
    """Gateway -> device. Unknown commands are answered with ``ok: false``; expired ones are not run."""

    v: Version = 1
    cmd_id: str = Field(pattern=CMD_ID_PATTERN, title="Command id", description="Echoed in the ack.")
    ts: Timestamp = Field(title="Sender time", description="When it was sent (the sender's clock).")
    command: str = Field(
        pattern=NAME_PATTERN,
        examples=["ping", "report_now", "release_door"],
        title="Command",
        description="Unknown commands are answered ok false, reason unknown_command.",
    )
    args: dict[str, Any] = Field(default_factory=dict, title="Arguments")
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
    cmd_id: str = Field(pattern=CMD_ID_PATTERN, title="Command id", description="Echoed in the ack.")
    ts: Timestamp = Field(title="Sender time", description="When it was sent (the sender's clock).")
    config_version: str = Field(max_length=64, title="Config version")
    config: dict[str, Any] = Field(
        title="Configuration",
        description="The whole device configuration, as its YAML file (firmware_configs/schema/): not a patch.",
    )


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


class RefusalMessage(_Message):
    """Gateway -> device: a message of this device was refused, and why (see docs/protocol.md).

    Rate-limited per device: ``suppressed`` counts the refusals not reported since the previous one.
    """

    v: Version = 1
    ts: Timestamp = Field(title="Gateway time", description="When the gateway refused the message.")
    reason: str = Field(
        pattern=NAME_PATTERN,
        title="Reason",
        description="Why, as counted in /health: bad_topic, oversized, malformed_json, wrong_version, "
        "invalid, clock, topic_mismatch, unknown_device, wrong_site, unknown_event, ...",
        examples=["invalid"],
    )
    detail: str = Field(
        max_length=300,
        title="Detail",
        description="What broke the contract: fields and rules, never the values sent.",
    )
    topic: str = Field(
        min_length=1,
        max_length=200,
        title="Refused topic",
        description="The topic the refused message was published on (shortened, non-printable characters "
        "escaped).",
    )
    channel: Channel | None = Field(
        default=None,
        title="Refused channel",
        description="Optional: the channel of the refused topic, when it names one.",
    )
    outbox_seq: StrictInt | None = Field(
        default=None,
        ge=1,
        le=2**53 - 1,
        title="Refused outbox sequence",
        description="Optional: the refused message's outbox_seq, when it could be read.",
    )
    event_id: str | None = Field(
        default=None,
        pattern=EVENT_ID_PATTERN,
        title="Refused event id",
        description="Optional: the refused message's event_id, when it could be read.",
    )
    suppressed: StrictInt = Field(
        default=0,
        ge=0,
        title="Not reported",
        description="How many more refusals of this device the gateway did not report since its previous "
        "refusal message (rate-limited); they are counted in /health and listed in GET /devices/{id}.",
    )


MESSAGE_BY_CHANNEL: dict[Channel, type[_Message]] = {
    Channel.STATE: StateMessage,
    Channel.TELEMETRY: TelemetryMessage,
    Channel.EVENT: EventMessage,
    Channel.SNAPSHOT: SnapshotMessage,
    Channel.ACK: AckMessage,
    Channel.CMD: CommandMessage,
    Channel.CONFIG: ConfigMessage,
    Channel.RECEIPT: ReceiptMessage,
    Channel.REFUSAL: RefusalMessage,
}

QOS_BY_CHANNEL: dict[Channel, int] = {channel: 1 for channel in Channel}
RETAINED_CHANNELS = frozenset({Channel.STATE, Channel.CONFIG})
