"""Anything the other patient routers did not take: stale or forged buttons, unknown commands,
words in the patient's own terms, stickers, locations, polls, voice before intake exists. The
patient gets a short answer and the current question again; words that describe a problem
start an intake (after consent), and anything not understood is met with "is this an
emergency?" and the emergency number."""

from __future__ import annotations

from aiogram import F
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message

from bot.settings import Settings
from flows import intake, understand
from flows.domain import Patient
from flows.onboarding import Step, step_of
from flows.outbox import Replier
from flows.questionnaire import load
from handlers.common.routes import RouteTable
from handlers.patient import intake_render as view
from handlers.patient.intake_render import begin_keyboard
from handlers.patient.refusals import refused_button
from handlers.patient.render import show_step
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.fallback")


@routes.callback_query()
async def on_stale_button(
    query: CallbackQuery,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """An old or forged button: says so (audited) and re-asks the current question."""
    await refused_button(uow, query, patient)
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))
    if step_of(patient) is not Step.DONE:
        await show_step(reply, tr, patient, settings)


@routes.message(F.text.startswith("/"))
async def on_unknown_command(
    message: Message, patient: Patient | None, tr: Translator, reply: Replier, settings: Settings
) -> None:
    """A command Careline does not have: what it can do (an onboarded patient is offered the
    intake), or the current onboarding question again."""
    if step_of(patient) is Step.DONE:
        await reply.text(tr("error.not_understood"), begin_keyboard(tr))
        return
    await reply.text(tr("error.not_understood"))
    await show_step(reply, tr, patient, settings)


@routes.message(F.text)
async def on_own_words(
    message: Message,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Words no other step expected (the red-flag check has already run): a greeting gets a
    greeting; a complaint starts an intake with what it names prefilled; anything else asks
    "is this an emergency?" with the emergency number. Never "I didn't understand"."""
    assert message.text is not None
    onboarded = step_of(patient) is Step.DONE
    kind = understand.small_talk(message.text)
    if kind is not None:
        await reply.text(tr(f"freetext.{kind}"), begin_keyboard(tr) if onboarded else None)
        if not onboarded:
            await show_step(reply, tr, patient, settings)
        return
    if onboarded and patient is not None:
        # Consent given: the words are kept (encrypted, in the intake) so they need not be
        # typed again. Before consent nothing is stored.
        out = await intake.begin_from_text(uow, patient, load(), message.text)
        if out is not None:
            known = await uow.patients.history(patient)
            await view.show(reply, tr, load(), out, known, settings)
            return
    await view.ask_safety(reply, tr, settings)


@routes.message()
async def on_unsupported(
    message: Message, patient: Patient | None, tr: Translator, reply: Replier, settings: Settings
) -> None:
    """Stickers, locations, polls, media and the like."""
    await reply.text(tr("error.unsupported_content"))
    if step_of(patient) is not Step.DONE:
        await show_step(reply, tr, patient, settings)


@routes.my_chat_member()
async def on_membership(event: ChatMemberUpdated, patient: Patient | None) -> None:
    """The patient blocked or unblocked the bot: remember whether they can be reached."""
    if patient is not None and event.chat.type == "private":
        patient.unreachable = event.new_chat_member.status in ("kicked", "left")
