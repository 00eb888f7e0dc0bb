"""Waiting: when a case entered the queue it waits in now (its department's time limit counts
from it; a message the patient adds while waiting does not restart it), and the place the
patient was last told with when (place updates at most every 15 minutes).

Additive and nullable: safe to run while workers of the previous version are up (a case
without ``queued_at`` counts from its ``updated_at``, as before).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consultations") as batch:
        batch.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("told_place", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("told_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consultations") as batch:
        batch.drop_column("told_at")
        batch.drop_column("told_place")
        batch.drop_column("queued_at")
