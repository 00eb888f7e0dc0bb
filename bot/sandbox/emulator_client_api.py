"""The emulator's client API under ``/client/``: the simulated users' side.

JSON over HTTP (plus server-sent events for the sandbox page). Errors are
always ``{"ok": false, "error": "..."}`` with 400 for malformed input and 404
for unknown users, bots, messages or files; never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from bot.sandbox.emulator_state import (
    ClientApiError,
    SimUser,
    StoredMessage,
    command_entities,
    message_to_client,
)
from storage import clock as one_clock

if TYPE_CHECKING:
    from bot.sandbox.emulator import BotApiEmulator
    from bot.sandbox.emulator_state import BotRecord

log = logging.getLogger(__name__)

ClientHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_LONG_POLL_S = 60.0
SSE_KEEPALIVE_S = 15.0
FAULT_FIELDS = frozenset(
    {
        "bot",
        "methods",
        "rate_429",
        "retry_after",
        "rate_5xx",
        "status_5xx",
        "delay_ms",
        "drop_rate",
        "drop_after_effect",
        "duration_s",
        "seed",
    }
)
LIMIT_FIELDS = frozenset(
    {
        "enabled",
        "global_per_s",
        "global_burst",
        "per_chat_per_s",
        "per_chat_burst",
        "reply_window_s",
        "paid_per_s",
    }
)
PAY_FIELDS = frozenset(
    {
        "user_id",
        "bot",
        "message_id",
        "card",
        "duplicate",
        "override_total_amount",
        "override_currency",
    }
)
SETTINGS_FIELDS = frozenset({"pre_checkout_timeout_s"})


def _ok(**payload: Any) -> web.Response:
    return web.json_response({"ok": True, **payload})


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


def _loopback_name(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@web.middleware
async def local_only(request: web.Request, handler: ClientHandler) -> web.StreamResponse:
    """Only this machine's own pages may talk to the emulator (it acts as any simulated
    person): a Host that is not a loopback name (DNS rebinding: a web site's own name
    pointed at 127.0.0.1) and a browser request from another origin (a page the sandbox
    user visits, e.g. a ``text/plain`` form POST, which needs no CORS preflight) get 403.
    Requests without an Origin (bots, tests, curl) are same-origin by definition."""
    try:
        host = request.url.host
    except ValueError:  # a Host header that is not a host
        host = None
    if not _loopback_name(host):
        return _error("forbidden: this server answers only at a loopback address", 403)
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != f"{request.scheme}://{request.host}".lower():
        return _error("forbidden: a request from another origin", 403)
    return await handler(request)


def content_disposition(kind: str, name: str) -> str:
    """A Content-Disposition value for a file name anyone could have chosen (RFC 6266):
    control characters dropped, an ASCII ``filename`` with quotes and backslashes replaced,
    and the exact name percent-encoded as ``filename*`` (RFC 8187)."""
    clean = "".join(ch for ch in name if ch.isprintable())[:255] or "file"
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "_" for ch in clean)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(clean, safe='')}"


def _guarded(handler: ClientHandler) -> ClientHandler:
    """Turn validation failures into clean JSON errors (and bugs into a 500 JSON)."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ClientApiError as e:
            return _error(e.message, e.status)
        except ValueError as e:
            return _error(str(e), 400)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("client API %s failed", request.path)
            return _error("internal emulator error (see the emulator log)", 500)

    return wrapper


# --- field helpers ---------------------------------------------------------------


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object body of a request (an empty body counts as {})."""
    if not request.body_exists:
        return {}
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.post()
        return dict(form.items())
    raw = await request.read()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ClientApiError("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ClientApiError("request body must be a JSON object")
    return body


def _str(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    v = body.get(name)
    if v is None:
        if required:
            raise ClientApiError(f"'{name}' is required")
        return None
    if not isinstance(v, str):
        raise ClientApiError(f"'{name}' must be a string")
    if required and not v.strip():
        raise ClientApiError(f"'{name}' must not be empty")
    return v


def _int(body: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    v = body.get(name)
    if v is None or v == "":
        if required:
            raise ClientApiError(f"'{name}' is required")
        return None
    if isinstance(v, bool):
        raise ClientApiError(f"'{name}' must be an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            pass
    raise ClientApiError(f"'{name}' must be an integer")


def _float(body: dict[str, Any], name: str, *, required: bool = False) -> float | None:
    v = body.get(name)
    if v is None or v == "":
        if required:
            raise ClientApiError(f"'{name}' is required")
        return None
    if isinstance(v, bool):
        raise ClientApiError(f"'{name}' must be a number")
    try:
        number = float(v)
    except (TypeError, ValueError):
        raise ClientApiError(f"'{name}' must be a number") from None
    if not math.isfinite(number):
        raise ClientApiError(f"'{name}' must be a finite number")
    return number


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    v = body.get(name)
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "1", "false", "0"):
        return v.lower() in ("true", "1")
    raise ClientApiError(f"'{name}' must be true or false")


def _reject_unknown(body: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ClientApiError(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


class ClientApi:
    """Handlers of /client/*, bound to one emulator."""

    def __init__(self, emu: BotApiEmulator) -> None:
        """Bind to ``emu``."""
        self.emu = emu

    def _who(self, body: dict[str, Any]) -> tuple[SimUser, BotRecord]:
        if body.get("user_id") is None:
            raise ClientApiError("'user_id' is required")
        if body.get("bot") is None:
            raise ClientApiError("'bot' is required (the bot's username)")
        return self.emu.find_user(body["user_id"]), self.emu.find_bot(body["bot"])

    def _sent(self, bot: BotRecord, user: SimUser, msg: StoredMessage) -> web.Response:
        update_id, stored, seq = self.emu.user_message(bot, user, msg)
        return _ok(update_id=update_id, message=message_to_client(stored), seq=seq)

    @staticmethod
    def _text_message(text: str, reply_to: int | None = None) -> StoredMessage:
        return StoredMessage(
            message_id=0,
            sender="user",
            date=int(one_clock.now().timestamp()),
            text=text,
            entities=command_entities(text) or None,
            reply_to=reply_to,
        )

    # --- users and bots ---------------------------------------------------------------

    async def create_user(self, request: web.Request) -> web.Response:
        """POST /client/users."""
        body = await _body(request)
        first = _str(body, "first_name", required=True)
        assert first is not None  # required=True guarantees it
        if len(first) > 64:
            raise ClientApiError("'first_name' is longer than 64 characters")
        user = self.emu.create_user(
            first,
            last_name=_str(body, "last_name"),
            username=_str(body, "username"),
            language_code=_str(body, "language_code"),
            phone_number=_str(body, "phone_number"),
        )
        return _ok(user=user.to_client())

    async def list_users(self, request: web.Request) -> web.Response:
        """GET /client/users."""
        return _ok(users=[u.to_client() for u in self.emu.users.values()])

    async def list_bots(self, request: web.Request) -> web.Response:
        """GET /client/bots."""
        return _ok(bots=[b.to_client() for b in self.emu.bots.values()])

    # --- user actions -------------------------------------------------------------------

    async def send(self, request: web.Request) -> web.Response:
        """POST /client/send: a text message (commands get bot_command entities)."""
        body = await _body(request)
        user, bot = self._who(body)
        text = _str(body, "text", required=True)
        assert text is not None  # required=True guarantees it
        if len(text) > 4096:
            raise ClientApiError("'text' is longer than 4096 characters")
        msg = self._text_message(text, _int(body, "reply_to_message_id"))
        return self._sent(bot, user, msg)

    async def start(self, request: web.Request) -> web.Response:
        """POST /client/start: "/start" or "/start <payload>" (payload passed through as is)."""
        body = await _body(request)
        user, bot = self._who(body)
        payload = body.get("payload")
        text = "/start" if payload is None or payload == "" else f"/start {payload}"
        return self._sent(bot, user, self._text_message(text))

    async def click(self, request: web.Request) -> web.Response:
        """POST /client/click: press an inline button (or forge one with force)."""
        body = await _body(request)
        user, bot = self._who(body)
        mid = _int(body, "message_id", required=True)
        assert mid is not None  # required=True guarantees it
        data = body.get("data")
        if not isinstance(data, str):
            raise ClientApiError("'data' (the button's callback_data) is required")
        update_id, qid, seq = self.emu.click(
            bot, user, mid, data, force=_bool(body, "force", False)
        )
        return _ok(update_id=update_id, callback_query_id=qid, seq=seq)

    async def web_app(self, request: web.Request) -> web.Response:
        """POST /client/web_app: open the Mini App of an inline ``web_app`` button; the
        answer's ``url`` carries launch data signed with the bot's token, as Telegram's."""
        body = await _body(request)
        user, bot = self._who(body)
        mid = _int(body, "message_id", required=True)
        assert mid is not None  # required=True guarantees it
        url, data = self.emu.open_web_app(bot, user, mid, _str(body, "url"))
        return _ok(url=url, init_data=data)

    async def reply_button(self, request: web.Request) -> web.Response:
        """POST /client/reply_button: press a button of the current reply keyboard."""
        body = await _body(request)
        user, bot = self._who(body)
        text = _str(body, "text", required=True)
        assert text is not None  # required=True guarantees it
        chat = self.emu.chat(bot.id, user.id)
        keyboard = chat.reply_keyboard or {}
        button = next(
            (b for row in keyboard.get("keyboard", []) for b in row if b.get("text") == text),
            None,
        )
        if button is None and not _bool(body, "force", False):
            shown = [b.get("text") for row in keyboard.get("keyboard", []) for b in row]
            raise ClientApiError(
                f"no reply keyboard button {text!r} is shown to the user; shown: {shown}"
            )
        if keyboard.get("one_time_keyboard"):
            chat.reply_keyboard = None
        if button is not None and button.get("request_contact"):
            return self._sent(bot, user, self._contact_message(user, None, None, None, True))
        if button is not None and button.get("request_location"):
            raise ClientApiError("this button requests a location: use /client/location")
        return self._sent(bot, user, self._text_message(text))

    def _contact_message(
        self,
        user: SimUser,
        phone: str | None,
        first_name: str | None,
        last_name: str | None,
        own: bool,
        contact_user_id: int | None = None,
    ) -> StoredMessage:
        contact: dict[str, Any] = {
            "phone_number": phone or user.phone_number or "",
            "first_name": first_name or (user.first_name if own else "Carol"),
        }
        last = last_name if last_name is not None else (user.last_name if own else None)
        if last:
            contact["last_name"] = last
        if own:
            contact["user_id"] = user.id
        else:
            # another person's card: some other Telegram account
            if contact_user_id is None:
                contact_user_id = self.emu._next_foreign_id
                self.emu._next_foreign_id += 1
            if contact_user_id == user.id:
                raise ClientApiError("a foreign contact needs a user_id other than the sender's")
            contact["user_id"] = contact_user_id
        return StoredMessage(
            message_id=0, sender="user", date=int(one_clock.now().timestamp()), contact=contact
        )

    async def contact(self, request: web.Request) -> web.Response:
        """POST /client/contact: share the own phone number (or someone else's card)."""
        body = await _body(request)
        user, bot = self._who(body)
        phone = _str(body, "phone_number", required=True)
        msg = self._contact_message(
            user,
            phone,
            _str(body, "first_name"),
            _str(body, "last_name"),
            _bool(body, "own", True),
            _int(body, "contact_user_id"),
        )
        return self._sent(bot, user, msg)

    async def location(self, request: web.Request) -> web.Response:
        """POST /client/location."""
        body = await _body(request)
        user, bot = self._who(body)
        lat = _float(body, "latitude", required=True)
        lon = _float(body, "longitude", required=True)
        assert lat is not None and lon is not None  # required=True guarantees them
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ClientApiError("latitude must be in [-90, 90] and longitude in [-180, 180]")
        msg = StoredMessage(
            message_id=0,
            sender="user",
            date=int(one_clock.now().timestamp()),
            location={"latitude": lat, "longitude": lon},
        )
        return self._sent(bot, user, msg)

    async def _media(self, request: web.Request, kind: str) -> web.Response:
        body: dict[str, Any]
        filename: str | None = None
        content_type: str | None = None
        if request.content_type == "multipart/form-data":
            form = await request.post()
            body = {k: v for k, v in form.items() if not isinstance(v, web.FileField)}
            upload = form.get("file")
            if not isinstance(upload, web.FileField):
                raise ClientApiError("multipart request needs a 'file' part")
            data = upload.file.read()
            filename, content_type = upload.filename, upload.content_type
        else:
            body = await _body(request)
            encoded = _str(body, "data", required=True)
            try:
                data = base64.b64decode(encoded or "", validate=True)
            except (binascii.Error, ValueError):
                raise ClientApiError("'data' must be base64") from None
            filename = _str(body, "filename")
            content_type = _str(body, "mime_type")
        if not data:
            raise ClientApiError("the file is empty")
        user, bot = self._who(body)
        caption = _str(body, "caption")
        if caption is not None and len(caption) > 1024:
            raise ClientApiError("'caption' is longer than 1024 characters")
        stored = self.emu.store_file(
            bot.id, kind, data, filename, content_type, duration=_int(body, "duration") or 0
        )
        msg = StoredMessage(
            message_id=0,
            sender="user",
            date=int(one_clock.now().timestamp()),
            media_kind=kind,
            media=stored,
            caption=caption,
        )
        return self._sent(bot, user, msg)

    async def photo(self, request: web.Request) -> web.Response:
        """POST /client/photo."""
        return await self._media(request, "photo")

    async def document(self, request: web.Request) -> web.Response:
        """POST /client/document."""
        return await self._media(request, "document")

    async def voice(self, request: web.Request) -> web.Response:
        """POST /client/voice."""
        return await self._media(request, "voice")

    async def edit(self, request: web.Request) -> web.Response:
        """POST /client/edit: the user edits their own text message."""
        body = await _body(request)
        user, bot = self._who(body)
        mid = _int(body, "message_id", required=True)
        text = _str(body, "text", required=True)
        assert mid is not None and text is not None  # required=True guarantees them
        update_id, msg, seq = self.emu.user_edit(bot, user, mid, text)
        return _ok(update_id=update_id, message=message_to_client(msg), seq=seq)

    async def raw(self, request: web.Request) -> web.Response:
        """POST /client/raw: inject any update dict (for bad-input tests)."""
        body = await _body(request)
        if body.get("bot") is None:
            raise ClientApiError("'bot' is required (the bot's username)")
        bot = self.emu.find_bot(body["bot"])
        update = body.get("update")
        if not isinstance(update, dict):
            raise ClientApiError("'update' must be a JSON object")
        return _ok(update_id=self.emu.enqueue_update(bot, dict(update)))

    async def pay(self, request: web.Request) -> web.Response:
        """POST /client/pay: pay an invoice; answers once the payment has an outcome.

        Waits (without blocking the emulator) for the bot's answerPreCheckoutQuery, up to
        the emulator's ``pre_checkout_timeout_s``.
        """
        body = await _body(request)
        _reject_unknown(body, PAY_FIELDS)
        user, bot = self._who(body)
        mid = _int(body, "message_id", required=True)
        assert mid is not None  # required=True guarantees it
        override_total = _int(body, "override_total_amount")
        override_currency = _str(body, "override_currency")
        if override_currency is not None and not (
            len(override_currency) == 3
            and override_currency.isascii()
            and override_currency.isalpha()
        ):
            raise ClientApiError("'override_currency' must be a three-letter currency code")
        # The chat position when the user pressed Pay: wait_for then sees what the bot sends
        # during the pre-checkout as well as after the payment.
        seq = self.emu.seq
        outcome = await self.emu.pay(
            bot,
            user,
            mid,
            card=_str(body, "card"),
            duplicate=_bool(body, "duplicate", False),
            override_total_amount=override_total,
            override_currency=override_currency.upper() if override_currency else None,
        )
        return _ok(**outcome, seq=seq)

    async def payments(self, request: web.Request) -> web.Response:
        """GET /client/payments?bot=&user_id=: the charges (paid or refunded)."""
        q = dict(request.query)
        bot = self.emu.find_bot(q["bot"]) if q.get("bot") else None
        user = self.emu.find_user(q["user_id"]) if q.get("user_id") else None
        return _ok(payments=self.emu.payments(bot, user))

    async def set_settings(self, request: web.Request) -> web.Response:
        """POST /client/settings: emulator timings (pre_checkout_timeout_s)."""
        body = await _body(request)
        _reject_unknown(body, SETTINGS_FIELDS)
        timeout = _float(body, "pre_checkout_timeout_s")
        if timeout is not None:
            if timeout <= 0:
                raise ClientApiError("'pre_checkout_timeout_s' must be positive")
            self.emu.pre_checkout_timeout_s = timeout
        return await self.get_settings(request)

    async def get_settings(self, request: web.Request) -> web.Response:
        """GET /client/settings."""
        return _ok(settings={"pre_checkout_timeout_s": self.emu.pre_checkout_timeout_s})

    async def block(self, request: web.Request) -> web.Response:
        """POST /client/block: block or unblock the bot (emits my_chat_member)."""
        body = await _body(request)
        user, bot = self._who(body)
        blocked = _bool(body, "blocked", True)
        update_id = self.emu.block(bot, user, blocked)
        return _ok(blocked=blocked, update_id=update_id, changed=update_id is not None)

    # --- reading ----------------------------------------------------------------------------

    def _query_who(self, request: web.Request) -> tuple[SimUser, BotRecord, int]:
        q = dict(request.query)
        user, bot = self._who(q)
        since = _int(q, "since") or 0
        return user, bot, since

    async def messages(self, request: web.Request) -> web.Response:
        """GET /client/messages?user_id=&bot=&since=0."""
        user, bot, since = self._query_who(request)
        return _ok(**self.emu.history(bot, user, since))

    async def events(self, request: web.Request) -> web.Response:
        """GET /client/events?user_id=&bot=&since=&timeout=: long poll."""
        user, bot, since = self._query_who(request)
        timeout = min(max(_float(dict(request.query), "timeout") or 0.0, 0.0), MAX_LONG_POLL_S)
        events = await self.emu.wait_events(bot, user, since, timeout)
        return _ok(events=events, seq=self.emu.seq)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /client/stream?user_id=&bot=: the events as server-sent events.

        Each event is ``id: <seq>``, ``event: <kind>`` (message, edit, delete,
        callback_answer: listen with addEventListener) and ``data: <event JSON>``.
        ``since`` (default 0: replay everything) or Last-Event-ID resumes.
        """
        user, bot, since = self._query_who(request)
        last_id = request.headers.get("Last-Event-ID", "")
        if last_id.isdigit():
            since = int(last_id)
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        with contextlib.suppress(ConnectionResetError, ConnectionError):
            await resp.write(b": connected\n\n")
            while not self.emu.closing:
                events = await self.emu.wait_events(bot, user, since, SSE_KEEPALIVE_S)
                if not events:
                    await resp.write(b": keepalive\n\n")
                    continue
                for ev in events:
                    chunk = f"id: {ev['seq']}\nevent: {ev['kind']}\ndata: {json.dumps(ev)}\n\n"
                    await resp.write(chunk.encode("utf-8"))
                    since = ev["seq"]
        return resp

    async def file(self, request: web.Request) -> web.Response:
        """GET /client/files/{file_id}: the bytes of any file."""
        stored = self.emu.files.get(request.match_info["file_id"])
        if stored is None:
            raise ClientApiError(f"unknown file {request.match_info['file_id']!r}", 404)
        headers = {}
        if stored.file_name:
            headers["Content-Disposition"] = content_disposition("inline", stored.file_name)
        return web.Response(
            body=stored.read(),
            content_type=stored.mime_type or "application/octet-stream",
            headers=headers,
        )

    # --- control ------------------------------------------------------------------------------

    async def set_faults(self, request: web.Request) -> web.Response:
        """POST /client/faults: install a fault rule."""
        body = await _body(request)
        _reject_unknown(body, FAULT_FIELDS)
        methods = body.get("methods")
        if methods is not None and not (
            isinstance(methods, str)
            or (isinstance(methods, list) and all(isinstance(m, str) for m in methods))
        ):
            raise ClientApiError("'methods' must be a list of method names or \"*\"")
        delay = body.get("delay_ms", 0)
        if isinstance(delay, list):
            if len(delay) != 2 or not all(
                isinstance(d, (int, float)) and not isinstance(d, bool) for d in delay
            ):
                raise ClientApiError("'delay_ms' must be a number or [min, max]")
            delay_value: float | list[float] = [float(d) for d in delay]
        else:
            delay_value = _float(body, "delay_ms") or 0.0
        bot = body.get("bot")
        if bot is not None and not isinstance(bot, (str, int)):
            raise ClientApiError("'bot' must be a bot username or id")
        duration = _float(body, "duration_s")
        if duration is not None and duration <= 0:
            raise ClientApiError("'duration_s' must be positive")
        rule = self.emu.set_faults(
            bot=bot,
            methods=methods,
            rate_429=_float(body, "rate_429") or 0.0,
            retry_after=_int(body, "retry_after") or 5,
            rate_5xx=_float(body, "rate_5xx") or 0.0,
            status_5xx=_int(body, "status_5xx"),
            delay_ms=delay_value,
            drop_rate=_float(body, "drop_rate") or 0.0,
            drop_after_effect=_bool(body, "drop_after_effect", False),
            duration_s=duration,
            seed=_int(body, "seed"),
        )
        return _ok(rule=rule, rules=self.emu.stats()["faults"])

    async def clear_faults(self, request: web.Request) -> web.Response:
        """DELETE /client/faults (``?id=N`` removes one rule)."""
        rule_id = _int(dict(request.query), "id")
        removed = self.emu.faults.clear(rule_id) if rule_id else self.emu.clear_faults()
        return _ok(removed=removed)

    async def get_faults(self, request: web.Request) -> web.Response:
        """GET /client/faults."""
        return _ok(rules=self.emu.stats()["faults"])

    async def set_limits(self, request: web.Request) -> web.Response:
        """POST /client/limits."""
        body = await _body(request)
        _reject_unknown(body, LIMIT_FIELDS)
        changes: dict[str, Any] = {}
        if "enabled" in body:
            changes["enabled"] = _bool(body, "enabled", True)
        for key in LIMIT_FIELDS - {"enabled"}:
            value = _float(body, key)
            if value is not None:
                changes[key] = value
        limits = self.emu.set_limits(**changes)
        return _ok(limits=asdict(limits))

    async def get_limits(self, request: web.Request) -> web.Response:
        """GET /client/limits."""
        return _ok(limits=asdict(self.emu.limits))

    async def stats(self, request: web.Request) -> web.Response:
        """GET /client/stats."""
        return _ok(**self.emu.stats())

    async def not_found(self, request: web.Request) -> web.Response:
        """Any other /client/ path."""
        raise ClientApiError(f"no client API endpoint {request.method} {request.path}", 404)


def setup_client_api(app: web.Application, emu: BotApiEmulator) -> ClientApi:
    """Add the /client/ routes for ``emu`` to ``app``."""
    api = ClientApi(emu)
    routes: list[tuple[str, str, ClientHandler]] = [
        ("POST", "/client/users", api.create_user),
        ("GET", "/client/users", api.list_users),
        ("GET", "/client/bots", api.list_bots),
        ("POST", "/client/send", api.send),
        ("POST", "/client/start", api.start),
        ("POST", "/client/click", api.click),
        ("POST", "/client/web_app", api.web_app),
        ("POST", "/client/reply_button", api.reply_button),
        ("POST", "/client/contact", api.contact),
        ("POST", "/client/location", api.location),
        ("POST", "/client/photo", api.photo),
        ("POST", "/client/document", api.document),
        ("POST", "/client/voice", api.voice),
        ("POST", "/client/edit", api.edit),
        ("POST", "/client/raw", api.raw),
        ("POST", "/client/block", api.block),
        ("POST", "/client/pay", api.pay),
        ("GET", "/client/payments", api.payments),
        ("POST", "/client/settings", api.set_settings),
        ("GET", "/client/settings", api.get_settings),
        ("GET", "/client/messages", api.messages),
        ("GET", "/client/events", api.events),
        ("GET", "/client/stream", api.stream),
        ("GET", "/client/files/{file_id}", api.file),
        ("POST", "/client/faults", api.set_faults),
        ("DELETE", "/client/faults", api.clear_faults),
        ("GET", "/client/faults", api.get_faults),
        ("POST", "/client/limits", api.set_limits),
        ("GET", "/client/limits", api.get_limits),
        ("GET", "/client/stats", api.stats),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guarded(handler))
    app.router.add_route("*", "/client/{tail:.*}", _guarded(api.not_found))
    return api
