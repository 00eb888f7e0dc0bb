"""Engine construction: SQLite (WAL, one writer) or PostgreSQL (asyncpg), same code."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def is_sqlite(url: str) -> bool:
    """True when the URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, echo: bool = False, **options: Any) -> AsyncEngine:
    """Create the async engine with the pragmas and pool each dialect needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return create_async_engine(
        url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True, **options
    )


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so we can BEGIN IMMEDIATE below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Erased rows (wrapped data keys, ciphertext) are overwritten, not left in free pages.
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: another process (the CLI) then waits on
        # busy_timeout instead of failing with "database is locked" on a read->write upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class WriterGate:
    """Serialises write transactions inside one process on SQLite (it has one writer);
    a no-op on PostgreSQL, where row locks do that work."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        if self.enabled:
            await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        if self.enabled:
            self._lock.release()
