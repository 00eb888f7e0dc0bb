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
