"""evidence items and their parts; revisions looked up by the device's event id alone

Revision ID: 0007_evidence
Revises: 0006_device_position_event_uid
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = "0007_evidence"
down_revision = "0006_device_position_event_uid"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("evidence_id", sa.String(length=64), nullable=False),
        sa.Column("device_event_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("caption", sa.String(length=200), nullable=True),
        sa.Column("taken_at", gateway.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sha1", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("refusal", sa.String(length=300), nullable=True),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("created_at", gateway.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", gateway.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("received_at", gateway.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "evidence_id", name="uq_evidence_items_device_evidence"),
    )
    op.create_index(
        "ix_evidence_items_device_event", "evidence_items", ["device_id", "device_event_id"], unique=False
    )
    op.create_index(
        "ix_evidence_items_status_updated", "evidence_items", ["status", "updated_at"], unique=False
    )
    op.create_table(
        "evidence_parts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["evidence_items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "part", name="uq_evidence_parts_item_part"),
    )
    op.create_index(op.f("ix_evidence_parts_item_id"), "evidence_parts", ["item_id"], unique=False)
    op.create_index(
        "ix_event_revisions_device_event_id", "event_revisions", ["device_event_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_event_revisions_device_event_id", table_name="event_revisions")
    op.drop_index(op.f("ix_evidence_parts_item_id"), table_name="evidence_parts")
    op.drop_table("evidence_parts")
    op.drop_index("ix_evidence_items_status_updated", table_name="evidence_items")
    op.drop_index("ix_evidence_items_device_event", table_name="evidence_items")
    op.drop_table("evidence_items")
