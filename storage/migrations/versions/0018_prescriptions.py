"""E-prescriptions (flows/prescriptions.py) and the pharmacist role of the doctor bot.

Additive: a new table and a column with a default. Safe to run while workers of the previous
version are up (they neither read nor write either).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("doctors") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="doctor"))
    op.create_table(
        "prescriptions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("code", sa.String(16), nullable=True),
        sa.Column("patient_id", sa.String(32), nullable=False),
        sa.Column("doctor_id", sa.String(32), nullable=False),
        sa.Column("consultation_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("review_required", sa.Boolean(), nullable=False),
        sa.Column("chronic", sa.String(32), nullable=True),
        sa.Column("supply_days", sa.Integer(), nullable=True),
        sa.Column("content_enc", sa.LargeBinary(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("file_hash", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("key_owner", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewer_id", sa.String(32), nullable=True),
        sa.Column("review_enc", sa.LargeBinary(), nullable=True),
        sa.Column("dispensed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispense_enc", sa.LargeBinary(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("plan_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prescriptions")),
        sa.UniqueConstraint("code", name=op.f("uq_prescriptions_code")),
    )
    for column in ("patient_id", "doctor_id", "consultation_id", "status"):
        op.create_index(op.f(f"ix_prescriptions_{column}"), "prescriptions", [column])


def downgrade() -> None:
    op.drop_table("prescriptions")
    with op.batch_alter_table("doctors") as batch:
        batch.drop_column("role")
