"""Alembic environment: run by ``gateway.db.migrate`` with a connection in the config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from gateway.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # the alembic CLI, with sqlalchemy.url set
        with create_engine(config.get_main_option("sqlalchemy.url") or "").connect() as fresh:
            _run(fresh)
    else:
        _run(connection)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs table rebuilds for most ALTERs
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
