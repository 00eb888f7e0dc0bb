"""Booked consultations at their time, end to end over the emulator: reminders to both
sides; a phone consultation (the patient shares their number for this call only; the
doctor's card shows it, Start / Finished, and the number leaves the doctor's view when the
call ends; a patient who does not answer is a no-show); a video consultation (unguessable
room, a signed token each, "the video isn't working" goes on in the chat); the doctor who
never starts (refunded); the patient's cancellation under the clinic's policy (refunded
early, not late); a suspended doctor's bookings (cancelled, refunded, patients told)."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from flows import booking, calls, privacy, services
from flows import doctors as doctor_flow
from flows.export import record_bundle
from handlers.common.bookings import CallCB
from storage.models import Booking, ScheduledEvent, Slot, utcnow
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import Doc, add_doctor, wait_answers
from tests.e2e.test_intake import Patient, new_patient
from tests.e2e.test_trust import click_data

JITSI = "https://meet.clinic.example"
SECRET = "jitsi-test-secret"


@pytest.fixture
async def cclinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """A clinic on SQLite with a Jitsi server and free cancellation until 1 h before."""
    c, schema = await start_clinic(
        tmp_path, "sqlite", log_capture, jitsi_url=JITSI, jitsi_app_secret=SecretStr(SECRET),
        booking_free_cancel_hours=1,
    )  # fmt: skip
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


def _has(text: str) -> Any:
    return lambda m: text in (m.get("text") or "")


async def _book(
    clinic: Clinic, mode: str, price: str = "150 XTR", locale: str = "en"
) -> tuple[Doc, Patient, str]:
    """A doctor with ``mode`` hours all day, a service, a patient who booked and paid."""
    doc = await add_doctor(clinic, "Dr Mira Holt", departments="general")
    await doc.say(f"/schedule {mode} mon-sun 00:00-23:40 slot 20", _has("free times"))
    async with clinic.app.db.uow() as uow:
        await services.add(uow, "admin:test", mode, minutes=20 if mode != "text" else None,
                           price=price)  # fmt: skip
        await uow.commit()
    p = await new_patient(clinic, locale)
    await p.say("/book", _has(p.t("book.ask_mode")))
    listed = await p.press(p.t(f"svc.mode.{mode}"), _has("Dr Mira Holt"))
    doctor_button = listed["reply_markup"]["inline_keyboard"][1][0]["text"]
    slots = await p.press(doctor_button, lambda m: m.get("reply_markup") is not None)
    # The second time offered: at least 20 minutes ahead, so the test moves the clock itself.
    label = slots["reply_markup"]["inline_keyboard"][1][0]["text"]
    since = await clinic.seq(p.uid)
    await clinic.client.click_button(p.uid, PATIENT_BOT, label)
    invoice = await clinic.client.wait_for_invoice(p.uid, PATIENT_BOT, since=since)
    since = await clinic.seq(p.uid)
    assert (await clinic.client.pay(p.uid, PATIENT_BOT, invoice["message_id"]))["status"] == "paid"
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("Dr Mira Holt"), since=since)
    [b] = await _bookings(clinic)
    return doc, p, b.id


async def _bookings(clinic: Clinic) -> list[Booking]:
    async with clinic.app.db.uow() as uow:
        rows = list(await uow.session.scalars(select(Booking).order_by(Booking.created_at)))
        uow.session.expunge_all()
    return rows


async def _fire(clinic: Clinic, kind: str, subject_like: str) -> None:
    """Make a booking's event due now (the sweeper runs it within a second)."""
    async with clinic.app.db.uow() as uow:
        await uow.session.execute(
            update(ScheduledEvent)
            .where(ScheduledEvent.kind == kind, ScheduledEvent.subject.like(subject_like))
            .values(due_at=utcnow() - timedelta(seconds=1))
        )
        await uow.commit()


async def test_phone_consultation_with_a_shared_number(cclinic: Clinic) -> None:
    clinic = cclinic
    doc, p, bid = await _book(clinic, "phone")
    # Reminders to both sides (the 15-minute one, made due now).
    await _fire(clinic, booking.REMIND_KIND, f"{bid}:15m")
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("starts in 15 minutes"))
    await doc.wait(_has(f"In 15 minutes: booking {bid[:8]}"))
    # The patient shares their number for this call.
    await p.press(p.t("book.phone.share"), _has(p.t("book.phone.shared")))
    await _fire(clinic, booking.START_KIND, bid)
    card = await doc.wait(_has(" now at "))
    assert "+15550100777" in card["text"] and card.get("protect_content") is True
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("will call you now"))
    [b] = await _bookings(clinic)
    assert b.consultation_id is not None
    # Too late to take the consent back once the call has started.
    answers = len(await doc.callback_answers())
    await clinic.client.click_button(doc.uid, DOCTOR_BOT, doc.t("book.call.start"))
    await wait_answers(doc, answers + 1)
    assert (await doc.callback_answers())[-1] == doc.t("book.call.done.start")
    answers = (await p.clinic.client.messages(p.uid, PATIENT_BOT))["messages"]
    share_msg = next(m for m in reversed(answers) if "reply_markup" in m and m["reply_markup"]
                     and p.t("book.phone.revoke") in str(m["reply_markup"]))  # fmt: skip
    refused = await click_data(
        clinic, p.uid, PATIENT_BOT, share_msg["message_id"],
        f"pcl:noshare:{bid}",
    )  # fmt: skip
    assert refused.get("text") == p.t("book.consent_too_late")
    await doc.press(doc.t("book.call.finished"), _has("/close"))
    # The card no longer shows the number.
    history = (await doc.history())["messages"]
    edited = next(m for m in history if m["message_id"] == card["message_id"])
    assert "+15550100777" not in edited["text"] and "the call has ended" in edited["text"]
    [b] = await _bookings(clinic)
    assert (b.status, b.call_outcome) == ("fulfilled", "completed")
    assert b.call_started_at is not None and b.call_ended_at is not None
    # Somebody else's card button is refused.
    other = await add_doctor(clinic, "Dr Ivo Quill", departments="general")
    last = (await other.history())["messages"][-1]
    forged = await click_data(
        clinic, other.uid, DOCTOR_BOT, last["message_id"], CallCB(action="start", b=bid).pack()
    )
    assert forged.get("text") == other.t("book.not_yours")
    assert clinic.app.processor.failed == 0


@pytest.mark.parametrize("locale", ["en", "zh_Hans", "ru"])
async def test_no_answer_and_a_doctor_who_never_starts(cclinic: Clinic, locale: str) -> None:
    clinic = cclinic
    doc, p, bid = await _book(clinic, "phone", locale=locale)
    await _fire(clinic, booking.START_KIND, bid)
    await doc.wait(_has("has not shared a number"))  # no consent: no number shown
    await doc.press(doc.t("book.call.no_answer"), _has("did not answer"))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has(p.t("book.call.missed")[:30]))
    [b] = await _bookings(clinic)
    assert (b.status, b.call_outcome) == ("noshow", "no_answer")

    # A second booking the doctor never starts: cancelled and refunded after 15 minutes.
    p2 = await new_patient(clinic, locale)
    await p2.say("/book", _has(p2.t("book.ask_mode")))
    listed = await p2.press(p2.t("svc.mode.phone"), _has("Dr Mira Holt"))
    slots = await p2.press(listed["reply_markup"]["inline_keyboard"][1][0]["text"],
                           lambda m: m.get("reply_markup") is not None)  # fmt: skip
    since = await clinic.seq(p2.uid)
    await clinic.client.click_button(
        p2.uid, PATIENT_BOT, slots["reply_markup"]["inline_keyboard"][1][0]["text"]
    )
    invoice = await clinic.client.wait_for_invoice(p2.uid, PATIENT_BOT, since=since)
    paid = await clinic.client.pay(p2.uid, PATIENT_BOT, invoice["message_id"])
    second = (await _bookings(clinic))[-1].id
    await clinic.client.wait_for(p2.uid, PATIENT_BOT, _has("Dr Mira Holt"))
    await _fire(clinic, booking.START_KIND, second)
    await _fire(clinic, booking.NO_START_KIND, second)
    await clinic.client.wait_for(p2.uid, PATIENT_BOT, _has(p2.t("book.no_start.refunded")))
    await doc.wait(_has(f"Booking {second[:8]} was not started"))
    charges = await clinic.client.payments(PATIENT_BOT, p2.uid)
    assert [(c["telegram_payment_charge_id"], c["status"]) for c in charges] == [
        (paid["telegram_payment_charge_id"], "refunded")
    ]
    b2 = (await _bookings(clinic))[-1]
    assert (b2.status, b2.cancelled_by, b2.refund) == ("cancelled", "doctor", "refunded")
    assert clinic.app.processor.failed == 0


async def test_video_room_tokens_and_the_fallback_to_chat(cclinic: Clinic) -> None:
    clinic = cclinic
    doc, p, bid = await _book(clinic, "video")
    await _fire(clinic, booking.START_KIND, bid)
    dmsg = await doc.wait(_has("video room is ready"))
    pmsg = await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("join Dr Mira Holt"))
    [b] = await _bookings(clinic)
    assert b.room is not None and len(b.room) == len("careline") + 32
    for text, moderator in ((dmsg["text"], True), (pmsg["text"], False)):
        [link] = re.findall(r"https://\S+", text)
        assert link.startswith(f"{JITSI}/{b.room}?jwt=")
        claims = calls.read_token(link.split("jwt=")[1], SECRET)
        assert claims is not None and claims["room"] == b.room
        assert claims["moderator"] is moderator
    # The patient's video does not work: the consultation goes on in the chat.
    await p.press(p.t("book.video_failed"), _has(p.t("book.video_failed.patient")[:20]))
    await doc.wait(_has("video is not working"))
    [b] = await _bookings(clinic)
    assert (b.mode, b.call_outcome) == ("text", "video_failed")
    assert clinic.app.processor.failed == 0


async def test_cancellation_policy_and_a_suspended_doctor(cclinic: Clinic) -> None:
    clinic = cclinic
    doc, p, bid = await _book(clinic, "phone")
    # More than the clinic's 1 hour before? Move the booking a day ahead to be sure.
    async with clinic.app.db.uow() as uow:
        await uow.session.execute(
            update(Booking).where(Booking.id == bid).values(start_at=utcnow() + timedelta(days=1))
        )
        await uow.commit()
    await p.say("/bookings", _has("Dr Mira Holt"))
    await p.press(p.t("book.cancel_button"), _has(p.t("book.cancelled.refund")))
    await doc.wait(_has(f"Booking {bid[:8]} has been cancelled by the patient"))
    charges = await clinic.client.payments(PATIENT_BOT, p.uid)
    assert [c["status"] for c in charges] == ["refunded"]
    # Late (within the hour): cancelled, not refunded.
    p2 = await new_patient(clinic, "en")
    await p2.say("/book", _has(p2.t("book.ask_mode")))
    listed = await p2.press(p2.t("svc.mode.phone"), _has("Dr Mira Holt"))
    slots = await p2.press(listed["reply_markup"]["inline_keyboard"][1][0]["text"],
                           lambda m: m.get("reply_markup") is not None)  # fmt: skip
    since = await clinic.seq(p2.uid)
    await clinic.client.click_button(
        p2.uid, PATIENT_BOT, slots["reply_markup"]["inline_keyboard"][0][0]["text"]
    )
    invoice = await clinic.client.wait_for_invoice(p2.uid, PATIENT_BOT, since=since)
    await clinic.client.pay(p2.uid, PATIENT_BOT, invoice["message_id"])
    await clinic.client.wait_for(p2.uid, PATIENT_BOT, _has("Booked:"))
    await p2.press(p2.t("book.cancel_button"), _has("not refunded"))
    assert [c["status"] for c in await clinic.client.payments(PATIENT_BOT, p2.uid)] == ["paid"]
    # Receipts: in /history, and in the whole-record FHIR export (Appointment + Invoice).
    shown = await p.say("/history", _has(p.t("history.receipts.title")))
    assert f"{bid[:8]} · Phone call with Dr Mira Holt" in shown["text"]
    assert "cancelled · ⭐ 150 · refunded" in shown["text"]
    late = await p2.say("/history", _has(p2.t("history.receipts.title")))
    assert "cancelled · ⭐ 150 · paid" in late["text"]
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(p.uid)
        assert patient is not None
        bundle = await record_bundle(uow, patient)
    kinds = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    appointment, receipt = kinds["Appointment"], kinds["Invoice"]
    assert appointment["status"] == "cancelled" and appointment["serviceType"][0][
        "coding"][0]["code"] == "PHONE"  # fmt: skip
    assert receipt["status"] == "cancelled" and receipt["totalGross"] == {
        "value": 150.0, "currency": "XTR"
    }  # fmt: skip
    assert receipt["identifier"][0]["value"] == charges[0]["telegram_payment_charge_id"]
    # A third patient books; the doctor is suspended: cancelled, refunded, told.
    p3 = await new_patient(clinic, "en")
    await p3.say("/book", _has(p3.t("book.ask_mode")))
    listed = await p3.press(p3.t("svc.mode.phone"), _has("Dr Mira Holt"))
    slots = await p3.press(listed["reply_markup"]["inline_keyboard"][1][0]["text"],
                           lambda m: m.get("reply_markup") is not None)  # fmt: skip
    since = await clinic.seq(p3.uid)
    await clinic.client.click_button(
        p3.uid, PATIENT_BOT, slots["reply_markup"]["inline_keyboard"][2][0]["text"]
    )
    invoice = await clinic.client.wait_for_invoice(p3.uid, PATIENT_BOT, since=since)
    await clinic.client.pay(p3.uid, PATIENT_BOT, invoice["message_id"])
    await clinic.client.wait_for(p3.uid, PATIENT_BOT, _has("Booked:"))
    async with clinic.app.db.uow() as uow:
        d = await uow.doctors.by_tg_user(doc.uid)
        assert d is not None
        await doctor_flow.suspend(uow, d.id, "admin:test", "licence under review")
        await uow.commit()
    clinic.app.sender.poke()
    await clinic.client.wait_for(p3.uid, PATIENT_BOT, _has("can no longer see you"))
    assert [c["status"] for c in await clinic.client.payments(PATIENT_BOT, p3.uid)] == ["refunded"]
    assert clinic.app.processor.failed == 0


async def test_moving_a_booking(cclinic: Clinic) -> None:
    clinic = cclinic
    doc, p, bid = await _book(clinic, "phone")
    [before] = await _bookings(clinic)
    # Within the clinic's hour before the time: it cannot be moved (it can be cancelled).
    await p.say("/bookings", _has("Dr Mira Holt"))
    await p.press(p.t("book.move_button"), _has(p.t("book.ask_move", zone="UTC+3")[:20]))
    since = await clinic.seq(p.uid)
    listed = (await clinic.client.messages(p.uid, PATIENT_BOT))["messages"][-1]
    first = listed["reply_markup"]["inline_keyboard"][0][0]["text"]
    await clinic.client.click_button(p.uid, PATIENT_BOT, first)
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, _has(p.t("book.cannot_move", hours=1)[:30]), since=since
    )
    # A day ahead it can: the new time is taken, the old one freed, the events follow.
    async with clinic.app.db.uow() as uow:
        await uow.session.execute(
            update(Booking).where(Booking.id == bid).values(start_at=utcnow() + timedelta(days=1))
        )
        await uow.commit()
    await p.press(p.t("book.move_button"), _has(p.t("book.ask_move", zone="UTC+3")[:20]))
    listed = (await clinic.client.messages(p.uid, PATIENT_BOT))["messages"][-1]
    target = listed["reply_markup"]["inline_keyboard"][-1][0]["text"]
    await p.press(target, _has("Moved:"))
    await doc.wait(_has(f"Booking {bid[:8]} has been moved by the patient"))
    [after] = await _bookings(clinic)
    assert after.slot_id != before.slot_id and after.status == "booked"
    async with clinic.app.db.uow() as uow:
        old = await uow.bookings.slot(before.slot_id)
        new = await uow.bookings.slot(after.slot_id)
        assert old is not None and old.status == "free" and old.booking_id is None
        assert new is not None and new.status == "busy" and new.booking_id == bid
        starts = list(
            await uow.session.scalars(
                select(ScheduledEvent).where(
                    ScheduledEvent.kind == booking.START_KIND, ScheduledEvent.subject == bid
                )
            )
        )
        statuses = sorted(e.status for e in starts)
        pending = next(e for e in starts if e.status == "pending")
        assert booking.aware(pending.due_at) == booking.aware(new.start_at)
    assert statuses == ["cancelled", "pending"]
    assert clinic.app.processor.failed == 0


async def test_erasure_cancels_refunds_and_forgets_bookings(cclinic: Clinic) -> None:
    clinic = cclinic
    doc, p, bid = await _book(clinic, "phone")
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(p.uid)
        assert patient is not None
        pid = patient.id
        await privacy.erase(uow, patient, bot="patient")
        await uow.commit()
    clinic.app.sender.poke()
    await doc.wait(_has(f"Booking {bid[:8]} has been cancelled by the patient"))
    # The Stars payment for the time ahead goes back although the patient is gone.
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        charges = await clinic.client.payments(PATIENT_BOT, p.uid)
        if [c["status"] for c in charges] == ["refunded"]:
            break
        await asyncio.sleep(0.05)
    assert [c["status"] for c in charges] == ["refunded"]
    # Nothing of the booking keeps the patient's id; the time is free again.
    async with clinic.app.db.uow() as uow:
        assert await uow.bookings.of_patient(pid) == []
        rows = list(await uow.session.scalars(select(Slot).where(Slot.patient_id == pid)))
        assert rows == []
        assert (await uow.bookings.count_slots()).get("busy", 0) == 0
    assert clinic.app.processor.failed == 0


async def test_closing_the_case_takes_the_number_off_the_card(cclinic: Clinic) -> None:
    clinic = cclinic
    doc, p, bid = await _book(clinic, "phone")
    await p.press(p.t("book.phone.share"), _has(p.t("book.phone.shared")))
    await _fire(clinic, booking.START_KIND, bid)
    card = await doc.wait(_has(" now at "))
    assert "+15550100777" in card["text"]
    [b] = await _bookings(clinic)
    async with clinic.app.db.uow() as uow:
        case = await uow.consultations.get(b.consultation_id or "")
        assert case is not None
        number = case.number
    # The doctor never presses Finished: /close with the advice closes the case, and the card
    # no longer shows the number.
    await doc.say("/close", _has(f"#{number}"), reply_to=card["message_id"])
    await doc.say(
        "Rest, fluids, and call again if the fever lasts over 3 days.",
        _has(doc.t("consult.doctor.closed", number=number)),
    )
    deadline = asyncio.get_running_loop().time() + 10
    edited = card
    while asyncio.get_running_loop().time() < deadline:
        history = (await doc.history())["messages"]
        edited = next(m for m in history if m["message_id"] == card["message_id"])
        if "+15550100777" not in edited["text"]:
            break
        await asyncio.sleep(0.05)
    assert "+15550100777" not in edited["text"]
    [b] = await _bookings(clinic)
    assert (b.status, b.call_outcome) == ("fulfilled", "completed")
    assert clinic.app.processor.failed == 0


async def test_two_no_shows_mean_a_deposit_returned_when_it_takes_place(cclinic: Clinic) -> None:
    clinic = cclinic
    doc = await add_doctor(clinic, "Dr Mira Holt", departments="general")
    await doc.say("/schedule phone mon-sun 00:00-23:40 slot 20", _has("free times"))
    async with clinic.app.db.uow() as uow:
        await services.add(uow, "admin:test", "phone", minutes=20, price="free")
        await uow.commit()
    p = await new_patient(clinic, "zh_Hans")
    async with clinic.app.db.uow() as uow:  # two missed bookings in the last 90 days
        patient = await uow.patients.by_tg_user(p.uid)
        d = await uow.doctors.by_tg_user(doc.uid)
        assert patient is not None and d is not None
        for days in (10, 40):
            uow.session.add(
                Booking(patient_id=patient.id, doctor_id=d.id, slot_id="x", service_id="x",
                        mode="phone", status="noshow", start_at=utcnow() - timedelta(days=days))
            )  # fmt: skip
        await uow.commit()
    await p.say("/book", _has(p.t("book.ask_mode")))
    listed = await p.press(p.t("svc.mode.phone"), _has("Dr Mira Holt"))
    slots = await p.press(listed["reply_markup"]["inline_keyboard"][1][0]["text"],
                          lambda m: m.get("reply_markup") is not None)  # fmt: skip
    since = await clinic.seq(p.uid)
    await clinic.client.click_button(
        p.uid, PATIENT_BOT, slots["reply_markup"]["inline_keyboard"][1][0]["text"]
    )
    invoice = await clinic.client.wait_for_invoice(p.uid, PATIENT_BOT, since=since)
    assert (invoice["invoice"]["currency"], invoice["invoice"]["total_amount"]) == ("XTR", 100)
    texts = await clinic.bot_texts(p.uid)
    assert p.t("book.held_deposit", n=2, days=90, price="⭐ 100") in texts
    paid = await clinic.client.pay(p.uid, PATIENT_BOT, invoice["message_id"])
    assert paid["status"] == "paid"
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has("Dr Mira Holt"), since=since)
    bid = next(b for b in await _bookings(clinic) if b.status == "booked").id
    await _fire(clinic, booking.START_KIND, bid)
    await doc.wait(_has("has not shared a number"))
    answers = len(await doc.callback_answers())
    await clinic.client.click_button(doc.uid, DOCTOR_BOT, doc.t("book.call.start"))
    await wait_answers(doc, answers + 1)
    await doc.press(doc.t("book.call.finished"), _has("/close"))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _has(p.t("book.deposit_returned")))
    charges = await clinic.client.payments(PATIENT_BOT, p.uid)
    assert [c["status"] for c in charges] == ["refunded"]
    assert clinic.app.processor.failed == 0


async def test_a_text_consultation_opens_in_the_chat(cclinic: Clinic) -> None:
    clinic = cclinic
    doc, p, bid = await _book(clinic, "text", locale="ru")
    await _fire(clinic, booking.START_KIND, bid)
    opened = await doc.wait(_has("the booked consultation is open"))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, _has(p.t("book.start.text", doctor="Dr Mira Holt", number=1)[:12])
    )
    # The doctor answers by replying to the case's message; the patient reads it.
    since = await clinic.seq(p.uid)
    await clinic.client.send(
        doc.uid, DOCTOR_BOT, "Please tell me your temperature.",
        reply_to_message_id=opened["message_id"],
    )  # fmt: skip
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, _has("Mira Holt: Please tell me your temperature."), since=since
    )
    # Text consultations are answered within their window: no 15-minute no-start refund.
    await _fire(clinic, booking.NO_START_KIND, bid)
    deadline = asyncio.get_running_loop().time() + 10
    status = "pending"
    while status != "done" and asyncio.get_running_loop().time() < deadline:
        async with clinic.app.db.uow() as uow:
            status = (
                await uow.session.scalar(
                    select(ScheduledEvent.status).where(
                        ScheduledEvent.kind == booking.NO_START_KIND, ScheduledEvent.subject == bid
                    )
                )
                or "missing"
            )
        await asyncio.sleep(0.05)
    assert status == "done"  # the check ran, and left the text consultation alone
    [b] = await _bookings(clinic)
    assert b.status == "booked" and b.refund is None
    assert clinic.app.processor.failed == 0
