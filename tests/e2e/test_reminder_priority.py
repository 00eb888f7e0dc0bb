"""Urgent before routine when the sender is saturated: a burst of due reminders is queued
behind a slow sending rate, then a person writes that someone collapsed. Their emergency
instructions overtake the reminders still waiting; every reminder is still delivered."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from locales import Translator
from storage.models import OutboxMessage, utcnow
from tests.e2e.conftest import PATIENT_BOT, start_clinic, stop_clinic
from tests.e2e.test_reminder_processes import open_chats, reminders_received, seed

PATIENTS = 40


async def test_emergency_overtakes_a_queue_of_reminders(
    tmp_path: Path, log_capture: io.StringIO
) -> None:
    clinic, schema = await start_clinic(
        tmp_path, "sqlite", log_capture, outbox_global_per_s=4.0, outbox_per_chat_burst=3
    )
    try:
        uids = [await clinic.person(f"Tester {i}", "en") for i in range(PATIENTS)]
        await seed(clinic.app.db, uids)
        open_chats(clinic.emulator, uids)
        # The whole burst is enqueued at once (the fake clock is past every jitter).
        while await clinic.app.sweeper.sweep_once(utcnow() + timedelta(minutes=2)):
            pass
        async with clinic.app.db.uow() as uow:
            queued = await uow.session.scalar(
                select(func.count()).where(
                    OutboxMessage.bot == "patient", OutboxMessage.method == "sendMessage"
                )
            )
        assert queued == PATIENTS
        # A stranger in danger writes while most reminders still wait (4 a second).
        stranger = await clinic.person("Passer-by", "en")
        await asyncio.sleep(1.0)
        tr = Translator("en")
        expected = tr.plain(
            "emergency.call_now", emergency_number="112", what=tr("redflag.unconscious")
        )
        await clinic.client.send(
            stranger, PATIENT_BOT, "my husband collapsed and is not waking up"
        )
        await clinic.client.wait_for(
            stranger, PATIENT_BOT, lambda m: m.get("text") == expected, timeout=10
        )
        delivered_before = sum([await reminders_received(clinic.client, u) for u in uids])
        assert delivered_before < PATIENTS // 2, delivered_before  # it did not wait its turn
        # ... and every reminder still arrives, once.
        deadline = time.monotonic() + 60
        while True:
            got = [await reminders_received(clinic.client, u) for u in uids]
            if all(n >= 1 for n in got) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert got == [1] * PATIENTS, got
    finally:
        await stop_clinic(clinic, schema)
