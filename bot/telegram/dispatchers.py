"""Build the two aiogram dispatchers (patient and doctor) with their middlewares."""

from __future__ import annotations

from aiogram import Dispatcher, Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.types import ErrorEvent

from bot.settings import Settings
from bot.telegram.middlewares import ActorMiddleware
from bot.telegram.reply import Replier
from flows.onboarding import InvalidStep
from handlers import doctor, patient
from handlers.common import groups
from handlers.patient.render import show_step
from locales import Translator


def fsm_backends(settings: Settings) -> tuple[BaseStorage, BaseEventIsolation]:
    """Redis FSM storage and event isolation when configured (several workers), else memory."""
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage

        storage = RedisStorage.from_url(settings.redis_url)
        return storage, RedisEventIsolation(redis=storage.redis)
    return MemoryStorage(), SimpleEventIsolation()


def _stale_router(role: str) -> Router:
    router = Router(name=f"{role}.errors")

    @router.errors(ExceptionTypeFilter(InvalidStep))
    async def on_invalid_step(event: ErrorEvent, **data: object) -> bool:
        """A button from an earlier step: say so and show the current question."""
        reply = data.get("reply")
        tr = data.get("tr")
        settings = data.get("settings")
        if isinstance(reply, Replier) and isinstance(tr, Translator) and reply.chat_id:
            await reply.text(tr("error.stale_button"))
            if role == "patient" and isinstance(settings, Settings):
                await show_step(reply, tr, data.get("patient"), settings)  # type: ignore[arg-type]
        return True

    return router


def build_dispatcher(
    role: str,
    settings: Settings,
    storage: BaseStorage,
    isolation: BaseEventIsolation,
) -> Dispatcher:
    """A dispatcher for one bot: per-user isolation on, actor middleware, routers."""
    dp = Dispatcher(storage=storage, events_isolation=isolation, name=role)
    dp.update.outer_middleware(ActorMiddleware(role, settings))
    dp.include_router(groups.get_router())
    dp.include_router(patient.get_router() if role == "patient" else doctor.get_router())
    dp.include_router(_stale_router(role))
    return dp
