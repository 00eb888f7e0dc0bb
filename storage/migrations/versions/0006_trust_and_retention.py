"""Trust and retention: abuse reports, blocked patients, kept consultation records, the
cn offline record's file handle.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "abuse_reports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("consultation_id", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("doctor_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason_enc", sa.LargeBinary(), nullable=True),
        sa.Column("appeal_enc", sa.LargeBinary(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("appealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_abuse_reports")),
    )
    op.create_index(op.f("ix_abuse_reports_patient_id"), "abuse_reports", ["patient_id"])
    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("consultations") as batch:
        batch.add_column(sa.Column("key_owner", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("record_enc", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("chat_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("record_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("case_messages") as batch:
        batch.add_column(sa.Column("source_file_enc", sa.LargeBinary(), nullable=True))
    op.create_index(
        "ix_case_messages_recent", "case_messages", ["consultation_id", "sender", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_case_messages_recent", table_name="case_messages")
    with op.batch_alter_table("case_messages") as batch:
        batch.drop_column("source_file_enc")
    with op.batch_alter_table("consultations") as batch:
        batch.drop_column("record_until")
        batch.drop_column("chat_until")
        batch.drop_column("record_enc")
        batch.drop_column("key_owner")
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("blocked_at")
    op.drop_index(op.f("ix_abuse_reports_patient_id"), table_name="abuse_reports")
    op.drop_table("abuse_reports")
