"""Consultation services: the consultation types a clinic sells (text, phone, video), for the
clinic, a department or a doctor, with a call length or a response window and a price.

A new table only: safe to run while workers of the previous version are up.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consultation_services",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("department", sa.String(100), nullable=True),
        sa.Column("doctor_id", sa.String(32), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.Column("response_hours", sa.Integer(), nullable=True),
        sa.Column("price_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consultation_services"),
    )
    op.create_index("ix_consultation_services_doctor_id", "consultation_services", ["doctor_id"])


def downgrade() -> None:
    op.drop_index("ix_consultation_services_doctor_id", table_name="consultation_services")
    op.drop_table("consultation_services")
