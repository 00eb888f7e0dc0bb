"""Symptom intake: /intake, its buttons, typed answers, photos and voice notes, /history."""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import consultation, fhir, intake
from flows.domain import Intake, Patient
from flows.intake import BadAnswer, StaleButton
from flows.onboarding import Step, step_of
from flows.outbox import Replier
from flows.questionnaire import load
from handlers.common.routes import RouteTable
from handlers.patient import intake_render as view
from handlers.patient.refusals import refused_button
from handlers.patient.render import show_step
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.intake")


class HistoryCB(CallbackData, prefix="hx"):
    """Open one past intake (``fhir``: download it as a FHIR QuestionnaireResponse)."""

    tag: str
    fhir: bool = False


async def _ready(
    patient: Patient | None, tr: Translator, reply: Replier, settings: Settings
) -> Patient | None:
    """Intake needs finished onboarding (consent above all)."""
    if patient is not None and step_of(patient) is Step.DONE:
        return patient
    await reply.text(tr("intake.need_onboarding"))
    await show_step(reply, tr, patient, settings)
    return None


async def _show(
    uow: UnitOfWork,
    patient: Patient,
    out: intake.Outcome,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    known = await uow.patients.history(patient)
    opened = False
    if out.state is intake.State.TRIAGED:
        cases = await consultation.patient_cases(uow, patient)
        opened = any(case.intake_id == out.intake.id for case in cases)
    await view.show(reply, tr, load(), out, known, settings, case_opened=opened)


async def _reshow_open(
    uow: UnitOfWork, patient: Patient | None, tr: Translator, reply: Replier, settings: Settings
) -> None:
    """Ask the current question of the open intake again (after a stale button)."""
    if patient is None:
        return
    current = await intake.open_intake(uow, patient)
    if current is not None:
        out = intake.Outcome(current, await uow.intakes.answers(current))
        await _show(uow, patient, out, tr, reply, settings)


@routes.message(Command("intake"))
async def on_intake_command(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Starts a symptom intake, or picks up the one in progress."""
    if (p := await _ready(patient, tr, reply, settings)) is None:
        return
    await state.clear()
    out = await intake.begin(uow, p, load())
    if out.resumed:
        await reply.text(tr("intake.resumed"))
    await _show(uow, p, out, tr, reply, settings)


@routes.callback_query(view.IntakeCB.filter())
async def on_intake_button(
    query: CallbackQuery,
    callback_data: view.IntakeCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Takes one intake button; an old button gets a polite note and the current question."""
    if callback_data.action == "begin":
        await reply.answer_callback(query.id)
        if (p := await _ready(patient, tr, reply, settings)) is None:
            await refused_button(uow, query, patient, "not_onboarded")
            return
        await state.clear()
        out = await intake.begin(uow, p, load())
        if out.resumed:
            await reply.text(tr("intake.resumed"))
        await _show(uow, p, out, tr, reply, settings)
        return
    if patient is None or step_of(patient) is not Step.DONE:
        await refused_button(uow, query, patient, "not_onboarded")
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        await show_step(reply, tr, patient, settings)
        return
    try:
        out = await intake.press(
            uow,
            patient,
            load(),
            callback_data.tag,
            callback_data.action,
            callback_data.value,
            jurisdiction=settings.jurisdiction.value,
            case_expiry_hours=settings.case_expiry_hours,
            clinic_tz=settings.timezone,
        )
    except StaleButton:
        await refused_button(uow, query, patient)
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        await _reshow_open(uow, patient, tr, reply, settings)
        return
    await reply.answer_callback(query.id)
    if out.edited_keyboard and query.message is not None:
        known = await uow.patients.history(patient)
        _, markup = view.step_view(tr, load(), out.intake, out.answers, known)
        await reply.edit_markup(query.message.message_id, markup)
        return
    await _show(uow, patient, out, tr, reply, settings)


async def _open_intake_filter(
    message: Message, uow: UnitOfWork, patient: Patient | None, state: FSMContext
) -> bool | dict[str, Any]:
    """Only while this patient has an intake open (and is not editing their profile)."""
    if patient is None or step_of(patient) is not Step.DONE:
        return False
    if (await state.get_data()).get("field"):
        return False
    current = await intake.open_intake(uow, patient)
    return False if current is None else {"open_intake": current}


@routes.message(F.text, ~F.text.startswith("/"), _open_intake_filter)
async def on_intake_text(
    message: Message,
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A typed answer during intake: a severity, history, or the complaint in own words."""
    assert message.text is not None
    try:
        out = await intake.text(
            uow, patient, load(), message.text, jurisdiction=settings.jurisdiction.value
        )
    except BadAnswer as bad:
        await reply.text(tr(bad.msgid, **bad.params))
        await _reshow_open(uow, patient, tr, reply, settings)
        return
    if out is None:  # the intake ended meanwhile
        await view.ask_safety(reply, tr, settings)
        return
    if out.notice:
        await reply.text(tr(out.notice, **out.notice_params))
    await _show(uow, patient, out, tr, reply, settings)


def _media(message: Message) -> tuple[str, str, str] | None:
    if message.photo:
        best = message.photo[-1]
        return "photo", best.file_id, best.file_unique_id
    for kind in ("voice", "video_note", "document", "audio", "video"):
        item = getattr(message, kind)
        if item is not None:
            return kind, item.file_id, item.file_unique_id
    return None


@routes.message(
    F.photo | F.voice | F.video_note | F.document | F.audio | F.video, _open_intake_filter
)
async def on_intake_media(
    message: Message,
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A photo, voice note or file for the intake (only at the attachments step)."""
    found = _media(message)
    assert found is not None
    try:
        out = await intake.media(uow, patient, *found)
    except BadAnswer as bad:
        await reply.text(tr(bad.msgid, **bad.params))
        await _reshow_open(uow, patient, tr, reply, settings)
        return
    if out is None:
        return
    if out.notice:
        await reply.text(tr(out.notice, **out.notice_params))
    await _show(uow, patient, out, tr, reply, settings)


# -- /history ---------------------------------------------------------------------------------


def _outcome_label(tr: Translator, item: Intake) -> str:
    state = intake.State(item.state)
    if state is intake.State.TRIAGED and item.disposition:
        return tr.plain(f"disposition.{item.disposition}")
    if state is intake.State.EMERGENCY:
        return tr.plain("intake.outcome.emergency")
    if state is intake.State.CANCELLED:
        return tr.plain("intake.outcome.cancelled")
    return tr.plain("intake.outcome.in_progress")


async def send_intake_history(
    message: Message,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The first part of /history (handlers/patient/commands.py): the patient's past intakes
    with their outcomes; each opens its summary."""
    if (p := await _ready(patient, tr, reply, settings)) is None:
        return
    items = await intake.history(uow, p)
    if not items:
        await reply.text(tr("history.empty"), view.begin_keyboard(tr))
        return
    q = load()
    buttons = []
    for item, answers in items:
        category = answers.get("category")
        what = tr.plain(f"intake.category.{category}") if category in q.categories else "—"
        label = tr.plain(
            "history.item",
            date=intake.started_at(item).strftime("%Y-%m-%d"),
            complaint=what,
            outcome=_outcome_label(tr, item),
        )
        buttons.append(
            [
                InlineKeyboardButton(
                    text=label[:64], callback_data=HistoryCB(tag=item.id[:8]).pack()
                )
            ]
        )
    await reply.text(tr("history.title"), InlineKeyboardMarkup(inline_keyboard=buttons))


@routes.callback_query(HistoryCB.filter())
async def on_history_item(
    query: CallbackQuery,
    callback_data: HistoryCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Shows one past intake's summary, or sends it as a FHIR file."""
    await reply.answer_callback(query.id)
    if patient is None or step_of(patient) is not Step.DONE:
        await refused_button(uow, query, patient, "not_onboarded")
        await show_step(reply, tr, patient, settings)
        return
    found = await intake.find(uow, patient, callback_data.tag)
    if found is None:
        await refused_button(uow, query, patient, "not_found")
        await reply.text(tr("history.not_found"))
        return
    item, answers = found
    q = load()
    if callback_data.fhir:
        doc = fhir.questionnaire_response_json(q, item, answers, patient_ref=patient.id)
        await reply.document(f"intake-{item.id[:8]}.json", doc, tr("history.fhir_caption"))
        return
    header = tr(
        "history.detail",
        date=intake.started_at(item).strftime("%Y-%m-%d %H:%M"),
        outcome=_outcome_label(tr, item),
    )
    button = InlineKeyboardButton(
        text=tr.plain("history.fhir_button"),
        callback_data=HistoryCB(tag=item.id[:8], fhir=True).pack(),
    )
    await reply.text(
        header + "\n\n" + view.summary_text(tr, q, answers, for_patient=True),
        InlineKeyboardMarkup(inline_keyboard=[[button]]),
        protect=True,
    )
