"""SQLAlchemy engine, sessions and migrations for devices, events and the dispatch outbox."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event, text
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

READ_ONLY_OPTION = "citywatch_read_only"
MIGRATIONS_DIR = resources.files("gateway").joinpath("migrations")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the gateway stores timezone-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


def make_engine(url: str, *, sqlite_busy_timeout_s: float = 30.0, **kwargs: Any) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE (no lock-upgrade deadlocks)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    write_lock = threading.Lock()
    engine = create_engine(
        url,
        connect_args={
            "check_same_thread": False,
            "timeout": sqlite_busy_timeout_s,
            "factory": _connection_class(write_lock),
        },
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front; readers (see read_sessionmaker) must not, or a read
        # session open while another is used in the same thread would wait for itself.
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
            return
        # This process's writers (ingest, dispatch, ...) queue on a lock of ours, woken the moment the
        # last one commits; SQLite's busy handler polls in growing sleeps (up to 100 ms each) and so
        # left a waiting writer asleep tens of ms after the lock was free. Past the busy timeout (a
        # thread that holds a write transaction opening another), SQLite's own wait decides as before.
        dbapi_connection = connection.connection.dbapi_connection
        dbapi_connection.holds_write_lock = write_lock.acquire(timeout=sqlite_busy_timeout_s)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            dbapi_connection.release_write_lock()
            raise

    return engine


def _connection_class(write_lock: threading.Lock) -> type[sqlite3.Connection]:
    """sqlite3 connections that hand the engine's write lock on once their transaction ends."""

    class _Connection(sqlite3.Connection):
        holds_write_lock = False

        def release_write_lock(self) -> None:
            if self.holds_write_lock:
                self.holds_write_lock = False
                write_lock.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                if not self.in_transaction:  # a failed COMMIT leaves it open, for the rollback
                    self.release_write_lock()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.release_write_lock()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.release_write_lock()

    return _Connection


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that may write (SQLite: BEGIN IMMEDIATE)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def read_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that only read (SQLite: a deferred BEGIN, never waiting for the write lock)."""
    return sessionmaker(bind=engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False)


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision (run at every start; a no-op when current)."""
    alembic_log = logging.getLogger("alembic")
    if alembic_log.level == logging.NOTSET:
        alembic_log.setLevel(logging.WARNING)  # its per-plugin INFO lines drown the gateway's own
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        # Several gateways starting at once: one migrates, the others wait here for its commit and
        # then find the schema current (PostgreSQL runs DDL in the transaction; SQLite is one process).
        singleton_lock(connection, "migrate", wait=True)
        before = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        logging.getLogger("gateway").info("database schema migrated from %s to %s", before or "empty", after)


# Keys of the transaction-scoped advisory locks (second half of the two-int key; the first half is
# the schema, so gateways of different schemas in one database do not hold each other up).
_LOCK_KEYS = {"migrate": 1, "escalation": 2, "presence": 3, "endpoints": 4}


def singleton_lock(connection: Session | Connection, name: str, *, wait: bool = False) -> bool:
    """Hold the cluster-wide lock ``name`` until the current transaction ends; False if another
    gateway holds it (``wait``: block until it is free). PostgreSQL advisory locks: released by
    commit, rollback or a dead connection, so a killed gateway never leaves one behind. SQLite is
    one process, whose write transactions are serialised already: always True."""
    bind = connection.get_bind() if isinstance(connection, Session) else connection
    if bind.dialect.name != "postgresql":
        return True
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    got = connection.execute(
        text(f"SELECT {function}(hashtext(current_schema()), :key)"), {"key": _LOCK_KEYS[name]}
    ).scalar()
    return wait or bool(got)


def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """For FastAPI dependencies: one session per request."""
    with factory() as session:
        yield session
