"""Operations endpoints: ``/healthz``, ``/readyz`` and ``/metrics`` (docs/OPERATIONS.md).

Mounted on the webhook server, and in polling mode on the verify server when it runs, so a
single-process deployment can be probed too.

* ``GET /healthz``: 200 ``{"status": "ok"}`` while the event loop answers (no I/O).
* ``GET /readyz``: the checks below, run concurrently, each with a short timeout: 200 with
  each check's result when all pass, 503 naming the failed ones and why (an exception's type,
  never its message: messages can carry URLs with passwords). Once :meth:`Careline.stop` has
  begun it answers 503 ``stopping`` at once, so a load balancer stops sending before the
  server closes.
  ``database`` (``SELECT 1``), ``migrations`` (at :data:`storage.migrate.HEAD`), ``redis``
  (PING; skipped without ``CARELINE_REDIS_URL``), ``bot_api`` (``getMe`` for each bot, a
  success remembered for :data:`BOT_API_TTL` seconds so frequent probes do not call Telegram
  each time), ``workers`` (the processor, sender, sweeper, import and polling tasks alive).
* ``GET /metrics``: Prometheus text exposition format 0.0.4, from a registry of this app's own
  (tests build many apps in one process). Counters are kept in memory by the processor's hooks
  and read from the sender's and sweeper's counters; queue depths and ages are read from the
  database at scrape time (one statement each, remembered for :data:`FIGURES_TTL` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiogram.types import Update
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from storage.migrate import HEAD, known_revisions
from storage.models import utcnow
from storage.repositories import OpsRepository

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.app import Careline

log = logging.getLogger("careline.ops")

CHECK_TIMEOUT = 2.0  # seconds each readiness check may take
BOT_API_TTL = 30.0  # seconds a successful getMe is remembered
BOT_API_FAIL_TTL = 5.0  # ... and a failed one (a Telegram outage is not probed every second)
FIGURES_TTL = 2.0  # seconds the queue figures read for /metrics are remembered
# Processing latency buckets, 5 ms to 10 s: most updates take milliseconds; a batch that waits
# for SQLite's writer or a slow flow shows in the upper buckets.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The update kinds a label may name; anything else (a forger's made-up key) is "other", so a
# label's values stay few whatever arrives.
KINDS = frozenset(Update.model_fields) - {"update_id"}
WORKERS = ("processor", "sender", "sweeper", "imports")  # Careline.start()'s task names


def update_kind(key: str) -> str:
    """The ``kind`` label of an update whose payload is under ``key``."""
    return key if key in KINDS else "other"


def kind_of(update: dict[str, Any]) -> str:
    """The ``kind`` label of a raw update (``message``, ``callback_query``, …)."""
    return update_kind(next((k for k in update if k != "update_id"), "none"))


def _age(now: datetime, since: datetime | None) -> float:
    """Seconds from ``since`` (naive means UTC: SQLite) to ``now``; 0 when nothing waits."""
    if since is None:
        return 0.0
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return max(0.0, (now - since).total_seconds())


@dataclass(frozen=True)
class Figures:
    """How much work waits, read from the database at one moment."""

    inbox: int
    inbox_oldest_s: float
    outbox: int
    outbox_oldest_s: float
    events_due: int
    scheduler_lag_s: float
    imports_running: int


async def read_figures(session: AsyncSession, now: datetime) -> Figures:
    """The queue figures, one statement each."""
    repo = OpsRepository(session)
    inbox, inbox_since = await repo.inbox_waiting()
    outbox, outbox_since = await repo.outbox_waiting(now)
    due, due_since = await repo.events_due(now)
    return Figures(
        inbox,
        _age(now, inbox_since),
        outbox,
        _age(now, outbox_since),
        due,
        _age(now, due_since),
        await repo.imports_running(),
    )


class Metrics:
    """This app's metrics: a registry of its own, fed by the processor's hooks."""

    def __init__(self, app: Careline, *, figures_ttl: float = FIGURES_TTL) -> None:
        self.app = app
        self.figures_ttl = figures_ttl
        self.registry = CollectorRegistry()
        labels = ("bot", "kind")
        self.received = Counter(
            "careline_updates_received",
            "Updates received from Telegram (replays of a stored update_id included)",
            labels,
            registry=self.registry,
        )
        self.processed = Counter(
            "careline_updates_processed",
            "Updates processed successfully (unknown update types included: nothing to do)",
            labels,
            registry=self.registry,
        )
        self.failed = Counter(
            "careline_updates_failed",
            "Updates whose processing failed (rolled back alone; the person was told)",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "careline_update_processing_seconds",
            "Time to process one update (dispatcher and handler, inside its transaction)",
            ("bot",),
            buckets=BUCKETS,
            registry=self.registry,
        )
        for role in app.bots:
            self.latency.labels(role)  # the buckets show (at 0) before the first update
        self.figures: Figures | None = None
        self._sqlite_reader: AsyncEngine | None = None
        self._figures_at = -figures_ttl  # monotonic time of the last read (ok or not)
        self._figures_lock = asyncio.Lock()
        self.registry.register(_Live(self))

    def reader(self) -> AsyncEngine:
        """The engine the endpoints read through. On SQLite a small one of their own: the
        app's engine begins every transaction IMMEDIATE (the write lock, storage/db.py) and
        runs a transaction's statements on the event loop's thread, so a probe there would
        queue behind the writer, or hold up the loop; a plain read in WAL mode waits for no
        writer, in aiosqlite's thread."""
        db = self.app.db
        if not db.sqlite:
            return db.engine
        if self._sqlite_reader is None:
            self._sqlite_reader = create_async_engine(db.url, connect_args={"timeout": 1.0})
        return self._sqlite_reader

    async def close(self) -> None:
        """Close the SQLite reader, if one was opened."""
        if self._sqlite_reader is not None:
            await self._sqlite_reader.dispose()
            self._sqlite_reader = None

    def on_received(self, role: str, updates: Sequence[dict[str, Any]]) -> None:
        """The processor's ``on_received`` hook."""
        for update in updates:
            self.received.labels(role, kind_of(update)).inc()

    def observe(self, role: str, kind: str, ok: bool, seconds: float) -> None:
        """The processor's ``observer`` hook: one update processed (or failed)."""
        (self.processed if ok else self.failed).labels(role, update_kind(kind)).inc()
        self.latency.labels(role).observe(seconds)

    async def refresh(self) -> None:
        """Read the queue figures unless read within :attr:`figures_ttl`; a failed read
        leaves them out of the exposition (and ``careline_queue_figures_ok`` at 0)."""
        async with self._figures_lock:  # concurrent scrapes share one read
            if time.monotonic() - self._figures_at < self.figures_ttl:
                return
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    async with AsyncSession(self.reader()) as session:
                        self.figures = await read_figures(session, utcnow())
            except Exception as exc:  # noqa: BLE001 - the in-memory counters still serve
                self.figures = None
                log.warning(
                    "queue figures unavailable", extra={"ctx": {"error": type(exc).__name__}}
                )
            self._figures_at = time.monotonic()

    def render(self) -> bytes:
        """The exposition, text format 0.0.4."""
        return generate_latest(self.registry)


class _Live(Collector):
    """Figures read at scrape time: the sender's and sweeper's counters, the queue figures."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """The current values (prometheus_client calls this on each exposition)."""
        app = self.metrics.app
        stats = app.sender.stats
        for name, value, doc in (
            ("outbox_sent", stats.sent, "Bot API calls made from the outbox"),
            ("outbox_rate_limited", stats.rate_limited, "429 answers (retry_after honoured)"),
            ("outbox_retried", stats.retried, "Calls put back to retry (5xx, timeouts)"),
            ("outbox_unreachable", stats.unreachable, "403: the person blocked the bot"),
            ("outbox_failed", stats.failed, "Calls given up on"),
            ("scheduled_events_run", app.sweeper.ran, "Scheduled events run"),
            ("scheduled_events_failed", app.sweeper.failed, "Scheduled event runs that failed"),
        ):
            yield CounterMetricFamily(f"careline_{name}", doc, value=value)
        figures = self.metrics.figures
        yield GaugeMetricFamily(
            "careline_queue_figures_ok",
            "1 when the last read of the queue figures from the database succeeded",
            value=0 if figures is None else 1,
        )
        if figures is None:
            return
        gauges: tuple[tuple[str, float, str], ...] = (
            ("inbox_pending", figures.inbox, "Updates stored, not yet processed"),
            ("inbox_oldest_pending_seconds", figures.inbox_oldest_s, "Age of the oldest"),
            ("outbox_pending", figures.outbox, "Calls waiting or in flight"),
            (
                "outbox_oldest_pending_seconds",
                figures.outbox_oldest_s,
                "How long the oldest due call has been due",
            ),
            ("scheduled_events_due", figures.events_due, "Events due now, not yet run"),
            ("scheduler_lag_seconds", figures.scheduler_lag_s, "Age of the oldest due event"),
            ("imports_running", figures.imports_running, "Health-data imports running"),
        )
        for name, gauge, doc in gauges:
            yield GaugeMetricFamily(f"careline_{name}", doc, value=gauge)


class NotReady(Exception):
    """A readiness check's failure, with a reason safe to show."""


@dataclass
class _Remembered:
    at: float
    ok: bool
    detail: str


class OpsWeb:
    """The three routes over one running :class:`Careline`; creating it installs the
    processor's hooks."""

    def __init__(
        self,
        app: Careline,
        *,
        timeout: float = CHECK_TIMEOUT,
        bot_api_ttl: float = BOT_API_TTL,
        bot_api_fail_ttl: float = BOT_API_FAIL_TTL,
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.bot_api_ttl = bot_api_ttl
        self.bot_api_fail_ttl = bot_api_fail_ttl
        self.metrics = Metrics(app)
        app.processor.on_received = self.metrics.on_received
        app.processor.observer = self.metrics.observe
        self._bot_api: _Remembered | None = None
        self._bot_api_lock = asyncio.Lock()
        self._redis: Redis | None = None

    def mount(self, web_app: web.Application) -> None:
        """Add the routes to an aiohttp application (before it starts)."""
        web_app.router.add_get("/healthz", self.healthz)
        web_app.router.add_get("/readyz", self.readyz)
        web_app.router.add_get("/metrics", self.metrics_page)
        web_app.on_cleanup.append(self._close)
        web_app[OPS_WEB] = self  # the instance behind the routes (tests tune its caches)

    async def healthz(self, request: web.Request) -> web.Response:
        """The process is up and its event loop answers."""
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Whether this process can do its work now (see the module docstring)."""
        if self.app._stopped:  # set first thing in Careline.stop()
            return web.json_response({"status": "stopping"}, status=503)
        checks: dict[str, Callable[[], Awaitable[str]]] = {
            "database": self._database,
            "migrations": self._migrations,
            "bot_api": self._bot_api_check,
            "workers": self._workers,
        }
        if self.app.settings.redis_url:
            checks["redis"] = self._redis_ping
        results = await asyncio.gather(*(self._run(check) for check in checks.values()))
        report = {
            name: {"ok": ok, "detail": detail}
            for name, (ok, detail) in zip(checks, results, strict=True)
        }
        if not self.app.settings.redis_url:
            report["redis"] = {"ok": True, "detail": "skipped: no CARELINE_REDIS_URL"}
        failed = sorted(name for name, r in report.items() if not r["ok"])
        if self.app._stopped:  # stop() began while the checks ran
            return web.json_response({"status": "stopping"}, status=503)
        if failed:
            body = {"status": "not ready", "failed": failed, "checks": report}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ready", "checks": report})

    async def metrics_page(self, request: web.Request) -> web.Response:
        """The Prometheus exposition."""
        await self.metrics.refresh()
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )

    async def _run(self, check: Callable[[], Awaitable[str]]) -> tuple[bool, str]:
        try:
            async with asyncio.timeout(self.timeout):
                return True, await check()
        except NotReady as exc:
            return False, str(exc)
        except TimeoutError:
            return False, f"no answer within {self.timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - the type only: messages may hold secrets
            return False, type(exc).__name__

    async def _database(self) -> str:
        async with AsyncSession(self.metrics.reader()) as session:
            await OpsRepository(session).ping()
        return "ok"

    async def _migrations(self) -> str:
        async with AsyncSession(self.metrics.reader()) as session:
            try:
                versions = await OpsRepository(session).schema_versions()
            except Exception as exc:  # noqa: BLE001 - no alembic_version table: not migrated
                raise NotReady(f"no schema version ({type(exc).__name__})") from None
        if versions == [HEAD]:
            return f"at {HEAD}"
        if len(versions) == 1 and versions[0] not in known_revisions():
            # A newer release migrated (expand only) while this one runs: it still works.
            return f"at {versions[0]}, newer than this code's {HEAD}"
        raise NotReady(f"at {','.join(versions) or 'nothing'}, expected {HEAD}")

    async def _bot_api_check(self) -> str:
        async with self._bot_api_lock:  # concurrent probes share one round of getMe
            seen = self._bot_api
            now = time.monotonic()
            if seen is None or now - seen.at >= (
                self.bot_api_ttl if seen.ok else self.bot_api_fail_ttl
            ):
                seen = self._bot_api = await self._get_me_all()
        if not seen.ok:
            raise NotReady(seen.detail)
        return seen.detail

    async def _get_me_all(self) -> _Remembered:
        roles = list(self.app.bots)
        # A little under the check's own timeout, so the answer is remembered either way.
        limit = max(1, int(self.timeout) - 1)
        results = await asyncio.gather(
            *(self.app.bots[r].get_me(request_timeout=limit) for r in roles),
            return_exceptions=True,
        )
        bad = [
            f"{role}: {type(res).__name__}"
            for role, res in zip(roles, results, strict=True)
            if isinstance(res, BaseException)
        ]
        detail = "; ".join(bad) if bad else "getMe ok for " + ", ".join(roles)
        return _Remembered(time.monotonic(), not bad, detail)

    async def _redis_ping(self) -> str:
        if self._redis is None:
            from redis.asyncio import Redis

            url = self.app.settings.redis_url
            assert url is not None
            self._redis = Redis.from_url(
                url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout
            )
        await self._redis.ping()
        return "PONG"

    async def _workers(self) -> str:
        tasks = {t.get_name(): t for t in self.app._tasks}  # read only
        wanted = [*WORKERS, *(n for n in tasks if n.startswith("poll-"))]
        dead = []
        for name in wanted:
            task = tasks.get(name)
            if task is None:
                dead.append(f"{name} not started")
            elif task.done():
                exc = None if task.cancelled() else task.exception()
                dead.append(f"{name} stopped" + (f" ({type(exc).__name__})" if exc else ""))
        if dead:
            raise NotReady("; ".join(dead))
        return "alive: " + ", ".join(wanted)

    async def _close(self, web_app: web.Application) -> None:
        await self.metrics.close()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None


OPS_WEB = web.AppKey("careline_ops_web", OpsWeb)
