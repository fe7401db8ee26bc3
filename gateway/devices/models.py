"""Device registry rows and their API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from citywatch.protocol.messages import DeviceType
from citywatch.protocol.topics import ID_PATTERN
from gateway.db import Base, UtcDateTime, utcnow

Presence = Literal["online", "offline", "silent", "never_seen"]


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    device_type: Mapped[str] = mapped_column(String(32))
    grid: Mapped[str | None] = mapped_column(String(64), default=None)
    town: Mapped[str | None] = mapped_column(String(64), default=None)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    session: Mapped[int] = mapped_column(Integer, default=0)
    presence_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    firmware_version: Mapped[str | None] = mapped_column(String(64), default=None)
    config_version: Mapped[str | None] = mapped_column(String(64), default=None)


class DeviceCreate(BaseModel):
    """What an installer provides when provisioning a device."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN, title="Device id", description="As in the device's MQTT topics.")
    site: str = Field(pattern=ID_PATTERN, title="Site", description="The topic's site segment.")
    device_type: DeviceType = Field(title="Device type")
    grid: str | None = Field(default=None, max_length=64, title="Grid", description="For routing.")
    town: str | None = Field(default=None, max_length=64, title="Town", description="For routing.")
    description: str = Field(default="", max_length=500, title="Where it is, for people")


class DeviceUpdate(BaseModel):
    """Where a device is, as an installer corrects it; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    site: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        title="Site",
        description="The topic's site segment: the device must publish under the new site from now on.",
    )
    grid: str | None = Field(default=None, max_length=64, title="Grid", description="For routing.")
    town: str | None = Field(default=None, max_length=64, title="Town", description="For routing.")
    description: str | None = Field(default=None, max_length=500, title="Where it is, for people")


class DeviceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    site: str
    device_type: str
    grid: str | None
    town: str | None
    description: str
    created_at: datetime
    online: bool = Field(description="Presence from the last accepted birth/will.")
    presence: Presence = Field(description="'silent' = online by its birth but not heard from lately.")
    session: int
    presence_changed_at: datetime | None
    last_seen: datetime | None
    firmware_version: str | None
    config_version: str | None
