"""Bot API methods of the emulator: parameter parsing, validation and effects.

Each method takes the calling bot and its parameters and returns the
``result`` Telegram would return, or raises ApiError with Telegram's text.
"""

from __future__ import annotations

import json
import mimetypes
import re
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.sandbox.emulator_html import ParseEntitiesError, parse_html
from bot.sandbox.emulator_state import (
    STARS,
    ApiError,
    BotRecord,
    ChatState,
    InvoiceRecord,
    SimUser,
    StoredFile,
    StoredMessage,
    bad_request,
    inline_keyboard_of,
    message_to_api,
)
from storage import clock as one_clock

if TYPE_CHECKING:
    from bot.sandbox.emulator import BotApiEmulator

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_DOWNLOAD = 20 * 1024 * 1024  # Telegram's getFile limit
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
CALLBACK_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
MAX_INVOICE_TITLE = 32
MAX_INVOICE_DESCRIPTION = 255
MAX_INVOICE_PAYLOAD = 128  # bytes
MAX_PRE_CHECKOUT_ERROR = 255
WRONG_FILE_ID = "wrong file identifier/HTTP URL specified"


@dataclass
class Upload:
    """A file that arrived in a multipart request."""

    filename: str
    data: bytes
    content_type: str | None


class Params:
    """Request parameters from the query string and any body, with Telegram's coercions.

    Form and query values arrive as strings (aiogram JSON-encodes objects and
    numbers into form fields), JSON bodies as typed values; getters accept both.
    """

    def __init__(self, values: dict[str, Any], files: dict[str, Upload] | None = None) -> None:
        """Wrap already-decoded values and uploaded files."""
        self.values = values
        self.files = files or {}

    def has(self, name: str) -> bool:
        """Is the parameter present and non-empty?"""
        v = self.values.get(name)
        return v is not None and v != ""

    def raw(self, name: str) -> Any:
        """The value as received."""
        return self.values.get(name)

    def get_str(self, name: str, default: str | None = None) -> str | None:
        """A string parameter."""
        v = self.values.get(name)
        if v is None:
            return default
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    def get_int(self, name: str, default: int | None = None) -> int | None:
        """An integer parameter; a malformed one is a 400."""
        v = self.values.get(name)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            raise bad_request(f"invalid {name} specified")
        if isinstance(v, int):
            return v
        try:
            return int(str(v).strip())
        except ValueError:
            raise bad_request(f"invalid {name} specified") from None

    def get_bool(self, name: str, default: bool = False) -> bool:
        """A boolean parameter ("true"/"false"/"1"/"0" in forms)."""
        v = self.values.get(name)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return v != 0
        s = str(v).strip().lower()
        if s in ("true", "1", "yes"):
            return True
        if s in ("false", "0", "no"):
            return False
        raise bad_request(f"invalid {name} specified")

    def get_json(self, name: str, error: str) -> Any:
        """An object/array parameter, given as JSON text (forms) or as a value (JSON body)."""
        v = self.values.get(name)
        if v is None or v == "":
            return None
        if isinstance(v, (dict, list)):
            return v
        try:
            return json.loads(str(v))
        except ValueError:
            raise bad_request(error) from None

    def input_file(self, name: str) -> Upload | str | None:
        """An InputFile: an upload (direct or via ``attach://``) or a file_id string."""
        if name in self.files:
            return self.files[name]
        v = self.values.get(name)
        if v is None or v == "":
            return None
        s = str(v)
        if s.startswith("attach://"):
            up = self.files.get(s[len("attach://") :])
            if up is None:
                raise bad_request(f"file {s} is not found in the request")
            return up
        return s


async def parse_params(request: web.Request) -> Params:
    """Collect parameters like the Bot API: query string, JSON, urlencoded or multipart."""
    values: dict[str, Any] = dict(request.query)
    files: dict[str, Upload] = {}
    if request.method == "POST" and request.body_exists:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("JSON object expected")
            values.update(body)
        elif ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            for key, val in form.items():
                if isinstance(val, web.FileField):
                    files[key] = Upload(val.filename, val.file.read(), val.content_type)
                else:
                    values[key] = val
    return Params(values, files)


def format_text(
    text: str | None, parse_mode: str | None, entities: Any, *, caption: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """Apply parse_mode and the length limits; return (plain text, entities)."""
    raw = text or ""
    mode = (parse_mode or "").strip().lower()
    if mode == "html":
        try:
            plain, ents = parse_html(raw)
        except ParseEntitiesError as e:
            raise bad_request(f"can't parse entities: {e}") from None
    elif mode in ("", "none"):
        plain = raw
        ents = [e for e in entities if isinstance(e, dict)] if isinstance(entities, list) else []
    elif mode in ("markdown", "markdownv2"):
        # Markdown modes are accepted but not parsed (see docs/EMULATOR.md).
        plain, ents = raw, []
    else:
        raise bad_request(f"unsupported parse_mode {parse_mode!r}")
    if caption:
        if len(plain) > MAX_CAPTION:
            raise bad_request("message caption is too long")
    else:
        if not plain.strip():
            raise bad_request("message text is empty")
        if len(plain) > MAX_TEXT:
            raise bad_request("message is too long")
    return plain, ents


def _button(raw: Any, inline: bool) -> dict[str, Any]:
    if isinstance(raw, str) and not inline:
        raw = {"text": raw}
    if not isinstance(raw, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    text = raw.get("text")
    if not isinstance(text, str) or not text:
        raise bad_request("BUTTON_TEXT_INVALID" if inline else "keyboard button text is empty")
    if not inline:
        return dict(raw)
    actions = [
        k
        for k in (
            "url",
            "callback_data",
            "web_app",
            "login_url",
            "switch_inline_query",
            "switch_inline_query_current_chat",
            "switch_inline_query_chosen_chat",
            "copy_text",
            "callback_game",
            "pay",
        )
        if k in raw
    ]
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in raw:
        data = raw["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in raw and (not isinstance(raw["url"], str) or not raw["url"]):
        raise bad_request("BUTTON_URL_INVALID")
    return dict(raw)


def normalize_markup(params: Params) -> dict[str, Any] | None:
    """Validate reply_markup; return it normalized (string buttons become objects)."""
    markup = params.get_json("reply_markup", "can't parse reply keyboard markup JSON object")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("object expected as reply markup")
    for key, inline in (("inline_keyboard", True), ("keyboard", False)):
        if key not in markup:
            continue
        rows = markup[key]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request("can't parse reply keyboard markup JSON object")
        out = dict(markup)
        out[key] = [[_button(b, inline) for b in row] for row in rows]
        if inline and sum(len(r) for r in out[key]) > 100:
            raise bad_request("reply markup is too long")
        return out
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return dict(markup)
    raise bad_request("can't parse reply keyboard markup JSON object")


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, GIF or JPEG; (0, 0) when it is none of those."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + seg_len
    return 0, 0


Handler = Callable[[BotRecord, Params], Awaitable[Any]]


class BotApiMethods:
    """The implemented Bot API methods, bound to one emulator."""

    def __init__(self, emu: BotApiEmulator) -> None:
        """Build the method table (keys are lower-case, like Telegram's matching)."""
        self.emu = emu
        table: dict[str, Handler] = {
            "getMe": self.get_me,
            "getUpdates": self.get_updates,
            "setWebhook": self.set_webhook,
            "deleteWebhook": self.delete_webhook,
            "getWebhookInfo": self.get_webhook_info,
            "sendMessage": self.send_message,
            "sendPhoto": self.send_photo,
            "sendDocument": self.send_document,
            "sendVoice": self.send_voice,
            "sendAudio": self.send_audio,
            "sendVideo": self.send_video,
            "sendChatAction": self.send_chat_action,
            "editMessageText": self.edit_message_text,
            "editMessageCaption": self.edit_message_caption,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "deleteMessage": self.delete_message,
            "answerCallbackQuery": self.answer_callback_query,
            "sendInvoice": self.send_invoice,
            "answerPreCheckoutQuery": self.answer_pre_checkout_query,
            "refundStarPayment": self.refund_star_payment,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteMyCommands": self.delete_my_commands,
            "getFile": self.get_file,
            "getChat": self.get_chat,
            "close": self.close,
            "logOut": self.log_out,
        }
        self.names = {name.lower(): name for name in table}
        self.handlers = {name.lower(): h for name, h in table.items()}

    # --- identity and updates -------------------------------------------------

    async def get_me(self, bot: BotRecord, p: Params) -> Any:
        """getMe."""
        return bot.to_api()

    async def get_updates(self, bot: BotRecord, p: Params) -> Any:
        """getUpdates with offset confirmation and long polling."""
        return await self.emu.get_updates(
            bot,
            offset=p.get_int("offset", 0) or 0,
            limit=p.get_int("limit", 100) or 100,
            poll_s=p.get_int("timeout", 0) or 0,
            allowed_updates=p.get_json("allowed_updates", "can't parse allowed_updates"),
        )

    async def set_webhook(self, bot: BotRecord, p: Params) -> Any:
        """setWebhook (loopback URLs only: the emulator never leaves the machine)."""
        url = p.get_str("url") or ""
        if p.get_bool("drop_pending_updates"):
            self.emu.drop_pending(bot)
        allowed = p.get_json("allowed_updates", "can't parse allowed_updates")
        if allowed is not None:
            self.emu.set_allowed_updates(bot, allowed)
        if not url:
            await self.emu.remove_webhook(bot)
            return True
        secret = p.get_str("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        self.emu.install_webhook(bot, url, secret, p.get_int("max_connections", 40) or 40)
        return True

    async def delete_webhook(self, bot: BotRecord, p: Params) -> Any:
        """deleteWebhook."""
        if p.get_bool("drop_pending_updates"):
            self.emu.drop_pending(bot)
        await self.emu.remove_webhook(bot)
        return True

    async def get_webhook_info(self, bot: BotRecord, p: Params) -> Any:
        """getWebhookInfo."""
        info: dict[str, Any] = {
            "url": bot.webhook.url if bot.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.pending),
        }
        if bot.webhook is not None:
            info["max_connections"] = bot.webhook.max_connections
            if bot.webhook.last_error_date is not None:
                info["last_error_date"] = bot.webhook.last_error_date
                info["last_error_message"] = bot.webhook.last_error_message
        if bot.allowed_updates:
            info["allowed_updates"] = list(bot.allowed_updates)
        return info

    # --- sending -----------------------------------------------------------------

    def _reply_to(self, chat: ChatState, p: Params) -> int | None:
        params = p.get_json("reply_parameters", "can't parse reply parameters JSON object")
        allow = p.get_bool("allow_sending_without_reply")
        mid: int | None
        if isinstance(params, dict):
            mid = params.get("message_id") if isinstance(params.get("message_id"), int) else None
            allow = bool(params.get("allow_sending_without_reply", allow))
            if mid is None:
                raise bad_request("message to be replied not found")
        else:
            mid = p.get_int("reply_to_message_id")
        if mid is None:
            return None
        target = chat.messages.get(mid)
        if target is None or target.deleted:
            if allow:
                return None
            raise bad_request("message to be replied not found")
        return mid

    async def send_message(self, bot: BotRecord, p: Params) -> Any:
        """sendMessage."""
        chat, user = self.emu.chat_for_bot(bot, p.raw("chat_id"), sending=True)
        text, ents = format_text(
            p.get_str("text"),
            p.get_str("parse_mode"),
            p.get_json("entities", "can't parse entities JSON object"),
        )
        markup = normalize_markup(p)
        msg = StoredMessage(
            message_id=0,
            sender="bot",
            date=int(one_clock.now().timestamp()),
            text=text,
            entities=ents or None,
            reply_markup=markup,
            protect_content=p.get_bool("protect_content"),
            reply_to=self._reply_to(chat, p),
        )
        self.emu.add_bot_message(bot, chat, msg)
        return message_to_api(msg, bot, user, chat)

    async def _send_media(self, bot: BotRecord, p: Params, kind: str) -> Any:
        chat, user = self.emu.chat_for_bot(bot, p.raw("chat_id"), sending=True)
        given = p.input_file(kind)
        if given is None:
            raise bad_request(f"there is no {kind} in the request")
        if isinstance(given, str):
            stored = self.emu.files.get(given)
            if stored is None or stored.bot_id != bot.id:
                raise bad_request(WRONG_FILE_ID)
            if stored.kind != kind:
                raise bad_request("type of file mismatch")
        else:
            if not given.data:
                raise bad_request("file must be non-empty")
            stored = self.emu.store_file(
                bot.id,
                kind,
                given.data,
                given.filename,
                given.content_type,
                duration=p.get_int("duration", 0) or 0,
            )
        caption: str | None = None
        cap_ents: list[dict[str, Any]] = []
        if p.has("caption"):
            caption, cap_ents = format_text(
                p.get_str("caption"),
                p.get_str("parse_mode"),
                p.get_json("caption_entities", "can't parse caption entities JSON object"),
                caption=True,
            )
        msg = StoredMessage(
            message_id=0,
            sender="bot",
            date=int(one_clock.now().timestamp()),
            caption=caption,
            caption_entities=cap_ents or None,
            media_kind=kind,
            media=stored,
            reply_markup=normalize_markup(p),
            protect_content=p.get_bool("protect_content"),
            reply_to=self._reply_to(chat, p),
        )
        self.emu.add_bot_message(bot, chat, msg)
        return message_to_api(msg, bot, user, chat)

    async def send_photo(self, bot: BotRecord, p: Params) -> Any:
        """sendPhoto."""
        return await self._send_media(bot, p, "photo")

    async def send_document(self, bot: BotRecord, p: Params) -> Any:
        """sendDocument."""
        return await self._send_media(bot, p, "document")

    async def send_voice(self, bot: BotRecord, p: Params) -> Any:
        """sendVoice."""
        return await self._send_media(bot, p, "voice")

    async def send_audio(self, bot: BotRecord, p: Params) -> Any:
        """sendAudio (music and other audio files)."""
        return await self._send_media(bot, p, "audio")

    async def send_video(self, bot: BotRecord, p: Params) -> Any:
        """sendVideo."""
        return await self._send_media(bot, p, "video")

    async def send_chat_action(self, bot: BotRecord, p: Params) -> Any:
        """sendChatAction (counted in stats, no visible effect)."""
        self.emu.chat_for_bot(bot, p.raw("chat_id"), sending=True)
        if (p.get_str("action") or "") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    # --- editing -----------------------------------------------------------------

    def _target(
        self, bot: BotRecord, p: Params, verb: str
    ) -> tuple[ChatState, SimUser, StoredMessage]:
        if p.has("inline_message_id"):
            raise bad_request("inline messages are not supported by the emulator")
        chat, user = self.emu.chat_for_bot(bot, p.raw("chat_id"), sending=False)
        mid = p.get_int("message_id")
        if mid is None:
            raise bad_request("message identifier is not specified")
        msg = chat.messages.get(mid)
        if msg is None or msg.deleted:
            raise bad_request(f"message to {verb} not found")
        if verb == "edit" and msg.sender != "bot":
            raise bad_request("message can't be edited")
        return chat, user, msg

    def _edit_markup(self, p: Params) -> dict[str, Any] | None:
        markup = normalize_markup(p)
        if markup is not None and "inline_keyboard" not in markup:
            raise bad_request("inline keyboard expected")
        return markup

    async def edit_message_text(self, bot: BotRecord, p: Params) -> Any:
        """editMessageText (without reply_markup the inline keyboard goes, like Telegram)."""
        chat, user, msg = self._target(bot, p, "edit")
        if msg.text is None:
            raise bad_request("there is no text in the message to edit")
        text, ents = format_text(
            p.get_str("text"),
            p.get_str("parse_mode"),
            p.get_json("entities", "can't parse entities JSON object"),
        )
        markup = self._edit_markup(p)
        if (
            text == msg.text
            and ents == (msg.entities or [])
            and markup == inline_keyboard_of(msg.reply_markup)
        ):
            raise bad_request(NOT_MODIFIED)
        msg.text, msg.entities, msg.reply_markup = text, ents or None, markup
        self.emu.mark_edited(bot, chat, msg)
        return message_to_api(msg, bot, user, chat)

    async def edit_message_caption(self, bot: BotRecord, p: Params) -> Any:
        """editMessageCaption."""
        chat, user, msg = self._target(bot, p, "edit")
        if msg.media is None:
            raise bad_request("there is no caption in the message to edit")
        caption, ents = format_text(
            p.get_str("caption"),
            p.get_str("parse_mode"),
            p.get_json("caption_entities", "can't parse caption entities JSON object"),
            caption=True,
        )
        markup = self._edit_markup(p)
        if (
            caption == (msg.caption or "")
            and ents == (msg.caption_entities or [])
            and markup == inline_keyboard_of(msg.reply_markup)
        ):
            raise bad_request(NOT_MODIFIED)
        msg.caption, msg.caption_entities, msg.reply_markup = caption or None, ents or None, markup
        self.emu.mark_edited(bot, chat, msg)
        return message_to_api(msg, bot, user, chat)

    async def edit_message_reply_markup(self, bot: BotRecord, p: Params) -> Any:
        """editMessageReplyMarkup."""
        chat, user, msg = self._target(bot, p, "edit")
        markup = self._edit_markup(p)
        if markup == inline_keyboard_of(msg.reply_markup):
            raise bad_request(NOT_MODIFIED)
        msg.reply_markup = markup
        self.emu.mark_edited(bot, chat, msg)
        return message_to_api(msg, bot, user, chat)

    async def delete_message(self, bot: BotRecord, p: Params) -> Any:
        """deleteMessage (both sides' messages may go in a private chat)."""
        chat, _user, msg = self._target(bot, p, "delete")
        self.emu.mark_deleted(chat, msg)
        return True

    async def answer_callback_query(self, bot: BotRecord, p: Params) -> Any:
        """answerCallbackQuery; unknown, answered or expired ids are refused."""
        qid = p.get_str("callback_query_id") or ""
        text = p.get_str("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.emu.answer_callback(bot, qid, text, p.get_bool("show_alert"), p.get_str("url"))
        return True

    # --- payments ------------------------------------------------------------------

    @staticmethod
    def _prices(p: Params) -> list[dict[str, Any]]:
        """LabeledPrice list; every amount a positive integer in the smallest unit."""
        prices = p.get_json("prices", "can't parse prices JSON object")
        if not isinstance(prices, list) or not prices:
            raise bad_request("can't parse prices JSON object")
        clean: list[dict[str, Any]] = []
        for price in prices:
            if not isinstance(price, dict) or not isinstance(price.get("label"), str):
                raise bad_request("can't parse LabeledPrice JSON object")
            amount = price.get("amount")
            if isinstance(amount, str) and amount.strip().lstrip("-").isdigit():
                amount = int(amount)  # form-encoded JSON may carry numbers as strings
            # Floats (1.5 dollars) are the classic mistake: amounts are integers in cents.
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
            if not price["label"].strip():
                raise bad_request("LabeledPrice label must be non-empty")
            clean.append({"label": price["label"], "amount": amount})
        return clean

    async def send_invoice(self, bot: BotRecord, p: Params) -> Any:
        """sendInvoice: Stars (XTR, no provider token, one price) or a provider payment."""
        chat, user = self.emu.chat_for_bot(bot, p.raw("chat_id"), sending=True)
        title = p.get_str("title") or ""
        if not title.strip() or len(title) > MAX_INVOICE_TITLE:
            raise bad_request("invoice title must be 1-32 characters long")
        description = p.get_str("description") or ""
        if not description.strip() or len(description) > MAX_INVOICE_DESCRIPTION:
            raise bad_request("invoice description must be 1-255 characters long")
        payload = p.get_str("payload") or ""
        if not 1 <= len(payload.encode("utf-8")) <= MAX_INVOICE_PAYLOAD:
            raise bad_request("INVOICE_PAYLOAD_INVALID")
        currency = (p.get_str("currency") or "").strip()
        if not _CURRENCY_RE.fullmatch(currency):
            raise bad_request("CURRENCY_INVALID")
        prices = self._prices(p)
        token = p.get_str("provider_token") or ""
        if currency == STARS:
            if token:
                # digital goods are Stars only, and Stars never go through a provider
                raise bad_request("PAYMENT_PROVIDER_INVALID")
            if len(prices) != 1:
                raise bad_request("exactly one price must be specified for payments in Stars")
            if p.has("max_tip_amount") or p.has("suggested_tip_amounts"):
                raise bad_request("tips are not supported for payments in Stars")
        elif not token.strip():
            raise bad_request("PAYMENT_PROVIDER_INVALID")
        markup = normalize_markup(p)
        if markup is not None:
            rows = markup.get("inline_keyboard")
            if rows is None:
                raise bad_request("inline keyboard expected")
            # Telegram insists that the invoice's first button is its Pay button.
            if not rows or not rows[0] or not rows[0][0].get("pay"):
                raise bad_request("REPLY_MARKUP_BUY_EMPTY")
        invoice = InvoiceRecord(
            title=title,
            description=description,
            payload=payload,
            currency=currency,
            prices=prices,
            provider_token=token,
            start_parameter=p.get_str("start_parameter") or "",
            photo_url=p.get_str("photo_url") or None,
            need_name=p.get_bool("need_name"),
            need_phone_number=p.get_bool("need_phone_number"),
            need_email=p.get_bool("need_email"),
            need_shipping_address=p.get_bool("need_shipping_address"),
        )
        msg = StoredMessage(
            message_id=0,
            sender="bot",
            date=int(one_clock.now().timestamp()),
            reply_markup=markup,
            protect_content=p.get_bool("protect_content"),
            reply_to=self._reply_to(chat, p),
            invoice=invoice,
        )
        self.emu.add_bot_message(bot, chat, msg)
        return message_to_api(msg, bot, user, chat)

    async def answer_pre_checkout_query(self, bot: BotRecord, p: Params) -> Any:
        """answerPreCheckoutQuery: once, before the deadline; error_message when not ok."""
        qid = p.get_str("pre_checkout_query_id") or ""
        if not p.has("ok"):
            raise bad_request('parameter "ok" is required')
        ok = p.get_bool("ok")
        error_message = p.get_str("error_message")
        if not ok:
            if not error_message or not error_message.strip():
                raise bad_request("ERROR_MESSAGE_EMPTY")
            if len(error_message) > MAX_PRE_CHECKOUT_ERROR:
                raise bad_request("error_message is too long")
        self.emu.answer_pre_checkout(bot, qid, ok, None if ok else error_message)
        return True

    async def refund_star_payment(self, bot: BotRecord, p: Params) -> Any:
        """refundStarPayment: refunds a Stars charge of this bot and user, once."""
        user_id = p.get_int("user_id")
        if user_id is None:
            raise bad_request("USER_ID_INVALID")
        charge_id = p.get_str("telegram_payment_charge_id") or ""
        self.emu.refund_star_payment(bot, user_id, charge_id)
        return True

    # --- commands ------------------------------------------------------------------

    def _scope_key(self, p: Params) -> tuple[str, str]:
        scope = p.get_json("scope", "can't parse BotCommandScope JSON object")
        if scope is None:
            name = "default"
        elif isinstance(scope, dict) and isinstance(scope.get("type"), str):
            name = scope["type"]
            if "chat_id" in scope:
                name += f":{scope['chat_id']}"
            if "user_id" in scope:
                name += f":{scope['user_id']}"
        else:
            raise bad_request("can't parse BotCommandScope JSON object")
        return name, p.get_str("language_code") or ""

    async def set_my_commands(self, bot: BotRecord, p: Params) -> Any:
        """setMyCommands with Telegram's command and description checks."""
        commands = p.get_json("commands", "can't parse commands JSON object")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        clean: list[dict[str, str]] = []
        for c in commands:
            if not isinstance(c, dict):
                raise bad_request("can't parse BotCommand JSON object")
            cmd, desc = c.get("command"), c.get("description")
            if not isinstance(cmd, str) or not _COMMAND_RE.fullmatch(cmd.lower().lstrip("/")):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(desc, str) or not 1 <= len(desc) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": cmd.lower().lstrip("/"), "description": desc})
        key = self._scope_key(p)
        if clean:
            bot.commands[key] = clean
        else:
            bot.commands.pop(key, None)
        return True

    async def get_my_commands(self, bot: BotRecord, p: Params) -> Any:
        """getMyCommands."""
        return list(bot.commands.get(self._scope_key(p), []))

    async def delete_my_commands(self, bot: BotRecord, p: Params) -> Any:
        """deleteMyCommands."""
        bot.commands.pop(self._scope_key(p), None)
        return True

    # --- files and misc ------------------------------------------------------------

    async def get_file(self, bot: BotRecord, p: Params) -> Any:
        """getFile: only the bot's own file ids work."""
        stored: StoredFile | None = self.emu.files.get(p.get_str("file_id") or "")
        if stored is None or stored.bot_id != bot.id:
            raise bad_request(WRONG_FILE_ID)
        if stored.size > MAX_DOWNLOAD:
            raise bad_request("file is too big")
        return stored.file_api()

    async def get_chat(self, bot: BotRecord, p: Params) -> Any:
        """getChat for a private chat the bot knows."""
        _chat, user = self.emu.chat_for_bot(bot, p.raw("chat_id"), sending=False)
        info = user.chat_api()
        info.update({"accent_color_id": 0, "max_reaction_count": 11})
        return info

    async def close(self, bot: BotRecord, p: Params) -> Any:
        """close: nothing to release in the emulator."""
        return True

    async def log_out(self, bot: BotRecord, p: Params) -> Any:
        """logOut: accepted, the bot stays usable (no cloud server to move off)."""
        return True


def guess_mime(filename: str, content_type: str | None, kind: str) -> str | None:
    """MIME type from the upload's header or its file name."""
    if content_type and content_type != "application/octet-stream":
        return content_type
    guessed = mimetypes.guess_type(filename)[0]
    if guessed:
        return guessed
    defaults = {"photo": "image/jpeg", "voice": "audio/ogg", "audio": "audio/mpeg"}
    return {**defaults, "video": "video/mp4"}.get(kind, content_type)


__all__ = ["ApiError", "BotApiMethods", "Params", "Upload", "parse_params"]
