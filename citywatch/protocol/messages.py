"""Payload models for every channel. JSON on the wire, UTF-8, ``"v": 1`` in every message.

Device -> gateway messages carry ``device_id`` (must equal the topic's) and a device timestamp
``ts`` (timezone-aware, ISO 8601), so that replays after an outage are idempotent.
"""

from __future__ import annotations

import hashlib
import json
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
    CONFIG_DRIFT = "config_drift"  # raised by the gateway, never by a device


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


class _DeviceDetails(_Details):
    end_reason: Literal["agent_restarted"] | None = Field(
        default=None,
        title="End reason",
        description="end only, when the device says why apart from the event's own logic: agent_restarted "
        "(the agent restarted with the event open and cannot tell whether the condition goes on; the rest "
        "of the details are as last sent).",
    )


class WaterLevelDetails(_DeviceDetails):
    """``details`` of a ``water_level`` event."""

    level_cm: float = Field(title="Current level", description="Water depth over the road, centimetres.")
    peak_cm: float = Field(
        title="Peak level", description="Highest filtered level since the event began, cm."
    )
    threshold_cm: float = Field(title="Threshold", description="Highest threshold crossed so far, cm.")


class WaterRisingFastDetails(_DeviceDetails):
    """``details`` of a ``water_rising_fast`` event."""

    level_cm: float = Field(title="Current level", description="Water depth over the road, centimetres.")
    rate_cm_per_min: float = Field(title="Rate of rise", description="Centimetres per minute.")


class SensorFaultDetails(_DeviceDetails):
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


class EbikeDetails(_DeviceDetails):
    """``details`` of an ``ebike_in_elevator`` event."""

    track_id: int | None = Field(default=None, title="Track", description="The tracker's id of the e-bike.")
    frames_seen: int = Field(
        default=0, ge=0, title="Frames seen", description="Frames with the e-bike in the confirmation window."
    )
    door_held: bool = Field(
        default=False, title="Door held", description="The device is holding the door open."
    )
    floor: int | None = Field(default=None, title="Floor", description="Where the car is, when known.")


class ObjectThrownDetails(_DeviceDetails):
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


class IllegalParkingDetails(_DeviceDetails):
    """``details`` of an ``illegal_parking`` event: one stopped vehicle in one no-parking zone (a case)."""

    stage: (
        Literal[
            "warning",
            "violation",
            "left_in_grace",
            "left_after_violation",
            "zone_hours_ended",
            "agent_restarted",
        ]
        | None
    ) = Field(
        default=None,
        title="Stage",
        description="warning (new: stopped past the dwell, send the 'please move' notice); violation "
        "(update: still there after the grace, record it); left_in_grace (end: it left after the "
        "warning, the notice worked); left_after_violation (end); zone_hours_ended (end: the ban's "
        "hours ended with the case open); agent_restarted (end: the agent restarted with the case open, "
        "see end_reason).",
    )
    zone: str | None = Field(
        default=None, max_length=64, title="Zone", description="The no-parking zone's name."
    )
    dwell_s: float | None = Field(
        default=None,
        ge=0.0,
        title="Dwell",
        description="Seconds stopped in the zone within its hours (at the end: until it left).",
    )
    grace_s: float | None = Field(
        default=None, ge=0.0, title="Grace", description="Seconds since the warning."
    )
    vehicle_class: Literal["car", "truck", "bus", "motorbike", "ebike"] | None = Field(
        default=None, title="Vehicle class", description="car, truck (vans too), bus, motorbike, ebike."
    )
    plate: str | None = Field(
        default=None,
        max_length=16,
        title="Plate",
        description="The number plate as read, without the dot (e.g. 京A12345); absent when not readable.",
        json_schema_extra={"personal_data": True},
    )
    plate_colour: Literal["blue", "green", "yellow", "white", "black"] | None = Field(
        default=None, title="Plate colour", description="blue, green (new energy), yellow, ..."
    )
    plate_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, title="Plate confidence", description="The reader's, 0 to 1."
    )
    box: list[float] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        title="Vehicle box",
        description="x1, y1, x2, y2 in the camera's pixels, in the photo of this stage (end: last seen).",
    )
    departure: Literal["drove_off", "not_seen_again"] | None = Field(
        default=None,
        title="Departure",
        description="end only: drove_off (seen leaving); not_seen_again (hidden longer than the occlusion "
        "tolerance, or another vehicle was seen standing in its place).",
    )
    violation_recorded: bool | None = Field(
        default=None, title="Violation recorded", description="end only: the violation stage was reached."
    )


class DeviceOfflineDetails(_Details):
    """What the gateway puts in the ``device_offline`` events it raises (devices never send them)."""

    last_seen: str = Field(
        title="Last seen", description="Gateway time of the device's last message, ISO 8601."
    )
    offline_after_s: float = Field(gt=0, title="Offline after", description="The silence that raised it, s.")
    by_will: bool = Field(
        title="By will", description="True when the device's will (not only silence) said so."
    )


class ConfigDriftDetails(_Details):
    """What the gateway puts in the ``config_drift`` events it raises (devices never send them)."""

    desired_version: str = Field(
        max_length=64, title="Desired", description="The config version last pushed."
    )
    reported_version: str | None = Field(
        default=None, max_length=64, title="Reported", description="The version the device says it runs."
    )
    desired_since: str = Field(title="Pushed at", description="Gateway time of the push, ISO 8601.")
    drift_after_s: float = Field(gt=0, title="Drift after", description="The wait that raised it, s.")


# Conditions the gateway raises about a device itself: a device sending one is refused.
GATEWAY_EVENT_TYPES = frozenset({EventType.DEVICE_OFFLINE, EventType.CONFIG_DRIFT})

DETAILS_BY_TYPE: dict[EventType, type[_Details]] = {
    EventType.WATER_LEVEL: WaterLevelDetails,
    EventType.WATER_RISING_FAST: WaterRisingFastDetails,
    EventType.SENSOR_FAULT: SensorFaultDetails,
    EventType.EBIKE_IN_ELEVATOR: EbikeDetails,
    EventType.OBJECT_THROWN: ObjectThrownDetails,
    EventType.ILLEGAL_PARKING: IllegalParkingDetails,
    EventType.DEVICE_OFFLINE: DeviceOfflineDetails,
    EventType.CONFIG_DRIFT: ConfigDriftDetails,
}


def _personal_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("personal_data")
    )


# Detail fields that identify a person (a number plate): the signed webhook and the API carry them to
# the dispatch centre; a broadcast format such as CAP leaves them out.
PERSONAL_DETAIL_FIELDS: dict[str, frozenset[str]] = {
    event_type: fields for event_type, model in DETAILS_BY_TYPE.items() if (fields := _personal_fields(model))
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
        if self.type in GATEWAY_EVENT_TYPES:
            raise ValueError(f"{self.type.value} events are raised by the gateway, not by devices")
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


EVIDENCE_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"  # as a snapshot id
MAX_EVIDENCE_PARTS = 512
MAX_EVIDENCE_CHUNK_B64 = 200_000  # characters of one part's data_b64
MAX_EVIDENCE_CHUNK_BYTES = MAX_EVIDENCE_CHUNK_B64 // 4 * 3  # what that many base64 characters hold
# Standard alphabet, padded: whole groups of four, '=' only at the end. The schema carries it, so that a
# vendor's validator refuses what the gateway would.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# One line of text for people: no C0 or C1 control character, no DEL, no line or paragraph separator
# (the gateway's rule for names, gateway/fields.py: they would forge log lines and break CSV).
CAPTION_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"


class EvidenceKind(StrEnum):
    CLIP = "clip"  # a video around the event (a throw: from before the fall to after the impact)
    STILL = "still"  # an annotated frame (a throw: trajectory and origin window drawn)
    PHOTO = "photo"  # a timestamped photo (parking: at the warning, then at the violation)
    PLATE_CROP = "plate_crop"  # the number plate, cropped


EVIDENCE_CONTENT_TYPES: dict[EvidenceKind, str] = {
    EvidenceKind.CLIP: "video/mp4",
    EvidenceKind.STILL: "image/jpeg",
    EvidenceKind.PHOTO: "image/jpeg",
    EvidenceKind.PLATE_CROP: "image/jpeg",
}


def base64_length(data_b64: str) -> int:
    """Bytes a padded base64 string decodes to, without decoding it."""
    return len(data_b64) // 4 * 3 - (2 if data_b64.endswith("==") else 1 if data_b64.endswith("=") else 0)


class EvidenceMessage(_Message):
    """One part of an evidence item (a clip, a still, a photo, a plate crop) of an event.

    An item too large for one message (256 KiB) is cut into ``parts`` chunks, each sent as one message
    through the device's outbox; the gateway keeps the parts ((device, evidence_id, part) is the key: a
    repeat is harmless), joins them when all are there and checks ``size`` and ``sha256`` of the whole.
    """

    v: Version = 1
    device_id: DeviceId
    event_id: str = Field(
        pattern=EVENT_ID_PATTERN,
        title="Event id",
        description="The event (of this device) the evidence belongs to; it may arrive before the event.",
    )
    evidence_id: str = Field(
        pattern=EVIDENCE_ID_PATTERN,
        title="Evidence id",
        description="Assigned on the device; the same in every part of the item, new for every item.",
    )
    kind: EvidenceKind = Field(title="Kind", description="clip, still, photo or plate_crop.")
    content_type: Literal["video/mp4", "image/jpeg"] = Field(
        title="Content type", description="video/mp4 for a clip, image/jpeg for the others."
    )
    caption: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=CAPTION_PATTERN,
        title="Caption",
        description="Optional, for people, e.g. 'warning photo': one line, no control characters.",
    )
    ts: Timestamp = Field(title="Queued at", description="Device time the item was queued for sending.")
    taken_at: Timestamp = Field(
        title="Taken at", description="Device time the evidence shows (a clip: its first frame)."
    )
    part: StrictInt = Field(ge=0, title="Part", description="This chunk's number: 0 to parts - 1.")
    parts: StrictInt = Field(
        ge=1, le=MAX_EVIDENCE_PARTS, title="Parts", description="How many chunks the item is cut into."
    )
    size: StrictInt = Field(
        gt=0,
        le=MAX_EVIDENCE_PARTS * MAX_EVIDENCE_CHUNK_BYTES,
        title="Size",
        description="Bytes of the whole item (every part together).",
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        title="SHA-256",
        description="Of the whole item, lower-case hex: the gateway checks it once every part is there.",
    )
    data_b64: str = Field(
        min_length=4,
        max_length=MAX_EVIDENCE_CHUNK_B64,
        pattern=BASE64_PATTERN,
        title="Chunk",
        description="This part's bytes, base64 (standard alphabet, padded): part p holds bytes "
        "[p * chunk, (p + 1) * chunk) of the item, for the device's chunk size.",
        json_schema_extra={"contentEncoding": "base64"},
    )
    outbox_seq: OutboxSeq = None

    @model_validator(mode="after")
    def _parts_fit(self) -> EvidenceMessage:
        if self.part >= self.parts:
            raise ValueError(f"part is {self.part}, parts {self.parts}: parts are numbered 0 to parts - 1")
        expected = EVIDENCE_CONTENT_TYPES[self.kind]
        if self.content_type != expected:
            raise ValueError(f"a {self.kind.value} is {expected}, not {self.content_type}")
        chunk = base64_length(self.data_b64)
        if chunk > self.size:
            raise ValueError(f"data_b64 holds {chunk} bytes, more than the item's size ({self.size})")
        if self.size > self.parts * MAX_EVIDENCE_CHUNK_BYTES:
            raise ValueError(
                f"size {self.size} does not fit in {self.parts} part(s) of at most "
                f"{MAX_EVIDENCE_CHUNK_BYTES} bytes each"
            )
        return self


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
        description="Optional, with ok false: expired, unknown_command, failed; for a config: invalid, "
        "unsigned, bad_signature, unknown_key, wrong_device, stale, missing_file.",
    )
    config_version: str | None = Field(
        default=None,
        max_length=64,
        title="Running config version",
        description="Optional, answering a config: the version the device runs now (the pushed one when "
        "accepted, the one it kept when not).",
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


def config_version(config: dict[str, Any]) -> str:
    """The version of a configuration document: 12 hex digits of the SHA-256 of its canonical JSON.

    Devices name the configuration they run by it (the normalized document, defaults filled in), and the
    gateway names a pushed one by it: equal documents, equal versions."""
    return hashlib.sha256(canonical_json(config)).hexdigest()[:12]


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, ASCII only: the bytes that are hashed and signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


KEY_ID_PATTERN = r"^[0-9a-f]{16}$"
FilePath = Annotated[str, Field(min_length=1, max_length=200)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class TrustedKey(BaseModel):
    """An Ed25519 public key a device accepts configurations signed by."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(
        pattern=KEY_ID_PATTERN, title="Key id", description="First 16 hex digits of the raw key's SHA-256."
    )
    alg: Literal["ed25519"] = Field(default="ed25519", title="Algorithm")
    public_key: str = Field(
        pattern=r"^[A-Za-z0-9+/]{43}=$", title="Public key", description="The 32 raw bytes, base64."
    )


class ConfigSignature(BaseModel):
    """One signature over ``ConfigMessage.signed_payload()``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=KEY_ID_PATTERN, title="Key id")
    alg: Literal["ed25519"] = Field(default="ed25519", title="Algorithm")
    value: str = Field(
        pattern=r"^[A-Za-z0-9+/]{86}==$", title="Signature", description="The 64 raw bytes, base64."
    )


class ConfigMessage(_Message):
    """Gateway -> device, retained: the desired device configuration (same schema as the YAML file).

    Signed (``signatures``; made on the installer's desk by ``citywatch config push``, relayed as is by the
    gateway): a device that trusts keys refuses an unsigned config, one signed by a key it does not trust,
    one issued before the config it runs, and one whose ``files`` hashes do not match its files.
    """

    v: Version = 1
    cmd_id: str = Field(pattern=CMD_ID_PATTERN, title="Command id", description="Echoed in the ack.")
    ts: Timestamp = Field(title="Sender time", description="When it was sent (the sender's clock).")
    config_version: str = Field(max_length=64, title="Config version")
    config: dict[str, Any] = Field(
        title="Configuration",
        description="The whole device configuration, as its YAML file (firmware_configs/schema/): not a patch.",
    )
    issued_at: Timestamp | None = Field(
        default=None,
        title="Issued at",
        description="Signed configs: when the desk signed it; a device refuses one older than it runs.",
    )
    trusted_keys: list[TrustedKey] | None = Field(
        default=None,
        max_length=16,
        title="Trusted keys",
        description="Signed configs: the keys the device trusts from now on (key rotation without re-flashing).",
    )
    files: dict[FilePath, Sha256] | None = Field(
        default=None,
        max_length=64,
        title="Files",
        description="Signed configs: SHA-256 of each file the config names (models), by its path.",
    )
    signatures: list[ConfigSignature] | None = Field(
        default=None,
        max_length=8,
        title="Signatures",
        description="Ed25519 signatures of signed_payload(): one per desk key (old and new while rotating).",
    )

    def signed_payload(self) -> bytes:
        """What the signatures sign: the canonical JSON of config, version, issue time, keys and files."""
        issued = self.issued_at.astimezone(UTC).isoformat().replace("+00:00", "Z") if self.issued_at else None
        return canonical_json(
            {
                "config": self.config,
                "config_version": self.config_version,
                "files": self.files or {},
                "issued_at": issued,
                "trusted_keys": [key.model_dump() for key in self.trusted_keys or []],
            }
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
    Channel.EVIDENCE: EvidenceMessage,
    Channel.ACK: AckMessage,
    Channel.CMD: CommandMessage,
    Channel.CONFIG: ConfigMessage,
    Channel.RECEIPT: ReceiptMessage,
    Channel.REFUSAL: RefusalMessage,
}

QOS_BY_CHANNEL: dict[Channel, int] = {channel: 1 for channel in Channel}
RETAINED_CHANNELS = frozenset({Channel.STATE, Channel.CONFIG})
