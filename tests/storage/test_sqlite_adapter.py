"""The SQLite adapter's hand-offs (storage/db.py): statements inside a transaction run on the
event loop's thread, BEGIN and COMMIT on aiosqlite's, and a BEGIN that waits for another
process's lock does not stall the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text

from storage.db import make_engine


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the functions sent to aiosqlite's thread."""
    seen: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return seen


async def test_a_transaction_is_two_hand_offs_whatever_its_statements(
    tmp_path: Path, hops: list[str]
) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        hops.clear()
        async with engine.begin() as conn:
            for i in range(20):
                await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"row {i}"})
            rows = (await conn.execute(text("SELECT count(*), max(id) FROM t"))).one()
            await conn.exec_driver_sql("UPDATE t SET v = 'x' WHERE id = 1")
        assert tuple(rows) == (20, 20)
        # BEGIN IMMEDIATE and COMMIT: not one hand-off for any of the 22 statements.
        assert len(hops) == 2, hops
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT v FROM t WHERE id = 1"))).scalar() == "x"
    finally:
        await engine.dispose()


async def test_a_failed_statement_rolls_back_like_before(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
            await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))

        async def clash() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (v) VALUES ('b')"))
                await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))

        with pytest.raises(Exception, match="UNIQUE"):
            await clash()
        async with engine.connect() as conn:
            values = (await conn.execute(text("SELECT v FROM t ORDER BY v"))).scalars().all()
        assert values == ["a"]
    finally:
        await engine.dispose()


async def test_waiting_for_another_process_lock_does_not_block_the_event_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process (the CLI) holds the write lock
        ticks = 0
        turned = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                if ticks >= 20:
                    turned.set()
                await asyncio.sleep(0.01)

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t DEFAULT VALUES"))

        tick_task = asyncio.create_task(ticker())
        writer = asyncio.create_task(write())
        started = time.monotonic()
        await asyncio.wait_for(turned.wait(), 30)
        assert not writer.done()  # still waiting for the lock, and the loop kept turning
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(writer, 30)
        tick_task.cancel()
        assert time.monotonic() - started < 30
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 1
    finally:
        await engine.dispose()
