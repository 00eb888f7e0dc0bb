"""Scheduled events: the scheduler's due-event queue (check-backs first).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduled_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_events")),
    )
    op.create_index("ix_scheduled_events_due", "scheduled_events", ["status", "due_at"])
    op.create_index(op.f("ix_scheduled_events_patient_id"), "scheduled_events", ["patient_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_scheduled_events_patient_id"), table_name="scheduled_events")
    op.drop_index("ix_scheduled_events_due", table_name="scheduled_events")
    op.drop_table("scheduled_events")
