"""Reminders from real bot processes (`python bot.py run`) against the emulator.

- SIGKILL during a burst of due reminders (SQLite): after the restarts every due reminder
  reaches its patient; none is enqueued twice, and a kill costs at most one duplicate
  delivery per chat (the calls in flight when it landed: one per chat, at most 8).
- Two processes on one PostgreSQL database share the queue: every reminder is delivered
  exactly once between them, and both took part.

Patients, plans and their first occurrence are seeded through the project's own flows
(``flows.doses.start``) into the database the processes then open, with the same key file.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.sandbox.client import EmulatorClient
from bot.sandbox.emulator import BotApiEmulator, RateLimits
from flows import doses, timing
from flows.onboarding import CONSENT_VERSION, Step
from locales import Translator
from storage.crypto import KeyRing
from storage.migrate import upgrade
from storage.models import (
    Doctor,
    Dose,
    MedicationPlan,
    OutboxMessage,
    Patient,
    ScheduledEvent,
    utcnow,
)
from storage.uow import Database
from tests.e2e.conftest import DOCTOR_BOT, DOCTOR_TOKEN, PATIENT_BOT, PATIENT_TOKEN
from tests.e2e.harness_subprocess import BotProcess, get_updates_calls, wait_polling

SENDER_CONCURRENCY = 8  # the sender's default calls in flight
PG_URL = os.environ.get("CARELINE_TEST_POSTGRES_URL")
EN = Translator("en")
TAKEN = EN.plain("doses.btn.taken")


async def seed(db: Database, uids: list[int]) -> None:
    """A verified doctor and, per uid, an onboarded patient with an active plan whose first
    dose is due within the coming minute (the current UTC minute plus its jitter)."""
    now = utcnow()
    hhmm = now.strftime("%H:%M")
    async with db.uow() as uow:
        doctor = await uow.doctors.add(
            Doctor(
                tg_user_id=1,
                locale="en",
                status="verified",
                verified_until=now + timedelta(days=300),
                departments="general",
            )
        )
        await uow.commit()
    for start in range(0, len(uids), 50):
        async with db.uow() as uow:
            for uid in uids[start : start + 50]:
                patient = await uow.patients.add(
                    Patient(
                        tg_user_id=uid,
                        locale="en",
                        onboarding_state=Step.DONE.value,
                        consent_version=CONSENT_VERSION,
                        timezone="UTC",
                    )
                )
                await uow.patients.set_field(patient, "name", f"Tester {uid}")
                plan = MedicationPlan(
                    patient_id=patient.id,
                    doctor_id=doctor.id,
                    status="active",
                    step="done",
                    version=1,
                    schedule=timing.Schedule(times=(hhmm,), start=now.date()).to_json(),
                    confirmed_at=now,
                )
                plan.id = uuid.uuid4().hex
                plan.details_enc = await uow.vault.seal(
                    patient.id,
                    "med_plans",
                    "details_enc",
                    plan.id,
                    json.dumps({"name": "Examplomycin 5 mg", "dose": "1 tablet", "food": "none"}),
                )
                uow.session.add(plan)
                await uow.session.flush()
                # From a minute ago, the next occurrence is this minute's.
                await doses.start(uow, plan, patient, now - timedelta(minutes=1))
            await uow.commit()


async def reminders_received(client: EmulatorClient, uid: int) -> int:
    """How many dose reminders (messages with a Taken button) the patient bot sent ``uid``."""
    history = (await client.messages(uid, PATIENT_BOT))["messages"]
    count = 0
    for m in history:
        if m.get("from") != "bot":
            continue
        rows = (m.get("reply_markup") or {}).get("inline_keyboard") or []
        if any(b.get("text") == TAKEN for row in rows for b in row):
            count += 1
    return count


async def delivered_everywhere(client: EmulatorClient, uids: list[int]) -> dict[int, int]:
    return {uid: await reminders_received(client, uid) for uid in uids}


async def dose_rows(db: Database) -> tuple[Counter[str], Counter[str], dict[int, int]]:
    """(dose statuses, dose-event statuses, reminders queued per patient chat)."""
    async with db.uow() as uow:
        dose_status = Counter(await uow.session.scalars(select(Dose.status)))
        event_status = Counter(
            await uow.session.scalars(
                select(ScheduledEvent.status).where(ScheduledEvent.kind == doses.KIND)
            )
        )
        queued = dict(
            (
                await uow.session.execute(
                    select(OutboxMessage.chat_id, func.count())
                    .where(OutboxMessage.bot == "patient", OutboxMessage.method == "sendMessage")
                    .group_by(OutboxMessage.chat_id)
                )
            ).all()
        )
    return dose_status, event_status, {int(k): int(v) for k, v in queued.items()}


async def _set_dose_due(db: Database, start: datetime, spread_s: int = 0) -> None:
    """Move the pending dose events to ``start`` (plus up to ``spread_s`` seconds by id)."""
    async with db.uow() as uow:
        events = list(
            await uow.session.scalars(
                select(ScheduledEvent).where(
                    ScheduledEvent.kind == doses.KIND, ScheduledEvent.status == "pending"
                )
            )
        )
        for event in events:
            # Spread to the millisecond, so rows fall due in every part of a sweep interval.
            offset = (event.id * 7919 % (spread_s * 1000)) / 1000 if spread_s else 0
            event.due_at = start + timedelta(seconds=offset)
        await uow.commit()


def open_chats(emulator: BotApiEmulator, uids: list[int]) -> None:
    """The seeded patients have talked to the patient bot before (they were onboarded), so
    the bot may write to them: mark their chats as seen, as their first /start would have."""
    bot_id = int(PATIENT_TOKEN.split(":", 1)[0])
    for uid in uids:
        emulator.chat(bot_id, uid).seen = True


async def start_emulator() -> tuple[BotApiEmulator, str, EmulatorClient]:
    emulator = BotApiEmulator(limits=RateLimits(enabled=False))
    emulator.register_bot(PATIENT_TOKEN, username=PATIENT_BOT, first_name="Careline")
    emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_BOT, first_name="Careline Doctors")
    url = await emulator.start("127.0.0.1", 0)
    return emulator, url, EmulatorClient(url)


async def wait_until(predicate: Any, within: float, what: str, procs: list[BotProcess]) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        for proc in procs:
            if not proc.running():
                raise AssertionError(f"bot process exited while {what}:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            tails = "\n".join(p.log_tail(15) for p in procs)
            raise AssertionError(f"not {what} within {within}s\n{tails}")
        await asyncio.sleep(0.2)


KILLS = 3
PATIENTS = 120


@pytest.mark.slow
async def test_sigkill_during_a_reminder_burst_loses_and_repeats_nothing(tmp_path: Path) -> None:
    rng = random.Random(5)
    emulator, url, client = await start_emulator()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    ring, _ = KeyRing.load_or_create(data_dir / "keys.json")
    db = Database(f"sqlite+aiosqlite:///{data_dir / 'careline.db'}", ring)
    proc = BotProcess(data_dir, url)
    try:
        await upgrade(db.engine)
        uids = [
            int((await client.create_user(f"Tester {i}", "en"))["id"]) for i in range(PATIENTS)
        ]
        await seed(db, uids)
        open_chats(emulator, uids)
        # "Telegram" takes a few ms per message, so a kill often finds a call in flight.
        await client.set_faults(methods=["sendMessage"], delay_ms=[5, 20], seed=5)
        before = get_updates_calls(emulator)
        proc.start()
        await wait_polling(emulator, before, proc)
        kills = 0
        for _ in range(KILLS):
            # Wait for the burst to be under way (some delivered, not all), then kill.
            async def started() -> bool:
                got = await delivered_everywhere(client, uids)
                return 0 < sum(1 for n in got.values() if n) < len(uids)

            deadline = time.monotonic() + 120
            while not await started():
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            else:
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                assert await proc.kill() == -signal.SIGKILL
                kills += 1
                before = get_updates_calls(emulator)
                proc.start()
                await wait_polling(emulator, before, proc)
                continue
            break  # the burst was over before this kill: nothing left to interrupt
        if kills == 0:
            got = await delivered_everywhere(client, uids)
            _, event_status, queued = await dose_rows(db)
            async with db.uow() as uow:
                states = Counter(
                    (await uow.session.execute(select(OutboxMessage.status, OutboxMessage.error)))
                    .tuples()
                    .all()
                )
            raise AssertionError(
                f"no kill landed during the burst: delivered={sum(got.values())} outbox={states} "
                f"events={event_status} queued={sum(queued.values())}\n{proc.log_tail()}"
            )
        await client.clear_faults()

        async def all_delivered() -> bool:
            return all(n >= 1 for n in (await delivered_everywhere(client, uids)).values())

        await wait_until(all_delivered, 150, "delivering every reminder", [proc])
        assert await proc.terminate(within=20) == 0, proc.log_tail()
        got = await delivered_everywhere(client, uids)
        extra = sum(n - 1 for n in got.values())
        print(f"kills={kills} patients={len(uids)} duplicates={extra}")  # noqa: T201
        # A kill finds at most the calls in flight (one per chat, at most the sender's 8)
        # with their fate unknown; each is sent again once.
        assert all(n - 1 <= kills for n in got.values()), got
        assert extra <= kills * SENDER_CONCURRENCY, f"{extra} duplicates after {kills} kills"
        dose_status, event_status, queued = await dose_rows(db)
        # Each due reminder was queued exactly once; the next day's occurrence is waiting.
        assert queued == dict.fromkeys(uids, 1)
        assert event_status == Counter({"done": PATIENTS, "pending": PATIENTS}), event_status
        assert sum(dose_status.values()) == 2 * PATIENTS, dose_status
    finally:
        proc.cleanup()
        await db.dispose()
        await client.close()
        await emulator.stop()


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="CARELINE_TEST_POSTGRES_URL is not set (no PostgreSQL)")
async def test_two_processes_on_postgres_deliver_each_reminder_exactly_once(
    tmp_path: Path,
) -> None:
    assert PG_URL is not None
    name = f"careline_t_{uuid.uuid4().hex[:10]}"
    admin = Database(
        PG_URL,
        KeyRing.load_or_create(tmp_path / "admin-keys.json")[0],
        isolation_level="AUTOCOMMIT",
    )
    async with admin.engine.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url_db = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    keys = tmp_path / "keys.json"
    ring, _ = KeyRing.load_or_create(keys)
    db = Database(url_db, ring)
    emulator, url, client = await start_emulator()
    procs: list[BotProcess] = []
    try:
        await upgrade(db.engine)
        uids = [int((await client.create_user(f"Tester {i}", "en"))["id"]) for i in range(150)]
        await seed(db, uids)
        open_chats(emulator, uids)
        # Held back until both processes run (a seed late in a minute would otherwise be
        # all due before the second one is up, and the first would rightly take it all).
        await _set_dose_due(db, utcnow() + timedelta(days=1))
        for i in range(2):
            data_dir = tmp_path / f"p{i}"
            data_dir.mkdir()
            procs.append(
                BotProcess(
                    data_dir,
                    url,
                    extra_env={"CARELINE_DATABASE_URL": url_db, "CARELINE_KEYS_FILE": str(keys)},
                )
            )
        # Sends take a little time, so the two processes overlap on the queue.
        await client.set_faults(methods=["sendMessage"], delay_ms=[2, 8], seed=7)
        for proc in procs:
            before = get_updates_calls(emulator)
            proc.start()
            await wait_polling(emulator, before, proc)
        # Now due over the next ten seconds, while both sweep every second.
        await _set_dose_due(db, utcnow() + timedelta(seconds=2), spread_s=10)

        async def all_delivered() -> bool:
            return all(n >= 1 for n in (await delivered_everywhere(client, uids)).values())

        await wait_until(all_delivered, 150, "delivering every reminder", procs)
        await asyncio.sleep(1.0)  # anything sent twice would have arrived by now
        for proc in procs:
            assert await proc.terminate(within=20) == 0, proc.log_tail()
        got = await delivered_everywhere(client, uids)
        assert got == dict.fromkeys(uids, 1)  # exactly once, no kill: no duplicate
        _, event_status, queued = await dose_rows(db)
        assert queued == dict.fromkeys(uids, 1)
        assert event_status == Counter({"done": 150, "pending": 150}), event_status
        async with db.uow() as uow:
            workers = Counter(
                await uow.session.scalars(
                    select(ScheduledEvent.leased_by).where(ScheduledEvent.status == "done")
                )
            )
        print(f"events run per worker: {dict(workers)}")  # noqa: T201
        assert len(workers) == 2, workers  # both processes took part
    finally:
        for proc in procs:
            proc.cleanup()
        await db.dispose()
        await client.close()
        await emulator.stop()
        async with admin.engine.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()
