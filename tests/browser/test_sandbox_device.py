"""The simulated device on the sandbox page (issue 18): in the demo patient's chat, "+" →
"Device reading" opens a small form (kind and value); Send posts the reading through the real
device API, the form closes and the bot's reaction arrives in the chat; a value the API
refuses shows its reason in the error banner; the doctor bot's chat has no such button. At
desktop and phone width, by mouse and by keyboard. Screenshots go to $CARELINE_SCREENSHOT_DIR
(or pytest's temp dir).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from bot.sandbox.client import EmulatorClient
from bot.sandbox.demo import DEMO_PATIENT
from bot.sandbox.runner import Sandbox
from locales import Translator
from tests.browser.test_real_sandbox import real_sandbox  # noqa: F401 - the fixture
from tests.e2e.test_sandbox_device import demo_patient, onboard

pytestmark = pytest.mark.browser

WAIT_MS = 10_000
NAME = " ".join(DEMO_PATIENT)


async def open_patient(page: Page) -> Locator:
    """The demo patient's chat with the patient bot, in the active pane."""
    person = page.get_by_test_id("person").filter(has_text=NAME)
    # The list is drawn in the same step that opens the people panel on a phone (an empty
    # pane): only then is the toggle's state settled.
    await person.wait_for(state="attached")
    toggle = page.get_by_test_id("people-toggle")
    if await toggle.is_visible() and await toggle.get_attribute("aria-expanded") == "false":
        await toggle.click()
    await person.click()
    pane = page.locator(".pane.pane-active")
    await expect(pane.get_by_test_id("chat-title")).to_contain_text("@careline_patient_bot")
    await expect(pane.get_by_test_id("connection-status")).to_have_text("live")
    return pane


async def test_device_reading_from_the_page(
    browser: Browser,
    real_sandbox: Sandbox,  # noqa: F811 - the fixture imported above
    screenshot_dir: Path,
) -> None:
    sandbox = real_sandbox
    tr = Translator("en")
    uid = demo_patient(sandbox)
    async with EmulatorClient(sandbox.url) as client:
        await onboard(client, uid, NAME)

    # Desktop, by mouse: blood pressure 150/95 is sent; the form closes, no error.
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(sandbox.url)
    pane = await open_patient(page)
    form = pane.get_by_test_id("device-form")
    value = pane.get_by_test_id("device-value")
    await pane.get_by_test_id("attach-button").click()
    await pane.get_by_test_id("attach-device").click()
    await expect(form).to_be_visible()
    await expect(pane.get_by_label("Reading")).to_be_focused()  # the kind, by its label
    await pane.get_by_label("Reading").select_option("pulse")
    await expect(value).to_have_attribute("placeholder", "72")
    await pane.get_by_label("Reading").select_option("bp")
    await expect(value).to_have_attribute("placeholder", "150/95")
    await pane.get_by_label("Value").fill("150/95")
    await page.screenshot(path=str(screenshot_dir / "device-form-desktop.png"))
    await pane.get_by_test_id("device-submit").click()
    await expect(form).to_be_hidden()
    await expect(page.get_by_test_id("toast")).to_contain_text("sent the reading")
    await expect(page.get_by_test_id("error-banner")).to_be_hidden()

    # A pulse the device API refuses: its reason in the banner, the form stays for a fix.
    await pane.get_by_test_id("attach-button").click()
    await pane.get_by_test_id("attach-device").click()
    await pane.get_by_label("Reading").select_option("pulse")
    await value.fill("900")
    await value.press("Enter")
    banner = page.get_by_test_id("error-banner")
    await expect(banner).to_be_visible()
    await expect(page.get_by_test_id("error-text")).to_contain_text(
        "The device reading was not accepted"
    )
    await expect(page.get_by_test_id("error-text")).to_contain_text("range")
    await expect(form).to_be_visible()
    await expect(value).to_be_focused()
    await page.screenshot(path=str(screenshot_dir / "device-refused-desktop.png"))
    await value.press("Escape")  # closes the form, back to the "+" that opened it
    await expect(form).to_be_hidden()
    await expect(pane.get_by_test_id("attach-button")).to_be_focused()

    # The doctor bot's chat offers no device reading.
    await pane.get_by_test_id("bot-button").filter(has_text="Careline for doctors").click()
    await expect(pane.get_by_test_id("chat-title")).to_contain_text("@careline_doctor_bot")
    await pane.get_by_test_id("attach-button").click()
    await expect(pane.get_by_test_id("attach-photo")).to_be_visible()
    await expect(pane.get_by_test_id("attach-device")).to_be_hidden()
    await context.close()

    # Phone width, by keyboard: a high blood pressure; the bot tells the patient in the chat.
    context = await browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(sandbox.url)
    pane = await open_patient(page)
    await pane.get_by_test_id("attach-button").focus()
    await page.keyboard.press("Enter")
    await expect(pane.get_by_test_id("attach-photo")).to_be_focused()
    for _ in range(3):  # Photo, Document, Voice, Device reading
        await page.keyboard.press("Tab")
    await expect(pane.get_by_test_id("attach-device")).to_be_focused()
    await page.screenshot(path=str(screenshot_dir / "device-menu-phone.png"))
    await page.keyboard.press("Enter")
    form = pane.get_by_test_id("device-form")
    await expect(form).to_be_visible()
    await expect(pane.get_by_test_id("device-kind")).to_be_focused()
    await page.keyboard.press("Tab")
    await page.keyboard.type("185/112")
    await page.screenshot(path=str(screenshot_dir / "device-form-phone.png"))
    box = await form.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    await page.keyboard.press("Enter")
    await expect(form).to_be_hidden()
    await expect(page.get_by_test_id("error-banner")).to_be_hidden()
    shown = {"what": tr.plain("device.kind.bp"), "value": "185/112 mmHg",
             "flag": tr.plain("followup.flag.high")}  # fmt: skip
    told = pane.get_by_test_id("message-bot").filter(has_text="185/112")
    await expect(told).to_contain_text(
        tr.plain("device.alert.no_doctor", **shown).splitlines()[0], timeout=WAIT_MS
    )
    await page.screenshot(path=str(screenshot_dir / "device-told-phone.png"))
    await context.close()
    assert errors == []
