"""Decorator-style handler registration that can build a fresh aiogram Router each time.

aiogram routers attach to one parent only, but the process (and the tests) may build several
dispatchers; so modules record their handlers in a RouteTable and hand out new routers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiogram import Router

F = TypeVar("F", bound=Callable[..., Any])


class RouteTable:
    """Handlers of one module, in registration order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: list[tuple[str, tuple[Any, ...], Callable[..., Any]]] = []

    def _add(self, observer: str, filters: tuple[Any, ...]) -> Callable[[F], F]:
        def decorator(fn: F) -> F:
            self._entries.append((observer, filters, fn))
            return fn

        return decorator

    def message(self, *filters: Any) -> Callable[[F], F]:
        """Register a message handler."""
        return self._add("message", filters)

    def edited_message(self, *filters: Any) -> Callable[[F], F]:
        """Register an edited-message handler."""
        return self._add("edited_message", filters)

    def callback_query(self, *filters: Any) -> Callable[[F], F]:
        """Register a callback-query handler."""
        return self._add("callback_query", filters)

    def my_chat_member(self, *filters: Any) -> Callable[[F], F]:
        """Register a membership-change handler."""
        return self._add("my_chat_member", filters)

    def pre_checkout_query(self, *filters: Any) -> Callable[[F], F]:
        """Register a pre-checkout handler (Telegram Payments)."""
        return self._add("pre_checkout_query", filters)

    def errors(self, *filters: Any) -> Callable[[F], F]:
        """Register an error handler."""
        return self._add("errors", filters)

    def router(self) -> Router:
        """A new Router with every handler registered."""
        router = Router(name=self.name)
        for observer, filters, fn in self._entries:
            getattr(router, observer).register(fn, *filters)
        return router
