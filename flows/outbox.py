"""One way to tell someone something: Bot API calls rendered, prioritised and written to the
outbox inside the current transaction, so nothing is sent for a use case that rolled back and
nothing is lost on a crash. The outbox sender makes the calls later, within Telegram's limits.

Neutral on purpose (no aiogram): flows, handlers and the scheduler all speak through
:class:`Replier`. Keyboards are either aiogram keyboard objects (handlers) or the plain JSON
:func:`buttons` builds (flows); callback data that flows put on buttons is packed by the
:class:`Callback` types below, byte for byte what the handlers' aiogram ``CallbackData`` filters
unpack.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any, Protocol
from uuid import UUID

from flows.relay import SUPPORTED_KINDS
from storage.uow import UnitOfWork

# Replies to the person who just wrote go first; background work waits behind them.
PRIORITY_URGENT = 0
PRIORITY_REPLY = 3
# Scheduled routine messages (reminders, check-ins) wait behind urgent messages and replies.
PRIORITY_ROUTINE = 5

# Media a file can be relayed as (one send method each: sendPhoto, sendVoice, ...).
RELAY_KINDS = SUPPORTED_KINDS
RELAY_METHOD = "relayFile"

# Telegram's limit on a button's callback data, in bytes.
MAX_CALLBACK_BYTES = 64
CALLBACK_SEP = ":"


class KeyboardModel(Protocol):
    """A keyboard object that renders itself as Telegram JSON (aiogram's keyboard types)."""

    def model_dump(self, *, mode: str, exclude_none: bool) -> dict[str, Any]:
        """The object as Telegram JSON."""
        ...


Markup = KeyboardModel | dict[str, Any]


def markup_json(markup: Markup | None) -> dict[str, Any] | None:
    """Telegram JSON of a keyboard (a plain dict is taken as it is)."""
    if markup is None or isinstance(markup, dict):
        return markup
    return markup.model_dump(mode="json", exclude_none=True)


def buttons(rows: Sequence[Sequence[tuple[str, str]]]) -> dict[str, Any]:
    """An inline keyboard as Telegram JSON: rows of ``(label, callback data)``."""
    return {
        "inline_keyboard": [
            [{"text": text, "callback_data": data} for text, data in row] for row in rows
        ]
    }


Scalar = str | int | float | bool | Decimal | Fraction | Enum | UUID | None


class Callback:
    """The callback data of one kind of button: a prefix and ordered fields, packed as
    ``prefix:value:value…`` exactly as aiogram's ``CallbackData.pack`` does, so the handler's
    typed filter with the same prefix and fields unpacks it."""

    def __init__(self, prefix: str, *fields: str, **defaults: Scalar) -> None:
        if not prefix or CALLBACK_SEP in prefix:
            raise ValueError(f"bad callback prefix {prefix!r}")
        unknown = set(defaults) - set(fields)
        if unknown:
            raise ValueError(f"defaults for no field: {sorted(unknown)}")
        self.prefix = prefix
        self.fields = fields
        self.defaults = dict(defaults)

    def __repr__(self) -> str:
        return f"Callback({self.prefix!r}, {', '.join(map(repr, self.fields))})"

    def pack(self, **values: Scalar) -> str:
        """The button's callback data; ``ValueError`` when a value holds the separator or
        the result is longer than Telegram allows."""
        unknown = set(values) - set(self.fields)
        if unknown:
            raise TypeError(f"{self.prefix}: unknown fields {sorted(unknown)}")
        parts = [self.prefix]
        for name in self.fields:
            if name in values:
                value = values[name]
            elif name in self.defaults:
                value = self.defaults[name]
            else:
                raise TypeError(f"{self.prefix}: missing field {name!r}")
            encoded = _encode(value)
            if CALLBACK_SEP in encoded:
                raise ValueError(f"{self.prefix}: {name}={encoded!r} holds {CALLBACK_SEP!r}")
            parts.append(encoded)
        data = CALLBACK_SEP.join(parts)
        if len(data.encode()) > MAX_CALLBACK_BYTES:
            raise ValueError(f"{self.prefix}: callback data longer than {MAX_CALLBACK_BYTES} B")
        return data


def _encode(value: Scalar) -> str:
    # aiogram's CallbackData._encode_value, value for value.
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, UUID):
        return value.hex
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


# Buttons on messages that flows and the scheduler send (the handlers' filters of the same
# prefix: handlers.doctor.care.AlertCB, handlers.patient.doses.DoseCB / CareCB,
# handlers.patient.checkins.CheckinCB, handlers.patient.caregivers.CgOfferCB / CgStopCB).
ALERT_CB = Callback("ca", "action", "alert")  # ca:ack:<alert id>
DOSE_CB = Callback("dz", "a", "d", "v", "m", m=0)  # a reminder: t|s|k|e, dose, version, minutes
DOSE_CARE_CB = Callback("dc", "a", "d")  # a caregiver on an escalation: checked|took, dose
CHECKIN_CB = Callback("ci", "action", "checkin", "q", "value", value="")
CAREGIVER_OFFER_CB = Callback("cgo", "action", "token")  # a(ccept) | d(ecline), invitation
CAREGIVER_STOP_CB = Callback("cgs", "id")  # the caregiver stops (caregiver row id)


class Replier:
    """Queues Bot API calls for one bot, addressed to ``chat_id`` by default."""

    def __init__(self, uow: UnitOfWork, bot: str, chat_id: int | None) -> None:
        self._uow = uow
        self.bot = bot
        self.chat_id = chat_id
        # "Is this an emergency?" goes once per update, however many handlers would ask it.
        self.safety_asked = False

    def _chat(self, chat_id: int | None) -> int:
        target = chat_id if chat_id is not None else self.chat_id
        if target is None:
            raise ValueError("this update has no chat to reply to")
        return target

    async def call(
        self, method: str, params: dict[str, Any], *, chat_id: int, priority: int
    ) -> int:
        """Queue any Bot API method; returns the outbox row's id (its sent message can be
        found by it later, e.g. to edit it)."""
        queued = await self._uow.outbox.enqueue(
            self.bot, chat_id, method, params, priority=priority
        )
        return queued.id

    async def text(
        self,
        text: str,
        markup: Markup | None = None,
        *,
        chat_id: int | None = None,
        protect: bool = False,
        silent: bool = False,
        priority: int = PRIORITY_REPLY,
    ) -> int:
        """Send an HTML message (placeholder values were escaped by the translator);
        ``silent``: it arrives without a sound (quiet hours)."""
        target = self._chat(chat_id)
        params: dict[str, Any] = {"chat_id": target, "text": text, "parse_mode": "HTML"}
        if markup is not None:
            params["reply_markup"] = markup_json(markup)
        if protect:
            params["protect_content"] = True
        if silent:
            params["disable_notification"] = True
        return await self.call("sendMessage", params, chat_id=target, priority=priority)

    async def edit_markup(
        self, message_id: int, markup: Markup | None, *, chat_id: int | None = None
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
        markup: Markup | None = None,
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

    async def photo(
        self,
        filename: str,
        data: bytes,
        caption: str,
        *,
        chat_id: int | None = None,
        protect: bool = True,
        priority: int = PRIORITY_REPLY,
        markup: Markup | None = None,
    ) -> None:
        """Send an image (e.g. a chart) with an HTML caption (and buttons under it);
        protected by default, like every clinical document."""
        target = self._chat(chat_id)
        params: dict[str, Any] = {
            "chat_id": target,
            "photo": {"filename": filename, "data_b64": base64.b64encode(data).decode()},
            "caption": caption,
            "parse_mode": "HTML",
            "protect_content": protect,
        }
        if markup is not None:
            params["reply_markup"] = markup_json(markup)
        await self.call("sendPhoto", params, chat_id=target, priority=priority)

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
