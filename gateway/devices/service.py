"""Device registry operations: plain functions taking a session and keyword arguments."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast, get_args

from sqlalchemy import Table, and_, bindparam, case, func, not_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from citywatch.protocol.messages import DeviceType, StateMessage
from gateway.db import utcnow
from gateway.devices.models import (
    Device,
    DeviceAudit,
    DeviceCreate,
    DeviceRead,
    DeviceUpdate,
    Presence,
    check_coordinates,
)

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
    latitude: float | None = None,
    longitude: float | None = None,
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
        latitude=latitude,
        longitude=longitude,
        description=description,
    )
    return create(session=session, device_in=device_in)


class DeviceNotFound(LookupError):
    pass


def update_area(*, session: Session, device_id: str, changes: DeviceUpdate) -> Device:
    """Apply the fields given in ``changes`` (area, position and description)."""
    device = session.get(Device, device_id)
    if device is None:
        raise DeviceNotFound(f"device {device_id!r} is not provisioned")
    given = changes.model_dump(exclude_unset=True)
    for name, value in given.items():
        if value is None and name in ("site", "description"):
            raise ValueError(f"{name} cannot be emptied; leave it out to keep {getattr(device, name)!r}")
    check_coordinates(
        given.get("latitude", device.latitude), given.get("longitude", device.longitude)
    )  # before any change: a refused update leaves the row as it was
    for name, value in given.items():
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


def heard_since_offline(device: Device) -> bool:
    """Data traffic proves liveness: a message after the will the device went offline by (a unit that came
    back with a birth the gateway could not accept, or a device that sends no births at all)."""
    if device.last_seen is None:
        return False
    return device.presence_changed_at is None or device.last_seen > device.presence_changed_at


def is_live(device: Device) -> bool:
    """Online by its last birth, or heard from since its will."""
    return device.online or heard_since_offline(device)


def presence(device: Device, *, silent_after: timedelta, now: datetime | None = None) -> Presence:
    if device.session == 0 and device.last_seen is None:
        return "never_seen"
    if not is_live(device):
        return "offline"
    now = now or utcnow()
    if device.last_seen is not None and now - device.last_seen > silent_after:
        return "silent"
    return "online"


def presence_counts(*, session: Session, silent_after: timedelta, now: datetime) -> dict[str, int]:
    """Devices per presence, counted by the database: ``presence`` as one SQL CASE (loading 10,000 rows
    to call it took over a second; tests hold the two to the same answers). For /health and /metrics."""
    heard_since_offline = and_(
        Device.last_seen.is_not(None),
        or_(Device.presence_changed_at.is_(None), Device.last_seen > Device.presence_changed_at),
    )
    presence = case(
        (and_(Device.session == 0, Device.last_seen.is_(None)), "never_seen"),
        (not_(or_(Device.online.is_(True), heard_since_offline)), "offline"),
        (and_(Device.last_seen.is_not(None), Device.last_seen < now - silent_after), "silent"),
        else_="online",
    )
    counts = dict.fromkeys(get_args(Presence), 0)
    for state, count in session.execute(select(presence, func.count()).group_by(presence)):
        counts[state] = count
    return counts


def to_read(device: Device, *, silent_after: timedelta) -> DeviceRead:
    computed = {"presence", "config_in_sync"}
    return DeviceRead.model_validate(
        {**{c: getattr(device, c) for c in DeviceRead.model_fields if c not in computed}}
        | {"presence": presence(device, silent_after=silent_after), "config_in_sync": config_in_sync(device)}
    )


def config_in_sync(device: Device) -> bool | None:
    if device.desired_config_version is None:
        return None
    return device.config_version == device.desired_config_version


def report_config_version(*, device: Device, version: str, at: datetime) -> None:
    """What the device says it runs now (a birth, a config ack)."""
    if device.config_version != version:
        device.config_version = version
        device.config_reported_at = at


def set_credential(
    *, session: Session, device_id: str, username: str, password_hash: str, actor: str, role: str
) -> Device:
    """The device's broker account (from ``citywatch config flash``); the broker-acl files include it."""
    device = session.get(Device, device_id)
    if device is None:
        raise DeviceNotFound(f"device {device_id!r} is not provisioned")
    holder = session.scalar(select(Device.id).where(Device.mqtt_username == username, Device.id != device_id))
    if holder is not None:
        raise DeviceExists(f"MQTT user {username!r} belongs to device {holder!r}")
    now = utcnow()
    device.mqtt_username, device.mqtt_password_hash, device.mqtt_credential_at = username, password_hash, now
    audit(
        session=session,
        device_id=device_id,
        action="mqtt_credential",
        actor=actor,
        role=role,
        at=now,
        note=f"MQTT user {username} set (new password)",
    )
    session.flush()
    return device


def revoke_credential(*, session: Session, device_id: str, actor: str, role: str) -> Device:
    """No broker account any more: after the next broker-acl and broker reload, it is locked out."""
    device = session.get(Device, device_id)
    if device is None:
        raise DeviceNotFound(f"device {device_id!r} is not provisioned")
    now = utcnow()
    note = f"MQTT user {device.mqtt_username} revoked" if device.mqtt_username else "no MQTT user to revoke"
    device.mqtt_username, device.mqtt_password_hash, device.mqtt_credential_at = None, None, now
    audit(
        session=session,
        device_id=device_id,
        action="mqtt_credential",
        actor=actor,
        role=role,
        at=now,
        note=note,
    )
    session.flush()
    return device


def with_credentials(*, session: Session) -> list[Device]:
    query = select(Device).where(Device.mqtt_username.is_not(None)).order_by(Device.mqtt_username)
    return list(session.scalars(query))


def apply_state(*, session: Session, device: Device, state: StateMessage, at: datetime) -> bool:
    """Birth/will, applied at ``at``: the time the gateway learns of it (a will's ``ts`` is from the connect).

    A state message from an older connection than the current one is stale: a lower session number,
    or a will stamped before the current session began (a will left from before a reset). A birth with
    a lower number is a reset instead (factory reset, replaced unit: the counter starts again) when the
    device is offline or the birth is stamped after the current session began: accepted, logged, audited.
    """
    online = state.status == "online"
    lower = state.session < device.session
    began = device.session_started_at
    if online:
        reset = lower and (not device.online or (began is not None and state.ts > began))
        stale = lower and not reset
    else:
        reset = False
        stale = lower or (state.session != device.session and began is not None and state.ts < began)
    if stale:
        log.info(
            "ignored stale %s of %s (session %d, current %d)",
            state.status,
            device.id,
            state.session,
            device.session,
        )
        return False
    if state.session == device.session and online == device.online:
        return False  # a retained birth seen again
    if reset:
        note = f"session went back from {device.session} to {state.session}: taken as a reset"
        log.warning("device %s: %s (factory reset or replaced unit)", device.id, note)
        audit(session=session, device_id=device.id, action="session_reset", actor=device.id, at=at, note=note)
    if online:
        _check_type(session=session, device=device, reported=state.device_type.value, at=at)
    if online or state.session != device.session:
        device.session_started_at = state.ts  # both are stamped when the connection is made
    device.session = state.session
    device.online = online
    device.presence_changed_at = at
    device.firmware_version = state.firmware_version
    report_config_version(device=device, version=state.config_version, at=at)
    log.info(
        "device %s %s (session %d, firmware %s)",
        device.id,
        state.status,
        state.session,
        state.firmware_version,
    )
    return True


def _check_type(*, session: Session, device: Device, reported: str, at: datetime) -> None:
    """A birth saying another device_type than the registry: accepted (presence is true either way), but
    flagged in the device view, the log and the audit, once per change of what it reports."""
    if reported != device.device_type and reported != device.reported_device_type:
        note = f"birth says device_type {reported!r}, the registry says {device.device_type!r}"
        log.warning("device %s: %s: correct the registry or the unit", device.id, note)
        audit(session=session, device_id=device.id, action="type_mismatch", actor=device.id, at=at, note=note)
    device.reported_device_type = reported


def audit(
    *,
    session: Session,
    device_id: str,
    action: str,
    actor: str,
    at: datetime,
    note: str,
    role: str = "device",
    cmd_id: str | None = None,
) -> None:
    """Append one line to the device's audit trail."""
    session.add(
        DeviceAudit(
            device_id=device_id, at=at, actor=actor, role=role, action=action, cmd_id=cmd_id, note=note
        )
    )


def audit_trail(*, session: Session, device_id: str, limit: int = 500) -> list[DeviceAudit]:
    """The latest ``limit`` entries, oldest first."""
    newest = session.scalars(
        select(DeviceAudit)
        .where(DeviceAudit.device_id == device_id)
        .order_by(DeviceAudit.id.desc())
        .limit(limit)
    )
    return list(reversed(list(newest)))


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
        # In id order: gateways of a share group updating the same devices lock them in one order,
        # rather than deadlocking (which PostgreSQL would break by failing one batch, then retried).
        statement,
        [{"device": device_id, "seen": seen} for device_id, seen in sorted(last_seen.items())],
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
