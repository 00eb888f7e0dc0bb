"""An update that breaks processing itself (outside its handler) is set aside; the rest flow."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

import bot.telegram.processor as processor_module
from bot.app import Careline
from bot.settings import Settings
from storage.models import InboxUpdate
from storage.uow import Database


def _msg(update_id: int, text: str) -> dict[str, Any]:
    user = {"id": 4242, "is_bot": False, "first_name": "Pat", "language_code": "en"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "text": text,
            "from": user,
            "chat": {"id": 4242, "type": "private"},
        },
    }


async def test_poison_update_is_set_aside(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.model_construct(
        **{
            **Settings().model_dump(),
            "data_dir": tmp_path,
            "patient_bot_token": SecretStr("100001:poison-test-token"),
            "doctor_bot_token": SecretStr("100002:poison-test-token"),
        }
    )
    app = await Careline.build(settings, db)
    real = processor_module._sender_of

    def explode_on_two(update: dict[str, Any]) -> tuple[int | None, int | None, str | None]:
        if update.get("update_id") == 2:
            raise RuntimeError("breaks the batch, not the handler")
        return real(update)

    monkeypatch.setattr(processor_module, "_sender_of", explode_on_two)
    await app.processor.store("patient", [_msg(1, "/start"), _msg(2, "/help"), _msg(3, "/help")])
    runner = asyncio.create_task(app.processor.run())
    for _ in range(100):
        async with db.uow() as uow:
            if await uow.inbox.count("pending") == 0:
                break
        await asyncio.sleep(0.05)
    await app.processor.stop()
    await asyncio.wait_for(runner, 10)
    async with db.uow() as uow:
        rows = {
            r.update_id: (r.status, r.error)
            for r in await uow.session.scalars(select(InboxUpdate))
        }
    assert rows[1] == ("done", None)
    assert rows[3] == ("done", None)
    assert rows[2] == ("failed", "poison: RuntimeError")
    for bot in app.bots.values():
        await bot.session.close()
