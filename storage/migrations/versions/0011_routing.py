"""Routing: a case remembers the department the triage chose when it waits in another one
(no staff there, nobody on duty for an urgent case, or its waiting limit passed).

Additive and nullable: safe to run while workers of the previous version are up.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consultations") as batch:
        batch.add_column(sa.Column("preferred_department", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consultations") as batch:
        batch.drop_column("preferred_department")
