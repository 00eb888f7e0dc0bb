"""Hospital appointments in the doctor bot.

Doctors: after issuing a referral to a hospital that takes bookings, the free times come as
buttons ("book a time for the patient"); the patient gets the same offer.

A hospital's desk (role ``desk``, made by an admin with ``python bot.py hospitals desk``):
``/desk [YYYY-MM-DD]`` lists the day's appointments (time, the patient's name and year of
birth to match them, the service, the slip's code, the status) with Arrived / No-show /
Ask to move for a booked one and "Record the outcome" for an arrived one; the outcome is typed
next and goes back to the referring doctor (and the patient, who can book a follow-up online
consultation with /book).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiogram import F
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import appointments as apf
from flows.domain import Doctor, Referral, utcnow
from flows.errors import UserError
from flows.outbox import Replier
from handlers.common import appointments as view
from handlers.common.routes import RouteTable
from handlers.doctor.guard import verified
from handlers.patient import appointments as patient_side
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.desk")
OUTCOME = "appt_outcome"  # FSM data key: the appointment whose outcome the desk types


class DApCB(CallbackData, prefix="dap"):
    """A doctor's time for a referral (``ref``: the referral id's first 16, ``value``: the
    slot id; callback data is at most 64 bytes)."""

    ref: str
    value: str


class DeskCB(CallbackData, prefix="dsk"):
    """A desk's button on an appointment (``v``: the version the desk saw)."""

    action: str  # arrive | noshow | move | outcome
    appt: str
    v: int = 0


async def offer_times(
    uow: UnitOfWork, tr: Translator, reply: Replier, referral: Referral, doctor: Doctor
) -> None:
    """After issuing: the hospital's free times for the doctor, and the offer to the patient."""
    found = await apf.offers(uow, referral, utcnow())
    if not found:
        return
    rows = view.offer_buttons(
        tr, found, doctor.timezone, lambda sid: DApCB(ref=referral.id[:16], value=sid)
    )
    await reply.text(tr("appt.doc.choose"), InlineKeyboardMarkup(inline_keyboard=rows))
    patient = await uow.patients.get(referral.patient_id)
    if patient is not None and patient.tg_user_id is not None:
        ptr = Translator(patient.locale)
        await Replier(uow, "patient", patient.tg_user_id).text(
            ptr("appt.pat.offer"),
            InlineKeyboardMarkup(inline_keyboard=[[patient_side.book_button(ptr, referral.id)]]),
        )


@routes.callback_query(DApCB.filter())
@verified("appt_button")
async def on_doctor_pick(
    query: CallbackQuery,
    callback_data: DApCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """The doctor books a time for their referral; the patient gets the booking."""
    ref = callback_data.ref
    referral = await uow.referrals.by_prefix(ref) if len(ref) >= 12 else None
    if referral is None or referral.doctor_id != doctor.id:
        await uow.audit.record(
            f"doctor:{doctor.id}", "appt.refused", "referral", callback_data.ref[:32],
            {"reason": "not_yours"},
        )  # fmt: skip
        raise UserError("appt.error.not_found")
    patient = await uow.patients.get(referral.patient_id)
    await reply.answer_callback(query.id)
    appt = await apf.book(
        uow, referral, callback_data.value, utcnow(), by="doctor",
        actor=f"doctor:{doctor.id}", tz=patient.timezone if patient else None,
    )  # fmt: skip
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    params = await view.card(uow, tr, appt, doctor.timezone)
    await reply.text(tr("appt.doc.booked_by_you", **params))
    if patient is not None and patient.tg_user_id is not None:
        await patient_side.confirm(uow, patient, appt)


# -- the desk ----------------------------------------------------------------------------------


def _day(arg: str | None, tz: str) -> date:
    if arg:
        try:
            return date.fromisoformat(arg.strip())
        except ValueError:
            raise UserError("appt.desk.bad_date") from None
    return utcnow().astimezone(view._zone(tz)).date()


async def _line(uow: UnitOfWork, tr: Translator, appt: Any, slot: Any, tz: str) -> str:
    patient = await uow.patients.get(appt.patient_id)
    profile = await uow.patients.profile(patient) if patient is not None else {}
    params = await view.card(uow, tr, appt, tz)
    return str(
        tr(
            "appt.desk.item",
            when=view.when(tr, slot.starts_at, slot.all_day, tz),
            name=profile.get("name") or "—",
            born=profile.get("birth_year") or "—",
            service=params["service"],
            code=params["code"],
            status=tr.plain(f"appt.status.{appt.status}"),
        )
    )


def _buttons(tr: Translator, appt: Any) -> InlineKeyboardMarkup | None:
    def b(msgid: str, action: str) -> InlineKeyboardButton:
        cb = DeskCB(action=action, appt=appt.id[:12], v=appt.version)
        return InlineKeyboardButton(text=tr.plain(msgid)[:64], callback_data=cb.pack())

    if appt.status == apf.State.BOOKED:
        rows = [
            [b("appt.desk.arrived", "arrive"), b("appt.desk.noshow", "noshow")],
            [b("appt.desk.move", "move")],
        ]
    elif appt.status == apf.State.ARRIVED:
        rows = [[b("appt.desk.outcome", "outcome")]]
    else:
        return None
    return InlineKeyboardMarkup(inline_keyboard=rows)


@routes.message(Command("desk"))
@verified("desk", role="desk")
async def on_desk(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The day's appointments of the desk's hospital."""
    day = _day(command.args, settings.timezone)
    rows = await apf.day_list(uow, doctor, day, settings.timezone)
    hospital = await uow.referrals.hospital(doctor.hospital_id or "")
    name = hospital.name if hospital else "—"
    if not rows:
        await reply.text(tr("appt.desk.none", day=day.isoformat(), hospital=name))
        return
    await reply.text(tr("appt.desk.head", day=day.isoformat(), hospital=name, n=len(rows)))
    for appt, slot in rows:
        await reply.text(
            await _line(uow, tr, appt, slot, settings.timezone), _buttons(tr, appt), protect=True
        )


async def _appt(uow: UnitOfWork, doctor: Doctor, ref: str) -> Any:
    """The appointment a desk's button names (by its id's start), when it is at the desk's
    hospital (refused and audited by the flow otherwise)."""
    found = await uow.appointments.by_prefix(ref)
    return await apf.of_this_desk(uow, doctor, found.id if found is not None else ref)


@routes.callback_query(DeskCB.filter(F.action.in_({"arrive", "noshow"})))
@verified("desk_button", role="desk")
async def on_mark(
    query: CallbackQuery,
    callback_data: DeskCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Arrived or no-show (from the version the desk saw: a second desk is told it's done)."""
    appt = await _appt(uow, doctor, callback_data.appt)
    appt = await apf.mark(uow, doctor, appt.id, callback_data.action, callback_data.v, utcnow())
    await reply.answer_callback(query.id)
    slot = await uow.appointments.slot(appt.slot_id)
    if query.message is not None and slot is not None:
        await reply.edit_text(
            query.message.message_id,
            await _line(uow, tr, appt, slot, settings.timezone),
            _buttons(tr, appt),
        )
    if appt.status == apf.State.NOSHOW:
        await patient_side.tell_patient(uow, appt, "appt.pat.noshow")
        await patient_side.tell_doctor(uow, appt, "appt.doc.noshow")


@routes.callback_query(DeskCB.filter(F.action == "move"))
@verified("desk_button", role="desk")
async def on_move(
    query: CallbackQuery,
    callback_data: DeskCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Ask the patient to move: the booking is cancelled and the free times offered again."""
    found = await uow.appointments.by_prefix(callback_data.appt)
    ref = found.id if found is not None else callback_data.appt
    appt = await apf.ask_to_move(uow, doctor, ref, callback_data.v)
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    await reply.text(tr("appt.desk.moved"))
    await patient_side.tell_patient(uow, appt, "appt.pat.move", offer=True)


@routes.callback_query(DeskCB.filter(F.action == "outcome"))
@verified("desk_button", role="desk")
async def on_outcome(
    query: CallbackQuery,
    callback_data: DeskCB,
    uow: UnitOfWork,
    doctor: Doctor,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> None:
    """Record the outcome: typed next."""
    appt = await _appt(uow, doctor, callback_data.appt)
    if appt.status != apf.State.ARRIVED:
        raise UserError("appt.desk.already", status=appt.status)
    await reply.answer_callback(query.id)
    await state.update_data({OUTCOME: appt.id})
    await reply.text(tr("appt.desk.ask_outcome"))


async def _typing(
    message: Message, state: FSMContext, doctor: Doctor | None
) -> bool | dict[str, Any]:
    """Only while a desk is typing a visit's outcome."""
    if not apf.is_desk(doctor):
        return False
    appt_id = (await state.get_data()).get(OUTCOME)
    return {"appt_id": appt_id} if appt_id else False


@routes.message(Command("cancel"), _typing)
async def on_outcome_cancel(
    message: Message, state: FSMContext, tr: Translator, reply: Replier
) -> None:
    """No outcome after all."""
    await state.update_data({OUTCOME: None})
    await reply.text(tr("appt.desk.outcome_cancelled"))


@routes.message(F.text, ~F.text.startswith("/"), _typing)
async def on_outcome_text(
    message: Message,
    appt_id: str,
    uow: UnitOfWork,
    doctor: Doctor,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> None:
    """The outcome: kept (sealed), the referring doctor and the patient told."""
    assert message.text is not None
    appt = await apf.record_outcome(uow, doctor, appt_id, message.text, utcnow())
    await state.update_data({OUTCOME: None})
    text = await uow.appointments.outcome(appt) or ""
    await reply.text(tr("appt.desk.outcome_saved"))
    await patient_side.tell_doctor(uow, appt, "appt.doc.outcome", outcome=text)
    await patient_side.tell_patient(uow, appt, "appt.pat.outcome")
