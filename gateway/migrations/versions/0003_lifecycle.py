"""event lifecycle: states, routing, SLA, escalation; CAP messages; per-department webhooks

Revision ID: 0003_lifecycle
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = "0003_lifecycle"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN_CONDITION = "state NOT IN ('closed', 'cancelled')"


def upgrade() -> None:
    # Partial indexes are dropped before the SQLite table rebuild and created again after it.
    op.drop_index("uq_events_active_per_device_type", table_name="events")
    op.drop_index("ix_events_status_id", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state", sa.String(length=16), nullable=False, server_default="new"))
        batch_op.add_column(sa.Column("department", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("rule_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("assignee", sa.String(length=128), nullable=True))
        for name in ("dispatched_at", "deadline", "resolved_at", "closed_at", "last_escalated_at"):
            batch_op.add_column(sa.Column(name, gateway.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("rating", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("escalations_sent", sa.Integer(), nullable=False, server_default="0"))
    # Interim statuses -> lifecycle states: an open event was already pushed, so it counts as dispatched.
    op.execute(
        "UPDATE events SET state = CASE status WHEN 'acknowledged' THEN 'accepted' "
        "WHEN 'cleared' THEN 'closed' ELSE 'dispatched' END, dispatched_at = created_at"
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("status")
        batch_op.drop_column("acknowledged_by")
        batch_op.drop_column("acknowledged_at")
    op.create_index("ix_events_state_id", "events", ["state", "id"], unique=False)
    op.create_index("ix_events_state_deadline", "events", ["state", "deadline"], unique=False)
    op.create_index(
        "uq_events_open_per_device_type",
        "events",
        ["device_id", "type"],
        unique=True,
        sqlite_where=sa.text(OPEN_CONDITION),
        postgresql_where=sa.text(OPEN_CONDITION),
    )

    with op.batch_alter_table("event_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=32), nullable=True))

    op.create_table(
        "event_cap_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=128), nullable=False),
        sa.Column("sender", sa.String(length=200), nullable=False),
        sa.Column("sent", gateway.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("msg_type", sa.String(length=16), nullable=False),
        sa.Column("headline", sa.String(length=200), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identifier"),
    )
    with op.batch_alter_table("event_cap_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_cap_messages_event_id"), ["event_id"], unique=False)

    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.alter_column(
            "secret",
            existing_type=sa.String(length=200),
            type_=sa.String(length=2000),
            existing_nullable=False,
        )
        batch_op.add_column(sa.Column("department", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("format", sa.String(length=8), nullable=False, server_default="json"))
        batch_op.create_index(batch_op.f("ix_webhook_endpoints_department"), ["department"], unique=False)

    with op.batch_alter_table("dispatch_outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("content_type", sa.String(length=64), nullable=False, server_default="application/json")
        )


def downgrade() -> None:
    with op.batch_alter_table("dispatch_outbox", schema=None) as batch_op:
        batch_op.drop_column("content_type")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_endpoints_department"))
        batch_op.drop_column("format")
        batch_op.drop_column("department")
        batch_op.alter_column(
            "secret",
            existing_type=sa.String(length=2000),
            type_=sa.String(length=200),
            existing_nullable=False,
        )
    op.drop_table("event_cap_messages")
    with op.batch_alter_table("event_audit", schema=None) as batch_op:
        batch_op.drop_column("role")
    op.drop_index("uq_events_open_per_device_type", table_name="events")
    op.drop_index("ix_events_state_deadline", table_name="events")
    op.drop_index("ix_events_state_id", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=32), nullable=False, server_default="open"))
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("acknowledged_at", gateway.db.UtcDateTime(timezone=True), nullable=True)
        )
    op.execute(
        "UPDATE events SET status = CASE WHEN state IN ('closed', 'cancelled') THEN 'cleared' "
        "WHEN state = 'new' OR state = 'dispatched' THEN 'open' ELSE 'acknowledged' END"
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        for name in (
            "escalations_sent",
            "rating",
            "last_escalated_at",
            "closed_at",
            "resolved_at",
            "deadline",
            "dispatched_at",
            "assignee",
            "rule_id",
            "department",
            "state",
        ):
            batch_op.drop_column(name)
    op.create_index("ix_events_status_id", "events", ["status", "id"], unique=False)
    op.create_index(
        "uq_events_active_per_device_type",
        "events",
        ["device_id", "type"],
        unique=True,
        sqlite_where=sa.text("cleared_at IS NULL"),
        postgresql_where=sa.text("cleared_at IS NULL"),
    )
