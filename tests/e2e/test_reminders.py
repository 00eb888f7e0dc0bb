"""Dose reminders end to end over the Bot API emulator, both real bots, on SQLite and
PostgreSQL, with the scheduler driven by a fake clock (``clinic.app.sweeper.sweep_once``):

a doctor's plan -> the patient confirms it on the plan card -> the reminder arrives ->
Taken; Snooze (the reminder comes back) then Skip with a reason; Side effect -> nausea ->
mild (the doctor gets a care alert); silence -> the re-remind -> the caregiver's alert ->
the doctor's alert; silence again -> the caregiver's "They took it" stops the ladder (no
doctor alert; the patient is told); old buttons answer "already recorded"; a typed skip
reason reaches the dose, not the doctor's chat; /doses lists it all.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from flows import timing
from handlers.patient.meds import send_card
from locales import Translator
from storage.models import CareAlert, Caregiver, Dose, MedicationPlan, ScheduledEvent, utcnow
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_consultation import add_doctor, contains
from tests.e2e.test_intake import Patient, has_button, new_patient

EN = Translator("en")
MEDICINE = "Examplol 5 mg"


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


async def _plan(clinic: Clinic, p: Patient, doctor_uid: int) -> str:
    """A plan the doctor sent (status proposed, one time a day three hours from now in the
    patient's zone); the patient gets the plan card."""
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(p.uid)
        doctor = await uow.doctors.by_tg_user(doctor_uid)
        assert patient is not None and doctor is not None
        zone_now = utcnow().astimezone(zoneinfo.ZoneInfo(patient.timezone or "UTC"))
        at = (zone_now + timedelta(hours=3)).strftime("%H:%M")
        plan = MedicationPlan(
            patient_id=patient.id,
            doctor_id=doctor.id,
            status="proposed",
            step="done",
            version=1,
            schedule=timing.Schedule(times=(at,), start=zone_now.date()).to_json(),
        )
        plan.id = uuid.uuid4().hex
        doc = {"name": MEDICINE, "dose": "1 tablet", "food": "with"}
        plan.details_enc = await uow.vault.seal(
            patient.id, "med_plans", "details_enc", plan.id, json.dumps(doc)
        )
        uow.session.add(plan)
        await uow.session.flush()
        await send_card(uow, plan)
        await uow.commit()
        return plan.id


async def _doses(clinic: Clinic, plan_id: str) -> list[Dose]:
    async with clinic.app.db.uow() as uow:
        rows = list(
            await uow.session.scalars(
                select(Dose).where(Dose.plan_id == plan_id).order_by(Dose.due_at)
            )
        )
        uow.session.expunge_all()
        return rows


async def _pending(clinic: Clinic, plan_id: str) -> Dose:
    """The newest dose of the plan (the next occurrence)."""
    return (await _doses(clinic, plan_id))[-1]


async def _sweep(clinic: Clinic, now: datetime) -> None:
    while await clinic.app.sweeper.sweep_once(now):
        pass


async def _remind(clinic: Clinic, p: Patient, plan_id: str) -> tuple[Dose, dict[str, Any]]:
    """Run the next occurrence's reminder; the reminder message."""
    dose = await _pending(clinic, plan_id)
    since = await clinic.seq(p.uid)
    await _sweep(clinic, _aware(dose.due_at) + timedelta(minutes=1))
    msg = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("doses.btn.taken")), since=since
    )
    return dose, msg


async def _carer(clinic: Clinic, patient_uid: int) -> int:
    """A caregiver (scope: missed-dose alerts, no medicine names) who opened the bot."""
    uid = await clinic.person("Oskar", "en")
    since = await clinic.seq(uid)
    await clinic.client.start(uid, PATIENT_BOT)
    await clinic.client.wait_for(uid, PATIENT_BOT, since=since)
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(patient_uid)
        assert patient is not None
        uow.session.add(
            Caregiver(
                patient_id=patient.id,
                tg_user_id=uid,
                scope="missed",
                details=False,
                status="active",
                expires_at=utcnow() + timedelta(days=2),
                accepted_at=utcnow(),
            )
        )
        await uow.commit()
    return uid


async def test_reminders_answers_and_the_escalation_ladder(clinic: Clinic) -> None:
    doc = await add_doctor(clinic, "Ada Example")
    p = await new_patient(clinic, "en")
    carer = await _carer(clinic, p.uid)
    plan_id = await _plan(clinic, p, doc.uid)
    await clinic.client.wait_for(p.uid, PATIENT_BOT, has_button(p.t("meds.card.confirm")))
    await p.press(p.t("meds.card.confirm"), contains(""))
    [first] = await _doses(clinic, plan_id)  # confirming scheduled the first occurrence
    assert first.status == "pending"

    # 1. The reminder arrives; Taken.
    dose, msg = await _remind(clinic, p, plan_id)
    assert MEDICINE in msg["text"] and dose.local[-5:] in msg["text"]
    assert p.t("doses.food.with") in msg["text"]
    await p.press(p.t("doses.btn.taken"), contains(p.t("doses.taken", time=dose.local[-5:])))
    assert (await _doses(clinic, plan_id))[0].status == "taken"

    # 2. Snooze 10 min: the reminder comes back; then Skip with a typed reason.
    dose, msg = await _remind(clinic, p, plan_id)
    await p.press(p.t("doses.btn.snooze", minutes=10), contains("10"))
    since = await clinic.seq(p.uid)
    async with clinic.app.db.uow() as uow:  # the button ran on the real clock
        snoozed = await uow.session.scalar(
            select(ScheduledEvent).where(
                ScheduledEvent.kind == "dose.snooze", ScheduledEvent.subject == dose.id
            )
        )
        assert snoozed is not None and snoozed.status == "pending"
        snooze_due = _aware(snoozed.due_at)
    assert abs((snooze_due - utcnow()) - timedelta(minutes=10)) < timedelta(minutes=1)
    await _sweep(clinic, snooze_due + timedelta(seconds=30))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("doses.btn.skip")), since=since
    )
    await p.press(p.t("doses.btn.skip"), has_button(p.t("doses.skip.other")))
    await p.press(p.t("doses.skip.other"), contains(p.t("doses.skip.type")))
    await p.say("The pharmacy was shut", contains(p.t("doses.skip.thanks")))
    skipped = next(d for d in await _doses(clinic, plan_id) if d.id == dose.id)
    assert skipped.status == "skipped" and b"pharmacy" not in (skipped.note_enc or b"")

    # 3. Side effect: nausea, mild -> the doctor gets a care alert.
    dose, msg = await _remind(clinic, p, plan_id)
    await p.press(p.t("doses.btn.effect"), has_button(p.t("doses.effect.nausea")))
    await p.press(p.t("doses.effect.nausea"), has_button(p.t("doses.severity.mild")))
    doc_since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await p.press(
        p.t("doses.severity.mild"), contains(p.t("doses.effect.sent", emergency_number="112")[:40])
    )
    alert_msg = await clinic.client.wait_for(
        doc.uid, DOCTOR_BOT, contains("Nausea"), since=doc_since
    )
    assert MEDICINE in alert_msg["text"]
    await p.press(p.t("doses.btn.taken"), contains(p.t("doses.taken", time=dose.local[-5:])))

    # 4. Silence: re-remind -> caregiver -> doctor.
    dose, msg = await _remind(clinic, p, plan_id)
    base = _aware(dose.due_at) + timedelta(minutes=1)
    since = await clinic.seq(p.uid)
    await _sweep(clinic, base + timedelta(minutes=31))
    again = await clinic.client.wait_for(p.uid, PATIENT_BOT, contains("again"), since=since)
    assert MEDICINE in again["text"]
    carer_since = await clinic.seq(carer)
    await _sweep(clinic, base + timedelta(minutes=61))
    carer_msg = await clinic.client.wait_for(
        carer, PATIENT_BOT, has_button(EN.plain("doses.caregiver.btn.took")), since=carer_since
    )
    assert MEDICINE not in carer_msg["text"]  # this caregiver may not see medicine names
    doc_since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await _sweep(clinic, base + timedelta(minutes=121))
    await clinic.client.wait_for(doc.uid, DOCTOR_BOT, contains(MEDICINE), since=doc_since)
    async with clinic.app.db.uow() as uow:
        kinds = [
            (a.kind, a.ref_id)
            for a in await uow.session.scalars(select(CareAlert).order_by(CareAlert.created_at))
        ]
    assert kinds == [("side_effect", kinds[0][1]), ("dose", dose.id)]

    # 5. Silence again; this time the caregiver answers "They took it": no doctor alert.
    dose, msg = await _remind(clinic, p, plan_id)
    base = _aware(dose.due_at) + timedelta(minutes=1)
    carer_since = await clinic.seq(carer)
    await _sweep(clinic, base + timedelta(minutes=61))
    await clinic.client.wait_for(
        carer, PATIENT_BOT, has_button(EN.plain("doses.caregiver.btn.took")), since=carer_since
    )
    since = await clinic.seq(p.uid)
    await clinic.press(carer, EN.plain("doses.caregiver.btn.took"))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, contains(p.t("doses.caregiver.someone")), since=since
    )
    doc_since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await _sweep(clinic, base + timedelta(minutes=200))
    acked = next(d for d in await _doses(clinic, plan_id) if d.id == dose.id)
    assert acked.status == "taken" and (acked.acked_by or "").startswith("caregiver:")
    async with clinic.app.db.uow() as uow:
        count = len(list(await uow.session.scalars(select(CareAlert))))
    assert count == 2  # nothing new for the doctor
    assert await clinic.seq(doc.uid, DOCTOR_BOT) == doc_since

    # 6. /doses lists the answers.
    listing = await p.say("/doses", contains(MEDICINE))
    for status in ("taken", "skipped"):
        assert p.t(f"doses.status.{status}") in listing["text"]


async def _callback_answer(clinic: Clinic, uid: int, since: int) -> dict[str, Any]:
    for _ in range(200):
        answers = (await clinic.client.messages(uid, PATIENT_BOT, since=since))["callback_answers"]
        if answers:
            return dict(answers[0])
        await asyncio.sleep(0.05)
    raise TimeoutError("no callback answer")


async def test_red_flag_side_effect_stale_buttons_and_the_doctors_ack(clinic: Clinic) -> None:
    doc = await add_doctor(clinic, "Ada Example")
    p = await new_patient(clinic, "ru")
    carer = await _carer(clinic, p.uid)
    plan_id = await _plan(clinic, p, doc.uid)
    await clinic.client.wait_for(p.uid, PATIENT_BOT, has_button(p.t("meds.card.confirm")))
    await p.press(p.t("meds.card.confirm"), contains(""))

    # Taken, then the same button again: "already recorded", nothing changes.
    dose, msg = await _remind(clinic, p, plan_id)
    assert MEDICINE in msg["text"] and p.t("doses.btn.taken") == "✅ Принял(а)"
    await p.press(p.t("doses.btn.taken"), contains(dose.local[-5:]))
    since = await clinic.seq(p.uid)
    await clinic.client.click(
        p.uid, PATIENT_BOT, msg["message_id"], _data(msg, p.t("doses.btn.taken")), force=True
    )
    answer = await _callback_answer(clinic, p.uid, since)
    assert answer.get("text") == p.t("doses.already")

    # A side effect: trouble breathing -> emergency instructions at once, the doctor
    # alerted urgently, the caregiver told (without the medicine's name).
    dose, msg = await _remind(clinic, p, plan_id)
    await p.press(p.t("doses.btn.effect"), has_button(p.t("doses.effect.breathing")))
    doc_since = await clinic.seq(doc.uid, DOCTOR_BOT)
    carer_since = await clinic.seq(carer)
    await p.press(p.t("doses.effect.breathing"), contains("112"))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, contains(p.t("doses.effect.red_sent")))
    await clinic.client.wait_for(doc.uid, DOCTOR_BOT, contains(MEDICINE), since=doc_since)
    carer_msg = await clinic.client.wait_for(
        carer, PATIENT_BOT, contains("112"), since=carer_since
    )
    assert MEDICINE not in carer_msg["text"]
    async with clinic.app.db.uow() as uow:
        [alert] = list(await uow.session.scalars(select(CareAlert)))
        assert (alert.kind, alert.level) == ("side_effect", "danger")

    # The doctor changes the plan (version 2): the old reminder's buttons say so.
    async with clinic.app.db.uow() as uow:
        plan = await uow.session.get(MedicationPlan, plan_id)
        assert plan is not None
        plan.version = 2
        await uow.commit()
    await p.press(p.t("doses.btn.skip"), contains(p.t("doses.changed", plan="")[:30]))
    async with clinic.app.db.uow() as uow:
        plan = await uow.session.get(MedicationPlan, plan_id)
        assert plan is not None
        plan.version = 1
        await uow.commit()

    # Silence up to the doctor; the doctor acknowledges: recorded on the dose.
    dose, msg = await _remind(clinic, p, plan_id)
    base = _aware(dose.due_at) + timedelta(minutes=1)
    doc_since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await _sweep(clinic, base + timedelta(minutes=121))
    ack_label = Translator("en").plain("care.alert.ack")
    await clinic.client.wait_for(doc.uid, DOCTOR_BOT, has_button(ack_label), since=doc_since)
    await clinic.press(doc.uid, ack_label, DOCTOR_BOT)
    acked = next(d for d in await _doses(clinic, plan_id) if d.id == dose.id)
    assert (acked.acked_by or "").startswith("doctor:") and acked.status == "pending"
    # The caregiver's old alert button now answers "already answered".
    since = await clinic.seq(carer)
    await clinic.client.click_button(carer, PATIENT_BOT, EN.plain("doses.caregiver.btn.took"))
    answer = await _callback_answer(clinic, carer, since)
    assert answer.get("text") == EN.plain("doses.caregiver.already")


def _data(msg: dict[str, Any], label: str) -> str:
    rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
    return next(b["callback_data"] for row in rows for b in row if b["text"] == label)
