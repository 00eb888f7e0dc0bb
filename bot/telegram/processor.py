"""Inbox and update processing.

1. ``store()``: raw updates are written to the inbox (encrypted) and committed; only then does
   the update source acknowledge them (next getUpdates offset / webhook 200). Replays of an
   ``update_id`` already stored are ignored.
2. The processing loop takes pending inbox rows in order and feeds them to the dispatcher in
   batches: one transaction per batch, one SAVEPOINT per update, so an update's effects, its
   outbox messages and its inbox row being marked done commit together (group commit), and a
   failing update rolls back alone.

While the loop runs and nothing older waits in the inbox, ``store()`` hands its updates to the
loop instead, which writes their inbox rows and processes them in ONE transaction with every
other update that arrived meanwhile (group commit), and only then returns, so the source still
acknowledges nothing before it is committed. The rows are written ``done`` without a payload
(nothing to encrypt and wipe). If that transaction fails as a whole, the updates are stored
the usual way and the loop takes them from the inbox.

Workers sharing the inbox (``shared``; PostgreSQL, webhook mode): every update is stored
first, and :meth:`UpdateProcessor.process_pending` takes only chats no other worker holds (a
transaction-scoped advisory lock per chat), each chat's updates in update-id order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bot.logging import CURRENT_UPDATE
from bot.telegram.reply import PRIORITY_REPLY, Replier
from locales import Translator, normalize_locale
from storage.models import InboxUpdate
from storage.uow import Database, UnitOfWork

log = logging.getLogger("careline.processor")

# Telegram's update ids are positive and sequential; anything outside JSON's exactly
# representable integers (or a boolean, which Python counts as an int) is not one of them.
MAX_UPDATE_ID = 2**53 - 1
# A real update nests about ten levels (a callback's message, its reply, an entity's user);
# far deeper is an attack on the parsers and handlers downstream, not a message.
MAX_DEPTH = 32


def update_problem(update: Any) -> str | None:
    """Why a raw update cannot be taken (``shape``, ``update_id`` or ``depth``), or None.
    Checked before anything is stored, so a bad one never takes the place of a real id."""
    if not isinstance(update, dict):
        return "shape"
    uid = update.get("update_id")
    if type(uid) is not int or not 0 <= uid <= MAX_UPDATE_ID:
        return "update_id"
    stack: list[tuple[Any, int]] = [(update, 1)]
    while stack:  # iterative: a deep document must not exhaust the recursion limit here
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return "depth"
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return None


def hash_user(user_id: int | None) -> str:
    """A short, stable, non-reversible tag for a Telegram user in logs."""
    if user_id is None:
        return "-"
    return hashlib.sha256(f"careline-log|{user_id}".encode()).hexdigest()[:12]


def _sender_of(update: dict[str, Any]) -> tuple[int | None, int | None, str | None]:
    """(user id, chat id, language code) of a raw update, whatever its type."""
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        user = value.get("from") or value.get("user") or {}
        message = value.get("message")
        chat = value.get("chat") or (message.get("chat") if isinstance(message, dict) else None)
        uid = user.get("id") if isinstance(user, dict) else None
        cid = chat.get("id") if isinstance(chat, dict) else None
        lang = user.get("language_code") if isinstance(user, dict) else None
        return (
            uid if isinstance(uid, int) else None,
            cid if isinstance(cid, int) else None,
            lang if isinstance(lang, str) else None,
        )
    return None, None, None


def _is_connection_error(exc: BaseException) -> bool:
    """The database (not the update) is the problem: retry later, blame no row."""
    if isinstance(exc, OSError | TimeoutError | InterfaceError):
        return True
    return isinstance(exc, OperationalError | DBAPIError) and bool(
        getattr(exc, "connection_invalidated", False)
        or "locked" in str(exc).lower()
        or "connect" in str(exc).lower()
    )


@dataclass
class BotRuntime:
    """One bot as the processor sees it."""

    role: str
    bot: Bot
    dispatcher: Dispatcher


class UpdateProcessor:
    """Stores updates durably and processes them exactly once."""

    def __init__(
        self,
        db: Database,
        bots: dict[str, BotRuntime],
        *,
        default_locale: str = "en",
        emergency_number: str = "112",
        batch_size: int = 64,
        on_commit: Callable[[], None] | None = None,
        on_inbound: Callable[[str, int | None], None] | None = None,
        shared: bool = False,
    ) -> None:
        self.db = db
        # Several workers share this inbox (PostgreSQL): every update is stored first, and a
        # worker processes a chat's pending updates only while it holds that chat (see
        # process_pending); no worker processes what it received ahead of the inbox.
        self.shared = shared
        self.bots = bots
        self.default_locale = default_locale
        self.emergency_number = emergency_number
        self.batch_size = batch_size
        self.on_commit = on_commit
        # told of each chat that wrote (the sender then treats calls to it as replies)
        self.on_inbound = on_inbound
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        # Updates handed over by store(), waiting for the loop's next transaction.
        self._incoming: list[tuple[str, list[dict[str, Any]], asyncio.Future[int]]] = []
        # Something may wait in the inbox (at start, after a failed group): new updates are
        # stored and queued behind it, never processed ahead of it.
        self._backlog = True
        self.processed = 0
        self.failed = 0
        # Operations hooks (bot/ops_web.py): told of the updates received (role, updates) and
        # of each one processed (role, kind, ok, seconds).
        self.on_received: Callable[[str, Sequence[dict[str, Any]]], None] | None = None
        self.observer: Callable[[str, str, bool, float], None] | None = None

    async def store(self, role: str, updates: Sequence[dict[str, Any]]) -> int:
        """Commit raw updates to the inbox; returns how many were new. An update that
        :func:`update_problem` refuses is dropped (logged), never stored."""
        if not updates:
            return 0
        refused = [u for u in updates if update_problem(u) is not None]
        if refused:
            log.warning(
                "updates refused before storing",
                extra={"ctx": {"count": len(refused), "why": update_problem(refused[0])}},
            )
            updates = [u for u in updates if update_problem(u) is None]
            if not updates:
                return 0
        if self.on_received is not None:
            self.on_received(role, updates)
        if self._running and not self._stopping and not self.shared:
            done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._incoming.append((role, list(updates), done))
            self._wake.set()
            return await done
        return await self._store_only(role, updates)

    async def _store_only(self, role: str, updates: Sequence[dict[str, Any]]) -> int:
        """Commit updates to the inbox as pending (processed later from there)."""
        async with self.db.uow() as uow:
            new = await uow.inbox.store(role, updates)
            await uow.commit()
        if new:
            self._wake.set()
        return len(new)

    async def _process_incoming(self) -> int:
        """Store and process what store() handed over, in one transaction; returns how many
        updates were new. On a failure of the transaction itself, store them as pending."""
        group, self._incoming = self._incoming, []
        counts: list[int] = []
        try:
            async with self.db.uow() as uow:
                for role, updates, _ in group:
                    rows = await uow.inbox.store_processed(role, updates)
                    counts.append(len(rows))
                    for row_id, raw in rows:
                        await self._process_one(uow, role, row_id, raw)
                await uow.commit()
        except Exception as exc:  # noqa: BLE001 - the updates must still be stored
            self._backlog = True
            log.warning(
                "group processing failed; storing its updates for the inbox",
                extra={"ctx": {"error": type(exc).__name__, "updates": len(group)}},
            )
            for role, updates, done in group:
                try:
                    done.set_result(await self._store_only(role, updates))
                except Exception as store_exc:  # noqa: BLE001 - not acknowledged: resent
                    done.set_exception(store_exc)
            return 0
        for (_, _, done), count in zip(group, counts, strict=True):
            if not done.done():
                done.set_result(count)
        if self.on_commit:
            self.on_commit()
        return sum(counts)

    def wake(self) -> None:
        """Tell the loop there may be work."""
        self._wake.set()

    async def run(self) -> None:
        """Process pending inbox rows until :meth:`stop`; drains what is stored first."""
        backoff = 0.5
        self._running = True
        self._backlog = True
        try:
            await self._run(backoff)
        finally:
            self._running = False
            # Anything handed over after the last look is stored, never dropped.
            group, self._incoming = self._incoming, []
            for role, updates, done in group:
                try:
                    done.set_result(await self._store_only(role, updates))
                except Exception as exc:  # noqa: BLE001 - not acknowledged: resent
                    done.set_exception(exc)

    async def _run(self, backoff: float) -> None:
        while True:
            # Clear before looking, not after: a store() that lands while this batch runs
            # sets the event again and is picked up at once (no lost wake-up).
            self._wake.clear()
            try:
                if self._incoming and not self._backlog:
                    # No empty look at the inbox after this: the next store() wakes the loop,
                    # the timeout below still looks now and then (rows of other processes).
                    await self._process_incoming()
                    done = 0
                else:
                    if self._incoming:  # behind older rows: into the inbox, in order
                        group, self._incoming = self._incoming, []
                        for role, updates, handed in group:
                            try:
                                handed.set_result(await self._store_only(role, updates))
                            except Exception as exc:  # noqa: BLE001 - not acknowledged
                                handed.set_exception(exc)
                    done = await self.process_pending()
                    if done < self.batch_size:
                        self._backlog = False
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - the database may be briefly unavailable
                # The batch rolled back; its rows are still pending and will be retried. If one
                # row breaks the batch itself (not its handler), set it aside so the rest flow.
                if not _is_connection_error(exc) and await self._isolate_poison():
                    continue
                log.error(
                    "processing batch failed; retrying",
                    extra={"ctx": {"error": type(exc).__name__, "retry_in_s": backoff}},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                if self._stopping and backoff >= 30.0:
                    return
                continue
            if done >= self.batch_size:
                continue  # a full batch: there is probably more right now
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                # The timeout also picks up rows another process stored (webhook workers).
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    async def stop(self) -> None:
        """Finish the current batch and whatever is already stored, then return from run()."""
        self._stopping = True
        self._wake.set()

    async def _isolate_poison(self) -> bool:
        """After a failed batch: retry the oldest row this worker may take alone; if that fails
        too (and not for a connection problem), mark it failed. Returns whether progress was
        made."""
        try:
            return await self.process_pending(limit=1) > 0
        except Exception as exc:  # noqa: BLE001 - deciding below whether it is the row's fault
            if _is_connection_error(exc):
                return False
            async with self.db.uow() as uow:
                rows = await self._takeable(uow, 1)
                if not rows:
                    return False
                await uow.inbox.finish([rows[0].id], "failed", f"poison: {type(exc).__name__}")
                await uow.commit()
            self.failed += 1
            log.error(
                "update set aside: it breaks processing itself",
                extra={
                    "ctx": {
                        "bot": rows[0].bot,
                        "update_id": rows[0].update_id,
                        "error": type(exc).__name__,
                    }
                },
            )
            return True

    async def _takeable(self, uow: UnitOfWork, size: int) -> list[InboxUpdate]:
        """The pending updates this worker may process now. Alone: the oldest. Sharing the
        inbox: those of the chats with pending updates that no other worker holds, each taken
        for this transaction (a per-chat lock that ends with the transaction — or with the
        worker's connection, when it dies), each chat's in Telegram's order."""
        if not self.shared:
            return await uow.inbox.pending(size)
        chats = await uow.inbox.pending_chats(size)
        mine = [c for c in chats if await uow.inbox.lock_chat(*c)]
        return await uow.inbox.pending_of_chats(mine, size)

    async def process_pending(self, limit: int | None = None) -> int:
        """Process one batch of pending updates (see :meth:`_takeable`) in one transaction;
        returns its size."""
        async with self.db.uow() as uow:
            rows = await self._takeable(uow, limit or self.batch_size)
            if not rows:
                return 0
            done: list[int] = []
            for row in rows:
                ok = await self._process_one(uow, row.bot, row.id, await uow.inbox.payload(row))
                if ok:
                    done.append(row.id)
            await uow.inbox.finish(done, "done")
            await uow.commit()
        if self.on_commit:
            self.on_commit()
        return len(rows)

    async def _process_one(
        self, uow: UnitOfWork, role: str, row_id: int, raw: dict[str, Any]
    ) -> bool:
        """:meth:`_handle_one` with the update's correlation id in every line logged meanwhile,
        then the observer told how it went and how long it took."""
        token = CURRENT_UPDATE.set(f"{role}:{raw.get('update_id')}")
        start, ok = time.perf_counter(), False
        try:
            ok = await self._handle_one(uow, role, row_id, raw)
            return ok
        finally:
            CURRENT_UPDATE.reset(token)
            if self.observer is not None:
                kind = next((k for k in raw if k != "update_id"), "none")
                self.observer(role, kind, ok, time.perf_counter() - start)

    async def _handle_one(
        self, uow: UnitOfWork, role: str, row_id: int, raw: dict[str, Any]
    ) -> bool:
        runtime = self.bots.get(role)
        user_id, chat_id, lang = _sender_of(raw)
        if self.on_inbound is not None and chat_id is not None and chat_id > 0:
            self.on_inbound(role, chat_id)
        ctx = {"update_id": raw.get("update_id"), "bot": role, "user": hash_user(user_id)}
        if runtime is None:
            log.warning("update for an unknown bot role", extra={"ctx": ctx})
            await uow.inbox.finish([row_id], "failed", "unknown bot")
            return False
        savepoint = await uow.session.begin_nested()
        try:
            update = Update.model_validate(raw, context={"bot": runtime.bot})
            try:
                update.event_type  # noqa: B018 - raises for update types aiogram does not know
            except UpdateTypeLookupError:
                # aiogram would warn with the whole update (user text) in the message; an
                # update type we do not know is simply not ours to handle.
                await savepoint.commit()
                self.processed += 1
                return True
            await runtime.dispatcher.feed_update(runtime.bot, update, uow=uow)
            await savepoint.commit()
            self.processed += 1
            return True
        except ValidationError:
            # Telegram (or a forger) sent a shape aiogram cannot read: drop it, record why.
            await savepoint.rollback()
            log.warning("update ignored: unreadable shape", extra={"ctx": ctx})
            await uow.inbox.finish([row_id], "failed", "unreadable update")
            self.failed += 1
            return False
        except Exception as exc:  # noqa: BLE001 - one update must never stop the others
            await savepoint.rollback()
            self.failed += 1
            # Only the exception type and where it happened: messages may carry user input.
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = (
                f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
                if tb
                else "-"
            )
            log.error(
                "update failed", extra={"ctx": {**ctx, "error": type(exc).__name__, "at": where}}
            )
            await uow.inbox.finish([row_id], "failed", type(exc).__name__[:200])
            if chat_id is not None and chat_id > 0:
                patient = await uow.patients.by_tg_user(user_id) if user_id else None
                locale = patient.locale if patient else normalize_locale(lang, self.default_locale)
                tr = Translator(locale)
                await Replier(uow, role, chat_id).text(
                    tr("error.internal", emergency_number=self.emergency_number),
                    priority=PRIORITY_REPLY,
                )
            return False
