"""Device registry operations: plain functions taking a session and keyword arguments."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from citywatch.protocol.messages import DeviceType, StateMessage
from gateway.db import utcnow
from gateway.devices.models import Device, DeviceCreate, DeviceRead, DeviceUpdate, Presence

log = logging.getLogger(__name__)


class DeviceExists(ValueError):
    """Provisioning a device id that is already registered."""


def create(*, session: Session, device_in: DeviceCreate) -> Device:
    if session.get(Device, device_in.id) is not None:
        raise DeviceExists(f"device {device_in.id!r} is already registered")
    device = Device(**device_in.model_dump(mode="json"))
    session.add(device)
    session.flush()
    return device


def provision(
    *,
    session: Session,
    device_id: str,
    site: str,
    device_type: DeviceType | str,
    grid: str | None = None,
    town: str | None = None,
    description: str = "",
) -> Device:
    """Register a device unless it already is (``create`` that scripts and tests can repeat)."""
    existing = session.get(Device, device_id)
    if existing is not None:
        return existing
    device_in = DeviceCreate(
        id=device_id,
        site=site,
        device_type=DeviceType(device_type),
        grid=grid,
        town=town,
        description=description,
    )
    return create(session=session, device_in=device_in)


class DeviceNotFound(LookupError):
    pass


def update_area(*, session: Session, device_id: str, changes: DeviceUpdate) -> Device:
    """Apply the fields given in ``changes`` (area and description)."""
    device = session.get(Device, device_id)
    if device is None:
        raise DeviceNotFound(f"device {device_id!r} is not provisioned")
    for name, value in changes.model_dump(exclude_unset=True).items():
        if value is None and name in ("site", "description"):
            raise ValueError(f"{name} cannot be emptied; leave it out to keep {getattr(device, name)!r}")
        setattr(device, name, value)
    session.flush()
    return device


def get(*, session: Session, device_id: str) -> Device | None:
    return session.get(Device, device_id)


def list_all(*, session: Session, site: str | None = None) -> list[Device]:
    query = select(Device).order_by(Device.site, Device.id)
    if site is not None:
        query = query.where(Device.site == site)
    return list(session.scalars(query))


def presence(device: Device, *, silent_after: timedelta, now: datetime | None = None) -> Presence:
    if device.session == 0 and device.last_seen is None:
        return "never_seen"
    if not device.online:
        return "offline"
    now = now or utcnow()
    if device.last_seen is not None and now - device.last_seen > silent_after:
        return "silent"
    return "online"


def to_read(device: Device, *, silent_after: timedelta) -> DeviceRead:
    return DeviceRead.model_validate(
        {**{c: getattr(device, c) for c in DeviceRead.model_fields if c != "presence"}}
        | {"presence": presence(device, silent_after=silent_after)}
    )


def apply_state(*, session: Session, device: Device, state: StateMessage) -> bool:
    """Birth/will. A will (or replayed birth) from an older session than the current one is stale."""
    if state.session < device.session:
        log.info(
            "ignored stale %s of %s (session %d < %d)", state.status, device.id, state.session, device.session
        )
        return False
    online = state.status == "online"
    if state.session == device.session and online == device.online:
        return False  # a retained birth seen again
    device.session = state.session
    device.online = online
    device.presence_changed_at = state.ts
    device.firmware_version = state.firmware_version
    device.config_version = state.config_version
    log.info(
        "device %s %s (session %d, firmware %s)",
        device.id,
        state.status,
        state.session,
        state.firmware_version,
    )
    return True


def record_last_seen(*, session: Session, last_seen: Mapping[str, datetime]) -> None:
    """Advance last_seen (never backwards: replays carry old device times)."""
    if not last_seen:
        return
    table = cast(Table, Device.__table__)
    # One Core executemany per batch: per-device ORM updates cost a fifth of the ingest CPU.
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("device"),
            table.c.last_seen.is_(None) | (table.c.last_seen < bindparam("seen")),
        )
        .values(last_seen=bindparam("seen"))
    )
    session.connection().execute(
        statement, [{"device": device_id, "seen": seen} for device_id, seen in last_seen.items()]
    )


@dataclass(frozen=True, slots=True)
class KnownDevice:
    id: str
    site: str


class DeviceDirectory:
    """Which devices exist and at which site, cached for the ingest hot path.

    Only positive answers are cached (devices are never deleted), so a device provisioned by
    another process is found at its first message. A device moved to another site through this
    process's API is forgotten at once; one moved by another process is seen after a restart.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._known: dict[str, KnownDevice] = {}
        self._lock = threading.Lock()

    def lookup(self, device_id: str) -> KnownDevice | None:
        known = self._known.get(device_id)
        if known is not None:
            return known
        with self._factory() as session:
            row = session.execute(select(Device.id, Device.site).where(Device.id == device_id)).first()
        if row is None:
            return None
        known = KnownDevice(id=row.id, site=row.site)
        with self._lock:
            self._known[device_id] = known
        return known

    def forget(self, device_id: str) -> None:
        with self._lock:
            self._known.pop(device_id, None)
