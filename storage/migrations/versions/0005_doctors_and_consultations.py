"""Doctors, consultations and their messages.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "doctors",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tg_user_id", sa.BigInteger(), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("apply_step", sa.String(length=32), nullable=False),
        sa.Column("departments", sa.String(length=300), nullable=False),
        sa.Column("years_practice", sa.Integer(), nullable=True),
        sa.Column("verified_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_duty", sa.Boolean(), nullable=False),
        sa.Column("work_hours", sa.String(length=16), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("name_enc", sa.LargeBinary(), nullable=True),
        sa.Column("licence_enc", sa.LargeBinary(), nullable=True),
        sa.Column("authority_enc", sa.LargeBinary(), nullable=True),
        sa.Column("hospital_enc", sa.LargeBinary(), nullable=True),
        sa.Column("title_enc", sa.LargeBinary(), nullable=True),
        sa.Column("phone_enc", sa.LargeBinary(), nullable=True),
        sa.Column("licence_photo_enc", sa.LargeBinary(), nullable=True),
        sa.Column("decision_reason_enc", sa.LargeBinary(), nullable=True),
        sa.Column("rating_sum", sa.Integer(), nullable=False),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("unreachable", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_doctors")),
        sa.UniqueConstraint("tg_user_id", name=op.f("uq_doctors_tg_user_id")),
    )
    op.create_table(
        "consultations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("intake_id", sa.String(length=32), nullable=True),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("doctor_id", sa.String(length=32), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary_enc", sa.LargeBinary(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rating_comment_enc", sa.LargeBinary(), nullable=True),
        sa.Column("followup_visit", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultations")),
        sa.UniqueConstraint("number", name=op.f("uq_consultations_number")),
    )
    op.create_index(
        "ix_consultations_queue",
        "consultations",
        ["state", "department", "priority", "requested_at"],
    )
    op.create_index(op.f("ix_consultations_patient_id"), "consultations", ["patient_id"])
    op.create_index(op.f("ix_consultations_doctor_id"), "consultations", ["doctor_id"])
    op.create_table(
        "case_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consultation_id", sa.String(length=32), nullable=False),
        sa.Column("sender", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body_enc", sa.LargeBinary(), nullable=True),
        sa.Column("file_enc", sa.LargeBinary(), nullable=True),
        sa.Column("file_name", sa.String(length=128), nullable=True),
        sa.Column("tg_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_messages")),
    )
    op.create_index(op.f("ix_case_messages_consultation_id"), "case_messages", ["consultation_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_case_messages_consultation_id"), table_name="case_messages")
    op.drop_table("case_messages")
    op.drop_index(op.f("ix_consultations_doctor_id"), table_name="consultations")
    op.drop_index(op.f("ix_consultations_patient_id"), table_name="consultations")
    op.drop_index("ix_consultations_queue", table_name="consultations")
    op.drop_table("consultations")
    op.drop_table("doctors")
