"""Hospital appointments end to end over the emulator, in English, Russian and Chinese: a
doctor issues a referral to a hospital that takes bookings and books a time for the patient;
the patient gets it with what to bring; the hospital's desk sees the day's list, marks the
patient arrived, attaches the discharge letter (to the referring doctor and the patient, kept
sealed in the case: /referrals shows it again) and records the outcome, which goes back to
the referring doctor, and the patient books a follow-up online consultation with that doctor
from the outcome message. Also: the patient books from /referrals and cancels ("I can't
come": the desk is told, the place is free again), another hospital's desk and a doctor are
refused, a stale desk button says someone marked it, the desk moves a booking to another
time, and an admin invites a desk from the doctor bot (a non-admin is refused)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from flows import appointments as apf
from flows import services
from locales import Translator
from storage.models import Hospital, HospitalAppointment, Referral, ScheduledEvent, utcnow
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_booking import RULE
from tests.e2e.test_consultation import Doc, add_doctor, consult, is_text, starts
from tests.e2e.test_intake import has_button, new_patient
from tests.e2e.test_onboarding import NAMES

HOSPITAL = "Riverside General Hospital"
CITY = "Maplebrook"
SERVICE = "Holter monitoring"
REASON = {"en": "Palpitations", "ru": "Сердцебиение", "zh_Hans": "心悸"}
OUTCOME = "Holter 24 h: sinus rhythm, 3 PVCs; no pauses"
WHERE = "Building B, 2nd floor, cardiology reception"
LETTER = b"%PDF-1.4 discharge letter of a fictional patient"
ADMIN_ID = 700000001
EN = Translator("en").plain


@pytest.fixture
async def aclinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    # The emulator numbers users from 700000001: the admin is the first person created.
    c, schema = await start_clinic(tmp_path, "sqlite", log_capture, admin_ids=(ADMIN_ID,))
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
            "previous ECGs and your medicines", WHERE,
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
    assert WHERE in told["text"]
    [appt] = await _rows(clinic)
    assert appt.status == "booked" and appt.booked_by == "doctor"
    # The evening before: when, where to go, what to bring, "I can't come".
    since_p = await clinic.seq(p.uid)
    async with clinic.app.db.uow() as uow:
        await uow.session.execute(
            update(ScheduledEvent)
            .where(ScheduledEvent.kind == apf.REMIND, ScheduledEvent.subject == appt.id)
            .values(due_at=utcnow() - timedelta(seconds=1))
        )
        await uow.commit()
    remind = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("appt.pat.cant")), since=since_p
    )
    assert remind["text"].startswith("⏰") and WHERE in remind["text"]
    assert "previous ECGs" in remind["text"] and HOSPITAL in remind["text"]

    # The desk's day: the patient with their year of birth, Arrived, then the outcome.
    item = await desk.say(f"/desk {day}", has_button(desk.t("appt.desk.arrived")))
    assert SERVICE in item["text"] and item.get("protect_content") is True
    since_d = await clinic.seq(desk.uid, DOCTOR_BOT)
    await desk.press(desk.t("appt.desk.arrived"), lambda m: True)
    await desk.wait(has_button(desk.t("appt.desk.outcome")), since_d)

    # The discharge letter: to the referring doctor and the patient, kept sealed in the case.
    await desk.press(desk.t("appt.desk.attach"), is_text(desk.t("appt.desk.ask_files")))
    await desk.say("here it comes", is_text(desk.t("appt.desk.attach_want_file")))
    since_d = await clinic.seq(desk.uid, DOCTOR_BOT)
    await clinic.client.send_voice(desk.uid, DOCTOR_BOT, b"OggS voice", "note.ogg")
    await desk.wait(is_text(desk.t("appt.desk.attach_kind")), since_d)
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    since_p = await clinic.seq(p.uid)
    since_d = await clinic.seq(desk.uid, DOCTOR_BOT)
    await clinic.client.send_document(desk.uid, DOCTOR_BOT, LETTER, "discharge.pdf")
    await desk.wait(is_text(desk.t("appt.desk.attached", n=1)), since_d)
    letter = await doc.wait(lambda m: "document" in m, since_doc)
    assert f"#{number}" in letter["caption"] and HOSPITAL in letter["caption"]
    assert letter.get("protect_content") is True
    assert await clinic.client.download(letter["document"]["file_id"]) == LETTER
    copy = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: "document" in m, since=since_p
    )
    assert HOSPITAL in copy["caption"] and copy.get("protect_content") is True
    assert await clinic.client.download(copy["document"]["file_id"]) == LETTER
    await desk.say("/done", is_text(desk.t("appt.desk.attach_done", n=1)))

    await desk.press(desk.t("appt.desk.outcome"), is_text(desk.t("appt.desk.ask_outcome")))
    # The referring doctor has free phone times: the patient can book a follow-up with them.
    await doc.say(f"/schedule {RULE}", lambda m: True)
    async with clinic.app.db.uow() as uow:
        await services.add(uow, "admin:test", "phone", minutes=15, price="free")
        await uow.commit()
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    since_p = await clinic.seq(p.uid)
    await desk.say(OUTCOME, is_text(desk.t("appt.desk.outcome_saved")))
    back = await doc.wait(lambda m: OUTCOME in (m.get("text") or ""), since_doc)
    assert f"#{number}" in back["text"] and HOSPITAL in back["text"]
    follow = p.t("appt.pat.followup_button", mode=p.t("svc.mode.phone"), name="Dr Mira Holt")
    done = await clinic.client.wait_for(p.uid, PATIENT_BOT, has_button(follow), since=since_p)
    assert SERVICE in done["text"] and "/book" in done["text"]
    [appt] = await _rows(clinic)
    assert appt.status == "fulfilled"
    # Back online: the follow-up button opens the doctor's free times.
    times = await p.press(follow, lambda m: m.get("reply_markup") is not None)
    assert times["text"].startswith(p.t("book.ask_slot", zone="")[:6])
    # The referring doctor sees it in the case's referrals too, with the hospital's file.
    listed = await doc.say(f"/referrals {number}", lambda m: OUTCOME in (m.get("text") or ""))
    assert doc.t("appt.status.fulfilled") in listed["text"]
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    await doc.press(doc.t("appt.doc.files_button", n=1), lambda m: "document" in m)
    again = await doc.wait(lambda m: "document" in m, since_doc)
    assert await clinic.client.download(again["document"]["file_id"]) == LETTER
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


async def test_the_desk_moves_a_booking_and_admins_make_desks(aclinic: Clinic) -> None:
    clinic = aclinic
    admin = await clinic.person("Admin", "en")
    assert admin == ADMIN_ID
    hospital_id, day = await hospital_with_times(clinic, capacity=1)
    async with clinic.app.db.uow() as uow:
        [service] = await uow.appointments.services(hospital_id)
        later = (utcnow() + timedelta(days=2)).date()
        await apf.add_slots(uow, "admin:test", service.id, [later], ["11:30"], 1, "UTC")
        await uow.commit()
    # An admin invites the desk from the doctor bot; the link works once.
    await clinic.client.send(admin, DOCTOR_BOT, "/desks")
    await clinic.client.wait_for(admin, DOCTOR_BOT, has_button(EN("appt.admin.invite_button")))
    since = await clinic.seq(admin, DOCTOR_BOT)
    await clinic.client.click_button(admin, DOCTOR_BOT, EN("appt.admin.invite_button"))
    sent = await clinic.client.wait_for(admin, DOCTOR_BOT, lambda m: "?start=desk_" in
                                        (m.get("text") or ""), since=since)  # fmt: skip
    payload = sent["text"].split("?start=", 1)[1].split()[0]
    uid = await clinic.person("Dana", "en")
    since = await clinic.seq(uid, DOCTOR_BOT)
    await clinic.client.start(uid, DOCTOR_BOT, payload)
    await clinic.client.wait_for(
        uid, DOCTOR_BOT, is_text(EN("appt.desk.joined", hospital=HOSPITAL)), since=since
    )
    await clinic.client.wait_for(admin, DOCTOR_BOT, lambda m: HOSPITAL in (m.get("text") or "")
                                 and "Dana" in (m.get("text") or ""))  # fmt: skip
    desk = Doc(clinic, uid, "Dana", "en")
    await desk.say("/help", starts("/desk — today's appointments at your hospital"))
    stranger = await clinic.person("Sam", "en")
    since = await clinic.seq(stranger, DOCTOR_BOT)
    await clinic.client.start(stranger, DOCTOR_BOT, payload)
    await clinic.client.wait_for(stranger, DOCTOR_BOT, is_text(EN("appt.desk.invite_bad")),
                                 since=since)  # fmt: skip
    await clinic.client.send(stranger, DOCTOR_BOT, "/desks")
    await clinic.client.wait_for(stranger, DOCTOR_BOT, is_text(EN("doctor.admin.not_admin")))

    doc = await add_doctor(clinic, "Dr Mira Holt")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await doc.accept(number, NAMES["en"].split()[0])
    offer = await issue_referral(doc, number, "en")
    await doc.press(_time_button(offer), lambda m: True)
    await clinic.client.wait_for(p.uid, PATIENT_BOT, has_button(p.t("appt.pat.cant")))
    # The desk moves it to 11:30: the patient gets the new time, the doctor is told.
    await desk.say(f"/desk {day}", has_button(desk.t("appt.desk.resched")))
    since_p = await clinic.seq(p.uid)
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    times = await desk.press(desk.t("appt.desk.resched"), has_button(f"{day} 11:30 · {SERVICE}"))
    assert "09:00" in times["text"]
    to_1130 = next(b["callback_data"] for row in times["reply_markup"]["inline_keyboard"]
                   for b in row if b["text"] == f"{day} 11:30 · {SERVICE}")  # fmt: skip
    await desk.press(f"{day} 11:30 · {SERVICE}", starts(EN("appt.desk.rescheduled", code="",
                                                          when="")[:6]))  # fmt: skip
    moved = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("appt.pat.cant")), since=since_p
    )
    assert moved["text"].startswith("🏥 The hospital moved your appointment")
    assert "previous ECGs" in moved["text"]
    # ... and the slip again, now printing the new time (in the patient's zone).
    await clinic.client.wait_for(p.uid, PATIENT_BOT, lambda m: "document" in m, since=since_p)
    await doc.wait(starts(f"🏥 #{number}: {HOSPITAL} moved the appointment"), since_doc)
    [appt] = await _rows(clinic)
    assert appt.status == "booked" and appt.version == 2
    async with clinic.app.db.uow() as uow:
        slots = {s.starts_at.strftime("%H:%M"): s.booked for s in
                 await uow.appointments.free_slots([appt.service_id], utcnow(),
                                                   utcnow() + timedelta(days=5))}  # fmt: skip
        assert slots == {"09:00": 0}  # 11:30 (capacity 1) is taken, 09:00 free again
    # The old list's button again: stale.
    await clinic.client.click(uid, DOCTOR_BOT, times["message_id"], to_1130, force=True)
    await desk.wait(is_text(desk.t("appt.desk.already")))
    # The admin removes the desk: it sees nothing more.
    await clinic.client.send(admin, DOCTOR_BOT, "/desks")
    remove = EN("appt.admin.remove_button", name="Dana")
    await clinic.client.wait_for(admin, DOCTOR_BOT, has_button(remove))
    await clinic.client.click_button(admin, DOCTOR_BOT, remove)
    await desk.wait(is_text(desk.t("appt.desk.removed_you")))
    after = await desk.say(f"/desk {day}", lambda m: bool(m.get("text")))
    assert SERVICE not in after["text"] and not after.get("reply_markup")
