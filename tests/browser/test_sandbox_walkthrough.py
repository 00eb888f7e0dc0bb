"""The sandbox page after the issue 13 walkthrough, in Chromium against the real sandbox:
`--play` opens the chats of the scenario's people by itself (once per replay), and a doctor's
/referral wizard offers the demo clinic's two fictional hospitals and their departments.
Screenshots go to $CARELINE_SCREENSHOT_DIR (or pytest's temp dir)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from bot.sandbox.demo import DEMO_HOSPITALS, DEMO_TOWN
from bot.sandbox.play import BOTS, PlayState, Scenario, load_scenario, replay
from bot.sandbox.runner import Sandbox, start_sandbox
from bot.settings import Settings
from tests.browser.test_journey import WAIT_MS, Chat, t

pytestmark = pytest.mark.browser

RIVERSIDE, HILLCREST = DEMO_HOSPITALS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def playing(tmp_path: Path, scenario: Scenario) -> AsyncIterator[tuple[Sandbox, PlayState]]:
    """`bot.py sandbox --play` in-process: the sandbox with the scenario's state for the page
    (the replay itself is started by the test, once the page is open)."""
    settings = Settings.model_construct(**{**Settings().model_dump(), "data_dir": tmp_path})
    state = PlayState(scenario)
    sandbox = await start_sandbox(settings, port=_free_port(), fresh=True, play=state)
    try:
        yield sandbox, state
    finally:
        await sandbox.stop()


def pane_of(page: Page, name: str) -> Locator:
    return page.get_by_test_id("pane").filter(
        has=page.get_by_test_id("chat-title").filter(has_text=name)
    )


async def sees_chats(page: Page, chats: list[tuple[str, str]]) -> None:
    """Exactly these (person, bot username) chats are open, live, in this order."""
    panes = page.get_by_test_id("pane")
    await expect(panes).to_have_count(len(chats), timeout=WAIT_MS)
    for i, (name, bot) in enumerate(chats):
        title = panes.nth(i).get_by_test_id("chat-title")
        await expect(title).to_contain_text(name, timeout=WAIT_MS)
        await expect(title).to_contain_text(f"@{bot}")
        await expect(panes.nth(i).get_by_test_id("connection-status")).to_have_text("live")


async def test_play_opens_the_scenarios_people(
    browser: Browser, tmp_path: Path, screenshot_dir: Path
) -> None:
    """The page is open before the replay starts; as the replay makes its patient, doctor
    and caregiver, their three chats open side by side with the right bots, nobody
    clicking. A pane the visitor closes stays closed on reload; a page opened later (another
    browser) opens the three too."""
    scenario = load_scenario("missed_dose")
    chats = [
        ("Rosa Fictive", BOTS["patient"]),
        ("Felix Marlow", BOTS["doctor"]),
        ("Nina Fictive", BOTS["patient"]),
    ]
    async with playing(tmp_path, scenario) as (sandbox, state):
        context = await browser.new_context(viewport={"width": 1440, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(sandbox.url)
        await expect(page.get_by_test_id("pane")).to_have_count(1)
        player = asyncio.create_task(
            replay(scenario, sandbox.emulator.base_url, speed=4, out=io.StringIO(), state=state)
        )
        try:
            await sees_chats(page, chats)
            await expect(page.get_by_test_id("toasts")).to_contain_text(scenario.title)
            # The replay goes on in the open chats.
            rosa = pane_of(page, "Rosa Fictive")
            await expect(rosa.get_by_test_id("message-user").first).to_contain_text(
                "/start", timeout=WAIT_MS
            )
            await expect(rosa.get_by_test_id("message-bot").first).to_be_visible(timeout=WAIT_MS)
            await page.screenshot(path=str(screenshot_dir / "play-opens-people.png"))

            # The visitor closes Nina's chat; a reload keeps it closed.
            await pane_of(page, "Nina Fictive").get_by_test_id("pane-close").click()
            await expect(page.get_by_test_id("pane")).to_have_count(2)
            await page.reload()
            await sees_chats(page, chats[:2])

            # A page opened later, in a new browser, opens all three.
            late = await browser.new_context(viewport={"width": 1440, "height": 900})
            other = await late.new_page()
            other.on("pageerror", lambda exc: errors.append(str(exc)))
            await other.goto(sandbox.url)
            await sees_chats(other, chats)
            await late.close()
        finally:
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await player
        assert errors == []
        await context.close()


async def test_referral_wizard_offers_the_demo_hospitals(
    browser: Browser, tmp_path: Path, screenshot_dir: Path
) -> None:
    """The consultation scenario up to the referral, replayed for the page; then the doctor's
    /referral on the page shows Riverside and Hillcrest, and Riverside's departments."""
    full = load_scenario("consult_referral")
    upto = next(i for i, s in enumerate(full.steps) if s.value == "/referral")
    scenario = Scenario(full.path, full.title, full.description, full.people, full.steps[:upto])
    async with playing(tmp_path, scenario) as (sandbox, state):
        context = await browser.new_context(viewport={"width": 1440, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(sandbox.url)
        out = io.StringIO()
        ok = await replay(scenario, sandbox.emulator.base_url, speed=50, out=out, state=state)
        assert ok, out.getvalue()
        chats = [("Omar Sample", BOTS["patient"]), ("Iris Calloway", BOTS["doctor"])]
        await sees_chats(page, chats)

        doctor = Chat(page, pane_of(page, "Iris Calloway"))
        await doctor.say("/referral")
        question = doctor.bot.filter(has_text=re.compile("referral, step 1 of 6")).last
        await expect(question).to_be_visible(timeout=WAIT_MS)
        for hospital in (RIVERSIDE, HILLCREST):
            label = f"{hospital.name} · {DEMO_TOWN}"
            await expect(question.get_by_role("button", name=label)).to_be_visible()
        await doctor.root.get_by_test_id("composer-input").blur()
        await page.screenshot(path=str(screenshot_dir / "referral-wizard-hospitals.png"))

        await question.get_by_role("button", name=f"{RIVERSIDE.name} · {DEMO_TOWN}").click()
        step2 = doctor.bot.filter(has_text=re.compile("step 2 of 6")).last
        await expect(step2).to_contain_text(RIVERSIDE.name, timeout=WAIT_MS)
        for department in RIVERSIDE.departments:
            await expect(step2.get_by_role("button", name=department, exact=True)).to_be_visible()
        await expect(step2.get_by_role("button", name=t("ref.wiz.any_department"))).to_be_visible()
        await page.screenshot(path=str(screenshot_dir / "referral-wizard-departments.png"))
        assert errors == []
        await context.close()
