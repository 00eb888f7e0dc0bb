"""The sweeper: leases due rows of ``scheduled_events`` in batches and runs the handler of
each event's kind in one transaction with the event's ``done`` mark, so the messages it
writes to the outbox and the mark commit together (a crash repeats the batch, never loses it
and never sends it twice).

Two transactions per batch: the first leases up to ``batch`` due rows to this worker
(``status='leased'``, ``lease_until``, ``leased_by``; ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several processes share the queue), the second runs them, but only those
still leased to this worker. A worker that dies between the two leaves its rows to be leased
again once the lease runs out (on SQLite, a single process by design, at the next start).

The sweep is an APScheduler job (``AsyncIOScheduler``, one interval job, never overlapping):
a handful of jobs claim the rows; there is never one APScheduler job per reminder (with
100,000 of them due in the same second, its misfire handling ran none; see the design brief).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import update

from storage.models import ScheduledEvent, utcnow
from storage.uow import Database, UnitOfWork

log = logging.getLogger("careline.scheduler")

Handler = Callable[[UnitOfWork, ScheduledEvent, datetime], Awaitable[None]]
MAX_ATTEMPTS = 5
LEASE = timedelta(seconds=60)


def worker_name() -> str:
    """A name for this process's leases (host, pid, and a random part for restarts)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Sweeper:
    """Runs due events; :meth:`sweep_once` is also what tests and the sandbox clock call."""

    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, Handler],
        *,
        batch: int | None = None,
        interval: float = 1.0,
        lease: timedelta = LEASE,
        on_commit: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
        worker: str | None = None,
        max_backlog: int = 300,
    ) -> None:
        self.db = db
        self.handlers = dict(handlers)
        # Small batches on SQLite: a batch holds the single writer, and patients' replies and
        # the sender wait behind it (measured in benchmarks/reminders.py).
        self.batch = batch or (10 if db.sqlite else 50)
        self.interval = interval
        self.lease = lease
        self.on_commit = on_commit
        self.clock = clock
        self.worker = worker or worker_name()
        self.max_backlog = max_backlog
        self.ran = 0
        self.failed = 0
        self._stop = asyncio.Event()
        self._scheduler: AsyncIOScheduler | None = None
        self._draining: asyncio.Task[None] | None = None
        self._retry_after: datetime | None = None
        self._backoff = interval

    async def sweep_once(self, now: datetime | None = None, *, urgent_only: bool = False) -> int:
        """Lease and run one batch of events due by ``now`` (only urgent ones with
        ``urgent_only``); returns how many were leased."""
        now = now or self.clock()
        async with self.db.uow() as uow:
            ids = await uow.events.lease_due(
                now, self.batch, self.worker, self.lease, 0 if urgent_only else None
            )
            await uow.commit()
        if not ids:
            return 0
        async with self.db.uow() as uow:
            for event in await uow.events.leased(ids, self.worker):
                await self._run_one(uow, event, now)
            await uow.commit()
        if self.on_commit is not None:
            self.on_commit()
        return len(ids)

    async def release_leases(self) -> int:
        """At start on SQLite (one process): leases left by a previous run go back to
        pending at once instead of waiting for them to run out."""
        if not self.db.sqlite:
            return 0
        async with self.db.uow() as uow:
            res = await uow.session.execute(
                update(ScheduledEvent)
                .where(ScheduledEvent.status == "leased")
                .values(status="pending", lease_until=None, leased_by=None)
            )
            await uow.commit()
        return int(getattr(res, "rowcount", 0) or 0)

    async def _run_one(self, uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        event.attempts += 1
        event.lease_until = None  # ``leased_by`` stays: which worker ran it
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
                event.status = "pending"
                event.due_at = now + timedelta(minutes=2**event.attempts)
            else:
                event.status = "failed"
            return
        event.status = "done"
        event.done_at = now
        self.ran += 1

    async def drain(self) -> None:
        """Sweep batch after batch while they come back full (the APScheduler job)."""
        now = utcnow()
        if self._retry_after is not None and now < self._retry_after:
            return
        try:
            while not self._stop.is_set():
                # Back-pressure: while the outbox already holds more routine messages than
                # the sender can make in about ten seconds, only urgent events run. Routine
                # reminders then go out when they can be sent, and say honestly that they
                # are late, instead of sitting in the outbox for an hour "on time"; and the
                # single writer is left to patients' replies.
                async with self.db.uow() as uow:
                    busy = await uow.outbox.backlog(self.max_backlog) >= self.max_backlog
                if await self.sweep_once(urgent_only=busy) < self.batch:
                    break
            self._retry_after = None
            self._backoff = self.interval
        except Exception as exc:  # noqa: BLE001 - keep sweeping once the database is back
            log.error(
                "sweep failed; retrying",
                extra={"ctx": {"error": type(exc).__name__, "retry_in_s": self._backoff}},
            )
            self._retry_after = utcnow() + timedelta(seconds=self._backoff)
            self._backoff = min(self._backoff * 2, 30.0)

    async def run(self) -> None:
        """Run the sweep job every ``interval`` seconds until :meth:`stop`."""
        await self.release_leases()
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(
            self._tick,
            "interval",
            seconds=self.interval,
            # A random delay of up to a quarter interval on each run, carried into the next:
            # workers started together drift apart instead of sweeping in lock-step, where
            # the one a few milliseconds ahead would lease every row as it falls due.
            jitter=self.interval / 4,
            id="careline.sweep",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=utcnow(),
        )
        self._scheduler = scheduler
        scheduler.start()
        try:
            await self._stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            if self._draining is not None:
                await asyncio.gather(self._draining, return_exceptions=True)

    async def _tick(self) -> None:
        # The job only starts a drain and returns, so a long drain (a burst of reminders) never
        # makes APScheduler skip runs and log it every second.
        if self._draining is not None and not self._draining.done():
            return
        self._draining = asyncio.create_task(self.drain(), name="sweeper.drain")

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stop.set()
