"""A Telegram Bot API emulator on aiohttp, for tests, benchmarks and the sandbox.

Real aiogram bots talk to it exactly as to api.telegram.org
(``AiohttpSession(api=TelegramAPIServer.from_base(base_url))``), and simulated
users drive it through a small JSON client API under ``/client/`` (see
bot/sandbox/emulator_client_api.py and docs/EMULATOR.md). Everything stays on
loopback: webhooks may only point at loopback addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import pathlib
import random
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from bot.sandbox.emulator_botapi import BotApiMethods, Params, guess_mime, image_size, parse_params
from bot.sandbox.emulator_client_api import local_only, setup_client_api
from bot.sandbox.emulator_faults import (
    SENDING_METHODS,
    FaultInjector,
    FaultRule,
    RateLimiter,
    RateLimits,
    normalize_methods,
)
from bot.sandbox.emulator_state import (
    STARS,
    ApiError,
    BotRecord,
    CallbackRecord,
    ChatState,
    ClientApiError,
    InvoiceRecord,
    PaymentCharge,
    PreCheckoutRecord,
    SimUser,
    StoredFile,
    StoredMessage,
    WebhookConfig,
    bad_request,
    command_entities,
    message_to_api,
    message_to_client,
    update_type,
)
from storage import clock as one_clock

__all__ = ["BotApiEmulator", "RateLimits", "command_entities"]

log = logging.getLogger(__name__)

FIRST_USER_ID = 700000001
# Telegram leaves these out unless a bot asks for them by name.
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
MAX_UPLOAD = 50 * 1024 * 1024
# Telegram cancels a payment when the bot does not answer the pre-checkout query in 10 s.
# https://core.telegram.org/bots/payments
PRE_CHECKOUT_TIMEOUT_S = 10.0
TEST_CARD = "4242424242424242"  # Stripe's test card: always succeeds
# Stripe's test cards that its test mode declines (generic decline, insufficient funds, ...).
DECLINED_CARDS = {
    "4000000000000002": "Your card was declined.",
    "4000000000009995": "Your card has insufficient funds.",
    "4000000000000069": "Your card has expired.",
}
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _luhn_ok(number: str) -> bool:
    """The card number checksum every card form checks first."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _new_method_stats() -> dict[str, int]:
    return {"calls": 0, "ok": 0, "errors": 0, "429": 0, "5xx": 0, "dropped": 0}


def _update_chat(update: dict[str, Any]) -> int | None:
    """The chat a person wrote from (message, button press, ...), if the update has one."""
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        message = value.get("message")
        chat = value.get("chat") or (message.get("chat") if isinstance(message, dict) else None)
        user = value.get("from")
        for holder in (chat, user):
            if isinstance(holder, dict) and isinstance(holder.get("id"), int):
                return int(holder["id"])
    return None


class BotApiEmulator:
    """Emulated api.telegram.org plus the simulated users' side of every chat."""

    def __init__(
        self,
        *,
        limits: RateLimits | None = None,
        files_dir: pathlib.Path | None = None,
        seed: int | None = None,
        pre_checkout_timeout_s: float = PRE_CHECKOUT_TIMEOUT_S,
    ) -> None:
        """Create an emulator; files live in memory unless ``files_dir`` is given.

        ``seed`` makes ids and fault injection reproducible. ``pre_checkout_timeout_s`` is how
        long a payment waits for answerPreCheckoutQuery (Telegram: 10 s).
        """
        self.limits = limits or RateLimits()
        self.limiter = RateLimiter(self.limits)
        self._in_flight: dict[int, int] = {}
        self._max_in_flight: dict[int, int] = {}
        self.faults = FaultInjector(seed)
        self.files_dir = files_dir
        self._rng = random.Random(seed)  # noqa: S311 - ids for a simulation, not secrets
        self.users: dict[int, SimUser] = {}
        self.bots: dict[int, BotRecord] = {}
        self._bots_by_token: dict[str, BotRecord] = {}
        self._bots_by_username: dict[str, BotRecord] = {}
        self.chats: dict[tuple[int, int], ChatState] = {}
        self.files: dict[str, StoredFile] = {}
        self._files_by_path: dict[tuple[int, str], StoredFile] = {}
        self.callbacks: dict[str, CallbackRecord] = {}
        self.pre_checkouts: dict[str, PreCheckoutRecord] = {}
        self.charges: dict[str, PaymentCharge] = {}
        self.seq = 0
        self._next_user_id = FIRST_USER_ID
        self._next_foreign_id = FIRST_USER_ID + 90_000_000  # contacts of non-simulated people
        self._file_counter = 0
        # Tunables for tests; Telegram's real values are far longer.
        self.callback_query_ttl_s = 15.0
        self.webhook_retry_base_s = 0.05
        self.webhook_retry_max_s = 2.0
        self.webhook_timeout_s = 10.0
        self.pre_checkout_timeout_s = float(pre_checkout_timeout_s)
        self.closing = False
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.methods = BotApiMethods(self)
        # Every route (Bot API, client API, the sandbox page) refuses foreign Host headers and
        # other origins: see emulator_client_api.local_only.
        self.app = web.Application(client_max_size=MAX_UPLOAD, middlewares=[local_only])
        self.app.router.add_route("*", "/bot{token}/{method}", self._handle_bot_api)
        self.app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file_download)
        setup_client_api(self.app, self)
        self.app.on_shutdown.append(self._on_shutdown)

    # --- lifecycle -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port); return the base URL."""
        if not _is_loopback(host):
            raise ValueError("the emulator listens on loopback addresses only")
        self.closing = False
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        addr = self._runner.addresses[0]
        shown = f"[{addr[0]}]" if ":" in str(addr[0]) else str(addr[0])
        self.base_url = f"http://{shown}:{addr[1]}"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving; wakes long polls and streams so shutdown is quick."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        else:
            await self._on_shutdown(self.app)

    async def _on_shutdown(self, app: web.Application) -> None:
        self.closing = True
        for bot in self.bots.values():
            bot.pulse.fire()
            if bot.webhook_task is not None:
                bot.webhook_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await bot.webhook_task
                bot.webhook_task = None
        for chat in self.chats.values():
            chat.pulse.fire()
        for rec in self.pre_checkouts.values():
            if not rec.answer.done():
                rec.answer.set_result(None)  # a waiting payment ends at once, not at its deadline
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- registry ----------------------------------------------------------------

    def register_bot(self, token: str, *, username: str, first_name: str) -> dict[str, Any]:
        """Register a bot; its id is the number before ":" in ``token``."""
        head, sep, secret = token.partition(":")
        if not sep or not head.isdigit() or not secret:
            raise ValueError("a bot token looks like '100001:AAA...'")
        uname = username.lstrip("@")
        if token in self._bots_by_token or uname.lower() in self._bots_by_username:
            raise ValueError(f"bot {uname!r} or its token is already registered")
        bot = BotRecord(id=int(head), token=token, username=uname, first_name=first_name)
        bot.stats = {
            "methods": {},
            "updates_created": 0,
            "updates_delivered": 0,
            "messages_sent": 0,
            "webhook_attempts": 0,
            "webhook_failures": 0,
        }
        self.bots[bot.id] = bot
        self._bots_by_token[token] = bot
        self._bots_by_username[uname.lower()] = bot
        return bot.to_api()

    def add_bot(self, token: str, *, username: str, first_name: str) -> dict[str, Any]:
        """Alias of register_bot, kept because sandbox code calls it by this name."""
        return self.register_bot(token, username=username, first_name=first_name)

    def create_user(
        self,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        phone_number: str | None = None,
    ) -> SimUser:
        """Create a simulated user; ids count up from 700000001."""
        uid = self._next_user_id
        self._next_user_id += 1
        user = SimUser(
            id=uid,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
            # a fictional number in the 555 range unless one is given
            phone_number=phone_number or f"+1555{uid % 10_000_000:07d}",
        )
        self.users[uid] = user
        return user

    def find_bot(self, ref: Any) -> BotRecord:
        """A bot by username (with or without @) or id; ClientApiError 404 otherwise."""
        if isinstance(ref, int) and not isinstance(ref, bool):
            bot = self.bots.get(ref)
        elif isinstance(ref, str) and ref.strip():
            s = ref.strip().lstrip("@")
            bot = self.bots.get(int(s)) if s.isdigit() else self._bots_by_username.get(s.lower())
        else:
            raise ClientApiError("'bot' must be a bot username or id")
        if bot is None:
            raise ClientApiError(f"unknown bot {ref!r}", 404)
        return bot

    def find_user(self, ref: Any) -> SimUser:
        """A simulated user by id; ClientApiError 404 otherwise."""
        try:
            uid = int(ref)
        except (TypeError, ValueError):
            raise ClientApiError("'user_id' must be an integer") from None
        if isinstance(ref, bool):
            raise ClientApiError("'user_id' must be an integer")
        user = self.users.get(uid)
        if user is None:
            raise ClientApiError(f"unknown user {uid}", 404)
        return user

    def chat(self, bot_id: int, user_id: int) -> ChatState:
        """The private chat of a bot and a user (created on first use)."""
        key = (bot_id, user_id)
        chat = self.chats.get(key)
        if chat is None:
            chat = ChatState(bot_id=bot_id, user_id=user_id)
            self.chats[key] = chat
        return chat

    def chat_for_bot(
        self, bot: BotRecord, chat_id: Any, *, sending: bool
    ) -> tuple[ChatState, SimUser]:
        """Resolve a Bot API chat_id; 400 for unknown chats, 403 if blocked and sending."""
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        try:
            cid = int(str(chat_id).strip())
        except ValueError:
            raise bad_request("chat not found") from None
        user = self.users.get(cid)
        chat = self.chats.get((bot.id, cid))
        if user is None or chat is None or not chat.seen:
            raise bad_request("chat not found")
        if sending and chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat, user

    # --- events and messages -------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _event(self, chat: ChatState, kind: str, key: str, payload: dict[str, Any]) -> int:
        """Append a client-visible event to the chat and wake its watchers."""
        seq = self._next_seq()
        chat.events.append({"seq": seq, "kind": kind, key: payload})
        chat.pulse.fire()
        return seq

    def _message_event(self, chat: ChatState, msg: StoredMessage, kind: str) -> None:
        msg.seq = self.seq + 1  # the seq _event is about to allocate
        self._event(chat, kind, "message", message_to_client(msg))

    def add_bot_message(self, bot: BotRecord, chat: ChatState, msg: StoredMessage) -> None:
        """Store a message the bot sent and track the user's reply keyboard."""
        msg.message_id = chat.new_message_id()
        chat.messages[msg.message_id] = msg
        markup = msg.reply_markup or {}
        if "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup.get("remove_keyboard"):
            chat.reply_keyboard = None
        bot.stats["messages_sent"] += 1
        self._message_event(chat, msg, "message")

    def mark_edited(self, bot: BotRecord, chat: ChatState, msg: StoredMessage) -> None:
        """Record an edit (bot side or user side)."""
        msg.edit_date = int(one_clock.now().timestamp())
        self._message_event(chat, msg, "edit")

    def mark_deleted(self, chat: ChatState, msg: StoredMessage) -> None:
        """Record a deletion."""
        msg.deleted = True
        self._message_event(chat, msg, "delete")

    def store_file(
        self,
        bot_id: int,
        kind: str,
        data: bytes,
        filename: str | None,
        content_type: str | None,
        *,
        duration: int = 0,
    ) -> StoredFile:
        """Keep an uploaded file; its file_id works only for ``bot_id``."""
        self._file_counter += 1
        n = self._file_counter
        unique = hashlib.sha256(data).hexdigest()[:16]
        prefix = {"photo": "AgAC", "voice": "AwAC", "audio": "CQAC", "video": "BAAC"}.get(
            kind, "BQAC"
        )
        file_id = f"{prefix}{bot_id:x}x{n:06d}{self._rng.getrandbits(48):012x}"
        name = filename or {"photo": "photo.jpg", "voice": "voice.ogg"}.get(kind, "file.bin")
        ext = pathlib.PurePosixPath(name).suffix
        if not ext[1:].isascii() or not ext[1:].isalnum() or len(ext) > 10:
            ext = ".bin"  # the name is anyone's: only a plain extension reaches paths
        folder = {"photo": "photos", "voice": "voice", "audio": "music", "video": "videos"}.get(
            kind, "documents"
        )
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=f"AQAD{unique}",
            bot_id=bot_id,
            kind=kind,
            file_path=f"{folder}/file_{n}{ext}",
            size=len(data),
            mime_type=guess_mime(name, content_type, kind),
            file_name=name if kind in ("document", "audio", "video") else None,
            duration=max(1, duration) if kind in ("voice", "audio", "video") else 0,
        )
        if kind == "photo":
            w, h = image_size(data)
            stored.width, stored.height = (w, h) if w and h else (512, 512)
        elif kind == "video":
            stored.width, stored.height = 640, 360  # not probed: any plausible frame size
        if self.files_dir is not None:
            self.files_dir.mkdir(parents=True, exist_ok=True)
            path = self.files_dir / f"{file_id}{ext}"
            path.write_bytes(data)
            stored.disk_path = path
        else:
            stored.data = data
        self.files[file_id] = stored
        self._files_by_path[(bot_id, stored.file_path)] = stored
        return stored

    # --- updates -----------------------------------------------------------------

    def enqueue_update(self, bot: BotRecord, update: dict[str, Any]) -> int:
        """Queue an update for the bot (getUpdates or webhook); return its update_id."""
        uid = update.get("update_id")
        if isinstance(uid, int) and not isinstance(uid, bool):
            bot.next_update_id = max(bot.next_update_id, uid + 1)
        else:
            uid = bot.next_update_id
            bot.next_update_id += 1
            update = {"update_id": uid, **{k: v for k, v in update.items() if k != "update_id"}}
        bot.pending.append(update)
        chat = _update_chat(update)
        if chat is not None:
            self.limiter.inbound(bot.id, chat, time.monotonic())
        bot.stats["updates_created"] += 1
        bot.pulse.fire()
        return int(uid)

    def _allowed(self, bot: BotRecord, update: dict[str, Any]) -> bool:
        kind = update_type(update)
        if bot.allowed_updates:
            return kind in bot.allowed_updates
        return kind not in DEFAULT_EXCLUDED_UPDATES

    def _filter_pending(self, bot: BotRecord) -> None:
        """Drop queued updates the bot did not ask for, like Telegram does."""
        if any(not self._allowed(bot, u) for u in bot.pending):
            bot.pending = [u for u in bot.pending if self._allowed(bot, u)]

    def set_allowed_updates(self, bot: BotRecord, allowed: Any) -> None:
        """Remember allowed_updates (an empty list restores the default set)."""
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise bad_request("can't parse allowed_updates")
        bot.allowed_updates = list(allowed) or None

    def drop_pending(self, bot: BotRecord) -> None:
        """Forget every queued update (drop_pending_updates)."""
        bot.pending.clear()

    def _confirm(self, bot: BotRecord, offset: int) -> None:
        if offset > 0:
            keep = [u for u in bot.pending if u["update_id"] >= offset]
            bot.stats["updates_delivered"] += len(bot.pending) - len(keep)
            bot.pending = keep
        elif offset < 0:
            # a negative offset keeps only the last -offset updates
            bot.pending = bot.pending[offset:]

    async def get_updates(
        self, bot: BotRecord, *, offset: int, limit: int, poll_s: int, allowed_updates: Any
    ) -> list[dict[str, Any]]:
        """getUpdates: confirm by offset, then long-poll up to ``poll_s`` seconds."""
        if bot.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        if allowed_updates is not None:
            self.set_allowed_updates(bot, allowed_updates)
        self._confirm(bot, offset)
        limit = min(max(limit, 1), 100)
        # A newer request terminates older ones, so two bot instances notice.
        bot.poll_generation += 1
        generation = bot.poll_generation
        bot.pulse.fire()
        deadline = time.monotonic() + min(max(poll_s, 0), 300)
        while True:
            event = bot.pulse.event
            if generation != bot.poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if bot.webhook is not None:
                raise ApiError(409, "Conflict: terminated by setWebhook request")
            self._filter_pending(bot)
            left = deadline - time.monotonic()
            if bot.pending or self.closing or left <= 0:
                return [dict(u) for u in bot.pending[:limit]]
            await bot.pulse.wait(event, left)

    # --- webhooks ------------------------------------------------------------------

    def install_webhook(self, bot: BotRecord, url: str, secret: str | None, max_conn: int) -> None:
        """Set the webhook and start pushing updates to it."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not _is_loopback(parts.hostname):
            raise bad_request(
                "bad webhook: the emulator delivers webhooks to http(s) loopback URLs only"
            )
        bot.webhook = WebhookConfig(url=url, secret_token=secret, max_connections=max_conn)
        # a running delivery loop picks up the new config on its next round
        if bot.webhook_task is None or bot.webhook_task.done():
            bot.webhook_task = asyncio.get_running_loop().create_task(self._webhook_loop(bot))
        bot.pulse.fire()

    async def remove_webhook(self, bot: BotRecord) -> None:
        """Remove the webhook and stop its delivery task."""
        bot.webhook = None
        task, bot.webhook_task = bot.webhook_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        bot.pulse.fire()

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def _webhook_loop(self, bot: BotRecord) -> None:
        """Push queued updates one at a time, in order, retrying with backoff until 200."""
        backoff = self.webhook_retry_base_s
        while bot.webhook is not None and not self.closing:
            event = bot.pulse.event
            self._filter_pending(bot)
            if not bot.pending:
                await bot.pulse.wait(event, 30.0)
                continue
            cfg = bot.webhook
            update = bot.pending[0]
            bot.stats["webhook_attempts"] += 1
            error = await self._post_update(bot, cfg, update)
            if bot.webhook is not cfg:
                continue  # reconfigured meanwhile; start over with the new URL
            if error is None:
                if bot.pending and bot.pending[0] is update:
                    bot.pending.pop(0)
                    bot.stats["updates_delivered"] += 1
                backoff = self.webhook_retry_base_s
                continue
            bot.stats["webhook_failures"] += 1
            cfg.last_error_date = int(one_clock.now().timestamp())
            cfg.last_error_message = error
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.webhook_retry_max_s)

    async def _post_update(
        self, bot: BotRecord, cfg: WebhookConfig, update: dict[str, Any]
    ) -> str | None:
        """One delivery attempt; None on success, else Telegram-style error text."""
        headers = {"Content-Type": "application/json"}
        if cfg.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = cfg.secret_token
        try:
            async with self._http_session().post(
                cfg.url,
                data=json.dumps(update),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout_s),
                allow_redirects=False,
            ) as resp:
                if resp.status != 200:
                    return f"Wrong response from the webhook: {resp.status} {resp.reason}"
                reply = await self._read_webhook_reply(resp)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return f"Connection failed: {type(e).__name__}"
        if reply is not None:
            await self._run_webhook_reply(bot, reply)
        return None

    async def _read_webhook_reply(self, resp: aiohttp.ClientResponse) -> Params | None:
        """A bot may answer a webhook with a method call (JSON or multipart)."""
        ctype = resp.content_type
        if ctype == "application/json":
            try:
                body = await resp.json()
            except (ValueError, aiohttp.ContentTypeError):
                return None
            if isinstance(body, dict) and isinstance(body.get("method"), str):
                return Params(body)
            return None
        if ctype == "multipart/form-data":
            values: dict[str, Any] = {}
            reader = aiohttp.MultipartReader.from_response(resp)
            while True:
                part = await reader.next()
                if part is None:
                    break
                if isinstance(part, aiohttp.BodyPartReader) and part.name:
                    values[part.name] = await part.text()
            if isinstance(values.get("method"), str):
                return Params(values)
        return None

    async def _run_webhook_reply(self, bot: BotRecord, params: Params) -> None:
        method = str(params.raw("method")).lower()
        handler = self.methods.handlers.get(method)
        stats = self._method_stats(bot, self.methods.names.get(method, method))
        stats["calls"] += 1
        if handler is None:
            stats["errors"] += 1
            return
        try:
            self._rate_limit(bot, method, params)
            await handler(bot, params)
            stats["ok"] += 1
        except ApiError as e:
            self._count_error(stats, e.code)
            log.info("webhook reply %s failed: %s", method, e.description)

    # --- client-side actions ---------------------------------------------------------

    def _set_block(self, bot: BotRecord, user: SimUser, chat: ChatState, blocked: bool) -> int:
        """Change the block state and emit my_chat_member like Telegram; return update_id."""
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        chat.blocked = blocked
        chat.seen = True
        member_new: dict[str, Any] = {"status": new, "user": bot.to_api()}
        if blocked:
            member_new["until_date"] = 0
        member_old: dict[str, Any] = {"status": old, "user": bot.to_api()}
        if not blocked:
            member_old["until_date"] = 0
        return self.enqueue_update(
            bot,
            {
                "my_chat_member": {
                    "chat": user.chat_api(),
                    "from": user.to_api(),
                    "date": int(one_clock.now().timestamp()),
                    "old_chat_member": member_old,
                    "new_chat_member": member_new,
                }
            },
        )

    def block(self, bot: BotRecord, user: SimUser, blocked: bool) -> int | None:
        """Block or unblock the bot for the user; None if nothing changed."""
        chat = self.chat(bot.id, user.id)
        if chat.blocked == blocked:
            return None
        return self._set_block(bot, user, chat, blocked)

    def user_message(
        self, bot: BotRecord, user: SimUser, msg: StoredMessage
    ) -> tuple[int, StoredMessage, int]:
        """A user sends ``msg`` to the bot; return (update_id, message, seq)."""
        chat = self.chat(bot.id, user.id)
        if msg.reply_to is not None:
            target = chat.messages.get(msg.reply_to)
            if target is None or target.deleted:
                raise ClientApiError(f"message {msg.reply_to} not found in this chat")
        if chat.blocked:
            # Telegram's "Restart bot" button: writing again unblocks first.
            self._set_block(bot, user, chat, False)
        chat.seen = True
        msg.message_id = chat.new_message_id()
        chat.messages[msg.message_id] = msg
        self._message_event(chat, msg, "message")
        update_id = self.enqueue_update(bot, {"message": message_to_api(msg, bot, user, chat)})
        return update_id, msg, msg.seq

    def user_edit(
        self, bot: BotRecord, user: SimUser, message_id: int, text: str
    ) -> tuple[int, StoredMessage, int]:
        """A user edits their text message; emits edited_message."""
        chat = self.chat(bot.id, user.id)
        msg = chat.messages.get(message_id)
        if msg is None or msg.deleted:
            raise ClientApiError(f"message {message_id} not found in this chat")
        if msg.sender != "user":
            raise ClientApiError(
                f"message {message_id} was sent by the bot; users edit only their own"
            )
        if msg.text is None:
            raise ClientApiError(f"message {message_id} has no text to edit")
        if not text.strip():
            raise ClientApiError("'text' must not be empty")
        msg.text = text
        msg.entities = command_entities(text) or None
        self.mark_edited(bot, chat, msg)
        update_id = self.enqueue_update(
            bot, {"edited_message": message_to_api(msg, bot, user, chat)}
        )
        return update_id, msg, msg.seq

    def open_web_app(
        self, bot: BotRecord, user: SimUser, message_id: int, url: str | None = None
    ) -> tuple[str, str]:
        """Open the Mini App of a message's inline ``web_app`` button (the one with ``url``,
        else the first): returns (the URL with the signed launch data in its fragment, the
        initData), signed with the bot's token at the one clock's now, as Telegram does."""
        from bot.sandbox import webapp

        chat = self.chat(bot.id, user.id)
        msg = chat.messages.get(message_id)
        if msg is None or msg.deleted:
            raise ClientApiError(f"message {message_id} not found in this chat")
        rows = (msg.reply_markup or {}).get("inline_keyboard") or []
        urls = [
            str(b["web_app"].get("url"))
            for row in rows
            for b in row
            if isinstance(b.get("web_app"), dict) and b["web_app"].get("url")
        ]
        chosen = url if url in urls else (urls[0] if urls and url is None else None)
        if chosen is None:
            raise ClientApiError(f"message {message_id} has no web_app button {url or ''}".strip())
        data = webapp.init_data(bot.token, user.to_api(), int(one_clock.now().timestamp()))
        return webapp.launch_url(chosen, data), data

    def click(
        self, bot: BotRecord, user: SimUser, message_id: int, data: str, *, force: bool
    ) -> tuple[int, str, int]:
        """Press an inline button; return (update_id, callback_query_id, seq)."""
        chat = self.chat(bot.id, user.id)
        msg = chat.messages.get(message_id)
        if msg is None:
            raise ClientApiError(f"message {message_id} not found in this chat")
        if not force:
            if msg.deleted:
                raise ClientApiError(f"message {message_id} was deleted")
            rows = (msg.reply_markup or {}).get("inline_keyboard") or []
            datas = [b.get("callback_data") for row in rows for b in row]
            if data not in datas:
                raise ClientApiError(
                    f"message {message_id} has no inline button with callback_data {data!r}"
                    " (use force=true to send a forged callback)"
                )
        if chat.blocked:
            self._set_block(bot, user, chat, False)
        if len(self.callbacks) > 10_000:
            # long benchmarks click a lot; expired queries can never be answered
            now = time.monotonic()
            self.callbacks = {
                k: r
                for k, r in self.callbacks.items()
                if now - r.created <= self.callback_query_ttl_s
            }
        qid = f"{self._rng.getrandbits(63):d}"
        self.callbacks[qid] = CallbackRecord(
            query_id=qid,
            bot_id=bot.id,
            user_id=user.id,
            message_id=message_id,
            data=data,
            created=time.monotonic(),
        )
        query: dict[str, Any] = {
            "id": qid,
            "from": user.to_api(),
            "chat_instance": str(abs(hash((bot.id, user.id))) % 10**18),
            "data": data,
        }
        if msg.deleted:
            query["message"] = {"message_id": message_id, "chat": user.chat_api(), "date": 0}
        else:
            query["message"] = message_to_api(msg, bot, user, chat)
        update_id = self.enqueue_update(bot, {"callback_query": query})
        return update_id, qid, self.seq

    def answer_callback(
        self, bot: BotRecord, qid: str, text: str | None, show_alert: bool, url: str | None
    ) -> None:
        """answerCallbackQuery: record the answer in the user's chat."""
        rec = self.callbacks.get(qid)
        if (
            rec is None
            or rec.bot_id != bot.id
            or rec.answered
            or time.monotonic() - rec.created > self.callback_query_ttl_s
        ):
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        rec.answered = True
        answer = {
            "callback_query_id": qid,
            "message_id": rec.message_id,
            "data": rec.data,
            "text": text,
            "show_alert": show_alert,
            "url": url,
        }
        chat = self.chat(bot.id, rec.user_id)
        answer["seq"] = self.seq + 1
        chat.callback_answers.append(answer)
        self._event(chat, "callback_answer", "answer", answer)

    # --- payments --------------------------------------------------------------------

    def _service_message(
        self, bot: BotRecord, user: SimUser, chat: ChatState, msg: StoredMessage
    ) -> dict[str, Any]:
        """Store a payment service message on the user's side and queue it; return the update."""
        msg.message_id = chat.new_message_id()
        chat.messages[msg.message_id] = msg
        self._message_event(chat, msg, "message")
        update: dict[str, Any] = {"message": message_to_api(msg, bot, user, chat)}
        update["update_id"] = self.enqueue_update(bot, update)
        return update

    def _order_info(self, user: SimUser, invoice: InvoiceRecord) -> dict[str, Any] | None:
        """OrderInfo for the fields the invoice asked for (fictional but well-formed)."""
        info: dict[str, Any] = {}
        if invoice.need_name:
            info["name"] = " ".join(filter(None, [user.first_name, user.last_name]))
        if invoice.need_phone_number and user.phone_number:
            info["phone_number"] = user.phone_number.lstrip("+")
        if invoice.need_email:
            info["email"] = f"user{user.id}@example.org"
        if invoice.need_shipping_address:
            info["shipping_address"] = {
                "country_code": "US",
                "state": "",
                "city": "Springfield",
                "street_line1": "742 Evergreen Terrace",
                "street_line2": "",
                "post_code": "49007",
            }
        return info or None

    @staticmethod
    def _outcome(status: str, error: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"status": status, "error_message": error, **extra}

    async def pay(
        self,
        bot: BotRecord,
        user: SimUser,
        message_id: int,
        *,
        card: str | None = None,
        duplicate: bool = False,
        override_total_amount: int | None = None,
        override_currency: str | None = None,
    ) -> dict[str, Any]:
        """The user pays an invoice: pre_checkout_query, the bot's answer, successful_payment.

        Returns the outcome the user sees: ``status`` is paid, declined, rejected, timeout,
        expired or already_paid, with ``error_message`` and, once paid, the charge ids.
        ``duplicate`` and the ``override_*`` fields are test faults (see EMULATOR.md).
        """
        chat = self.chat(bot.id, user.id)
        msg = chat.messages.get(message_id)
        if msg is None or msg.sender != "bot":
            raise ClientApiError(f"message {message_id} not found in this chat")
        invoice = msg.invoice
        if invoice is None:
            raise ClientApiError(f"message {message_id} is not an invoice")
        if msg.deleted:
            return self._outcome("expired", "The invoice is no longer available.")
        if invoice.charge_id is not None:
            return self._outcome(
                "already_paid",
                "This invoice has already been paid.",
                telegram_payment_charge_id=invoice.charge_id,
            )
        if invoice.paying:
            raise ClientApiError("a payment of this invoice is already waiting for the bot", 409)
        currency = invoice.currency if override_currency is None else override_currency
        total = invoice.total_amount if override_total_amount is None else override_total_amount
        stars = invoice.currency == STARS
        number = ""
        if not stars:
            number = "".join(ch for ch in (card or TEST_CARD) if ch not in " -")
            if not (number.isdigit() and 12 <= len(number) <= 19 and _luhn_ok(number)):
                # the provider's card form refuses it before Telegram asks the bot
                return self._outcome("declined", "Your card number is invalid.")
        if chat.blocked:
            self._set_block(bot, user, chat, False)
        chat.seen = True
        order_info = self._order_info(user, invoice)
        qid = f"{self._rng.getrandbits(63):d}"
        rec = PreCheckoutRecord(
            query_id=qid,
            bot_id=bot.id,
            user_id=user.id,
            answer=asyncio.get_running_loop().create_future(),
        )
        query: dict[str, Any] = {
            "id": qid,
            "from": user.to_api(),
            "currency": currency,
            "total_amount": total,
            "invoice_payload": invoice.payload,
        }
        if order_info:
            query["order_info"] = order_info
        invoice.paying = True
        self.pre_checkouts[qid] = rec
        try:
            self.enqueue_update(bot, {"pre_checkout_query": query})
            try:
                answer = await asyncio.wait_for(rec.answer, self.pre_checkout_timeout_s)
            except TimeoutError:
                answer = None
                if not self.closing:
                    return self._outcome(
                        "timeout", "The bot did not answer the pre-checkout query in time."
                    )
        finally:
            # answered, timed out or cancelled: the query id is spent either way
            self.pre_checkouts.pop(qid, None)
            invoice.paying = False
        if answer is None:
            return self._outcome("timeout", "The emulator stopped before the bot answered.")
        ok, error_message = answer
        if not ok:
            return self._outcome("rejected", error_message)
        if number in DECLINED_CARDS:
            # Telegram charges the card only after the bot said ok; a decline comes after it.
            return self._outcome("declined", DECLINED_CARDS[number])
        return self._complete_payment(
            bot, user, chat, message_id, currency, total, order_info, duplicate
        )

    def _complete_payment(
        self,
        bot: BotRecord,
        user: SimUser,
        chat: ChatState,
        message_id: int,
        currency: str,
        total: int,
        order_info: dict[str, Any] | None,
        duplicate: bool,
    ) -> dict[str, Any]:
        """Record the charge and deliver successful_payment (twice with ``duplicate``)."""
        invoice = chat.messages[message_id].invoice
        assert invoice is not None  # pay() checked it
        stars = invoice.currency == STARS
        if stars:
            charge_id = f"stx{self._rng.getrandbits(160):040x}"
            provider_id = ""  # Stars never pass through a payment provider
        else:
            charge_id = f"{bot.id}_{user.id}_{self._rng.getrandbits(48):d}"
            provider_id = f"ch_emu{self._rng.getrandbits(96):024x}"
        now = int(one_clock.now().timestamp())
        charge = PaymentCharge(
            telegram_payment_charge_id=charge_id,
            provider_payment_charge_id=provider_id,
            bot_id=bot.id,
            user_id=user.id,
            message_id=message_id,
            currency=currency,
            total_amount=total,
            invoice_payload=invoice.payload,
            date=now,
            in_stars=stars,
        )
        self.charges[charge_id] = charge
        invoice.status, invoice.charge_id = "paid", charge_id
        payment: dict[str, Any] = {
            "currency": currency,
            "total_amount": total,
            "invoice_payload": invoice.payload,
            "telegram_payment_charge_id": charge_id,
            "provider_payment_charge_id": provider_id,
        }
        if order_info:
            payment["order_info"] = order_info
        service = StoredMessage(
            message_id=0,
            sender="user",
            date=now,
            successful_payment=payment,
            payment_for=message_id,
        )
        update = self._service_message(bot, user, chat, service)
        if duplicate:
            # The same update (same update_id) again, as after a webhook retry or a polling
            # restart that had not confirmed it: the bot must credit the charge only once.
            self.enqueue_update(bot, json.loads(json.dumps(update)))
            charge.deliveries = 2
        return self._outcome(
            "paid",
            None,
            telegram_payment_charge_id=charge_id,
            provider_payment_charge_id=provider_id,
            currency=currency,
            total_amount=total,
            message_id=service.message_id,
        )

    def answer_pre_checkout(
        self, bot: BotRecord, qid: str, ok: bool, error_message: str | None
    ) -> None:
        """answerPreCheckoutQuery: wake the waiting payment; unknown or spent ids are a 400."""
        rec = self.pre_checkouts.get(qid)
        if rec is None or rec.bot_id != bot.id or rec.answer.done():
            raise bad_request("QUERY_ID_INVALID")
        rec.answer.set_result((ok, error_message))

    def refund_star_payment(self, bot: BotRecord, user_id: int, charge_id: str) -> None:
        """refundStarPayment: mark the charge refunded and send refunded_payment."""
        charge = self.charges.get(charge_id)
        # Only Stars can be refunded through the Bot API; provider payments go via the provider.
        if (
            charge is None
            or charge.bot_id != bot.id
            or charge.user_id != user_id
            or not charge.in_stars
        ):
            raise bad_request("CHARGE_NOT_FOUND")
        chat = self.chats[(bot.id, user_id)]
        invoice = chat.messages[charge.message_id].invoice
        assert invoice is not None  # a charge is always made for an invoice message
        if charge.status == "refunded":
            raise bad_request("CHARGE_ALREADY_REFUNDED")
        now = int(one_clock.now().timestamp())
        charge.status, charge.refund_date = "refunded", now
        invoice.status = "refunded"
        refund: dict[str, Any] = {
            "currency": STARS,
            "total_amount": charge.total_amount,
            "invoice_payload": charge.invoice_payload,
            "telegram_payment_charge_id": charge.telegram_payment_charge_id,
        }
        service = StoredMessage(
            message_id=0,
            sender="user",
            date=now,
            refunded_payment=refund,
            payment_for=charge.message_id,
        )
        self._service_message(bot, self.users[user_id], chat, service)

    def payments(
        self, bot: BotRecord | None = None, user: SimUser | None = None
    ) -> list[dict[str, Any]]:
        """Every charge (paid or refunded), oldest first, optionally of one bot and/or user."""
        return [
            c.to_client(self.bots[c.bot_id].username)
            for c in self.charges.values()
            if (bot is None or c.bot_id == bot.id) and (user is None or c.user_id == user.id)
        ]

    def history(self, bot: BotRecord, user: SimUser, since: int) -> dict[str, Any]:
        """Both sides of the chat, in message order, changed after ``since``."""
        chat = self.chat(bot.id, user.id)
        return {
            "messages": [
                message_to_client(m)
                for m in sorted(chat.messages.values(), key=lambda m: m.message_id)
                if m.seq > since
            ],
            "callback_answers": [a for a in chat.callback_answers if a["seq"] > since],
            "reply_keyboard": chat.reply_keyboard,
            "blocked": chat.blocked,
            "seq": self.seq,
        }

    async def wait_events(
        self, bot: BotRecord, user: SimUser, since: int, wait_s: float
    ) -> list[dict[str, Any]]:
        """Events of the chat newer than ``since``, waiting up to ``wait_s`` for one."""
        chat = self.chat(bot.id, user.id)
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            event = chat.pulse.event
            found = [e for e in chat.events if e["seq"] > since]
            left = deadline - time.monotonic()
            if found or self.closing or left <= 0:
                return found
            await chat.pulse.wait(event, left)

    # --- faults, limits, stats --------------------------------------------------------

    def set_faults(
        self,
        *,
        bot: str | int | None = None,
        methods: Iterable[str] | str | None = None,
        rate_429: float = 0.0,
        retry_after: int = 5,
        rate_5xx: float = 0.0,
        status_5xx: int | None = None,
        delay_ms: float | tuple[float, float] | list[float] = 0.0,
        drop_rate: float = 0.0,
        drop_after_effect: bool = False,
        duration_s: float | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Install a fault rule (replacing one with the same bot and methods); see EMULATOR.md."""
        bot_id = None if bot is None or bot == "" else self.find_bot(bot).id
        for name, rate in (
            ("rate_429", rate_429),
            ("rate_5xx", rate_5xx),
            ("drop_rate", drop_rate),
        ):
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if isinstance(delay_ms, (list, tuple)):
            if len(delay_ms) != 2:
                raise ValueError("delay_ms must be a number or [min, max]")
            lo, hi = float(delay_ms[0]), float(delay_ms[1])
        else:
            lo = hi = float(delay_ms)
        if lo < 0 or hi < lo:
            raise ValueError("delay_ms must be >= 0 and min <= max")
        if status_5xx not in (None, 500, 502):
            raise ValueError("status_5xx must be 500 or 502")
        if int(retry_after) < 1:
            raise ValueError("retry_after must be at least 1")
        method_set, all_methods = normalize_methods(methods)
        rule = FaultRule(
            bot_id=bot_id,
            methods=method_set,
            all_methods=all_methods,
            rate_429=float(rate_429),
            retry_after=int(retry_after),
            rate_5xx=float(rate_5xx),
            status_5xx=status_5xx,
            delay_ms=(lo, hi),
            drop_rate=float(drop_rate),
            drop_after_effect=bool(drop_after_effect),
            expires_at=None if duration_s is None else time.monotonic() + float(duration_s),
            seed=seed,
        )
        return self.faults.add(rule).describe(self.methods.names)

    def clear_faults(self) -> int:
        """Remove every fault rule and pending 429 penalty."""
        return self.faults.clear()

    def set_limits(self, **changes: Any) -> RateLimits:
        """Change rate limits (fields of RateLimits) and reset all buckets."""
        for key, value in changes.items():
            if value is None:
                continue
            if not hasattr(self.limits, key):
                raise ValueError(f"unknown limit {key!r}")
            if key == "enabled":
                self.limits.enabled = bool(value)
                continue
            number = float(value)
            if number <= 0:
                raise ValueError(f"{key} must be positive")
            setattr(self.limits, key, int(number) if key.endswith("burst") else number)
        self.limiter.reset(self.limits)
        return self.limits

    def stats(self) -> dict[str, Any]:
        """Counters per bot and method, plus totals and the active fault rules."""
        totals = _new_method_stats()
        bots: dict[str, Any] = {}
        for bot in self.bots.values():
            for counters in bot.stats["methods"].values():
                for k, v in counters.items():
                    totals[k] += v
            bots[bot.username] = {
                **{k: v for k, v in bot.stats.items() if k != "methods"},
                "methods": {m: dict(c) for m, c in bot.stats["methods"].items()},
                "pending_updates": len(bot.pending),
                "paid_broadcast_stars": self.limiter.stars.get(bot.id, 0.0),
                "max_in_flight": self._max_in_flight.get(bot.id, 0),
            }
        return {
            "bots": bots,
            "totals": totals,
            "users": len(self.users),
            "faults": [r.describe(self.methods.names) for r in self.faults.rules],
        }

    def _method_stats(self, bot: BotRecord, name: str) -> dict[str, int]:
        methods: dict[str, dict[str, int]] = bot.stats["methods"]
        if name not in methods:
            methods[name] = _new_method_stats()
        return methods[name]

    @staticmethod
    def _count_error(stats: dict[str, int], code: int) -> None:
        if code == 429:
            stats["429"] += 1
        elif code >= 500:
            stats["5xx"] += 1
        else:
            stats["errors"] += 1

    def _chat_key(self, params: Params) -> int | None:
        try:
            return int(str(params.raw("chat_id")).strip())
        except ValueError:
            return None

    def _rate_limit(self, bot: BotRecord, method: str, params: Params) -> None:
        if method not in SENDING_METHODS:
            return
        wait = self.limiter.acquire(
            bot.id,
            self._chat_key(params),
            time.monotonic(),
            paid=params.get_bool("allow_paid_broadcast"),
        )
        if wait:
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)

    # --- HTTP handlers -------------------------------------------------------------------

    @staticmethod
    def _reply(body: dict[str, Any], status: int) -> web.Response:
        return web.json_response(body, status=status)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        """Close the connection without an answer; the client sees a disconnect."""
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)

    async def _handle_bot_api(self, request: web.Request) -> web.StreamResponse:
        """Every Bot API call; counts the message-sending calls in progress at once per bot
        (``max_in_flight`` in the stats: how many calls a client really makes in parallel)."""
        bot = self._bots_by_token.get(request.match_info["token"])
        if bot is None or request.match_info["method"].lower() not in SENDING_METHODS:
            return await self._bot_api_call(request)
        now = self._in_flight.get(bot.id, 0) + 1
        self._in_flight[bot.id] = now
        self._max_in_flight[bot.id] = max(self._max_in_flight.get(bot.id, 0), now)
        try:
            return await self._bot_api_call(request)
        finally:
            self._in_flight[bot.id] -= 1

    async def _bot_api_call(self, request: web.Request) -> web.StreamResponse:
        """Every Bot API call: auth, method lookup, faults, rate limits, effect."""
        bot = self._bots_by_token.get(request.match_info["token"])
        if bot is None:
            return self._reply(ApiError(401, "Unauthorized").payload(), 401)
        method = request.match_info["method"].lower()
        handler = self.methods.handlers.get(method)
        if handler is None:
            self._method_stats(bot, "<unknown>")["errors"] += 1
            return self._reply(ApiError(404, "Not Found").payload(), 404)
        stats = self._method_stats(bot, self.methods.names[method])
        stats["calls"] += 1
        try:
            params = await parse_params(request)
        except ApiError as e:
            self._count_error(stats, e.code)
            return self._reply(e.payload(), e.code)
        chat_id = self._chat_key(params)
        if method in SENDING_METHODS:
            bucket = (bot.id, "global" if chat_id is None else f"chat:{chat_id}")
        else:
            bucket = (bot.id, f"method:{method}")
        decision = self.faults.decide(bot.id, method, bucket, time.monotonic())
        if decision.delay_s > 0:
            await asyncio.sleep(decision.delay_s)
        if decision.drop_before:
            stats["dropped"] += 1
            return self._drop(request)
        if decision.status_5xx:
            stats["5xx"] += 1
            text = "Internal Server Error" if decision.status_5xx == 500 else "Bad Gateway"
            return self._reply(ApiError(decision.status_5xx, text).payload(), decision.status_5xx)
        if decision.retry_after:
            stats["429"] += 1
            err = ApiError(
                429,
                f"Too Many Requests: retry after {decision.retry_after}",
                retry_after=decision.retry_after,
            )
            return self._reply(err.payload(), 429)
        try:
            self._rate_limit(bot, method, params)
            result = await handler(bot, params)
        except ApiError as e:
            self._count_error(stats, e.code)
            body, status = e.payload(), e.code
        except Exception:
            # A bug in the emulator must look like a Telegram hiccup, not a traceback.
            log.exception("emulator failed on %s", method)
            stats["5xx"] += 1
            body, status = ApiError(500, "Internal Server Error").payload(), 500
        else:
            stats["ok"] += 1
            body, status = {"ok": True, "result": result}, 200
        if decision.drop_after:
            stats["dropped"] += 1
            return self._drop(request)
        return self._reply(body, status)

    async def _handle_file_download(self, request: web.Request) -> web.StreamResponse:
        """``/file/bot<token>/<file_path>``: the bot's own files only."""
        bot = self._bots_by_token.get(request.match_info["token"])
        if bot is None:
            return self._reply(ApiError(401, "Unauthorized").payload(), 401)
        stored = self._files_by_path.get((bot.id, request.match_info["path"]))
        if stored is None:
            return self._reply(ApiError(404, "Not Found").payload(), 404)
        return web.Response(
            body=stored.read(), content_type=stored.mime_type or "application/octet-stream"
        )
