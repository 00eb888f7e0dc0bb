"""Index the audit log by record, so a patient's own access log is not a full scan.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_log_record", "audit_log", ["record_type", "record_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_record", table_name="audit_log")
