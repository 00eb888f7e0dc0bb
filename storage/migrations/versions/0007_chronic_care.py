"""Chronic care: medication plans and doses, caregivers, follow-up plans, check-ins and
readings, care alerts for doctors, patients' quiet hours; the scheduler's occurrence keys,
priorities and leases.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id(name: str = "id", nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=32), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("scheduled_events") as batch:
        batch.add_column(sa.Column("key", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="5"))
        batch.add_column(_ts("lease_until"))
        batch.add_column(sa.Column("leased_by", sa.String(length=64), nullable=True))
        batch.create_unique_constraint(op.f("uq_scheduled_events_key"), ["key"])
        batch.drop_index("ix_scheduled_events_due")
        batch.create_index("ix_scheduled_events_claim", ["status", "priority", "due_at"])
    with op.batch_alter_table("scheduled_events") as batch:
        batch.alter_column("priority", server_default=None)
    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("quiet_start", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("quiet_end", sa.String(length=5), nullable=True))

    op.create_table(
        "med_plans",
        _id(),
        _id("patient_id"),
        _id("doctor_id"),
        _id("consultation_id", nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("details_enc", sa.LargeBinary(), nullable=True),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("shift_minutes", sa.Integer(), nullable=False),
        sa.Column("again_after_min", sa.Integer(), nullable=False),
        sa.Column("caregiver_after_min", sa.Integer(), nullable=False),
        sa.Column("doctor_after_min", sa.Integer(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("confirmed_at"),
        _ts("paused_at"),
        _ts("ended_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_med_plans")),
    )
    op.create_index(op.f("ix_med_plans_patient_id"), "med_plans", ["patient_id"])
    op.create_index(op.f("ix_med_plans_doctor_id"), "med_plans", ["doctor_id"])

    op.create_table(
        "doses",
        _id(),
        _id("plan_id"),
        _id("patient_id"),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("local", sa.String(length=16), nullable=False),
        _ts("due_at", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("note_enc", sa.LargeBinary(), nullable=True),
        _ts("responded_at"),
        sa.Column("acked_by", sa.String(length=64), nullable=True),
        _ts("acked_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_doses")),
        sa.UniqueConstraint("plan_id", "local", name="uq_doses_plan_local"),
    )
    op.create_index("ix_doses_patient_due", "doses", ["patient_id", "due_at"])

    op.create_table(
        "caregivers",
        _id(),
        _id("patient_id"),
        sa.Column("tg_user_id", sa.BigInteger(), nullable=True),
        sa.Column("name_enc", sa.LargeBinary(), nullable=True),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("details", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        _ts("expires_at", nullable=False),
        _ts("created_at", nullable=False),
        _ts("accepted_at"),
        _ts("revoked_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caregivers")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_caregivers_token_hash")),
    )
    op.create_index(op.f("ix_caregivers_patient_id"), "caregivers", ["patient_id"])
    op.create_index(op.f("ix_caregivers_tg_user_id"), "caregivers", ["tg_user_id"])

    op.create_table(
        "followup_plans",
        _id(),
        _id("patient_id"),
        _id("doctor_id"),
        _id("consultation_id", nullable=True),
        sa.Column("template", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=False),
        _ts("review_by"),
        _ts("created_at", nullable=False),
        _ts("ended_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followup_plans")),
    )
    op.create_index(op.f("ix_followup_plans_patient_id"), "followup_plans", ["patient_id"])
    op.create_index(op.f("ix_followup_plans_doctor_id"), "followup_plans", ["doctor_id"])

    op.create_table(
        "checkins",
        _id(),
        _id("plan_id"),
        _id("patient_id"),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("local", sa.String(length=16), nullable=False),
        _ts("due_at", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("answers_enc", sa.LargeBinary(), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("recalled", sa.Boolean(), nullable=False),
        _ts("completed_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkins")),
        sa.UniqueConstraint("plan_id", "local", name="uq_checkins_plan_local"),
    )
    op.create_index(op.f("ix_checkins_patient_id"), "checkins", ["patient_id"])

    op.create_table(
        "readings",
        _id(),
        _id("patient_id"),
        _id("checkin_id", nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("value_enc", sa.LargeBinary(), nullable=False),
        sa.Column("flag", sa.String(length=8), nullable=False),
        _ts("taken_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
    )
    op.create_index("ix_readings_patient_taken", "readings", ["patient_id", "taken_at"])

    op.create_table(
        "care_alerts",
        _id(),
        _id("patient_id"),
        _id("doctor_id"),
        sa.Column("kind", sa.String(length=24), nullable=False),
        _id("ref_id"),
        sa.Column("level", sa.String(length=16), nullable=False),
        _ts("created_at", nullable=False),
        _ts("acked_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_alerts")),
    )
    op.create_index(op.f("ix_care_alerts_patient_id"), "care_alerts", ["patient_id"])
    op.create_index("ix_care_alerts_doctor_open", "care_alerts", ["doctor_id", "acked_at"])


def downgrade() -> None:
    for table in ("care_alerts", "readings", "checkins", "followup_plans", "caregivers"):
        op.drop_table(table)
    op.drop_table("doses")
    op.drop_table("med_plans")
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("quiet_end")
        batch.drop_column("quiet_start")
    with op.batch_alter_table("scheduled_events") as batch:
        batch.drop_index("ix_scheduled_events_claim")
        batch.create_index("ix_scheduled_events_due", ["status", "due_at"])
        batch.drop_constraint(op.f("uq_scheduled_events_key"), type_="unique")
        batch.drop_column("leased_by")
        batch.drop_column("lease_until")
        batch.drop_column("priority")
        batch.drop_column("key")
