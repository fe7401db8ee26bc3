"""dispatch_outbox: claimed_by / claimed_until, so that of several gateways one sends each notification

Revision ID: 0010_outbox_claims
Revises: 0009_incident_events
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = "0010_outbox_claims"
down_revision = "0009_incident_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dispatch_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", gateway.db.UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dispatch_outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claimed_by")
