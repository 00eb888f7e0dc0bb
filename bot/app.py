"""The composition root: builds settings-driven pieces once and wires them together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.types import BotCommand
from aiohttp import web

from bot.settings import Settings
from bot.telegram.dispatchers import build_dispatcher, fsm_backends
from bot.telegram.processor import BotRuntime, UpdateProcessor
from bot.telegram.sender import Limits, OutboxSender
from bot.telegram.sources import Poller, webhook_routes
from bot.verify_web import VerifyPage
from bot.verify_web import serve as serve_verify
from flows import followup, questionnaire, redflag_model, routing, understand
from handlers import patient as patient_handlers
from handlers.doctor import ops_alerts
from locales import Translator, validate_catalogs
from scheduler.sweeper import Sweeper
from storage.crypto import KeyRing
from storage.migrate import upgrade
from storage.uow import Database

log = logging.getLogger("careline.app")

ROLES = ("patient", "doctor")
PATIENT_COMMANDS = (
    "intake",
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


def open_keyring(settings: Settings) -> KeyRing:
    """Load the master key ring, creating it (0600) with a loud warning on first start."""
    path = settings.effective_keys_file
    ring, created = KeyRing.load_or_create(path)
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


async def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Open the database (migrated to the latest revision)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url, open_keyring(settings))
    if migrate:
        await upgrade(db.engine)
    return db


@dataclass
class Careline:
    """Both bots, their dispatchers, the processor and the sender, sharing one database."""

    settings: Settings
    db: Database
    bots: dict[str, Bot]
    processor: UpdateProcessor
    sender: OutboxSender
    sweeper: Sweeper
    storage: BaseStorage
    isolation: BaseEventIsolation
    pollers: list[Poller] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
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
        tokens = dict(zip(ROLES, settings.require_tokens(), strict=True))
        db = db or await open_database(settings)
        api = TelegramAPIServer.from_base(settings.telegram_api_url)
        bots = {
            role: Bot(token, session=AiohttpSession(api=api)) for role, token in tokens.items()
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
            ),
        )
        processor = UpdateProcessor(
            db,
            runtimes,
            default_locale=settings.default_locale,
            emergency_number=settings.local_emergency_number,
            on_commit=sender.poke,
        )
        handlers = {**patient_handlers.scheduled(settings), **ops_alerts.scheduled(settings)}
        sweeper = Sweeper(db, handlers, on_commit=sender.poke)
        return cls(settings, db, bots, processor, sender, sweeper, storage, isolation)

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

    def verify_page(self) -> VerifyPage:
        """The referral verify page over this app's database."""
        return VerifyPage(
            self.db,
            per_minute=self.settings.verify_requests_per_minute,
            trust_proxy=self.settings.verify_trust_proxy,
        )

    async def start(self) -> None:
        """Start the processor, the sender and the update sources (polling or webhook)."""
        s = self.settings
        await self._set_commands()
        self._tasks.append(asyncio.create_task(self.processor.run(), name="processor"))
        self._tasks.append(asyncio.create_task(self.sender.run(), name="sender"))
        self._tasks.append(asyncio.create_task(self.sweeper.run(), name="sweeper"))
        if s.webhook_url:
            assert s.webhook_secret is not None
            secret = s.webhook_secret.get_secret_value()
            app = web.Application()
            webhook_routes(app, self.processor, secret, list(ROLES))
            self.verify_page().mount(app)  # /r/<code>: the referral slips' verify page
            self._web = web.AppRunner(app)
            await self._web.setup()
            await web.TCPSite(self._web, s.webhook_host, s.webhook_port).start()
            for role, bot in self.bots.items():
                await bot.set_webhook(
                    f"{s.webhook_url}/webhook/{role}",
                    secret_token=secret,
                    allowed_updates=[
                        "message",
                        "edited_message",
                        "callback_query",
                        "my_chat_member",
                    ],
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
                self._web = await serve_verify(self.verify_page(), s.verify_host, s.verify_port)
        log.info(
            "careline started", extra={"ctx": {"mode": "webhook" if s.webhook_url else "polling"}}
        )

    async def stop(self) -> None:
        """Graceful stop: no new updates; finish what is stored and the current sends."""
        if self._stopped:
            return
        self._stopped = True
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
        if "sweeper" in named:
            await asyncio.gather(named["sweeper"], return_exceptions=True)
        # ...and the sender finishes the call in flight; the rest waits in the outbox.
        await self.sender.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for bot in self.bots.values():
            await bot.session.close()
        await self.storage.close()
        await self.isolation.close()
        await self.db.dispose()
        log.info("careline stopped")

    async def run_until_signal(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        await self.stop()
