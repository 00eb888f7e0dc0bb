"""The due-event queue and its sweeper, on SQLite and PostgreSQL; check-back timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from flows.checkback import due_time
from scheduler.sweeper import MAX_ATTEMPTS, Sweeper
from storage.models import ScheduledEvent
from storage.uow import Database, UnitOfWork

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def _add(db: Database, *dues: timedelta, kind: str = "test") -> None:
    async with db.uow() as uow:
        for i, d in enumerate(dues):
            await uow.events.add(kind, f"s{i}", "p1", NOW + d)
        await uow.commit()


async def test_sweeper_runs_what_is_due_once_in_order(db: Database) -> None:
    await _add(db, timedelta(minutes=-5), timedelta(minutes=-10), timedelta(minutes=5))
    seen: list[str] = []

    async def handler(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        seen.append(event.subject)

    sweeper = Sweeper(db, {"test": handler})
    assert await sweeper.sweep_once(NOW) == 2
    assert seen == ["s1", "s0"]  # oldest due first
    assert await sweeper.sweep_once(NOW) == 0
    assert await sweeper.sweep_once(NOW + timedelta(minutes=6)) == 1
    assert seen == ["s1", "s0", "s2"]


async def test_a_failing_event_is_retried_then_given_up_others_run(db: Database) -> None:
    await _add(db, timedelta(0), timedelta(0))
    calls: dict[str, int] = {}

    async def handler(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        calls[event.subject] = calls.get(event.subject, 0) + 1
        if event.subject == "s0":
            raise RuntimeError("broken")

    sweeper = Sweeper(db, {"test": handler})
    now = NOW
    for _ in range(MAX_ATTEMPTS + 2):
        await sweeper.sweep_once(now)
        now += timedelta(hours=1)
    assert calls == {"s0": MAX_ATTEMPTS, "s1": 1}
    async with db.uow() as uow:
        rows = {e.subject: e.status for e in await uow.session.scalars(select(ScheduledEvent))}
    assert rows == {"s0": "failed", "s1": "done"}


async def test_unknown_kind_fails_without_stopping_the_queue(db: Database) -> None:
    await _add(db, timedelta(0), kind="nobody_handles_this")
    sweeper = Sweeper(db, {})
    assert await sweeper.sweep_once(NOW) == 1
    assert sweeper.failed == 1
    assert await sweeper.sweep_once(NOW) == 0


@pytest.mark.parametrize(
    ("zone", "days", "expected"),
    [
        ("UTC", 1, datetime(2026, 11, 23, 10, 0, tzinfo=UTC)),
        ("Asia/Shanghai", 1, datetime(2026, 11, 23, 2, 0, tzinfo=UTC)),
        ("America/New_York", 3, datetime(2026, 11, 25, 15, 0, tzinfo=UTC)),
        (None, 1, datetime(2026, 11, 23, 10, 0, tzinfo=UTC)),
        ("Not/AZone", 1, datetime(2026, 11, 23, 10, 0, tzinfo=UTC)),
    ],
)
def test_check_back_comes_at_ten_local_time(
    zone: str | None, days: int, expected: datetime
) -> None:
    assert due_time(NOW, days, zone) == expected


def test_check_back_across_a_dst_change() -> None:
    """Europe/London leaves summer time on 2026-10-25: 10:00 local is 09:00 then 10:00 UTC."""
    before = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    assert due_time(before, 1, "Europe/London") == datetime(2026, 10, 25, 10, 0, tzinfo=UTC)
    assert due_time(before - timedelta(days=1), 1, "Europe/London") == datetime(
        2026, 10, 24, 9, 0, tzinfo=UTC
    )
