"""Alembic environment: runs on the connection handed over by storage.migrate."""

from __future__ import annotations

from alembic import context

from storage.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached through the alembic CLI
    raise SystemExit("Run migrations with: python bot.py migrate")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite needs table rebuilds for ALTER; same revisions on PostgreSQL
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
