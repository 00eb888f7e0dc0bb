"""No patient left waiting, end to end (both bots over the Bot API emulator): a case whose
department nobody staffs goes to general practice at once, with both sides told and an Accept
button on the doctor's notice; a case nobody of its department takes in time falls back, with
the patient and the fallback's doctors told; a patient is told honestly when nobody is on duty.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from flows import consultation as flow
from flows import routing
from storage.models import AuditRecord, Consultation
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_consultation import add_doctor, case_of, starts
from tests.e2e.test_intake import new_patient


def _has(token: str) -> Any:
    return lambda m: token in (m.get("text") or "")


async def _headache_case(clinic: Clinic) -> tuple[Any, Consultation]:
    p = await new_patient(clinic, "en")
    await p.to_red_flags("headache", "days_1_3", 5)
    await p.after_red_flags("headache")
    await p.confirm()
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("Your request is case"))
    return p, await case_of(clinic, p.uid)


async def test_an_unstaffed_department_goes_to_general_practice_at_once(
    sqlite_clinic: Clinic,
) -> None:
    clinic = sqlite_clinic
    gp = await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    since_gp = await clinic.seq(gp.uid, DOCTOR_BOT)
    p, case = await _headache_case(clinic)
    assert (case.preferred_department, case.department) == ("neurology", "general")
    opened = (await clinic.bot_texts(p.uid))[-1]
    assert p.t("consult.wait.routed", preferred="Neurology", department="General practice") in (
        opened
    )
    assert p.t("consult.wait.place", place=1) in opened
    # The GP's notice carries an Accept button; pressing it takes the case.
    notice = await gp.wait(
        starts(
            gp.t(
                "consult.doctor.new_case",
                number=case.number,
                department="General practice",
                level="",
            )[:20]
        ),
        since_gp,
    )
    [[accept]] = notice["reply_markup"]["inline_keyboard"]
    assert accept["text"] == gp.t("consult.doctor.accept")
    since = await clinic.seq(gp.uid, DOCTOR_BOT)
    await clinic.client.click(gp.uid, DOCTOR_BOT, notice["message_id"], accept["callback_data"])
    await gp.wait(
        starts(gp.t("consult.doctor.accepted", number=case.number, name="Alice")[:12]), since
    )
    # The notice showed no health details: the case's card (as /queue shows it) follows.
    card = await gp.wait(_has(gp.t("intake.category.headache")), since)
    assert card["text"].startswith(f"#{case.number} · Alice")
    assert card.get("protect_content") is True
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has(f"#{case.number}"))
    assert (await case_of(clinic, p.uid)).state == "active"
    async with clinic.app.db.uow() as uow:
        actions = [r.action for r in await uow.session.scalars(select(AuditRecord))]
    assert "consultation.routed" in actions
    assert clinic.app.processor.failed == 0


async def test_a_case_nobody_takes_in_time_falls_back_with_both_sides_told(
    sqlite_clinic: Clinic,
) -> None:
    clinic = sqlite_clinic
    await add_doctor(clinic, "Dr Nia Neurova", departments="neurology")
    gp = await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    p, case = await _headache_case(clinic)
    assert case.department == "neurology"
    since_p = await clinic.seq(p.uid)
    since_gp = await clinic.seq(gp.uid, DOCTOR_BOT)
    # Just before the limit of its disposition nothing moves; just after, it falls back.
    limit = routing.current().limit(flow.disposition_of(case))
    start = datetime.now(UTC)
    while await clinic.app.sweeper.sweep_once(start + limit - timedelta(minutes=2)):
        pass
    assert (await case_of(clinic, p.uid)).department == "neurology"
    while await clinic.app.sweeper.sweep_once(start + limit + timedelta(minutes=1)):
        pass
    moved = await case_of(clinic, p.uid)
    assert (moved.department, moved.preferred_department) == ("general", "neurology")
    told = await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("has moved"), since=since_p)
    assert told["text"] == p.t(
        "consult.fell_back", number=case.number, left="Neurology",
        department="General practice", place=1, emergency_number="112",
    )  # fmt: skip
    notice = await gp.wait(_has("has moved to"), since_gp)
    assert notice["reply_markup"]["inline_keyboard"][0][0]["text"] == gp.t("consult.doctor.accept")
    # /queue shows where it came from.
    shown = await gp.say("/queue", starts(f"#{case.number} ·"))
    assert shown["text"].startswith(f"#{case.number} ·")
    texts = await gp.texts()
    assert any(gp.t("consult.doctor.from", left="Neurology") in t for t in texts)
    # An event that fires again later does not move it further (general is the end).
    while await clinic.app.sweeper.sweep_once(start + limit * 3):
        pass
    assert (await case_of(clinic, p.uid)).department == "general"
    assert clinic.app.processor.failed == 0


async def test_nobody_on_duty_is_said_with_the_next_start(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    now = datetime.now(UTC)
    # Hours that are never "now": they start two hours from now and last one hour.
    start = (now + timedelta(hours=2)).strftime("%H:00")
    end = (now + timedelta(hours=3)).strftime("%H:00")
    await add_doctor(
        clinic, "Dr Ada Fictus", departments="general,neurology", work_hours=f"{start}-{end}",
        timezone="UTC",
    )  # fmt: skip
    p, case = await _headache_case(clinic)
    assert case.department == "neurology"
    opened = (await clinic.bot_texts(p.uid))[-1]
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(p.uid)
        assert patient is not None
        zone = ZoneInfo(patient.timezone or "UTC")
    shift = datetime.combine(now.date(), time.fromisoformat(start), UTC)
    if shift <= now:
        shift += timedelta(days=1)
    local = shift.astimezone(zone).strftime("%H:%M")
    assert opened.split("\n")[1].startswith(p.t("consult.wait.off_duty_at", time=local))
    assert "112" in opened
