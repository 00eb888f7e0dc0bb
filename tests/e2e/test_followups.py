"""Follow-up plans end to end over the Bot API emulator, both real bots, on SQLite and
PostgreSQL, with the scheduler driven by a fake clock (``clinic.app.sweeper.sweep_once``):

a doctor enrols the patient of a case in hypertension check-ins (/followup: template,
frequency, time, review date) -> the patient is told -> the check-in comes due -> an
implausible 400/20 is refused and the question stays -> 185/115, pulse, "none of these" ->
the doctor gets the care alert, /queue shows it, Acknowledge clears it -> the next check-in
goes unanswered: one recall 3 days later, then missed and the doctor alerted once -> /readings
and the chart (a PNG that decodes, 900 px wide) for the patient, /chart for the doctor and a
refusal for a doctor who has no care of the patient.

And a doctor lists and ends a plan (/followups, End, Keep it / Yes, end it): the patient is
told, the check-in events are cancelled, the patient's old check-in button and the doctor's
old End button get a clear answer, another doctor's /followups is refused and audited.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image
from sqlalchemy import select

from locales import Translator
from storage.models import AuditRecord, CareAlert, CheckIn, Doctor, Reading, ScheduledEvent
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_consultation import add_doctor, consult, contains
from tests.e2e.test_intake import new_patient

EN = Translator("en")


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


async def _pending(clinic: Clinic, kind: str) -> list[ScheduledEvent]:
    async with clinic.app.db.uow() as uow:
        rows = list(
            await uow.session.scalars(
                select(ScheduledEvent)
                .where(ScheduledEvent.kind == kind, ScheduledEvent.status == "pending")
                .order_by(ScheduledEvent.due_at)
            )
        )
        uow.session.expunge_all()
        return rows


async def _sweep(clinic: Clinic, now: datetime) -> None:
    while await clinic.app.sweeper.sweep_once(now):
        pass


async def _photo(clinic: Clinic, uid: int, bot: str, since: int) -> tuple[int, int]:
    msg = await clinic.client.wait_for(uid, bot, lambda m: bool(m.get("photo")), since=since)
    data = await clinic.client.download(msg["photo"]["download_url"])
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.format == "PNG"
        return img.size


def _has(token: str) -> Any:
    return lambda m: token in (m.get("text") or m.get("caption") or "")


async def test_hypertension_followup_alert_recall_readings_and_chart(clinic: Clinic) -> None:
    doc = await add_doctor(clinic, "Dr Lena Park")
    other = await add_doctor(clinic, "Dr Omar Reyes")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await doc.accept(number)

    # /followup in the chosen case: template -> frequency -> time -> review date.
    await doc.say("/followup", contains("Follow-up for"))
    await doc.press(EN.plain("followup.template.hypertension"), contains("how often"))
    await doc.press(EN.plain("followup.freq.weekly"), contains("time of day"))
    await doc.say("25:00", contains("time of day"))  # refused, the question stays
    await doc.press("08:00", contains("Review date"))
    await doc.say("200 days", contains("within the next 90 days"))  # over the maximum
    await doc.press(EN.plain("followup.doctor.days", n=90), contains("The patient has been told"))
    await p.clinic.client.wait_for(p.uid, PATIENT_BOT, contains("check-ins for you"))

    [event] = await _pending(clinic, "checkin")
    due = _aware(event.due_at)
    assert event.key is not None and event.key.startswith(f"checkin:{event.subject}:")
    since = await clinic.seq(p.uid)
    await _sweep(clinic, due + timedelta(minutes=1))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("blood pressure now"), since=since)
    # the next weekly occurrence is already scheduled, exactly one
    [nxt] = await _pending(clinic, "checkin")
    assert timedelta(days=6) < _aware(nxt.due_at) - due < timedelta(days=8)

    await p.say("400/20", contains("cannot be a blood pressure reading"))
    await p.say("185/115", contains("Your pulse"))
    await p.say("80", contains("Do you have any of these now"))
    await p.press(EN.plain("followup.button.none"), contains("your doctor has been told"))

    alert = await doc.wait(contains("outside the thresholds"))
    assert f"#{number} ·" in alert["text"] and "185/115" in alert["text"]
    await doc.say("/queue", contains("Care alerts for your patients (1)"))
    await doc.press(EN.plain("care.alert.ack"), contains("Acknowledged"))
    async with clinic.app.db.uow() as uow:
        alerts = list(await uow.session.scalars(select(CareAlert)))
        assert [(a.kind, a.level, a.acked_at is not None) for a in alerts] == [
            ("reading", "alert", True)
        ]
        [reading] = list(await uow.session.scalars(select(Reading).where(Reading.kind == "bp")))
        assert reading.flag == "high" and b"185" not in reading.value_enc
    await doc.say("/alerts", contains("No open care alerts"))

    # The next check-in goes unanswered: one recall 3 days later, then missed.
    due2 = _aware(nxt.due_at)
    since = await clinic.seq(p.uid)
    await _sweep(clinic, due2 + timedelta(minutes=1))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("blood pressure now"), since=since)
    await _sweep(clinic, due2 + timedelta(days=3, minutes=2))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("no check-in answers"), since=since)
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    await _sweep(clinic, due2 + timedelta(days=6, minutes=5))
    await doc.wait(contains("without an answer"), since_doc)
    async with clinic.app.db.uow() as uow:
        rows = list(await uow.session.scalars(select(CheckIn).order_by(CheckIn.due_at)))
        assert [(c.status, c.level, c.recalled) for c in rows] == [
            ("done", "alert", False),
            ("missed", "none", True),
        ]

    # /readings and the patient's chart.
    shown = await p.say("/readings", contains("Your readings of the last 30 days"))
    assert "185/115 mmHg ⚠️" in shown["text"] and "80 bpm" in shown["text"]
    since = await clinic.seq(p.uid)
    await clinic.client.click_button(p.uid, PATIENT_BOT, EN.plain("followup.readings.chart"))
    width, height = await _photo(clinic, p.uid, PATIENT_BOT, since)
    assert width == 900 and height > 300
    # 7 / 30 / 90 days under the chart; a forged number of days is refused and audited.
    since = await clinic.seq(p.uid)
    await clinic.client.click_button(p.uid, PATIENT_BOT, EN.plain("charts.days", n=7))
    await _photo(clinic, p.uid, PATIENT_BOT, since)
    chart = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: bool(m.get("photo")), since=since
    )
    assert "last 7 days" in chart["caption"]
    [buttons] = chart["reply_markup"]["inline_keyboard"]
    assert [b["text"] for b in buttons] == ["• 7 days", "30 days", "90 days"]
    await clinic.client.click(p.uid, PATIENT_BOT, chart["message_id"], "rd:chart:5", force=True)
    await _callback_answer(clinic, p.uid, PATIENT_BOT, EN.plain("charts.stale"))

    # The doctor's chart and its 90 days; another doctor is refused (and it is audited),
    # by command and by a forged button.
    since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.send(doc.uid, DOCTOR_BOT, f"/chart {number}")
    assert (await _photo(clinic, doc.uid, DOCTOR_BOT, since))[0] == 900
    since = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.click_button(doc.uid, DOCTOR_BOT, EN.plain("charts.days", n=90))
    chart = await clinic.client.wait_for(
        doc.uid, DOCTOR_BOT, lambda m: bool(m.get("photo")), since=since
    )
    assert (
        "last 90 days" in chart["caption"]
        and "target bands: the Blood pressure plan" in (chart["caption"])
    )
    refusal = await other.say(f"/chart {number}", contains("only for patients under your care"))
    await clinic.client.click(
        other.uid, DOCTOR_BOT, refusal["message_id"], f"ch:{number}:30", force=True
    )
    await _callback_answer(clinic, other.uid, DOCTOR_BOT, EN.plain("followup.chart.refused"))
    async with clinic.app.db.uow() as uow:
        records = list(await uow.session.scalars(select(AuditRecord)))
        actions = [r.action for r in records]
        assert "care.chart" in actions and actions.count("care.chart.refused") == 2
        assert any(r.action == "patient.refused" and r.record_id == "rd" for r in records)
        assert "followup.enrol" in actions and "care.alert.ack" in actions


async def _callback_answer(clinic: Clinic, uid: int, bot: str, text: str) -> None:
    for _ in range(200):
        history = await clinic.client.messages(uid, bot)
        if text in [a.get("text") or "" for a in history["callback_answers"]]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no callback answer {text!r}")


async def test_doctor_lists_and_ends_a_followup_plan(clinic: Clinic) -> None:
    doc = await add_doctor(clinic, "Dr Lena Park")
    other = await add_doctor(clinic, "Dr Omar Reyes")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await doc.accept(number)
    await doc.say("/followups", contains("no follow-up plans of yours"))

    await doc.say("/followup", contains("Follow-up for"))
    await doc.press(EN.plain("followup.template.general"), contains("how often"))
    await doc.press(EN.plain("followup.freq.daily"), contains("time of day"))
    await doc.press("20:00", contains("Review date"))
    await doc.press(EN.plain("followup.doctor.days", n=30), contains("The patient has been told"))
    [event] = await _pending(clinic, "checkin")
    due = _aware(event.due_at)
    since = await clinic.seq(p.uid)
    await _sweep(clinic, due + timedelta(minutes=1))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("compared with last time"), since=since)

    # another doctor: refused, audited
    await other.say(f"/followups {number}", contains(f"Case #{number} is not one of yours"))
    # the doctor's list: one plan with End; End asks first, Keep it keeps it
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    await doc.say(f"/followups {number}", contains("Your follow-up plans for"))
    line = await doc.wait(contains("daily at 20:00"), since_doc)
    assert EN.plain("followup.template.general") in line["text"]
    await doc.press(EN.plain("followup.plans.end"), contains("End the"))
    await doc.press(EN.plain("followup.plans.no"), contains("goes on"))
    assert len(await _pending(clinic, "checkin")) == 1
    await doc.press(EN.plain("followup.plans.end"), contains("End the"))
    since = await clinic.seq(p.uid)
    await doc.press(EN.plain("followup.plans.yes"), contains("has ended"))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("ended your"), since=since)
    assert await _pending(clinic, "checkin") == []
    assert await _pending(clinic, "checkin.recall") == []

    # old buttons: the patient's check-in question, the doctor's End
    await clinic.client.click_button(p.uid, PATIENT_BOT, EN.plain("followup.q.feeling.better"))
    await _callback_answer(clinic, p.uid, PATIENT_BOT, EN.plain("followup.plan_ended"))
    await clinic.client.click_button(doc.uid, DOCTOR_BOT, EN.plain("followup.plans.end"))
    await _callback_answer(clinic, doc.uid, DOCTOR_BOT, EN.plain("followup.plans.already_ended"))
    await doc.say(f"/followups {number}", contains("no follow-up plans of yours"))

    # days later: no check-in comes
    since = await clinic.seq(p.uid)
    await _sweep(clinic, due + timedelta(days=4))
    await p.say("/readings", contains("No readings"))
    history = await clinic.client.messages(p.uid, PATIENT_BOT, since)
    assert not [
        m for m in history["messages"] if "compared with last time" in (m.get("text") or "")
    ]
    async with clinic.app.db.uow() as uow:
        [checkin] = list(await uow.session.scalars(select(CheckIn)))
        assert (checkin.status, checkin.state) == ("missed", "closed")
        actions = [(r.actor, r.action) for r in await uow.session.scalars(select(AuditRecord))]
        assert [a for _, a in actions].count("followup.end") == 1
        other_id = await uow.session.scalar(
            select(Doctor.id).where(Doctor.tg_user_id == other.uid)
        )
        assert (f"doctor:{other_id}", "consultation.refused") in actions


async def test_an_emergency_typed_as_a_checkin_answer_is_caught(sqlite_clinic: Clinic) -> None:
    """A check-in asks for a blood pressure; the patient types an emergency instead: the
    emergency instructions come first, the doctor is alerted, no "not a reading" answer."""
    clinic = sqlite_clinic
    doc = await add_doctor(clinic, "Dr Lena Park")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await doc.accept(number)
    await doc.say("/followup", contains("Follow-up for"))
    await doc.press(EN.plain("followup.template.hypertension"), contains("how often"))
    await doc.press(EN.plain("followup.freq.weekly"), contains("time of day"))
    await doc.press("08:00", contains("Review date"))
    await doc.press(EN.plain("followup.doctor.days", n=90), contains("The patient has been told"))
    [event] = await _pending(clinic, "checkin")
    since = await clinic.seq(p.uid)
    await _sweep(clinic, _aware(event.due_at) + timedelta(minutes=1))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("blood pressure now"), since=since)
    since = await clinic.seq(p.uid)
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.send(
        p.uid, PATIENT_BOT, "cant do the reading my chest is crushing and my left arm hurts"
    )
    first = await clinic.client.wait_for(p.uid, PATIENT_BOT, since=since)
    assert first["text"].startswith(
        EN.plain("emergency.call_now", emergency_number="112", what="")[:30]
    )
    await doc.wait(contains(EN.plain("redflag.chest_pain")), since_doc)
    texts = await clinic.bot_texts(p.uid)
    assert not any("cannot be a blood pressure reading" in t for t in texts)
    assert clinic.app.processor.failed == 0
