"""Booked consultations end to end (both bots over the Bot API emulator, which takes the
payments): a doctor sets their schedule with /schedule, the clinic sells the service, and a
patient books it with /book — mode, doctor, a time in their own time zone, an invoice in
Telegram Stars, the payment — in English, Chinese and Russian; both sides are told. Bad
input: two patients on the same time (one gets it, the other is offered the next), an
amount that does not match, a second delivery of the same payment, an invoice paid after its
hold ran out, a doctor's schedule typed wrong."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from flows import services
from handlers.patient.booking import BookCB
from storage.models import AuditRecord, Booking, ScheduledEvent, Slot, utcnow
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import Doc, add_doctor, consult
from tests.e2e.test_intake import Patient, new_patient
from tests.e2e.test_trust import click_data

RULE = "phone mon-sun 00:00-23:45 slot 15"


@pytest.fixture
async def bclinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """A clinic on SQLite."""
    c, schema = await start_clinic(tmp_path, "sqlite", log_capture)
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


def _starts(prefix: str) -> Any:
    return lambda m: (m.get("text") or "").startswith(prefix)


async def _setup(clinic: Clinic, price: str = "150 XTR") -> Doc:
    """A GP with phone hours every day and a phone service at ``price``."""
    doc = await add_doctor(clinic, "Dr Mira Holt", departments="general")
    shown = await doc.say(f"/schedule {RULE}", _starts(doc.t("schedule.bot.title", zone="UTC")))
    assert shown["text"].endswith("free times in the next 14 days.")
    assert int(shown["text"].rsplit("\n", 1)[-1].split()[0]) > 0
    async with clinic.app.db.uow() as uow:
        await services.add(uow, "admin:test", "phone", minutes=15, price=price)
        await uow.commit()
    return doc


async def _to_invoice(p: Patient, doc: Doc) -> tuple[dict[str, Any], dict[str, Any]]:
    """/book → Phone call → the doctor → the first time: (the slot message, the invoice)."""
    await p.say("/book", _starts(p.t("book.ask_mode")))
    first_label = p.t("book.first_available")
    listed = await p.press(
        p.t("svc.mode.phone"), lambda m: first_label in str(m.get("reply_markup"))
    )
    assert listed["text"].startswith(p.t("book.ask_doctor", mode=p.t("svc.mode.phone")))
    assert "Dr Mira Holt · Attending physician" in listed["text"]
    assert "⭐ 150" in listed["text"]
    labels = [b["text"] for row in listed["reply_markup"]["inline_keyboard"] for b in row]
    assert labels[0] == p.t("book.first_available")
    slots = await p.press(labels[1], lambda m: m.get("reply_markup") is not None)
    first = slots["reply_markup"]["inline_keyboard"][0][0]["text"]
    since = await p.clinic.seq(p.uid)
    await p.clinic.client.click_button(p.uid, PATIENT_BOT, first)
    invoice = await p.clinic.client.wait_for_invoice(p.uid, PATIENT_BOT, since=since)
    return slots, invoice


async def _bookings(clinic: Clinic) -> list[Booking]:
    async with clinic.app.db.uow() as uow:
        rows = list(await uow.session.scalars(select(Booking).order_by(Booking.created_at)))
        uow.session.expunge_all()
    return rows


@pytest.mark.parametrize("locale", ["en", "zh_Hans", "ru"])
async def test_book_pay_and_both_sides_are_told(bclinic: Clinic, locale: str) -> None:
    clinic = bclinic
    doc = await _setup(clinic)
    p = await new_patient(clinic, locale)
    _slots, invoice = await _to_invoice(p, doc)
    assert invoice["invoice"]["currency"] == "XTR"
    assert invoice["invoice"]["total_amount"] == 150
    [pending] = await _bookings(clinic)
    assert pending.status == "pending"
    since = await clinic.seq(p.uid)
    paid = await clinic.client.pay(p.uid, PATIENT_BOT, invoice["message_id"])
    assert paid["status"] == "paid", paid
    confirmed = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: "Dr Mira Holt" in (m.get("text") or "")
        and p.t("book.first_available") not in str(m.get("reply_markup")), since=since,
    )  # fmt: skip
    assert confirmed["text"].startswith(
        p.t("book.confirmed", mode="X", when="Y", zone="Z", doctor="D")
        .split("X")[0]
        .split("Y")[0][:4]
    )
    assert "UTC+3" in confirmed["text"]  # the patient's own zone, as they chose it
    assert "Dr Mira Holt" in confirmed["text"]
    await doc.wait(_starts("New booking"))
    [booked] = await _bookings(clinic)
    assert booked.status == "booked" and booked.charge_id == paid["telegram_payment_charge_id"]
    async with clinic.app.db.uow() as uow:
        slot = await uow.bookings.slot(booked.slot_id)
        assert slot is not None and slot.status == "busy"
    assert clinic.app.processor.failed == 0


async def test_two_patients_one_time_and_payments_that_must_not_book(bclinic: Clinic) -> None:
    clinic = bclinic
    doc = await _setup(clinic)
    first, second = await new_patient(clinic, "en"), await new_patient(clinic, "en")
    slots, invoice = await _to_invoice(first, doc)
    [held] = await _bookings(clinic)
    # The second patient presses the same time (the button of the first one's list).
    own = (await clinic.client.messages(second.uid, PATIENT_BOT))["messages"][-1]
    answer = await click_data(
        clinic, second.uid, PATIENT_BOT, own["message_id"],
        BookCB(action="slot", value=held.slot_id).pack(),
    )  # fmt: skip
    assert answer is not None
    offered = await clinic.client.wait_for(
        second.uid, PATIENT_BOT, _starts(second.t("book.slot_taken", zone="")[:20])
    )
    times = [b["text"] for row in offered["reply_markup"]["inline_keyboard"] for b in row]
    assert times and slots["reply_markup"]["inline_keyboard"][0][0]["text"] not in times

    # A different amount than the invoice's: refused before any money moves.
    wrong = await clinic.client.pay(
        first.uid, PATIENT_BOT, invoice["message_id"], override_total_amount=1
    )
    assert wrong["status"] == "rejected"
    assert wrong["error_message"] == first.t("book.pay.mismatch")
    # Paid, and the same payment delivered twice: one booking, one confirmation.
    since = await clinic.seq(first.uid)
    paid = await clinic.client.pay(first.uid, PATIENT_BOT, invoice["message_id"], duplicate=True)
    assert paid["status"] == "paid"
    await clinic.client.wait_for(first.uid, PATIENT_BOT, _starts("Booked:"), since=since)
    await clinic.client.wait_for(doc.uid, DOCTOR_BOT, _starts("New booking"))
    charges = await clinic.client.payments(PATIENT_BOT, first.uid)
    assert [c["deliveries"] for c in charges] == [2]
    texts = await clinic.bot_texts(first.uid)
    assert sum(t.startswith("Booked:") for t in texts) == 1
    [booked] = await _bookings(clinic)
    assert booked.status == "booked"

    # The second patient holds another time, lets the hold run out (the sweeper releases
    # it and says so), then pays the old invoice: refused, nothing charged.
    second_slot = offered["reply_markup"]["inline_keyboard"][0][0]["text"]
    since = await clinic.seq(second.uid)
    await clinic.client.click_button(second.uid, PATIENT_BOT, second_slot)
    stale = await clinic.client.wait_for_invoice(second.uid, PATIENT_BOT, since=since)
    past = utcnow() - timedelta(seconds=5)
    async with clinic.app.db.uow() as uow:
        await uow.session.execute(
            update(Slot).where(Slot.status == "busy-tentative").values(hold_until=past)
        )
        await uow.session.execute(
            update(ScheduledEvent)
            .where(ScheduledEvent.kind == "booking.hold_expiry")
            .values(due_at=past)
        )
        await uow.commit()
    await clinic.client.wait_for(
        second.uid, PATIENT_BOT, _starts(second.t("book.hold_expired", minutes=15)[:20])
    )
    late = await clinic.client.pay(second.uid, PATIENT_BOT, stale["message_id"])
    assert late["status"] == "rejected"
    assert late["error_message"] == second.t("book.pay.gone")
    assert await clinic.client.payments(PATIENT_BOT, second.uid) == []
    statuses = sorted(b.status for b in await _bookings(clinic))
    assert statuses == ["booked", "cancelled"]
    assert clinic.app.processor.failed == 0


async def test_a_schedule_typed_wrong_says_why(bclinic: Clinic) -> None:
    clinic = bclinic
    doc = await add_doctor(clinic, "Dr Mira Holt", departments="general")
    bad = await doc.say("/schedule phone mon-fri 18:00-09:00 slot 15", lambda m: True)
    assert "18:00-09:00" in bad["text"]
    await doc.say("/schedule phone mon-fri 09:00-12:00 slot 15", _starts("Your schedule"))
    clash = await doc.say("/schedule video mon 11:00-13:00 slot 20", lambda m: True)
    assert "Phone" in clash["text"] and "Mon" in clash["text"]
    past = await doc.say("/schedule off 2020-01-01", lambda m: True)
    assert "2020-01-01" in past["text"]
    async with clinic.app.db.uow() as uow:
        counts = await uow.bookings.count_slots()
    assert counts.get("free", 0) > 0 and set(counts) == {"free"}
    # A patient's /book with no service sold yet: told, no buttons.
    p = await new_patient(clinic, "en")
    await p.say("/book", lambda m: m["text"] == p.t("book.none"))
    assert clinic.app.processor.failed == 0


async def test_a_booking_is_offered_after_an_intake_that_needs_a_doctor(bclinic: Clinic) -> None:
    clinic = bclinic
    await _setup(clinic)
    p = await new_patient(clinic, "ru")
    await consult(p)  # an intake that became a case waiting in the queue
    offer = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: m.get("text") == p.t("book.offer_after_intake")
    )
    labels = [b["text"] for row in offer["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == [p.t("svc.mode.phone")]
    listed = await p.press(labels[0], lambda m: "Dr Mira Holt" in (m.get("text") or ""))
    assert p.t("book.first_available") in str(listed["reply_markup"])
    assert clinic.app.processor.failed == 0


async def test_a_free_consultation_is_booked_when_confirmed(bclinic: Clinic) -> None:
    clinic = bclinic
    doc = await _setup(clinic, price="free")
    p = await new_patient(clinic, "zh_Hans")
    await p.say("/book", _starts(p.t("book.ask_mode")))
    first_label = p.t("book.first_available")
    listed = await p.press(
        p.t("svc.mode.phone"), lambda m: first_label in str(m.get("reply_markup"))
    )
    assert p.t("svc.free") in listed["text"]
    slots = await p.press(first_label, lambda m: m.get("reply_markup") is not None)
    ask = await p.press(
        slots["reply_markup"]["inline_keyboard"][0][0]["text"],
        lambda m: p.t("book.confirm_button") in str(m.get("reply_markup")),
    )
    assert "Dr Mira Holt" in ask["text"]
    [held] = await _bookings(clinic)
    assert held.status == "pending"  # held, not booked, until confirmed
    await p.press(p.t("book.confirm_button"), lambda m: "Dr Mira Holt" in (m.get("text") or ""))
    await doc.wait(_starts("New booking"))
    [booked] = await _bookings(clinic)
    assert booked.status == "booked" and booked.charge_id is None
    assert await clinic.client.payments(PATIENT_BOT, p.uid) == []
    # Pressing Confirm again changes nothing.
    await p.press(p.t("book.confirm_button"), lambda m: m.get("text") == p.t("book.pay.gone"))
    assert [b.status for b in await _bookings(clinic)] == ["booked"]
    assert clinic.app.processor.failed == 0


async def test_a_time_that_has_passed_offers_the_free_ones(bclinic: Clinic) -> None:
    clinic = bclinic
    doc = await _setup(clinic)
    p = await new_patient(clinic, "en")
    await p.say("/book", _starts(p.t("book.ask_mode")))
    first_label = p.t("book.first_available")
    await p.press(p.t("svc.mode.phone"), lambda m: first_label in str(m.get("reply_markup")))
    slots = await p.press(first_label, lambda m: m.get("reply_markup") is not None)
    label = slots["reply_markup"]["inline_keyboard"][0][0]["text"]
    async with clinic.app.db.uow() as uow:  # the list sat there while the time passed
        d = await uow.doctors.by_tg_user(doc.uid)
        assert d is not None
        [first, *_] = await uow.bookings.free_slots(d.id, "phone", utcnow())
        first.start_at = utcnow() - timedelta(minutes=1)
        gone = first.id
        await uow.commit()
    assert gone in str(slots["reply_markup"])
    fresh = await p.press(label, _starts(p.t("book.slot_past", zone="")[:20]))
    assert gone not in str(fresh["reply_markup"])  # only times still ahead are offered
    assert await _bookings(clinic) == []
    async with clinic.app.db.uow() as uow:
        refusals = list(
            await uow.session.scalars(
                select(AuditRecord.details).where(AuditRecord.action == "patient.refused")
            )
        )
    assert [json.loads(r) for r in refusals] == [{"reason": "past"}]
    assert clinic.app.processor.failed == 0
