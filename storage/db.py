"""Engine construction: SQLite (WAL, one writer) or PostgreSQL (asyncpg), same code."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import Sequence
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
        extra: dict[str, Any] = {}
        module = _one_hop_dbapi()
        if module is not None:
            extra["module"] = module
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **extra)
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


def _run_statement(
    conn: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> tuple[Any, list[Any], int, int | None]:
    """In aiosqlite's thread: execute, fetch every row, close; one trip for all of it."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _one_hop_dbapi() -> Any:
    """SQLAlchemy's aiosqlite adapter with a cursor that makes one thread hand-off per
    statement instead of three or four (open cursor, execute, fetch, close: each a wake-up of
    aiosqlite's thread and then of the event loop). Same thread, same connection, same
    transactions; only the trips are fewer. ``None`` (the stock adapter) when this SQLAlchemy
    does not have the asyncio connector classes it builds on."""
    try:
        import aiosqlite
        from sqlalchemy.dialects.sqlite.aiosqlite import (
            AsyncAdapt_aiosqlite_connection,
            AsyncAdapt_aiosqlite_cursor,
            AsyncAdapt_aiosqlite_dbapi,
        )
        from sqlalchemy.util import EMPTY_DICT
        from sqlalchemy.util.concurrency import await_
    except ImportError:  # pragma: no cover - older SQLAlchemy: keep its own adapter
        return None
    if not hasattr(AsyncAdapt_aiosqlite_connection, "_cursor_cls") or not hasattr(
        aiosqlite.Connection, "_execute"
    ):  # pragma: no cover
        return None

    class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
        __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

        def __init__(self, adapt_connection: Any) -> None:
            self._adapt_connection = adapt_connection
            self._connection = adapt_connection._connection
            self._cursor = None  # type: ignore[assignment] # no aiosqlite cursor: see _trip
            self._soft_closed_memoized = EMPTY_DICT
            self._rows: collections.deque[Any] = collections.deque()
            self._description: Any = None
            self._rowcount = -1
            self._lastrowid: int | None = None
            self._arraysize = 1

        @property
        def description(self) -> Any:
            return self._description

        @property
        def rowcount(self) -> int:
            return self._rowcount

        @property
        def lastrowid(self) -> Any:
            return self._lastrowid

        @property
        def arraysize(self) -> int:
            return self._arraysize

        @arraysize.setter
        def arraysize(self, value: int) -> None:
            self._arraysize = value

        async def _async_soft_close(self) -> None:
            return None  # nothing is open between trips

        def close(self) -> None:
            self._rows.clear()

        async def _trip(self, operation: Any, parameters: Any, many: bool) -> None:
            conn = self._connection
            async with self._adapt_connection._execute_mutex:
                result = await conn._execute(
                    _run_statement, conn._conn, operation, parameters, many
                )
            self._description, rows, self._rowcount, self._lastrowid = result
            self._rows = collections.deque(rows)

        def execute(self, operation: Any, parameters: Any = None) -> Any:
            try:
                await_(self._trip(operation, parameters, False))
            except Exception as error:  # noqa: BLE001 - translated like the stock cursor's
                self._adapt_connection._handle_exception(error)
            return None

        def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
            try:
                await_(self._trip(operation, seq_of_parameters, True))
            except Exception as error:  # noqa: BLE001
                self._adapt_connection._handle_exception(error)
            return None

    class OneHopConnection(AsyncAdapt_aiosqlite_connection):
        __slots__ = ()
        _cursor_cls = OneHopCursor

    class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
        def connect(self, *arg: Any, **kw: Any) -> Any:
            conn = super().connect(*arg, **kw)
            conn.__class__ = OneHopConnection
            return conn

    return OneHopDBAPI(aiosqlite, sqlite3)


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
