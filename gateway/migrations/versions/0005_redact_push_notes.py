"""redact credentials from the audit notes of earlier pushes (they named webhook URLs in full)

Revision ID: 0005_redact_push_notes
Revises: 0004_device_audit
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.redaction import redact_text

revision = "0005_redact_push_notes"
down_revision = "0004_device_audit"
branch_labels = None
depends_on = None

_audit = sa.table("event_audit", sa.column("id", sa.Integer), sa.column("action"), sa.column("note"))


def upgrade() -> None:
    connection = op.get_bind()
    pushes = connection.execute(sa.select(_audit.c.id, _audit.c.note).where(_audit.c.action == "push"))
    for audit_id, note in pushes.all():
        redacted = redact_text(note or "")
        if redacted != note:
            connection.execute(sa.update(_audit).where(_audit.c.id == audit_id).values(note=redacted))


def downgrade() -> None:
    """Nothing to undo: the credentials are gone for good, as they should be."""
