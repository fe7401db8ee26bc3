"""The presence monitor's timing and its write transactions, on a real database (no broker needed).

Deadlines: a pass comes at the earliest device's deadline, not on a fixed cadence. Storms: many devices
going silent at once are raised in chunks, each committed (and the dispatch worker woken) before the
next, and exactly once each, also with several gateways' monitors on one PostgreSQL database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import make_engine, make_sessionmaker, migrate, read_sessionmaker, utcnow
from gateway.devices import service as devices_service
from gateway.devices.models import Device
from gateway.devices.monitor import PresenceMonitor, PresenceOptions
from gateway.events.models import Event, EventAudit
from tests.gateway.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.support.polling import wait_until

SITE = "presence-site"


@dataclass
class Db:
    engine: Engine
    sessions: sessionmaker[Session]
    reads: sessionmaker[Session]

    def monitor(self, *, offline_after_s: float, **options: object) -> PresenceMonitor:
        wakes: list[int] = []
        monitor = PresenceMonitor(
            session_factory=self.sessions,
            read_session_factory=self.reads,
            offline_after=timedelta(seconds=offline_after_s),
            options=PresenceOptions(**options),  # type: ignore[arg-type]
            on_outbox_changed=lambda: wakes.append(self.offline_events()),
        )
        monitor.wakes = wakes  # type: ignore[attr-defined]
        return monitor

    def provision(self, count: int) -> list[str]:
        ids = [f"culvert-{i:03d}" for i in range(count)]
        with self.sessions() as session, session.begin():
            for device_id in ids:
                devices_service.provision(
                    session=session, device_id=device_id, site=SITE, device_type="culvert"
                )
        return ids

    def heard(self, device_ids: list[str], at: datetime) -> None:
        """What the ingest does for any message: the device was heard from at ``at``."""
        with self.sessions() as session, session.begin():
            session.execute(
                update(Device).where(Device.id.in_(device_ids)).values(last_seen=at, online=True, session=1)
            )

    def offline_events(self) -> int:
        with self.reads() as session:
            return (
                session.scalar(select(func.count()).select_from(Event).where(Event.type == "device_offline"))
                or 0
            )

    def events_per_device(self) -> dict[str, int]:
        with self.reads() as session:
            rows = session.execute(
                select(Event.device_id, func.count())
                .where(Event.type == "device_offline")
                .group_by(Event.device_id)
            )
            return {device_id: count for device_id, count in rows}


@contextmanager
def _db(url: str) -> Iterator[Db]:
    engine = make_engine(url)
    migrate(engine)
    try:
        yield Db(engine, make_sessionmaker(engine), read_sessionmaker(engine))
    finally:
        engine.dispose()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Db]:
    with _db(f"sqlite:///{tmp_path / 'gateway.db'}") as db:
        yield db


def test_each_device_is_raised_within_a_second_of_its_own_deadline(db: Db) -> None:
    """The longest wait between passes is 30 s: a fixed cadence would be late by up to that."""
    offline_after_s = 1.5
    devices = db.provision(5)
    monitor = db.monitor(offline_after_s=offline_after_s, check_every_s=30.0, start_grace_s=0.0)
    monitor.start()
    try:
        for device_id in devices:  # deadlines spread over two seconds
            db.heard([device_id], utcnow())
            time.sleep(0.4)
        wait_until(lambda: db.offline_events() == len(devices), timeout_s=10, what="all raised")
    finally:
        monitor.stop()
    with db.reads() as session:
        events = session.execute(
            select(Event.device_id, Event.started_at, Event.details).where(Event.type == "device_offline")
        ).all()
    lateness = {
        device_id: (
            started_at - datetime.fromisoformat(details["last_seen"]) - timedelta(seconds=offline_after_s)
        ).total_seconds()
        for device_id, started_at, details in events
    }
    assert sorted(lateness) == devices
    assert all(0.0 <= late < 1.0 for late in lateness.values()), lateness
    assert monitor.checks < 40, "a pass per deadline (and the minimum interval), not a busy loop"


@pytest.mark.slow  # 200 events raised: a few seconds
def test_a_storm_is_raised_in_chunks_each_visible_at_once_and_once_only(db: Db) -> None:
    devices = db.provision(200)
    monitor = db.monitor(offline_after_s=60.0, chunk_size=50)
    db.heard(devices, utcnow() - timedelta(seconds=61))  # all silent past the window at once

    result = monitor.check()
    assert sorted(result.raised) == devices
    assert result.transactions == 4 and not result.skipped
    # Woken after each commit, with that chunk's events committed: the dispatch worker can send the
    # first 50 while the rest are raised.
    assert monitor.wakes == [50, 100, 150, 200]  # type: ignore[attr-defined]
    assert 0 < result.longest_write_s <= monitor.longest_write_s

    again = monitor.check()  # still silent: nothing more
    assert (again.raised, again.transactions) == ([], 0)
    assert db.events_per_device() == dict.fromkeys(devices, 1)

    # Those heard from again are ended in chunks too: 20 back, in chunks of 8.
    small_chunks = db.monitor(offline_after_s=60.0, chunk_size=8)
    db.heard(devices[:20], utcnow())
    back = small_chunks.check()
    assert sorted(back.ended) == devices[:20] and back.raised == []
    assert back.transactions == 3
    assert small_chunks.wakes == [200, 200, 200]  # type: ignore[attr-defined]  # (events, ended or not)
    with db.reads() as session:
        still_open = session.scalars(select(Event.device_id).where(Event.cleared_at.is_(None))).all()
    assert sorted(still_open) == devices[20:]


def test_the_next_pass_is_due_at_the_earliest_deadline_within_bounds(db: Db) -> None:
    devices = db.provision(3)
    monitor = db.monitor(offline_after_s=20.0, check_every_s=10.0, min_interval_s=0.5)
    assert monitor.next_wait_s() == 10.0  # nobody seen yet: the longest wait
    now = utcnow()
    db.heard(devices[:1], now - timedelta(seconds=16))
    db.heard(devices[1:], now)
    assert 3.0 < monitor.next_wait_s() <= 4.1
    db.heard(devices[:1], now - timedelta(seconds=25))  # overdue (a pass was skipped): soon, not at once
    assert monitor.next_wait_s() == 0.5
    monitor.check()  # raised: its deadline no longer counts, but an open event is checked for its return
    assert monitor.next_wait_s() == 1.0


@pytest.mark.slow
def test_several_gateways_raise_a_storm_exactly_once_on_postgres(postgres_url: str) -> None:  # noqa: F811
    with _db(postgres_url) as db:
        devices = db.provision(200)
        db.heard(devices, utcnow() - timedelta(seconds=61))
        monitors = [db.monitor(offline_after_s=60.0, chunk_size=20) for _ in range(3)]
        raised: list[str] = []
        barrier = threading.Barrier(len(monitors))

        def run(monitor: PresenceMonitor) -> None:
            barrier.wait()
            for _ in range(5):  # skipped while another holds the lock: the next pass does the rest
                raised.extend(monitor.check().raised)
                time.sleep(0.05)

        threads = [threading.Thread(target=run, args=(m,)) for m in monitors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(raised) == devices
        assert db.events_per_device() == dict.fromkeys(devices, 1)


def test_a_chunk_skips_the_raised_folds_a_return_and_opens_the_new(db: Db) -> None:
    """Raised together: a device whose event is still active raises nothing; one back and silent again
    while its work item is open folds into that item (the condition returned); a new one opens its own."""
    still_off, returned, new = db.provision(3)
    monitor = db.monitor(offline_after_s=60.0)
    long_ago = utcnow() - timedelta(seconds=61)
    db.heard([still_off, returned], long_ago)
    assert sorted(monitor.check().raised) == [still_off, returned]
    db.heard([returned], utcnow())
    assert monitor.check().ended == [returned]

    db.heard([returned, new], utcnow() - timedelta(seconds=61))
    again = monitor.check()

    assert sorted(again.raised) == sorted([returned, new])
    assert db.events_per_device() == {still_off: 1, returned: 1, new: 1}
    with db.reads() as session:
        events = {event.device_id: event for event in session.scalars(select(Event))}
        audit = {
            device_id: [
                entry.action
                for entry in session.scalars(
                    select(EventAudit).where(EventAudit.event_id == event.id).order_by(EventAudit.id)
                )
            ]
            for device_id, event in events.items()
        }
    assert all(event.cleared_at is None for event in events.values())
    assert audit[returned][-1] == "condition_returned"
    assert audit[new][0] == "created" and audit[new] == audit[still_off]
