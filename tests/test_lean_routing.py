"""The lean router walk takes the same decisions as aiogram's own (bot/telegram/routing.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiogram import BaseMiddleware, Bot, Dispatcher, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command
from aiogram.types import Message, TelegramObject, Update

from bot.settings import Settings
from bot.telegram.dispatchers import build_dispatcher, fsm_backends
from bot.telegram.routing import LeanRouter, make_lean

Trace = list[tuple[str, Any]]


def _tree(trace: Trace) -> Dispatcher:
    """Routers that exercise every rule of the walk; each step is written to ``trace``."""
    dp = Dispatcher()

    async def tag(message: Message) -> dict[str, Any] | bool:
        trace.append(("filter", "tag"))
        return {"tag": "first"} if message.text and "tag" in message.text else False

    async def deny(message: Message) -> bool:
        trace.append(("filter", "deny"))
        return False

    async def sees_tag(message: Message, tag: str | None = None) -> bool:
        trace.append(("filter sees", tag))
        return True

    first = Router(name="first")

    @first.message(tag, deny)  # a dict from a filter, then a failing one: the dict must not leak
    async def never(message: Message) -> None:
        trace.append(("handler", "never"))

    @first.message(F.text == "tag leak?", sees_tag)
    async def first_leak(message: Message, **data: Any) -> str:
        trace.append(("handler", ("first_leak", "tag" in data)))
        return "first_leak"

    @first.message(Command("skip"))
    async def skipper(message: Message) -> None:
        trace.append(("handler", "skipper"))
        raise SkipHandler

    @first.message(Command("skip"))
    async def after_skip(message: Message, handler: Any) -> str:
        trace.append(("handler", ("after_skip", handler.callback.__name__)))
        return "after_skip"

    gated = Router(name="gated")

    async def root(message: Message) -> dict[str, Any] | bool:
        trace.append(("root", message.text))
        return {"rooted": True} if message.text != "/nothing" else False

    gated.message.filter(root)

    @gated.message(F.text == "leak?", sees_tag)
    async def leak(message: Message, rooted: bool, event_router: Router, **data: Any) -> str:
        trace.append(("handler", ("leak", rooted, "tag" in data, event_router.name)))
        return "leak"

    @gated.message(tag, sees_tag)
    async def tagged(message: Message, tag: str, rooted: bool) -> str:
        trace.append(("handler", ("tagged", tag, rooted)))
        return "tagged"

    class Inner(BaseMiddleware):
        async def __call__(
            self,
            handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
            event: TelegramObject,
            data: dict[str, Any],
        ) -> Any:
            trace.append(("inner middleware", data["handler"].callback.__name__))
            data["from_inner"] = 1
            return await handler(event, data)

    class Outer(BaseMiddleware):
        async def __call__(
            self,
            handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
            event: TelegramObject,
            data: dict[str, Any],
        ) -> Any:
            trace.append(("outer middleware", "mw"))
            return await handler(event, data)

    wrapped = Router(name="wrapped")
    wrapped.message.middleware(Inner())
    child = Router(name="child")

    @child.message(F.text == "inner")
    async def with_inner(message: Message, from_inner: int) -> str:
        trace.append(("handler", ("with_inner", from_inner)))
        return "inner"

    wrapped.include_router(child)
    outer = Router(name="outer")
    outer.message.outer_middleware(Outer())

    @outer.message(F.text == "outer")
    def plain(message: Message) -> str:  # a plain function: aiogram runs it in a thread
        trace.append(("handler", "plain"))
        return "outer"

    last = Router(name="last")

    @last.message()
    async def anything(message: Message) -> str:
        trace.append(("handler", "anything"))
        return "anything"

    dp.include_routers(first, gated, wrapped, outer, last)
    return dp


def _update(text: str) -> Update:
    return Update.model_validate(
        {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                "chat": {"id": 5, "type": "private"},
                "from": {"id": 5, "is_bot": False, "first_name": "Test"},
                "text": text,
            },
        }
    )


@pytest.mark.parametrize(
    "text",
    ["tag me", "tag leak?", "leak?", "/skip", "inner", "outer", "/nothing", "something else"],
)
async def test_the_lean_walk_matches_aiogram(text: str) -> None:
    bot = Bot("42:TEST")
    try:
        plain_trace: Trace = []
        lean_trace: Trace = []
        plain, lean = _tree(plain_trace), _tree(lean_trace)
        assert make_lean(lean) == 5 + 1  # the five routers and the child
        assert all(type(r) is LeanRouter for r in lean.chain_tail if r is not lean)
        got_plain = await plain.feed_update(bot, _update(text))
        got_lean = await lean.feed_update(bot, _update(text))
        assert got_lean == got_plain
        assert lean_trace == plain_trace
        assert plain_trace  # the walk did something to compare
    finally:
        await bot.session.close()


def test_both_bots_walk_lean() -> None:
    settings = Settings()
    for role in ("patient", "doctor"):
        storage, isolation = fsm_backends(settings)
        dp = build_dispatcher(role, settings, storage, isolation)
        routers = [r for r in dp.chain_tail if r is not dp]
        assert routers and all(type(r) is LeanRouter for r in routers)
