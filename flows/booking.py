"""Booked consultations: doctors' schedules become slots, a patient holds one, pays in the
chat (Telegram Payments) and the slot is theirs.

- A doctor's schedule (:mod:`flows.schedule`) is stored as JSON; its slots are laid out
  ``HORIZON_DAYS`` ahead whenever it changes and whenever a patient looks (the horizon rolls
  forward). A slot that is held or booked is never dropped or overlapped by a new layout.
- Holding is one conditional UPDATE (:meth:`storage.bookings.BookingRepository.hold`): of two
  patients pressing the same slot, one gets it and the other is offered the next free ones.
- A time is held ``HOLD_MINUTES`` for a ``pending`` booking (released by the sweeper when
  not paid or confirmed). A paid service gets an invoice: ``pre_checkout_query`` re-checks
  the booking, the hold and the amount; only ``successful_payment`` books, idempotent on its
  charge id. A payment that arrives for a booking that can no longer be had is refunded
  (Stars through ``refundStarPayment``; a provider payment is marked ``to_refund`` for the
  admins, as the Bot API has no refund call for those). A free service is booked when the
  patient confirms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flows import calls
from flows import schedule as sched
from flows.consultation import State as ConsultationState
from flows.consultation import departments_of
from flows.outbox import PRIORITY_REPLY, Replier
from flows.services import STARS, Price, ServiceView, offer
from locales import Translator
from storage.models import Booking, Consultation, Doctor, Patient, Slot, new_id, utcnow
from storage.uow import UnitOfWork

HORIZON_DAYS = 14
HOLD_MINUTES = 15
SLOTS_SHOWN = 8
TABLE = "bookings"
EXPIRE_KIND = "booking.hold_expiry"
REMIND_KIND = "booking.remind"  # 24 h and 15 min before, to both sides
START_KIND = "booking.start"  # at the time: the case opens, the call card or the room
NO_START_KIND = "booking.no_start"  # 15 min after: the doctor never started -> refund
REMINDERS = {"24h": timedelta(hours=24), "15m": timedelta(minutes=15)}
NO_START_AFTER = timedelta(minutes=15)
PENDING, BOOKED, CANCELLED = "pending", "booked", "cancelled"
FULFILLED, NOSHOW = "fulfilled", "noshow"


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


async def modes_of_doctor(
    uow: UnitOfWork, doctor: Doctor, clinic_tz: str, now: datetime
) -> list[str]:
    """The modes one doctor can be booked in now (a service and a free time), e.g. for a
    follow-up with the doctor who referred the patient."""
    if not _bookable(doctor, now):
        return []
    modes = []
    laid = False
    for mode in sched.MODES:
        if await offer(uow, doctor, mode) is None:
            continue
        if not laid:
            await lay_out(uow, doctor.id, await availability(uow, doctor, clinic_tz), now)
            laid = True
        if await uow.bookings.free_slots(doctor.id, mode, now, limit=1):
            modes.append(mode)
    return modes


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


@dataclass(frozen=True)
class NoShowRule:
    """The clinic's rule for patients who miss booked consultations: ``limit`` no-shows within
    ``days`` and a free consultation needs ``deposit`` upfront (None: no deposit)."""

    limit: int = 2
    days: int = 90
    deposit: Price | None = None


async def no_shows(uow: UnitOfWork, patient: Patient, now: datetime, days: int) -> int:
    """The patient's missed booked consultations of the last ``days`` days."""
    since = now - timedelta(days=days)
    return sum(
        1
        for b in await uow.bookings.of_patient(patient.id)
        if b.status == NOSHOW and b.start_at is not None and aware(b.start_at) >= since
    )


async def hold(
    uow: UnitOfWork,
    patient: Patient,
    slot_id: str,
    now: datetime,
    rule: NoShowRule | None = None,
) -> Held:
    """Hold a slot for the patient and open its booking (pending: paid, or for a free service
    confirmed, within ``HOLD_MINUTES``). A patient over the clinic's no-show ``rule`` is asked
    for its deposit upfront for a free service. BookingError("book.slot_taken") when someone
    else got it first (the caller offers the next free slots of the same doctor)."""
    slot = await uow.bookings.slot(slot_id)
    if slot is None:
        raise BookingError("book.slot_taken")
    doctor = await uow.doctors.get(slot.doctor_id)
    if doctor is None or not _bookable(doctor, now):
        raise BookingError("book.doctor_gone")
    service = await offer(uow, doctor, slot.mode)
    if service is None:
        raise BookingError("book.no_service")
    price, deposit = service.price, False
    if (
        price.free
        and rule is not None
        and rule.deposit is not None
        and await no_shows(uow, patient, now, rule.days) >= rule.limit
    ):
        price, deposit = rule.deposit, True
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
            price_minor=price.minor,
            currency=price.currency,
            deposit=deposit,
            start_at=aware(slot.start_at),
            created_at=utcnow(),
            updated_at=utcnow(),
        )
    )
    await uow.audit.record(
        f"patient:{patient.id}",
        "booking.hold",
        TABLE,
        booking.id,
        {"slot": slot_id, "deposit": deposit},
    )
    slot = await uow.bookings.slot(slot_id) or slot
    # Held until paid (or, for a free service, confirmed); released by the sweeper if not.
    await uow.events.add(
        EXPIRE_KIND, booking.id, patient.id, until + timedelta(seconds=1),
        key=f"{EXPIRE_KIND}:{booking.id}",
    )  # fmt: skip
    return Held(booking, slot, service, doctor)


async def confirm_free(
    uow: UnitOfWork, patient: Patient, booking_id: str, now: datetime
) -> Booking:
    """The patient confirms a held time of a free service: it is booked (a paid one is booked
    only by its payment)."""
    booking = await uow.bookings.booking(booking_id)
    if booking is None or booking.patient_id != patient.id:
        raise BookingError("book.not_yours")
    if booking.status != PENDING or booking.price_minor != 0:
        raise BookingError("book.pay.gone")
    if not await _confirm(uow, booking, now, charge=None):
        raise BookingError("book.pay.taken")
    await uow.events.cancel_for(EXPIRE_KIND, booking.id)
    return booking


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
    await _schedule(uow, booking, now)
    return True


async def _schedule(uow: UnitOfWork, booking: Booking, now: datetime) -> None:
    """The booking's events: reminders still ahead, its start, the no-start check."""
    start = aware(booking.start_at) if booking.start_at else None
    if start is None:
        return
    for label, before in REMINDERS.items():
        if start - before > now:
            await uow.events.add(
                REMIND_KIND, f"{booking.id}:{label}", booking.patient_id, start - before,
                key=f"{REMIND_KIND}:{booking.id}:{label}",
            )  # fmt: skip
    await uow.events.add(
        START_KIND, booking.id, booking.patient_id, start, key=f"{START_KIND}:{booking.id}"
    )
    await uow.events.add(
        NO_START_KIND, booking.id, booking.patient_id, start + NO_START_AFTER,
        key=f"{NO_START_KIND}:{booking.id}",
    )  # fmt: skip


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
    why = await _pre_checkout_refusal(uow, booking, currency, total, now)
    if why is not None:  # refused before any money moved: audited with the reason
        actor = f"patient:{booking.patient_id}" if booking else f"tg:{tg_user_id}"
        await uow.audit.record(
            actor, "booking.precheckout_refused", TABLE, booking.id if booking else "-",
            {"reason": why.rsplit(".", 1)[-1]},
        )  # fmt: skip
    return why


async def _pre_checkout_refusal(
    uow: UnitOfWork, booking: Booking | None, currency: str, total: int, now: datetime
) -> str | None:
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


# --- at the time ----------------------------------------------------------------------------


async def reminder_due(uow: UnitOfWork, subject: str) -> tuple[Booking, str] | None:
    """A reminder's booking and which one (``24h``/``15m``), while it is still booked."""
    booking_id, _, label = subject.partition(":")
    booking = await uow.bookings.booking(booking_id)
    if booking is None or booking.status != BOOKED or label not in REMINDERS:
        return None
    return booking, label


async def set_phone_consent(
    uow: UnitOfWork, patient: Patient, booking_id: str, yes: bool
) -> Booking:
    """The patient shares their number with this booking's doctor for this consultation only,
    or takes that back (possible until the call has started)."""
    booking = await uow.bookings.booking(booking_id)
    if booking is None or booking.patient_id != patient.id or booking.mode != "phone":
        raise BookingError("book.not_yours")
    if booking.status != BOOKED or booking.call_started_at is not None:
        raise BookingError("book.consent_too_late")
    booking.phone_consent = yes
    booking.updated_at = utcnow()
    await uow.audit.record(
        f"patient:{patient.id}", "booking.phone_consent" if yes else "booking.phone_revoked",
        TABLE, booking.id, {},
    )  # fmt: skip
    return booking


async def start_due(
    uow: UnitOfWork, booking_id: str, now: datetime
) -> tuple[Booking, Consultation] | None:
    """The booked time has come: the consultation opens as a case between the two (active,
    so the relay, /close with advice and the rating work as for any case); a video booking
    gets its room. None when the booking was cancelled meanwhile or the doctor is gone."""
    booking = await uow.bookings.booking(booking_id)
    if booking is None or booking.status != BOOKED:
        return None
    if booking.consultation_id:
        case = await uow.consultations.get(booking.consultation_id)
        return (booking, case) if case is not None else None
    doctor = await uow.doctors.get(booking.doctor_id)
    if doctor is None:
        return None
    depts = departments_of(doctor) or ["general"]
    case = await uow.consultations.add(
        Consultation(
            patient_id=booking.patient_id,
            department=depts[0],
            priority=3,
            state=ConsultationState.ACTIVE.value,
            doctor_id=doctor.id,
            requested_at=now,
            accepted_at=now,
            updated_at=now,
        )
    )
    booking.consultation_id = case.id
    if booking.mode == "video":
        booking.room = calls.room_name()
    booking.updated_at = utcnow()
    await uow.audit.record(
        "system", "booking.started", TABLE, booking.id, {"consultation": case.id}
    )
    return booking, case


async def doctor_action(
    uow: UnitOfWork, doctor: Doctor, booking_id: str, action: str, now: datetime
) -> Booking:
    """The doctor's buttons at the time: ``start`` (the call began), ``no_answer`` (the
    patient did not answer: a no-show), ``finished`` (the call ended), ``to_phone`` /
    ``to_text`` (the video failed: the same consultation goes on by phone or in the chat)."""
    booking = await uow.bookings.booking(booking_id)
    if booking is None or booking.doctor_id != doctor.id:
        raise BookingError("book.not_yours")
    if booking.status not in (BOOKED,) or booking.consultation_id is None:
        raise BookingError("book.call_over")
    if action == "start":
        booking.call_started_at = booking.call_started_at or now
    elif action == "no_answer":
        booking.call_outcome = "no_answer"
        booking.call_ended_at = now
        booking.status = NOSHOW
    elif action == "finished":
        booking.call_started_at = booking.call_started_at or now
        booking.call_ended_at = now
        booking.call_outcome = "completed"
        booking.status = FULFILLED
        return_deposit(booking)
    elif action in ("to_phone", "to_text"):
        booking.call_outcome = "video_failed"
        booking.mode = "phone" if action == "to_phone" else "text"
        booking.call_started_at = booking.call_started_at or now
    else:
        raise BookingError("book.call_over")
    booking.updated_at = utcnow()
    await uow.audit.record(doctor_actor(doctor), f"booking.call_{action}", TABLE, booking.id, {})
    return booking


async def patient_video_failed(
    uow: UnitOfWork, patient: Patient, booking_id: str, now: datetime
) -> Booking:
    """The patient's video does not work: the same consultation goes on in the chat."""
    booking = await uow.bookings.booking(booking_id)
    if booking is None or booking.patient_id != patient.id or booking.mode != "video":
        raise BookingError("book.not_yours")
    if booking.status != BOOKED or booking.consultation_id is None:
        raise BookingError("book.call_over")
    booking.mode = "text"
    booking.call_outcome = "video_failed"
    booking.call_started_at = booking.call_started_at or now
    booking.updated_at = utcnow()
    await uow.audit.record(f"patient:{patient.id}", "booking.video_failed", TABLE, booking.id, {})
    return booking


def return_deposit(booking: Booking) -> bool:
    """A deposit goes back once the consultation has taken place (marked for the refund the
    caller makes); True when there was one to return."""
    if booking.deposit and booking.charge_id and booking.refund is None:
        booking.refund = "refunded" if booking.currency == STARS else "to_refund"
        return True
    return False


async def no_start_due(uow: UnitOfWork, booking_id: str) -> Booking | None:
    """15 minutes after the time: a phone or video consultation the doctor never started is
    the clinic's failure — the booking is cancelled and refunded (returned for the refund),
    else None. A text consultation is answered within its response window instead."""
    booking = await uow.bookings.booking(booking_id)
    if booking is None or booking.status != BOOKED or booking.mode == "text":
        return None
    if booking.call_started_at is not None:
        return None
    await _cancel(uow, booking, "doctor", refund=True)
    await uow.audit.record("system", "booking.doctor_no_start", TABLE, booking.id, {})
    return booking


async def _cancel(uow: UnitOfWork, booking: Booking, by: str, *, refund: bool) -> None:
    booking.status = CANCELLED
    booking.cancelled_by = by
    booking.updated_at = utcnow()
    if refund and booking.charge_id and booking.refund is None:
        booking.refund = "refunded" if booking.currency == STARS else "to_refund"
    await uow.bookings.release(booking.slot_id, booking.patient_id)
    for kind in (REMIND_KIND, START_KIND, NO_START_KIND):
        await uow.events.cancel_for(kind, booking.id)
    await uow.events.cancel_for(REMIND_KIND, f"{booking.id}:24h")
    await uow.events.cancel_for(REMIND_KIND, f"{booking.id}:15m")


async def upcoming(uow: UnitOfWork, patient: Patient, now: datetime) -> list[Booking]:
    """The patient's booked consultations still ahead, soonest first."""
    rows = [
        b
        for b in await uow.bookings.of_patient(patient.id)
        if b.status == BOOKED and b.start_at is not None and aware(b.start_at) > now
    ]
    return sorted(rows, key=lambda b: aware(b.start_at) if b.start_at else now)


@dataclass(frozen=True)
class Cancelled:
    """A cancellation: the booking, and whether (and how) its payment goes back."""

    booking: Booking
    refund: str | None  # None | refunded (Stars, at once) | to_refund (provider, by admins)


async def cancel_by_patient(
    uow: UnitOfWork, patient: Patient, booking_id: str, now: datetime, free_hours: int
) -> Cancelled:
    """The patient cancels: refunded when ``free_hours`` or more before the time (the
    clinic's policy, ``CARELINE_BOOKING_FREE_CANCEL_HOURS``), not later."""
    booking = await uow.bookings.booking(booking_id)
    if booking is None or booking.patient_id != patient.id:
        raise BookingError("book.not_yours")
    start = aware(booking.start_at) if booking.start_at else None
    if booking.status != BOOKED or start is None or start <= now:
        raise BookingError("book.cannot_cancel")
    free = start - now >= timedelta(hours=free_hours)
    await _cancel(uow, booking, "patient", refund=free)
    await uow.audit.record(
        f"patient:{patient.id}", "booking.cancel", TABLE, booking.id, {"refund": free}
    )
    return Cancelled(booking, booking.refund if free else None)


async def reschedule(
    uow: UnitOfWork,
    patient: Patient,
    booking: Booking,
    slot_id: str,
    now: datetime,
    free_hours: int,
) -> Booking:
    """Move a booking to another free time of the same doctor and mode, free of charge while
    it is ``free_hours`` or more before the current time (the clinic's policy). The new time
    is taken with the same conditional UPDATE as a first booking; the old one is freed."""
    start = aware(booking.start_at) if booking.start_at else None
    if booking.patient_id != patient.id:
        raise BookingError("book.not_yours")
    if booking.status != BOOKED or start is None or start - now < timedelta(hours=free_hours):
        raise BookingError("book.cannot_move", hours=free_hours)
    new = await uow.bookings.slot(slot_id)
    if new is None or new.doctor_id != booking.doctor_id or new.mode != booking.mode:
        raise BookingError("book.slot_taken")
    if new.id == booking.slot_id:
        return booking
    until = now + timedelta(minutes=HOLD_MINUTES)
    if not await uow.bookings.hold(new.id, patient.id, now, until):
        raise BookingError("book.slot_taken")
    if not await uow.bookings.occupy(new.id, patient.id, booking.id, now):
        raise BookingError("book.slot_taken")  # pragma: no cover - held just above
    await uow.bookings.release(booking.slot_id, patient.id)
    for kind in (START_KIND, NO_START_KIND):
        await uow.events.cancel_for(kind, booking.id)
    for label in REMINDERS:
        await uow.events.cancel_for(REMIND_KIND, f"{booking.id}:{label}")
    old_slot = booking.slot_id
    booking.slot_id = new.id
    booking.start_at = aware(new.start_at)
    booking.updated_at = utcnow()
    await uow.audit.record(
        f"patient:{patient.id}", "booking.reschedule", TABLE, booking.id,
        {"from": old_slot, "to": new.id},
    )  # fmt: skip
    await _schedule_again(uow, booking, now)
    return booking


async def _schedule_again(uow: UnitOfWork, booking: Booking, now: datetime) -> None:
    """The events of a moved booking (new keys: the old ones were used by the first time)."""
    start = aware(booking.start_at) if booking.start_at else None
    if start is None:
        return
    tag = int(start.timestamp())
    for label, before in REMINDERS.items():
        if start - before > now:
            await uow.events.add(
                REMIND_KIND, f"{booking.id}:{label}", booking.patient_id, start - before,
                key=f"{REMIND_KIND}:{booking.id}:{label}:{tag}",
            )  # fmt: skip
    await uow.events.add(
        START_KIND, booking.id, booking.patient_id, start,
        key=f"{START_KIND}:{booking.id}:{tag}",
    )  # fmt: skip
    await uow.events.add(
        NO_START_KIND, booking.id, booking.patient_id, start + NO_START_AFTER,
        key=f"{NO_START_KIND}:{booking.id}:{tag}",
    )  # fmt: skip


async def cancel_for_doctor(
    uow: UnitOfWork, doctor_id: str, now: datetime, by: str = "clinic"
) -> list[Booking]:
    """A doctor who can no longer work (suspended): every booking ahead is cancelled and
    refunded; returns them so each patient is told."""
    out = []
    for b in await uow.bookings.of_doctor(doctor_id):
        start = aware(b.start_at) if b.start_at else None
        if b.status in (BOOKED, PENDING) and start is not None and start > now:
            await _cancel(uow, b, by, refund=True)
            await uow.audit.record("system", "booking.cancel_doctor", TABLE, b.id, {})
            out.append(b)
    return out


async def doctor_suspended(uow: UnitOfWork, doctor: Doctor, now: datetime) -> list[Booking]:
    """A suspended doctor's bookings ahead are cancelled and refunded (Stars at once, card
    payments marked for the admins); each patient is told in their language."""
    cancelled = await cancel_for_doctor(uow, doctor.id, now, by="clinic")
    for b in cancelled:
        patient = await uow.patients.get(b.patient_id)
        if patient is None:
            continue
        reply = Replier(uow, "patient", patient.tg_user_id)
        if b.refund == "refunded" and b.charge_id:
            await reply.call(
                "refundStarPayment",
                {"user_id": patient.tg_user_id, "telegram_payment_charge_id": b.charge_id},
                chat_id=patient.tg_user_id, priority=PRIORITY_REPLY,
            )  # fmt: skip
        msgid = {
            "refunded": "book.doctor_gone.refunded",
            "to_refund": "book.doctor_gone.to_refund",
        }.get(b.refund or "", "book.doctor_gone.cancelled")
        await reply.text(Translator(patient.locale)(msgid))
    return cancelled


async def erase_for_patient(uow: UnitOfWork, patient: Patient, now: datetime) -> None:
    """The patient erases their data: bookings ahead are cancelled (their doctors told, a
    Stars payment refunded; a card payment's refund is left to the clinic, as the Bot API
    cannot make it, and audited), held times are freed, and no booking or slot keeps their
    id (a booked past time stays busy for the doctor's calendar, with no patient)."""
    for b in await uow.bookings.of_patient(patient.id):
        start = aware(b.start_at) if b.start_at else None
        if b.status in (BOOKED, PENDING) and start is not None and start > now:
            await _cancel(uow, b, "patient", refund=b.status == BOOKED)
            if b.refund == "refunded" and b.charge_id:
                await Replier(uow, "patient", patient.tg_user_id).call(
                    "refundStarPayment",
                    {"user_id": patient.tg_user_id, "telegram_payment_charge_id": b.charge_id},
                    chat_id=patient.tg_user_id, priority=PRIORITY_REPLY,
                )  # fmt: skip
            elif b.refund == "to_refund":
                await uow.audit.record("system", "booking.refund_needed", TABLE, b.id, {})
            doctor = await uow.doctors.get(b.doctor_id)
            if doctor is not None and b.status == CANCELLED:
                await Replier(uow, "doctor", doctor.tg_user_id).text(
                    Translator(doctor.locale)("book.cancelled.doctor", ref=b.id[:8])
                )
    await uow.bookings.forget_patient(patient.id)


def departments(doctor: Doctor) -> list[str]:
    """The doctor's departments (for the offer's line)."""
    return departments_of(doctor)
