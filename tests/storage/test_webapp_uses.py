"""The Mini App replay guard's table (storage/webapp.py) on SQLite and PostgreSQL: launch data
is taken once, also by two transactions at once; a refused one leaves nothing; old rows go."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from storage.uow import Database

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


async def test_launch_data_is_taken_once(db: Database) -> None:
    async with db.uow() as uow:
        assert await uow.webapp.take("a" * 64, NOW, NOW) is True
        assert await uow.webapp.take("a" * 64, NOW, NOW) is False  # the same transaction
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.webapp.take("a" * 64, NOW, NOW) is False  # a later one
        assert await uow.webapp.take("b" * 64, NOW, NOW) is True
        # not committed: "b" stays unused


async def test_two_requests_at_once_take_it_once(db: Database) -> None:
    async def attempt() -> bool:
        async with db.uow() as uow:
            taken = await uow.webapp.take("c" * 64, NOW, NOW)
            if taken:
                await uow.commit()
            return taken

    results = await asyncio.gather(attempt(), attempt(), return_exceptions=True)
    assert sorted(r is True for r in results) == [False, True], results


async def test_rows_too_old_to_matter_are_forgotten(db: Database) -> None:
    async with db.uow() as uow:
        await uow.webapp.take("d" * 64, NOW - timedelta(hours=3), NOW)
        await uow.webapp.take("e" * 64, NOW, NOW)
        assert await uow.webapp.forget_older(NOW - timedelta(hours=1)) == 1
        assert await uow.webapp.take("e" * 64, NOW, NOW) is False
        assert await uow.webapp.take("d" * 64, NOW, NOW) is True
