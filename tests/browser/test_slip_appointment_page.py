"""A referral slip's booked hospital appointment on the verify page (``/r/<code>``,
bot/verify_web.py) in Chromium, served by the real sandbox (`bot.py sandbox`) as a hospital
desk reaches it. The slip and its booking are made through the flows (flows/referrals.py,
flows/appointments.py) in the sandbox's database: a Holter monitoring at 09:00 two days ahead.
The QR link shows the valid slip, the patient and the appointment (its day and time in the
clinic's zone, the service, the department, "booked"); the typed code alone shows neither the
patient nor the time until the desk types the year of birth; once the desk marks the patient
arrived the page says so; a second slip's booking, cancelled by the patient, is no longer
shown. Screenshots: ``slip_appt_token.png``, ``slip_appt_code.png``, ``slip_appt_born.png``
and ``slip_appt_arrived.png`` in the screenshot dir ($CARELINE_SCREENSHOT_DIR)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from bot.sandbox.runner import Sandbox
from flows import appointments as apf
from flows import referrals as rf
from flows.signing import Signer
from storage.models import Consultation, Doctor, Hospital, Patient
from storage.uow import Database
from tests.browser.test_real_sandbox import real_sandbox  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

PATIENT_TG = 987_800  # far from the emulator's ids (700000001 up) and the demo's people
DOCTOR_TG = 987_801
DESK_TG = 987_802
HOSPITAL = "Lakeview Test Hospital"  # not the demo's own "Riverside General Hospital"
PATIENT = "Alice Testpatient"
BORN = "1968"


@dataclass(frozen=True)
class Clinic:
    """What the test made: the hospital, its 09:00 slot, the referring doctor, the patient."""

    hospital_id: str
    slot_id: str
    doctor_id: str
    patient_id: str


@dataclass(frozen=True)
class Slip:
    referral_id: str
    code: str
    token: str


async def _clinic(db: Database, tz: str, day: date, now: datetime) -> Clinic:
    """A hospital whose Cardiology books Holter monitoring at 09:00 on ``day`` (clinic's zone,
    two places), a verified doctor and a patient with an active case."""
    async with db.uow() as uow:
        hospital = Hospital(name=HOSPITAL, city="Maplebrook", locale="en", departments="[]")
        uow.session.add(hospital)
        await uow.session.flush()
        service = await apf.add_service(
            uow, "admin:test", hospital.id, "Cardiology", "examination", "Holter monitoring",
            "previous ECGs",
        )  # fmt: skip
        assert await apf.add_slots(uow, "admin:test", service.id, [day], ["09:00"], 2, tz) == 1
        [slot] = await uow.appointments.free_slots([service.id], now, now + timedelta(days=5))
        doctor = await uow.doctors.add(
            Doctor(tg_user_id=DOCTOR_TG, locale="en", status="verified",
                   verified_until=now + timedelta(days=300), departments="general")
        )  # fmt: skip
        await uow.doctors.set_field(doctor, "name", "Dr Nora Example")
        patient = await uow.patients.add(
            Patient(tg_user_id=PATIENT_TG, locale="en", onboarding_state="done",
                    consent_version="1", timezone=tz)
        )  # fmt: skip
        for key, value in (("name", PATIENT), ("birth_year", BORN), ("sex", "female")):
            await uow.patients.set_field(patient, key, value)
        await uow.commit()
        return Clinic(hospital.id, slot.id, doctor.id, patient.id)


async def _issue(db: Database, clinic: Clinic, now: datetime) -> Slip:
    """The doctor issues a routine slip to the hospital's Cardiology (one more case)."""
    async with db.uow() as uow:
        doctor = await uow.doctors.get(clinic.doctor_id)
        assert doctor is not None
        case = await uow.consultations.add(
            Consultation(patient_id=clinic.patient_id, department="general", state="active",
                         doctor_id=doctor.id, requested_at=now, accepted_at=now)
        )  # fmt: skip
        ref = await rf.start_draft(uow, doctor, clinic.patient_id, consultation_id=case.id)
        await rf.save_draft(
            uow,
            ref,
            {"hospital_id": clinic.hospital_id, "target_department": "Cardiology",
             "reason": "Palpitations", "urgency": "routine"},
        )  # fmt: skip
        ref, _content, token = await rf.issue(uow, doctor, ref.id, now, Signer(db.ring))
        assert token == await rf.slip_token(uow, ref, Signer(db.ring))  # what /referrals gives
        await uow.commit()
        assert ref.code is not None
        return Slip(ref.id, ref.code, token)


async def _book(db: Database, slip: Slip, slot_id: str, tz: str, now: datetime) -> str:
    """The referring doctor books the slot for the slip; returns the appointment id."""
    async with db.uow() as uow:
        ref = await uow.referrals.get(slip.referral_id)
        assert ref is not None
        appt = await apf.book(
            uow, ref, slot_id, now, by="doctor", actor=f"doctor:{ref.doctor_id}", tz=tz
        )
        await uow.commit()
        return appt.id


def _cell(page: Page, label: str) -> Locator:
    """The appointment table's value in the row headed ``label``."""
    row = page.locator("table.appt tr").filter(has=page.locator("th", has_text=label))
    return row.locator("td")


async def _shows_appointment(page: Page, when: str, status: str) -> None:
    await expect(page.get_by_role("heading", name="Hospital appointment")).to_be_visible()
    await expect(_cell(page, "Date and time")).to_have_text(when)
    await expect(_cell(page, "Service")).to_have_text("Holter monitoring")
    await expect(_cell(page, "Department")).to_have_text("Cardiology")
    await expect(_cell(page, "Status")).to_have_text(status)


async def test_desk_sees_the_booked_appointment_of_a_slip(
    browser: Browser,
    real_sandbox: Sandbox,  # noqa: F811 - the fixture imported above
    screenshot_dir: Path,
) -> None:
    sandbox = real_sandbox
    db = sandbox.app.db
    tz = sandbox.app.settings.timezone  # the page shows times in the clinic's zone
    now = datetime.now(UTC)
    day = rf.local_today(now, tz) + timedelta(days=2)
    when = f"{day.isoformat()} 09:00"
    clinic = await _clinic(db, tz, day, now)
    slip = await _issue(db, clinic, now)
    appt_id = await _book(db, slip, clinic.slot_id, tz, now)
    link = rf.slip_url(sandbox.url, slip.code, slip.token) + "&lang=en"
    typed = f"{sandbox.url.rstrip('/')}/r/{slip.code}?lang=en"

    context = await browser.new_context(viewport={"width": 480, "height": 900}, locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    banner = page.locator(".banner")
    body = page.locator("body")

    # The QR link: the valid slip, whom it is for, and the booked appointment.
    await page.goto(link)
    await expect(banner).to_have_text("✔ Valid referral")
    for shown in (PATIENT, BORN, "Female", HOSPITAL, slip.code):
        await expect(body).to_contain_text(shown)
    await _shows_appointment(page, when, "Booked, not arrived yet")
    await expect(page.get_by_role("button", name="Mark as used")).to_be_visible()
    await page.screenshot(path=str(screenshot_dir / "slip_appt_token.png"), full_page=True)

    # The typed code alone: valid and booked, but neither the patient nor the time.
    await page.goto(typed)
    await expect(banner).to_have_text("✔ Valid referral")
    await expect(body).to_contain_text("An appointment is booked.")
    await expect(page.locator("table.appt")).to_have_count(0)
    for hidden in (PATIENT, BORN, "09:00", day.isoformat(), "Holter monitoring"):
        await expect(body).not_to_contain_text(hidden)
    await page.screenshot(path=str(screenshot_dir / "slip_appt_code.png"), full_page=True)
    # The desk types the year of birth from the patient's ID: the patient and the time.
    await page.get_by_label("Patient's year of birth").fill(BORN)
    await page.get_by_role("button", name="Show the patient").click()
    await expect(body).to_contain_text(PATIENT)
    await _shows_appointment(page, when, "Booked, not arrived yet")
    await expect(page.get_by_label("Patient's year of birth")).to_have_count(0)
    await page.screenshot(path=str(screenshot_dir / "slip_appt_born.png"), full_page=True)

    # The desk marks the patient arrived: the QR link says so, at the same time.
    async with db.uow() as uow:
        desk = await apf.make_desk(
            uow, "admin:test", clinic.hospital_id, DESK_TG, "Front desk", "en"
        )
        appt = await uow.appointments.get(appt_id)
        assert appt is not None
        await apf.mark(uow, desk, appt_id, "arrive", appt.version, now)
        await uow.commit()
    await page.goto(link)
    await expect(banner).to_have_text("✔ Valid referral")
    await _shows_appointment(page, when, "Arrived")
    await page.screenshot(path=str(screenshot_dir / "slip_appt_arrived.png"), full_page=True)

    # A second slip of the patient, booked at the same time, then cancelled by the patient:
    # its page shows no appointment any more, by the QR link or by the code.
    second = await _issue(db, clinic, now)
    second_id = await _book(db, second, clinic.slot_id, tz, now)
    second_link = rf.slip_url(sandbox.url, second.code, second.token) + "&lang=en"
    await page.goto(second_link)
    await _shows_appointment(page, when, "Booked, not arrived yet")
    async with db.uow() as uow:
        await apf.cancel(uow, second_id, clinic.patient_id, now)
        await uow.commit()
    await page.reload()
    await expect(banner).to_have_text("✔ Valid referral")
    await expect(body).to_contain_text(PATIENT)
    await expect(page.get_by_role("heading", name="Hospital appointment")).to_have_count(0)
    await expect(page.locator("table.appt")).to_have_count(0)
    await expect(body).not_to_contain_text("09:00")
    await page.goto(f"{sandbox.url.rstrip('/')}/r/{second.code}?lang=en")
    await expect(banner).to_have_text("✔ Valid referral")
    await expect(body).not_to_contain_text("An appointment is booked.")
    await expect(page.get_by_role("heading", name="Hospital appointment")).to_have_count(0)
    await context.close()
    assert errors == []

    async with db.uow() as uow:
        slot = await uow.appointments.slot(clinic.slot_id)
        assert slot is not None and slot.booked == 1  # the cancelled place went back
