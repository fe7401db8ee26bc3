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

Timing: the next pass is due at the earliest deadline (``last_seen + offline_after`` of the devices with no
open event: one aggregate query), not on a fixed cadence, so a device is raised within about a second of
its own deadline; while any device_offline is open, passes come every ``returns_every_s`` to end them.
Work is done in chunks of ``chunk_size`` devices, one short write transaction each (SQLite's write
lock, PostgreSQL's "presence" advisory lock), with the dispatch worker woken after every commit: when a
thousand devices drop at once, the first events go out at once and the ingest's and the API's writes
interleave. A chunk's events are raised, or ended, together (``events.service.raise_gateway_events``,
``clear_conditions``: one look-up, their rows written together, a few milliseconds an event).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
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
    """``clock`` is injectable so tests can move time on. ``check_every_s``: the longest wait between passes
    (None = a tenth of the timeout, at most 30 s); a pass comes sooner when a deadline falls due, but not
    within ``min_interval_s`` of the last one. ``chunk_size``: devices per write transaction at most.
    ``start_grace_s``: the first pass after a start (None = ``check_every_s``), time for the ingest to
    catch up on what the broker queued while the gateway was down."""

    check_every_s: float | None = None
    clock: Callable[[], datetime] = utcnow
    min_interval_s: float = 0.5
    returns_every_s: float = 1.0
    chunk_size: int = 50
    start_grace_s: float | None = None


@dataclass(slots=True)
class PresenceCheck:
    raised: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    drift_raised: list[str] = field(default_factory=list)
    drift_ended: list[str] = field(default_factory=list)
    transactions: int = 0
    longest_write_s: float = 0.0
    skipped: bool = False  # another gateway held the lock: the rest is its work, or the next pass's


# The work on a chunk of devices in a write transaction: (session, device ids, now, result) -> changed
# anything.
_ChunkWork = Callable[[Session, list[str], datetime, PresenceCheck], bool]


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
        self.longest_write_s = 0.0  # the longest write transaction of any pass (for the bench and tests)

    @property
    def check_every_s(self) -> float:
        if self._options.check_every_s is not None:
            return self._options.check_every_s
        return max(0.5, min(self._offline_after.total_seconds() / 10, 30.0))

    @property
    def min_interval_s(self) -> float:
        return min(self._options.min_interval_s, self.check_every_s)

    def next_wait_s(self) -> float:
        """Seconds until the next pass: the earliest deadline of a device with no open device_offline
        (plus a hair, the comparison is strict), sooner while events wait to be ended; bounded by
        ``min_interval_s`` and ``check_every_s``."""
        open_offline = select(Event.device_id).where(
            Event.type == EventType.DEVICE_OFFLINE, Event.cleared_at.is_(None)
        )
        with self._read_sessions() as session:
            earliest = session.scalar(
                select(func.min(Device.last_seen)).where(
                    Device.last_seen.is_not(None), Device.id.not_in(open_offline)
                )
            )
            any_open = session.scalar(select(open_offline.exists())) or False
        # A device first heard after this read is due a window from now at the earliest.
        wait = min(self.check_every_s, self._offline_after.total_seconds())
        if any_open:
            wait = min(wait, self._options.returns_every_s)
        if earliest is not None:
            due_in = (earliest + self._offline_after - self._options.clock()).total_seconds() + 0.01
            wait = min(wait, due_in)
        return max(self.min_interval_s, wait)

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
            # open device_offline -> heard from again since it was raised (read with its device)
            open_events = {
                device_id: _heard_again(device, details)
                for device_id, details, device in session.execute(
                    select(Event.device_id, Event.details, Device)
                    .join(Device, Device.id == Event.device_id)
                    .where(Event.type == EventType.DEVICE_OFFLINE, Event.cleared_at.is_(None))
                )
            }
        result = PresenceCheck()
        if self._drift_after is not None:
            self._check_drift(now, result)
        to_raise = sorted(silent - open_events.keys())
        # Heard from again (even if silent again since: end, then raise anew). Decided on the read, so a
        # pass with nothing to end takes no write lock; each is read again under the lock.
        to_end = sorted(device_id for device_id, back in open_events.items() if back)
        if self._write_all(result, self._raise_chunk, to_raise):
            self._write_all(result, self._end_chunk, to_end)
        if result.drift_raised or result.drift_ended:
            self._on_outbox_changed()
        if result.raised or result.ended:
            log.info(
                "presence pass: %d device_offline raised, %d ended in %d transactions, longest %.3f s",
                len(result.raised),
                len(result.ended),
                result.transactions,
                result.longest_write_s,
            )
        return result

    def _write_all(self, result: PresenceCheck, work: _ChunkWork, device_ids: list[str]) -> bool:
        """``work`` on every device, a chunk per transaction; False if another gateway held the lock."""
        size = self._options.chunk_size
        return all(
            self._write(result, work, device_ids[i : i + size]) for i in range(0, len(device_ids), size)
        )

    def _write(self, result: PresenceCheck, work: _ChunkWork, device_ids: list[str]) -> bool:
        """One short write transaction under the cluster-wide lock; the dispatch worker is woken after its
        commit when it changed anything. False if another gateway holds the lock (the rest of this pass is
        skipped)."""
        with self._sessions() as session, session.begin():
            session.connection()  # BEGIN: SQLite's write lock is taken here; timed from then on
            # Every gateway runs this monitor; the writes are one transaction at a time cluster-wide (see
            # EscalationLoop.run_once for why a transaction's advisory lock). Each device is read again
            # under the lock, and raise/end_gateway_event look for the open event then, so a transaction
            # that waited for another's commit raises nothing twice.
            if not singleton_lock(session, "presence"):
                result.skipped = True
                return False
            held_from = time.monotonic()
            now = self._options.clock()  # per transaction: the event says when it was raised
            changed = work(session, device_ids, now, result)
        took = time.monotonic() - held_from  # the lock held, commit included
        result.transactions += 1
        result.longest_write_s = max(result.longest_write_s, took)
        self.longest_write_s = max(self.longest_write_s, took)
        if changed:
            self._on_outbox_changed()
        return True

    def _raise_chunk(
        self, session: Session, device_ids: list[str], now: datetime, result: PresenceCheck
    ) -> bool:
        """device_offline for the chunk's devices still silent, raised together (read again under the lock)."""
        silent = [
            device
            for device in session.scalars(select(Device).where(Device.id.in_(device_ids)).order_by(Device.id))
            if device.last_seen is not None and device.last_seen < now - self._offline_after
        ]
        details = {
            device.id: DeviceOfflineDetails(
                last_seen=device.last_seen.isoformat(),
                offline_after_s=self._offline_after.total_seconds(),
                by_will=not devices_service.is_live(device),
            ).model_dump()
            for device in silent
            if device.last_seen is not None
        }
        raised = events_service.raise_gateway_events(
            session=session,
            devices=silent,
            event_type=EventType.DEVICE_OFFLINE,
            severity=OFFLINE_SEVERITY,
            details=details,
            at=now,
        )
        for event in raised:
            result.raised.append(event.device_id)
            log.warning(
                "device %s not heard from since %s: device_offline event %d",
                event.device_id,
                event.details["last_seen"],
                event.id,
            )
        return bool(raised)

    def _end_chunk(
        self, session: Session, device_ids: list[str], now: datetime, result: PresenceCheck
    ) -> bool:
        """The chunk's device_offline events whose devices were heard from since, ended together (read
        again under the lock)."""
        devices = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(device_ids)))}
        back = [
            event
            for event in session.scalars(
                select(Event)
                .where(
                    Event.device_id.in_(device_ids),
                    Event.type == EventType.DEVICE_OFFLINE,
                    Event.cleared_at.is_(None),
                )
                .order_by(Event.device_id)
            )
            if _heard_again(devices[event.device_id], event.details)
        ]
        events_service.clear_conditions(session=session, events=back, at=now, note="device heard from again")
        for event in back:
            result.ended.append(event.device_id)
            log.info("device %s is back: device_offline event %d ended", event.device_id, event.id)
        return bool(back)

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
        grace = self._options.start_grace_s
        wait = self.check_every_s if grace is None else grace
        while not self._stop.wait(wait):
            wait = self.check_every_s
            try:
                self.check()
                wait = self.next_wait_s()
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
