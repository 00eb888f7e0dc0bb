"""Booking under attack, on SQLite and PostgreSQL: patients racing for the same few times
(never two bookings on one slot, never a charge without a booking, a payment delivered twice
changes nothing), a payment that arrives for a booking that can no longer be had (refunded:
Stars at once, a card payment marked for the admins), a hold that runs out, and schedules
that change under bookings (a booked time is never dropped or overlapped)."""

from __future__ import annotations

from datetime import timedelta

from benchmarks.booking_race import race
from flows import booking, services
from storage.models import Doctor, Patient, utcnow
from storage.uow import Database


async def test_patients_racing_for_a_few_slots(db: Database) -> None:
    result = await race(db, patients=30, slots=5, seed=7)
    assert result["booked"] == 5 and result["busy_slots"] == 5
    assert result["double_bookings"] == 0
    assert result["charges"] == 5 and result["charges_without_booking"] == 0


async def _clinic(db: Database, price: str = "150 XTR") -> tuple[str, str, str]:
    now = utcnow()
    async with db.uow() as uow:
        doctor = await uow.doctors.add(
            Doctor(tg_user_id=1, locale="en", status="verified",
                   verified_until=now + timedelta(days=30), departments="general")
        )  # fmt: skip
        await services.add(uow, "admin:test", "phone", minutes=15, price=price)
        await booking.add_rule(uow, doctor, "phone mon-sun 00:00-23:45 slot 15", "UTC", now)
        patient = await uow.patients.add(
            Patient(tg_user_id=2, locale="en", onboarding_state="done")
        )
        [slot, *_] = await uow.bookings.free_slots(doctor.id, "phone", now)
        await uow.commit()
        return doctor.id, patient.id, slot.id


async def _hold(db: Database, patient_id: str, slot_id: str) -> str:
    async with db.uow() as uow:
        p = await uow.patients.get(patient_id)
        assert p is not None
        held = await booking.hold(uow, p, slot_id, utcnow())
        await uow.commit()
        return held.booking.id


async def test_a_payment_for_a_booking_that_is_gone_is_refunded(db: Database) -> None:
    _doctor, patient_id, slot_id = await _clinic(db)
    booking_id = await _hold(db, patient_id, slot_id)
    async with db.uow() as uow:  # the hold runs out before the payment lands
        cancelled = await booking.expire_hold(uow, booking_id)
        assert cancelled is not None and cancelled.status == "cancelled"
        assert await booking.expire_hold(uow, booking_id) is None  # once
        await uow.commit()
    payload = f"bk:{booking_id}"
    async with db.uow() as uow:
        assert await booking.pre_checkout(uow, 2, payload, "XTR", 150, utcnow()) == (
            "book.pay.gone"
        )
        done = await booking.paid(uow, 2, payload, "XTR", 150, "stx-1", None, utcnow())
        assert done.outcome == "refund_stars"
        again = await booking.paid(uow, 2, payload, "XTR", 150, "stx-1", None, utcnow())
        assert again.outcome == "duplicate"
        await uow.commit()
        b = await uow.bookings.booking(booking_id)
        assert b is not None and (b.status, b.refund, b.charge_id) == (
            "cancelled",
            "refunded",
            "stx-1",
        )
        slot = await uow.bookings.slot(slot_id)
        assert slot is not None and slot.status == "free"


async def test_a_card_payment_with_the_wrong_amount_is_marked_for_refund(db: Database) -> None:
    _doctor, patient_id, slot_id = await _clinic(db, price="300 CNY")
    booking_id = await _hold(db, patient_id, slot_id)
    payload = f"bk:{booking_id}"
    async with db.uow() as uow:
        assert await booking.pre_checkout(uow, 2, payload, "CNY", 1, utcnow()) == (
            "book.pay.mismatch"
        )
        assert await booking.pre_checkout(uow, 3, payload, "CNY", 30000, utcnow()) == (
            "book.pay.gone"  # someone else's booking
        )
        done = await booking.paid(uow, 2, payload, "CNY", 1, "tg-1", "ch_1", utcnow())
        assert done.outcome == "refund_provider"
        assert done.booking is not None and done.booking.refund == "to_refund"
        await uow.commit()


async def test_a_changed_schedule_keeps_booked_times(db: Database) -> None:
    doctor_id, patient_id, slot_id = await _clinic(db, price="free")
    booking_id = await _hold(db, patient_id, slot_id)  # a free service: held, then confirmed
    now = utcnow()
    async with db.uow() as uow:
        p = await uow.patients.get(patient_id)
        assert p is not None
        b = await booking.confirm_free(uow, p, booking_id, now)
        assert b.status == "booked"
        doctor = await uow.doctors.get(doctor_id)
        assert doctor is not None
        # Everything removed, then 20-minute slots: the booked 15-minute time stays, and no
        # new slot overlaps it.
        await booking.clear_mode(uow, doctor, "phone", "UTC", now)
        counts = await uow.bookings.count_slots(doctor_id)
        assert counts == {"busy": 1}
        await booking.add_rule(uow, doctor, "phone mon-sun 00:00-23:40 slot 20", "UTC", now)
        slots = await uow.bookings.future_slots(doctor_id, now)
        booked = next(s for s in slots if s.id == slot_id)
        others = [s for s in slots if s.id != slot_id]
        start, end = booking.aware(booked.start_at), booking.aware(booked.end_at)
        assert others and not any(
            booking.aware(s.start_at) < end and start < booking.aware(s.end_at) for s in others
        )
        await uow.commit()


async def test_a_time_taken_between_the_invoice_and_the_payment(db: Database) -> None:
    _doctor, patient_id, slot_id = await _clinic(db)
    booking_id = await _hold(db, patient_id, slot_id)
    async with db.uow() as uow:  # the hold runs out before the sweeper gets to it ...
        slot = await uow.bookings.slot(slot_id)
        assert slot is not None
        slot.hold_until = utcnow() - timedelta(seconds=1)
        other = await uow.patients.add(Patient(tg_user_id=3, locale="en", onboarding_state="done"))
        await uow.commit()
    other_booking = await _hold(db, other.id, slot_id)  # ... and someone else takes the time
    async with db.uow() as uow:
        why = await booking.pre_checkout(uow, 2, f"bk:{booking_id}", "XTR", 150, utcnow())
        assert why == "book.pay.taken"  # no money moves
        refused = [
            r for r in await uow.audit.for_record("bookings", booking_id)
            if r.action == "booking.precheckout_refused"
        ]  # fmt: skip
        assert len(refused) == 1
        slot = await uow.bookings.slot(slot_id)
        assert slot is not None and slot.patient_id == other.id
        b = await uow.bookings.booking(other_booking)
        assert b is not None and b.status == "pending"
