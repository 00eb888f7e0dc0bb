"""Mini App launch data used once (the body map's replay guard): the SHA-256 of each used
initData's hash and its auth_date, kept until the data would be refused as expired anyway.

Additive: a new table. Safe to run while workers of the previous version are up.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webapp_uses",
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("auth_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_webapp_uses")),
    )
    op.create_index(op.f("ix_webapp_uses_auth_date"), "webapp_uses", ["auth_date"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webapp_uses_auth_date"), table_name="webapp_uses")
    op.drop_table("webapp_uses")
