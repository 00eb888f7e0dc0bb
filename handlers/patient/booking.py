"""Patient bot: ``/book`` — a consultation booked into a doctor's schedule and paid in the chat.

Mode → doctor (name, title, department, rating, price, next free time) or "first available"
→ a time in the patient's own time zone → an invoice (Telegram Payments; a free service is
booked at once). The pre-checkout answer re-checks the hold; only the payment books."""

from __future__ import annotations

import zoneinfo
from collections.abc import Awaitable, Callable
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
from flows.domain import Doctor, Patient, now
from flows.onboarding import Step, step_of
from flows.outbox import PRIORITY_REPLY, PRIORITY_URGENT, Replier
from handlers.common import bookings as common
from handlers.common.routes import RouteTable
from handlers.patient.refusals import refused
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
        next=common.when(tr, o.next_start, zone),
    )


def no_show_rule(settings: Settings) -> flow.NoShowRule:
    """The clinic's no-show rule from its settings."""
    deposit = services.parse_price(settings.noshow_deposit)
    return flow.NoShowRule(
        settings.noshow_limit, settings.noshow_days, None if deposit.free else deposit
    )


async def offer_after_intake(
    uow: UnitOfWork, tr: Translator, reply: Replier, settings: Settings, when_: datetime
) -> None:
    """After an intake that became a case: the modes the patient could book a set time in
    instead (nothing when the clinic sells none or nobody has free times)."""
    modes = await flow.modes_on_offer(uow, settings.timezone, when_)
    if not modes:
        return
    rows = [[_b(tr.plain(f"svc.mode.{m}"), BookCB(action="mode", value=m))] for m in modes]
    await reply.text(tr("book.offer_after_intake"), InlineKeyboardMarkup(inline_keyboard=rows))


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
    rows = [
        [_b(common.when(tr, s.start_at, zone), BookCB(action="slot", value=s.id))] for s in slots
    ]
    await reply.text(
        tr(msgid, zone=common.zone_label(zone)), InlineKeyboardMarkup(inline_keyboard=rows)
    )


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
        await refused(uow, query, patient, "bk", "not_onboarded")
        await reply.answer_callback(query.id, tr.plain("book.start_first"), alert=True)
        return
    if cb.action in ("slot", "mv"):
        slot = await uow.bookings.slot(cb.value)
        if slot is None:
            # No such time was ever offered: a forged or very old button.
            await refused(uow, query, patient, "bk", "stale")
            await reply.answer_callback(query.id, tr.plain("error.stale_button"), alert=True)
            return
        if flow.aware(slot.start_at) <= now():
            # A time from an old list that has passed meanwhile: the times free now.
            await refused(uow, query, patient, "bk", "past")
            await reply.answer_callback(query.id)
            doctor = await uow.doctors.get(slot.doctor_id)
            if doctor is not None and cb.action == "slot":
                await _show_slots(
                    uow, doctor, slot.mode, patient, settings, tr, reply, msgid="book.slot_past"
                )
            else:
                await reply.text(tr("book.slot_past_only"))
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
    if cb.action == "mv":
        await _move(uow, patient, cb.m, cb.value, settings, tr, reply)
        return
    if cb.action == "ok":
        try:
            done = await flow.confirm_free(uow, patient, cb.value, now())
        except flow.BookingError as exc:
            await refused(uow, query, patient, "bk", "stale")
            await reply.text(tr(exc.msgid, **exc.params))
            return
        await common.tell_booked(uow, settings, done.id)
        return
    await refused(uow, query, patient, "bk", "stale")
    await reply.text(tr("error.stale_button"))


async def _move(
    uow: UnitOfWork, patient: Patient, ref: str, slot_id: str, settings: Settings,
    tr: Translator, reply: Replier,
) -> None:  # fmt: skip
    """Move one of the patient's bookings (``ref``: its id's first characters) to a time."""
    mine = [b for b in await flow.upcoming(uow, patient, now()) if ref and b.id.startswith(ref)]
    if len(mine) != 1:
        await reply.text(tr("book.not_yours"))
        return
    try:
        b = await flow.reschedule(
            uow, patient, mine[0], slot_id, now(), settings.booking_free_cancel_hours
        )
    except flow.BookingError as exc:
        await reply.text(tr(exc.msgid, **exc.params))
        return
    zone = _zone(patient, settings)
    at = b.start_at or now()
    await reply.text(
        tr("book.moved", when=common.when(tr, at, zone), zone=common.zone_label(zone)),
        common.patient_buttons(tr, b),
    )
    doctor = await uow.doctors.get(b.doctor_id)
    if doctor is not None:
        dtr = Translator(doctor.locale)
        dzone = common.zone_of(flow.doctor_zone(doctor, settings.timezone), settings.timezone)
        await Replier(uow, "doctor", doctor.tg_user_id).text(
            dtr(
                "book.moved.doctor",
                ref=b.id[:8],
                when=common.when(dtr, at, dzone),
                zone=common.zone_label(dzone),
            )
        )


async def _take_slot(
    uow: UnitOfWork, patient: Patient, slot_id: str, settings: Settings, tr: Translator,
    reply: Replier,
) -> None:  # fmt: skip
    try:
        held = await flow.hold(uow, patient, slot_id, now(), no_show_rule(settings))
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
    at = common.when(tr, held.slot.start_at, zone)
    mode = tr.plain(f"svc.mode.{held.slot.mode}")
    if held.price.free:
        name = await uow.doctors.get_field(held.doctor, "name") or "—"
        ok = [[_b(tr.plain("book.confirm_button"), BookCB(action="ok", value=held.booking.id))]]
        await reply.text(
            tr("book.confirm_free", mode=mode, when=at, zone=common.zone_label(zone), doctor=name,
               minutes=flow.HOLD_MINUTES),
            InlineKeyboardMarkup(inline_keyboard=ok),
        )  # fmt: skip
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
        "description": tr.plain(
            "book.invoice_description",
            when=at,
            zone=common.zone_label(zone),
            hours=settings.booking_free_cancel_hours,
        )[:255],
        "payload": flow.invoice_payload(held.booking),
        "currency": price.currency,
        "prices": [{"label": mode[:32], "amount": price.minor}],
        "protect_content": True,
    }
    if price.currency != services.STARS and settings.payment_provider_token is not None:
        params["provider_token"] = settings.payment_provider_token.get_secret_value()
    if held.booking.deposit:
        shown = services.format_price(price, tr.locale, tr.plain)
        await reply.text(
            tr("book.held_deposit", n=settings.noshow_limit, days=settings.noshow_days,
               price=shown)
        )  # fmt: skip
    await reply.text(tr("book.held", when=at, minutes=flow.HOLD_MINUTES))
    await reply.call("sendInvoice", params, chat_id=patient.tg_user_id, priority=PRIORITY_REPLY)


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
    # Like a button's answer: tied to the query, not a chat (chat 0 keeps it out of the
    # per-chat pacing), and first in the outbox.
    await reply.call("answerPreCheckoutQuery", params, chat_id=0, priority=PRIORITY_URGENT)


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
        await common.tell_booked(uow, settings, result.booking.id)
    elif result.outcome == "refund_stars":
        patient = await uow.patients.by_tg_user(message.from_user.id)
        if patient is not None:
            await common.refund_stars(uow, patient, sp.telegram_payment_charge_id)
        await reply.text(tr("book.refunded"))
    elif result.outcome in ("refund_provider", "ignored"):
        await reply.text(tr("book.refund_pending"))
        await common.tell_admins_refund(
            uow, settings, result.booking.id[:8] if result.booking else "—",
            sp.provider_payment_charge_id or sp.telegram_payment_charge_id,
        )  # fmt: skip


@routes.message(F.refunded_payment)
async def on_refunded(message: Message) -> None:
    """Telegram's note that a Stars refund went through: the patient was already told."""


def scheduled(settings: Settings) -> dict[str, Callable[..., Awaitable[None]]]:
    """The scheduler handlers of bookings (handlers/common/bookings.py)."""
    return common.scheduled(settings)


@routes.message(Command("bookings"))
async def on_bookings(
    message: Message,
    uow: UnitOfWork,
    patient: Patient | None,
    settings: Settings,
    tr: Translator,
    reply: Replier,
) -> None:
    """The patient's booked consultations ahead, each with its buttons (share the number for
    a phone call, cancel)."""
    if patient is None or step_of(patient) is not Step.DONE:
        await reply.text(tr("book.start_first"))
        return
    ahead = await flow.upcoming(uow, patient, now())
    if not ahead:
        await reply.text(tr("book.no_bookings"))
        return
    zone = _zone(patient, settings)
    for b in ahead[:10]:
        doctor = await uow.doctors.get(b.doctor_id)
        name = (await uow.doctors.get_field(doctor, "name") if doctor else None) or "—"
        at = b.start_at or now()
        await reply.text(
            tr(
                "book.item",
                mode=tr.plain(f"svc.mode.{b.mode}"),
                when=common.when(tr, at, zone),
                zone=common.zone_label(zone),
                doctor=name,
            ),
            common.patient_buttons(tr, b),
        )


@routes.callback_query(common.PatientCallCB.filter())
async def on_booking_button(
    query: CallbackQuery,
    callback_data: common.PatientCallCB,
    uow: UnitOfWork,
    patient: Patient | None,
    settings: Settings,
    tr: Translator,
    reply: Replier,
) -> None:
    """Share or take back the number for a phone consultation, cancel, or "the video does
    not work" (the consultation goes on in the chat)."""
    cb = callback_data
    if patient is None:
        await refused(uow, query, patient, "pcl", "not_onboarded")
        await reply.answer_callback(query.id, tr.plain("book.not_yours"), alert=True)
        return
    try:
        if cb.action in ("share", "noshare"):
            b = await flow.set_phone_consent(uow, patient, cb.b, cb.action == "share")
            await reply.answer_callback(query.id)
            msgid = "book.phone.shared" if b.phone_consent else "book.phone.revoked"
            await reply.text(tr(msgid), common.patient_buttons(tr, b))
        elif cb.action == "cancel":
            done = await flow.cancel_by_patient(
                uow, patient, cb.b, now(), settings.booking_free_cancel_hours
            )
            await reply.answer_callback(query.id)
            await common.refund(uow, settings, done.booking, patient)
            if done.refund is not None:
                await reply.text(tr("book.cancelled.refund"))
            elif done.booking.charge_id:
                await reply.text(
                    tr("book.cancelled.late", hours=settings.booking_free_cancel_hours)
                )
            else:
                await reply.text(tr("book.cancelled"))
            doctor = await uow.doctors.get(done.booking.doctor_id)
            if doctor is not None:
                await Replier(uow, "doctor", doctor.tg_user_id).text(
                    Translator(doctor.locale)("book.cancelled.doctor", ref=done.booking.id[:8])
                )
        elif cb.action == "move":
            moving = await uow.bookings.booking(cb.b)
            if moving is None or moving.patient_id != patient.id:
                raise flow.BookingError("book.not_yours")
            if moving.status != flow.BOOKED:
                raise flow.BookingError("book.cannot_cancel")
            b = moving
            await reply.answer_callback(query.id)
            doctor = await uow.doctors.get(b.doctor_id)
            if doctor is None:
                raise flow.BookingError("book.doctor_gone")
            await flow.lay_out(
                uow, doctor.id, await flow.availability(uow, doctor, settings.timezone), now()
            )
            slots = [
                s for s in await flow.free_slots(uow, doctor, b.mode, now()) if s.id != b.slot_id
            ]
            if not slots:
                await reply.text(tr("book.no_slots"))
                return
            zone = _zone(patient, settings)
            rows = [
                [
                    _b(
                        common.when(tr, s.start_at, zone),
                        BookCB(action="mv", value=s.id, m=b.id[:16]),
                    )
                ]
                for s in slots
            ]
            await reply.text(
                tr("book.ask_move", zone=common.zone_label(zone)),
                InlineKeyboardMarkup(inline_keyboard=rows),
            )
        elif cb.action == "vfail":
            b = await flow.patient_video_failed(uow, patient, cb.b, now())
            await reply.answer_callback(query.id)
            await reply.text(tr("book.video_failed.patient"))
            doctor = await uow.doctors.get(b.doctor_id)
            if doctor is not None:
                case = await uow.consultations.get(b.consultation_id or "")
                await Replier(uow, "doctor", doctor.tg_user_id).text(
                    Translator(doctor.locale)(
                        "book.video_failed.doctor", number=case.number if case else 0
                    )
                )
        else:
            await refused(uow, query, patient, "pcl", "stale")
            await reply.answer_callback(query.id, tr.plain("error.stale_button"))
    except flow.BookingError as exc:
        reason = "not_yours" if exc.msgid == "book.not_yours" else "too_late"
        await refused(uow, query, patient, "pcl", reason)
        await reply.answer_callback(query.id, tr.plain(exc.msgid, **exc.params), alert=True)
