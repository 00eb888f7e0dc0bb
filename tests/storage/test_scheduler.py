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


async def test_an_occurrence_key_is_enqueued_once(db: Database) -> None:
    async with db.uow() as uow:
        first = await uow.events.add("test", "s", "p1", NOW, key="dose:plan:2026-11-22 12:00")
        again = await uow.events.add("test", "s", "p1", NOW, key="dose:plan:2026-11-22 12:00")
        await uow.commit()
    assert first is not None and first.key == "dose:plan:2026-11-22 12:00"
    assert again is None
    seen: list[int] = []

    async def handler(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        seen.append(event.id)
        # the same occurrence again from inside a handler (a retried chain): still nothing
        assert await uow.events.add("test", "s", "p1", now, key=event.key) is None

    sweeper = Sweeper(db, {"test": handler})
    assert await sweeper.sweep_once(NOW) == 1
    assert await sweeper.sweep_once(NOW + timedelta(days=1)) == 0
    assert seen == [first.id]


async def test_urgent_events_are_claimed_before_routine_ones(db: Database) -> None:
    async with db.uow() as uow:
        for i in range(5):
            await uow.events.add("test", f"routine{i}", "p1", NOW - timedelta(minutes=10 - i))
        await uow.events.add("test", "urgent", "p1", NOW, priority=0)
        await uow.commit()
    seen: list[str] = []

    async def handler(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        seen.append(event.subject)

    sweeper = Sweeper(db, {"test": handler}, batch=2)
    assert await sweeper.sweep_once(NOW) == 2
    assert seen == ["urgent", "routine0"]


async def test_cancelled_events_do_not_run(db: Database) -> None:
    await _add(db, timedelta(0), timedelta(0))
    async with db.uow() as uow:
        assert await uow.events.cancel_for("test", "s0") == 1
        await uow.commit()
    seen: list[str] = []

    async def handler(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        seen.append(event.subject)

    assert await Sweeper(db, {"test": handler}).sweep_once(NOW) == 1
    assert seen == ["s1"]


async def test_a_dead_workers_lease_runs_out_and_another_worker_runs_it_once(
    db: Database,
) -> None:
    await _add(db, timedelta(0), timedelta(0))
    seen: list[tuple[str, str]] = []

    def recorder(name: str):  # type: ignore[no-untyped-def]
        async def handler(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
            seen.append((name, event.subject))

        return handler

    dead = Sweeper(db, {"test": recorder("dead")}, worker="dead", lease=timedelta(seconds=60))
    alive = Sweeper(db, {"test": recorder("alive")}, worker="alive")
    # The dead worker leased both rows, then died before running them.
    async with db.uow() as uow:
        ids = await uow.events.lease_due(NOW, 10, "dead", timedelta(seconds=60))
        await uow.commit()
    assert len(ids) == 2
    assert await alive.sweep_once(NOW + timedelta(seconds=30)) == 0  # still leased
    assert await alive.sweep_once(NOW + timedelta(seconds=61)) == 2  # lease ran out
    # The dead worker "wakes up": its rows were taken over, it runs nothing.
    async with db.uow() as uow:
        assert await uow.events.leased(ids, "dead") == []
    assert await dead.sweep_once(NOW + timedelta(seconds=62)) == 0
    assert sorted(seen) == [("alive", "s0"), ("alive", "s1")]
    async with db.uow() as uow:
        rows = {(r.status, r.leased_by) for r in await uow.session.scalars(select(ScheduledEvent))}
    assert rows == {("done", "alive")}


async def test_two_workers_on_separate_connections_run_every_event_exactly_once(
    db: Database,
) -> None:
    """Two sweepers with engines of their own (as two processes would have) drain 400 due
    events concurrently: every event runs once, none twice. On PostgreSQL this exercises
    SKIP LOCKED; on SQLite the single writer."""
    import asyncio

    async with db.uow() as uow:
        for i in range(400):
            await uow.events.add("test", f"s{i}", "p1", NOW - timedelta(seconds=i % 7))
        await uow.commit()
    other = Database(db.url, db.ring, **db.options)
    runs: list[str] = []

    async def handler(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        runs.append(event.subject)
        await asyncio.sleep(0)  # let the other worker in

    workers = [
        Sweeper(db, {"test": handler}, batch=25, worker="w1"),
        Sweeper(other, {"test": handler}, batch=25, worker="w2"),
    ]

    async def drain(sweeper: Sweeper) -> int:
        total = 0
        while (claimed := await sweeper.sweep_once(NOW)) > 0:
            total += claimed
        return total

    try:
        counts = await asyncio.gather(*(drain(w) for w in workers))
    finally:
        await other.dispose()
    assert sum(counts) == 400
    assert sorted(runs) == sorted(f"s{i}" for i in range(400))
    if not db.sqlite:
        assert all(c > 0 for c in counts), counts  # both took part


async def test_a_full_outbox_holds_routine_events_back_but_not_urgent_ones(db: Database) -> None:
    """Back-pressure: while the outbox holds ``max_backlog`` waiting calls the live sweep runs
    only urgent events; routine ones run once the sender has caught up."""
    from sqlalchemy import update

    from storage.models import OutboxMessage

    async with db.uow() as uow:
        await uow.events.add("test", "routine", "p1", NOW)
        await uow.events.add("test", "urgent", "p1", NOW, priority=0)
        for chat in (1, 2):
            await uow.outbox.enqueue("patient", chat, "sendMessage", {"text": "waiting"})
        await uow.commit()
    seen: list[str] = []

    async def handler(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        seen.append(event.subject)

    sweeper = Sweeper(db, {"test": handler}, max_backlog=2)
    await sweeper.drain()
    assert seen == ["urgent"]
    async with db.uow() as uow:  # the sender caught up
        await uow.session.execute(update(OutboxMessage).values(status="sent"))
        await uow.commit()
    await sweeper.drain()
    assert seen == ["urgent", "routine"]
