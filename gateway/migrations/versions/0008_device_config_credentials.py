"""devices: desired vs reported config version (config_drift), the broker account made at flash time

Revision ID: 0008_device_config_credentials
Revises: 0007_evidence
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = "0008_device_config_credentials"
down_revision = "0007_evidence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("config_reported_at", gateway.db.UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("desired_config_version", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("desired_config_cmd_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("desired_config_at", gateway.db.UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("mqtt_username", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("mqtt_password_hash", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("mqtt_credential_at", gateway.db.UtcDateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_devices_mqtt_username"), ["mqtt_username"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_mqtt_username"))
        for column in (
            "mqtt_credential_at",
            "mqtt_password_hash",
            "mqtt_username",
            "desired_config_at",
            "desired_config_cmd_id",
            "desired_config_version",
            "config_reported_at",
        ):
            batch_op.drop_column(column)
