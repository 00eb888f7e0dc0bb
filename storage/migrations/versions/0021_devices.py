"""Readings from home devices (flows/devices.py): a patient's paired devices, and how each
reading was made (manual, device, imported) with the device and the identity the source gave
it (one stored reading per identity).

Additive: a new table, columns with defaults and a unique constraint over a new column that
is empty on every existing row. Safe to run while workers of the previous version are up.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("patient_id", sa.String(32), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("pair_hash", sa.String(64), nullable=True),
        sa.Column("pair_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("pair_hash", name="uq_devices_pair_hash"),
        sa.UniqueConstraint("token_hash", name="uq_devices_token_hash"),
    )
    op.create_index(op.f("ix_devices_patient_id"), "devices", ["patient_id"])
    with op.batch_alter_table("readings") as batch:
        batch.add_column(
            sa.Column("source", sa.String(12), nullable=False, server_default="manual")
        )
        batch.add_column(sa.Column("device_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("source_key", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_readings_source_key", ["patient_id", "source_key"])


def downgrade() -> None:
    with op.batch_alter_table("readings") as batch:
        batch.drop_constraint("uq_readings_source_key", type_="unique")
        batch.drop_column("source_key")
        batch.drop_column("device_id")
        batch.drop_column("source")
    op.drop_index(op.f("ix_devices_patient_id"), table_name="devices")
    op.drop_table("devices")
