"""Hospital appointments behind referrals (flows/appointments.py): the services a hospital
lets the clinic book, their slots with capacity, the appointments, and a desk's hospital.

Additive: new tables and a nullable column. Safe to run while workers of the previous version
are up (they neither read nor write any of it).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("doctors") as batch:
        batch.add_column(sa.Column("hospital_id", sa.String(32), nullable=True))
    op.create_table(
        "hospital_services",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("bring", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hospital_services")),
    )
    op.create_index(op.f("ix_hospital_services_hospital_id"), "hospital_services", ["hospital_id"])
    op.create_table(
        "hospital_slots",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("service_id", sa.String(32), nullable=False),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        _ts("starts_at", nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hospital_slots")),
        sa.UniqueConstraint("service_id", "starts_at", name="uq_hospital_slots_start"),
    )
    op.create_index(op.f("ix_hospital_slots_service_id"), "hospital_slots", ["service_id"])
    op.create_index(op.f("ix_hospital_slots_hospital_id"), "hospital_slots", ["hospital_id"])
    op.create_table(
        "hospital_appointments",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("referral_id", sa.String(32), nullable=False),
        sa.Column("patient_id", sa.String(32), nullable=False),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        sa.Column("service_id", sa.String(32), nullable=False),
        sa.Column("slot_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("booked_by", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("outcome_enc", sa.LargeBinary(), nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hospital_appointments")),
    )
    for column in ("referral_id", "patient_id", "hospital_id", "slot_id"):
        op.create_index(
            op.f(f"ix_hospital_appointments_{column}"), "hospital_appointments", [column]
        )


def downgrade() -> None:
    op.drop_table("hospital_appointments")
    op.drop_table("hospital_slots")
    op.drop_table("hospital_services")
    with op.batch_alter_table("doctors") as batch:
        batch.drop_column("hospital_id")
