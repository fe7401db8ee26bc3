"""Migration 0006 on a database with events: each gets its own uid, the open-event index keeps its WHERE,
devices gain an optional position; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from gateway.db import make_engine, migrate
from tests.gateway.test_lifecycle_migration import _upgrade
from tests.gateway.test_migrations import schema_drift
from tests.gateway.test_postgres import postgres_url  # noqa: F401 (the fixture, for the PostgreSQL run)

AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC).replace(tzinfo=None)
INSERT_EVENT = (
    "INSERT INTO events (id, device_id, site, type, severity, confidence, state, details, device_event_id, "
    "last_seq, revisions, started_at, last_device_ts, created_at, updated_at, escalations_sent) VALUES "
    "(:id, 'culvert-1', 'riverside', 'water_level', 'warning', 1.0, :state, '{}', :device_event_id, 0, 1, "
    ":at, :at, :at, :at, 0)"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'gw.db'}"
    engine = make_engine(url)
    request.addfinalizer(engine.dispose)
    return engine


def test_events_get_distinct_uids_and_the_open_index_survives(engine: Engine) -> None:
    _upgrade(engine, "0005_redact_push_notes")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO devices (id, site, device_type, description, created_at, online, session) "
                "VALUES ('culvert-1', 'riverside', 'culvert', '', :at, false, 0)"
            ),
            {"at": AT},
        )
        for number, state in enumerate(("closed", "closed", "dispatched"), start=1):
            connection.execute(
                text(INSERT_EVENT),
                {"id": number, "state": state, "device_event_id": f"evt-{number}", "at": AT},
            )
    migrate(engine)
    assert schema_drift(engine) == []
    with engine.connect() as connection:
        uids = connection.execute(text("SELECT uid FROM events ORDER BY id")).scalars().all()
        position = connection.execute(text("SELECT latitude, longitude FROM devices")).one()
    assert len(set(uids)) == 3 and all(len(uid) == 32 for uid in uids)
    assert tuple(position) == (None, None)
    # Still one open event per (device, type), and only open ones count.
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text(INSERT_EVENT),
            {"id": 4, "state": "new", "device_event_id": "evt-4", "at": AT},
        )
    with engine.begin() as connection, pytest.raises(IntegrityError):
        connection.execute(
            text(
                "INSERT INTO events (id, uid, device_id, site, type, severity, confidence, state, details, "
                "device_event_id, last_seq, revisions, started_at, last_device_ts, created_at, updated_at, "
                "escalations_sent) VALUES (5, :uid, 'culvert-1', 'riverside', 'sensor_fault', 'warning', 1.0, "
                "'closed', '{}', 'evt-5', 0, 1, :at, :at, :at, :at, 0)"
            ),
            {"uid": uids[0], "at": AT},  # a uid is never shared
        )
