"""What both bots say about a booked consultation, and the scheduler's booking events.

Shared by the patient bot (``/book``, ``/bookings``) and the doctor bot (the call card's
buttons): the confirmation to both sides, reminders 24 h and 15 min before, the start (the
case opens; the doctor's "Call the patient" card, or the video room links for both), the
no-start refund, the unpaid hold's release, and refunds (Stars through the Bot API, card
payments flagged to the admins)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.settings import Settings
from flows import booking as flow
from flows import calls, services
from flows.domain import Booking, Doctor, Patient, ScheduledEvent, utcnow
from flows.outbox import PRIORITY_REPLY, Replier
from flows.schedule import DAY_KEYS
from locales import Html, Translator
from storage.uow import UnitOfWork


class CallCB(CallbackData, prefix="dcl"):
    """The doctor's buttons at a booked time: start | no_answer | finished | to_phone |
    to_text, for booking ``b``."""

    action: str
    b: str


class PatientCallCB(CallbackData, prefix="pcl"):
    """The patient's buttons of a booking: ``share`` / ``noshare`` their number for a phone
    consultation, ``vfail`` (the video does not work: go on in the chat), ``move`` (the free
    times to move it to), ``cancel``."""

    action: str
    b: str


def button(text: str, cb: CallbackData) -> InlineKeyboardButton:
    """An inline button (Telegram allows 64 bytes of callback data; ours are short)."""
    return InlineKeyboardButton(text=text[:64], callback_data=cb.pack())


def zone_of(name: str | None, default: str) -> zoneinfo.ZoneInfo:
    """A zone by name, the default one when unknown."""
    for candidate in (name, default, "UTC"):
        if not candidate:
            continue
        try:
            return zoneinfo.ZoneInfo(candidate)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
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


async def _sides(uow: UnitOfWork, booking_id: str) -> tuple[Booking, Patient, Doctor] | None:
    b = await uow.bookings.booking(booking_id)
    if b is None:
        return None
    patient = await uow.patients.get(b.patient_id)
    doctor = await uow.doctors.get(b.doctor_id)
    if patient is None or doctor is None:
        return None
    return b, patient, doctor


async def refund_stars(uow: UnitOfWork, patient: Patient, charge_id: str) -> None:
    """Give a Stars payment back (the sender makes the call; Telegram then confirms it with a
    ``refunded_payment`` message, which the patient bot takes silently)."""
    await Replier(uow, "patient", patient.tg_user_id).call(
        "refundStarPayment",
        {"user_id": patient.tg_user_id, "telegram_payment_charge_id": charge_id},
        chat_id=patient.tg_user_id,
        priority=PRIORITY_REPLY,
    )


async def tell_admins_refund(uow: UnitOfWork, settings: Settings, ref: str, charge: str) -> None:
    """A card payment must be refunded through the provider (no Bot API call for it)."""
    tr = Translator(settings.default_locale)
    for admin in settings.admin_ids:
        await Replier(uow, "doctor", admin).text(tr("book.admin_refund", ref=ref, charge=charge))


async def refund(uow: UnitOfWork, settings: Settings, b: Booking, patient: Patient) -> None:
    """Carry out the refund a cancellation decided (``b.refund``)."""
    if b.refund == "refunded" and b.charge_id:
        await refund_stars(uow, patient, b.charge_id)
    elif b.refund == "to_refund":
        await tell_admins_refund(
            uow, settings, b.id[:8], b.provider_charge_id or b.charge_id or "—"
        )


async def tell_booked(uow: UnitOfWork, settings: Settings, booking_id: str) -> None:
    """The booking is confirmed: the patient (time in their zone; for a phone consultation,
    whether to share their number with this doctor) and the doctor (time in theirs)."""
    found = await _sides(uow, booking_id)
    if found is None:
        return
    b, patient, doctor = found
    tr = Translator(patient.locale)
    zone = zone_of(patient.timezone, settings.timezone)
    name = await uow.doctors.get_field(doctor, "name") or "—"
    at = b.start_at or utcnow()
    await Replier(uow, "patient", patient.tg_user_id).text(
        tr(
            "book.confirmed",
            mode=tr.plain(f"svc.mode.{b.mode}"),
            when=when(tr, at, zone),
            zone=zone_label(zone),
            doctor=name,
        ),
        _patient_buttons(tr, b),
    )
    dtr = Translator(doctor.locale)
    dzone = zone_of(flow.doctor_zone(doctor, settings.timezone), settings.timezone)
    await Replier(uow, "doctor", doctor.tg_user_id).text(
        dtr(
            "book.doctor_notice",
            mode=dtr.plain(f"svc.mode.{b.mode}"),
            when=when(dtr, at, dzone),
            zone=zone_label(dzone),
            ref=b.id[:8],
        )
    )


def _patient_buttons(tr: Translator, b: Booking) -> InlineKeyboardMarkup:
    rows = []
    if b.mode == "phone":
        share = (
            ("noshare", "book.phone.revoke") if b.phone_consent else ("share", "book.phone.share")
        )
        rows.append([button(tr.plain(share[1]), PatientCallCB(action=share[0], b=b.id))])
    rows.append(
        [
            button(tr.plain("book.move_button"), PatientCallCB(action="move", b=b.id)),
            button(tr.plain("book.cancel_button"), PatientCallCB(action="cancel", b=b.id)),
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def patient_buttons(tr: Translator, b: Booking) -> InlineKeyboardMarkup:
    """A booking's buttons for the patient (share the number; cancel)."""
    return _patient_buttons(tr, b)


def call_card_buttons(tr: Translator, b: Booking) -> InlineKeyboardMarkup:
    """The doctor's buttons at the time, by mode."""
    if b.mode == "video":
        rows = [
            [button(tr.plain("book.call.started"), CallCB(action="start", b=b.id))],
            [
                button(tr.plain("book.call.to_phone"), CallCB(action="to_phone", b=b.id)),
                button(tr.plain("book.call.to_text"), CallCB(action="to_text", b=b.id)),
            ],
            [button(tr.plain("book.call.finished"), CallCB(action="finished", b=b.id))],
        ]
    else:
        rows = [
            [button(tr.plain("book.call.start"), CallCB(action="start", b=b.id))],
            [button(tr.plain("book.call.no_answer"), CallCB(action="no_answer", b=b.id))],
            [button(tr.plain("book.call.finished"), CallCB(action="finished", b=b.id))],
        ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def phone_card(
    uow: UnitOfWork, settings: Settings, b: Booking, patient: Patient, dtr: Translator,
    case_number: int,
) -> str:  # fmt: skip
    """The doctor's "Call the patient" text: the number the doctor may see (shared by consent
    for this consultation; in cn the clinic's masked number), or why there is none."""
    phone = await uow.patients.get_field(patient, "phone") if b.phone_consent else None
    masker = calls.StaticMasker(settings.masked_number) if settings.masked_number else None
    number = calls.number_for_doctor(settings.jurisdiction.value, b.id, phone, masker)
    first = (await uow.patients.get_field(patient, "name") or "").split(" ")[0] or "—"
    if number is None:
        return dtr("book.call.no_number", number=case_number, name=first)
    return dtr("book.call.card", number=case_number, name=first, phone=number)


def _video_links(settings: Settings, b: Booking, name: str, moderator: bool) -> str | None:
    if not settings.jitsi_url or not b.room:
        return None
    token = None
    if settings.jitsi_app_secret is not None and b.start_at is not None:
        start = flow.aware(b.start_at)
        token = calls.jitsi_token(
            app_id=settings.jitsi_app_id,
            secret=settings.jitsi_app_secret.get_secret_value(),
            server_url=settings.jitsi_url,
            room=b.room,
            name=name,
            moderator=moderator,
            start=start,
            end=start + timedelta(hours=1),
        )
    return calls.room_url(settings.jitsi_url, b.room, token)


def scheduled(settings: Settings) -> dict[str, Callable[..., Awaitable[None]]]:
    """Scheduler handlers of bookings, by event kind."""

    async def remind(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        due = await flow.reminder_due(uow, event.subject)
        found = await _sides(uow, due[0].id) if due is not None else None
        if due is None or found is None:
            return
        b, patient, doctor = found
        label = due[1]
        tr = Translator(patient.locale)
        zone = zone_of(patient.timezone, settings.timezone)
        at = b.start_at or now
        await Replier(uow, "patient", patient.tg_user_id).text(
            tr(
                f"book.remind.{label}",
                mode=tr.plain(f"svc.mode.{b.mode}"),
                when=when(tr, at, zone),
                zone=zone_label(zone),
            ),
            _patient_buttons(tr, b),
        )
        dtr = Translator(doctor.locale)
        dzone = zone_of(flow.doctor_zone(doctor, settings.timezone), settings.timezone)
        await Replier(uow, "doctor", doctor.tg_user_id).text(
            dtr(
                f"book.remind_doctor.{label}",
                mode=dtr.plain(f"svc.mode.{b.mode}"),
                when=when(dtr, at, dzone),
                zone=zone_label(dzone),
                ref=b.id[:8],
            )
        )

    async def start(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        started = await flow.start_due(uow, event.subject, now)
        found = await _sides(uow, event.subject) if started is not None else None
        if started is None or found is None:
            return
        b, case = started
        _b, patient, doctor = found
        tr, dtr = Translator(patient.locale), Translator(doctor.locale)
        to_patient = Replier(uow, "patient", patient.tg_user_id)
        to_doctor = Replier(uow, "doctor", doctor.tg_user_id)
        dname = await uow.doctors.get_field(doctor, "name") or "—"
        if b.mode == "phone":
            card = await phone_card(uow, settings, b, patient, dtr, case.number)
            b.card_outbox_id = await to_doctor.text(card, call_card_buttons(dtr, b), protect=True)
            await to_patient.text(tr("book.start.phone", doctor=dname, number=case.number))
        elif b.mode == "video":
            pname = (await uow.patients.get_field(patient, "name") or "").split(" ")[0]
            plink = _video_links(settings, b, pname or "Patient", moderator=False)
            dlink = _video_links(settings, b, dname, moderator=True)
            if plink is None or dlink is None:  # no Jitsi configured: the chat instead
                b.mode = "text"
                await to_doctor.text(dtr("book.start.video_unset", number=case.number))
                await to_patient.text(tr("book.start.text", doctor=dname, number=case.number))
                return
            await to_doctor.text(
                dtr("book.start.video_doctor", number=case.number, link=dlink),
                call_card_buttons(dtr, b), protect=True,
            )  # fmt: skip
            await to_patient.text(
                tr("book.start.video", doctor=dname, link=plink),
                InlineKeyboardMarkup(
                    inline_keyboard=[
                        [
                            button(
                                tr.plain("book.video_failed"),
                                PatientCallCB(action="vfail", b=b.id),
                            )
                        ]
                    ]
                ),
                protect=True,
            )
        else:
            await to_doctor.text(dtr("book.start.text_doctor", number=case.number))
            await to_patient.text(tr("book.start.text", doctor=dname, number=case.number))

    async def no_start(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        b = await flow.no_start_due(uow, event.subject)
        found = await _sides(uow, event.subject) if b is not None else None
        if b is None or found is None:
            return
        _b, patient, doctor = found
        await refund(uow, settings, b, patient)
        tr = Translator(patient.locale)
        msgid = "book.no_start.refunded" if b.refund == "refunded" else "book.no_start"
        await Replier(uow, "patient", patient.tg_user_id).text(tr(msgid))
        dtr = Translator(doctor.locale)
        await Replier(uow, "doctor", doctor.tg_user_id).text(
            dtr("book.no_start.doctor", ref=b.id[:8])
        )

    async def hold_expired(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        b = await flow.expire_hold(uow, event.subject)
        patient = await uow.patients.get(b.patient_id) if b is not None else None
        if patient is None:
            return
        await Replier(uow, "patient", patient.tg_user_id).text(
            Translator(patient.locale)("book.hold_expired", minutes=flow.HOLD_MINUTES)
        )

    return {
        flow.REMIND_KIND: remind,
        flow.START_KIND: start,
        flow.NO_START_KIND: no_start,
        flow.EXPIRE_KIND: hold_expired,
    }


async def receipts(
    uow: UnitOfWork, patient: Patient, tr: Translator, settings: Settings
) -> list[Html]:
    """The patient's bookings as receipt lines, newest first: mode, doctor, time, price and
    what became of the payment (paid, refunded, to be refunded)."""
    zone = zone_of(patient.timezone, settings.timezone)
    lines: list[Html] = []
    for b in await uow.bookings.of_patient(patient.id):
        if b.status == "pending":
            continue  # an unpaid hold is not a purchase
        doctor = await uow.doctors.get(b.doctor_id)
        name = (await uow.doctors.get_field(doctor, "name") if doctor else None) or "—"
        price = services.format_price(
            services.Price(b.price_minor, b.currency), tr.locale, tr.plain
        )
        if b.refund == "refunded":
            paid = tr.plain("book.receipt.refunded")
        elif b.refund == "to_refund":
            paid = tr.plain("book.receipt.to_refund")
        elif b.charge_id:
            paid = tr.plain("book.receipt.paid")
        else:
            paid = tr.plain("book.receipt.free")
        lines.append(
            tr(
                "book.receipt",
                ref=b.id[:8],
                mode=tr.plain(f"svc.mode.{b.mode}"),
                doctor=name,
                when=when(tr, b.start_at or b.created_at, zone),
                status=tr.plain(f"book.status.{b.status}"),
                price=price,
                paid=paid,
            )
        )
    return lines


async def after_close(uow: UnitOfWork, case_id: str, tr: Translator, reply: Replier) -> None:
    """The doctor closed a booked consultation's case: the booking is fulfilled and the call
    card, if the number is still on it, is edited so the number leaves the doctor's view."""
    b = await uow.bookings.booking_for_case(case_id)
    if b is None:
        return
    if b.status == "booked":
        b.status = "fulfilled"
        b.call_ended_at = b.call_ended_at or utcnow()
        b.call_outcome = b.call_outcome or "completed"
        if flow.return_deposit(b):
            await deposit_back(uow, b)
    if b.card_outbox_id is not None:
        sent = await uow.outbox.sent_message_id(b.card_outbox_id)
        case = await uow.consultations.get(case_id)
        if sent is not None and case is not None:
            await reply.edit_text(sent, tr("book.call.ended.finished", number=case.number))
        b.card_outbox_id = None


async def deposit_back(uow: UnitOfWork, b: Booking) -> None:
    """The consultation took place: its deposit goes back (Stars at once) and the patient is
    told. ``b.refund`` was set by :func:`flows.booking.return_deposit`."""
    patient = await uow.patients.get(b.patient_id)
    if patient is None:
        return
    if b.refund == "refunded" and b.charge_id:
        await refund_stars(uow, patient, b.charge_id)
    await Replier(uow, "patient", patient.tg_user_id).text(
        Translator(patient.locale)("book.deposit_returned")
    )
