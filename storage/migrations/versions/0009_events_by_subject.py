"""Scheduled events by kind and subject: cancelling a dose's escalation ladder and counting
its snoozes no longer scan the whole table (measured: 0.1 s per reminder with 1.1 million
stored events, before this index); outbox rows by ``not_before``: the sender's deferred
heads no longer scan every waiting row.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_scheduled_events_kind_subject", "scheduled_events", ["kind", "subject"])
    op.create_index("ix_outbox_not_before", "outbox", ["not_before"])


def downgrade() -> None:
    op.drop_index("ix_outbox_not_before", table_name="outbox")
    op.drop_index("ix_scheduled_events_kind_subject", table_name="scheduled_events")
