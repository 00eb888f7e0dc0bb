"""Async client of the emulator's client API (the simulated users' side).

Used by tests, benchmarks and scenario players::

    async with EmulatorClient(base_url) as c:
        user = await c.create_user("Alice Testpatient")
        await c.start(user["id"], "careline_bot")
        reply = await c.wait_for(user["id"], "careline_bot", "Welcome")

Every user action remembers the chat position (``seq``) it happened at, so
``wait_for`` without ``since`` waits for the bot's answer to the last action
and never misses a reply that arrived before ``wait_for`` was called.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["EmulatorClient", "EmulatorError", "Predicate"]

Predicate = Callable[[dict[str, Any]], bool] | str | None


class EmulatorError(Exception):
    """The client API refused a request; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the status and the emulator's error text."""
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _matches(message: dict[str, Any], predicate: Predicate) -> bool:
    if predicate is None:
        return True
    if isinstance(predicate, str):
        return predicate in (message.get("text") or "") or predicate in (
            message.get("caption") or ""
        )
    return bool(predicate(message))


def _describe(predicate: Predicate) -> str:
    if predicate is None:
        return "any bot message"
    if isinstance(predicate, str):
        return f"a bot message containing {predicate!r}"
    name = getattr(predicate, "__name__", repr(predicate))
    return f"a bot message matching {name}"


class EmulatorClient:
    """Simulated users talking to bots through a running BotApiEmulator."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        """``base_url`` is what BotApiEmulator.start() returned."""
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own_session = session is None
        self.request_timeout = request_timeout
        # (user_id, bot) -> seq of the user's latest action or wait_for result
        self._cursor: dict[tuple[int, str], int] = {}

    async def __aenter__(self) -> EmulatorClient:
        """Open the HTTP session."""
        self._http()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the HTTP session if this client made it."""
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client made it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        data: aiohttp.FormData | None = None,
        total_s: float | None = None,
    ) -> dict[str, Any]:
        clean_params = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with self._http().request(
            method,
            f"{self.base_url}/client/{path}",
            json=json,
            params=clean_params,
            data=data,
            timeout=aiohttp.ClientTimeout(total=total_s or self.request_timeout),
        ) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                raise EmulatorError(resp.status, await resp.text()) from None
        if not isinstance(body, dict) or not body.get("ok"):
            message = body.get("error", body) if isinstance(body, dict) else body
            raise EmulatorError(resp.status, str(message))
        return body

    def _remember(self, user_id: int, bot: str, result: dict[str, Any]) -> dict[str, Any]:
        seq = result.get("seq")
        if isinstance(seq, int):
            key = (int(user_id), str(bot).lstrip("@").lower())
            self._cursor[key] = max(self._cursor.get(key, 0), seq)
        return result

    async def _act(self, path: str, user_id: int, bot: str, **fields: Any) -> dict[str, Any]:
        body = {
            "user_id": user_id,
            "bot": bot,
            **{k: v for k, v in fields.items() if v is not None},
        }
        return self._remember(user_id, bot, await self._call("POST", path, json=body))

    # --- users and bots --------------------------------------------------------

    async def create_user(
        self,
        first_name: str,
        language_code: str | None = "en",
        *,
        last_name: str | None = None,
        username: str | None = None,
        phone_number: str | None = None,
    ) -> dict[str, Any]:
        """Create a simulated user; returns the user dict (``id``, ``first_name``...)."""
        body = {
            "first_name": first_name,
            "language_code": language_code,
            "last_name": last_name,
            "username": username,
            "phone_number": phone_number,
        }
        result = await self._call(
            "POST", "users", json={k: v for k, v in body.items() if v is not None}
        )
        user: dict[str, Any] = result["user"]
        return user

    async def users(self) -> list[dict[str, Any]]:
        """All simulated users."""
        users: list[dict[str, Any]] = (await self._call("GET", "users"))["users"]
        return users

    async def bots(self) -> list[dict[str, Any]]:
        """All registered bots."""
        bots: list[dict[str, Any]] = (await self._call("GET", "bots"))["bots"]
        return bots

    # --- user actions ----------------------------------------------------------

    async def send(
        self, user_id: int, bot: str, text: str, *, reply_to_message_id: int | None = None
    ) -> dict[str, Any]:
        """Send a text message; returns {update_id, message, seq}."""
        return await self._act(
            "send", user_id, bot, text=text, reply_to_message_id=reply_to_message_id
        )

    async def start(self, user_id: int, bot: str, payload: str | None = None) -> dict[str, Any]:
        """Send /start, or "/start <payload>" for a deep link (passed through unchecked)."""
        return await self._act("start", user_id, bot, payload=payload)

    async def click(
        self, user_id: int, bot: str, message_id: int, data: str, force: bool = False
    ) -> dict[str, Any]:
        """Press the inline button with ``data``; ``force`` sends a forged callback."""
        return await self._act(
            "click", user_id, bot, message_id=message_id, data=data, force=force
        )

    async def open_web_app(
        self, user_id: int, bot: str, message_id: int, url: str | None = None
    ) -> dict[str, Any]:
        """Open the Mini App of a message's ``web_app`` button: ``{url, init_data}``, the
        launch data signed with the bot's token."""
        body: dict[str, Any] = {"user_id": user_id, "bot": bot, "message_id": message_id}
        if url is not None:
            body["url"] = url
        return await self._call("POST", "web_app", json=body)

    async def click_button(self, user_id: int, bot: str, text: str) -> dict[str, Any]:
        """Press the inline button labelled ``text`` on the newest bot message having one."""
        history = await self.messages(user_id, bot)
        for msg in reversed(history["messages"]):
            if msg["from"] != "bot" or msg["deleted"]:
                continue
            rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
            for row in rows:
                for button in row:
                    if button.get("text") == text and "callback_data" in button:
                        return await self.click(
                            user_id, bot, msg["message_id"], button["callback_data"]
                        )
        raise LookupError(f"no bot message to user {user_id} has an inline button {text!r}")

    async def reply_button(
        self, user_id: int, bot: str, text: str, force: bool = False
    ) -> dict[str, Any]:
        """Press a reply-keyboard button (a request_contact button shares the contact)."""
        return await self._act("reply_button", user_id, bot, text=text, force=force)

    async def share_contact(
        self,
        user_id: int,
        bot: str,
        phone: str,
        own: bool = True,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> dict[str, Any]:
        """Send a contact; ``own=False`` sends someone else's card."""
        return await self._act(
            "contact",
            user_id,
            bot,
            phone_number=phone,
            own=own,
            first_name=first_name,
            last_name=last_name,
        )

    async def send_location(
        self, user_id: int, bot: str, latitude: float, longitude: float
    ) -> dict[str, Any]:
        """Send a location."""
        return await self._act("location", user_id, bot, latitude=latitude, longitude=longitude)

    async def _send_file(
        self, kind: str, user_id: int, bot: str, data: bytes, filename: str, caption: str | None
    ) -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field("user_id", str(user_id))
        form.add_field("bot", bot)
        if caption is not None:
            form.add_field("caption", caption)
        form.add_field("file", data, filename=filename)
        return self._remember(user_id, bot, await self._call("POST", kind, data=form))

    async def send_photo(
        self, user_id: int, bot: str, data: bytes, filename: str, caption: str | None = None
    ) -> dict[str, Any]:
        """Send a photo (multipart upload)."""
        return await self._send_file("photo", user_id, bot, data, filename, caption)

    async def send_document(
        self, user_id: int, bot: str, data: bytes, filename: str, caption: str | None = None
    ) -> dict[str, Any]:
        """Send a document (multipart upload)."""
        return await self._send_file("document", user_id, bot, data, filename, caption)

    async def send_voice(
        self, user_id: int, bot: str, data: bytes, filename: str, caption: str | None = None
    ) -> dict[str, Any]:
        """Send a voice message (multipart upload)."""
        return await self._send_file("voice", user_id, bot, data, filename, caption)

    async def send_file_json(
        self, kind: str, user_id: int, bot: str, data: bytes, filename: str
    ) -> dict[str, Any]:
        """Send a photo/document/voice as JSON with base64 data (the other accepted form)."""
        encoded = base64.b64encode(data).decode("ascii")
        return await self._act(kind, user_id, bot, data=encoded, filename=filename)

    async def edit(self, user_id: int, bot: str, message_id: int, text: str) -> dict[str, Any]:
        """Edit one of the user's own text messages (edited_message update)."""
        return await self._act("edit", user_id, bot, message_id=message_id, text=text)

    async def raw(self, bot: str, update: dict[str, Any]) -> dict[str, Any]:
        """Inject an arbitrary update dict; returns {update_id}."""
        return await self._call("POST", "raw", json={"bot": bot, "update": update})

    async def block(self, user_id: int, bot: str, blocked: bool = True) -> dict[str, Any]:
        """Block (or unblock) the bot as this user."""
        return await self._act("block", user_id, bot, blocked=blocked)

    async def pay(
        self,
        user_id: int,
        bot: str,
        message_id: int,
        card: str | None = None,
        *,
        duplicate: bool = False,
        override_total_amount: int | None = None,
        override_currency: str | None = None,
    ) -> dict[str, Any]:
        """Pay the invoice in ``message_id``; returns the outcome once there is one.

        ``status`` is paid, declined, rejected, timeout, expired or already_paid, with
        ``error_message`` and (when paid) ``telegram_payment_charge_id``. ``card`` matters for
        provider payments only (default 4242 4242 4242 4242). ``duplicate`` and
        ``override_*`` are test faults: see docs/EMULATOR.md, "Payments".
        """
        body = {
            "user_id": user_id,
            "bot": bot,
            "message_id": message_id,
            "card": card,
            "duplicate": duplicate or None,
            "override_total_amount": override_total_amount,
            "override_currency": override_currency,
        }
        result = await self._call(
            "POST",
            "pay",
            json={k: v for k, v in body.items() if v is not None},
            # the emulator waits up to its pre-checkout deadline for the bot
            total_s=self.request_timeout + 60.0,
        )
        return self._remember(user_id, bot, result)

    async def payments(self, bot: str | None = None, user_id: int | None = None) -> list[Any]:
        """The charges (paid or refunded), optionally of one bot and/or user."""
        result = await self._call("GET", "payments", params={"bot": bot, "user_id": user_id})
        charges: list[Any] = result["payments"]
        return charges

    async def wait_for_invoice(
        self,
        user_id: int,
        bot: str,
        since: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - as in wait_for
    ) -> dict[str, Any]:
        """Wait for the next invoice message from the bot (see wait_for)."""

        def is_invoice(message: dict[str, Any]) -> bool:
            return message.get("invoice") is not None

        return await self.wait_for(user_id, bot, is_invoice, since=since, timeout=timeout)

    # --- reading ---------------------------------------------------------------

    async def messages(self, user_id: int, bot: str, since: int = 0) -> dict[str, Any]:
        """Chat history: {messages, callback_answers, reply_keyboard, blocked, seq}."""
        return await self._call(
            "GET", "messages", params={"user_id": user_id, "bot": bot, "since": since}
        )

    async def events(
        self,
        user_id: int,
        bot: str,
        since: int = 0,
        timeout: float = 0.0,  # noqa: ASYNC109 - a server-side long-poll time, sent along
    ) -> dict[str, Any]:
        """Events newer than ``since``, long-polling up to ``timeout`` s: {events, seq}."""
        return await self._call(
            "GET",
            "events",
            params={"user_id": user_id, "bot": bot, "since": since, "timeout": timeout},
            total_s=timeout + self.request_timeout,
        )

    async def download(self, file_id_or_url: str) -> bytes:
        """Bytes of a file, by file_id or a ``download_url`` from a message."""
        path = file_id_or_url
        if not path.startswith("/client/files/"):
            path = f"/client/files/{file_id_or_url}"
        async with self._http().get(f"{self.base_url}{path}") as resp:
            if resp.status != 200:
                raise EmulatorError(resp.status, await resp.text())
            return await resp.read()

    async def wait_for(
        self,
        user_id: int,
        bot: str,
        predicate: Predicate = None,
        since: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - the documented API; spans many long polls
    ) -> dict[str, Any]:
        """Wait for the next bot message (new or edited) after ``since`` matching ``predicate``.

        ``predicate`` is a callable on the client-view message dict, a substring
        of its text/caption, or None for any. ``since`` defaults to the position
        of the user's last action or of the last wait_for result in this chat.
        Raises TimeoutError naming what it waited for.
        """
        key = (int(user_id), str(bot).lstrip("@").lower())
        cursor = self._cursor.get(key, 0) if since is None else since
        start = cursor
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            batch = await self.events(user_id, bot, since=cursor, timeout=min(left, 10.0))
            for event in batch["events"]:
                cursor = max(cursor, event["seq"])
                msg = event.get("message")
                if event["kind"] not in ("message", "edit") or not msg or msg["from"] != "bot":
                    continue
                if _matches(msg, predicate):
                    self._cursor[key] = max(self._cursor.get(key, 0), event["seq"])
                    return dict(msg)
                seen.append(repr(msg.get("text") or msg.get("caption") or "<media>")[:80])
            await asyncio.sleep(0)
        shown = "; ".join(seen[-5:]) or "none"
        raise TimeoutError(
            f"waited {timeout:g}s for {_describe(predicate)} from @{bot} to user {user_id} "
            f"after seq {start}; bot messages seen meanwhile: {shown}"
        )

    # --- control ----------------------------------------------------------------

    async def set_faults(self, **rule: Any) -> dict[str, Any]:
        """Install a fault rule (fields as in POST /client/faults); returns the rule."""
        result = await self._call(
            "POST", "faults", json={k: v for k, v in rule.items() if v is not None}
        )
        installed: dict[str, Any] = result["rule"]
        return installed

    async def clear_faults(self) -> int:
        """Remove all fault rules; returns how many were removed."""
        return int((await self._call("DELETE", "faults"))["removed"])

    async def set_limits(self, **limits: Any) -> dict[str, Any]:
        """Change rate limits (enabled, global_per_s, per_chat_per_s, ...)."""
        result = await self._call(
            "POST", "limits", json={k: v for k, v in limits.items() if v is not None}
        )
        current: dict[str, Any] = result["limits"]
        return current

    async def set_settings(self, **settings: Any) -> dict[str, Any]:
        """Change emulator timings (``pre_checkout_timeout_s``); returns all settings."""
        result = await self._call(
            "POST", "settings", json={k: v for k, v in settings.items() if v is not None}
        )
        current: dict[str, Any] = result["settings"]
        return current

    async def stats(self) -> dict[str, Any]:
        """Counters per bot and method."""
        return await self._call("GET", "stats")
