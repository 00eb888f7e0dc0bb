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
        # check_same_thread=False: inside a transaction the statements run on the event loop's
        # thread (see _one_hop_dbapi), BEGIN and COMMIT on aiosqlite's; never both at once.
        connect_args = {"timeout": 30, "check_same_thread": False}
        engine = create_async_engine(url, echo=echo, connect_args=connect_args, **extra)
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
    """SQLAlchemy's aiosqlite adapter with fewer thread hand-offs: one per transaction's BEGIN
    and one per COMMIT or ROLLBACK, instead of three or four per statement (open cursor,
    execute, fetch, close: each a wake-up of aiosqlite's thread and then of the event loop).

    Inside a transaction (we always BEGIN IMMEDIATE, so it holds SQLite's write lock and no
    statement can wait on another connection's lock) a statement runs on the event loop's own
    thread: it takes microseconds, far less than the two wake-ups a hand-off costs. BEGIN
    (which may wait up to busy_timeout for another process), COMMIT (which may checkpoint the
    WAL) and anything outside a transaction (the pragmas) still go to aiosqlite's thread, one
    trip each. The connection is never used by both threads at once: the adapter's mutex is
    held for a trip, and a statement runs inline only when no trip is in flight. Same
    connection, same transactions; only the trips are fewer. ``None`` (the stock adapter)
    when this SQLAlchemy does not have the asyncio connector classes it builds on."""
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

        def _run(self, operation: Any, parameters: Any, many: bool) -> None:
            raw = self._connection._conn
            if raw.in_transaction and not self._adapt_connection._execute_mutex.locked():
                # Still through await_ (a coroutine that never suspends: no hand-off, no
                # event-loop turn), as SQLAlchemy's AsyncConnection.execute requires one.
                await_(self._inline(raw, operation, parameters, many))
            else:
                await_(self._trip(operation, parameters, many))

        async def _inline(
            self, raw: sqlite3.Connection, operation: Any, parameters: Any, many: bool
        ) -> None:
            result = _run_statement(raw, operation, parameters, many)
            self._description, rows, self._rowcount, self._lastrowid = result
            self._rows = collections.deque(rows)

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
                self._run(operation, parameters, False)
            except Exception as error:  # noqa: BLE001 - translated like the stock cursor's
                self._adapt_connection._handle_exception(error)
            return None

        def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
            try:
                self._run(operation, seq_of_parameters, True)
            except Exception as error:  # noqa: BLE001
                self._adapt_connection._handle_exception(error)
            return None

    class OneHopConnection(AsyncAdapt_aiosqlite_connection):
        __slots__ = ()
        _cursor_cls = OneHopCursor

        def _idle(self) -> bool:
            raw = self._connection._connection  # None once closed: let aiosqlite say so
            return raw is not None and not raw.in_transaction

        def rollback(self) -> None:
            # The pool rolls back every connection it takes back; with no transaction open
            # there is nothing to undo, so no trip to aiosqlite's thread for it.
            if not self._idle():
                super().rollback()

        def commit(self) -> None:
            if not self._idle():
                super().commit()

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
