"""Where updates come from: our own getUpdates loop, or a webhook server.

aiogram's built-in polling acknowledges an update before its handler finishes and its webhook
handler answers 200 before processing. Both loops here commit the update to the inbox first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from bot.telegram.processor import UpdateProcessor, update_problem

log = logging.getLogger("careline.sources")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
ALLOWED_UPDATES = [
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "pre_checkout_query",  # Telegram Payments: answered within 10 s
]


class PollError(Exception):
    """getUpdates answered with an error; ``retry_after`` is set for a 429."""

    def __init__(self, code: int, description: str, retry_after: float | None = None) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.retry_after = retry_after


class Poller:
    """Long-polls getUpdates for one bot; the offset advances only after the inbox commit.

    Updates are read as raw JSON, not aiogram models, so a shape aiogram cannot parse is stored
    and dropped on its own instead of blocking the queue.
    """

    def __init__(
        self,
        role: str,
        api_base: str,
        token: str,
        processor: UpdateProcessor,
        *,
        timeout: int = 25,
    ) -> None:
        self.role = role
        self.url = f"{api_base.rstrip('/')}/bot{token}/getUpdates"
        self.processor = processor
        self.timeout = timeout
        self._stopping = asyncio.Event()
        self.offset: int | None = None

    async def run(self) -> None:
        """Poll until :meth:`stop`."""
        backoff = 0.5
        async with aiohttp.ClientSession() as http:
            while not self._stopping.is_set():
                try:
                    raw = await self._get_updates(http)
                    backoff = 0.5
                except asyncio.CancelledError:
                    raise
                except PollError as exc:
                    if exc.retry_after is not None:
                        await self._sleep(exc.retry_after)
                        continue
                    log.error(
                        "getUpdates refused", extra={"ctx": {"bot": self.role, "code": exc.code}}
                    )
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                    log.warning(
                        "getUpdates failed, retrying",
                        extra={"ctx": {"bot": self.role, "error": type(exc).__name__}},
                    )
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                if not raw:
                    continue
                while not await self._store(raw):
                    # Not acknowledged: Telegram keeps the updates until we can store them.
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    if self._stopping.is_set():
                        return
                # Acknowledge only now: the next getUpdates with this offset confirms them.
                self.offset = max(int(u["update_id"]) for u in raw) + 1

    async def _store(self, raw: list[dict[str, Any]]) -> bool:
        try:
            await self.processor.store(self.role, raw)
        except Exception as exc:  # noqa: BLE001 - e.g. the database is briefly unavailable
            log.error(
                "storing updates failed; not acknowledging them",
                extra={"ctx": {"bot": self.role, "error": type(exc).__name__}},
            )
            return False
        return True

    async def _get_updates(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        payload: dict[str, Any] = {"timeout": self.timeout, "allowed_updates": ALLOWED_UPDATES}
        if self.offset is not None:
            payload["offset"] = self.offset
        stop = asyncio.ensure_future(self._stopping.wait())
        call = asyncio.ensure_future(
            http.post(
                self.url, json=payload, timeout=aiohttp.ClientTimeout(total=self.timeout + 10)
            )
        )
        try:
            done, _ = await asyncio.wait({stop, call}, return_when=asyncio.FIRST_COMPLETED)
            if call not in done:
                call.cancel()
                return []
            async with call.result() as resp:
                body = await resp.json(content_type=None)
        finally:
            stop.cancel()
        if not isinstance(body, dict):
            raise ValueError("getUpdates answer is not an object")
        if not body.get("ok"):
            params = body.get("parameters") or {}
            retry = params.get("retry_after") if isinstance(params, dict) else None
            raise PollError(
                int(body.get("error_code") or 0),
                str(body.get("description", "")),
                float(retry) if isinstance(retry, int | float) else None,
            )
        result = body.get("result")
        if not isinstance(result, list):
            raise ValueError("getUpdates result is not a list")
        return [u for u in result if update_problem(u) is None]

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def stop(self) -> None:
        """Stop after the current call (an open long poll is abandoned, not acknowledged)."""
        self._stopping.set()


def webhook_routes(
    app: web.Application, processor: UpdateProcessor, secret: str, roles: list[str]
) -> None:
    """POST /webhook/<role>: check the secret in constant time, commit, then answer 200.
    A body that is not an update (not JSON, nested too deep, an ``update_id`` that is not a
    non-negative integer in range) gets 400 and is never stored: Telegram does not retry a
    4xx forever as it does a 5xx."""

    async def handle(request: web.Request) -> web.Response:
        role = request.match_info["role"]
        if role not in roles:
            return web.Response(status=404)
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=401)
        try:
            body = await request.json(loads=json.loads)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return web.Response(status=400)
        problem = update_problem(body)
        if problem is not None:
            log.warning("webhook update refused", extra={"ctx": {"bot": role, "why": problem}})
            return web.Response(status=400)
        try:
            await processor.store(role, [body])
        except Exception as exc:  # noqa: BLE001 - Telegram retries a non-2xx delivery
            log.error(
                "storing webhook update failed",
                extra={"ctx": {"bot": role, "error": type(exc).__name__}},
            )
            return web.Response(status=503)
        return web.Response(status=200)

    app.router.add_post("/webhook/{role}", handle)
