"""The emulator opens an inline web_app button's Mini App as Telegram does: the button's URL
with launch data in the fragment, signed with the bot's token (checked here with aiogram's
own checker, the one Careline uses), fresh each time; a message without such a button is a
clear 400."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiogram.utils.web_app import check_webapp_signature, safe_parse_webapp_init_data

from bot.sandbox import webapp
from bot.sandbox.client import EmulatorClient, EmulatorError
from bot.sandbox.emulator import BotApiEmulator, RateLimits

TOKEN = "100001:AAAwebAppTestToken"
BOT = "careline_webapp_bot"
URL = "https://clinic.example/m/bodymap?lang=en&i=abcdef12"


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(limits=RateLimits(enabled=False), seed=5)
    emulator.register_bot(TOKEN, username=BOT, first_name="Careline")
    await emulator.start()
    yield emulator
    await emulator.stop()


async def _send(emu: BotApiEmulator, chat: int, markup: dict[str, Any]) -> int:
    async with aiohttp.ClientSession() as http:
        body = {"chat_id": chat, "text": "Where?", "reply_markup": markup}
        async with http.post(f"{emu.base_url}/bot{TOKEN}/sendMessage", json=body) as resp:
            answer = await resp.json()
    assert answer["ok"], answer
    return int(answer["result"]["message_id"])


async def test_a_web_app_button_opens_with_signed_launch_data(emu: BotApiEmulator) -> None:
    async with EmulatorClient(emu.base_url) as client:
        user = await client.create_user("Alice", language_code="ru")
        await client.start(user["id"], BOT)
        markup = {"inline_keyboard": [[{"text": "Show", "web_app": {"url": URL}}]]}
        mid = await _send(emu, user["id"], markup)
        history = await client.messages(user["id"], BOT)
        shown = next(m for m in history["messages"] if m["message_id"] == mid)
        assert shown["reply_markup"] == markup  # kept as sent, for the page to draw

        opened = await client.open_web_app(user["id"], BOT, mid)
        url = urlsplit(opened["url"])
        assert opened["url"].startswith(URL + "#")
        fragment = parse_qs(url.fragment)
        assert fragment["tgWebAppVersion"] == [webapp.WEB_APP_VERSION]
        init_data = fragment["tgWebAppData"][0]
        assert init_data == opened["init_data"]
        assert check_webapp_signature(TOKEN, init_data)
        assert not check_webapp_signature("100001:another-token", init_data)
        data = safe_parse_webapp_init_data(TOKEN, init_data)
        assert data.user is not None
        assert (data.user.id, data.user.language_code) == (user["id"], "ru")
        assert data.query_id

        again = await client.open_web_app(user["id"], BOT, mid, url=URL)
        assert again["init_data"] != init_data  # a new launch, a new query_id and hash


async def test_a_message_without_a_web_app_button_is_refused(emu: BotApiEmulator) -> None:
    async with EmulatorClient(emu.base_url) as client:
        user = await client.create_user("Bob")
        await client.start(user["id"], BOT)
        markup = {"inline_keyboard": [[{"text": "Press", "callback_data": "x"}]]}
        mid = await _send(emu, user["id"], markup)
        with pytest.raises(EmulatorError) as caught:
            await client.open_web_app(user["id"], BOT, mid)
        assert caught.value.status == 400
        assert "no web_app button" in str(caught.value)
        with pytest.raises(EmulatorError):
            await client.open_web_app(user["id"], BOT, mid + 100)


def test_the_signature_follows_telegrams_description() -> None:
    """A data-check string of sorted key=value lines, HMAC'd with a key that is itself the
    HMAC of the token under "WebAppData"; one changed character breaks it."""
    user = {"id": 42, "first_name": "Ana"}
    data = webapp.init_data(TOKEN, user, 1_700_000_000, query_id="AAQ")
    fields = parse_qs(data)
    assert json.loads(fields["user"][0]) == user
    assert fields["auth_date"] == ["1700000000"]
    assert check_webapp_signature(TOKEN, data)
    assert not check_webapp_signature(TOKEN, data.replace("1700000000", "1700000001"))
