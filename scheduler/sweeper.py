"""The sweeper: claims due rows of ``scheduled_events`` in batches and runs the handler of
each event's kind in the same transaction, so the messages it writes to the outbox and the
event's ``done`` mark commit together (a crash repeats the batch, never loses it).

One sweeper per process; on PostgreSQL several processes share the queue (``SKIP LOCKED``).
No APScheduler job per event: a few hundred thousand reminders would not survive its
misfire handling (see the design brief).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from storage.models import ScheduledEvent, utcnow
from storage.uow import Database, UnitOfWork

log = logging.getLogger("careline.scheduler")

Handler = Callable[[UnitOfWork, ScheduledEvent, datetime], Awaitable[None]]
MAX_ATTEMPTS = 5


class Sweeper:
    """Runs due events; :meth:`sweep_once` is also what tests and the sandbox clock call."""

    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, Handler],
        *,
        batch: int = 100,
        interval: float = 1.0,
        on_commit: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.handlers = dict(handlers)
        self.batch = batch
        self.interval = interval
        self.on_commit = on_commit
        self.clock = clock
        self.ran = 0
        self.failed = 0
        self._stop = asyncio.Event()

    async def sweep_once(self, now: datetime | None = None) -> int:
        """Run one batch of events due by ``now``; returns how many were claimed."""
        now = now or self.clock()
        async with self.db.uow() as uow:
            events = await uow.events.claim_due(now, self.batch)
            for event in events:
                await self._run_one(uow, event, now)
            await uow.commit()
        if events and self.on_commit is not None:
            self.on_commit()
        return len(events)

    async def _run_one(self, uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        event.attempts += 1
        handler = self.handlers.get(event.kind)
        if handler is None:
            event.status = "failed"
            self.failed += 1
            log.error("no handler for scheduled event", extra={"ctx": {"kind": event.kind}})
            return
        try:
            async with uow.session.begin_nested():
                await handler(uow, event, now)
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop the others
            self.failed += 1
            retry = event.attempts < MAX_ATTEMPTS
            log.error(
                "scheduled event failed",
                extra={
                    "ctx": {
                        "kind": event.kind,
                        "event_id": event.id,
                        "error": type(exc).__name__,
                        "retry": retry,
                    }
                },
            )
            if retry:
                event.due_at = now + timedelta(minutes=2**event.attempts)
            else:
                event.status = "failed"
            return
        event.status = "done"
        event.done_at = now
        self.ran += 1

    async def run(self) -> None:
        """Sweep until :meth:`stop`: at once while batches are full, else every interval."""
        backoff = self.interval
        while not self._stop.is_set():
            try:
                claimed = await self.sweep_once()
                backoff = self.interval
            except Exception as exc:  # noqa: BLE001 - keep sweeping once the database is back
                log.error(
                    "sweep failed; retrying",
                    extra={"ctx": {"error": type(exc).__name__, "retry_in_s": backoff}},
                )
                claimed = 0
                backoff = min(backoff * 2, 30.0)
            if claimed >= self.batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=backoff)

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stop.set()
