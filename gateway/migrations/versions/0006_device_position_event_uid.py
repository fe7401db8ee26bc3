"""device latitude/longitude (CAP <circle>); a random uid per event (CAP identifiers survive rebuilds)

Revision ID: 0006_device_position_event_uid
Revises: 0005_redact_push_notes
Create Date: 2026-12-01
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0006_device_position_event_uid"
down_revision = "0005_redact_push_notes"
branch_labels = None
depends_on = None

# The partial index of 0003: dropped around the batch rebuild of ``events`` on SQLite, so it comes
# back with its WHERE clause whatever the reflection of partial indexes does.
OPEN_INDEX = "uq_events_open_per_device_type"
OPEN_CONDITION = "state NOT IN ('closed', 'cancelled')"

_events = sa.table("events", sa.column("id", sa.Integer), sa.column("uid", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("longitude", sa.Float(), nullable=True))

    op.add_column("events", sa.Column("uid", sa.String(length=32), nullable=True))
    connection = op.get_bind()
    for (event_id,) in connection.execute(sa.select(_events.c.id)).all():
        connection.execute(sa.update(_events).where(_events.c.id == event_id).values(uid=uuid.uuid4().hex))
    op.drop_index(OPEN_INDEX, table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("uid", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_index(batch_op.f("ix_events_uid"), ["uid"], unique=True)
    _create_open_index()


def downgrade() -> None:
    op.drop_index(OPEN_INDEX, table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_uid"))
        batch_op.drop_column("uid")
    _create_open_index()
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("longitude")
        batch_op.drop_column("latitude")


def _create_open_index() -> None:
    op.create_index(
        OPEN_INDEX,
        "events",
        ["device_id", "type"],
        unique=True,
        sqlite_where=sa.text(OPEN_CONDITION),
        postgresql_where=sa.text(OPEN_CONDITION),
    )
