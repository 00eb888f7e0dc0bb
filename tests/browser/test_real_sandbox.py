"""The real sandbox (`bot.py sandbox`): emulator, both Careline bots and the page, driven by a
person in Chromium through a whole patient onboarding."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from bot.sandbox.runner import Sandbox, start_sandbox
from bot.settings import Settings
from locales import Translator
from tests.browser.test_sandbox_page import create_person, send

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def real_sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """`bot.py sandbox` in-process, on a free loopback port and a temp data dir."""
    settings = Settings.model_construct(**{**Settings().model_dump(), "data_dir": tmp_path})
    sandbox = await start_sandbox(settings, host="127.0.0.1", port=_free_port(), fresh=True)
    try:
        yield sandbox
    finally:
        await sandbox.stop()


async def test_patient_onboards_in_the_browser(
    browser: Browser, real_sandbox: Sandbox, screenshot_dir: Path
) -> None:
    tr = Translator("en")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(real_sandbox.url)
    await create_person(page, "Alice", "Testpatient")

    bot = page.get_by_test_id("message-bot")
    await send(page, "/start")
    await expect(bot.last).to_contain_text("Please choose your language")
    await page.get_by_role("button", name="English").last.click()
    await expect(bot.last).to_contain_text("Welcome to Careline")
    await page.get_by_role("button", name="Continue").last.click()
    await expect(bot.last).to_contain_text("Consent to process your health data")
    await page.get_by_role("button", name="I agree").last.click()
    await expect(bot.last).to_contain_text(tr.plain("onboarding.ask_name"))
    await send(page, "Alice <b>Testpatient</b>")
    await expect(bot.last).to_contain_text(tr.plain("onboarding.ask_birth_year"))
    await send(page, "1968")
    await page.get_by_role("button", name="Female").last.click()
    await expect(bot.last).to_contain_text(tr.plain("onboarding.ask_phone"))
    await page.get_by_test_id("reply-button-contact").click()
    await page.get_by_test_id("contact-phone").fill("+15550100555")
    await page.get_by_test_id("contact-submit").click()
    await expect(bot.last).to_contain_text(tr.plain("onboarding.ask_timezone"))
    await page.get_by_role("button", name="London", exact=True).last.click()
    await expect(bot.last).to_contain_text(
        tr.plain("onboarding.done", name="Alice <b>Testpatient</b>")
    )
    await send(page, "/profile")
    await expect(bot.last).to_contain_text("Alice <b>Testpatient</b>")
    await expect(bot.last).to_contain_text("Europe/London")
    await page.screenshot(path=str(screenshot_dir / "real-sandbox-onboarded.png"), full_page=True)
    assert errors == []
