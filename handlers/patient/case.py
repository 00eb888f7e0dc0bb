"""The patient's side of a consultation: messages to the doctor, the cn record upload,
/cancel, "keep waiting" after an expiry, and the scheduled notices (case opened, expired,
back in the queue)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from bot.telegram.reply import PRIORITY_URGENT, Replier
from flows import consultation as flow
from flows import intake, relay
from flows.consultation import NotAllowed, State
from flows.onboarding import Step, step_of
from handlers.common import cases as view
from handlers.common.routes import RouteTable
from handlers.patient.intake_render import begin_keyboard
from locales import Translator
from storage.models import Consultation, Patient, ScheduledEvent, utcnow
from storage.uow import UnitOfWork

routes = RouteTable("patient.case")
cancel_routes = RouteTable("patient.case.cancel")


class CaseCB(CallbackData, prefix="pc"):
    """A button of one of the patient's cases (``case``: its id)."""

    action: str  # cancel | keep | wait
    case: str


def _button(tr: Translator, msgid: str, action: str, case: Consultation) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=tr.plain(msgid), callback_data=CaseCB(action=action, case=case.id).pack()
    )


async def _case_filter(
    message: Message, uow: UnitOfWork, patient: Patient | None, state: FSMContext
) -> bool | dict[str, Any]:
    """Only for onboarded patients with a case, outside an intake and a profile edit."""
    if patient is None or step_of(patient) is not Step.DONE:
        return False
    if (await state.get_data()).get("field"):
        return False
    if await intake.open_intake(uow, patient) is not None:
        return False
    cases = await uow.consultations.for_patient(patient.id)
    if not cases:
        return False
    live = await flow.live_case(uow, patient)
    return {"case": live or cases[0]}


async def _cancellable(
    message: Message, uow: UnitOfWork, patient: Patient | None, state: FSMContext
) -> bool | dict[str, Any]:
    """/cancel means the case when there is one to cancel and no profile edit is going on."""
    if patient is None or (await state.get_data()).get("field"):
        return False
    cases = await flow.patient_cases(uow, patient, flow.CANCELLABLE)
    return {"case": cases[0]} if cases else False


@cancel_routes.message(Command("cancel"), _cancellable)
async def on_cancel(message: Message, case: Consultation, tr: Translator, reply: Replier) -> None:
    """Asks whether to cancel the waiting or active consultation."""
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(tr, "consult.cancel.yes", "cancel", case)],
            [_button(tr, "consult.cancel.no", "keep", case)],
        ]
    )
    await reply.text(tr("consult.cancel.ask", number=case.number), markup)


@routes.callback_query(CaseCB.filter())
async def on_case_button(
    query: CallbackQuery,
    callback_data: CaseCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Cancel confirmed, cancel declined, or keep waiting after an expiry."""
    case = await uow.consultations.get(callback_data.case)
    if patient is None or case is None or case.patient_id != patient.id:
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    now = utcnow()
    try:
        if callback_data.action == "cancel":
            doctor = await flow.cancel(uow, patient, case, now=now)
            await reply.answer_callback(query.id)
            await reply.text(tr("consult.cancelled", number=case.number), begin_keyboard(tr))
            if doctor is not None:
                dtr, dreply = view.to_doctor(uow, doctor)
                name = await flow.patient_first_name(uow, case)
                await dreply.text(dtr("consult.doctor.cancelled", number=case.number, name=name))
            return
        if callback_data.action == "keep":
            if State(case.state) not in flow.CANCELLABLE:
                raise NotAllowed("state")
            await reply.answer_callback(query.id)
            await reply.text(tr("consult.cancel.kept", number=case.number))
            return
        if callback_data.action == "wait":
            await flow.keep_waiting(
                uow, patient, case, now=now, expiry_hours=settings.case_expiry_hours
            )
            await reply.answer_callback(query.id)
            await reply.text(tr("consult.kept_waiting", number=case.number))
            await view.notify_department(uow, case, settings, now)
            return
    except NotAllowed:
        pass
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))


@routes.message(F.text, ~F.text.startswith("/"), _case_filter)
async def on_case_text(
    message: Message,
    case: Consultation,
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """In an active case the text goes to the doctor; otherwise where the case stands."""
    assert message.text is not None
    state = State(case.state)
    if state is State.ACTIVE and case.doctor_id:
        doctor = await uow.doctors.get(case.doctor_id)
        if doctor is None:
            return
        try:
            text = await flow.patient_says(uow, patient, case, message.text, now=utcnow())
        except NotAllowed as no:
            msgid = "consult.too_long" if no.reason == "too_long" else "error.not_understood"
            await reply.text(tr(msgid, max=flow.TEXT_MAX))
            return
        dtr, dreply = view.to_doctor(uow, doctor)
        name = await flow.patient_first_name(uow, case)
        await dreply.text(
            dtr("consult.doctor.relay", number=case.number, name=name, text=text), protect=True
        )
        return
    await _where_it_stands(reply, tr, case)


async def _where_it_stands(reply: Replier, tr: Translator, case: Consultation) -> None:
    state = State(case.state)
    if state is State.AWAITING_RECORD:
        await reply.text(tr("consult.record.need_file", number=case.number))
    elif state is State.WAITING:
        department = view.department(tr, case)
        await reply.text(tr("consult.waiting", number=case.number, department=department))
    elif state is State.EXPIRED:
        await reply.text(
            tr("consult.expired.again", number=case.number), _expired_keyboard(tr, case)
        )
    else:
        await reply.text(tr("consult.closed_case", number=case.number), begin_keyboard(tr))


@routes.message(F.photo | F.document | F.voice | F.video | F.audio | F.video_note, _case_filter)
async def on_case_media(
    message: Message,
    case: Consultation,
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """cn: a photo or document of the in-person record puts the case in the queue; in an
    active case files are not relayed yet."""
    state = State(case.state)
    if state is State.AWAITING_RECORD:
        if not (message.photo or message.document):
            await reply.text(tr("consult.record.need_file", number=case.number))
            return
        name = message.document.file_name if message.document else "photo"
        kind = "document" if message.document else "photo"
        now = utcnow()
        await flow.attach_record(
            uow, patient, case, kind, message.caption, name,
            now=now, expiry_hours=settings.case_expiry_hours,
        )  # fmt: skip
        department = view.department(tr, case)
        await reply.text(tr("consult.record.received", number=case.number, department=department))
        await view.notify_department(uow, case, settings, now)
        return
    if state is State.ACTIVE and case.doctor_id:
        await _relay_to_doctor(uow, patient, case, message, tr, reply)
        return
    await _where_it_stands(reply, tr, case)


async def _relay_to_doctor(
    uow: UnitOfWork,
    patient: Patient,
    case: Consultation,
    message: Message,
    tr: Translator,
    reply: Replier,
) -> None:
    """A photo, voice note or file in an active case goes to the doctor's bot."""
    found = file_of(message)
    doctor = await uow.doctors.get(case.doctor_id) if case.doctor_id else None
    if doctor is None:
        return
    if found is None:
        await reply.text(tr(relay.MSG_UNSUPPORTED))
        return
    kind, file_id, size, file_name = found
    problem = relay.check_size(kind, size)
    if problem is not None:
        await reply.text(tr(problem))
        return
    row = await flow.patient_file(
        uow, patient, case, kind, message.caption, file_name, now=utcnow()
    )
    dtr, dreply = view.to_doctor(uow, doctor)
    name = await flow.patient_first_name(uow, case)
    caption = dtr(
        "consult.doctor.relay", number=case.number, name=name, text=message.caption or ""
    )
    await dreply.relay_file(
        "patient", file_id, kind, caption=caption, protect=True, record=row.id, filename=file_name
    )


def file_of(message: Message) -> tuple[str, str, int | None, str | None] | None:
    """(kind, file id, size, file name) of a relayable file in the message."""
    if message.photo:
        best = message.photo[-1]
        return "photo", best.file_id, best.file_size, None
    for kind in ("voice", "document", "audio", "video"):
        item = getattr(message, kind)
        if item is not None:
            return kind, item.file_id, item.file_size, getattr(item, "file_name", None)
    return None


def _expired_keyboard(tr: Translator, case: Consultation) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(tr, "consult.button.keep_waiting", "wait", case)],
            [_button(tr, "consult.button.cancel", "cancel", case)],
        ]
    )


async def alert_doctor(
    uow: UnitOfWork, patient: Patient, flag: str, text: str | None, settings: Settings
) -> None:
    """A red flag while the patient has an active case: the doctor is alerted at once, in
    their language, also off duty."""
    for case in await flow.patient_cases(uow, patient, (State.ACTIVE,)):
        doctor = await uow.doctors.get(case.doctor_id) if case.doctor_id else None
        if doctor is None:
            continue
        if text:
            await uow.consultations.add_message(case, "patient", "text", text)
        tr, reply = view.to_doctor(uow, doctor)
        name = await flow.patient_first_name(uow, case)
        await reply.text(
            tr(
                "consult.doctor.emergency",
                number=case.number,
                name=name,
                what=tr(f"redflag.{flag}"),
                emergency_number=settings.local_emergency_number,
                text=text or "",
            ),
            priority=PRIORITY_URGENT,
            protect=True,
        )
        await uow.audit.record(
            "system", "consultation.emergency_alert", "consultation", case.id, {}
        )


# -- scheduled notices ---------------------------------------------------------------------


def scheduled(settings: Settings) -> dict[str, Callable[..., Awaitable[None]]]:
    """Scheduler handlers of consultations, by event kind."""

    async def opened(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        case = await uow.consultations.get(event.subject)
        found = await view.to_patient(uow, case) if case is not None else None
        if case is None or found is None:
            return
        _, tr, reply = found
        state = State(case.state)
        if state is State.AWAITING_RECORD:
            await reply.text(tr("consult.opened.record", number=case.number))
        elif state is State.WAITING:
            await reply.text(
                tr(
                    "consult.opened",
                    number=case.number,
                    department=view.department(tr, case),
                    emergency_number=settings.local_emergency_number,
                )
            )
            await view.notify_department(uow, case, settings, now)

    async def expire(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        case = await flow.expire_due(uow, event.subject, now)
        found = await view.to_patient(uow, case) if case is not None else None
        if case is None or found is None:
            return
        _, tr, reply = found
        await reply.text(
            tr(
                "consult.expired",
                number=case.number,
                emergency_number=settings.local_emergency_number,
            ),
            _expired_keyboard(tr, case),
        )

    async def requeued(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        case = await uow.consultations.get(event.subject)
        found = await view.to_patient(uow, case) if case is not None else None
        if case is None or found is None or State(case.state) is not State.WAITING:
            return
        _, tr, reply = found
        department = view.department(tr, case)
        await reply.text(tr("consult.requeued", number=case.number, department=department))
        await view.notify_department(uow, case, settings, now)

    return {flow.OPENED: opened, flow.EXPIRE: expire, flow.REQUEUED: requeued}
