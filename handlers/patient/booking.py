"""Patient bot: ``/book`` — a consultation booked into a doctor's schedule and paid in the chat.

Mode → doctor (name, title, department, rating, price, next free time) or "first available"
→ a time in the patient's own time zone → an invoice (Telegram Payments; a free service is
booked at once). The pre-checkout answer re-checks the hold; only the payment books."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    PreCheckoutQuery,
)

from bot.settings import Settings
from flows import booking as flow
from flows import services
from flows.domain import Doctor, Patient, ScheduledEvent, now
from flows.onboarding import Step, step_of
from flows.outbox import PRIORITY_REPLY, PRIORITY_URGENT, Replier
from flows.schedule import DAY_KEYS
from handlers.common.routes import RouteTable
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.booking")


class BookCB(CallbackData, prefix="bk"):
    """A /book button: ``mode`` (value: mode), ``doc`` (value: doctor id, mode in ``m``),
    ``first`` (mode in ``m``), ``slot`` (value: slot id)."""

    action: str
    value: str = ""
    m: str = ""


def _b(text: str, cb: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text[:64], callback_data=cb.pack())


def _zone(patient: Patient | None, settings: Settings) -> zoneinfo.ZoneInfo:
    name = (patient.timezone if patient else None) or settings.timezone
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def zone_label(zone: zoneinfo.ZoneInfo) -> str:
    """A zone as people read it: "Europe/Moscow", or "UTC+3" for the fixed offsets a patient
    picks as "+3" (stored as ``Etc/GMT-3``: POSIX signs are inverted)."""
    key = str(zone.key)
    if key.startswith("Etc/GMT") and key[7:]:
        sign, hours = key[7], key[8:]
        return f"UTC{'-' if sign == '+' else '+'}{hours}"
    return "UTC" if key in ("Etc/UTC", "Etc/GMT", "UTC") else key


def when(tr: Translator, at: datetime, zone: zoneinfo.ZoneInfo) -> str:
    """ "Tue 08.12 10:00" in the reader's zone and language."""
    local = flow.aware(at).astimezone(zone)
    return f"{tr.plain('schedule.day.' + DAY_KEYS[local.weekday()])} {local:%d.%m %H:%M}"


async def _doctor_line(
    uow: UnitOfWork, tr: Translator, o: flow.Offer, zone: zoneinfo.ZoneInfo
) -> str:
    name = await uow.doctors.get_field(o.doctor, "name") or "—"
    title = await uow.doctors.get_field(o.doctor, "title") or "—"
    depts = ", ".join(tr.plain(f"dept.{d}") for d in flow.departments(o.doctor)) or "—"
    rating = (
        f"{o.doctor.rating_sum / o.doctor.rating_count:.1f}★" if o.doctor.rating_count else "—"
    )
    return tr.plain(
        "book.doctor_line",
        name=name,
        title=title,
        departments=depts,
        rating=rating,
        price=services.format_price(o.service.price, tr.locale, tr.plain),
        next=when(tr, o.next_start, zone),
    )


@routes.message(Command("book"))
async def on_book(
    message: Message,
    uow: UnitOfWork,
    patient: Patient | None,
    settings: Settings,
    tr: Translator,
    reply: Replier,
) -> None:
    """The patient sees the consultation modes they can book now."""
    if patient is None or step_of(patient) is not Step.DONE:
        await reply.text(tr("book.start_first"))
        return
    modes = await flow.modes_on_offer(uow, settings.timezone, now())
    if not modes:
        await reply.text(tr("book.none"))
        return
    rows = [[_b(tr.plain(f"svc.mode.{m}"), BookCB(action="mode", value=m))] for m in modes]
    await reply.text(tr("book.ask_mode"), InlineKeyboardMarkup(inline_keyboard=rows))


async def _show_doctors(
    uow: UnitOfWork, mode: str, patient: Patient, settings: Settings, tr: Translator,
    reply: Replier,
) -> None:  # fmt: skip
    found = await flow.offers(uow, mode, settings.timezone, now())
    if not found:
        await reply.text(tr("book.none"))
        return
    zone = _zone(patient, settings)
    lines = [await _doctor_line(uow, tr, o, zone) for o in found]
    rows = [[_b(tr.plain("book.first_available"), BookCB(action="first", m=mode))]]
    for o, line in zip(found, lines, strict=True):
        rows.append([_b(line, BookCB(action="doc", value=o.doctor.id, m=mode))])
    await reply.text(
        tr("book.ask_doctor", mode=tr.plain(f"svc.mode.{mode}")) + "\n\n" + "\n".join(lines),
        InlineKeyboardMarkup(inline_keyboard=rows),
    )


async def _show_slots(
    uow: UnitOfWork, doctor: Doctor, mode: str, patient: Patient, settings: Settings,
    tr: Translator, reply: Replier, msgid: str = "book.ask_slot",
) -> None:  # fmt: skip
    await flow.lay_out(
        uow, doctor.id, await flow.availability(uow, doctor, settings.timezone), now()
    )
    slots = await flow.free_slots(uow, doctor, mode, now())
    if not slots:
        await reply.text(tr("book.no_slots"))
        return
    zone = _zone(patient, settings)
    rows = [[_b(when(tr, s.start_at, zone), BookCB(action="slot", value=s.id))] for s in slots]
    await reply.text(tr(msgid, zone=zone_label(zone)), InlineKeyboardMarkup(inline_keyboard=rows))


@routes.callback_query(BookCB.filter())
async def on_book_button(
    query: CallbackQuery,
    callback_data: BookCB,
    uow: UnitOfWork,
    patient: Patient | None,
    settings: Settings,
    tr: Translator,
    reply: Replier,
) -> None:
    """A mode, a doctor, "first available" or a time was chosen."""
    cb = callback_data
    if patient is None or step_of(patient) is not Step.DONE:
        await reply.answer_callback(query.id, tr.plain("book.start_first"), alert=True)
        return
    await reply.answer_callback(query.id)
    if cb.action == "mode" and cb.value in services.MODES:
        await _show_doctors(uow, cb.value, patient, settings, tr, reply)
        return
    if cb.action in ("doc", "first") and cb.m in services.MODES:
        doctor = None
        if cb.action == "first":
            found = await flow.offers(uow, cb.m, settings.timezone, now(), limit=1)
            doctor = found[0].doctor if found else None
        else:
            doctor = await uow.doctors.get(cb.value)
        if doctor is None:
            await reply.text(tr("book.none"))
            return
        await _show_slots(uow, doctor, cb.m, patient, settings, tr, reply)
        return
    if cb.action == "slot":
        await _take_slot(uow, patient, cb.value, settings, tr, reply)
        return
    await reply.text(tr("error.stale_button"))


async def _take_slot(
    uow: UnitOfWork, patient: Patient, slot_id: str, settings: Settings, tr: Translator,
    reply: Replier,
) -> None:  # fmt: skip
    try:
        held = await flow.hold(uow, patient, slot_id, now())
    except flow.BookingError as exc:
        slot = await uow.bookings.slot(slot_id)
        doctor = await uow.doctors.get(slot.doctor_id) if slot is not None else None
        if exc.msgid == "book.slot_taken" and doctor is not None and slot is not None:
            await _show_slots(
                uow, doctor, slot.mode, patient, settings, tr, reply, msgid="book.slot_taken"
            )
            return
        await reply.text(tr(exc.msgid, **exc.params))
        return
    zone = _zone(patient, settings)
    at = when(tr, held.slot.start_at, zone)
    mode = tr.plain(f"svc.mode.{held.slot.mode}")
    if held.booking.status == flow.BOOKED:
        await _booked(uow, held.booking.id, settings, tr, reply)
        return
    price = held.price
    rail_ok = price.currency == services.STARS or settings.payment_provider_token is not None
    if not rail_ok:
        await flow.expire_hold(uow, held.booking.id)
        await reply.text(tr("book.cannot_pay"))
        return
    params: dict[str, object] = {
        "chat_id": patient.tg_user_id,
        "title": tr.plain("book.invoice_title", mode=mode)[:32],
        "description": tr.plain("book.invoice_description", when=at, zone=zone_label(zone))[:255],
        "payload": flow.invoice_payload(held.booking),
        "currency": price.currency,
        "prices": [{"label": mode[:32], "amount": price.minor}],
        "protect_content": True,
    }
    if price.currency != services.STARS and settings.payment_provider_token is not None:
        params["provider_token"] = settings.payment_provider_token.get_secret_value()
    await reply.text(tr("book.held", when=at, minutes=flow.HOLD_MINUTES))
    await reply.call("sendInvoice", params, chat_id=patient.tg_user_id, priority=PRIORITY_REPLY)


async def _booked(
    uow: UnitOfWork, booking_id: str, settings: Settings, tr: Translator, reply: Replier
) -> None:
    """Tell both sides: the patient (time in their zone) and the doctor (in theirs)."""
    b = await uow.bookings.booking(booking_id)
    if b is None:
        return
    slot = await uow.bookings.slot(b.slot_id)
    doctor = await uow.doctors.get(b.doctor_id)
    patient = await uow.patients.get(b.patient_id)
    if slot is None or doctor is None or patient is None:
        return
    zone = _zone(patient, settings)
    name = await uow.doctors.get_field(doctor, "name") or "—"
    await reply.text(
        tr(
            "book.confirmed",
            mode=tr.plain(f"svc.mode.{b.mode}"),
            when=when(tr, slot.start_at, zone),
            zone=zone_label(zone),
            doctor=name,
        )
    )
    dtr = Translator(doctor.locale)
    dzone = zoneinfo.ZoneInfo(flow.doctor_zone(doctor, settings.timezone))
    await Replier(uow, "doctor", doctor.tg_user_id).text(
        dtr(
            "book.doctor_notice",
            mode=dtr.plain(f"svc.mode.{b.mode}"),
            when=when(dtr, slot.start_at, dzone),
            zone=zone_label(dzone),
            ref=b.id[:8],
        )
    )


@routes.pre_checkout_query()
async def on_pre_checkout(
    query: PreCheckoutQuery, uow: UnitOfWork, tr: Translator, reply: Replier
) -> None:
    """Telegram asks before taking the money: yes only while the slot is still the
    patient's and the amount is the invoice's (answered first in the outbox: 10 s)."""
    why = await flow.pre_checkout(
        uow, query.from_user.id, query.invoice_payload, query.currency, query.total_amount,
        now(),
    )  # fmt: skip
    params: dict[str, object] = {"pre_checkout_query_id": query.id, "ok": why is None}
    if why is not None:
        params["error_message"] = tr.plain(why)
    await reply.call(
        "answerPreCheckoutQuery", params, chat_id=query.from_user.id, priority=PRIORITY_URGENT
    )


@routes.message(F.successful_payment)
async def on_paid(
    message: Message, uow: UnitOfWork, settings: Settings, tr: Translator, reply: Replier
) -> None:
    """The payment went through: the booking is confirmed (once per charge), or refunded."""
    assert message.from_user is not None and message.successful_payment is not None
    sp = message.successful_payment
    result = await flow.paid(
        uow, message.from_user.id, sp.invoice_payload, sp.currency, sp.total_amount,
        sp.telegram_payment_charge_id, sp.provider_payment_charge_id or None, now(),
    )  # fmt: skip
    if result.outcome == flow.BOOKED and result.booking is not None:
        await _booked(uow, result.booking.id, settings, tr, reply)
    elif result.outcome == "refund_stars":
        await reply.call(
            "refundStarPayment",
            {"user_id": message.from_user.id,
             "telegram_payment_charge_id": sp.telegram_payment_charge_id},
            chat_id=message.from_user.id, priority=PRIORITY_REPLY,
        )  # fmt: skip
        await reply.text(tr("book.refunded"))
    elif result.outcome in ("refund_provider", "ignored"):
        await reply.text(tr("book.refund_pending"))
        for admin in settings.admin_ids:
            await Replier(uow, "doctor", admin).text(
                Translator(settings.default_locale)(
                    "book.admin_refund",
                    ref=(result.booking.id[:8] if result.booking else "—"),
                    charge=sp.provider_payment_charge_id or sp.telegram_payment_charge_id,
                )
            )


@routes.message(F.refunded_payment)
async def on_refunded(message: Message) -> None:
    """Telegram's note that a Stars refund went through: the patient was already told."""


async def on_hold_expired(uow: UnitOfWork, event: ScheduledEvent, now_: datetime) -> None:
    """Scheduler handler for ``booking.hold_expiry``: an unpaid hold ran out."""
    booking = await flow.expire_hold(uow, event.subject)
    if booking is None:
        return
    patient = await uow.patients.get(booking.patient_id)
    if patient is None:
        return
    await Replier(uow, "patient", patient.tg_user_id).text(
        Translator(patient.locale)("book.hold_expired", minutes=flow.HOLD_MINUTES)
    )


def scheduled() -> dict[str, object]:
    """The scheduler handlers of bookings."""
    return {flow.EXPIRE_KIND: on_hold_expired}
