"""End-to-end harness: the real bots (both dispatchers, processor, sender) polling the Bot API
emulator over HTTP, and simulated people talking to it through the client API."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.app import Careline
from bot.logging import JsonFormatter
from bot.sandbox.client import EmulatorClient
from bot.sandbox.emulator import BotApiEmulator, RateLimits
from bot.settings import Settings
from storage.crypto import KeyRing
from tests.conftest import BACKENDS, drop_database, make_database

PATIENT_TOKEN = "100001:test-patient-token-0001"
DOCTOR_TOKEN = "100002:test-doctor-token-0002"
PATIENT_BOT = "careline_patient_bot"
DOCTOR_BOT = "careline_doctor_bot"


@dataclass
class Clinic:
    """A running clinic and the handles tests need."""

    emulator: BotApiEmulator
    app: Careline
    client: EmulatorClient
    settings: Settings
    logs: io.StringIO
    data_dir: Path

    async def person(self, name: str = "Alice", language_code: str = "en") -> int:
        """A new simulated Telegram user; returns their id."""
        user = await self.client.create_user(first_name=name, language_code=language_code)
        return int(user["id"])

    async def say(self, user_id: int, text: str, bot: str = PATIENT_BOT) -> dict[str, Any]:
        """Send text and wait for the bot's next message."""
        since = await self.seq(user_id, bot)
        await self.client.send(user_id, bot, text)
        return await self.client.wait_for(user_id, bot, since=since)

    async def press(self, user_id: int, label: str, bot: str = PATIENT_BOT) -> dict[str, Any]:
        """Press the inline button with this label and wait for the next bot message."""
        since = await self.seq(user_id, bot)
        await self.client.click_button(user_id, bot, label)
        return await self.client.wait_for(user_id, bot, since=since)

    async def seq(self, user_id: int, bot: str = PATIENT_BOT) -> int:
        """The current position in the chat's event stream."""
        return int((await self.client.messages(user_id, bot))["seq"])

    async def bot_texts(self, user_id: int, bot: str = PATIENT_BOT) -> list[str]:
        """Every text the bot sent this person, in order."""
        msgs = (await self.client.messages(user_id, bot))["messages"]
        return [m.get("text") or m.get("caption") or "" for m in msgs if m["from"] == "bot"]

    async def settled(self, within: float = 20.0) -> None:
        """Wait until everything sent so far is handled: the emulator holds no update for the
        bots, the inbox nothing pending, the outbox nothing to send. What nobody received then
        will not arrive late (an absence is a fact, not a guess after a pause)."""
        deadline = time.monotonic() + within
        while True:
            held = sum(int(b["pending_updates"]) for b in self.emulator.stats()["bots"].values())
            async with self.app.db.uow() as uow:
                busy = held + sum(
                    [
                        await uow.inbox.count("pending"),
                        await uow.outbox.count("pending"),
                        await uow.outbox.count("sending"),
                    ]
                )
            if not busy:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"clinic not settled within {within}s ({busy} left)")
            self.app.sender.poke()
            await asyncio.sleep(0.05)


def clinic_settings(data_dir: Path, base_url: str, **extra: Any) -> Settings:
    """Settings for a test clinic on the emulator; test-speed outbox pacing."""
    values: dict[str, Any] = {
        "patient_bot_token": SecretStr(PATIENT_TOKEN),
        "doctor_bot_token": SecretStr(DOCTOR_TOKEN),
        "telegram_api_url": base_url,
        "data_dir": data_dir,
        "outbox_global_per_s": 1000.0,
        "outbox_per_chat_per_s": 200.0,
        "outbox_per_chat_burst": 50,
        # One call in flight: these tests read two people's chats in turn and expect what one
        # update sent to arrive in the order it was queued across chats, which the sender
        # keeps only within a chat once several calls are in flight (Telegram does not order
        # chats either). tests/e2e/test_sender_concurrency.py and the kill test in
        # test_resilience.py run the default of 8.
        "outbox_concurrency": 1,
    }
    values.update(extra)
    return Settings.model_construct(**{**Settings().model_dump(), **values})


@pytest.fixture
def log_capture() -> Any:
    """All log records as JSON lines, in memory."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old)


async def start_clinic(
    tmp_path: Path,
    backend: str,
    logs: io.StringIO,
    *,
    limits: RateLimits | None = None,
    **settings_extra: Any,
) -> tuple[Clinic, str]:
    """Emulator + migrated database + both bots; returns the clinic and the db schema."""
    emulator = BotApiEmulator(limits=limits or RateLimits(enabled=False))
    emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")
    emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Careline Doctors")
    url = await emulator.start("127.0.0.1", 0)
    ring, _ = KeyRing.load_or_create(tmp_path / "keys.json")
    db, schema = await make_database(backend, tmp_path, ring)
    settings = clinic_settings(tmp_path, url, **settings_extra)
    app = await Careline.build(settings, db)
    await app.start()
    client = EmulatorClient(url)
    await client.__aenter__()
    return Clinic(emulator, app, client, settings, logs, tmp_path), schema


async def stop_clinic(clinic: Clinic, schema: str) -> None:
    """Stop everything in order."""
    await clinic.client.__aexit__(None, None, None)
    await clinic.app.stop()
    await clinic.emulator.stop()
    await drop_database(clinic.app.db, schema)


@pytest.fixture(params=BACKENDS)
async def clinic(
    request: pytest.FixtureRequest, tmp_path: Path, log_capture: io.StringIO
) -> AsyncIterator[Clinic]:
    """A running clinic on each database backend."""
    c, schema = await start_clinic(tmp_path, request.param, log_capture)
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


@pytest.fixture
async def sqlite_clinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """A running clinic on SQLite only (for tests that inspect the database file)."""
    c, schema = await start_clinic(tmp_path, "sqlite", log_capture)
    try:
        yield c
    finally:
        await stop_clinic(c, schema)
