"""The patient's side of a consultation: messages to the doctor (within the per-minute
limit), the cn record upload, /cancel, "keep waiting" after an expiry, the rating and comment
after a case ends, the gate in front of a new intake (blocked, or too many open cases),
/appeal, and the scheduled notices (case opened, expired, back in the queue)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import consultation as flow
from flows import intake, relay, trust
from flows.consultation import NotAllowed, State
from flows.domain import Consultation, Patient, ScheduledEvent, utcnow
from flows.onboarding import Step, step_of
from flows.outbox import PRIORITY_URGENT, Replier
from handlers.common import cases as view
from handlers.common.cases import RateCB, file_of
from handlers.common.reports import send_to_admins
from handlers.common.routes import RouteTable
from handlers.patient import booking
from handlers.patient.intake_render import IntakeCB, begin_keyboard
from handlers.patient.refusals import refused, refused_button
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.case")
cancel_routes = RouteTable("patient.case.cancel")


class CaseCB(CallbackData, prefix="pc"):
    """A button of one of the patient's cases (``case``: its id)."""

    action: str  # cancel | keep | wait
    case: str


COMMENT_MINUTES = 15  # how long after rating the next text counts as the comment


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
    return {"case": flow.live_of(cases) or cases[0]}


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
    await _ask_cancel(tr, reply, case)


async def _ask_cancel(tr: Translator, reply: Replier, case: Consultation) -> None:
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
        await refused_button(uow, query, patient, "stale" if case is None else "not_yours")
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
        if callback_data.action == "ask_cancel":
            if State(case.state) not in flow.CANCELLABLE:
                raise NotAllowed("state")
            await reply.answer_callback(query.id)
            await _ask_cancel(tr, reply, case)
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
    await refused_button(uow, query, patient)
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))


async def _intake_gate(
    event: Message | CallbackQuery, uow: UnitOfWork, patient: Patient | None, settings: Settings
) -> bool | dict[str, Any]:
    """A new intake is refused to a blocked patient and to one with too many open cases
    (an intake already open is not: it is shown again)."""
    if patient is None or step_of(patient) is not Step.DONE:
        return False
    if await intake.open_intake(uow, patient) is not None:
        return False
    refused = await intake_refusal(uow, patient, settings)
    if refused is None:
        return False
    return {"refusal": refused[0], "open_cases": refused[1]}


async def intake_refusal(
    uow: UnitOfWork, patient: Patient, settings: Settings
) -> tuple[str, list[Consultation]] | None:
    """Why a new intake is refused ("blocked" or "limit", with the open cases), or None."""
    if trust.is_blocked(patient):
        return "blocked", []
    open_cases = await trust.open_cases(uow, patient)
    if len(open_cases) >= settings.max_open_cases:
        return "limit", open_cases
    return None


async def refuse_intake(
    reply: Replier,
    tr: Translator,
    settings: Settings,
    refusal: str,
    open_cases: list[Consultation],
) -> None:
    if refusal == "blocked":
        await reply.text(tr("trust.blocked", emergency_number=settings.local_emergency_number))
        return
    await reply.text(
        tr(
            "trust.limit.open_cases",
            count=len(open_cases),
            numbers=", ".join(f"#{c.number}" for c in open_cases),
            emergency_number=settings.local_emergency_number,
        )
    )


@routes.message(Command("intake"), _intake_gate)
async def on_intake_refused(
    message: Message,
    refusal: str,
    open_cases: list[Consultation],
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """/intake by a blocked patient or one at the open-case limit (audited)."""
    await refused(uow, message, patient, "/intake", refusal)
    await refuse_intake(reply, tr, settings, refusal, open_cases)


@routes.callback_query(IntakeCB.filter(F.action == "begin"), _intake_gate)
async def on_begin_refused(
    query: CallbackQuery,
    refusal: str,
    open_cases: list[Consultation],
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The "start" button, pressed by a blocked patient or one at the open-case limit."""
    await refused_button(uow, query, patient, refusal)
    await reply.answer_callback(query.id)
    await refuse_intake(reply, tr, settings, refusal, open_cases)


@routes.message(Command("appeal"))
async def on_appeal(
    message: Message,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A blocked patient's appeal goes to the admins (once per block)."""
    if patient is None or not trust.is_blocked(patient):
        await refused(uow, message, patient, "/appeal", "not_blocked")
        await reply.text(tr("trust.appeal.not_blocked"))
        return
    raw = (message.text or "").partition(" ")[2]
    try:
        report = await trust.appeal(uow, patient, raw, now=utcnow())
    except NotAllowed as no:
        if no.reason in ("already", "not_blocked"):
            await refused(uow, message, patient, "/appeal", no.reason)
        if no.reason == "already":
            await reply.text(tr("trust.appeal.already"))
        elif no.reason == "not_blocked":
            await reply.text(tr("trust.appeal.not_blocked"))
        else:
            await reply.text(tr("trust.appeal.usage", max=trust.APPEAL_MAX))
        return
    await reply.text(tr("trust.appeal.sent"))
    await send_to_admins(uow, settings, report)


@routes.callback_query(RateCB.filter())
async def on_rate(
    query: CallbackQuery,
    callback_data: RateCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """1–5 stars for a closed case (once); then an optional comment. ``stars`` 0: skip it."""
    case = await uow.consultations.get(callback_data.case)
    if patient is None or case is None or case.patient_id != patient.id:
        await refused_button(uow, query, patient, "stale" if case is None else "not_yours")
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    if callback_data.stars == 0:
        await state.update_data(comment_case=None, comment_until=None)
        await reply.answer_callback(query.id)
        if query.message is not None:
            await reply.edit_markup(query.message.message_id, None)
        await reply.text(tr("trust.comment.skipped"))
        return
    try:
        await trust.rate(uow, patient, case, callback_data.stars, now=utcnow())
    except NotAllowed as no:
        await refused_button(uow, query, patient, no.reason)
        msgid = "trust.already_rated" if no.reason == "rated" else "error.stale_button"
        await reply.answer_callback(query.id, tr.plain(msgid))
        return
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    until = (utcnow() + timedelta(minutes=COMMENT_MINUTES)).isoformat()
    await state.update_data(comment_case=case.id, comment_until=until)
    skip = InlineKeyboardButton(
        text=tr.plain("trust.comment.skip"), callback_data=RateCB(case=case.id, stars=0).pack()
    )
    await reply.text(
        tr("trust.rated", number=case.number, stars=callback_data.stars),
        InlineKeyboardMarkup(inline_keyboard=[[skip]]),
    )


async def _commenting(
    message: Message, uow: UnitOfWork, patient: Patient | None, state: FSMContext
) -> bool | dict[str, Any]:
    """Right after a rating, the patient's next text (outside an intake) is the comment."""
    if patient is None:
        return False
    data = await state.get_data()
    case_id, until = data.get("comment_case"), data.get("comment_until")
    if not case_id or not until or datetime.fromisoformat(until) < utcnow():
        return False
    if await intake.open_intake(uow, patient) is not None:
        return False
    case = await uow.consultations.get(case_id)
    return {"rated_case": case} if case is not None else False


@routes.message(F.text, ~F.text.startswith("/"), _commenting)
async def on_comment(
    message: Message,
    rated_case: Consultation,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """The optional comment after a rating."""
    assert message.text is not None
    try:
        await trust.comment(uow, patient, rated_case, message.text, now=utcnow())
    except NotAllowed as no:
        if no.reason == "too_long":
            await reply.text(tr("trust.comment.too_long", max=trust.COMMENT_MAX))
            return
        await state.update_data(comment_case=None, comment_until=None)
        await reply.text(tr("error.not_understood"))
        return
    await state.update_data(comment_case=None, comment_until=None)
    await reply.text(tr("trust.comment.thanks"))


async def _throttled(
    uow: UnitOfWork,
    patient: Patient,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> bool:
    """Over the per-minute message limit: not relayed; told once a minute."""
    now = utcnow()
    if not await trust.over_message_rate(uow, patient, settings.patient_messages_per_minute, now):
        return False
    told = (await state.get_data()).get("throttle_told")
    if not told or datetime.fromisoformat(told) < now - timedelta(minutes=1):
        await state.update_data(throttle_told=now.isoformat())
        await reply.text(
            tr("trust.limit.messages", emergency_number=settings.local_emergency_number)
        )
        await uow.audit.record(
            f"patient:{patient.id}", "consultation.throttled", "patient", patient.id, {}
        )
    return True


@routes.message(F.text, ~F.text.startswith("/"), _case_filter)
async def on_case_text(
    message: Message,
    case: Consultation,
    uow: UnitOfWork,
    patient: Patient,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """In an active case the text goes to the doctor (within the per-minute limit);
    otherwise where the case stands."""
    assert message.text is not None
    if State(case.state) is State.ACTIVE and case.doctor_id:
        doctor = await uow.doctors.get(case.doctor_id)
        if doctor is None:
            return
        if await _throttled(uow, patient, state, tr, reply, settings):
            return
        try:
            text = await flow.patient_says(uow, patient, case, message.text, now=utcnow())
        except NotAllowed as no:
            msgid = "consult.too_long" if no.reason == "too_long" else "error.not_understood"
            await reply.text(tr(msgid, max=flow.TEXT_MAX))
            return
        dtr, dreply = view.to_doctor(uow, doctor)
        name = await flow.patient_first_name(uow, case)
        await dreply.text(relay.to_doctor(dtr, case.number, name, text), protect=True)
        return
    if State(case.state) is State.WAITING:
        if await _throttled(uow, patient, state, tr, reply, settings):
            return
        await _add_while_waiting(uow, patient, case, tr, reply, settings, message.text)
        return
    await _where_it_stands(reply, tr, case)


async def _add_while_waiting(
    uow: UnitOfWork,
    patient: Patient,
    case: Consultation,
    tr: Translator,
    reply: Replier,
    settings: Settings,
    text: str | None,
    file: tuple[str, str, int | None, str | None] | None = None,
) -> None:
    """A message or file while the case waits: kept for the doctor who takes it; the patient
    hears it was added, their place, and that they can cancel."""
    now = utcnow()
    try:
        if file is None:
            await flow.add_while_waiting(uow, patient, case, text, now=now)
        else:
            kind, file_id, _, file_name = file
            await flow.add_while_waiting(
                uow, patient, case, text, now=now, kind=kind, file_name=file_name, file_id=file_id
            )
    except NotAllowed as no:
        msgid = {
            "too_long": "consult.too_long",
            "too_many": "consult.added.too_many",
            "empty": "consult.added.empty",
        }.get(no.reason)
        if msgid is None:
            await _where_it_stands(reply, tr, case)
            return
        await reply.text(tr(msgid, max=flow.TEXT_MAX, number=case.number))
        return
    wait = await flow.wait_of(uow, case, now, settings.timezone)
    await reply.text(
        tr(
            "consult.added",
            number=case.number,
            wait=view.wait_text(tr, case, wait, patient, settings.timezone),
            emergency_number=settings.local_emergency_number,
        ),
        _waiting_keyboard(tr, case),
    )


def _waiting_keyboard(tr: Translator, case: Consultation) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[_button(tr, "consult.button.cancel", "ask_cancel", case)]]
    )


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


@routes.message(
    F.photo | F.document | F.voice | F.video | F.audio | F.video_note | F.sticker | F.location,
    _case_filter,
)
async def on_case_media(
    message: Message,
    case: Consultation,
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
    settings: Settings,
    state: FSMContext,
) -> None:
    """cn: a photo or document of the in-person record puts the case in the queue; in an
    active case a file goes to the doctor (within the per-minute limit)."""
    where = State(case.state)
    if where is State.AWAITING_RECORD:
        if not (message.photo or message.document):
            await reply.text(tr("consult.record.need_file", number=case.number))
            return
        found = file_of(message)
        assert found is not None
        kind, file_id, size, file_name = found
        problem = relay.check_size(kind, size)
        if problem is not None:
            await reply.text(tr(problem))
            return
        now = utcnow()
        await flow.attach_record(
            uow, patient, case, kind, message.caption, file_name or kind,
            now=now, expiry_hours=settings.case_expiry_hours, file_id=file_id,
        )  # fmt: skip
        department = view.department(tr, case)
        await reply.text(tr("consult.record.received", number=case.number, department=department))
        await view.notify_department(uow, case, settings, now)
        return
    if where is State.ACTIVE and case.doctor_id:
        if await _throttled(uow, patient, state, tr, reply, settings):
            return
        await _relay_to_doctor(uow, patient, case, message, tr, reply)
        return
    if where is State.WAITING:
        found = file_of(message)
        if found is None:
            await reply.text(tr(relay.MSG_UNSUPPORTED))
            return
        problem = relay.check_size(found[0], found[2])
        if problem is not None:
            await reply.text(tr(problem))
            return
        if await _throttled(uow, patient, state, tr, reply, settings):
            return
        await _add_while_waiting(uow, patient, case, tr, reply, settings, message.caption, found)
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
    caption = relay.to_doctor(dtr, case.number, name, message.caption)
    await dreply.relay_file(
        "patient", file_id, kind, caption=caption, protect=True, record=row.id, filename=file_name
    )


def _expired_keyboard(tr: Translator, case: Consultation) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(tr, "consult.button.keep_waiting", "wait", case)],
            [_button(tr, "consult.button.cancel", "cancel", case)],
        ]
    )


async def alert_doctor(
    uow: UnitOfWork, patient: Patient, flag: str | None, text: str | None, settings: Settings
) -> int:
    """A red flag while the patient has an active case: the doctor is alerted at once, in
    their language, also off duty. ``flag`` None: the patient answered "yes, it is an
    emergency" without naming one. Returns how many doctors were alerted."""
    alerted = 0
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
                what=tr(f"redflag.{flag}") if flag else tr("safety.what"),
                emergency_number=settings.local_emergency_number,
                text=text or "",
            ),
            priority=PRIORITY_URGENT,
            protect=True,
        )
        await uow.audit.record(
            "system", "consultation.emergency_alert", "consultation", case.id, {}
        )
        alerted += 1
    return alerted


# -- scheduled notices ---------------------------------------------------------------------


def scheduled(settings: Settings) -> dict[str, Callable[..., Awaitable[None]]]:
    """Scheduler handlers of consultations, by event kind."""

    async def opened(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        case = await uow.consultations.get(event.subject)
        found = await view.to_patient(uow, case) if case is not None else None
        if case is None or found is None:
            return
        patient, tr, reply = found
        state = State(case.state)
        if state is State.AWAITING_RECORD:
            await reply.text(tr("consult.opened.record", number=case.number))
        elif state is State.WAITING:
            wait = await flow.wait_of(uow, case, now, settings.timezone)
            await reply.text(
                tr(
                    "consult.opened",
                    number=case.number,
                    department=view.department(tr, case),
                    wait=view.wait_text(tr, case, wait, patient, settings.timezone),
                    emergency_number=settings.local_emergency_number,
                ),
                _waiting_keyboard(tr, case),
            )
            flow.told(case, wait.place, now)
            await view.notify_department(uow, case, settings, now)
            await booking.offer_after_intake(uow, tr, reply, settings, now)

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

    async def fell_back(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        moved = await flow.fallback_due(uow, event.subject, now, settings.timezone)
        if moved is None:
            return
        case, left = moved
        found = await view.to_patient(uow, case)
        if found is not None:
            _, tr, reply = found
            wait = await flow.wait_of(uow, case, now, settings.timezone)
            await reply.text(
                tr(
                    "consult.fell_back",
                    number=case.number,
                    left=tr.plain(f"dept.{left}"),
                    department=view.department(tr, case),
                    place=wait.place,
                    emergency_number=settings.local_emergency_number,
                )
            )
            flow.told(case, wait.place, now)
        await view.notify_department(uow, case, settings, now, left=left)

    async def place(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        moved = await flow.place_due(uow, event.subject, now, settings.timezone)
        found = await view.to_patient(uow, moved[0]) if moved is not None else None
        if moved is None or found is None:
            return
        (case, wait), (patient, tr, reply) = moved, found
        await reply.text(
            tr(
                "consult.place_update",
                number=case.number,
                wait=view.wait_text(tr, case, wait, patient, settings.timezone),
            ),
            _waiting_keyboard(tr, case),
        )

    return {
        flow.OPENED: opened,
        flow.EXPIRE: expire,
        flow.REQUEUED: requeued,
        flow.FALLBACK: fell_back,
        flow.PLACE: place,
    }
