"""The doctor bot before doctor onboarding exists: say what it is."""

from __future__ import annotations

from aiogram.filters import CommandStart
from aiogram.types import CallbackQuery, Message

from bot.telegram.reply import Replier
from handlers.common.routes import RouteTable
from locales import Translator

routes = RouteTable("doctor.start")


@routes.message(CommandStart())
async def on_start(message: Message, tr: Translator, reply: Replier) -> None:
    """Explains what the doctor bot is for."""
    await reply.text(tr("doctor.start"))


@routes.callback_query()
async def on_button(query: CallbackQuery, tr: Translator, reply: Replier) -> None:
    """No buttons exist yet: any press is stale."""
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))


@routes.message()
async def on_anything(message: Message, tr: Translator, reply: Replier) -> None:
    """Anything else: point to /start."""
    await reply.text(tr("doctor.help"))
