"""Hospital appointments end to end over the emulator, in English, Russian and Chinese: a
doctor issues a referral to a hospital that takes bookings and books a time for the patient;
the patient gets it with what to bring; the hospital's desk sees the day's list, marks the
patient arrived and records the outcome, which goes back to the referring doctor, and the
patient is pointed to a follow-up online consultation. Also: the patient books from
/referrals and cancels ("I can't come": the desk is told, the place is free again), another
hospital's desk and a doctor are refused, and a stale desk button says someone marked it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flows import appointments as apf
from storage.models import Hospital, HospitalAppointment, Referral, utcnow
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import Doc, add_doctor, consult, is_text, starts
from tests.e2e.test_intake import has_button, new_patient
from tests.e2e.test_onboarding import NAMES

HOSPITAL = "Riverside General Hospital"
CITY = "Maplebrook"
SERVICE = "Holter monitoring"
REASON = {"en": "Palpitations", "ru": "Сердцебиение", "zh_Hans": "心悸"}
OUTCOME = "Holter 24 h: sinus rhythm, 3 PVCs; no pauses"


@pytest.fixture
async def aclinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    c, schema = await start_clinic(tmp_path, "sqlite", log_capture)
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


async def hospital_with_times(clinic: Clinic, capacity: int = 3) -> tuple[str, str]:
    """A directory hospital with a bookable examination at 09:00 in two days; returns its id
    and the day (ISO)."""
    day = (utcnow() + timedelta(days=2)).date()
    async with clinic.app.db.uow() as uow:
        hospital = Hospital(name=HOSPITAL, city=CITY, departments='["Cardiology"]')
        uow.session.add(hospital)
        await uow.session.flush()
        service = await apf.add_service(
            uow, "admin:test", hospital.id, "Cardiology", "examination", SERVICE,
            "previous ECGs and your medicines",
        )  # fmt: skip
        await apf.add_slots(uow, "admin:test", service.id, [day], ["09:00"], capacity, "UTC")
        await uow.commit()
        return hospital.id, day.isoformat()


async def make_desk(clinic: Clinic, hospital_id: str, locale: str) -> Doc:
    uid = await clinic.person("Desk", "en")
    async with clinic.app.db.uow() as uow:
        await apf.make_desk(uow, "admin:test", hospital_id, uid, "Front desk", locale)
        await uow.commit()
    since = await clinic.seq(uid, DOCTOR_BOT)
    await clinic.client.start(uid, DOCTOR_BOT)
    await clinic.client.wait_for(uid, DOCTOR_BOT, since=since)
    return Doc(clinic, uid, "Front desk", locale)


async def issue_referral(doc: Doc, number: int, locale: str) -> dict[str, Any]:
    """The /referral wizard to the hospital of the directory, issued; returns the doctor's
    message with the hospital's free times."""
    t = doc.t
    await doc.say(f"/referral {number}", has_button(f"{HOSPITAL} · {CITY}"))
    await doc.press(f"{HOSPITAL} · {CITY}", has_button("Cardiology"))
    await doc.press("Cardiology", lambda m: bool(m.get("text")))
    await doc.say(REASON[locale], has_button(t("ref.urgency.within_2w")))
    await doc.press(t("ref.urgency.within_2w"), has_button(t("ref.wiz.keep_findings")))
    await doc.press(t("ref.wiz.keep_findings"), has_button(t("ref.wiz.days", n=14)))
    await doc.press(t("ref.wiz.days", n=14), has_button(t("ref.wiz.issue")))
    return await doc.press(t("ref.wiz.issue"), is_text(t("appt.doc.choose")))


def _time_button(message: dict[str, Any]) -> str:
    rows = message["reply_markup"]["inline_keyboard"]
    return str(rows[0][0]["text"])


async def _rows(clinic: Clinic) -> list[HospitalAppointment]:
    async with clinic.app.db.uow() as uow:
        rows = list(await uow.session.scalars(select(HospitalAppointment)))
        uow.session.expunge_all()
        return rows


@pytest.mark.parametrize("locale", ["en", "ru", "zh_Hans"])
async def test_referral_to_appointment_to_desk_to_outcome(aclinic: Clinic, locale: str) -> None:
    clinic = aclinic
    hospital_id, day = await hospital_with_times(clinic)
    desk = await make_desk(clinic, hospital_id, locale)
    doc = await add_doctor(clinic, "Dr Mira Holt", locale=locale)
    p = await new_patient(clinic, locale)
    number = await consult(p)
    first = NAMES[locale].split()[0]
    await doc.accept(number, first)

    offer = await issue_referral(doc, number, locale)
    label = _time_button(offer)
    assert label.startswith(f"{day} 09:00") and SERVICE in label
    # The patient is offered the same times; the doctor books one for them.
    await clinic.client.wait_for(p.uid, PATIENT_BOT, is_text(p.t("appt.pat.offer")))
    since_p = await clinic.seq(p.uid)
    head = doc.t(
        "appt.doc.booked_by_you", service=SERVICE, department="Cardiology", hospital=HOSPITAL,
        when="", code="",
    )[:12]  # fmt: skip
    booked = await doc.press(label, starts(head))
    assert f"{day} 09:00" in booked["text"]
    told = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("appt.pat.cant")), since=since_p
    )
    assert day in told["text"] and "previous ECGs" in told["text"]  # in the patient's zone
    [appt] = await _rows(clinic)
    assert appt.status == "booked" and appt.booked_by == "doctor"

    # The desk's day: the patient with their year of birth, Arrived, then the outcome.
    item = await desk.say(f"/desk {day}", has_button(desk.t("appt.desk.arrived")))
    assert SERVICE in item["text"] and item.get("protect_content") is True
    since_d = await clinic.seq(desk.uid, DOCTOR_BOT)
    await desk.press(desk.t("appt.desk.arrived"), lambda m: True)
    await desk.wait(has_button(desk.t("appt.desk.outcome")), since_d)
    await desk.press(desk.t("appt.desk.outcome"), is_text(desk.t("appt.desk.ask_outcome")))
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    since_p = await clinic.seq(p.uid)
    await desk.say(OUTCOME, is_text(desk.t("appt.desk.outcome_saved")))
    back = await doc.wait(lambda m: OUTCOME in (m.get("text") or ""), since_doc)
    assert f"#{number}" in back["text"] and HOSPITAL in back["text"]
    done = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: "/book" in (m.get("text") or ""), since=since_p
    )
    assert SERVICE in done["text"]
    [appt] = await _rows(clinic)
    assert appt.status == "fulfilled"
    # The referring doctor sees it in the case's referrals too.
    listed = await doc.say(f"/referrals {number}", lambda m: OUTCOME in (m.get("text") or ""))
    assert doc.t("appt.status.fulfilled") in listed["text"]
    async with clinic.app.db.uow() as uow:
        [ref] = list(await uow.session.scalars(select(Referral)))
        assert ref.status == "used" and ref.used_by == "desk"


async def test_patient_books_and_cancels_and_who_may_mark(aclinic: Clinic) -> None:
    clinic = aclinic
    hospital_id, day = await hospital_with_times(clinic, capacity=1)
    desk = await make_desk(clinic, hospital_id, "en")
    async with clinic.app.db.uow() as uow:
        other = Hospital(name="Hillcrest Hospital", city=CITY, departments="[]")
        uow.session.add(other)
        await uow.commit()
        other_id = other.id
    other_desk = await make_desk(clinic, other_id, "en")
    doc = await add_doctor(clinic, "Dr Mira Holt")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    first = NAMES["en"].split()[0]
    await doc.accept(number, first)
    await issue_referral(doc, number, "en")
    # The doctor leaves it to the patient, who books from /referrals.
    await p.say("/referrals", has_button(p.t("appt.pat.book_button")))
    times = await p.press(p.t("appt.pat.book_button"), is_text(p.t("appt.pat.choose")))
    await p.press(_time_button(times), has_button(p.t("appt.pat.cant")))
    [appt] = await _rows(clinic)
    assert appt.booked_by == "patient"
    # A doctor has no /desk; another hospital's desk sees nothing of it and cannot mark it.
    await doc.say("/desk", is_text(doc.t("appt.desk.not_desk")))
    await desk.say("/help", lambda m: True)
    empty = other_desk.t("appt.desk.none", day=day, hospital="Hillcrest Hospital")
    none = await other_desk.say(f"/desk {day}", starts(empty))
    item = await desk.say(f"/desk {day}", has_button(desk.t("appt.desk.arrived")))
    data = item["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await clinic.client.click(other_desk.uid, DOCTOR_BOT, none["message_id"], data, force=True)
    await other_desk.wait(is_text(other_desk.t("appt.desk.not_yours")))
    # I can't come: released, the desk told; the same time can be booked again.
    since_desk = await clinic.seq(desk.uid, DOCTOR_BOT)
    await p.press(p.t("appt.pat.cant"), starts(p.t("appt.pat.cancelled")[:12]))
    await desk.wait(starts(desk.t("appt.desk.cancelled", service=SERVICE, when="", code="")[:8]),
                    since_desk)  # fmt: skip
    [appt] = await _rows(clinic)
    assert appt.status == "cancelled"
    # The desk's old Arrived button is stale now.
    await clinic.client.click(desk.uid, DOCTOR_BOT, item["message_id"], data, force=True)
    await desk.wait(is_text(desk.t("appt.desk.already")))
    async with clinic.app.db.uow() as uow:
        slot = await uow.appointments.slot(appt.slot_id)
        assert slot is not None and slot.booked == 0
