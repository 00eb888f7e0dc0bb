"""The operator's view (flows/ops.py) on SQLite and PostgreSQL: a clinic at a known moment,
with every figure worked out by hand from the cases' times below, and its table in three
languages (handlers/doctor/ops_render.py)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flows import ops
from flows.consultation import priority_of
from handlers.doctor.ops_render import duration, report, table
from locales import LOCALES, Translator
from storage.models import Consultation, Doctor
from storage.uow import Database, UnitOfWork

NOW = datetime(2026, 11, 2, 19, 0, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
ROUTINE = "consultation"  # limit 4 h (routing.toml)
URGENT = "consultation_24"  # limit 30 min


async def _doctor(uow: UnitOfWork, tg: int, departments: str, **fields: Any) -> Doctor:
    values: dict[str, Any] = {
        "tg_user_id": tg,
        "locale": "en",
        "status": "verified",
        "verified_until": NOW + timedelta(days=30),
        "departments": departments,
    }
    values.update(fields)
    return await uow.doctors.add(Doctor(**values))


async def _case(
    uow: UnitOfWork,
    department: str,
    disposition: str,
    state: str,
    requested: timedelta,
    *,
    waited: timedelta | None = None,
    changed: timedelta | None = None,
) -> Consultation:
    """A case that entered its queue ``requested`` before NOW; accepted ``waited`` after
    that; last changed ``changed`` before NOW."""
    requested_at = NOW - requested
    accepted_at = requested_at + waited if waited is not None else None
    return await uow.consultations.add(
        Consultation(
            patient_id="p" * 32,
            department=department,
            priority=priority_of(disposition),
            state=state,
            requested_at=requested_at,
            accepted_at=accepted_at,
            updated_at=NOW - changed if changed is not None else accepted_at or requested_at,
        )
    )


async def _clinic(uow: UnitOfWork) -> None:
    # Doctors: who counts as verified, and who as on duty at 19:00 UTC.
    await _doctor(uow, 1, "general")  # on duty, no set hours
    await _doctor(uow, 2, "general,cardiology", on_duty=False)
    await _doctor(uow, 3, "cardiology", work_hours="22:00-06:00", timezone="UTC")  # not yet
    await _doctor(uow, 4, "pediatrics", unreachable=True)  # blocked the bot
    await _doctor(uow, 5, "general", verified_until=NOW - timedelta(days=1))  # lapsed
    await _doctor(uow, 6, "general", status="suspended")
    await _doctor(uow, 7, "neurology", status="pending")  # not verified: neurology is empty
    # General practice: five acceptances in the window (10m, 40m, 50m, 4h, 4h30m).
    await _case(uow, "general", ROUTINE, "closed", 5 * H, waited=10 * M)
    await _case(uow, "general", ROUTINE, "active", 3 * H, waited=50 * M)
    await _case(uow, "general", ROUTINE, "active", 6 * H, waited=4 * H)  # at the limit: kept
    await _case(uow, "general", ROUTINE, "active", 7 * H, waited=4 * H + 30 * M)  # breach
    await _case(uow, "general", URGENT, "active", 2 * H, waited=40 * M)  # breach (30 min)
    await _case(uow, "general", ROUTINE, "closed", 40 * H, waited=10 * H)  # before the window
    await _case(uow, "general", ROUTINE, "waiting", 5 * H)  # oldest; breach
    await _case(uow, "general", URGENT, "waiting", 20 * M)
    await _case(uow, "general", ROUTINE, "expired", 26 * H, changed=2 * H)  # breach
    await _case(uow, "general", ROUTINE, "expired", 60 * H, changed=36 * H)  # long ago
    await _case(uow, "general", ROUTINE, "cancelled", 1 * H, changed=30 * M)  # not counted
    # Cardiology: one case waiting for an hour, nobody on duty.
    await _case(uow, "cardiology", ROUTINE, "waiting", 1 * H)
    # Stranded: no verified doctor in neurology, nor in a department the intake dropped.
    await _case(uow, "neurology", URGENT, "waiting", 45 * M)  # also a breach
    await _case(uow, "dentistry", ROUTINE, "waiting", 10 * M)


def _row(view: ops.Overview, department: str) -> ops.Row:
    [row] = [r for r in view.rows if r.department == department]
    return row


async def test_every_figure_of_a_known_clinic(db: Database) -> None:
    async with db.uow() as uow:
        await _clinic(uow)
        await uow.commit()
    async with db.uow() as uow:
        view = await ops.overview(uow, NOW, "UTC")
    assert view.at == NOW
    assert view.limits == {URGENT: 30 * M, ROUTINE: 4 * H}
    assert _row(view, "general") == ops.Row(
        "general", doctors=2, on_duty=1, waiting=2, oldest=5 * H, accepted=5,
        p50=50 * M, p90=4 * H + 30 * M, breaches=4, stranded=0,
    )  # fmt: skip
    assert _row(view, "cardiology") == ops.Row(
        "cardiology", doctors=2, on_duty=0, waiting=1, oldest=1 * H, accepted=0,
        p50=None, p90=None, breaches=0, stranded=0,
    )  # fmt: skip
    assert _row(view, "pediatrics") == ops.Row(
        "pediatrics", doctors=1, on_duty=0, waiting=0, oldest=None, accepted=0,
        p50=None, p90=None, breaches=0, stranded=0,
    )  # fmt: skip
    assert _row(view, "neurology") == ops.Row(
        "neurology", doctors=0, on_duty=0, waiting=1, oldest=45 * M, accepted=0,
        p50=None, p90=None, breaches=1, stranded=1,
    )  # fmt: skip
    # A department no longer in the questionnaire still shows (last), so totals add up.
    assert view.rows[-1] == ops.Row(
        "dentistry", doctors=0, on_duty=0, waiting=1, oldest=10 * M, accepted=0,
        p50=None, p90=None, breaches=0, stranded=1,
    )  # fmt: skip
    assert view.total == ops.Row(
        None, doctors=4, on_duty=1, waiting=5, oldest=5 * H, accepted=5,
        p50=50 * M, p90=4 * H + 30 * M, breaches=5, stranded=2,
    )  # fmt: skip
    assert view.stranded == ["neurology", "dentistry"]
    assert [r.department for r in view.rows if not r.idle] == [
        "general", "cardiology", "neurology", "pediatrics", "dentistry",
    ]  # fmt: skip


async def test_the_window_and_the_clock_are_the_callers(db: Database) -> None:
    """Figures are of ``now``: an hour earlier the 5-hour wait was 4 hours (at the limit, no
    breach yet); an acceptance exactly 24 h old is in the window, a second later it is not."""
    async with db.uow() as uow:
        await _case(uow, "general", ROUTINE, "waiting", 5 * H)
        await _case(uow, "general", ROUTINE, "active", 24 * H, waited=0 * M)
        await uow.commit()
    async with db.uow() as uow:
        at_now = await ops.overview(uow, NOW, "UTC")
        earlier = await ops.overview(uow, NOW - 1 * H, "UTC")
        after = await ops.overview(uow, NOW + timedelta(seconds=1), "UTC")
    assert (at_now.total.oldest, at_now.total.breaches, at_now.total.accepted) == (5 * H, 1, 1)
    assert (at_now.total.p50, at_now.total.p90) == (0 * M, 0 * M)
    assert (earlier.total.oldest, earlier.total.breaches, earlier.total.accepted) == (4 * H, 0, 1)
    assert (after.total.accepted, after.total.p50, after.total.breaches) == (0, None, 1)
    # No verified doctor at all: the waiting case is stranded.
    assert at_now.total.stranded == 1 and at_now.stranded == ["general"]


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7], 50, 7),
        ([7], 90, 7),
        ([4, 1, 3, 2], 50, 2),
        (list(range(1, 11)), 50, 5),
        (list(range(1, 11)), 90, 9),
        (list(range(1, 11)), 100, 10),
        (list(range(1, 12)), 90, 10),
    ],
)
def test_percentile_is_the_nearest_rank(values: list[int], p: float, expected: int | None) -> None:
    got = ops.percentile([timedelta(minutes=v) for v in values], p)
    assert got == (None if expected is None else timedelta(minutes=expected))


@pytest.mark.parametrize(
    ("span", "en", "ru", "zh"),
    [
        (None, "-", "-", "-"),
        (timedelta(seconds=59), "0m", "0м", "0分钟"),
        (45 * M, "45m", "45м", "45分钟"),
        (3 * H + 5 * M, "3h05m", "3ч05м", "3小时05分"),
        (47 * H + 59 * M, "47h59m", "47ч59м", "47小时59分"),
        (52 * H, "2d04h", "2д04ч", "2天04小时"),
    ],
)
def test_durations_are_short_in_every_language(
    span: timedelta | None, en: str, ru: str, zh: str
) -> None:
    assert [duration(Translator(loc), span) for loc in ("en", "ru", "zh_Hans")] == [en, ru, zh]


def _columns(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


@pytest.mark.parametrize("locale", LOCALES)
async def test_the_table_is_aligned_in_every_language(db: Database, locale: str) -> None:
    async with db.uow() as uow:
        await _clinic(uow)
        await uow.commit()
    async with db.uow() as uow:
        view = await ops.overview(uow, NOW, "UTC")
    tr = Translator(locale)
    lines = table(tr, view)
    assert len(lines) == 1 + 5 + 1  # header, the five departments with anything, total
    assert len({_columns(line) for line in lines}) == 1, lines  # CJK counted double
    total = lines[-1].split()
    assert total[0] == tr.plain("ops.total")
    assert total[1:] == ["4", "1", "5", duration(tr, 5 * H), duration(tr, 50 * M),
                         duration(tr, 4 * H + 30 * M), "5", "2"]  # fmt: skip
    text = report(tr, view, "Asia/Shanghai", rich=True)
    assert text.startswith(tr("ops.title", time="2026-11-03 03:00:00 Asia/Shanghai"))
    assert "<pre>" in text and "</pre>" in text
    assert tr.plain("ops.dept.neurology") in text.split("</pre>")[1]  # the stranded warning
    plain = report(tr, view, "UTC", rich=False)
    assert "<" not in plain and plain.splitlines()[1:8] == lines
