"""The outbox sender at Telegram's limits: several calls in flight with each chat's order kept,
replies never held behind a burst of bulk notifications, and paid broadcasts paced within the
clinic's daily Star budget. Real app, real database, the Bot API emulator over HTTP with its
limits on (it answers 429 like Telegram)."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import timedelta
from pathlib import Path

from bot.sandbox.emulator_faults import RateLimits
from bot.telegram.reply import PRIORITY_ROUTINE, Replier
from locales import Translator
from storage.models import utcnow
from tests.e2e.conftest import PATIENT_BOT, PATIENT_TOKEN, Clinic, start_clinic, stop_clinic
from tests.e2e.test_reminder_processes import open_chats, reminders_received, seed

BOT_ID = int(PATIENT_TOKEN.split(":", 1)[0])
# The sender's defaults (the end-to-end clinic raises them so other tests run fast).
TELEGRAM_RATES = {
    "outbox_global_per_s": 30.0,
    "outbox_per_chat_per_s": 1.0,
    "outbox_per_chat_burst": 3,
}


async def _texts(clinic: Clinic, uid: int) -> list[str]:
    history = (await clinic.client.messages(uid, PATIENT_BOT))["messages"]
    return [str(m.get("text")) for m in history if m.get("from") == "bot"]


async def _until(check: object, within: float = 30.0) -> None:
    """Wait (polling, with a deadline) until ``check()`` is true."""
    deadline = time.monotonic() + within
    while True:
        ok = await check() if asyncio.iscoroutinefunction(check) else check()  # type: ignore[operator]
        if ok:
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _queue(clinic: Clinic, plan: dict[int, list[str]]) -> None:
    """Queue bulk messages (routine priority, as reminders are) in one transaction."""
    async with clinic.app.db.uow() as uow:
        for uid, texts in plan.items():
            for text in texts:
                await Replier(uow, "patient", uid).text(text, priority=PRIORITY_ROUTINE)
        await uow.commit()
    clinic.app.sender.poke()


async def test_calls_in_flight_keep_each_chats_order(
    tmp_path: Path, log_capture: io.StringIO
) -> None:
    """8 chats x 6 messages, every call held 5-40 ms at random by "Telegram": calls to different
    chats overlap, and each chat still gets its messages in the order they were queued."""
    clinic, schema = await start_clinic(
        tmp_path,
        "sqlite",
        log_capture,
        limits=RateLimits(
            enabled=True,
            global_per_s=1000,
            global_burst=1000,
            per_chat_per_s=1000,
            per_chat_burst=1000,
        ),
        outbox_global_per_s=1000.0,
        outbox_per_chat_per_s=1000.0,
        outbox_per_chat_burst=1000,
        outbox_concurrency=8,
    )
    try:
        uids = [await clinic.person(f"Tester {i}", "en") for i in range(8)]
        open_chats(clinic.emulator, uids)
        await clinic.client.set_faults(methods=["sendMessage"], delay_ms=[5, 40], seed=3)
        plan = {uid: [f"note {n} for {uid}" for n in range(6)] for uid in uids}
        await _queue(clinic, plan)

        async def all_arrived() -> bool:
            return all([len(await _texts(clinic, u)) == 6 for u in uids])

        await _until(all_arrived)
        for uid in uids:
            assert await _texts(clinic, uid) == plan[uid]
        stats = (await clinic.client.stats())["bots"][PATIENT_BOT]
        assert 2 <= stats["max_in_flight"] <= 8, stats["max_in_flight"]
        assert stats["methods"]["sendMessage"]["429"] == 0
    finally:
        await stop_clinic(clinic, schema)


async def test_replies_are_not_held_behind_a_burst(
    tmp_path: Path, log_capture: io.StringIO
) -> None:
    """40 reminders wait behind a bulk rate of 2/s; three people who write get their answers
    while most reminders still wait (replies take only their own chat's token), the bulk rate
    is kept (no 429 from "Telegram"), and every reminder is delivered once."""
    clinic, schema = await start_clinic(
        tmp_path,
        "sqlite",
        log_capture,
        # "Telegram" allows a burst of 5 at 2/s; the sender's own bulk burst is 3 (Telegram's
        # real bucket is larger: 30), so arrival jitter never bunches calls into a 429.
        limits=RateLimits(enabled=True, global_per_s=2, global_burst=5),
        **{**TELEGRAM_RATES, "outbox_global_per_s": 2.0},
    )
    try:
        uids = [await clinic.person(f"Tester {i}", "en") for i in range(40)]
        await seed(clinic.app.db, uids)
        open_chats(clinic.emulator, uids)
        while await clinic.app.sweeper.sweep_once(utcnow() + timedelta(minutes=2)):
            pass
        clinic.app.sender.poke()
        talkers = [await clinic.person(f"Talker {i}", "en") for i in range(3)]
        help_text = Translator("en").plain("onboarding.choose_language")
        for uid in talkers:
            await clinic.client.start(uid, PATIENT_BOT)
        for uid in talkers:
            await clinic.client.wait_for(
                uid, PATIENT_BOT, lambda m: m.get("text") == help_text, timeout=10
            )
        got = [await reminders_received(clinic.client, u) for u in uids]
        assert sum(got) < 30, got  # answered long before the burst was through

        async def all_reminded() -> bool:
            return all([await reminders_received(clinic.client, u) >= 1 for u in uids])

        await _until(all_reminded, within=60)
        assert [await reminders_received(clinic.client, u) for u in uids] == [1] * 40
        stats = (await clinic.client.stats())["bots"][PATIENT_BOT]
        assert stats["methods"]["sendMessage"]["429"] == 0
    finally:
        await stop_clinic(clinic, schema)


async def test_paid_broadcast_within_the_days_budget(
    tmp_path: Path, log_capture: io.StringIO
) -> None:
    """With a budget of 2 Stars a day, 20 bulk messages beyond the free 30/s go out as paid
    broadcasts (counted at 0.1 Star each) and the rest at the free rate: nothing refused by
    "Telegram", never more Stars charged than the budget, every message delivered once."""
    clinic, schema = await start_clinic(
        tmp_path,
        "sqlite",
        log_capture,
        limits=RateLimits(enabled=True),  # Telegram's defaults: 30/s bulk, 1/s per chat
        **TELEGRAM_RATES,
        paid_broadcast_stars_per_day=2.0,
    )
    try:
        uids = [await clinic.person(f"Tester {i}", "en") for i in range(120)]
        open_chats(clinic.emulator, uids)
        await _queue(clinic, {uid: [f"reminder for {uid}"] for uid in uids})

        async def all_arrived() -> bool:
            return clinic.app.sender.stats.sent >= len(uids)

        await _until(all_arrived, within=60)
        for uid in uids:
            assert await _texts(clinic, uid) == [f"reminder for {uid}"]
        stats = (await clinic.client.stats())["bots"][PATIENT_BOT]
        assert stats["methods"]["sendMessage"]["429"] == 0
        assert clinic.app.sender.stats.paid == 20
        # Telegram charges only what goes beyond 30 in a second; the sender counts every paid
        # call against the budget, so it can never spend more than the budget.
        assert stats["paid_broadcast_stars"] <= 2.0
    finally:
        await stop_clinic(clinic, schema)


async def test_without_a_budget_bulk_stays_at_the_free_rate(
    tmp_path: Path, log_capture: io.StringIO
) -> None:
    """No budget: no call carries allow_paid_broadcast, and "Telegram" refuses none."""
    clinic, schema = await start_clinic(
        tmp_path, "sqlite", log_capture, limits=RateLimits(enabled=True), **TELEGRAM_RATES
    )
    try:
        uids = [await clinic.person(f"Tester {i}", "en") for i in range(45)]
        open_chats(clinic.emulator, uids)
        await _queue(clinic, {uid: ["hello"] for uid in uids})

        async def all_arrived() -> bool:
            return clinic.app.sender.stats.sent >= len(uids)

        await _until(all_arrived, within=30)
        stats = (await clinic.client.stats())["bots"][PATIENT_BOT]
        assert stats["methods"]["sendMessage"]["429"] == 0
        assert clinic.app.sender.stats.paid == 0 and stats["paid_broadcast_stars"] == 0
    finally:
        await stop_clinic(clinic, schema)
