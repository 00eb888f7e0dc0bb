"""Group and channel chats: Careline works one-to-one only."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from flows.outbox import Replier
from locales import Translator


def get_router() -> Router:
    """A router that answers commands in groups once with a pointer to a private chat and
    ignores everything else there (no health data is ever discussed in a group)."""
    router = Router(name="groups")
    router.message.filter(F.chat.type != "private")

    @router.message(F.text.startswith("/"), ~F.from_user.is_bot)
    async def on_group_command(message: Message, tr: Translator, reply: Replier) -> None:
        """A command in a group: ask the person to write privately."""
        await reply.text(tr("group.not_supported"))

    @router.message()
    async def on_group_message(message: Message) -> None:
        """Other group messages are ignored."""

    @router.callback_query(F.message.chat.type != "private")
    async def on_group_button(query: CallbackQuery, tr: Translator, reply: Replier) -> None:
        """A button under a group message (Careline shows none there, so it is forged): the
        answer goes to the presser only, never into the group."""
        await reply.answer_callback(query.id, tr.plain("group.not_supported"))

    return router
