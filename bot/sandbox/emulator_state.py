"""In-memory state of the Bot API emulator: users, bots, chats, messages, files.

Also renders that state in two shapes: Telegram's JSON objects for bots and
the flatter "client view" for simulated users and the sandbox page.
"""

from __future__ import annotations

import asyncio
import pathlib
from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": code, ...}``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        """Build an error with Telegram's code and full description text."""
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram would send."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(what: str) -> ApiError:
    """400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {what}")


class ClientApiError(Exception):
    """A client-API error answer: ``{"ok": false, "error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        """``status`` is 400 for malformed input and 404 for unknown users or bots."""
        super().__init__(message)
        self.message = message
        self.status = status


class Pulse:
    """A broadcast wake-up: waiters grab ``event`` and the next ``fire`` sets it.

    Grabbing the event before checking state, with no await in between, makes
    lost wake-ups impossible on a single-threaded event loop.
    """

    def __init__(self) -> None:
        """Start with a fresh, unset event."""
        self.event = asyncio.Event()

    def fire(self) -> None:
        """Wake every current waiter; later waiters get a new event."""
        self.event.set()
        self.event = asyncio.Event()

    async def wait(self, event: asyncio.Event, wait_s: float) -> bool:
        """Wait on a previously grabbed event; True if woken, False on timeout."""
        if wait_s <= 0:
            return event.is_set()
        try:
            await asyncio.wait_for(event.wait(), wait_s)
        except TimeoutError:
            return False
        return True


@dataclass
class SimUser:
    """A simulated Telegram user."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    phone_number: str | None = None
    is_premium: bool = False

    def to_api(self) -> dict[str, Any]:
        """Telegram User object."""
        d: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            d["last_name"] = self.last_name
        if self.username:
            d["username"] = self.username
        if self.language_code:
            d["language_code"] = self.language_code
        if self.is_premium:
            d["is_premium"] = True
        return d

    def chat_api(self) -> dict[str, Any]:
        """Telegram Chat object of the private chat with this user."""
        d: dict[str, Any] = {"id": self.id, "first_name": self.first_name, "type": "private"}
        if self.last_name:
            d["last_name"] = self.last_name
        if self.username:
            d["username"] = self.username
        return d

    def to_client(self) -> dict[str, Any]:
        """Client-API view: the User object plus the fictional phone number."""
        d = self.to_api()
        d["phone_number"] = self.phone_number
        return d


@dataclass
class StoredFile:
    """A file known to the emulator; ``file_id`` is valid only for ``bot_id``."""

    file_id: str
    file_unique_id: str
    bot_id: int
    kind: str  # photo | document | voice | audio | video
    file_path: str
    size: int
    mime_type: str | None = None
    file_name: str | None = None
    width: int = 0
    height: int = 0
    duration: int = 0
    data: bytes | None = None  # None when stored on disk at ``disk_path``
    disk_path: pathlib.Path | None = None

    def read(self) -> bytes:
        """The file's bytes, from memory or disk."""
        if self.data is not None:
            return self.data
        assert self.disk_path is not None  # one of the two is always set
        return self.disk_path.read_bytes()

    def to_api(self) -> dict[str, Any]:
        """PhotoSize, Document, Voice, Audio or Video object, depending on ``kind``."""
        d: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
        }
        if self.kind == "photo":
            d["width"] = self.width
            d["height"] = self.height
        elif self.kind == "voice":
            d["duration"] = self.duration
            d["mime_type"] = self.mime_type or "audio/ogg"
        else:
            if self.kind in ("audio", "video"):
                d["duration"] = self.duration
            if self.kind == "video":
                d["width"], d["height"] = self.width, self.height
            if self.file_name:
                d["file_name"] = self.file_name
            if self.mime_type:
                d["mime_type"] = self.mime_type
        return d

    def file_api(self) -> dict[str, Any]:
        """Telegram File object (getFile)."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "file_path": self.file_path,
        }

    def to_client(self) -> dict[str, Any]:
        """Client view with a download URL under /client/files/."""
        d = self.to_api()
        d["file_name"] = self.file_name
        d["mime_type"] = self.mime_type
        d["download_url"] = f"/client/files/{self.file_id}"
        return d


STARS = "XTR"  # Telegram Stars: the currency of digital goods, no provider token


@dataclass
class InvoiceRecord:
    """What sendInvoice asked for, plus whether the invoice has been paid."""

    title: str
    description: str
    payload: str
    currency: str
    prices: list[dict[str, Any]]  # LabeledPrice objects: {label, amount}
    provider_token: str = ""
    start_parameter: str = ""
    photo_url: str | None = None
    need_name: bool = False
    need_phone_number: bool = False
    need_email: bool = False
    need_shipping_address: bool = False
    status: str = "unpaid"  # unpaid | paid | refunded
    charge_id: str | None = None  # telegram_payment_charge_id once paid
    paying: bool = False  # a payment is waiting for the bot's pre-checkout answer

    @property
    def total_amount(self) -> int:
        """The sum of the price parts, in the currency's smallest unit."""
        return sum(int(p["amount"]) for p in self.prices)

    def to_api(self) -> dict[str, Any]:
        """Telegram Invoice object (Message.invoice)."""
        return {
            "title": self.title,
            "description": self.description,
            "start_parameter": self.start_parameter,
            "currency": self.currency,
            "total_amount": self.total_amount,
        }

    def to_client(self) -> dict[str, Any]:
        """Client view: the Invoice object plus prices, photo and payment status."""
        return {
            **self.to_api(),
            "prices": [dict(p) for p in self.prices],
            "photo_url": self.photo_url,
            "need_name": self.need_name,
            "need_phone_number": self.need_phone_number,
            "need_email": self.need_email,
            "need_shipping_address": self.need_shipping_address,
            "status": self.status,
            "telegram_payment_charge_id": self.charge_id,
        }


@dataclass
class PaymentCharge:
    """A completed payment (successful_payment was sent); refundable when in Stars."""

    telegram_payment_charge_id: str
    provider_payment_charge_id: str  # "" for Stars
    bot_id: int
    user_id: int
    message_id: int  # the invoice message
    currency: str
    total_amount: int
    invoice_payload: str
    date: int
    in_stars: bool  # the invoice was in Stars (only those are refundable by the bot)
    status: str = "paid"  # paid | refunded
    refund_date: int | None = None
    deliveries: int = 1  # successful_payment updates queued (2 after a duplicate delivery)

    def to_client(self, bot_username: str) -> dict[str, Any]:
        """Client view (GET /client/payments)."""
        return {
            "telegram_payment_charge_id": self.telegram_payment_charge_id,
            "provider_payment_charge_id": self.provider_payment_charge_id,
            "bot": bot_username,
            "bot_id": self.bot_id,
            "user_id": self.user_id,
            "message_id": self.message_id,
            "currency": self.currency,
            "total_amount": self.total_amount,
            "invoice_payload": self.invoice_payload,
            "date": self.date,
            "status": self.status,
            "refund_date": self.refund_date,
            "deliveries": self.deliveries,
        }


@dataclass
class PreCheckoutRecord:
    """A pre_checkout_query waiting for answerPreCheckoutQuery.

    The future gets ``(ok, error_message)``, or None when the emulator stops.
    """

    query_id: str
    bot_id: int
    user_id: int
    answer: asyncio.Future[tuple[bool, str | None] | None]


@dataclass
class StoredMessage:
    """One message of a private chat, from either side."""

    message_id: int
    sender: str  # "user" | "bot"
    date: int
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    caption: str | None = None
    caption_entities: list[dict[str, Any]] | None = None
    reply_markup: dict[str, Any] | None = None
    protect_content: bool = False
    media_kind: str | None = None  # photo | document | voice | audio | video
    media: StoredFile | None = None
    contact: dict[str, Any] | None = None
    location: dict[str, Any] | None = None
    reply_to: int | None = None
    edit_date: int | None = None
    deleted: bool = False
    seq: int = 0  # seq of the latest change, for ?since= filtering
    invoice: InvoiceRecord | None = None  # sendInvoice
    successful_payment: dict[str, Any] | None = None  # service message after a payment
    refunded_payment: dict[str, Any] | None = None  # service message after refundStarPayment
    payment_for: int | None = None  # the invoice message a payment service message is about


@dataclass
class ChatState:
    """The private chat between one bot and one user."""

    bot_id: int
    user_id: int
    seen: bool = False  # the bot has received something from this chat
    blocked: bool = False
    next_message_id: int = 1
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    callback_answers: list[dict[str, Any]] = field(default_factory=list)
    reply_keyboard: dict[str, Any] | None = None  # the keyboard the user currently sees
    pulse: Pulse = field(default_factory=Pulse)

    def new_message_id(self) -> int:
        """Allocate the next message id of this chat."""
        mid = self.next_message_id
        self.next_message_id += 1
        return mid


@dataclass
class CallbackRecord:
    """A callback query sent to a bot, waiting for answerCallbackQuery."""

    query_id: str
    bot_id: int
    user_id: int
    message_id: int
    data: str
    created: float  # monotonic
    answered: bool = False


@dataclass
class WebhookConfig:
    """What setWebhook configured for a bot."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class BotRecord:
    """A registered bot and its update queue."""

    id: int
    token: str
    username: str
    first_name: str
    next_update_id: int = 1
    pending: list[dict[str, Any]] = field(default_factory=list)
    pulse: Pulse = field(default_factory=Pulse)
    poll_generation: int = 0  # a newer getUpdates terminates older ones (409)
    allowed_updates: list[str] | None = None
    webhook: WebhookConfig | None = None
    webhook_task: asyncio.Task[None] | None = None
    commands: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        """Telegram User object of the bot (getMe)."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def to_client(self) -> dict[str, Any]:
        """Client-API view of the bot, with its default-scope commands."""
        return {
            "id": self.id,
            "username": self.username,
            "first_name": self.first_name,
            "commands": {
                (lang or "default"): cmds
                for (scope, lang), cmds in self.commands.items()
                if scope == "default"
            },
        }


def inline_keyboard_of(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    """Only inline keyboards are echoed back in Message.reply_markup by Telegram."""
    if markup and "inline_keyboard" in markup:
        return {"inline_keyboard": markup["inline_keyboard"]}
    return None


def message_to_api(
    msg: StoredMessage,
    bot: BotRecord,
    user: SimUser,
    chat: ChatState,
    *,
    with_reply: bool = True,
) -> dict[str, Any]:
    """Telegram Message object for ``msg``."""
    d: dict[str, Any] = {"message_id": msg.message_id}
    d["from"] = bot.to_api() if msg.sender == "bot" else user.to_api()
    d["chat"] = user.chat_api()
    d["date"] = msg.date
    if msg.edit_date is not None:
        d["edit_date"] = msg.edit_date
    if with_reply and msg.reply_to is not None:
        replied = chat.messages.get(msg.reply_to)
        if replied is not None and not replied.deleted:
            d["reply_to_message"] = message_to_api(replied, bot, user, chat, with_reply=False)
    if msg.text is not None:
        d["text"] = msg.text
        if msg.entities:
            d["entities"] = msg.entities
    if msg.media is not None:
        if msg.media_kind == "photo":
            d["photo"] = [msg.media.to_api()]
        else:
            d[msg.media_kind or "document"] = msg.media.to_api()
    if msg.caption is not None:
        d["caption"] = msg.caption
        if msg.caption_entities:
            d["caption_entities"] = msg.caption_entities
    if msg.contact is not None:
        d["contact"] = msg.contact
    if msg.location is not None:
        d["location"] = msg.location
    if msg.invoice is not None:
        d["invoice"] = msg.invoice.to_api()
    if msg.successful_payment is not None:
        d["successful_payment"] = dict(msg.successful_payment)
    if msg.refunded_payment is not None:
        d["refunded_payment"] = dict(msg.refunded_payment)
    if msg.protect_content:
        d["has_protected_content"] = True
    kb = inline_keyboard_of(msg.reply_markup)
    if kb is not None:
        d["reply_markup"] = kb
    return d


def message_to_client(msg: StoredMessage) -> dict[str, Any]:
    """The client-API view of a message (both directions)."""
    d: dict[str, Any] = {
        "seq": msg.seq,
        "message_id": msg.message_id,
        "from": msg.sender,
        "date": msg.date,
        "text": msg.text,
        "entities": msg.entities or [],
        "caption": msg.caption,
        "reply_markup": msg.reply_markup,
        "protect_content": msg.protect_content,
        "reply_to_message_id": msg.reply_to,
        "edited": msg.edit_date is not None,
        "deleted": msg.deleted,
    }
    if msg.media is not None and msg.media_kind:
        d[msg.media_kind] = msg.media.to_client()
    if msg.contact is not None:
        d["contact"] = msg.contact
    if msg.location is not None:
        d["location"] = msg.location
    if msg.invoice is not None:
        d["invoice"] = msg.invoice.to_client()
    if msg.successful_payment is not None:
        d["successful_payment"] = dict(msg.successful_payment)
    if msg.refunded_payment is not None:
        d["refunded_payment"] = dict(msg.refunded_payment)
    if msg.payment_for is not None:
        d["invoice_message_id"] = msg.payment_for
    return d


def update_type(update: dict[str, Any]) -> str:
    """The kind of an Update (``message``, ``callback_query``...)."""
    for key in update:
        if key != "update_id":
            return key
    return "unknown"


def command_entities(text: str) -> list[dict[str, Any]]:
    """bot_command entities for every /command at the start of a word, like Telegram."""
    entities: list[dict[str, Any]] = []
    u16 = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "/" and (i == 0 or text[i - 1].isspace()):
            j = i + 1
            while j < len(text) and (text[j].isalnum() or text[j] in "_@"):
                j += 1
            if j > i + 1 and text[i + 1].isalnum():
                length = len(text[i:j].encode("utf-16-le")) // 2
                entities.append({"type": "bot_command", "offset": u16, "length": length})
                u16 += length
                i = j
                continue
        u16 += 2 if ord(ch) > 0xFFFF else 1
        i += 1
    return entities
