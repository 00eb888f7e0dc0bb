"""A worker process for tests/e2e/test_workers.py: one shared-inbox processor against a
PostgreSQL database, whose handler records each message to a file and, on the text "block",
writes a marker and waits forever (holding its chat) — to be killed with SIGKILL.

    python -m tests.e2e.shared_worker <database url> <keys file> <record file> <marker file>
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiogram import Bot, Dispatcher
from aiogram.types import Message

from bot.telegram.processor import BotRuntime, UpdateProcessor
from storage.crypto import KeyRing
from storage.uow import Database

TOKEN = "100001:shared-worker-token-0001"


async def main(url: str, keys: Path, record: Path, marker: Path) -> None:
    ring, _ = KeyRing.load_or_create(keys)
    db = Database(url, ring)
    dp = Dispatcher()

    @dp.message()
    async def on_message(message: Message) -> None:
        with record.open("a") as fh:
            fh.write(f"{message.chat.id} {message.text}\n")
        if message.text == "block":
            marker.write_text("blocked")  # noqa: ASYNC240 - a test worker, once
            await asyncio.Event().wait()  # holds the chat until this process is killed

    processor = UpdateProcessor(
        db, {"patient": BotRuntime("patient", Bot(TOKEN), dp)}, shared=True
    )
    await processor.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])))
