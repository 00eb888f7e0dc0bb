"""One chronic-care journey end to end over the emulator, through every real step a person
takes (no rows inserted behind the bots' backs): the doctor enters a plan with /plan, the
patient confirms it, invites a caregiver with /caregivers who accepts through the link; the
reminder arrives on the (fake) clock; silence brings the re-reminder, then the caregiver's
alert, whose "They took it" stops the ladder before the doctor; a time zone changed in
/profile moves the next reminder. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from storage.models import CareAlert, Dose, ScheduledEvent
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_caregivers import first, invite, open_link, press
from tests.e2e.test_consultation import contains, is_text
from tests.e2e.test_intake import has_button
from tests.e2e.test_med_plans import MEDICINE, enter_plan, plans_of, with_case


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


async def _sweep(clinic: Clinic, now: datetime) -> None:
    while await clinic.app.sweeper.sweep_once(now):
        pass


async def _pending_dose(clinic: Clinic, plan_id: str) -> Dose:
    async with clinic.app.db.uow() as uow:
        dose = await uow.session.scalar(
            select(Dose)
            .where(Dose.plan_id == plan_id, Dose.status == "pending")
            .order_by(Dose.due_at.desc())
        )
        assert dose is not None
        uow.session.expunge_all()
        return dose


async def _dose_event(clinic: Clinic, dose_id: str) -> ScheduledEvent:
    async with clinic.app.db.uow() as uow:
        event = await uow.session.scalar(
            select(ScheduledEvent).where(
                ScheduledEvent.kind == "dose",
                ScheduledEvent.subject == dose_id,
                ScheduledEvent.status == "pending",
            )
        )
        assert event is not None
        uow.session.expunge_all()
        return event


async def test_plan_caregiver_reminder_ladder_and_a_move(clinic: Clinic) -> None:
    doc, p, number = await with_case(clinic)
    t, tr = doc.t, p.tr
    await doc.say("/help", is_text(t("doctor.help.verified")))  # the commands, /plan among them
    # The doctor's plan, once a day at 08:00 with food; the patient confirms it.
    await enter_plan(doc, number, times="08:00")
    since_p = await clinic.seq(p.uid)
    await doc.press(t("meds.plan.send"), contains(""))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("meds.card.confirm")), since=since_p
    )
    await p.press(p.t("meds.card.confirm"), is_text(p.t("meds.confirmed", name=MEDICINE)))
    [plan] = await plans_of(clinic)
    assert plan.status == "active"

    # A caregiver for missed doses, invited and accepted through the link.
    payload = await invite(clinic, p.uid, tr, "missed", False, "Oskar")
    carer = await clinic.person("Oskar", "en")
    await open_link(clinic, carer, payload, has_button(tr.plain("caregivers.offer.accept")))
    await press(clinic, carer, tr.plain("caregivers.offer.accept"), contains(first("en")))

    # The reminder arrives at 08:00 local time.
    dose = await _pending_dose(clinic, plan.id)
    assert dose.local.endswith("08:00")
    due = _aware((await _dose_event(clinic, dose.id)).due_at)  # with its seconds of jitter
    assert timedelta(0) <= due - _aware(dose.due_at) < timedelta(minutes=1)
    since = await clinic.seq(p.uid)
    await _sweep(clinic, due)
    reminder = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("doses.btn.taken")), since=since
    )
    assert MEDICINE in reminder["text"] and "08:00" in reminder["text"]

    # Silence: again after 30 min, the caregiver after 60 (no medicine name for them).
    since = await clinic.seq(p.uid)
    await _sweep(clinic, due + timedelta(minutes=31))
    again = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("doses.btn.taken")), since=since
    )
    assert MEDICINE in again["text"]
    carer_since = await clinic.seq(carer)
    await _sweep(clinic, due + timedelta(minutes=61))
    alert = await clinic.client.wait_for(
        carer, PATIENT_BOT, has_button(tr.plain("doses.caregiver.btn.took")), since=carer_since
    )
    assert MEDICINE not in alert["text"]
    # "They took it": the patient is told, the ladder stops before the doctor.
    since = await clinic.seq(p.uid)
    await press(clinic, carer, tr.plain("doses.caregiver.btn.took"), contains(""))
    await clinic.client.wait_for(
        p.uid,
        PATIENT_BOT,
        is_text(p.t("doses.patient.caregiver_took", caregiver="Oskar", time="08:00")),
        since=since,
    )
    doc_since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await _sweep(clinic, due + timedelta(minutes=180))
    async with clinic.app.db.uow() as uow:
        taken = await uow.session.get(Dose, dose.id)
        assert taken is not None and taken.status == "taken"
        assert (taken.acked_by or "").startswith("caregiver:")
        assert list(await uow.session.scalars(select(CareAlert))) == []
    assert await clinic.seq(doc.uid, DOCTOR_BOT) == doc_since

    # The patient moves to Shanghai (UTC+8) in /profile: the next 08:00 is 00:00 UTC.
    nxt = await _pending_dose(clinic, plan.id)
    before = _aware((await _dose_event(clinic, nxt.id)).due_at)
    assert nxt.local.endswith("08:00") and before.hour == 5  # onboarded in UTC+3
    await p.say("/profile", has_button(p.t("profile.field.timezone")))
    await p.press(p.t("profile.field.timezone"), contains(""))
    await p.say(
        "Asia/Shanghai",
        is_text(p.t("profile.updated", field=p.t("profile.field.timezone"))),
    )
    moved = await _pending_dose(clinic, plan.id)
    after = _aware((await _dose_event(clinic, moved.id)).due_at)
    assert moved.local.endswith("08:00") and after.hour == 0, (moved.local, after)
    assert after - before < timedelta(days=1)
