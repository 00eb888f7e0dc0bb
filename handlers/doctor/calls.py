"""Doctor bot: the buttons of a booked consultation at its time (handlers/common/bookings.py
sends the card): the call started, the patient did not answer (a no-show), the call
finished, or the video failed and the consultation goes on by phone or in the chat.

When the call ends the card is edited: the patient's number is gone from the doctor's view
(and a cn masked number's binding is released)."""

from __future__ import annotations

from aiogram.types import CallbackQuery

from bot.settings import Settings
from flows import booking as flow
from flows.domain import Doctor, now
from flows.outbox import Replier
from handlers.common import bookings as common
from handlers.common.routes import RouteTable
from handlers.doctor.guard import verified
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.calls")


@routes.callback_query(common.CallCB.filter())
@verified("call")
async def on_call_button(
    query: CallbackQuery,
    callback_data: common.CallCB,
    uow: UnitOfWork,
    doctor: Doctor,
    settings: Settings,
    tr: Translator,
    reply: Replier,
) -> None:
    """Start / Patient didn't answer / Finished / video failed: recorded; the patient told."""
    cb = callback_data
    try:
        b = await flow.doctor_action(uow, doctor, cb.b, cb.action, now())
    except flow.BookingError as exc:
        await reply.answer_callback(query.id, tr.plain(exc.msgid), alert=True)
        return
    await reply.answer_callback(query.id, tr.plain(f"book.call.done.{cb.action}"))
    patient = await uow.patients.get(b.patient_id)
    case = await uow.consultations.get(b.consultation_id or "")
    number = case.number if case is not None else 0
    ptr = Translator(patient.locale) if patient is not None else tr
    to_patient = Replier(uow, "patient", patient.tg_user_id) if patient is not None else None
    message_id = query.message.message_id if query.message is not None else None
    if cb.action in ("no_answer", "finished"):
        # The number leaves the doctor's view with the call.
        if message_id is not None:
            await reply.edit_text(message_id, tr(f"book.call.ended.{cb.action}", number=number))
        b.card_outbox_id = None
        if to_patient is not None and cb.action == "no_answer":
            await to_patient.text(ptr("book.call.missed"))
        if cb.action == "finished":
            await reply.text(tr("book.call.close_hint", number=number))
            if b.deposit and b.refund is not None:
                await common.deposit_back(uow, b)
            if to_patient is not None:
                await to_patient.text(ptr("book.call.finished_patient"))
    elif cb.action == "to_phone" and patient is not None:
        card = await common.phone_card(uow, settings, b, patient, tr, number)
        b.card_outbox_id = await reply.text(card, common.call_card_buttons(tr, b), protect=True)
        if to_patient is not None:
            await to_patient.text(ptr("book.video_to_phone"))
    elif cb.action == "to_text" and to_patient is not None:
        await to_patient.text(ptr("book.video_to_text"))
