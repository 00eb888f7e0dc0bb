"""One clock (issue 13, item 5): in the sandbox, moving the page's clock moves everything that
asks for "now" - the snooze time a patient is told, the dose recorded when "Taken" is pressed,
the scheduled events, and the dates on the emulator's messages. The real bot has no way to move
it, and a stopped sandbox gives the process its real clock back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import select

from bot.sandbox.client import EmulatorClient
from bot.sandbox.play import Player, Scenario, load_scenario
from flows import doses
from storage import clock
from storage.models import Dose, ScheduledEvent, utcnow
from tests.e2e.test_scenarios import _sandbox  # the same sandbox the scenario tests start

PATIENT_BOT = "careline_patient_bot"


def _until_plan_confirmed() -> Scenario:
    """The missed-dose scenario up to the patient confirming her medication plan."""
    full = load_scenario("missed_dose")
    end = next(i for i, s in enumerate(full.steps) if s.expect == "Confirmed")
    return Scenario(full.path, full.title, "", full.people, full.steps[: end + 1])


async def _clock(http: aiohttp.ClientSession, url: str, advance: str | None = None) -> datetime:
    if advance is None:
        async with http.get(f"{url}/sandbox/clock") as resp:
            body: dict[str, Any] = await resp.json()
    else:
        async with http.post(f"{url}/sandbox/clock", json={"advance": advance}) as resp:
            body = await resp.json()
    assert body["ok"], body
    return datetime.fromisoformat(body["now"])


def _near(a: datetime, b: datetime, slack: timedelta = timedelta(minutes=2)) -> bool:
    if a.tzinfo is None:  # SQLite hands back naive UTC
        a = a.replace(tzinfo=UTC)
    return abs(a - b) <= slack


async def test_snooze_taken_and_message_dates_follow_the_sandbox_clock(tmp_path: Path) -> None:
    sandbox = await _sandbox(tmp_path)
    try:
        player = Player(_until_plan_confirmed(), sandbox.url, timeout_factor=3)  # a busy CI
        await player.run()
        rosa = player.ids["rosa"]
        async with aiohttp.ClientSession() as http, EmulatorClient(sandbox.url) as client:
            # "Next event" skips the periodic checks: it stops at the first dose reminder.
            mark = (await client.messages(rosa, PATIENT_BOT))["seq"]
            for _ in range(5):
                now = await _clock(http, sandbox.url, "next")
                async with sandbox.app.db.uow() as uow:
                    first_due = min((await uow.session.execute(select(Dose.due_at))).scalars())
                if _near(first_due, now, timedelta(0)) or now > first_due.replace(tzinfo=UTC):
                    break
            found = [
                await client.wait_for(
                    rosa,
                    PATIENT_BOT,
                    lambda m: "Time for your" in (m.get("text") or ""),
                    since=mark,
                )
            ]
            now = await _clock(http, sandbox.url)
            # The reminder's date is sandbox time, days away from the real clock.
            sent = datetime.fromtimestamp(found[-1]["date"], UTC)
            # "next" moved the clock to the dose's time (usually hours ahead): the reminder's
            # date is sandbox time, and Careline's one clock follows the page's.
            assert _near(sent, now) and _near(utcnow(), now)
            assert sandbox.clock.clock.offset > timedelta(0)

            mark = (await client.messages(rosa, PATIENT_BOT))["seq"]
            await client.click_button(rosa, PATIENT_BOT, "⏰ 10 min")
            told = await client.wait_for(
                rosa,
                PATIENT_BOT,
                lambda m: "remind you again" in (m.get("text") or ""),
                since=mark,
            )
            due = now + timedelta(minutes=10)
            local = due.astimezone(ZoneInfo("Etc/GMT-3"))  # Rosa chose UTC+3 at sign-up
            assert local.strftime("%H:%M") in told["text"], told["text"]
            async with sandbox.app.db.uow() as uow:
                event = (
                    await uow.session.execute(
                        select(ScheduledEvent).where(ScheduledEvent.kind == doses.SNOOZE)
                    )
                ).scalar_one()
                event_due = event.due_at
            assert _near(event_due, due)  # ten minutes after sandbox now, not real now

            mark = (await client.messages(rosa, PATIENT_BOT))["seq"]
            await _clock(http, sandbox.url, "10m")
            await client.wait_for(
                rosa,
                PATIENT_BOT,
                lambda m: "Time for your" in (m.get("text") or ""),
                since=mark,
                timeout=30,
            )
            mark = (await client.messages(rosa, PATIENT_BOT))["seq"]
            await client.click_button(rosa, PATIENT_BOT, "✅ Taken")
            await client.wait_for(
                rosa, PATIENT_BOT, lambda m: m["seq"] > mark, since=mark, timeout=30
            )
            pressed = await _clock(http, sandbox.url)
            async with sandbox.app.db.uow() as uow:
                dose = (await uow.session.execute(select(Dose))).scalars().first()
                assert dose is not None and dose.status == "taken"
                responded = dose.responded_at
            assert responded is not None and _near(responded, pressed)
    finally:
        await sandbox.stop()
    assert clock.is_real()  # the stopped sandbox gave the process its real clock back
    assert _near(utcnow(), datetime.now(UTC), timedelta(seconds=5))


def test_only_the_sandbox_moves_the_clock() -> None:
    """The clock source is replaced only through storage.clock.use, which only the sandbox's
    ClockControl calls; restoring puts the previous source back."""
    assert clock.is_real()
    fixed = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)
    restore = clock.use(lambda: fixed)
    try:
        assert utcnow() == fixed and not clock.is_real()
    finally:
        restore()
    assert clock.is_real()
    import bot.app
    import bot.cli

    for module in (bot.app, bot.cli):
        source = Path(module.__file__ or "").read_text("utf-8")
        assert "clock.use(" not in source and "ClockControl" not in source
