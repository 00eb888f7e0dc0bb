"""Alerts to admins (flows/ops.py) on SQLite and PostgreSQL, driven through the real sweeper
on a fake clock: a case over its limit is reported once per queue entry (a fallback keeps the
entry, a transfer starts a new one, an accepted case is not reported), and a department with
waiting cases and nobody on duty once per episode — not again while it lasts, after a
downtime or a repeated sweep, but again once it was staffed or emptied and recurs. Also where
the weekly summary falls (Monday 08:00 clinic time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from flows import ops
from flows.consultation import priority_of
from scheduler.sweeper import Sweeper
from storage.models import Consultation, Doctor, ScheduledEvent
from storage.uow import Database, UnitOfWork

NOW = datetime(2026, 11, 2, 19, 0, tzinfo=UTC)  # a Monday, on a quarter hour
M = timedelta(minutes=1)
H = timedelta(hours=1)
ROUTINE_LIMIT = 4 * H  # routing.toml


async def _doctor(uow: UnitOfWork, tg: int, departments: str, name: str, **fields: Any) -> Doctor:
    values: dict[str, Any] = {
        "tg_user_id": tg,
        "locale": "en",
        "status": "verified",
        "verified_until": NOW + timedelta(days=30),
        "departments": departments,
    }
    values.update(fields)
    doctor = await uow.doctors.add(Doctor(**values))
    await uow.doctors.set_field(doctor, "name", name)
    return doctor


async def _queued(db: Database, department: str, at: datetime, **fields: Any) -> str:
    """A routine case entering ``department``'s queue at ``at`` (the hook runs as in
    flows.consultation); returns its id."""
    async with db.uow() as uow:
        case = await uow.consultations.add(
            Consultation(
                patient_id="p" * 32, department=department, state="waiting",
                priority=priority_of("consultation"), requested_at=at, updated_at=at, **fields,
            )
        )  # fmt: skip
        await ops.case_queued(uow, case, at)
        await uow.commit()
        return case.id


async def _change(db: Database, case_id: str | None = None, **fields: Any) -> None:
    async with db.uow() as uow:
        if case_id is None:
            [target] = await uow.doctors.with_status("verified")
            for name, value in fields.items():
                setattr(target, name, value)
        else:
            case = await uow.consultations.get(case_id)
            assert case is not None
            for name, value in fields.items():
                setattr(case, name, value)
        await uow.commit()


class Alerts:
    """The sweeper with the ops handlers, recording what the admins would be told."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.told: list[tuple[Any, ...]] = []

        async def breach(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
            found = await ops.breach_due(uow, event, now, "UTC")
            if found is not None:
                self.told.append(
                    ("breach", found.case.id, found.waited, found.limit, tuple(found.on_duty))
                )

        async def staffing(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
            for u in await ops.staffing_due(uow, event, now, "UTC"):
                self.told.append(("unstaffed", u.department, u.waiting, u.oldest, u.doctors))

        self.sweeper = Sweeper(db, {ops.BREACH: breach, ops.STAFFING: staffing}, worker="w")

    async def at(self, moment: datetime) -> list[tuple[Any, ...]]:
        """Sweep everything due by ``moment``; returns what was told in that sweep."""
        before = len(self.told)
        while await self.sweeper.sweep_once(moment):
            pass
        assert self.sweeper.failed == 0
        return self.told[before:]

    async def pending(self, kind: str) -> list[datetime]:
        async with self.db.uow() as uow:
            rows = await uow.session.scalars(
                select(ScheduledEvent.due_at).where(
                    ScheduledEvent.kind == kind, ScheduledEvent.status == "pending"
                )
            )
            return sorted(d if d.tzinfo else d.replace(tzinfo=UTC) for d in rows)


async def test_an_unstaffed_department_is_told_once_per_episode(db: Database) -> None:
    async with db.uow() as uow:
        await _doctor(uow, 1, "general", "Dr Ada Fictus", on_duty=False)
        await uow.commit()
    alerts = Alerts(db)
    await _queued(db, "general", NOW)
    # The hook plans a check now; it finds general practice with a case and nobody on duty.
    assert await alerts.pending(ops.STAFFING) == [NOW]
    assert await alerts.at(NOW) == [("unstaffed", "general", 1, 0 * M, 1)]
    assert await alerts.at(NOW) == []  # a repeated sweep
    assert await alerts.pending(ops.STAFFING) == [NOW + 30 * M]  # every quarter hour
    # A second case in the same episode: its hook finds the quarter's check planned.
    await _queued(db, "general", NOW + 20 * M)
    assert await alerts.pending(ops.STAFFING) == [NOW + 30 * M]
    assert await alerts.at(NOW + 30 * M) == []
    # Staffed for a while: no alert; then nobody again: a new episode, a new alert.
    await _change(db, on_duty=True)
    assert await alerts.at(NOW + 45 * M) == []
    await _change(db, on_duty=False)
    assert await alerts.at(NOW + 60 * M) == [("unstaffed", "general", 2, 60 * M, 1)]
    # A downtime: the overdue check runs late, knows the episode goes on, and the next check
    # is planned from now, not for every missed quarter.
    assert await alerts.at(NOW + 3 * H + 5 * M) == []
    assert await alerts.pending(ops.STAFFING) == [NOW + 3 * H + 15 * M]
    # Emptied: the checks stop; a case later is a new episode, checked at once.
    async with db.uow() as uow:
        for case in await uow.consultations.waiting(["general"]):
            case.state = "active"
        await uow.commit()
    assert await alerts.at(NOW + 3 * H + 15 * M) == []
    assert await alerts.pending(ops.STAFFING) == []
    await _queued(db, "general", NOW + 3 * H + 40 * M)
    assert await alerts.at(NOW + 3 * H + 40 * M) == [("unstaffed", "general", 1, 0 * M, 1)]


async def test_no_verified_doctor_and_working_hours_are_told(db: Database) -> None:
    async with db.uow() as uow:
        await _doctor(uow, 1, "cardiology", "Dr Cor Imaginary", work_hours="08:00-12:00",
                      timezone="UTC")  # fmt: skip
        await uow.commit()
    alerts = Alerts(db)
    await _queued(db, "cardiology", NOW)
    await _queued(db, "neurology", NOW)  # nobody verified there at all
    async with db.uow() as uow:
        [event] = await uow.session.scalars(
            select(ScheduledEvent).where(ScheduledEvent.kind == ops.STAFFING)
        )
        found = await ops.staffing_due(uow, event, NOW, "UTC")
    assert [(u.department, u.doctors, u.next_start) for u in found] == [
        ("cardiology", 1, datetime(2026, 11, 3, 8, 0, tzinfo=UTC)),
        ("neurology", 0, None),
    ]
    assert len(await alerts.at(NOW)) == 2


async def test_a_breach_is_told_once_per_queue_entry(db: Database) -> None:
    async with db.uow() as uow:
        await _doctor(uow, 1, "neurology", "Dr Nia Neurova")
        await _doctor(uow, 2, "general", "Dr Ada Fictus")
        await uow.commit()
    alerts = Alerts(db)
    falls = await _queued(db, "neurology", NOW, preferred_department="neurology")
    moved = await _queued(db, "general", NOW)
    taken = await _queued(db, "general", NOW)
    assert await alerts.pending(ops.BREACH) == [NOW + ROUTINE_LIMIT + timedelta(seconds=1)] * 3
    # At the limit nothing is told (over it, not at it).
    assert await alerts.at(NOW + ROUTINE_LIMIT) == []
    # The first falls back to general practice at its limit: the same queue entry, no second
    # breach event.
    async with db.uow() as uow:
        case = await uow.consultations.get(falls)
        assert case is not None
        case.department = "general"
        await ops.case_queued(uow, case, NOW + ROUTINE_LIMIT)
        await uow.commit()
    # The second was transferred after an hour: a new entry, a new limit.
    async with db.uow() as uow:
        case = await uow.consultations.get(moved)
        assert case is not None
        case.requested_at = NOW + H
        await ops.case_queued(uow, case, NOW + H)
        await uow.commit()
    await _change(db, taken, state="active")  # the third was accepted in time
    told = await alerts.at(NOW + ROUTINE_LIMIT + M)
    assert [t for t in told if t[0] == "breach"] == [
        ("breach", falls, ROUTINE_LIMIT + M, ROUTINE_LIMIT, ("Dr Ada Fictus",))
    ]
    assert await alerts.at(NOW + ROUTINE_LIMIT + 2 * M) == []
    told = await alerts.at(NOW + H + ROUTINE_LIMIT + M)
    assert [t for t in told if t[0] == "breach"] == [
        ("breach", moved, ROUTINE_LIMIT + M, ROUTINE_LIMIT, ("Dr Ada Fictus",))
    ]
    assert await alerts.at(NOW + 30 * H) == []
    assert await alerts.pending(ops.BREACH) == []


async def test_a_raised_limit_moves_the_alert(db: Database) -> None:
    """A breach event that comes before its case's limit (the limit was raised since) is
    planned again for the new limit instead of being lost."""
    alerts = Alerts(db)
    case_id = await _queued(db, "general", NOW)
    async with db.uow() as uow:
        case = await uow.consultations.get(case_id)
        assert case is not None
        early = await uow.events.add(ops.BREACH, case.id, case.patient_id, NOW + H,
                                     key=ops.breach_key(case) + ":early")  # fmt: skip
        assert early is not None
        await uow.session.execute(
            update(ScheduledEvent)
            .where(ScheduledEvent.key == ops.breach_key(case))
            .values(status="cancelled")
        )
        await uow.commit()
    assert [t for t in await alerts.at(NOW + H) if t[0] == "breach"] == []
    assert await alerts.pending(ops.BREACH) == [NOW + ROUTINE_LIMIT + timedelta(seconds=1)]
    told = await alerts.at(NOW + ROUTINE_LIMIT + M)
    assert [t[:2] for t in told if t[0] == "breach"] == [("breach", case_id)]


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        # Monday 08:00 in Shanghai is 00:00 UTC; just before it, it is that day's.
        (datetime(2026, 11, 8, 23, 59, tzinfo=UTC), "Asia/Shanghai",
         datetime(2026, 11, 9, 0, 0, tzinfo=UTC)),
        # At the moment itself: the next week's.
        (datetime(2026, 11, 9, 0, 0, tzinfo=UTC), "Asia/Shanghai",
         datetime(2026, 11, 16, 0, 0, tzinfo=UTC)),
        # London across the end of summer time (25 October 2026): 08:00 local each time.
        (datetime(2026, 10, 20, 12, 0, tzinfo=UTC), "Europe/London",
         datetime(2026, 10, 26, 8, 0, tzinfo=UTC)),
        (datetime(2026, 10, 12, 12, 0, tzinfo=UTC), "Europe/London",
         datetime(2026, 10, 19, 7, 0, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_the_weekly_summary_is_monday_0800_clinic_time(
    now: datetime, zone: str, expected: datetime
) -> None:
    assert ops.next_weekly(now, zone) == expected


async def test_the_weekly_summary_is_planned_once(db: Database) -> None:
    async with db.uow() as uow:
        for _ in range(3):
            await ops.plan_weekly(uow, NOW, "Asia/Shanghai")
        await uow.commit()
    async with db.uow() as uow:
        rows = await uow.session.execute(
            select(ScheduledEvent.key, ScheduledEvent.subject, ScheduledEvent.due_at).where(
                ScheduledEvent.kind == ops.WEEKLY
            )
        )
        found = [(k, s, d if d.tzinfo else d.replace(tzinfo=UTC)) for k, s, d in rows]
    assert found == [("ops.weekly:2026-11-09", "clinic", datetime(2026, 11, 9, 0, 0, tzinfo=UTC))]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (NOW, NOW + 15 * M),
        (NOW + timedelta(seconds=1), NOW + 15 * M),
        (NOW + 14 * M + timedelta(seconds=59), NOW + 15 * M),
        (NOW + 15 * M, NOW + 30 * M),
    ],
)
def test_checks_run_on_the_quarter_hours(moment: datetime, expected: datetime) -> None:
    assert ops.next_slot(moment) == expected
