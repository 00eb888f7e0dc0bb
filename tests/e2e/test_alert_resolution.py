"""A care alert resolved by its cause, end to end over the Bot API emulator with both real
bots (SQLite and PostgreSQL), the scheduler on a fake clock: a dose goes unanswered up the
whole ladder, the doctor is alerted and /alerts shows the alert with its text; the
caregiver's "They took it" closes it: the doctor gets ONE "Resolved" message, /alerts no
longer lists it, and the old Acknowledge button says it resolved itself."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from locales import Translator
from storage.models import CareAlert
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_consultation import add_doctor, contains
from tests.e2e.test_intake import has_button, new_patient
from tests.e2e.test_reminders import MEDICINE, _aware, _carer, _doses, _plan, _remind, _sweep

EN = Translator("en")


async def _callback_answer(clinic: Clinic, uid: int, since: int) -> dict[str, Any]:
    for _ in range(200):
        answers = (await clinic.client.messages(uid, DOCTOR_BOT, since=since))["callback_answers"]
        if answers:
            return dict(answers[0])
        await asyncio.sleep(0.05)
    raise TimeoutError("no callback answer")


async def _texts_since(clinic: Clinic, uid: int, since: int) -> list[str]:
    history = await clinic.client.messages(uid, DOCTOR_BOT, since=since)
    return [m.get("text") or "" for m in history["messages"] if m["from"] == "bot"]


async def test_they_took_it_resolves_the_doctors_alert(clinic: Clinic) -> None:
    doc = await add_doctor(clinic, "Ada Example")
    p = await new_patient(clinic, "en")
    carer = await _carer(clinic, p.uid)
    plan_id = await _plan(clinic, p, doc.uid)
    await clinic.client.wait_for(p.uid, PATIENT_BOT, has_button(p.t("meds.card.confirm")))
    await p.press(p.t("meds.card.confirm"), contains(""))

    # Silence up the ladder: the caregiver, then the doctor.
    dose, _ = await _remind(clinic, p, plan_id)
    base = _aware(dose.due_at) + timedelta(minutes=1)
    carer_since = await clinic.seq(carer)
    await _sweep(clinic, base + timedelta(minutes=61))
    await clinic.client.wait_for(
        carer, PATIENT_BOT, has_button(EN.plain("doses.caregiver.btn.took")), since=carer_since
    )
    doc_since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await _sweep(clinic, base + timedelta(minutes=121))
    alert_msg = await clinic.client.wait_for(
        doc.uid, DOCTOR_BOT, has_button(EN.plain("care.alert.ack")), since=doc_since
    )
    assert MEDICINE in alert_msg["text"]

    # /alerts: the open alert with what happened, who and since when.
    since = await clinic.seq(doc.uid, DOCTOR_BOT)
    card = await doc.say("/alerts", has_button(EN.plain("care.alert.ack")))
    assert card["message_id"] != alert_msg["message_id"]
    assert (await _texts_since(clinic, doc.uid, since))[0] == EN.plain("care.alerts_title", n=1)
    assert "Alice" in card["text"] and EN.plain("care.kind.dose") in card["text"]
    assert MEDICINE in card["text"] and dose.local in card["text"]
    assert "Open since" in card["text"]

    # The caregiver: "They took it". The doctor is told once; the alert is closed.
    doc_since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.press(carer, EN.plain("doses.caregiver.btn.took"))
    notice = await clinic.client.wait_for(
        doc.uid, DOCTOR_BOT, contains("Resolved"), since=doc_since
    )
    assert notice["text"].startswith("✅ Resolved: Alice took " + MEDICINE + " at ")
    assert f"(the {dose.local[-5:]} dose), marked by their caregiver." in notice["text"]
    assert not (notice.get("reply_markup") or {}).get("inline_keyboard")
    taken = next(d for d in await _doses(clinic, plan_id) if d.id == dose.id)
    assert taken.status == "taken" and (taken.acked_by or "").startswith("caregiver:")
    async with clinic.app.db.uow() as uow:
        [alert] = list(
            await uow.session.scalars(select(CareAlert).where(CareAlert.ref_id == dose.id))
        )
        assert alert.acked_at is not None
        actions = [link.action for link in await uow.audit.for_record("care_alert", alert.id)]
        assert actions == ["care.alert", "care.alert.resolved"]

    # /alerts no longer lists it.
    await doc.say("/alerts", contains(EN.plain("care.alerts_empty")))
    # The old Acknowledge: "resolved itself", and the button goes.
    since = await clinic.seq(doc.uid, DOCTOR_BOT)
    ack = alert_msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await clinic.client.click(doc.uid, DOCTOR_BOT, alert_msg["message_id"], ack)
    answer = await _callback_answer(clinic, doc.uid, since)
    assert answer.get("text") == EN.plain("care.already_resolved")
    await clinic.client.wait_for(
        doc.uid,
        DOCTOR_BOT,
        lambda m: m["message_id"] == alert_msg["message_id"] and not m.get("reply_markup"),
        since=since,
    )
    # One notice only, whatever happened since.
    await _sweep(clinic, base + timedelta(minutes=300))
    await doc.say("/alerts", contains(EN.plain("care.alerts_empty")))
    resolved = [t for t in await _texts_since(clinic, doc.uid, doc_since) if "Resolved" in t]
    assert resolved == [notice["text"]]
