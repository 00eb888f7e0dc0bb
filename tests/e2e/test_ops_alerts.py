"""Alerts to admins end to end (both bots over the Bot API emulator, the sweeper on a fake
clock): a case over its limit reaches each admin exactly once, in their language, with Accept
for the admin who is also a doctor of its department, even after repeated sweeps and a
restart; a department with a waiting case and nobody on duty is reported once, not again
while it lasts (across a restart too), and again when it recurs after being staffed."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import Careline
from flows import ops, routing
from flows.consultation import disposition_of
from locales import Translator
from storage.models import Consultation, ScheduledEvent
from storage.uow import Database
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import add_doctor, case_of, consult
from tests.e2e.test_intake import Patient, new_patient

FIRST, SECOND = 700000001, 700000002  # the emulator numbers users from 700000001
EN, ZH = Translator("en"), Translator("zh_Hans")


@pytest.fixture
async def aclinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """A clinic on SQLite (restarted in the tests) whose first two people are admins."""
    c, schema = await start_clinic(tmp_path, "sqlite", log_capture, admin_ids=(FIRST, SECOND))
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


async def _restart(clinic: Clinic) -> None:
    """The bot process stops and a new one starts on the same database."""
    await clinic.app.stop()
    db = Database(f"sqlite+aiosqlite:///{clinic.data_dir / 'careline.db'}", clinic.app.db.ring)
    clinic.app = await Careline.build(clinic.settings, db)
    await clinic.app.start()


async def _sweep(clinic: Clinic, at: datetime) -> None:
    while await clinic.app.sweeper.sweep_once(at):
        pass


def _starting(prefix: str) -> Any:
    return lambda m: (m.get("text") or "").startswith(prefix)


async def _alerts(clinic: Clinic, uid: int, prefix: str) -> list[dict[str, Any]]:
    msgs = (await clinic.client.messages(uid, DOCTOR_BOT))["messages"]
    return [m for m in msgs if m["from"] == "bot" and (m.get("text") or "").startswith(prefix)]


async def _requested(clinic: Clinic, number: int) -> datetime:
    async with clinic.app.db.uow() as uow:
        case = await uow.consultations.by_number(number)
        assert case is not None
        at = case.requested_at
        return at if at.tzinfo else at.replace(tzinfo=UTC)


async def _next_check(clinic: Clinic) -> datetime:
    """When the planned staffing check is due."""
    async with clinic.app.db.uow() as uow:
        due = await uow.session.scalar(
            select(ScheduledEvent.due_at).where(
                ScheduledEvent.kind == ops.STAFFING, ScheduledEvent.status == "pending"
            )
        )
    assert due is not None, "no staffing check is planned"
    return due if due.tzinfo else due.replace(tzinfo=UTC)


async def _headache(clinic: Clinic) -> tuple[Patient, Consultation]:
    """A headache case (within 24 hours): the triage sends it to neurology."""
    p = await new_patient(clinic, "en")
    await p.to_red_flags("headache", "days_1_3", 5)
    await p.after_red_flags("headache")
    since = await clinic.seq(p.uid)
    await p.confirm()
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, _starting("Your request is case"), since=since
    )
    return p, await case_of(clinic, p.uid)


async def test_a_breach_reaches_each_admin_once(aclinic: Clinic) -> None:
    clinic = aclinic
    # An admin who is also a GP and reads Chinese, and one who is not a doctor (told in the
    # clinic's language: the doctor bot keeps no language for them).
    gp = await add_doctor(clinic, "Dr Ada Fictus", departments="general", locale="zh_Hans")
    assert gp.uid == FIRST
    lead = await clinic.person("Sam Opsworth")
    assert lead == SECOND
    await clinic.say(lead, "/start", DOCTOR_BOT)
    await add_doctor(clinic, "Dr Nia Neurova", departments="neurology")
    p, case = await _headache(clinic)
    assert (case.department, case.preferred_department) == ("neurology", "neurology")
    requested = await _requested(clinic, case.number)
    assert disposition_of(case) == "consultation_24"
    limit = routing.current().limit("consultation_24")
    # At its limit the case falls back to general practice; nobody is told of a breach yet.
    await _sweep(clinic, requested + limit)
    assert (await case_of(clinic, p.uid)).department == "general"
    assert await _alerts(clinic, gp.uid, "⏰") == []
    # A minute over the limit: each admin is told once, in their language.
    since_gp, since_lead = await clinic.seq(gp.uid, DOCTOR_BOT), await clinic.seq(lead, DOCTOR_BOT)
    await _sweep(clinic, requested + limit + timedelta(minutes=1))
    to_gp = await clinic.client.wait_for(gp.uid, DOCTOR_BOT, _starting("⏰"), since=since_gp)
    to_lead = await clinic.client.wait_for(lead, DOCTOR_BOT, _starting("⏰"), since=since_lead)
    assert to_lead["text"] == EN.plain(
        "ops.alert.breach", number=case.number, level="urgent",
        route="Neurology→General practice", waited="31m", limit="30m",
        on_duty=EN.plain("ops.alert.on_duty", names="Dr Ada Fictus"),
    )  # fmt: skip
    assert to_gp["text"] == ZH.plain(
        "ops.alert.breach", number=case.number, level=ZH.plain("ops.level.consultation_24"),
        route=f"{ZH.plain('dept.neurology')}→{ZH.plain('dept.general')}",
        waited=ZH.plain("ops.dur.minutes", n=31), limit=ZH.plain("ops.dur.minutes", n=30),
        on_duty=ZH.plain("ops.alert.on_duty", names="Dr Ada Fictus"),
    )  # fmt: skip
    assert not (to_lead.get("reply_markup") or {}).get("inline_keyboard")  # nothing to accept
    # Repeated sweeps and a restart tell nobody again.
    await _sweep(clinic, requested + limit + timedelta(minutes=2))
    await _sweep(clinic, requested + limit + timedelta(hours=2))
    await _restart(clinic)
    await _sweep(clinic, requested + limit + timedelta(hours=3))
    # The admin who is a GP takes the case from the alert.
    [[accept]] = to_gp["reply_markup"]["inline_keyboard"]
    assert accept["text"] == gp.t("consult.doctor.accept")
    since = await clinic.seq(gp.uid, DOCTOR_BOT)
    await clinic.client.click(gp.uid, DOCTOR_BOT, to_gp["message_id"], accept["callback_data"])
    await gp.wait(_starting(f"#{case.number} ·"), since)
    assert (await case_of(clinic, p.uid)).state == "active"
    assert len(await _alerts(clinic, gp.uid, "⏰")) == 1
    assert len(await _alerts(clinic, lead, "⏰")) == 1
    assert clinic.app.processor.failed == 0 and clinic.app.sweeper.failed == 0


async def test_an_unstaffed_department_is_reported_once_per_episode(aclinic: Clinic) -> None:
    clinic = aclinic
    admin = await clinic.person("Sam Opsworth")
    assert admin == FIRST
    await clinic.say(admin, "/start", DOCTOR_BOT)
    gp = await add_doctor(clinic, "Dr Ada Fictus", departments="general", on_duty=False)
    since = await clinic.seq(admin, DOCTOR_BOT)
    await consult(await new_patient(clinic, "en"))  # cough and cold: general practice
    # The case's queue entry checks the staffing at once: nobody of general practice is on
    # duty, and no one has working hours to wait for.
    told = await clinic.client.wait_for(admin, DOCTOR_BOT, _starting("⚠️"), since=since)
    assert told["text"] == EN.plain(
        "ops.alert.unstaffed", department="General practice", waiting=1, oldest="0m",
        next=EN.plain("ops.alert.no_next"),
    )  # fmt: skip
    # Every quarter hour it is checked again: the same episode, nothing new; a restart
    # changes nothing.
    await _sweep(clinic, await _next_check(clinic))
    await _restart(clinic)
    await _sweep(clinic, await _next_check(clinic))
    assert len(await _alerts(clinic, admin, "⚠️")) == 1
    # The GP goes on duty: staffed; then off again: a new episode, a new alert.
    async with clinic.app.db.uow() as uow:
        doctor = await uow.doctors.by_tg_user(gp.uid)
        assert doctor is not None
        doctor.on_duty = True
        await uow.commit()
    await _sweep(clinic, await _next_check(clinic))
    assert len(await _alerts(clinic, admin, "⚠️")) == 1
    async with clinic.app.db.uow() as uow:
        doctor = await uow.doctors.by_tg_user(gp.uid)
        assert doctor is not None
        doctor.on_duty = False
        await uow.commit()
    since = await clinic.seq(admin, DOCTOR_BOT)
    await _sweep(clinic, await _next_check(clinic))
    again = await clinic.client.wait_for(admin, DOCTOR_BOT, _starting("⚠️"), since=since)
    assert again["text"].startswith(EN.plain("ops.alert.unstaffed", department="General practice",
                                             waiting=1, oldest="", next="")[:40])  # fmt: skip
    await _sweep(clinic, await _next_check(clinic))
    assert len(await _alerts(clinic, admin, "⚠️")) == 2
    assert clinic.app.processor.failed == 0 and clinic.app.sweeper.failed == 0
