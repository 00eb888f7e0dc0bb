"""The outbox sender: makes queued Bot API calls within Telegram's limits.

* global ≤ N calls/s per bot and ≤ M/s per chat (with a short burst), as token buckets;
* a 429 pauses only the bucket it came from, for ``retry_after`` seconds;
* 403 means the person blocked the bot: the row is marked ``unreachable``, the patient is
  flagged, staff are told through the log — never retried;
* 5xx, timeouts and dropped connections are retried with exponential backoff and jitter;
* ``relayFile`` rows pass a file from one bot to another (file ids belong to one bot): getFile
  + download through the source bot, upload through the row's bot; a file that can't be
  fetched (unknown id, gone, over the 20 MB getFile limit) fails the row at once, and the
  optional encrypted copy for the record is stored in the transaction that marks it sent;
* a row is marked ``sending`` under a lease (committed) before its call and ``sent`` with the
  message id after it. Several calls may be in flight (``concurrency``), one per chat at a time,
  so a chat's messages keep their order. The "sent" marks of finished calls are committed
  together with the "sending" marks of the next ones, so a crash leaves at most the calls in
  flight with an unknown fate: each of them is sent again once (at most one duplicate per call
  and crash, never a loss);
* replies first: a call to a chat that wrote to the bot within :data:`REPLY_WINDOW` is a reply,
  bound only by the per-chat limit; everything else (reminders, alerts to people who did not
  just write) is a bulk notification and shares the bot-wide ~30/s, which replies never wait
  for. With a paid-broadcast budget, bulk calls beyond the free rate carry
  ``allow_paid_broadcast`` (up to 1,000/s, 0.1 Star each) until the day's budget is spent.
  https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
  https://core.telegram.org/bots/api#paid-broadcasts
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    AnswerPreCheckoutQuery,
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    GetFile,
    RefundStarPayment,
    SendAudio,
    SendDocument,
    SendInvoice,
    SendMessage,
    SendPhoto,
    SendVideo,
    SendVoice,
    TelegramMethod,
)
from aiogram.methods.base import Response
from aiogram.types import BufferedInputFile, Message
from aiohttp import ClientResponseError
from sqlalchemy import update

from bot.telegram.reply import RELAY_METHOD
from flows.relay import MAX_DOWNLOAD, check_size
from storage.crypto import CryptoError
from storage.models import CaseMessage, Patient, utcnow
from storage.repositories import OutboxKey
from storage.uow import Database, UnitOfWork

log = logging.getLogger("careline.sender")

METHODS: dict[str, type[TelegramMethod[Any]]] = {
    "sendMessage": SendMessage,
    "editMessageText": EditMessageText,
    "editMessageReplyMarkup": EditMessageReplyMarkup,
    "deleteMessage": DeleteMessage,
    "answerCallbackQuery": AnswerCallbackQuery,
    "sendDocument": SendDocument,
    "sendPhoto": SendPhoto,
    "sendVoice": SendVoice,
    "sendAudio": SendAudio,
    "sendVideo": SendVideo,
    # Telegram Payments (flows/booking.py): the invoice, the answer before the money is taken
    # (within 10 s, so it is queued as urgent), and a Stars refund.
    "sendInvoice": SendInvoice,
    "answerPreCheckoutQuery": AnswerPreCheckoutQuery,
    "refundStarPayment": RefundStarPayment,
}
_FILE_FIELDS = ("document", "photo", "voice", "audio", "video")
# relayFile: the send method of each kind of relayed file.
RELAY_SEND: dict[str, type[TelegramMethod[Any]]] = {
    "photo": SendPhoto,
    "voice": SendVoice,
    "document": SendDocument,
    "audio": SendAudio,
    "video": SendVideo,
}
# aiogram parses every answer with Response[<return type>]; pydantic caches that generic
# class only weakly, so after a garbage collection it is rebuilt (milliseconds per call).
# Keeping a reference makes it a one-time cost.
_RESPONSE_TYPES = [
    Response[m.__returning__]  # type: ignore[name-defined]
    for m in (*METHODS.values(), GetFile)
]
MAX_ATTEMPTS = 25  # with backoff capped at 5 min this is about two hours of retrying
HELD_S = 1.0  # several workers: a chat whose earlier call another holds is skipped this long
RELAY_TIMEOUT = 120  # seconds for one download or upload of a relayed file (up to 50 MB)
# How long the "sent" marks of finished calls may wait for the transaction of the next call
# when nothing else is waiting (then they are written on their own).
MARK_LINGER = 0.25
# A chat that wrote to the bot this recently gets replies, not bulk notifications (the Bot API
# emulator models Telegram with a 60-second window; a little less here keeps a margin).
REPLY_WINDOW = 50.0
# Methods that deliver a message (Telegram's bulk limit and allow_paid_broadcast apply).
PAID_METHODS = frozenset(
    {
        "sendMessage",
        "sendDocument",
        "sendPhoto",
        "sendVoice",
        "sendAudio",
        "sendVideo",
        RELAY_METHOD,
    }
)
STARS_PER_PAID_MESSAGE = 0.1
BULK_BURST = 3.0  # bulk calls the bot-wide bucket may let through at once
# A bulk call may be claimed this long before its rate token is due and wait in its task for
# it, so the next call is ready when the token comes even if the next look is late (the
# writer busy with a sweep): a late look used to lose every token beyond the burst.
BULK_AHEAD_S = 0.25
PAID_PER_S = 1000.0


class RelayError(Exception):
    """A relayed file that can never be fetched or sent (the row fails; no retry)."""


def build_method(name: str, params: dict[str, Any]) -> TelegramMethod[Any]:
    """Rebuild the aiogram method object of a queued call."""
    cls = METHODS[name]
    args = dict(params)
    for key in _FILE_FIELDS:
        value = args.get(key)
        if isinstance(value, dict) and "data_b64" in value:
            args[key] = BufferedInputFile(base64.b64decode(value["data_b64"]), value["filename"])
    return cls.model_validate(args)


class TokenBucket:
    """A token bucket that can also be paused (after a 429) until a given time."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()
        self.paused_until = 0.0

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 if now)."""
        self._refill(now)
        if now < self.paused_until:
            return self.paused_until - now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        """Use one token."""
        self._refill(now)
        self.tokens -= 1

    def reserve(self, now: float) -> float:
        """Use the next token, due now or later: returns the seconds until it is due (the
        caller waits that long before the call). The bucket goes below zero meanwhile, so
        later calls queue behind it at the bucket's rate."""
        wait = self.wait_time(now)
        self.tokens -= 1
        return wait

    def pause(self, seconds: float, now: float) -> None:
        """Honour a 429: nothing through this bucket for ``seconds``."""
        self.paused_until = max(self.paused_until, now + seconds)
        self.tokens = 0


@dataclass
class Limits:
    """Sender rate limits (Telegram's documented defaults)."""

    global_per_s: float = 30.0
    per_chat_per_s: float = 1.0
    per_chat_burst: int = 3
    concurrency: int = 8
    # Stars a day the clinic allows for paid broadcasts (0: off; Telegram's 30/s applies).
    paid_stars_per_day: float = 0.0


@dataclass
class _Result:
    row_id: int
    status: str
    message_id: int | None = None
    error: str | None = None
    retry_in: float | None = None
    chat_id: int = 0
    bot: str = ""
    record: int | None = None  # relayFile: the case message to keep a copy of the file for
    data: bytes | None = None  # ... and the file, in memory until the "sent" mark commits


@dataclass
class SenderStats:
    """Counters, for tests and benchmarks."""

    sent: int = 0
    retried: int = 0
    rate_limited: int = 0
    unreachable: int = 0
    failed: int = 0
    paid: int = 0  # calls sent with allow_paid_broadcast


class OutboxSender:
    """Drains the outbox for all bots of this process."""

    def __init__(
        self,
        db: Database,
        bots: dict[str, Bot],
        limits: Limits | None = None,
        *,
        on_unreachable: Callable[[str, int], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.bots = bots
        self.limits = limits or Limits()
        # How long a call being made is ours: longer than any call takes (HTTP timeouts,
        # a relayed file's download and upload), so no other process makes it twice.
        self.lease = timedelta(seconds=120)
        # A small burst on the bot-wide buckets: calls stay close to evenly spaced, so
        # Telegram's own bucket never drains and jitter on the way cannot bunch them into a
        # 429 (a full bucket of 30 at the start of a burst of reminders did:
        # benchmarks/reminders.py), while a look that comes late (the writer is busy with a
        # sweep) can still use the tokens it missed instead of losing them (with no burst
        # at all, bulk sending stayed at ~18/s of 30).
        self._global = {role: TokenBucket(self.limits.global_per_s, BULK_BURST) for role in bots}
        self._paid = {role: TokenBucket(PAID_PER_S, 1.0) for role in bots}
        self._ahead = 0  # calls claimed ahead of their bulk token, waiting in their tasks
        self._paid_day = ""
        self._paid_used = 0.0  # Stars committed to paid calls today (UTC), in this process
        self._recent: dict[tuple[str, int], float] = {}
        self._chats: dict[tuple[str, int], TokenBucket] = {}
        # Several workers share this outbox: take a chat's calls only in order (see
        # OutboxRepository.claim_many); one process alone keeps the order itself.
        self.in_order = False
        # Several workers: only the one that leads (BulkLeader) makes bulk calls, so the
        # bot-wide ~30/s (and the paid-broadcast budget) hold for the whole deployment;
        # every worker still sends replies. None: this process sends everything.
        self.bulk_allowed: Callable[[], bool] | None = None
        self._held: dict[tuple[str, int], float] = {}  # chats another worker holds, until
        self._wake = asyncio.Event()
        self._poke = asyncio.Event()  # new rows were committed (a subset of the wake-ups)
        self._poked = False
        self._more = False  # the last look saw more than the call it started
        self._stopping = False
        self._results: list[_Result] = []
        self._inflight: dict[int, OutboxKey] = {}
        self._sem = asyncio.Semaphore(self.limits.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = SenderStats()
        self.on_unreachable = on_unreachable

    def poke(self) -> None:
        """New rows were committed: look now rather than at the next tick."""
        self._poked = True
        self._poke.set()
        self._wake.set()

    def note_inbound(self, bot: str, chat_id: int | None) -> None:
        """A person just wrote to ``bot`` from ``chat_id``: calls to that chat are replies."""
        if chat_id:
            if len(self._recent) > 100_000:
                cutoff = time.monotonic() - REPLY_WINDOW
                self._recent = {k: t for k, t in self._recent.items() if t >= cutoff}
            self._recent[(bot, chat_id)] = time.monotonic()

    def _is_reply(self, bot: str, chat_id: int, now_m: float) -> bool:
        wrote = self._recent.get((bot, chat_id))
        return wrote is not None and now_m - wrote < REPLY_WINDOW

    def _paid_left(self) -> bool:
        """Whether today's paid-broadcast budget allows one more paid call."""
        if self.limits.paid_stars_per_day <= 0:
            return False
        today = utcnow().date().isoformat()
        if today != self._paid_day:
            self._paid_day, self._paid_used = today, 0.0
        return self._paid_used + STARS_PER_PAID_MESSAGE <= self.limits.paid_stars_per_day + 1e-9

    def _chat_bucket(self, bot: str, chat_id: int) -> TokenBucket:
        key = (bot, chat_id)
        bucket = self._chats.get(key)
        if bucket is None:
            if len(self._chats) > 100_000:
                self._chats.clear()
            bucket = TokenBucket(self.limits.per_chat_per_s, self.limits.per_chat_burst)
            self._chats[key] = bucket
        return bucket

    async def run(self) -> None:
        """Send until :meth:`stop`; on stop, finish the calls in flight and record them."""
        if self.db.sqlite:
            # One process per SQLite database: what a previous run left "sending" is made
            # again at once (on PostgreSQL another live process may hold it: its lease rules).
            with contextlib.suppress(Exception):
                async with self.db.uow() as uow:
                    await uow.outbox.release_leases()
                    await uow.commit()
        backoff = 0.5
        while not self._stopping:
            # Clear before looking, so a poke() during step() is not lost.
            self._wake.clear()
            self._poke.clear()
            try:
                delay = await self.step()
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - keep sending once the database is back
                log.error(
                    "outbox step failed; retrying",
                    extra={"ctx": {"error": type(exc).__name__, "retry_in_s": backoff}},
                )
                delay = backoff
                backoff = min(backoff * 2, 30.0)
            if delay == 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(delay, 1.0))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush()

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the current calls."""
        self._stopping = True
        self._poke.set()
        self._wake.set()

    async def _flush(self) -> None:
        if not self._results:
            return
        async with self.db.uow() as uow:
            await self._apply_results(uow)
            await uow.commit()

    async def _apply_results(self, uow: UnitOfWork) -> None:
        results, self._results = self._results, []
        if not results:
            return
        now = utcnow()
        marks: list[dict[str, Any]] = []
        for res in results:
            mark: dict[str, Any] = {"id": res.row_id, "status": res.status, "error": res.error}
            if res.status == "sent":
                mark.update(at=now, message_id=res.message_id)
                if res.record is not None and res.data is not None:
                    await self._keep_copy(uow, res.record, res.data)
                res.data = None
            elif res.status == "pending" and res.retry_in is not None:
                mark["retry_at"] = now + timedelta(seconds=res.retry_in)
            marks.append(mark)
            if res.status == "unreachable" and res.bot == "patient":
                await uow.session.execute(
                    update(Patient)
                    .where(Patient.tg_user_id == res.chat_id)
                    .values(unreachable=True)
                )
            self._inflight.pop(res.row_id, None)
        await uow.outbox.record(marks)

    @staticmethod
    async def _keep_copy(uow: UnitOfWork, record: int, data: bytes) -> None:
        """Store a relayed file, encrypted under the patient's key, with its case message;
        skipped when the message, its case or the patient's key is gone (erasure)."""
        row = await uow.session.get(CaseMessage, record)
        case = await uow.consultations.get(row.consultation_id) if row is not None else None
        if row is None or case is None:
            log.info("relayed file's record is gone; no copy kept", extra={"ctx": {}})
            return
        try:
            await uow.consultations.set_message_file(case, row, data)
        except CryptoError:
            log.info("relayed file's owner key is gone; no copy kept", extra={"ctx": {}})

    async def step(self) -> float:
        """Start the calls that may go now (up to the free places in flight, one per chat);
        returns 0 if it should be called again at once, else how long to wait before the
        next look."""
        if len(self._tasks) >= self.limits.concurrency:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        await self._linger()
        self._poked = self._more = False
        free = self.limits.concurrency - len(self._tasks)
        now_m = time.monotonic()
        starts: list[tuple[OutboxKey, dict[str, Any], int, float]] = []
        async with self.db.uow() as uow:
            await self._apply_results(uow)
            now = utcnow()
            rows, heads, nxt = await uow.outbox.look(now, 100, exclude=list(self._inflight))
            chosen, wait = self._choose(rows, heads, free, now_m)
            if not chosen:
                await uow.commit()
                if rows:
                    # Calls are waiting for a rate token: the next look is timed by that, and
                    # results are written with it (no lingering for a poke).
                    self._more = True
                    return min(wait, self._seconds_until(nxt))
                return self._seconds_until(nxt)
            # Anything else seen now is looked at again as soon as a place is free.
            self._more = len(rows) > len(chosen)
            claimed = await uow.outbox.claim_many(
                [k.id for k, _, _ in chosen], now, self.lease, in_order=self.in_order
            )
            unreadable: list[dict[str, Any]] = []
            for key, paid, delay in chosen:
                got = claimed.get(key.id)
                if got is None:  # gone meanwhile (e.g. erased with its chat) or taken
                    if delay:
                        self._ahead -= 1
                    if self.in_order and key.chat_id:
                        # Behind an earlier call another worker holds (perhaps a dead one's,
                        # until its lease ends): not looked at again for a moment, so this
                        # sender does not spin on it.
                        self._held[(key.bot, key.chat_id)] = now_m + HELD_S
                    continue
                attempts, blob = got
                params: dict[str, Any] | None = None
                if blob is not None:
                    with contextlib.suppress(CryptoError):
                        params = await uow.outbox.open_payload(key.id, blob)
                if params is None:
                    # No or unreadable payload (its key is gone): nothing sensible to send.
                    unreadable.append({"id": key.id, "status": "failed", "error": "unreadable"})
                    if delay:
                        self._ahead -= 1
                    continue
                if paid:
                    params = {**params, "allow_paid_broadcast": True}
                starts.append((key, params, attempts, delay))
            await uow.outbox.record(unreadable)
            await uow.commit()
        for key, params, attempts, delay in starts:
            self._inflight[key.id] = key
            task = asyncio.create_task(
                self._send(key.id, key.bot, key.chat_id, key.method, params, attempts, delay)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return 0.0

    def _choose(
        self,
        rows: list[OutboxKey],
        heads: dict[tuple[str, int], int],
        free: int,
        now_m: float,
    ) -> tuple[list[tuple[OutboxKey, bool, float]], float]:
        """The calls to start now, most urgent first, with whether each is a paid broadcast
        and how long it waits for its bulk token first; and, if none, how long until one may
        go. Takes (or reserves) their rate tokens."""
        chosen: list[tuple[OutboxKey, bool, float]] = []
        wait = 1.0
        # Keep per-chat order: nothing overtakes a call that is in flight or waiting out a
        # retry delay for the same chat, and a chat gets one call at a time (chat 0 holds
        # unordered calls, e.g. callback answers).
        blocked = {(k.bot, k.chat_id) for k in self._inflight.values() if k.chat_id}
        if self._held:
            self._held = {k: t for k, t in self._held.items() if t > now_m}
            blocked.update(self._held)
        for row in rows:
            if len(chosen) >= free:
                break
            key = (row.bot, row.chat_id)
            if key in blocked or row.bot not in self.bots:
                continue
            head = heads.get(key) if row.chat_id else None
            if head is not None and head < row.id:
                continue
            if row.chat_id:
                cw = self._chat_bucket(*key).wait_time(now_m)
                if cw > 0:
                    # The chat's bucket is empty: a later message to it must not overtake.
                    blocked.add(key)
                    wait = min(wait, cw)
                    continue
            paid = False
            delay = 0.0
            bulk = row.chat_id != 0 and not self._is_reply(row.bot, row.chat_id, now_m)
            if bulk and self.bulk_allowed is not None and not self.bulk_allowed():
                blocked.add(key)  # the leading worker sends it; nothing of this chat overtakes
                continue
            if bulk:
                gw = self._global[row.bot].wait_time(now_m)
                if gw == 0:
                    self._global[row.bot].take(now_m)
                elif (
                    gw <= BULK_AHEAD_S
                    and now_m >= self._global[row.bot].paused_until
                    and self._ahead < self.limits.concurrency - 2
                ):
                    # Claimed now, made when its token is due (see BULK_AHEAD_S); two places
                    # in flight stay free for replies.
                    delay = self._global[row.bot].reserve(now_m)
                    self._ahead += 1
                elif (
                    row.method in PAID_METHODS
                    and self._paid_left()
                    and self._paid[row.bot].wait_time(now_m) == 0
                ):
                    self._paid[row.bot].take(now_m)
                    self._paid_used += STARS_PER_PAID_MESSAGE
                    self.stats.paid += 1
                    paid = True
                else:
                    blocked.add(key)
                    wait = min(wait, gw)
                    continue
            if row.chat_id:
                self._chat_bucket(*key).take(now_m)
                blocked.add(key)
            chosen.append((row, paid, delay))
        return chosen, wait

    async def _linger(self) -> None:
        """Calls just made, nothing else known to be waiting: keep their "sent" marks for a
        moment, so that they go into the transaction that marks the next call "sending"
        (new rows come with a poke) instead of a transaction of their own. The marks are
        still written after the calls, and with concurrency 1 there is still at most one call
        whose outcome is not in the database (the next call is only marked "sending" in the
        transaction that records it): at most one duplicate per crash, as before."""
        if (
            not self._results
            or self._poked
            or self._more
            or self._stopping
            or self._tasks
            or any(r.status != "sent" for r in self._results)
        ):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._poke.wait(), timeout=MARK_LINGER)

    @staticmethod
    def _seconds_until(when: datetime | None) -> float:
        if when is None:
            return 1.0
        if when.tzinfo is None:  # SQLite hands back naive UTC
            when = when.replace(tzinfo=UTC)
        return max(0.01, min(1.0, (when - utcnow()).total_seconds()))

    async def _send(
        self,
        row_id: int,
        bot_role: str,
        chat_id: int,
        method: str,
        params: dict[str, Any],
        attempts: int,
        delay: float = 0.0,
    ) -> None:
        bot = self.bots[bot_role]
        res = _Result(row_id, "sent", chat_id=chat_id, bot=bot_role)
        if delay:
            try:
                await asyncio.sleep(delay)  # its bulk token is due then (BULK_AHEAD_S)
            finally:
                self._ahead -= 1
        try:
            if method == RELAY_METHOD:
                call, data = await self._relay_call(params)
                result = await bot(call, request_timeout=RELAY_TIMEOUT)
                record = params.get("record")
                if isinstance(record, int):
                    res.record, res.data = record, data
            else:
                result = await bot(build_method(method, params), request_timeout=30)
            if isinstance(result, Message):
                res.message_id = result.message_id
            self.stats.sent += 1
        except RelayError as exc:
            self.stats.failed += 1
            log.error(
                "file could not be relayed",
                extra={"ctx": {"bot": bot_role, "outbox_id": row_id, "error": str(exc)}},
            )
            res = _Result(row_id, "failed", error=f"relay: {exc}", chat_id=chat_id, bot=bot_role)
        except TelegramRetryAfter as exc:
            self.stats.rate_limited += 1
            now = time.monotonic()
            # Telegram does not say which limit was hit; the chat's bucket is the one this call
            # used beyond the global one, so pause the chat (and the bot when it is not a chat).
            if chat_id:
                self._chat_bucket(bot_role, chat_id).pause(exc.retry_after, now)
            else:
                self._global[bot_role].pause(exc.retry_after, now)
            res = _Result(
                row_id,
                "pending",
                error="429",
                retry_in=exc.retry_after,
                chat_id=chat_id,
                bot=bot_role,
            )
        except TelegramForbiddenError:
            self.stats.unreachable += 1
            log.warning(
                "recipient unreachable (blocked the bot)",
                extra={"ctx": {"bot": bot_role, "outbox_id": row_id}},
            )
            res = _Result(row_id, "unreachable", error="403", chat_id=chat_id, bot=bot_role)
            if self.on_unreachable is not None:
                with contextlib.suppress(Exception):
                    await self.on_unreachable(bot_role, chat_id)
        except TelegramBadRequest as exc:
            if "not modified" in exc.message:
                self.stats.sent += 1
            else:
                self.stats.failed += 1
                log.error(
                    "call rejected by Telegram",
                    extra={
                        "ctx": {
                            "bot": bot_role,
                            "outbox_id": row_id,
                            "method": method,
                            "error": exc.message[:120],
                        }
                    },
                )
                res = _Result(
                    row_id, "failed", error=exc.message[:200], chat_id=chat_id, bot=bot_role
                )
        except (TelegramServerError, TelegramNetworkError, TimeoutError, OSError) as exc:
            res = self._retry(row_id, attempts, type(exc).__name__, chat_id, bot_role)
        except Exception as exc:  # noqa: BLE001 - unknown API errors (401/404/409) are retried
            res = self._retry(row_id, attempts, type(exc).__name__, chat_id, bot_role)
        self._results.append(res)
        self._wake.set()

    async def _relay_call(self, params: dict[str, Any]) -> tuple[TelegramMethod[Any], bytes]:
        """Fetch a relayed file through its source bot; the upload call and the bytes.

        Raises :class:`RelayError` when the file can never be fetched or sent; a 429, 5xx or
        network error propagates and is handled like any call's."""
        kind = str(params.get("kind"))
        send = RELAY_SEND.get(kind)
        source = self.bots.get(str(params.get("source_bot")))
        if send is None or source is None:
            raise RelayError("unknown kind or source bot")
        try:
            info = await source.get_file(str(params.get("file_id")), request_timeout=30)
        except TelegramBadRequest as exc:  # unknown or expired file id, too big
            raise RelayError(exc.message[:120]) from None
        except TelegramForbiddenError:
            raise RelayError("the source bot may not read this file") from None
        if (info.file_size or 0) > MAX_DOWNLOAD:
            raise RelayError("file is too big to download")
        if not info.file_path:
            raise RelayError("file has no download path")
        try:
            buf = await source.download_file(info.file_path, timeout=RELAY_TIMEOUT)
        except ClientResponseError as exc:
            if 400 <= exc.status < 500 and exc.status != 429:
                raise RelayError(f"download refused ({exc.status})") from None
            raise
        assert buf is not None  # no destination given: aiogram returns a BytesIO
        data = buf.read()
        if not data:
            raise RelayError("file is empty")
        if check_size(kind, len(data)) is not None:
            raise RelayError(f"file is too big to send as {kind}")
        name = str(params.get("filename") or PurePosixPath(info.file_path).name or kind)
        args: dict[str, Any] = {"chat_id": params["chat_id"], kind: BufferedInputFile(data, name)}
        for key in ("caption", "parse_mode", "protect_content", "allow_paid_broadcast"):
            if key in params:
                args[key] = params[key]
        return send.model_validate(args), data

    def _retry(self, row_id: int, attempts: int, error: str, chat_id: int, bot: str) -> _Result:
        if attempts >= MAX_ATTEMPTS:
            self.stats.failed += 1
            log.error(
                "call abandoned after retries",
                extra={"ctx": {"bot": bot, "outbox_id": row_id, "error": error}},
            )
            return _Result(row_id, "failed", error=error, chat_id=chat_id, bot=bot)
        self.stats.retried += 1
        backoff = min(300.0, 0.5 * 2 ** (attempts - 1)) * (0.5 + random.random())  # noqa: S311
        return _Result(row_id, "pending", error=error, retry_in=backoff, chat_id=chat_id, bot=bot)


# A session-level advisory lock: the worker whose connection holds it sends the bulk calls.
BULK_LOCK = 0x6361_7265_6275_6C6B  # "carebulk"


class BulkLeader:
    """Elects one bulk sender among workers sharing PostgreSQL: the worker holding a
    session-level advisory lock on its own connection leads. A leader that dies loses the
    connection and with it the lock; another worker takes it at its next try (every
    ``every`` seconds). :meth:`try_once` is also what tests call."""

    def __init__(self, db: Database, *, every: float = 5.0) -> None:
        self.db = db
        self.every = every
        self.leading = False
        self._conn: Any = None
        self._stop = asyncio.Event()

    async def try_once(self) -> bool:
        """Take the lead if it is free (or check the held connection is alive)."""
        from sqlalchemy import text

        try:
            if self._conn is None:
                self._conn = await self.db.engine.connect()
            if self.leading:
                await self._conn.execute(text("SELECT 1"))
            else:
                got = await self._conn.scalar(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": BULK_LOCK}
                )
                await self._conn.commit()  # the lock is the session's, not the transaction's
                self.leading = bool(got)
                if self.leading:
                    log.info("this worker sends the bulk calls now", extra={"ctx": {}})
        except Exception as exc:  # noqa: BLE001 - a lost connection: follow, try again later
            log.warning("bulk lead lost", extra={"ctx": {"error": type(exc).__name__}})
            self.leading = False
            await self._drop()
        return self.leading

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # closed, not pooled: the lock goes with it
            with contextlib.suppress(Exception):
                await conn.close()

    async def run(self) -> None:
        """Try (or hold) the lead until :meth:`stop`."""
        while not self._stop.is_set():
            await self.try_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.every)

    async def stop(self) -> None:
        """Give up the lead at once (another worker takes it at its next try)."""
        self._stop.set()
        self.leading = False
        await self._drop()
