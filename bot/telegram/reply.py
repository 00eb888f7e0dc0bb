"""Outgoing calls from handlers and flows: written to the outbox inside the update's
transaction, so nothing is sent for an update that rolled back and nothing is lost on a crash."""

from __future__ import annotations

import base64
from typing import Any

from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup, ReplyKeyboardRemove

from flows.relay import SUPPORTED_KINDS
from storage.uow import UnitOfWork

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove

# Replies to the person who just wrote go first; background work waits behind them.
PRIORITY_URGENT = 0
PRIORITY_REPLY = 3
# Scheduled routine messages (reminders, check-ins) wait behind urgent messages and replies.
PRIORITY_ROUTINE = 5

# Media a file can be relayed as (one send method each: sendPhoto, sendVoice, ...).
RELAY_KINDS = SUPPORTED_KINDS
RELAY_METHOD = "relayFile"


def markup_json(markup: Markup | None) -> dict[str, Any] | None:
    """Telegram JSON of a keyboard."""
    return None if markup is None else markup.model_dump(mode="json", exclude_none=True)


class Replier:
    """Queues Bot API calls for one bot, addressed to the current chat by default."""

    def __init__(self, uow: UnitOfWork, bot: str, chat_id: int | None) -> None:
        self._uow = uow
        self.bot = bot
        self.chat_id = chat_id

    def _chat(self, chat_id: int | None) -> int:
        target = chat_id if chat_id is not None else self.chat_id
        if target is None:
            raise ValueError("this update has no chat to reply to")
        return target

    async def call(
        self, method: str, params: dict[str, Any], *, chat_id: int, priority: int
    ) -> None:
        """Queue any Bot API method."""
        await self._uow.outbox.enqueue(self.bot, chat_id, method, params, priority=priority)

    async def text(
        self,
        text: str,
        markup: Markup | None = None,
        *,
        chat_id: int | None = None,
        protect: bool = False,
        priority: int = PRIORITY_REPLY,
    ) -> None:
        """Send an HTML message (placeholder values were escaped by the translator)."""
        target = self._chat(chat_id)
        params: dict[str, Any] = {"chat_id": target, "text": text, "parse_mode": "HTML"}
        if markup is not None:
            params["reply_markup"] = markup_json(markup)
        if protect:
            params["protect_content"] = True
        await self.call("sendMessage", params, chat_id=target, priority=priority)

    async def edit_markup(
        self, message_id: int, markup: InlineKeyboardMarkup | None, *, chat_id: int | None = None
    ) -> None:
        """Replace the buttons of a message the bot sent (e.g. a ticked checkbox)."""
        target = self._chat(chat_id)
        params: dict[str, Any] = {"chat_id": target, "message_id": message_id}
        if markup is not None:
            params["reply_markup"] = markup_json(markup)
        await self.call("editMessageReplyMarkup", params, chat_id=target, priority=PRIORITY_REPLY)

    async def edit_text(
        self,
        message_id: int,
        text: str,
        markup: InlineKeyboardMarkup | None = None,
        *,
        chat_id: int | None = None,
    ) -> None:
        """Replace the HTML text of a message the bot sent; its buttons go unless ``markup``
        is given again. An unchanged text is fine (the sender counts "not modified" as sent)."""
        target = self._chat(chat_id)
        params: dict[str, Any] = {
            "chat_id": target,
            "message_id": message_id,
            "text": text,
            "parse_mode": "HTML",
        }
        if markup is not None:
            params["reply_markup"] = markup_json(markup)
        await self.call("editMessageText", params, chat_id=target, priority=PRIORITY_REPLY)

    async def document(
        self,
        filename: str,
        data: bytes,
        caption: str | None = None,
        *,
        chat_id: int | None = None,
        protect: bool = True,
    ) -> None:
        """Send a file; clinical documents are protected from forwarding and saving."""
        target = self._chat(chat_id)
        params: dict[str, Any] = {
            "chat_id": target,
            "document": {"filename": filename, "data_b64": base64.b64encode(data).decode()},
            "protect_content": protect,
        }
        if caption:
            params["caption"] = caption
            params["parse_mode"] = "HTML"
        await self.call("sendDocument", params, chat_id=target, priority=PRIORITY_REPLY)

    async def relay_file(
        self,
        source_bot: str,
        file_id: str,
        kind: str,
        *,
        chat_id: int | None = None,
        caption: str | None = None,
        protect: bool = False,
        priority: int = PRIORITY_REPLY,
        record: int | None = None,
        filename: str | None = None,
    ) -> None:
        """Pass a file another bot received on to a chat of this bot (one outbox row).

        File ids belong to one bot, so the sender downloads the file through ``source_bot``
        (getFile) and uploads it through this bot as ``kind`` (photo, voice, document, audio,
        video), with an HTML ``caption`` if given. ``record`` is the ``case_messages.id`` whose
        encrypted copy of the file is stored when the row is sent. ``filename`` is the name the
        recipient sees (default: the one Telegram's file path gives). Check the size first with
        :func:`flows.relay.check_size`; a file that can't be fetched ends ``failed``.
        """
        if kind not in RELAY_KINDS:
            raise ValueError(f"can't relay {kind!r}")
        target = self._chat(chat_id)
        params: dict[str, Any] = {
            "chat_id": target,
            "source_bot": source_bot,
            "file_id": file_id,
            "kind": kind,
        }
        if caption:
            params["caption"] = caption
            params["parse_mode"] = "HTML"
        if protect:
            params["protect_content"] = True
        if record is not None:
            params["record"] = record
        if filename:
            params["filename"] = filename
        await self.call(RELAY_METHOD, params, chat_id=target, priority=priority)

    async def answer_callback(
        self, callback_query_id: str, text: str | None = None, *, alert: bool = False
    ) -> None:
        """Stop the button's spinner, optionally with a short notice."""
        params: dict[str, Any] = {"callback_query_id": callback_query_id}
        if text:
            params["text"] = text[:200]
            params["show_alert"] = alert
        # Answers are tied to the query, not a chat bucket; chat 0 keeps them out of the
        # per-chat rate limit (Telegram does not count them there either).
        await self.call("answerCallbackQuery", params, chat_id=0, priority=PRIORITY_URGENT)
