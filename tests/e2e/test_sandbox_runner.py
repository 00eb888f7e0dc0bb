"""`bot.py sandbox` keeps its people and data across restarts; --fresh starts empty."""

from __future__ import annotations

import socket
from pathlib import Path

from bot.sandbox.client import EmulatorClient
from bot.sandbox.runner import start_sandbox
from bot.settings import Settings
from locales import Translator

BOT = "careline_patient_bot"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_restart_keeps_people_and_fresh_forgets(tmp_path: Path) -> None:
    settings = Settings.model_construct(**{**Settings().model_dump(), "data_dir": tmp_path})
    tr = Translator("en")
    sandbox = await start_sandbox(settings, port=_port())
    async with EmulatorClient(sandbox.url) as client:
        alice = await client.create_user("Alice", language_code="en")
        await client.send(alice["id"], BOT, "/start")
        await client.wait_for(alice["id"], BOT)
        await client.click_button(alice["id"], BOT, "English")
        await client.wait_for(alice["id"], BOT)
    await sandbox.stop()

    sandbox = await start_sandbox(settings, port=_port())
    async with EmulatorClient(sandbox.url) as client:
        users = await client.users()
        assert [u["id"] for u in users] == [alice["id"]]
        bob = await client.create_user("Bob", language_code="en")
        assert bob["id"] != alice["id"]
        await client.send(alice["id"], BOT, "/start")
        resumed = await client.wait_for(alice["id"], BOT)
        assert resumed["text"] == tr.plain("onboarding.resume")
    await sandbox.stop()

    sandbox = await start_sandbox(settings, port=_port(), fresh=True)
    async with EmulatorClient(sandbox.url) as client:
        assert await client.users() == []
    await sandbox.stop()
