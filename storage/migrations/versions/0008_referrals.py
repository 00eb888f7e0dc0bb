"""Referral slips and the clinic's hospital directory.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "hospitals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("locale", sa.String(length=8), nullable=True),
        sa.Column("departments", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hospitals")),
    )
    op.create_table(
        "referrals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=True),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("doctor_id", sa.String(length=32), nullable=False),
        sa.Column("consultation_id", sa.String(length=32), nullable=True),
        sa.Column("hospital_id", sa.String(length=32), nullable=True),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("content_enc", sa.LargeBinary(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("file_hash", sa.String(length=64), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("outcome_enc", sa.LargeBinary(), nullable=True),
        _ts("created_at", nullable=False),
        _ts("issued_at"),
        _ts("valid_until"),
        _ts("used_at"),
        sa.Column("used_by", sa.String(length=16), nullable=True),
        _ts("revoked_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint("code", name=op.f("uq_referrals_code")),
    )
    op.create_index(op.f("ix_referrals_patient_id"), "referrals", ["patient_id"])
    op.create_index(op.f("ix_referrals_doctor_id"), "referrals", ["doctor_id"])


def downgrade() -> None:
    op.drop_table("referrals")
    op.drop_table("hospitals")
