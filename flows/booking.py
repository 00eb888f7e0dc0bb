"""Booked consultations: doctors' schedules become slots, a patient holds one, pays in the
chat (Telegram Payments) and the slot is theirs.

- A doctor's schedule (:mod:`flows.schedule`) is stored as JSON; its slots are laid out
  ``HORIZON_DAYS`` ahead whenever it changes and whenever a patient looks (the horizon rolls
  forward). A slot that is held or booked is never dropped or overlapped by a new layout.
- Holding is one conditional UPDATE (:meth:`storage.bookings.BookingRepository.hold`): of two
  patients pressing the same slot, one gets it and the other is offered the next free ones.
- A paid service: a booking ``pending`` and an invoice; the slot is held ``HOLD_MINUTES``
  (released by the sweeper when unpaid). ``pre_checkout_query`` re-checks the booking, the hold
  and the amount; only ``successful_payment`` books, idempotent on its charge id. A payment
  that arrives for a booking that can no longer be had is refunded (Stars through
  ``refundStarPayment``; a provider payment is marked ``to_refund`` for the admins, as the Bot
  API has no refund call for those). A free service is booked at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flows import schedule as sched
from flows.consultation import departments_of
from flows.services import STARS, Price, ServiceView, offer
from storage.models import Booking, Doctor, Patient, Slot, new_id, utcnow
from storage.uow import UnitOfWork

HORIZON_DAYS = 14
HOLD_MINUTES = 15
SLOTS_SHOWN = 8
TABLE = "bookings"
EXPIRE_KIND = "booking.hold_expiry"
PENDING, BOOKED, CANCELLED = "pending", "booked", "cancelled"


class BookingError(ValueError):
    """Why a booking step cannot go on; ``msgid`` is the patient's message."""

    def __init__(self, msgid: str, **params: object) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params = params


# --- schedules ------------------------------------------------------------------------------


def doctor_zone(doctor: Doctor, clinic_tz: str) -> str:
    """The doctor's time zone (their own, else the clinic's)."""
    return doctor.timezone or clinic_tz


async def availability(uow: UnitOfWork, doctor: Doctor, clinic_tz: str) -> sched.Availability:
    """The doctor's stored availability (an empty one in their zone when none)."""
    raw = await uow.bookings.schedule(doctor.id)
    zone = doctor_zone(doctor, clinic_tz)
    if raw is None:
        return sched.Availability(zone)
    stored = sched.availability_from_json(json.loads(raw))
    # The doctor may have moved zone since: hours are wall-clock times in their current one.
    return sched.Availability(zone, stored.rules, stored.days_off)


async def _save(
    uow: UnitOfWork, doctor: Doctor, av: sched.Availability, now: datetime, action: str
) -> int:
    await uow.bookings.set_schedule(doctor.id, json.dumps(sched.availability_to_json(av)))
    await uow.audit.record(doctor_actor(doctor), action, "doctor_schedules", doctor.id, {})
    return await lay_out(uow, doctor.id, av, now)


def doctor_actor(doctor: Doctor) -> str:
    """The audit actor for a doctor."""
    return f"doctor:{doctor.id}"


async def add_rule(
    uow: UnitOfWork, doctor: Doctor, text: str, clinic_tz: str, now: datetime
) -> tuple[sched.Availability, int]:
    """Add a weekly rule the doctor typed; the availability and the free slots ahead."""
    av = sched.add_rule(await availability(uow, doctor, clinic_tz), sched.parse_rule(text))
    return av, await _save(uow, doctor, av, now, "schedule.rule")


async def clear_mode(
    uow: UnitOfWork, doctor: Doctor, mode: str, clinic_tz: str, now: datetime
) -> tuple[sched.Availability, int]:
    """Remove the doctor's hours of one mode (booked slots stay booked)."""
    av = sched.remove_rules(await availability(uow, doctor, clinic_tz), mode)
    return av, await _save(uow, doctor, av, now, "schedule.clear")


async def day_off(
    uow: UnitOfWork, doctor: Doctor, text: str, clinic_tz: str, now: datetime, *, off: bool
) -> tuple[sched.Availability, int]:
    """Take a day off (``off``) or work it again; booked slots on it stay booked."""
    av = await availability(uow, doctor, clinic_tz)
    today = now.astimezone(ZoneInfo(av.tz)).date()
    day = sched.parse_day_off(text, today)
    av = sched.add_day_off(av, day) if off else sched.remove_day_off(av, day)
    return av, await _save(uow, doctor, av, now, "schedule.day_off" if off else "schedule.day_on")


async def lay_out(uow: UnitOfWork, doctor_id: str, av: sched.Availability, now: datetime) -> int:
    """Make the doctor's future slots match the availability for ``HORIZON_DAYS``: free slots
    no longer wanted go, new ones come; held and booked slots stay, and no new slot overlaps
    one. Returns the number of free slots ahead."""
    today = now.astimezone(ZoneInfo(av.tz)).date()
    wanted = sched.generate(av, today, HORIZON_DAYS + 1, now)
    existing = await uow.bookings.future_slots(doctor_id, now)
    taken = [s for s in existing if s.status != "free"]
    keep = [
        w
        for w in wanted
        if not any(w.start < aware(t.end_at) and aware(t.start_at) < w.end for t in taken)
    ]
    want_keys = {(w.start, w.end, w.mode) for w in keep}
    stale = [
        s.id
        for s in existing
        if s.status == "free" and (aware(s.start_at), aware(s.end_at), s.mode) not in want_keys
    ]
    await uow.bookings.drop_free_slots(stale)
    have = {aware(s.start_at) for s in existing if s.id not in set(stale)}
    await uow.bookings.add_slots(
        [
            {"doctor_id": doctor_id, "mode": w.mode, "start_at": w.start, "end_at": w.end}
            for w in keep
            if w.start not in have
        ]
    )
    return sum(1 for _ in keep)


def aware(value: datetime) -> datetime:
    """A stored time as aware UTC (SQLite hands back naive UTC datetimes)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --- what a patient can book ----------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """A doctor a patient can book in one mode: the service, and the next free slot."""

    doctor: Doctor
    service: ServiceView
    next_start: datetime


async def offers(
    uow: UnitOfWork, mode: str, clinic_tz: str, now: datetime, limit: int = 8
) -> list[Offer]:
    """Verified doctors with a service and a free slot in ``mode``, soonest first."""
    out: list[Offer] = []
    for doctor_id in await uow.bookings.scheduled_doctors():
        doctor = await uow.doctors.get(doctor_id)
        if doctor is None or not _bookable(doctor, now):
            continue
        service = await offer(uow, doctor, mode)
        if service is None:
            continue
        await lay_out(uow, doctor.id, await availability(uow, doctor, clinic_tz), now)
        free = await uow.bookings.free_slots(doctor.id, mode, now, limit=1)
        if free:
            out.append(Offer(doctor, service, aware(free[0].start_at)))
    out.sort(key=lambda o: (o.next_start, o.doctor.id))
    return out[:limit]


def _bookable(doctor: Doctor, now: datetime) -> bool:
    until = doctor.verified_until
    return doctor.status == "verified" and until is not None and aware(until) > now


async def modes_on_offer(uow: UnitOfWork, clinic_tz: str, now: datetime) -> list[str]:
    """The modes at least one doctor can be booked in now."""
    return [m for m in sched.MODES if await offers(uow, m, clinic_tz, now, limit=1)]


async def free_slots(uow: UnitOfWork, doctor: Doctor, mode: str, now: datetime) -> list[Slot]:
    """The doctor's next free slots of a mode."""
    return await uow.bookings.free_slots(doctor.id, mode, now, limit=SLOTS_SHOWN)


# --- holding, paying, booking ---------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """A slot held for the patient: the booking waiting for payment (or booked, if free)."""

    booking: Booking
    slot: Slot
    service: ServiceView
    doctor: Doctor

    @property
    def price(self) -> Price:
        return Price(self.booking.price_minor, self.booking.currency)


async def hold(uow: UnitOfWork, patient: Patient, slot_id: str, now: datetime) -> Held:
    """Hold a slot for the patient and open its booking; a free service is booked at once.
    BookingError("book.slot_taken") when someone else got it first (the caller offers the
    next free slots of the same doctor)."""
    slot = await uow.bookings.slot(slot_id)
    if slot is None:
        raise BookingError("book.slot_taken")
    doctor = await uow.doctors.get(slot.doctor_id)
    if doctor is None or not _bookable(doctor, now):
        raise BookingError("book.doctor_gone")
    service = await offer(uow, doctor, slot.mode)
    if service is None:
        raise BookingError("book.no_service")
    until = now + timedelta(minutes=HOLD_MINUTES)
    if not await uow.bookings.hold(slot_id, patient.id, now, until):
        raise BookingError("book.slot_taken")
    booking = await uow.bookings.add_booking(
        Booking(
            id=new_id(),
            patient_id=patient.id,
            doctor_id=doctor.id,
            slot_id=slot_id,
            service_id=service.id,
            mode=slot.mode,
            status=PENDING,
            price_minor=service.price.minor,
            currency=service.price.currency,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
    )
    await uow.audit.record(
        f"patient:{patient.id}", "booking.hold", TABLE, booking.id, {"slot": slot_id}
    )
    slot = await uow.bookings.slot(slot_id) or slot
    if service.price.free:
        await _confirm(uow, booking, now, charge=None)
    else:
        await uow.events.add(
            EXPIRE_KIND, booking.id, patient.id, until + timedelta(seconds=1),
            key=f"{EXPIRE_KIND}:{booking.id}",
        )  # fmt: skip
    return Held(booking, slot, service, doctor)


async def _confirm(uow: UnitOfWork, booking: Booking, now: datetime, charge: str | None) -> bool:
    if not await uow.bookings.occupy(booking.slot_id, booking.patient_id, booking.id, now):
        return False
    booking.status = BOOKED
    booking.updated_at = utcnow()
    if charge is not None:
        booking.charge_id = charge
        booking.paid_at = utcnow()
    await uow.audit.record(
        f"patient:{booking.patient_id}", "booking.booked", TABLE, booking.id,
        {"paid": charge is not None},
    )  # fmt: skip
    return True


def invoice_payload(booking: Booking) -> str:
    """What the invoice carries back in pre-checkout and payment: the booking id only."""
    return f"bk:{booking.id}"


def booking_id_of(payload: str) -> str | None:
    """The booking id of an invoice payload (None when it is not one of ours)."""
    return payload[3:] if payload.startswith("bk:") and 3 < len(payload) <= 40 else None


async def pre_checkout(
    uow: UnitOfWork, tg_user_id: int, payload: str, currency: str, total: int, now: datetime
) -> str | None:
    """Telegram asks whether to take the money: None = yes, else the message id of why not
    (the booking is gone or not the payer's, the hold ran out and the slot was taken, or the
    amount or currency differ from the invoice)."""
    booking = await _booking_for(uow, tg_user_id, payload)
    if booking is None or booking.status != PENDING:
        return "book.pay.gone"
    if (currency, total) != (booking.currency, booking.price_minor):
        return "book.pay.mismatch"
    slot = await uow.bookings.slot(booking.slot_id)
    if slot is None or aware(slot.start_at) <= now:
        return "book.pay.gone"
    # Still held by this patient, or free again after the hold ran out: hold it once more
    # for the few seconds until the payment lands.
    if not await uow.bookings.hold(
        slot.id, booking.patient_id, now, now + timedelta(minutes=HOLD_MINUTES)
    ):
        return "book.pay.taken"
    return None


async def _booking_for(uow: UnitOfWork, tg_user_id: int, payload: str) -> Booking | None:
    booking_id = booking_id_of(payload)
    if booking_id is None:
        return None
    booking = await uow.bookings.booking(booking_id)
    patient = await uow.patients.by_tg_user(tg_user_id)
    if booking is None or patient is None or booking.patient_id != patient.id:
        return None
    return booking


@dataclass(frozen=True)
class Paid:
    """What a successful payment led to: ``outcome`` booked | duplicate | refund_stars |
    refund_provider | ignored (not ours)."""

    outcome: str
    booking: Booking | None


async def paid(
    uow: UnitOfWork,
    tg_user_id: int,
    payload: str,
    currency: str,
    total: int,
    charge_id: str,
    provider_charge_id: str | None,
    now: datetime,
) -> Paid:
    """The money was taken: book the slot, once per charge id. A payment for a booking that
    cannot be had (cancelled, slot lost, wrong amount) is refunded."""
    already = await uow.bookings.by_charge(charge_id)
    if already is not None:
        return Paid("duplicate", already)
    booking = await _booking_for(uow, tg_user_id, payload)
    if booking is None:
        await uow.audit.record(
            f"tg:{tg_user_id}", "booking.payment_unknown", TABLE, "-", {"currency": currency}
        )
        return Paid("refund_stars" if currency == STARS else "ignored", None)
    ok = (
        booking.status == PENDING
        and (currency, total) == (booking.currency, booking.price_minor)
        and await _confirm(uow, booking, now, charge=charge_id)
    )
    if ok:
        booking.provider_charge_id = provider_charge_id
        await uow.events.cancel_for(EXPIRE_KIND, booking.id)
        return Paid(BOOKED, booking)
    # Paid, but nothing to give: record the charge (so a second delivery is a duplicate) and
    # refund it.
    booking.charge_id = charge_id
    booking.provider_charge_id = provider_charge_id
    booking.paid_at = utcnow()
    booking.refund = "refunded" if currency == STARS else "to_refund"
    if booking.status == PENDING:
        booking.status = CANCELLED
        await uow.bookings.release(booking.slot_id, booking.patient_id)
    booking.updated_at = utcnow()
    await uow.audit.record(
        f"patient:{booking.patient_id}", "booking.refund", TABLE, booking.id,
        {"rail": "stars" if currency == STARS else "provider"},
    )  # fmt: skip
    return Paid("refund_stars" if currency == STARS else "refund_provider", booking)


async def expire_hold(uow: UnitOfWork, booking_id: str) -> Booking | None:
    """The hold of an unpaid booking ran out: release the slot, cancel the booking. Returns
    the booking when it was cancelled now (the patient is told), else None."""
    booking = await uow.bookings.booking(booking_id)
    if booking is None or booking.status != PENDING:
        return None
    booking.status = CANCELLED
    booking.updated_at = utcnow()
    slot = await uow.bookings.slot(booking.slot_id)
    if slot is not None and slot.status == "busy-tentative":
        await uow.bookings.release(booking.slot_id, booking.patient_id)
    await uow.audit.record("system", "booking.expired", TABLE, booking.id, {})
    return booking


def departments(doctor: Doctor) -> list[str]:
    """The doctor's departments (for the offer's line)."""
    return departments_of(doctor)
