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
HEAD = "0024"  # the newest revision in migrations/versions


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our migrations, with no ini file needed."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# Taken around a migration on PostgreSQL: workers starting together migrate one at a time
# (the others then find the database at head and do nothing).
_LOCK = 0x6361_7265_6C69_6E65  # "careline"


def known_revisions() -> set[str]:
    """The revisions this code has (``0001`` … :data:`HEAD`)."""
    return {p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py")}


async def _version(engine: AsyncEngine) -> list[str] | None:
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    except Exception:  # noqa: BLE001 - no table yet (a new database): Alembic decides
        return None
    return [str(row[0]) for row in rows]


async def _at_head(engine: AsyncEngine) -> bool:
    """At :data:`HEAD`, or ahead of it: a newer version's migrations ran (they only add, so
    this code still works on it — expand/contract, docs/DEPLOY.md) and must not be undone."""
    version = await _version(engine)
    if version is None:
        return False
    return version == [HEAD] or (len(version) == 1 and version[0] not in known_revisions())


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (nothing to do, and Alembic not
    even imported, when it is at :data:`HEAD` — or ahead of it — and that is what is
    asked). On PostgreSQL one process migrates at a time (an advisory lock)."""
    if revision in ("head", HEAD) and await _at_head(engine):
        return
    from alembic import command

    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))

    def _run(sync_conn: object) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
        await conn.run_sync(_run)


async def current(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    def _cur(sync_conn: object) -> str | None:
        ctx = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
        return ctx.get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_cur)
