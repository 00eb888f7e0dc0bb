"""Anything the other patient routers did not take: stale or forged buttons, stickers,
locations, polls, voice before intake exists. The patient gets a short answer and the
current question again; nothing is stored."""

from __future__ import annotations

from aiogram import F
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message

from bot.settings import Settings
from bot.telegram.reply import Replier
from flows.onboarding import Step, step_of
from handlers.common.routes import RouteTable
from handlers.patient.intake_render import begin_keyboard
from handlers.patient.render import show_step
from locales import Translator
from storage.models import Patient

routes = RouteTable("patient.fallback")


@routes.callback_query()
async def on_stale_button(
    query: CallbackQuery,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """An old or forged button: says so and re-asks the current question."""
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))
    if step_of(patient) is not Step.DONE:
        await show_step(reply, tr, patient, settings)


@routes.message(F.text)
async def on_unknown_text(
    message: Message, patient: Patient | None, tr: Translator, reply: Replier, settings: Settings
) -> None:
    """An unknown command or text nobody expected (an onboarded patient is offered the intake)."""
    if step_of(patient) is Step.DONE:
        await reply.text(tr("error.not_understood"), begin_keyboard(tr))
        return
    await reply.text(tr("error.not_understood"))
    if step_of(patient) is not Step.DONE:
        await show_step(reply, tr, patient, settings)


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
