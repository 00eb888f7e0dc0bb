"""The doctor's active cases: /cases (choose the current one), messages to the patient (to
the case of the replied-to message, else the chosen case, else "which case?"), /close with an
advice summary, /terminate, /transfer, and the cn follow-up confirmation."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import consultation as flow
from flows import relay
from flows.consultation import NotAllowed, State
from flows.domain import Consultation, Doctor, utcnow
from flows.outbox import Replier
from flows.questionnaire import load
from handlers.common import bookings
from handlers.common import cases as view
from handlers.common.cases import ask_rating, file_of
from handlers.common.routes import RouteTable
from handlers.doctor.guard import target_case, verified, working_doctor
from handlers.doctor.referrals import offer_referral
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.cases")


class CaseCB(CallbackData, prefix="cd"):
    """A button of one of the doctor's cases (``case``: its id)."""

    action: str  # sel | fu | tr
    case: str
    value: str = ""


async def _active_target(
    uow: UnitOfWork,
    doctor: Doctor,
    message: Message,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> Consultation | None:
    case = await target_case(uow, doctor, message, state)
    if case is None:
        await reply.text(tr("consult.doctor.choose"))
        return None
    if State(case.state) is not State.ACTIVE:
        await reply.text(tr("consult.doctor.case_closed", number=case.number))
        return None
    return case


async def _doctor_name(uow: UnitOfWork, tr: Translator, doctor: Doctor) -> str:
    """The doctor's name for the patient's end-of-case notices (in place of the card: the
    full card went with the acceptance notice and is not repeated in the case)."""
    return relay.doctor_name(tr, (await flow.doctor_card(uow, doctor))["name"])


@routes.message(Command("cases"))
@verified("cases")
async def on_cases(
    message: Message, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """The doctor's active cases as buttons; pressing one makes it the current case."""
    cases = await uow.consultations.active_for_doctor(doctor.id)
    if not cases:
        await reply.text(tr("consult.doctor.cases_empty"))
        return
    rows = []
    for case in cases:
        name = await flow.patient_first_name(uow, case)
        label = f"#{case.number} · {name}"
        rows.append(
            [
                InlineKeyboardButton(
                    text=label[:64], callback_data=CaseCB(action="sel", case=case.id).pack()
                )
            ]
        )
    await reply.text(tr("consult.doctor.cases_title"), InlineKeyboardMarkup(inline_keyboard=rows))


@routes.callback_query(CaseCB.filter())
@verified("case_button")
async def on_case_button(
    query: CallbackQuery,
    callback_data: CaseCB,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Choose a case, confirm a follow-up visit (cn), or pick the transfer department."""
    now = utcnow()
    try:
        case = await flow.doctor_case(uow, doctor, callback_data.case, now)
        if State(case.state) is not State.ACTIVE:
            raise NotAllowed("closed")
        name = await flow.patient_first_name(uow, case)
        if callback_data.action == "sel":
            await state.update_data(case=case.id, closing=None)
            await reply.answer_callback(query.id)
            await reply.text(tr("consult.doctor.selected", number=case.number, name=name))
            return
        if callback_data.action == "fu":
            await flow.confirm_followup(
                uow, doctor, case, now=now, jurisdiction=settings.jurisdiction.value
            )
            await reply.answer_callback(query.id)
            if query.message is not None:
                await reply.edit_markup(query.message.message_id, None)
            await reply.text(tr("consult.doctor.followup_confirmed", number=case.number))
            return
        if callback_data.action == "tr":
            await flow.transfer(
                uow, doctor, case, callback_data.value, load().departments,
                now=now, expiry_hours=settings.case_expiry_hours,
            )  # fmt: skip
            await reply.answer_callback(query.id)
            if query.message is not None:
                await reply.edit_markup(query.message.message_id, None)
            department = view.department(tr, case)
            await reply.text(
                tr("consult.doctor.transferred", number=case.number, department=department)
            )
            found = await view.to_patient(uow, case)
            if found is not None:
                _, ptr, preply = found
                await preply.text(
                    ptr(
                        "consult.transferred",
                        number=case.number,
                        department=view.department(ptr, case),
                    )
                )
            await view.notify_department(uow, case, settings, now)
            return
    except NotAllowed:
        pass
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))


@routes.message(Command("close"))
@verified("close")
async def on_close(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Asks for the advice summary of the case; the next text closes it."""
    case = await _active_target(uow, doctor, message, state, tr, reply)
    if case is None:
        return
    if settings.jurisdiction.value == "cn" and not case.followup_visit:
        await reply.text(tr("consult.doctor.followup_first", number=case.number))
        return
    await state.update_data(case=case.id, closing=case.id)
    name = await flow.patient_first_name(uow, case)
    await reply.text(tr("consult.doctor.close_ask", number=case.number, name=name))


@routes.message(Command("terminate"))
@verified("terminate")
async def on_terminate(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Ends the case as not suitable online; the patient is told to see a doctor in person."""
    case = await _active_target(uow, doctor, message, state, tr, reply)
    if case is None:
        return
    await flow.terminate(uow, doctor, case, now=utcnow())
    await state.update_data(case=None, closing=None)
    await reply.text(tr("consult.doctor.terminated", number=case.number))
    await offer_referral(tr, reply, case)
    found = await view.to_patient(uow, case)
    if found is not None:
        _, ptr, preply = found
        await preply.text(
            ptr(
                "consult.terminated",
                number=case.number,
                card=await _doctor_name(uow, ptr, doctor),
                department=view.department(ptr, case),
            )
        )
        await ask_rating(uow, case)


@routes.message(Command("transfer"))
@verified("transfer")
async def on_transfer(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Offers the departments the case can be passed to."""
    case = await _active_target(uow, doctor, message, state, tr, reply)
    if case is None:
        return
    buttons = [
        InlineKeyboardButton(
            text=tr.plain(f"dept.{d}"),
            callback_data=CaseCB(action="tr", case=case.id, value=d).pack(),
        )
        for d in load().departments
        if d != case.department
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    await reply.text(
        tr("consult.doctor.transfer_ask", number=case.number),
        InlineKeyboardMarkup(inline_keyboard=rows),
    )


@routes.message(F.text, ~F.text.startswith("/"), working_doctor)
async def on_text(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A doctor's text goes to the patient of the replied-to case (or the chosen one); after
    /close it is the advice summary."""
    assert message.text is not None
    case = await _active_target(uow, doctor, message, state, tr, reply)
    if case is None:
        return
    now = utcnow()
    jurisdiction = settings.jurisdiction.value
    closing = (await state.get_data()).get("closing") == case.id
    try:
        if closing:
            text = await flow.close(
                uow, doctor, case, message.text, now=now, jurisdiction=jurisdiction
            )
        else:
            text = await flow.doctor_says(
                uow, doctor, case, message.text, now=now, jurisdiction=jurisdiction
            )
    except NotAllowed as no:
        if no.reason == "followup_first":
            await reply.text(tr("consult.doctor.followup_first", number=case.number))
        elif no.reason == "too_long":
            await reply.text(tr("consult.too_long", max=flow.TEXT_MAX))
        else:
            await reply.text(tr("consult.doctor.case_closed", number=case.number))
        return
    found = await view.to_patient(uow, case)
    if found is None:
        return
    _, ptr, preply = found
    if closing:
        await state.update_data(case=None, closing=None)
        await preply.text(
            ptr(
                "consult.closed_advice",
                number=case.number,
                card=await _doctor_name(uow, ptr, doctor),
                advice=text,
                emergency_number=settings.local_emergency_number,
            ),
            protect=True,
        )
        await reply.text(tr("consult.doctor.closed", number=case.number))
        await bookings.after_close(uow, case.id, tr, reply)  # a booked call's card, if any
        await ask_rating(uow, case)
        return
    name = (await flow.doctor_card(uow, doctor))["name"]
    await preply.text(relay.to_patient(ptr, name, text), protect=True)


@routes.message(
    F.photo | F.voice | F.document | F.audio | F.video | F.video_note | F.sticker | F.location,
    working_doctor,
)
async def on_file(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A doctor's photo or file goes to the patient of the replied-to (or chosen) case."""
    case = await _active_target(uow, doctor, message, state, tr, reply)
    if case is None:
        return
    found = file_of(message)
    if found is None:
        await reply.text(tr(relay.MSG_UNSUPPORTED))
        return
    kind, file_id, size, file_name = found
    problem = relay.check_size(kind, size)
    if problem is not None:
        await reply.text(tr(problem))
        return
    try:
        row = await flow.doctor_file(
            uow, doctor, case, kind, message.caption, file_name,
            now=utcnow(), jurisdiction=settings.jurisdiction.value,
        )  # fmt: skip
    except NotAllowed as no:
        msgid = (
            "consult.doctor.followup_first"
            if no.reason == "followup_first"
            else ("consult.doctor.case_closed")
        )
        await reply.text(tr(msgid, number=case.number))
        return
    found_patient = await view.to_patient(uow, case)
    if found_patient is None:
        return
    _, ptr, preply = found_patient
    name = (await flow.doctor_card(uow, doctor))["name"]
    caption = relay.to_patient(ptr, name, message.caption)
    await preply.relay_file(
        "doctor", file_id, kind, caption=caption, protect=True, record=row.id, filename=file_name
    )
