"""Shared fixtures: databases (SQLite always, PostgreSQL when configured) and a key ring."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.crypto import KeyRing
from storage.migrate import upgrade
from storage.uow import Database

PG_URL = os.environ.get("CARELINE_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("CARELINE_TEST_REDIS_URL")

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                PG_URL is None, reason="CARELINE_TEST_POSTGRES_URL is not set (no PostgreSQL)"
            ),
        ],
    ),
]


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    """A fresh master key ring in a temp dir."""
    ring, _ = KeyRing.load_or_create(tmp_path / "keys.json")
    return ring


async def make_database(backend: str, tmp_path: Path, ring: KeyRing) -> tuple[Database, str]:
    """A migrated, empty database; for PostgreSQL a schema of its own."""
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}", ring)
        await upgrade(db.engine)
        return db, ""
    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = Database(PG_URL, ring)
    async with admin.engine.begin() as conn:
        await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    await admin.dispose()
    db = Database(PG_URL, ring, connect_args={"server_settings": {"search_path": schema}})
    await upgrade(db.engine)
    return db, schema


async def drop_database(db: Database, schema: str) -> None:
    """Dispose of a test database (drop its PostgreSQL schema)."""
    await db.dispose()
    if schema:
        assert PG_URL is not None
        admin = Database(PG_URL, db.ring)
        async with admin.engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.dispose()


@pytest.fixture(params=BACKENDS)
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, keyring: KeyRing
) -> AsyncIterator[Database]:
    """A migrated database on each backend."""
    database, schema = await make_database(request.param, tmp_path, keyring)
    try:
        yield database
    finally:
        await drop_database(database, schema)
