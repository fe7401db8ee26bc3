"""Device registry rows and their API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citywatch.protocol.messages import DeviceType
from citywatch.protocol.topics import ID_PATTERN
from gateway.db import Base, UtcDateTime, utcnow
from gateway.fields import Name, Note

Presence = Literal["online", "offline", "silent", "never_seen"]


def _degrees(limit: int, title: str, description: str, example: float) -> object:
    return Field(
        ge=-limit,
        le=limit,
        allow_inf_nan=False,
        strict=True,  # a JSON number: not "1.5", not true
        title=title,
        description=description,
        examples=[example],
    )


Latitude = Annotated[
    float,
    _degrees(90, "Latitude", "WGS 84, -90..90; with longitude, CAP alerts get a <circle>.", 31.2304),
]
Longitude = Annotated[float, _degrees(180, "Longitude", "WGS 84, -180..180; given with latitude.", 121.4737)]


def check_coordinates(latitude: float | None, longitude: float | None) -> None:
    """A position is both coordinates or none: half of one places the device nowhere."""
    if (latitude is None) != (longitude is None):
        raise ValueError("latitude and longitude go together: give both, or neither")


def _one_needs_the_other(first: str, second: str) -> JsonDict:
    """JSON Schema: when ``first`` is a number, ``second`` is one too."""
    return {
        "if": {"required": [first], "properties": {first: {"type": "number"}}},
        "then": {"required": [second], "properties": {second: {"type": "number"}}},
    }


# check_coordinates for a new device, as its schema says it.
WHOLE_POSITION: JsonDict = {
    "allOf": [_one_needs_the_other("latitude", "longitude"), _one_needs_the_other("longitude", "latitude")]
}


def _no_default_in_schema(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # left out means "unchanged", not the null the model holds meanwhile


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    device_type: Mapped[str] = mapped_column(String(32))
    grid: Mapped[str | None] = mapped_column(String(64), default=None)
    town: Mapped[str | None] = mapped_column(String(64), default=None)
    latitude: Mapped[float | None] = mapped_column(Float, default=None, doc="WGS 84, for CAP <circle>.")
    longitude: Mapped[float | None] = mapped_column(Float, default=None)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    session: Mapped[int] = mapped_column(Integer, default=0)
    session_started_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, default=None, doc="Device time its current session began (the birth's, or will's, ts)."
    )
    presence_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    firmware_version: Mapped[str | None] = mapped_column(String(64), default=None)
    config_version: Mapped[str | None] = mapped_column(String(64), default=None)
    config_reported_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, default=None, doc="Gateway time config_version last changed (birth or config ack)."
    )
    desired_config_version: Mapped[str | None] = mapped_column(
        String(64), default=None, doc="The version last pushed (POST /devices/{id}/config)."
    )
    desired_config_cmd_id: Mapped[str | None] = mapped_column(String(64), default=None)
    desired_config_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    mqtt_username: Mapped[str | None] = mapped_column(String(64), default=None, unique=True, index=True)
    mqtt_password_hash: Mapped[str | None] = mapped_column(
        String(200), default=None, doc="Mosquitto $7$ hash made at flash time; never the password."
    )
    mqtt_credential_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    reported_device_type: Mapped[str | None] = mapped_column(
        String(32), default=None, doc="What the last accepted birth said; differs from device_type: flagged."
    )


class DeviceAudit(Base):
    """Append-only: what was done to or reported by a device, by whom (commands, acks, resets, flags)."""

    __tablename__ = "device_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    cmd_id: Mapped[str | None] = mapped_column(String(64), default=None)
    note: Mapped[str] = mapped_column(Text, default="")


class DeviceCreate(BaseModel):
    """What an installer provides when provisioning a device."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=WHOLE_POSITION)

    id: str = Field(pattern=ID_PATTERN, title="Device id", description="As in the device's MQTT topics.")
    site: str = Field(pattern=ID_PATTERN, title="Site", description="The topic's site segment.")
    device_type: DeviceType = Field(title="Device type")
    grid: Annotated[str, Name(64)] | None = Field(default=None, title="Grid", description="For routing.")
    town: Annotated[str, Name(64)] | None = Field(default=None, title="Town", description="For routing.")
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    description: Annotated[str, Note(500)] = Field(default="", title="Where it is, for people")

    @model_validator(mode="after")
    def _position_is_whole(self) -> Self:
        check_coordinates(self.latitude, self.longitude)
        return self


class DeviceUpdate(BaseModel):
    """Where a device is, as an installer corrects it; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    # site and description can be changed, not emptied: not nullable in the schema (SkipJsonSchema),
    # None in the model only while left out.
    site: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | SkipJsonSchema[None] = Field(
        default=None,
        title="Site",
        description="The topic's site segment: the device must publish under the new site from now on.",
        json_schema_extra=_no_default_in_schema,
    )
    grid: Annotated[str, Name(64)] | None = Field(
        default=None, title="Grid", description="For routing; null removes it."
    )
    town: Annotated[str, Name(64)] | None = Field(
        default=None, title="Town", description="For routing; null removes it."
    )
    latitude: Latitude | None = Field(default=None, description="null removes the position (with longitude).")
    longitude: Longitude | None = None
    description: Annotated[str, Note(500)] | SkipJsonSchema[None] = Field(
        default=None, title="Where it is, for people", json_schema_extra=_no_default_in_schema
    )

    @field_validator("site", "description", mode="before")
    @classmethod
    def _not_emptied(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be emptied (null): leave it out to keep what is registered")
        return value


class DeviceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    site: str
    device_type: str
    grid: str | None
    town: str | None
    latitude: float | None = Field(default=None, description="WGS 84; null: no position registered.")
    longitude: float | None = None
    description: str
    created_at: datetime
    online: bool = Field(description="Presence from the last accepted birth/will.")
    presence: Presence = Field(description="'silent' = online by its birth but not heard from lately.")
    session: int
    presence_changed_at: datetime | None
    last_seen: datetime | None
    firmware_version: str | None
    config_version: str | None = Field(
        description="Reported: the config version the device says it runs (its birth, its config acks)."
    )
    desired_config_version: str | None = Field(
        default=None,
        description="Desired: the version last pushed to it (null: never pushed through the gateway). "
        "Differing from config_version for CITYWATCH_CONFIG_DRIFT_AFTER_S opens a config_drift event.",
    )
    desired_config_at: datetime | None = Field(default=None, description="When it was pushed.")
    config_in_sync: bool | None = Field(
        default=None,
        description="config_version equals desired_config_version (null: nothing pushed).",
    )
    mqtt_username: str | None = Field(
        default=None, description="Its broker account (made at flash time); the password is never stored."
    )
    session_started_at: datetime | None = Field(
        default=None, description="Device time its current session began (its birth's ts)."
    )
    reported_device_type: str | None = Field(
        default=None,
        description="The device_type its last birth reported; when it differs from device_type, the registry "
        "or the unit is wrong (logged, and a type_mismatch entry in the device's audit).",
    )


class MqttCredential(BaseModel):
    """A device's broker account as ``citywatch config flash`` made it: the user and the password's hash."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(
        pattern=r"^[A-Za-z0-9._-]{1,64}$", title="MQTT user", description="Usually the device id."
    )
    password_hash: str = Field(
        pattern=r"^\$7\$[0-9]{1,7}\$[A-Za-z0-9+/=]{8,64}\$[A-Za-z0-9+/=]{80,100}$",
        title="Password hash",
        description="Mosquitto's $7$ (PBKDF2-SHA512) hash, as mosquitto_passwd writes it; never the password.",
    )


class DeviceAuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str = Field(description="A token's name, the device id, or 'gateway'.")
    role: str = Field(description="The token's role, 'device' or 'system'.")
    action: str = Field(
        description="cmd, config (sent through the API), ack (the device's answer), session_reset, "
        "type_mismatch, mqtt_credential (set or revoked)."
    )
    cmd_id: str | None = Field(description="For cmd, config and ack: the command's id.")
    note: str


class RefusalRead(BaseModel):
    """One message of the device the gateway refused (docs/protocol.md, "What the gateway refuses")."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")

    reason: str = Field(title="Reason", description="As counted in /health, e.g. invalid, clock, wrong_site.")
    detail: str = Field(
        title="Detail", description="What was wrong: field names and rules, never the values sent."
    )
    topic: str = Field(title="Topic", description="Where it was published.")
    at: datetime = Field(title="Refused at", description="Gateway time.")


class DeviceDetail(DeviceRead):
    refusals: list[RefusalRead] = Field(
        default_factory=list,
        title="Last refusals",
        description="The device's last refused messages, newest first (at most 10, by the device id in the "
        "topic). Kept in the gateway's memory: a restart empties the list.",
    )
