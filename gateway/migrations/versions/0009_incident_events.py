"""incidents (object_thrown, illegal_parking) are one event each: the one-open-event index skips them

Revision ID: 0009_incident_events
Revises: 0008_device_config_credentials
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_incident_events"
down_revision = "0008_device_config_credentials"
branch_labels = None
depends_on = None

OPEN_INDEX = "uq_events_open_per_device_type"
OLD_CONDITION = "state NOT IN ('closed', 'cancelled')"
NEW_CONDITION = "state NOT IN ('closed', 'cancelled') AND type NOT IN ('object_thrown', 'illegal_parking')"


def _recreate(condition: str) -> None:
    op.drop_index(OPEN_INDEX, table_name="events")
    op.create_index(
        OPEN_INDEX,
        "events",
        ["device_id", "type"],
        unique=True,
        sqlite_where=sa.text(condition),
        postgresql_where=sa.text(condition),
    )


def upgrade() -> None:
    _recreate(NEW_CONDITION)


def downgrade() -> None:
    # Several open incidents of one device and type would break the old index: close all but the newest.
    op.execute(
        "UPDATE events SET state = 'closed' WHERE type IN ('object_thrown', 'illegal_parking') "
        "AND state NOT IN ('closed', 'cancelled') AND id NOT IN (SELECT MAX(id) FROM events "
        "WHERE state NOT IN ('closed', 'cancelled') GROUP BY device_id, type)"
    )
    _recreate(OLD_CONDITION)
