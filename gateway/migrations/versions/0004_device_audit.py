"""device audit (commands, acks, session resets, type flags); a birth's device type and session start

Revision ID: 0004_device_audit
Revises: 0003_lifecycle
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = "0004_device_audit"
down_revision = "0003_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("at", gateway.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("cmd_id", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_device_audit_device_id"), "device_audit", ["device_id"], unique=False)
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reported_device_type", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("session_started_at", gateway.db.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("session_started_at")
        batch_op.drop_column("reported_device_type")
    op.drop_index(op.f("ix_device_audit_device_id"), table_name="device_audit")
    op.drop_table("device_audit")
