"""Apply Alembic migrations programmatically (``python bot.py migrate`` and at start).

Alembic (with Mako and Pygments, ~11 MB) is imported only when a database is not at
:data:`HEAD` already: a bot starting on a current database never loads it.
tests/storage/test_migrations.py checks that :data:`HEAD` is Alembic's head."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0023"  # the newest revision in migrations/versions


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our migrations, with no ini file needed."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def _at_head(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    except Exception:  # noqa: BLE001 - no table yet (a new database): Alembic decides
        return False
    return [tuple(row) for row in version] == [(HEAD,)]


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (nothing to do, and Alembic not
    even imported, when it is at :data:`HEAD` and that is what is asked)."""
    if revision in ("head", HEAD) and await _at_head(engine):
        return
    from alembic import command

    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))

    def _run(sync_conn: object) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def current(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    def _cur(sync_conn: object) -> str | None:
        ctx = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
        return ctx.get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_cur)
