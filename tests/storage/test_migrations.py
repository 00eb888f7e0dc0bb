"""The migrations produce exactly the schema the models describe, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.models import Base
from storage.uow import Database


async def test_models_and_migrations_agree(db: Database) -> None:
    def diff(sync_conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))

    async with db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []


def test_head_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from storage.migrate import HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads() == [HEAD]


async def test_a_current_database_is_not_migrated_again(tmp_path: Any, monkeypatch: Any) -> None:
    """At start a database at HEAD needs no Alembic (not even imported); a new one does."""
    from storage import migrate
    from storage.db import make_engine

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        await migrate.upgrade(engine)  # a new database: Alembic creates the schema
        assert await migrate.current(engine) == migrate.HEAD

        def no_alembic(url: str) -> Any:
            raise AssertionError("Alembic was asked to migrate a database at HEAD")

        monkeypatch.setattr(migrate, "alembic_config", no_alembic)
        await migrate.upgrade(engine)
        assert await migrate.current(engine) == migrate.HEAD
        async with engine.begin() as conn:  # one revision behind: Alembic is needed again
            await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0011'")
        with pytest.raises(AssertionError, match="at HEAD"):
            await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def test_a_database_ahead_of_this_code_is_left_alone(db: Database) -> None:
    """Rolling upgrade: a newer version migrated (expand) while this one's workers run; one
    of them restarting must neither fail on the unknown revision nor try to undo it."""
    from sqlalchemy import text

    from storage import migrate

    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9001'"))
    await migrate.upgrade(db.engine)  # no error, nothing done
    assert await migrate.current(db.engine) == "9001"
    assert "9001" not in migrate.known_revisions() and migrate.HEAD in migrate.known_revisions()


@pytest.mark.postgres
async def test_workers_starting_together_migrate_one_at_a_time(tmp_path: Any) -> None:
    """Three processes' start-ups on a new PostgreSQL database: one migrates (the advisory
    lock), the others wait and find it at head."""
    import asyncio
    import uuid

    from sqlalchemy import text

    from storage import migrate
    from storage.db import make_engine
    from tests.conftest import PG_URL, _pg_admin, _pg_url

    if PG_URL is None:
        pytest.skip("CARELINE_TEST_POSTGRES_URL is not set (no PostgreSQL)")
    name = f"t_mig_{uuid.uuid4().hex[:10]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    engines = [make_engine(_pg_url(name)) for _ in range(3)]
    try:
        # Without the lock they block each other (measured: no progress in 300 s).
        await asyncio.wait_for(asyncio.gather(*(migrate.upgrade(e) for e in engines)), 120)
        assert await migrate.current(engines[0]) == migrate.HEAD
        async with engines[0].connect() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar()
        assert rows == 1
    finally:
        for e in engines:
            await e.dispose()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
