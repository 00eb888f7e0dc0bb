"""Files of readings a patient imports (an Apple Health export or a CSV): the import jobs,
which hold the Telegram file id and counts only, never the file.

Additive: a new table. Safe to run while workers of the previous version are up.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "health_imports",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("patient_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_id", sa.String(255), nullable=True),
        sa.Column("file_size", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(12), nullable=True),
        sa.Column("device_id", sa.String(32), nullable=True),
        sa.Column("progress_row", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(64), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_imports")),
    )
    op.create_index(op.f("ix_health_imports_patient_id"), "health_imports", ["patient_id"])
    op.create_index("ix_health_imports_status", "health_imports", ["status", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_health_imports_status", table_name="health_imports")
    op.drop_index(op.f("ix_health_imports_patient_id"), table_name="health_imports")
    op.drop_table("health_imports")
