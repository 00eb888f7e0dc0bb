"""bot/telegram/dispatchers.prefilter_callbacks: a router whose callback handlers all take
typed CallbackData skips a press with another prefix in one check; one with any other kind of
callback handler (or with sub-routers) is left as it was."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, User

from bot.settings import Settings
from bot.telegram.dispatchers import build_dispatcher, fsm_backends, prefilter_callbacks


class Alpha(CallbackData, prefix="al"):
    n: int


class Beta(CallbackData, prefix="be", sep="|"):
    word: str


def _query(data: str) -> CallbackQuery:
    user = User(id=1, is_bot=False, first_name="Tester")
    return CallbackQuery(id="q", from_user=user, chat_instance="c", data=data)


async def _root_passes(router: Router, data: str) -> bool:
    result, _ = await router.observers["callback_query"].check_root_filters(_query(data))
    return bool(result)


async def test_typed_router_skips_other_prefixes_and_keeps_its_own() -> None:
    typed = Router(name="typed")
    checked: list[str] = []

    @typed.callback_query(Alpha.filter())
    async def on_alpha(query: CallbackQuery, callback_data: Alpha) -> None:
        checked.append("alpha")

    @typed.callback_query(Beta.filter(F.word == "yes"))
    async def on_beta(query: CallbackQuery, callback_data: Beta) -> None:
        checked.append("beta")

    mixed = Router(name="mixed")

    @mixed.callback_query(Alpha.filter())
    async def on_alpha_again(query: CallbackQuery, callback_data: Alpha) -> None:
        pass

    @mixed.callback_query(F.data == "plain")
    async def on_plain(query: CallbackQuery) -> None:
        pass

    parent = Router(name="parent")

    @parent.callback_query(Alpha.filter())
    async def on_parent(query: CallbackQuery, callback_data: Alpha) -> None:
        pass

    parent.include_router(Router(name="child"))
    top = Router(name="top")
    top.include_routers(typed, mixed, parent)

    assert prefilter_callbacks(top) == 1
    assert await _root_passes(typed, "al:3")
    assert await _root_passes(typed, "be|no")  # the prefix is known; the handler decides
    for other in ("zz:1", "be:yes", "alpha:1", ""):
        assert not await _root_passes(typed, other), other
    assert await _root_passes(mixed, "zz:1")  # an untyped handler: no prefilter
    assert await _root_passes(parent, "zz:1")  # sub-routers: no prefilter


def test_both_bots_routers_get_it_where_they_can() -> None:
    for role in ("patient", "doctor"):
        storage, isolation = fsm_backends(Settings())
        dp = build_dispatcher(role, Settings(), storage, isolation)
        names: list[Any] = []
        for router in dp.chain_tail:
            filters = router.observers["callback_query"]._handler.filters or []
            if any(getattr(f.callback, "__name__", "") == "prefix_in" for f in filters):
                names.append(router.name)
        assert f"{role}.onboarding" in names or role == "doctor"
        assert len(names) >= 10, (role, names)
        assert f"{role}.fallback" not in names  # it takes every press
