"""The body map Mini App in Chromium (issue 18): at phone width (360 x 740) a patient marks
one region by tapping and one by keyboard (Tab to it, Space), sets the intensity with the
arrow keys and the kind of pain, sends, and the chat goes on; the page in Russian and Chinese,
with a refusal shown in that language; and in the sandbox page, the intake's web_app button
opens the Mini App over the chat with launch data the emulator signed, which closes itself
after sending. Screenshots go to $CARELINE_SCREENSHOT_DIR (or pytest's temp dir).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from bot.sandbox.client import EmulatorClient
from bot.sandbox.demo import DEMO_PATIENT
from bot.sandbox.runner import Sandbox, start_sandbox
from bot.settings import Settings
from locales import Translator
from tests.browser.test_real_sandbox import _free_port
from tests.browser.test_sandbox_device import open_patient
from tests.e2e.test_sandbox_device import BOT, demo_patient, has_button, onboard

pytestmark = pytest.mark.browser

NAME = " ".join(DEMO_PATIENT)
PHONE: ViewportSize = {"width": 360, "height": 740}
EN = Translator("en")


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """`bot.py sandbox` in-process on a free port, its public URL its own (as by default)."""
    values = {**Settings().model_dump(), "data_dir": tmp_path}
    settings = Settings.model_construct(_fields_set={"data_dir"}, **values)
    running = await start_sandbox(settings, host="127.0.0.1", port=_free_port(), fresh=True)
    try:
        yield running
    finally:
        await running.stop()


async def at_complaint(client: EmulatorClient, uid: int) -> dict[str, Any]:
    """The demo patient onboarded, /intake, "Me": the complaint question with the map."""
    await onboard(client, uid, NAME)
    await client.send(uid, BOT, "/intake")
    await client.wait_for(uid, BOT, has_button(EN.plain("intake.subject.self")))
    await client.click_button(uid, BOT, EN.plain("intake.subject.self"))
    return await client.wait_for(uid, BOT, has_button(EN.plain("bodymap.button")))


async def phone_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    context = await browser.new_context(viewport=PHONE, device_scale_factor=2, has_touch=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    return page, errors


async def fits_the_width(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide at {PHONE['width']}px"


async def test_a_patient_marks_two_regions_and_sends_at_phone_width(
    browser: Browser, sandbox: Sandbox, screenshot_dir: Path
) -> None:
    uid = demo_patient(sandbox)
    async with EmulatorClient(sandbox.url) as client:
        question = await at_complaint(client, uid)
        opened = await client.open_web_app(uid, BOT, question["message_id"])
        assert opened["url"].startswith(f"{sandbox.url.rstrip('/')}/m/bodymap?lang=en&i=")
        page, errors = await phone_page(browser, opened["url"])
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            EN.plain("bodymap.page.title")
        )
        await fits_the_width(page)
        await page.screenshot(path=str(screenshot_dir / "bodymap-en-empty.png"))

        # By tapping: the left side of the chest, 7 of 10 (arrow keys on the slider), sharp.
        chest = page.get_by_role("button", name=EN.plain("bodymap.region.chest_left"))
        await chest.tap()
        panel = page.locator("#panel")
        await expect(panel.get_by_role("heading")).to_have_text(
            EN.plain("bodymap.region.chest_left")
        )
        slider = page.get_by_label(EN.plain("bodymap.page.intensity"))
        await slider.focus()
        for _ in range(2):
            await page.keyboard.press("ArrowRight")
        await expect(page.locator("#intensity-value")).to_have_text("7")
        await page.get_by_label(EN.plain("bodymap.page.type")).select_option("sharp")
        await page.get_by_role("button", name=EN.plain("bodymap.page.done")).click()
        chest_name = EN.plain("bodymap.region.chest_left")
        marked = EN.plain("bodymap.page.region_marked", region=chest_name, intensity=7)
        await expect(page.get_by_role("button", name=marked)).to_have_attribute(
            "aria-pressed", "true"
        )

        # By keyboard: the back view, Tab to the lower back, Space, 3 of 10, aching.
        back = page.get_by_role("button", name=EN.plain("bodymap.view.back"), exact=True)
        await back.focus()
        await page.keyboard.press("Enter")
        await expect(back).to_have_attribute("aria-pressed", "true")
        for _ in range(40):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.dataset.region") == "lower_back":
                break
        else:
            pytest.fail("Tab never reached the lower back")
        await page.keyboard.press(" ")
        await expect(slider).to_be_focused()
        for _ in range(2):
            await page.keyboard.press("ArrowLeft")
        await page.get_by_label(EN.plain("bodymap.page.type")).select_option("aching")
        items = page.locator("#marks li span")
        await expect(items).to_have_text(
            [
                f"{chest_name} — 7/10, {EN.plain('bodymap.type.sharp')}",
                f"{EN.plain('bodymap.region.lower_back')} — 3/10, "
                f"{EN.plain('bodymap.type.aching')}",
            ]
        )
        await fits_the_width(page)
        await page.screenshot(path=str(screenshot_dir / "bodymap-en-marked.png"), full_page=True)

        since = (await client.messages(uid, BOT))["seq"]
        await page.get_by_role("button", name=EN.plain("bodymap.page.send")).click()
        await expect(page.locator("#status")).to_have_text(EN.plain("bodymap.page.sent"))
        await page.screenshot(path=str(screenshot_dir / "bodymap-en-sent.png"))
        # Chest and back point at two complaints; chest pain decides.
        said = await client.wait_for(
            uid, BOT, lambda m: (m.get("text") or "").startswith("Marked on the body"), since=since
        )
        assert EN.plain("bodymap.region.lower_back") in said["text"]
        await client.wait_for(uid, BOT, has_button(EN.plain("intake.duration.today")))
        assert errors == []

        # The page in Russian and Chinese: named in that language; sending again now is
        # refused (the intake moved on), and the refusal is in that language too.
        for locale in ("ru", "zh_Hans"):
            tr = Translator(locale)
            again = await client.open_web_app(uid, BOT, question["message_id"])
            page, errors = await phone_page(
                browser, again["url"].replace("lang=en", f"lang={locale}")
            )
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                tr.plain("bodymap.page.title")
            )
            await page.get_by_role("button", name=tr.plain("bodymap.region.abdomen_rlq")).tap()
            await page.get_by_label(tr.plain("bodymap.page.type")).select_option("cramping")
            await fits_the_width(page)
            await page.screenshot(
                path=str(screenshot_dir / f"bodymap-{locale}-marked.png"), full_page=True
            )
            await page.get_by_role("button", name=tr.plain("bodymap.page.send")).click()
            await expect(page.locator("#status")).to_have_text(
                tr.plain("bodymap.error.not_in_intake")
            )
            await page.screenshot(path=str(screenshot_dir / f"bodymap-{locale}-refused.png"))
            assert errors == []


async def test_the_sandbox_page_opens_the_mini_app_over_the_chat(
    browser: Browser, sandbox: Sandbox, screenshot_dir: Path
) -> None:
    uid = demo_patient(sandbox)
    async with EmulatorClient(sandbox.url) as client:
        await at_complaint(client, uid)
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(sandbox.url)
        pane = await open_patient(page)
        await pane.get_by_test_id("inline-webapp").last.click()
        overlay = page.get_by_test_id("webapp-overlay")
        await expect(overlay).to_be_visible()
        app = page.frame_locator("[data-testid=webapp-frame]")
        await app.get_by_role("button", name=EN.plain("bodymap.region.head")).click()
        await expect(app.locator("#marks li")).to_have_count(1)
        await page.screenshot(path=str(screenshot_dir / "bodymap-sandbox-overlay.png"))
        await app.get_by_role("button", name=EN.plain("bodymap.page.send")).click()
        await expect(overlay).to_be_hidden()  # the app closed itself (web_app_close)
        bot = pane.get_by_test_id("message-bot")
        await expect(bot.filter(has_text="Marked on the body")).to_have_count(1)
        await expect(bot.last).to_contain_text(EN.plain("intake.ask_onset")[:20])
        await page.screenshot(path=str(screenshot_dir / "bodymap-sandbox-after.png"))
        assert errors == []
