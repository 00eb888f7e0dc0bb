"""The patient's hospital appointments: booking a time for a referral (from /referrals), the
confirmation with what to bring and "I can't come", the reminder the evening before, and
what the hospital's desk changed (no-show, a request to move, the visit's outcome)."""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup

from bot.settings import Settings
from flows import appointments as apf
from flows import booking
from flows.domain import Patient, ScheduledEvent, utcnow
from flows.errors import UserError
from flows.outbox import Replier
from handlers.common import appointments as view
from handlers.common.routes import RouteTable
from handlers.common.slips import send_slip
from handlers.patient.booking import BookCB
from handlers.patient.refusals import refused_button
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.appointments")


class PApCB(CallbackData, prefix="pap"):
    """A patient's appointment button: ``times`` (of a referral), ``pick`` (a slot for a
    referral), ``cant`` (an appointment)."""

    action: str
    ref: str  # the referral id's first 16 (times, pick) or the appointment id (cant)
    value: str = ""  # the slot id (pick)


def book_button(tr: Translator, referral_id: str) -> InlineKeyboardButton:
    """ "Book a hospital time" under a referral."""
    return InlineKeyboardButton(
        text=tr.plain("appt.pat.book_button")[:64],
        callback_data=PApCB(action="times", ref=referral_id[:16]).pack(),
    )


async def send_offers(
    uow: UnitOfWork, reply: Replier, tr: Translator, patient: Patient, referral: Any
) -> None:
    """The free times of the referral's hospital as buttons (or why there are none)."""
    found = await apf.offers(uow, referral, utcnow())
    if not found:
        await reply.text(tr("appt.pat.no_times"))
        return
    rows = view.offer_buttons(
        tr,
        found,
        patient.timezone,
        lambda sid: PApCB(action="pick", ref=referral.id[:16], value=sid),
    )
    await reply.text(tr("appt.pat.choose"), InlineKeyboardMarkup(inline_keyboard=rows))


async def confirm(
    uow: UnitOfWork, patient: Patient, appt: Any, *, msgid: str = "appt.pat.booked"
) -> None:
    """The booking (or the desk's new time), told to the patient, with "I can't come"."""
    tr = Translator(patient.locale)
    params = await view.card(uow, tr, appt, patient.timezone)
    cant = InlineKeyboardButton(
        text=tr.plain("appt.pat.cant")[:64],
        callback_data=PApCB(action="cant", ref=appt.id).pack(),
    )
    await Replier(uow, "patient", patient.tg_user_id).text(
        tr(msgid, **params), InlineKeyboardMarkup(inline_keyboard=[[cant]])
    )


async def slip_again(uow: UnitOfWork, appt: Any, settings: Settings) -> None:
    """The patient gets the slip again, now showing the booked time (the one to show at the
    hospital's desk)."""
    referral = await uow.referrals.get(appt.referral_id)
    if referral is not None and referral.status == "issued":
        await send_slip(uow, referral, settings)


async def _own_referral(
    uow: UnitOfWork, query: CallbackQuery, patient: Patient | None, ref: str
) -> Any:
    referral = await uow.referrals.by_prefix(ref) if len(ref) >= 12 else None
    if patient is None or referral is None or referral.patient_id != patient.id:
        await refused_button(uow, query, patient, "not_yours")
        raise UserError("appt.error.not_found")
    return referral


@routes.callback_query(PApCB.filter(F.action == "times"))
async def on_times(
    query: CallbackQuery,
    callback_data: PApCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """The referral's free hospital times."""
    referral = await _own_referral(uow, query, patient, callback_data.ref)
    assert patient is not None
    await reply.answer_callback(query.id)
    if await uow.appointments.open_for_referral(referral.id) is not None:
        raise UserError("appt.error.already_booked")
    await send_offers(uow, reply, tr, patient, referral)


@routes.callback_query(PApCB.filter(F.action == "pick"))
async def on_pick(
    query: CallbackQuery,
    callback_data: PApCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A time chosen: booked (a full one says so, with the times still free)."""
    referral = await _own_referral(uow, query, patient, callback_data.ref)
    assert patient is not None
    await reply.answer_callback(query.id)
    try:
        appt = await apf.book(
            uow, referral, callback_data.value, utcnow(), by="patient",
            actor=f"patient:{patient.id}", tz=patient.timezone,
        )  # fmt: skip
    except apf.AppointmentError as exc:
        await reply.text(tr(exc.msgid, **exc.params))
        if exc.msgid in ("appt.error.full", "appt.error.slot_gone"):
            await send_offers(uow, reply, tr, patient, referral)
        return
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    await confirm(uow, patient, appt)
    await slip_again(uow, appt, settings)
    await tell_doctor(uow, appt, "appt.doc.booked")


@routes.callback_query(PApCB.filter(F.action == "cant"))
async def on_cant(
    query: CallbackQuery,
    callback_data: PApCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """I can't come: the place is released; the desk (and the doctor) are told."""
    appt = await uow.appointments.get(callback_data.ref)
    if patient is None or appt is None or appt.patient_id != patient.id:
        await refused_button(uow, query, patient, "not_yours")
        raise UserError("appt.error.not_found")
    await apf.cancel(uow, appt.id, patient.id, utcnow())
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    referral = await uow.referrals.get(appt.referral_id)
    rows = (
        [[book_button(tr, appt.referral_id)]] if referral and referral.status == "issued" else []
    )
    await reply.text(
        tr("appt.pat.cancelled"), InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
    )
    await tell_desks(uow, appt, "appt.desk.cancelled")
    await tell_doctor(uow, appt, "appt.doc.cancelled")


async def tell_desks(uow: UnitOfWork, appt: Any, msgid: str) -> None:
    """Every desk of the appointment's hospital hears of a change (no patient data but the
    slip's code and the time)."""
    for person in await uow.doctors.with_status("verified", role="desk"):
        if person.hospital_id == appt.hospital_id and person.tg_user_id is not None:
            dtr = Translator(person.locale)
            params = await view.card(uow, dtr, appt, None)
            await Replier(uow, "doctor", person.tg_user_id).text(
                dtr(msgid, code=params["code"], when=params["when"], service=params["service"])
            )


async def tell_doctor(uow: UnitOfWork, appt: Any, msgid: str, **extra: Any) -> None:
    """The referring doctor hears of the appointment (booked, cancelled, the outcome)."""
    referral = await uow.referrals.get(appt.referral_id)
    doctor = await uow.doctors.get(referral.doctor_id) if referral else None
    if referral is None or doctor is None or doctor.tg_user_id is None:
        return
    dtr = Translator(doctor.locale)
    params = await view.card(uow, dtr, appt, doctor.timezone)
    case = await uow.consultations.get(referral.consultation_id or "")
    await Replier(uow, "doctor", doctor.tg_user_id).text(
        dtr(msgid, number=case.number if case else 0, **params, **extra)
    )


async def tell_patient(
    uow: UnitOfWork,
    appt: Any,
    msgid: str,
    *,
    offer: bool = False,
    followup: str | None = None,
) -> None:
    """The patient hears what the desk did (``offer``: with the free times to choose again;
    ``followup``: the clinic's zone, for buttons to book a follow-up online consultation with
    the referring doctor in each mode they have free times in)."""
    patient = await uow.patients.get(appt.patient_id)
    if patient is None or patient.tg_user_id is None:
        return
    tr = Translator(patient.locale)
    params = await view.card(uow, tr, appt, patient.timezone)
    reply = Replier(uow, "patient", patient.tg_user_id)
    rows = await followup_buttons(uow, tr, appt, followup) if followup else []
    if rows:
        msgid = f"{msgid}_followup"
    await reply.text(
        tr(msgid, **params), InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
    )
    referral = await uow.referrals.get(appt.referral_id)
    if offer and referral is not None:
        await send_offers(uow, reply, tr, patient, referral)


async def followup_buttons(
    uow: UnitOfWork, tr: Translator, appt: Any, clinic_tz: str
) -> list[list[InlineKeyboardButton]]:
    """ "Follow-up by video with <the referring doctor>" per mode that doctor has free times
    in (the /book flow's own buttons: the doctor's times come next); none when they have no
    free time (the message says /book)."""
    referral = await uow.referrals.get(appt.referral_id)
    if referral is None:
        return []
    doctor = await uow.doctors.get(referral.doctor_id)
    if doctor is None:
        return []
    name = await uow.doctors.get_field(doctor, "name") or "—"
    rows = []
    for mode in await booking.modes_of_doctor(uow, doctor, clinic_tz, utcnow()):
        label = tr.plain("appt.pat.followup_button", mode=tr.plain(f"svc.mode.{mode}"), name=name)
        cb = BookCB(action="doc", value=doctor.id, m=mode)
        rows.append([InlineKeyboardButton(text=label[:64], callback_data=cb.pack())])
    return rows


async def send_reminder(uow: UnitOfWork, event: ScheduledEvent, now: Any) -> None:
    """The evening before: when, where, what to bring, and "I can't come"."""
    appt = await apf.on_remind(uow, event, now)
    if appt is None:
        return
    patient = await uow.patients.get(appt.patient_id)
    if patient is None or patient.tg_user_id is None:
        return
    tr = Translator(patient.locale)
    params = await view.card(uow, tr, appt, patient.timezone)
    cant = InlineKeyboardButton(
        text=tr.plain("appt.pat.cant")[:64],
        callback_data=PApCB(action="cant", ref=appt.id).pack(),
    )
    await Replier(uow, "patient", patient.tg_user_id).text(
        tr("appt.pat.reminder", **params), InlineKeyboardMarkup(inline_keyboard=[[cant]])
    )


def scheduled() -> dict[str, Any]:
    """Scheduler handlers of hospital appointments, by event kind."""
    return {apf.REMIND: send_reminder}
