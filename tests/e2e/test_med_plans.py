"""Medication plans end to end over the emulator: a doctor with an accepted case enters a plan
with /plan (a bad time on the way), the patient sees the card and confirms it, and the first
reminder event is scheduled; a change makes the old card's buttons stale; /meds pause, resume,
quiet hours, time zone and shifted times; the wizard's answers never reach the patient."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest
from sqlalchemy import select

from storage.models import MedicationPlan, Patient, ScheduledEvent
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_consultation import Doc, add_doctor, consult, contains, is_text, starts
from tests.e2e.test_intake import Patient as Person
from tests.e2e.test_intake import has_button, new_patient
from tests.e2e.test_onboarding import NAMES

MEDICINE = "Examplomycin 250 mg"
DOSE = "2 capsules"
FIRST = NAMES["en"].split()[0]


async def plans_of(clinic: Clinic) -> list[MedicationPlan]:
    async with clinic.app.db.uow() as uow:
        rows = list(
            await uow.session.scalars(select(MedicationPlan).order_by(MedicationPlan.created_at))
        )
        uow.session.expunge_all()
        return rows


async def patient_row(clinic: Clinic, uid: int) -> Patient:
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        assert patient is not None
        uow.session.expunge_all()
        return patient


async def dose_events(clinic: Clinic, plan_id: str) -> list[ScheduledEvent]:
    async with clinic.app.db.uow() as uow:
        rows = list(
            await uow.session.scalars(
                select(ScheduledEvent)
                .where(
                    ScheduledEvent.key.like(f"dose:{plan_id}:%"),
                    ScheduledEvent.status == "pending",
                )
                .order_by(ScheduledEvent.due_at)
            )
        )
        uow.session.expunge_all()
        return rows


async def with_case(clinic: Clinic) -> tuple[Doc, Person, int]:
    doc = await add_doctor(clinic, "Dr Mira Holt")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await doc.accept(number, FIRST)
    return doc, p, number


async def enter_plan(doc: Doc, number: int, times: str = "08:00, 20:00") -> dict[str, Any]:
    """/plan N through the wizard to the review card (returned)."""
    t = doc.t
    await doc.say(f"/plan {number}", is_text(t("meds.plan.ask_name", number=number, name=FIRST)))
    await doc.say(MEDICINE, is_text(t("meds.plan.ask_dose", number=number, name=FIRST)))
    await doc.say(DOSE, is_text(t("meds.plan.ask_times", number=number, name=FIRST)))
    # A bad time: the reason, then the same question again.
    await doc.say("25:00", is_text(t("timing.error.bad_time", value="25:00")))
    await doc.wait(is_text(t("meds.plan.ask_times", number=number, name=FIRST)))
    await doc.say(times, is_text(t("meds.plan.ask_days", number=number, name=FIRST)))
    await doc.press(t("meds.days.every"), has_button(t("meds.period.ongoing")))
    await doc.press(t("meds.period.days", n=30), has_button(t("meds.food.with")))
    return await doc.press(t("meds.food.with"), has_button(t("meds.plan.send")))


async def test_plan_from_doctor_to_confirmed_reminder_and_change(clinic: Clinic) -> None:
    doc, p, number = await with_case(clinic)
    t = doc.t
    since_p = await clinic.seq(p.uid)
    review = await enter_plan(doc, number)
    assert MEDICINE in review["text"] and DOSE in review["text"]
    assert "08:00, 20:00" in review["text"] and t("meds.food.with") in review["text"]
    assert review.get("protect_content") is True
    # Nothing the doctor typed in the wizard reached the patient.
    for text in await p.clinic.bot_texts(p.uid):
        assert MEDICINE not in text and "25:00" not in text
    await doc.press(
        t("meds.plan.send"), starts(t("meds.plan.sent", number=number, name=FIRST, version=1))
    )
    card = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("meds.card.confirm")), since=since_p
    )
    assert MEDICINE in card["text"] and DOSE in card["text"] and "Dr Mira Holt" in card["text"]
    assert "Careline never changes doses" in card["text"]
    assert card.get("protect_content") is True
    [plan] = await plans_of(clinic)
    assert plan.status == "proposed" and plan.version == 1
    assert await dose_events(clinic, plan.id) == []
    # The patient confirms: active, the first reminder scheduled, the doctor told.
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    await p.press(p.t("meds.card.confirm"), is_text(p.t("meds.confirmed", name=MEDICINE)))
    await doc.wait(
        is_text(t("meds.doctor.confirmed", number=number, name=FIRST, medicine=MEDICINE)), since_d
    )
    [plan] = await plans_of(clinic)
    assert plan.status == "active" and plan.confirmed_at is not None
    [event] = await dose_events(clinic, plan.id)
    assert event.kind == "dose" and event.patient_id == plan.patient_id
    # /plans shows it; Change -> the review card prefilled -> change the times -> send.
    await doc.say(f"/plans {number}", has_button(t("meds.plans.change")))
    await doc.press(t("meds.plans.change"), has_button(t("meds.plan.change_step")))
    await doc.press(t("meds.plan.change_step"), has_button(t("meds.step.times")))
    await doc.press(
        t("meds.step.times"), is_text(t("meds.plan.ask_times", number=number, name=FIRST))
    )
    changed_review = await doc.say("9 am", has_button(t("meds.plan.send")))
    assert "09:00" in changed_review["text"] and MEDICINE in changed_review["text"]
    since_p = await clinic.seq(p.uid)
    await doc.press(
        t("meds.plan.send"), starts(t("meds.plan.sent", number=number, name=FIRST, version=2))
    )
    new_card = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("meds.card.confirm")), since=since_p
    )
    assert "09:00" in new_card["text"]
    [plan] = await plans_of(clinic)
    assert plan.version == 2 and plan.status == "proposed"
    assert await dose_events(clinic, plan.id) == []  # the old reminder stopped
    # The first card's Confirm (version 1) is stale now.
    old_data = card["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    since_p = await clinic.seq(p.uid)
    await clinic.client.click(p.uid, PATIENT_BOT, card["message_id"], old_data, force=True)
    await clinic.client.wait_for(p.uid, PATIENT_BOT, is_text(p.t("meds.stale")), since=since_p)
    answers = (await clinic.client.messages(p.uid, PATIENT_BOT))["callback_answers"]
    assert answers[-1].get("text") == p.t("error.stale_button")
    [plan] = await plans_of(clinic)
    assert plan.status == "proposed"
    # The new card works.
    await p.press(p.t("meds.card.confirm"), is_text(p.t("meds.confirmed", name=MEDICINE)))
    [plan] = await plans_of(clinic)
    assert plan.status == "active" and plan.version == 2
    [event] = await dose_events(clinic, plan.id)
    assert event.key is not None and event.key.endswith("09:00")
    # End it: no more reminders, the patient is told.
    await doc.say(f"/plans {number}", has_button(t("meds.plans.end")))
    await doc.press(t("meds.plans.end"), has_button(t("meds.plans.end_yes")))
    since_p = await clinic.seq(p.uid)
    await doc.press(
        t("meds.plans.end_yes"), is_text(t("meds.plans.ended", number=number, name=FIRST))
    )
    await clinic.client.wait_for(p.uid, PATIENT_BOT, contains(MEDICINE), since=since_p)
    [plan] = await plans_of(clinic)
    assert plan.status == "ended"
    assert await dose_events(clinic, plan.id) == []


async def test_wizard_cancel_and_refusals(clinic: Clinic) -> None:
    doc, p, number = await with_case(clinic)
    t = doc.t
    await doc.say(f"/plan {number}", is_text(t("meds.plan.ask_name", number=number, name=FIRST)))
    # A second /plan shows the open question again; /cancel drops the draft.
    await doc.say(f"/plan {number}", is_text(t("meds.plan.already_open")))
    await doc.say("/cancel", is_text(t("meds.plan.cancelled")))
    [plan] = await plans_of(clinic)
    assert plan.status == "cancelled"
    # Afterwards a typed text is a case message again.
    since_p = await clinic.seq(p.uid)
    await clinic.client.send(doc.uid, DOCTOR_BOT, "How are you today?")
    got = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, contains("How are you today?"), since=since_p
    )
    assert got["text"].startswith("Dr ")  # the doctor's short header
    # Another doctor may not plan for this case; an unknown case number neither.
    other = await add_doctor(clinic, "Dr Lev Ostrov")
    await other.say(
        f"/plan {number}", is_text(other.t("meds.plan.not_your_case", number=str(number)))
    )
    await other.say("/plan 99999", is_text(other.t("meds.plan.not_your_case", number="99999")))
    # A patient of the patient bot has no doctor commands: /meds with no plans.
    await p.say("/meds", is_text(p.t("meds.none")))
    # The "type them" buttons only explain; the typed answer is the step's answer.
    await doc.say(f"/plan {number}", is_text(t("meds.plan.ask_name", number=number, name=FIRST)))
    await doc.say(MEDICINE, is_text(t("meds.plan.ask_dose", number=number, name=FIRST)))
    await doc.say(DOSE, is_text(t("meds.plan.ask_times", number=number, name=FIRST)))
    await doc.say("50 times a day", is_text(t("timing.error.too_many", max=12)))
    await doc.say("8 pm", is_text(t("meds.plan.ask_days", number=number, name=FIRST)))
    await doc.press(t("meds.days.type"), is_text(t("meds.plan.type_days")))
    await doc.say("Mon, Wed, Fri", is_text(t("meds.plan.ask_period", number=number, name=FIRST)))
    await doc.say("until 2020-01-01", is_text(t("timing.error.end_before_start")))
    await doc.say("14 days", is_text(t("meds.plan.ask_food", number=number, name=FIRST)))
    await doc.say("with dinner", is_text(t("meds.plan.use_buttons")))
    review = await doc.press(t("meds.food.after"), has_button(t("meds.plan.send")))
    assert "20:00" in review["text"] and "Mon, Wed, Fri" in review["text"]
    since_p = await clinic.seq(p.uid)
    await doc.press(
        t("meds.plan.send"), starts(t("meds.plan.sent", number=number, name=FIRST, version=1))
    )
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("meds.card.decline")), since=since_p
    )
    # The patient declines with a reason; the doctor gets it.
    await p.press(p.t("meds.card.decline"), is_text(p.t("meds.decline.ask")))
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    await p.say("I get dizzy with it", is_text(p.t("meds.declined", name=MEDICINE)))
    told = await doc.wait(contains("I get dizzy with it"), since_d)
    assert told["text"] == t(
        "meds.doctor.declined_reason",
        number=number, name=FIRST, medicine=MEDICINE, reason="I get dizzy with it",
    )  # fmt: skip
    plans = await plans_of(clinic)
    assert [pl.status for pl in plans] == ["cancelled", "declined"]
    # The declined card's buttons are stale; nothing was scheduled.
    await p.press(p.t("meds.card.confirm"), is_text(p.t("meds.stale")))
    assert await dose_events(clinic, plans[1].id) == []


async def test_meds_pause_resume_quiet_zone_shift(clinic: Clinic) -> None:
    doc, p, number = await with_case(clinic)
    t = doc.t
    await enter_plan(doc, number)
    since_p = await clinic.seq(p.uid)
    await doc.press(
        t("meds.plan.send"), starts(t("meds.plan.sent", number=number, name=FIRST, version=1))
    )
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("meds.card.confirm")), since=since_p
    )
    await p.press(p.t("meds.card.confirm"), is_text(p.t("meds.confirmed", name=MEDICINE)))
    [plan] = await plans_of(clinic)
    # /meds: the plan with Pause, then the settings.
    await p.say("/meds", has_button(p.t("meds.quiet")))
    item = next(
        m
        for m in reversed((await clinic.client.messages(p.uid, PATIENT_BOT))["messages"])
        if has_button(p.t("meds.pause"))(m)
    )
    assert MEDICINE in item["text"]
    await p.press(p.t("meds.pause"), is_text(p.t("meds.paused", name=MEDICINE)))
    assert (await plans_of(clinic))[0].status == "paused"
    assert await dose_events(clinic, plan.id) == []
    await p.press(p.t("meds.resume"), is_text(p.t("meds.resumed", name=MEDICINE)))
    assert (await plans_of(clinic))[0].status == "active"
    assert len(await dose_events(clinic, plan.id)) == 1
    # Quiet hours: a bad answer keeps the question; a good one is stored.
    await p.press(p.t("meds.quiet"), is_text(p.t("meds.quiet.ask")))
    await p.say("25:00-07:00", is_text(p.t("timing.error.bad_time", value="25:00")))
    await p.say("22:00-07:00", is_text(p.t("meds.quiet.saved", start="22:00", end="07:00")))
    row = await patient_row(clinic, p.uid)
    assert (row.quiet_start, row.quiet_end) == ("22:00", "07:00")
    # Time zone: a bad zone keeps the question; Asia/Shanghai re-plans the reminder.
    await p.press(p.t("meds.zone"), starts(p.t("meds.zone.ask", timezone="Etc/GMT-3")[:20]))
    await p.say("Mars/Olympus", is_text(p.t("timing.error.bad_zone", value="Mars/Olympus")))
    await p.say("Asia/Shanghai", is_text(p.t("meds.zone.saved", timezone="Asia/Shanghai")))
    assert (await patient_row(clinic, p.uid)).timezone == "Asia/Shanghai"
    [event] = await dose_events(clinic, plan.id)
    # Shift +1 h with the button, then +30 minutes typed: 1 h 30 min later than prescribed.
    await p.say("/meds", has_button(p.t("meds.shift.later")))
    await p.press(
        p.t("meds.shift.later"), starts(p.t("meds.shift.saved", shift="+1 h 0 min", plans="")[:25])
    )
    await p.press(p.t("meds.shift.type"), is_text(p.t("meds.shift.ask", max=12)))
    await p.say("+13 h", is_text(p.t("meds.shift.too_far", max=12)))
    done = await p.say("+30", starts(p.t("meds.shift.saved", shift="+1 h 30 min", plans="")[:25]))
    assert "09:30, 21:30" in done["text"]
    [plan] = await plans_of(clinic)
    assert plan.shift_minutes == 90
    [moved] = await dose_events(clinic, plan.id)
    due = moved.due_at if moved.due_at.tzinfo else moved.due_at.replace(tzinfo=UTC)
    assert due.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M") in ("09:30", "21:30")
    assert moved.due_at != event.due_at  # the same occurrence (key), moved
    # Export: a FHIR Bundle document with the prescribed times (and the shift as a note).
    await p.say("/meds", has_button(p.t("meds.export")))
    sent = await p.press(p.t("meds.export"), lambda m: "document" in m)
    assert sent.get("protect_content") is True
    bundle = json.loads(await clinic.client.download(sent["document"]["file_id"]))
    Bundle.model_validate(bundle)
    request = bundle["entry"][0]["resource"]
    MedicationRequest.model_validate(request)
    assert request["medicationCodeableConcept"]["text"] == MEDICINE
    repeat = request["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat["timeOfDay"] == ["08:00:00", "20:00:00"]
    assert "+90 minutes" in request["note"][0]["text"]
