"""Migration 0003 on a database with issue 2's events: statuses become lifecycle states, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from gateway.db import MIGRATIONS_DIR, make_engine, migrate
from tests.gateway.test_migrations import schema_drift


def _upgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_issue2_events_become_lifecycle_work_items(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    try:
        _upgrade(engine, "0002")
        at = datetime(2026, 6, 1, 8, 0, tzinfo=UTC).replace(tzinfo=None)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO devices (id, site, device_type, description, created_at, online, session) "
                    "VALUES ('culvert-1', 'riverside', 'culvert', '', :at, 0, 0)"
                ),
                {"at": at},
            )
            for number, status in enumerate(("open", "acknowledged", "cleared"), start=1):
                connection.execute(
                    text(
                        "INSERT INTO events (id, device_id, site, type, severity, confidence, status, details, "
                        "device_event_id, last_seq, revisions, started_at, last_device_ts, cleared_at, "
                        "created_at, updated_at) VALUES (:id, 'culvert-1', 'riverside', :type, 'warning', 1.0, "
                        ":status, '{}', :id, 0, 1, :at, :at, :cleared, :at, :at)"
                    ),
                    {
                        "id": number,
                        "type": ("water_level", "sensor_fault", "water_rising_fast")[number - 1],
                        "status": status,
                        "at": at,
                        "cleared": at if status == "cleared" else None,
                    },
                )
        migrate(engine)
        assert schema_drift(engine) == []
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, state, dispatched_at FROM events ORDER BY id")).all()
        assert [(row.id, row.state) for row in rows] == [(1, "dispatched"), (2, "accepted"), (3, "closed")]
        assert all(row.dispatched_at is not None for row in rows)
    finally:
        engine.dispose()
