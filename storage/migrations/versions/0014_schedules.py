"""Doctors' schedules, their bookable slots (one per doctor and start time) and bookings.

New tables only: safe to run while workers of the previous version are up.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _ts(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "doctor_schedules",
        sa.Column("doctor_id", sa.String(32), nullable=False),
        sa.Column("availability", sa.Text(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("doctor_id", name="pk_doctor_schedules"),
    )
    op.create_table(
        "slots",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("doctor_id", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        _ts("start_at", nullable=False),
        _ts("end_at", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("patient_id", sa.String(32), nullable=True),
        _ts("hold_until", nullable=True),
        sa.Column("booking_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_slots"),
        sa.UniqueConstraint("doctor_id", "start_at", name="uq_slots_doctor_id"),
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("patient_id", sa.String(32), nullable=False),
        sa.Column("doctor_id", sa.String(32), nullable=False),
        sa.Column("slot_id", sa.String(32), nullable=False),
        sa.Column("service_id", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("price_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("charge_id", sa.String(128), nullable=True),
        sa.Column("provider_charge_id", sa.String(128), nullable=True),
        sa.Column("refund", sa.String(16), nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("paid_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bookings"),
        sa.UniqueConstraint("charge_id", name="uq_bookings_charge_id"),
    )
    op.create_index("ix_bookings_patient_id", "bookings", ["patient_id"])
    op.create_index("ix_bookings_doctor_id", "bookings", ["doctor_id"])


def downgrade() -> None:
    op.drop_index("ix_bookings_doctor_id", table_name="bookings")
    op.drop_index("ix_bookings_patient_id", table_name="bookings")
    op.drop_table("bookings")
    op.drop_table("slots")
    op.drop_table("doctor_schedules")
