"""Build the two aiogram dispatchers (patient and doctor) with their middlewares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiogram import Dispatcher, Router
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.filters import ExceptionTypeFilter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.types import CallbackQuery, ErrorEvent

from bot.settings import Settings
from bot.telegram.middlewares import ActorMiddleware
from bot.telegram.reply import Replier
from bot.telegram.routing import make_lean
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


def _awaitable(callback: Callable[..., Any]) -> Callable[..., Any]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        return callback(*args, **kwargs)

    return run


def inline_sync_filters(router: Router) -> int:
    """Run plain (non-async) filters in the event loop instead of a worker thread.

    aiogram calls every sync callable through ``asyncio.to_thread``; our sync filters are
    cheap, pure checks (``F.text``, a regex, the red-flag detector), so the thread hand-off
    (about a dozen per update, each a wake-up of another thread and of the loop) cost more
    than the checks themselves. Returns how many filters were changed."""
    changed = 0
    for each in router.chain_tail:
        for observer in each.observers.values():
            objects = [*observer.handlers, observer._handler]
            for obj in objects:
                for flt in obj.filters or ():
                    if not flt.awaitable:
                        flt.callback = _awaitable(flt.callback)
                        flt.awaitable = True
                        changed += 1
    return changed


def _prefix_in(prefixes: dict[str, frozenset[str]]) -> Callable[..., Any]:
    """A filter: the callback data's prefix is one of ``prefixes`` (by separator)."""

    async def prefix_in(query: CallbackQuery) -> bool:
        data = query.data
        if data is None:
            return False
        return any(data.split(sep, 1)[0] in known for sep, known in prefixes.items())

    return prefix_in


def prefilter_callbacks(router: Router) -> int:
    """Let a router skip a button press none of its handlers can take, in one check.

    aiogram offers a callback query to every handler of every router in turn until one's
    filters pass, and a typed ``CallbackData`` filter costs a call chain and an unpack even
    when the prefix is wrong: about a quarter of the processor's time went to routing. A
    router with no sub-routers whose callback handlers *all* carry a ``CallbackData`` filter
    gets a first root filter that compares the prefix against that set (a router with any
    other kind of callback handler is left alone, as is one with sub-routers, whose root
    filters would hide them). Handlers still check their own filters. Returns how many routers
    got one."""
    changed = 0
    for each in router.chain_tail:
        observer = each.observers["callback_query"]
        if each.sub_routers or not observer.handlers:
            continue
        prefixes: dict[str, set[str]] = {}
        for handler in observer.handlers:
            typed = [
                flt.callback
                for flt in handler.filters or ()
                if isinstance(flt.callback, CallbackQueryFilter)
            ]
            if not typed:
                break
            for flt in typed:
                cls = flt.callback_data
                prefixes.setdefault(cls.__separator__, set()).add(cls.__prefix__)
        else:
            root = observer._handler.filters or []
            check = FilterObject(_prefix_in({k: frozenset(v) for k, v in prefixes.items()}))
            observer._handler.filters = [check, *root]
            changed += 1
    return changed


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
    inline_sync_filters(dp)
    prefilter_callbacks(dp)
    make_lean(dp)
    return dp
