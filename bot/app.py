"""The composition root: builds settings-driven pieces once and wires them together."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.types import BotCommand
from aiohttp import web
from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import ratelimit
from bot.bodymap_web import BodyMapApi
from bot.devices_web import DeviceApi
from bot.imports import ImportRunner
from bot.ops_web import OpsWeb
from bot.settings import Settings
from bot.telegram.dispatchers import build_dispatcher, fsm_backends
from bot.telegram.processor import BotRuntime, UpdateProcessor
from bot.telegram.sender import BulkLeader, Limits, OutboxSender
from bot.telegram.sources import ALLOWED_UPDATES, Poller, webhook_routes
from bot.verify_web import VerifyPage
from bot.verify_web import serve as serve_verify
from flows import bodymap, followup, questionnaire, redflag_model, routing, understand
from handlers import patient as patient_handlers
from handlers.doctor import ops_alerts
from locales import Translator, validate_catalogs
from scheduler.sweeper import Sweeper
from storage.crypto import (
    SAMPLE_PER_MASTER_KEY,
    KeyRing,
    KeysFileError,
    check_keys_file_mode,
    missing_keys_message,
)
from storage.db import is_sqlite, make_engine
from storage.keys import settle_keystore
from storage.migrate import upgrade
from storage.models import DataKey, Patient
from storage.uow import Database

log = logging.getLogger("careline.app")


class BotSession(AiohttpSession):
    """aiogram's HTTP session to the Bot API. aiogram's ``close`` waits 250 ms for TLS
    connections to shut down; over plain HTTP (a local Bot API server, the sandbox's
    emulator) there are none, so it closes at once."""

    def __init__(self, *, api: TelegramAPIServer, tls: bool) -> None:
        super().__init__(api=api)
        self.tls = tls

    async def close(self) -> None:
        if self.tls:
            await super().close()
        elif self._session is not None and not self._session.closed:
            await self._session.close()


ROLES = ("patient", "doctor")
PATIENT_COMMANDS = (
    "intake",
    "book",
    "bookings",
    "history",
    "meds",
    "doses",
    "readings",
    "caregivers",
    "referrals",
    "help",
    "profile",
    "language",
    "mydata",
    "export",
    "delete",
    "privacy",
)


def open_keyring(settings: Settings, *, create: bool = True) -> KeyRing:
    """Load the master key ring, creating it (0600) with a loud warning on first start.
    Refuses (:class:`KeysFileError`, one line) a keys file other users can read or write, and
    with ``create=False`` a missing one."""
    path = settings.effective_keys_file
    if path.exists():
        check_keys_file_mode(path)
    ring, created = KeyRing.load_or_create(path, create=create)
    if created:
        print(  # noqa: T201 - this must reach the operator even with logging off
            "\n" + "!" * 78 + f"\nCareline created a NEW master key file: {path}\n"
            "BACK IT UP NOW, separately from the database. Without it the encrypted data\n"
            "cannot be read; with it and the database, it can. Never put it in the database.\n"
            + "!" * 78
            + "\n",
            file=sys.stderr,
        )
    return ring


def freeze_heap() -> None:
    """Once the app is up: what is alive now (imported modules, the lexicons' tables, the
    app itself: ~335,000 objects) goes to the collector's permanent generation, so a full
    collection no longer walks it. A full collection took 217-268 ms before and ~5 ms after
    (``python -m benchmarks.booking_tap``): without this, one lands on some reply now and then.
    Called by the long-running entry points (``run``, ``sandbox``), not by tests that build
    many apps in one process (frozen objects are never collected). First the heap freed while
    building the app goes back to the system (:func:`release_freed_memory`: a full collection,
    which in a test process holding many finished apps costs ~0.3 s, so not in ``start``)."""
    release_freed_memory()
    gc.freeze()


def release_freed_memory() -> int:
    """Hand the memory that building the app used and freed (the emergency lexicon's and the
    text-understanding tables' parse trees, ~11 MB) back to the system: glibc keeps freed heap
    pages otherwise. Returns 1 if it did, 0 where there is no glibc ``malloc_trim``."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
        return int(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return 0


async def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Open the database (migrated to the latest revision) with its key ring, failing safe:
    refuses (:class:`KeysFileError`, one line) a missing keys file while the database holds
    data, a keys file other users can read or write, and a ring that cannot unwrap a sample of
    the stored data keys. A new data dir is 0700; the SQLite files are made 0600."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.effective_database_url
    keys = settings.effective_keys_file
    create = keys.exists() or not await _holds_data(url)
    db = Database(url, open_keyring(settings, create=create))  # key store: beside the keys
    try:
        # Before migrating, which logs: a refusal is then the one line the operator sees.
        problems = db.ring.check_sample(await _data_key_sample(db.engine)).problems()
        if problems:
            raise KeysFileError(problems[0])
        if migrate:
            await upgrade(db.engine)
        _make_private(url)
        if migrate:  # the key shares belong to this database; finish interrupted erasures
            await settle_keystore(db)
    except BaseException:
        await db.dispose()
        raise
    return db


async def check_keys(settings: Settings) -> tuple[list[str], str]:
    """``keys check``: what is wrong with the keys file (one line each; empty when nothing) and
    the summary when all is well. Creates nothing: no keys file, no database."""
    path = settings.effective_keys_file
    url = settings.effective_database_url
    try:
        if not path.exists():
            if await _holds_data(url):
                return [missing_keys_message(path)], ""
            return [], f"no keys file yet at {path} and no data: the first start creates one"
        problems: list[str] = []
        try:
            check_keys_file_mode(path)
        except KeysFileError as exc:
            problems.append(str(exc))
        try:
            ring = KeyRing.load(path)
        except KeysFileError as exc:
            return [*problems, str(exc)], ""
        sample: list[tuple[str, int, bytes]] = []
        file = _sqlite_file(url)
        if file is None or file.exists():
            engine = make_engine(url)
            try:
                sample = await _data_key_sample(engine)
            finally:
                await engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        return [f"cannot read the database to check its data keys ({type(exc).__name__})"], ""
    check = ring.check_sample(sample)
    problems += check.problems()
    return problems, (
        f"keys OK: {len(ring.key_ids)} master keys, {len(ring.signing_key_ids)} signing keys, "
        f"sample of {check.checked} data keys unwrapped"
    )


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    parsed = make_url(url)
    if not is_sqlite(url) or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


async def _holds_data(url: str) -> bool:
    """Does the database already hold patients or data keys? Creates no SQLite file."""
    file = _sqlite_file(url)
    if file is not None and not file.exists():
        return False
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            for table, column in (("data_keys", DataKey.owner_id), ("patients", Patient.id)):
                if table in tables and await conn.scalar(select(column).limit(1)) is not None:
                    return True
    finally:
        await engine.dispose()
    return False


async def _data_key_sample(engine: AsyncEngine) -> list[tuple[str, int, bytes]]:
    """A few live wrapped data keys under each master key the database uses (by owner id: the
    ids are random, so this is a stable spread over the table, found through the indexes)."""
    out: list[tuple[str, int, bytes]] = []
    async with engine.connect() as conn:
        if not await conn.run_sync(lambda c: inspect(c).has_table("data_keys")):
            return out
        used = (await conn.scalars(select(DataKey.master_key_id).distinct())).all()
        for master_id in used:
            rows = await conn.execute(
                select(DataKey.owner_id, DataKey.master_key_id, DataKey.wrapped)
                .where(DataKey.master_key_id == master_id, DataKey.wrapped.is_not(None))
                .order_by(DataKey.owner_id.desc())
                .limit(SAMPLE_PER_MASTER_KEY)
            )
            out.extend((r.owner_id, r.master_key_id, r.wrapped) for r in rows)
    return out


def _make_private(url: str) -> None:
    """SQLite's files 0600 (the CLI's umask does that for new files; this also tightens files an
    older version made 0644). SQLite gives a new -wal/-shm the database file's mode."""
    file = _sqlite_file(url)
    if file is None:
        return
    for path in (file, *(file.with_name(file.name + s) for s in ("-wal", "-shm", "-journal"))):
        with contextlib.suppress(OSError):  # gone meanwhile, or another user's file
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)


@dataclass
class Careline:
    """Both bots, their dispatchers, the processor and the sender, sharing one database."""

    settings: Settings
    db: Database
    bots: dict[str, Bot]
    processor: UpdateProcessor
    sender: OutboxSender
    sweeper: Sweeper
    imports: ImportRunner
    storage: BaseStorage
    isolation: BaseEventIsolation
    pollers: list[Poller] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    worker_index: int = 0  # this process's place among `bot.py run --workers N`
    leader: BulkLeader | None = None  # several workers: which one sends bulk calls
    _web: web.AppRunner | None = None
    _stopped: bool = False

    @classmethod
    async def build(cls, settings: Settings, db: Database | None = None) -> Careline:
        """Wire everything from settings; opens (and migrates) the database if not given."""
        validate_catalogs()
        questionnaire.use(settings.intake_file)
        followup.validate()  # the follow-up templates (flows/questionnaires/followups.toml)
        routing.validate()  # fallbacks and waiting limits (flows/questionnaires/routing.toml)
        understand.validate()  # the free-text lexicon (flows/questionnaires/understand.toml)
        redflag_model.validate()  # the second-opinion weights (redflag_model.json.gz)
        bodymap.load()  # the body map's regions (flows/questionnaires/bodymap.toml)
        tokens = dict(zip(ROLES, settings.require_tokens(), strict=True))
        db = db or await open_database(settings)
        api = TelegramAPIServer.from_base(settings.telegram_api_url)
        tls = settings.telegram_api_url.lower().startswith("https:")
        bots = {
            role: Bot(token, session=BotSession(api=api, tls=tls))
            for role, token in tokens.items()
        }
        storage, isolation = fsm_backends(settings)
        runtimes = {
            role: BotRuntime(
                role, bots[role], build_dispatcher(role, settings, storage, isolation)
            )
            for role in ROLES
        }
        sender = OutboxSender(
            db,
            bots,
            Limits(
                settings.outbox_global_per_s,
                settings.outbox_per_chat_per_s,
                settings.outbox_per_chat_burst,
                settings.outbox_concurrency,
                settings.paid_broadcast_stars_per_day,
            ),
        )
        imports = ImportRunner(
            db,
            bots["patient"],
            emergency_number=settings.local_emergency_number,
            on_commit=sender.poke,
        )

        processor = UpdateProcessor(
            db,
            runtimes,
            default_locale=settings.default_locale,
            emergency_number=settings.local_emergency_number,
            on_commit=sender.poke,
            shared=settings.shared_inbox,
            on_inbound=sender.note_inbound,
        )
        handlers = {**patient_handlers.scheduled(settings), **ops_alerts.scheduled(settings)}
        sender.in_order = settings.shared_inbox  # other workers send from this outbox too
        leader = BulkLeader(db) if settings.shared_inbox else None
        if leader is not None:
            sender.bulk_allowed = lambda: leader.leading
        sweeper = Sweeper(db, handlers, on_commit=sender.poke)
        app = cls(settings, db, bots, processor, sender, sweeper, imports, storage, isolation)
        app.leader = leader
        return app

    async def _set_commands(self) -> None:
        for locale in ("en", "zh_Hans", "ru"):
            tr = Translator(locale)
            cmds = [
                BotCommand(command=c, description=tr.plain(f"command.{c}"))
                for c in PATIENT_COMMANDS
            ]
            lang = {"en": None, "zh_Hans": "zh", "ru": "ru"}[locale]
            with contextlib.suppress(Exception):
                await self.bots["patient"].set_my_commands(cmds, language_code=lang)

    def limits(self) -> ratelimit.LimiterFactory:
        """The web endpoints' rate limits: in Redis (shared by every worker) when the FSM
        storage is Redis, else in this process's memory."""
        if not self.settings.redis_url:
            return ratelimit.factory(None)
        from aiogram.fsm.storage.redis import RedisStorage

        storage = self.storage
        return ratelimit.factory(storage.redis if isinstance(storage, RedisStorage) else None)

    def verify_page(self) -> VerifyPage:
        """The referral verify page over this app's database."""
        return VerifyPage.from_settings(self.db, self.settings, self.limits())

    def device_api(self) -> DeviceApi:
        """The device upload API over this app's database (it wakes the sender)."""
        return DeviceApi.from_settings(
            self.db, self.settings, on_commit=self.sender.poke, limits=self.limits()
        )

    def bodymap_api(self) -> BodyMapApi:
        """The body map Mini App over this app's database (it wakes the sender)."""
        return BodyMapApi.from_settings(
            self.db, self.settings, on_commit=self.sender.poke, limits=self.limits()
        )

    async def start(self) -> None:
        """Start the processor, the sender and the update sources (polling or webhook)."""
        s = self.settings
        await self._set_commands()
        self._tasks.append(asyncio.create_task(self.processor.run(), name="processor"))
        self._tasks.append(asyncio.create_task(self.sender.run(), name="sender"))
        self._tasks.append(asyncio.create_task(self.sweeper.run(), name="sweeper"))
        self._tasks.append(asyncio.create_task(self.imports.run(), name="imports"))
        if self.leader is not None:
            self._tasks.append(asyncio.create_task(self.leader.run(), name="bulk-leader"))
        if s.webhook_url:
            assert s.webhook_secret is not None
            secret = s.webhook_secret.get_secret_value()
            app = web.Application()
            webhook_routes(app, self.processor, secret, list(ROLES))
            self.verify_page().mount(app)  # /r/<code>: the referral slips' verify page
            self.device_api().mount(app)  # /d/<device>/…: readings from home devices
            self.bodymap_api().mount(app)  # /m/bodymap: the intake's body map Mini App
            OpsWeb(self).mount(app)  # /healthz, /readyz, /metrics (docs/OPERATIONS.md)
            self._web = web.AppRunner(app)
            await self._web.setup()
            # Workers on one machine share the port (the kernel spreads connections).
            await web.TCPSite(
                self._web, s.webhook_host, s.webhook_port, reuse_port=s.shared_inbox or None
            ).start()
            for role, bot in self.bots.items():
                if self.worker_index:
                    break  # `run --workers N`: the first worker tells Telegram where to post
                await bot.set_webhook(
                    f"{s.webhook_url}/webhook/{role}",
                    secret_token=secret,
                    allowed_updates=ALLOWED_UPDATES,  # the same kinds as polling asks for
                )
        else:
            tokens = dict(zip(ROLES, s.require_tokens(), strict=True))
            for role in ROLES:
                with contextlib.suppress(Exception):
                    await self.bots[role].delete_webhook()
                poller = Poller(role, s.telegram_api_url, tokens[role], self.processor)
                self.pollers.append(poller)
                self._tasks.append(asyncio.create_task(poller.run(), name=f"poll-{role}"))
            if s.verify_port is not None:
                self._web = await serve_verify(
                    self.verify_page(),
                    s.verify_host,
                    s.verify_port,
                    self.device_api(),
                    self.bodymap_api(),
                    OpsWeb(self),  # /healthz, /readyz, /metrics (docs/OPERATIONS.md)
                )
        log.info(
            "careline started", extra={"ctx": {"mode": "webhook" if s.webhook_url else "polling"}}
        )

    async def stop(self) -> None:
        """Graceful stop: no new updates; finish what is stored and the current sends."""
        if self._stopped:
            return
        self._stopped = True  # from here /readyz answers 503 "stopping" (bot/ops_web.py)
        for poller in self.pollers:
            poller.stop()
        if self._web is not None:
            await self._web.cleanup()
        named = {t.get_name(): t for t in self._tasks}
        await asyncio.gather(
            *(t for n, t in named.items() if n.startswith("poll-")), return_exceptions=True
        )
        # Everything already committed to the inbox is processed before exit...
        await self.processor.stop()
        if "processor" in named:
            await asyncio.gather(named["processor"], return_exceptions=True)
        # No new scheduled work; what it already wrote is in the outbox...
        await self.sweeper.stop()
        await self.imports.stop()  # an import stops after its batch and resumes at next start
        for name in ("sweeper", "imports"):
            if name in named:
                await asyncio.gather(named[name], return_exceptions=True)
        # ...and the sender finishes the call in flight; the rest waits in the outbox.
        await self.sender.stop()
        if self.leader is not None:
            await self.leader.stop()  # another worker sends the bulk calls from now on
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(bot.session.close() for bot in self.bots.values()))
        await self.storage.close()
        await self.isolation.close()
        from storage.audit import checkpoint_now  # the audit head, signed outside the database

        await checkpoint_now(self.db)
        await self.db.dispose()
        log.info("careline stopped")

    async def run_until_signal(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        freeze_heap()
        await stop.wait()
        await self.stop()
