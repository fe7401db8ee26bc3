"""Inactivity: a device not heard from for ``DEVICE_OFFLINE_AFTER_S`` gets a ``device_offline`` event.

The rule is one clock: "not heard from" counts from the last message of any kind, a will
included (the ingest sets ``last_seen`` for it too). So a will shows the device offline at once
(``presence``), and the event follows after the same grace period as silence: a device that
restarts or reconnects within it raises nothing. The event is raised once and ends when the device
is heard from again (any message after the one it was raised on: after a will, a new birth or data,
which proves the device is back even when its birth could not be accepted).

Config drift, in the same pass: a device whose reported config version (birth, config ack) still
differs from the one last pushed to it ``CONFIG_DRIFT_AFTER_S`` after the push gets a ``config_drift``
event (it refused the config, never got it, or fell back to its last good one); it ends when the device
reports the desired version.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from citywatch.protocol.messages import ConfigDriftDetails, DeviceOfflineDetails, EventType, Severity
from gateway.db import singleton_lock, utcnow
from gateway.devices import service as devices_service
from gateway.devices.models import Device
from gateway.events import service as events_service
from gateway.events.models import Event

log = logging.getLogger("gateway.devices")

OFFLINE_SEVERITY = Severity.WARNING
DRIFT_SEVERITY = Severity.NOTICE


@dataclass(frozen=True, slots=True)
class PresenceOptions:
    """``clock`` is injectable so tests can move time on; ``check_every_s`` None = a tenth of the timeout."""

    check_every_s: float | None = None
    clock: Callable[[], datetime] = utcnow


@dataclass(slots=True)
class PresenceCheck:
    raised: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    drift_raised: list[str] = field(default_factory=list)
    drift_ended: list[str] = field(default_factory=list)


class PresenceMonitor:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        read_session_factory: sessionmaker[Session],
        offline_after: timedelta,
        config_drift_after: timedelta | None = None,
        options: PresenceOptions | None = None,
        on_outbox_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = session_factory
        self._read_sessions = read_session_factory
        self._offline_after = offline_after
        self._drift_after = config_drift_after
        self._options = options or PresenceOptions()
        self._on_outbox_changed = on_outbox_changed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checks = 0
        self.last_error: str | None = None

    @property
    def check_every_s(self) -> float:
        if self._options.check_every_s is not None:
            return self._options.check_every_s
        return max(0.5, min(self._offline_after.total_seconds() / 10, 30.0))

    def check(self) -> PresenceCheck:
        """One pass: raise for newly silent devices, end for devices heard from again."""
        now = self._options.clock()
        silent_since = now - self._offline_after
        # Read first: the write transaction (SQLite's write lock) is taken only when there is work.
        with self._read_sessions() as session:
            silent = set(
                session.scalars(
                    select(Device.id).where(Device.last_seen.is_not(None), Device.last_seen < silent_since)
                )
            )
            open_events = {
                row.device_id: row
                for row in session.execute(
                    select(Event.device_id, Event.details).where(
                        Event.type == EventType.DEVICE_OFFLINE, Event.cleared_at.is_(None)
                    )
                )
            }
        result = PresenceCheck()
        if self._drift_after is not None:
            self._check_drift(now, result)
        to_raise = silent - open_events.keys()
        to_check = set(open_events)  # heard from again, even if silent again since: end, then raise anew
        if not to_raise and not to_check:
            if result.drift_raised or result.drift_ended:
                self._on_outbox_changed()
            return result
        with self._sessions() as session, session.begin():
            # Every gateway runs this monitor; the writes of a pass are one at a time cluster-wide (see
            # EscalationLoop.run_once for why a transaction's advisory lock). Each device is read again
            # under the lock, and raise/end_gateway_event look for the open event then, so a pass that
            # waited for another's commit raises nothing twice.
            if not singleton_lock(session, "presence"):
                return result
            for device_id in sorted(to_raise):
                device = session.get(Device, device_id)
                if device is None or device.last_seen is None or device.last_seen >= silent_since:
                    continue  # heard from since the read above
                event = events_service.raise_gateway_event(
                    session=session,
                    device=device,
                    event_type=EventType.DEVICE_OFFLINE,
                    severity=OFFLINE_SEVERITY,
                    details=DeviceOfflineDetails(
                        last_seen=device.last_seen.isoformat(),
                        offline_after_s=self._offline_after.total_seconds(),
                        by_will=not devices_service.is_live(device),
                    ).model_dump(),
                    at=now,
                )
                if event is not None:
                    result.raised.append(device_id)
                    log.warning(
                        "device %s not heard from since %s: device_offline event %d",
                        device_id,
                        device.last_seen.isoformat(timespec="seconds"),
                        event.id,
                    )
            for device_id in sorted(to_check):
                device = session.get(Device, device_id)
                if device is None or not _heard_again(device, open_events[device_id].details):
                    continue
                ended = events_service.end_gateway_event(
                    session=session,
                    device=device,
                    event_type=EventType.DEVICE_OFFLINE,
                    note="device heard from again",
                    at=now,
                )
                if ended is not None:
                    result.ended.append(device_id)
                    log.info("device %s is back: device_offline event %d ended", device_id, ended.id)
        if result.raised or result.ended or result.drift_raised or result.drift_ended:
            self._on_outbox_changed()
        return result

    def _check_drift(self, now: datetime, result: PresenceCheck) -> None:
        assert self._drift_after is not None
        pushed_before = now - self._drift_after
        with self._read_sessions() as session:
            drifting = {
                row.id
                for row in session.execute(
                    select(Device.id, Device.config_version, Device.desired_config_version).where(
                        Device.desired_config_version.is_not(None), Device.desired_config_at < pushed_before
                    )
                )
                if row.config_version != row.desired_config_version
            }
            open_drift = {
                row.id: row.config_version == row.desired_config_version
                for row in session.execute(
                    select(Device.id, Device.config_version, Device.desired_config_version)
                    .join(Event, Event.device_id == Device.id)
                    .where(Event.type == EventType.CONFIG_DRIFT, Event.cleared_at.is_(None))
                )
            }
        to_raise = drifting - open_drift.keys()
        to_end = {device_id for device_id, in_sync in open_drift.items() if in_sync}
        if not to_raise and not to_end:
            return
        with self._sessions() as session, session.begin():
            if not singleton_lock(session, "presence"):  # as in check()
                return
            for device_id in sorted(to_raise):
                device = session.get(Device, device_id)
                if (
                    device is None
                    or device.desired_config_version is None
                    or device.desired_config_at is None
                ):
                    continue
                if device.config_version == device.desired_config_version:
                    continue  # reported since the read above
                event = events_service.raise_gateway_event(
                    session=session,
                    device=device,
                    event_type=EventType.CONFIG_DRIFT,
                    severity=DRIFT_SEVERITY,
                    details=ConfigDriftDetails(
                        desired_version=device.desired_config_version,
                        reported_version=device.config_version,
                        desired_since=device.desired_config_at.isoformat(),
                        drift_after_s=self._drift_after.total_seconds(),
                    ).model_dump(),
                    at=now,
                )
                if event is not None:
                    result.drift_raised.append(device_id)
                    log.warning(
                        "device %s runs config %s, not %s pushed at %s: config_drift event %d",
                        device_id,
                        device.config_version,
                        device.desired_config_version,
                        device.desired_config_at.isoformat(timespec="seconds"),
                        event.id,
                    )
            for device_id in sorted(to_end):
                device = session.get(Device, device_id)
                if device is None or device.config_version != device.desired_config_version:
                    continue
                ended = events_service.end_gateway_event(
                    session=session,
                    device=device,
                    event_type=EventType.CONFIG_DRIFT,
                    note=f"device runs the desired config {device.desired_config_version} now",
                    at=now,
                )
                if ended is not None:
                    result.drift_ended.append(device_id)
                    log.info(
                        "device %s runs the desired config: config_drift event %d ended", device_id, ended.id
                    )

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gateway-presence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.check_every_s):
            try:
                self.check()
                self.last_error = None
            except Exception as exc:  # the database may be away for a while; the next pass retries
                self.last_error = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.warning("presence check failed (retrying): %s", self.last_error)
            self.checks += 1


def _heard_again(device: Device, details: dict[str, object]) -> bool:
    """A message newer than the one the event was raised on; a will alone does not bring a device back."""
    reference = details.get("last_seen")
    if device.last_seen is None or not isinstance(reference, str):
        return False
    if device.last_seen <= datetime.fromisoformat(reference):
        return False
    return devices_service.is_live(device)  # after a will, a birth or any data
