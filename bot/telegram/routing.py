"""A leaner walk of aiogram's router tree, with the same outcome.

aiogram offers every update to each router in turn. For each router it builds a closure and a
``functools.wraps`` wrapper for the (usually empty) outer middleware chain, and for each
handler and filter it copies the whole context dict (about 25 entries: bot, user, chat, FSM,
unit of work, patient, translator, ...) several times over. An onboarding answer passes ~14
routers before the onboarding router takes it, so this bookkeeping was about a third of the
processor's time.

:class:`LeanRouter` walks the same routers, handlers and filters in the same order and takes
the same decisions: root filters first, then each handler's filters in order (a filter's dict
result is seen by the later filters and, only if all pass, by the handler), ``SkipHandler``
moves on to the next handler, a ``REJECTED`` response counts as unhandled. Where a router
*has* outer middlewares, or a handler has inner ones, it hands that step to aiogram's own
code. :func:`make_lean` switches every router below a dispatcher to it (the dispatcher itself,
whose update-level middlewares do the real work, stays as it is).
"""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.bases import REJECTED, UNHANDLED, SkipHandler
from aiogram.dispatcher.event.handler import FilterObject, HandlerObject
from aiogram.dispatcher.event.telegram import TelegramEventObserver
from aiogram.types import TelegramObject


async def _passes(
    filters: list[FilterObject], event: TelegramObject, kwargs: dict[str, Any]
) -> dict[str, Any] | None:
    """Run ``filters`` in order like ``HandlerObject.check``: None if one fails, else the
    context to use (``kwargs`` itself when no filter added anything, else an updated copy)."""
    data = kwargs
    copied = False
    for flt in filters:
        call = flt.callback
        args = data if flt.varkw else {k: data[k] for k in flt.params if k in data}
        if flt.awaitable:
            check = await call(event, **args)
        else:  # aiogram's own behaviour for a plain function: run it in a thread
            check = await flt.call(event, **data)
        if not check:
            return None
        if isinstance(check, dict):
            if not copied:
                data = dict(data)
                copied = True
            data.update(check)
    return data


class LeanRouter(Router):
    """A :class:`aiogram.Router` whose walk skips the bookkeeping (see the module's doc)."""

    async def propagate_event(self, update_type: str, event: TelegramObject, **kwargs: Any) -> Any:
        observer = self.observers.get(update_type)
        if observer is not None and observer.outer_middleware._middlewares:
            return await super().propagate_event(update_type, event, **kwargs)
        kwargs["event_router"] = self
        return await self._lean(observer, update_type, event, kwargs)

    async def _lean(
        self,
        observer: TelegramEventObserver | None,
        update_type: str,
        event: TelegramObject,
        kwargs: dict[str, Any],
    ) -> Any:
        response: Any = UNHANDLED
        if observer is not None:
            root = observer._handler.filters
            if root:
                data = await _passes(root, event, kwargs)
                if data is None:
                    return UNHANDLED
                if data is not kwargs:
                    kwargs.update(data)
            if observer.handlers:
                response = await self._trigger(observer, event, kwargs)
                if response is REJECTED:  # pragma: no cover - as aiogram
                    return UNHANDLED
                if response is not UNHANDLED:
                    return response
        for router in self.sub_routers:
            response = await router.propagate_event(update_type, event, **kwargs)
            if response is not UNHANDLED:
                break
        return response

    @staticmethod
    async def _trigger(
        observer: TelegramEventObserver, event: TelegramObject, kwargs: dict[str, Any]
    ) -> Any:
        """``TelegramEventObserver.trigger`` without the copies (same order, same results)."""
        inner: list[Any] | None = None
        for handler in observer.handlers:
            kwargs["handler"] = handler
            if handler.filters:
                data = await _passes(handler.filters, event, kwargs)
                if data is None:
                    continue
                if data is not kwargs:
                    kwargs.update(data)
            if inner is None:
                inner = observer._resolve_middlewares()
            try:
                if inner:
                    wrapped = observer.outer_middleware.wrap_middlewares(inner, handler.call)
                    return await wrapped(event, kwargs)
                return await _call(handler, event, kwargs)
            except SkipHandler:
                continue
        return UNHANDLED


async def _call(handler: HandlerObject, event: TelegramObject, kwargs: dict[str, Any]) -> Any:
    if handler.awaitable:
        if handler.varkw:
            return await handler.callback(event, **kwargs)
        return await handler.callback(
            event, **{k: kwargs[k] for k in handler.params if k in kwargs}
        )
    return await handler.call(event, **kwargs)


def make_lean(dispatcher: Router) -> int:
    """Switch every router below ``dispatcher`` to :class:`LeanRouter`; how many changed."""
    changed = 0
    for router in dispatcher.chain_tail:
        if router is dispatcher or type(router) is not Router:
            continue
        router.__class__ = LeanRouter
        changed += 1
    return changed
