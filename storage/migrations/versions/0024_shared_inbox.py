"""Workers sharing one database (issue 19): each inbox row knows its chat, so a worker can take
all of a chat's pending updates at once and in order (and no other worker takes them
meanwhile); a partial index lets senders find a chat's earlier waiting calls.

Additive: a nullable column (rows stored before it have none and are taken as before) and
two indexes. Safe to run while workers of the previous version are up.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("chat_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_inbox_chat", "inbox", ["bot", "chat_id", "update_id"])
    waiting = sa.text("status IN ('pending', 'sending')")
    op.create_index(
        "ix_outbox_chat", "outbox", ["bot", "chat_id", "id"],
        sqlite_where=waiting, postgresql_where=waiting,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_outbox_chat", table_name="outbox")
    op.drop_index("ix_inbox_chat", table_name="inbox")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("chat_id")
