"""The weekly summary (flows/weekly.py): the trend sentence's rules as a table, the send time
in the patient's zone, and the summary through the real sweeper on SQLite and PostgreSQL —
the patient and a caregiver whose scope covers check-ins get it, a caregiver with a smaller
scope does not, a patient without readings that week gets nothing, and running the sweeper
again (a restart) sends nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from flows import charts, followup, weekly
from handlers.patient import checkins
from locales import Translator
from scheduler.sweeper import Sweeper
from storage.models import Caregiver, OutboxMessage, Patient, Reading, ScheduledEvent, new_id
from storage.uow import Database

BP = charts.TrendRule(min_readings=2, change=5, change_diastolic=3)
ONE = charts.TrendRule(min_readings=2, change=0.5)


@pytest.mark.parametrize(
    ("this", "last", "rule", "word"),
    [
        ([(138, 86), (138, 86)], [(146, 90), (146, 90)], BP, "lower"),
        ([(150, 95), (152, 95)], [(140, 90), (140, 90)], BP, "higher"),
        ([(140, 90), (142, 90)], [(140, 90), (139, 89)], BP, "stable"),
        ([(140, 86), (140, 86)], [(141, 90), (141, 90)], BP, "lower"),  # the diastolic moved
        ([(150, 84), (150, 84)], [(140, 90), (140, 90)], BP, "mixed"),
        ([(140, 90), (140, 90)], [(140, 90)], BP, "first"),
        ([(140, 90)], [(150, 90), (150, 90)], BP, "few"),
        ([(7.0,), (7.0,)], [(6.5,), (6.5,)], ONE, "higher"),  # exactly the change: counts
        ([(7.0,), (7.0,)], [(6.6,), (6.6,)], ONE, "stable"),
    ],
)
def test_trend_rules(
    this: list[tuple[float, ...]],
    last: list[tuple[float, ...]],
    rule: charts.TrendRule,
    word: str,
) -> None:
    found = weekly.trend("bp", this, last, rule)
    assert found is not None and found.word == word


def test_no_reading_this_week_no_trend() -> None:
    assert weekly.trend("bp", [], [(140, 90), (140, 90)], BP) is None


def test_sentences_in_three_languages() -> None:
    t = weekly.Trend("bp", "lower", (138.0, 86.0), (146.0, 90.0), 5)
    assert str(weekly.sentence(Translator("en"), t)) == (
        "Blood pressure was lower this week than last (average 138/86 mmHg against 146/90 mmHg)."
    )
    assert "138/86" in weekly.sentence(Translator("ru"), t)
    assert "138/86" in weekly.sentence(Translator("zh_Hans"), t)
    plain = str(weekly.sentence(Translator("en"), t, values=False))
    assert plain == "Blood pressure was lower this week than last." and "138" not in plain


def test_send_time_is_sunday_evening_in_the_patients_zone() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a Wednesday
    assert weekly.next_send("Asia/Shanghai", now) == datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    assert weekly.next_send("Europe/Moscow", now) == datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
    sunday = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai: the next one
    assert weekly.next_send("Asia/Shanghai", sunday) == sunday + timedelta(days=7)


SENT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)  # Sunday 18:00 in Shanghai


async def _reading(uow: object, patient: Patient, kind: str, value: str, at: datetime) -> None:
    row = Reading(id=new_id(), patient_id=patient.id, kind=kind, flag="none", taken_at=at,
                  value_enc=b"")  # fmt: skip
    row.value_enc = await uow.vault.seal(patient.id, "readings", "value_enc", row.id, value)  # type: ignore[attr-defined]
    uow.session.add(row)  # type: ignore[attr-defined]


async def _outbox(db: Database) -> list[tuple[int, str]]:
    async with db.uow() as uow:
        rows = await uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [(r.chat_id, r.method) for r in rows]


async def _sweep(sweeper: Sweeper, now: datetime) -> None:
    while await sweeper.sweep_once(now):
        pass


async def test_weekly_summary_to_patient_and_caregivers_in_scope_once(db: Database) -> None:
    async with db.uow() as uow:
        reader = await uow.patients.add(
            Patient(tg_user_id=7001, locale="ru", onboarding_state="done", consent_version="1",
                    timezone="Asia/Shanghai")
        )  # fmt: skip
        quiet = await uow.patients.add(
            Patient(tg_user_id=7002, locale="en", onboarding_state="done", consent_version="1",
                    timezone="Asia/Shanghai")
        )  # fmt: skip
        for days_ago, value in ((1, "138/86"), (3, "138/86"), (8, "146/90"), (10, "146/90")):
            await _reading(uow, reader, "bp", value, SENT - timedelta(days=days_ago))
        await _reading(uow, quiet, "bp", "140/90", SENT - timedelta(days=9))  # last week only
        for tg, scope, details in ((7101, "checkins", True), (7102, "checkins", False),
                                   (7103, "missed", True)):  # fmt: skip
            uow.session.add(
                Caregiver(patient_id=reader.id, tg_user_id=tg, status="active", scope=scope,
                          details=details, expires_at=SENT)
            )  # fmt: skip
        await uow.session.flush()
        # the quiet patient's summary was planned a week ago, when they had readings
        await weekly.plan_patient(uow, quiet, SENT - timedelta(days=2))
        await weekly.ensure_planner(uow, SENT - timedelta(days=2))
        await uow.commit()
    sweeper = Sweeper(db, checkins.scheduled())
    await _sweep(sweeper, SENT - timedelta(days=2))  # the planner plans the reader's summary
    async with db.uow() as uow:
        planned = list(
            await uow.session.scalars(
                select(ScheduledEvent).where(ScheduledEvent.kind == weekly.KIND)
            )
        )
        assert sorted(e.subject for e in planned) == sorted([reader.id, quiet.id])
        assert {followup.aware(e.due_at) for e in planned} == {SENT}
    assert await _outbox(db) == []

    await _sweep(sweeper, SENT + timedelta(minutes=1))
    sent = await _outbox(db)
    assert sorted(sent) == [(7001, "sendPhoto"), (7101, "sendPhoto"), (7102, "sendMessage")]
    # the same sweep again, a restart, the planner's next runs: nothing twice
    sweeper2 = Sweeper(db, checkins.scheduled())
    await sweeper2.release_leases()
    await _sweep(sweeper2, SENT + timedelta(minutes=2))
    await _sweep(sweeper2, SENT + timedelta(hours=3))
    async with db.uow() as uow:
        await weekly.plan_patient(uow, reader, SENT - timedelta(minutes=5))  # same key
        await uow.commit()
    await _sweep(sweeper2, SENT + timedelta(hours=4))
    assert sorted(await _outbox(db)) == sorted(sent)
    async with db.uow() as uow:
        nxt = list(
            await uow.session.scalars(
                select(ScheduledEvent).where(
                    ScheduledEvent.kind == weekly.KIND, ScheduledEvent.status == "pending"
                )
            )
        )
        # the reader's next week is planned; the quiet patient's chain stopped
        assert [(e.subject, followup.aware(e.due_at)) for e in nxt] == [
            (reader.id, SENT + timedelta(days=7))
        ]
