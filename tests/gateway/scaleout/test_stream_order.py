"""The event stream with several writers: a change committed after a later-numbered one is still sent
(the stream remembers the ids it skipped over and asks for those)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import select

from citywatch.protocol.messages import EventType, Severity
from gateway.db import make_engine, make_sessionmaker, migrate, read_sessionmaker
from gateway.devices import service as devices_service
from gateway.devices.models import DeviceCreate
from gateway.events import service as events_service
from gateway.events.models import EventAudit
from gateway.events.views.stream import _late_changes


def test_late_changes_are_those_below_the_cursor_not_sent_yet(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'citywatch.db'}")
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session, session.begin():
        for device_id in ("culvert-1", "culvert-2", "culvert-3"):
            device = devices_service.create(
                session=session, device_in=DeviceCreate(id=device_id, site="riverside", device_type="culvert")
            )
            events_service.raise_gateway_event(
                session=session, device=device, event_type=EventType.DEVICE_OFFLINE, severity=Severity.WARNING,
                details={"last_seen": "2026-06-01T08:00:00+00:00", "offline_after_s": 600.0, "by_will": False},
            )  # fmt: skip
    with sessions() as session:
        ids = list(session.scalars(select(EventAudit.id).order_by(EventAudit.id)))
    assert len(ids) >= 3
    services = SimpleNamespace(read_session_factory=read_sessionmaker(engine))
    # As if the middle change had committed after the stream had sent the others: it skipped that id.
    late = _late_changes(services, {ids[1]})
    assert [change["audit_id"] for change in late] == [ids[1]]
    # Skipped ids never committed (a rolled-back transaction took them): nothing, asked again later.
    assert _late_changes(services, {ids[-1] + 1, ids[-1] + 2}) == []
    assert [c["audit_id"] for c in _late_changes(services, set(ids[1:]))] == ids[1:]
    engine.dispose()
