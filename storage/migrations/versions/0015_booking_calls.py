"""Bookings at their time: when they are, the case each becomes, the phone consent, the
video room, the call's start, end and outcome, and who cancelled.

Additive and nullable (the consent defaults to false): safe to run while workers of the
previous version are up.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("start_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("consultation_id", sa.String(32), nullable=True))
        batch.add_column(
            sa.Column("phone_consent", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("room", sa.String(64), nullable=True))
        batch.add_column(sa.Column("call_started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("call_ended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("call_outcome", sa.String(16), nullable=True))
        batch.add_column(sa.Column("cancelled_by", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        for name in (
            "cancelled_by", "call_outcome", "call_ended_at", "call_started_at", "room",
            "phone_consent", "consultation_id", "start_at",
        ):  # fmt: skip
            batch.drop_column(name)
