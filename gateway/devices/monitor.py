"""Inactivity: a device not heard from for ``DEVICE_OFFLINE_AFTER_S`` gets a ``device_offline`` event.

The rule is one clock: "not heard from" counts from the last message of any kind, a will
included (the ingest sets ``last_seen`` for it too). So a will shows the device offline at once
(``presence``), and the event follows after the same grace period as silence: a device that
restarts or reconnects within it raises nothing. The event is raised once and ends when the device
is heard from again (any message after the one it was raised on: after a will, a new birth or data,
which proves the device is back even when its birth could not be accepted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from citywatch.protocol.messages import DeviceOfflineDetails, EventType, Severity
from gateway.db import utcnow
from gateway.devices import service as devices_service
from gateway.devices.models import Device
from gateway.events import service as events_service
from gateway.events.models import Event

log = logging.getLogger("gateway.devices")

OFFLINE_SEVERITY = Severity.WARNING


@dataclass(frozen=True, slots=True)
class PresenceOptions:
    """``clock`` is injectable so tests can move time on; ``check_every_s`` None = a tenth of the timeout."""

    check_every_s: float | None = None
    clock: Callable[[], datetime] = utcnow


@dataclass(slots=True)
class PresenceCheck:
    raised: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)


class PresenceMonitor:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        read_session_factory: sessionmaker[Session],
        offline_after: timedelta,
        options: PresenceOptions | None = None,
        on_outbox_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = session_factory
        self._read_sessions = read_session_factory
        self._offline_after = offline_after
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
        to_raise = silent - open_events.keys()
        to_check = set(open_events)  # heard from again, even if silent again since: end, then raise anew
        if not to_raise and not to_check:
            return result
        with self._sessions() as session, session.begin():
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
        if result.raised or result.ended:
            self._on_outbox_changed()
        return result

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
