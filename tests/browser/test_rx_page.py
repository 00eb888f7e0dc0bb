"""The prescription check page (``/rx/<code>``, bot/verify_web.py) in Chromium, served by the
real sandbox (`bot.py sandbox`) as a pharmacy would reach it: a pharmacist opens the QR link,
sees the patient and the medicines (a typed code alone shows neither until the year of birth
is given), types the pharmacy's name, gives less of one medicine and
submits; the page says it was dispensed (partly) and kept; opening the link again shows the
dispensed verdict and no form. Screenshots: ``rx_page_valid.png``, ``rx_page_done.png``,
``rx_page_dispensed.png`` and ``rx_page_code_zh.png`` (a typed code, in Chinese) in the
screenshot dir ($CARELINE_SCREENSHOT_DIR)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from bot.sandbox.runner import Sandbox, start_sandbox
from bot.settings import Settings
from flows import prescriptions as rxf
from tests.e2e.test_rx_web import issued_rx

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


async def test_pharmacist_dispenses_part_of_a_prescription(
    browser: Browser, real_sandbox: Sandbox, screenshot_dir: Path
) -> None:
    db = real_sandbox.app.db
    rx = await issued_rx(db, tg=987_600, now=datetime.now(UTC))
    link = rxf.rx_url(real_sandbox.url, rx.code, rx.token) + "&lang=en"
    today = datetime.now(UTC).date().isoformat()

    context = await browser.new_context(viewport={"width": 480, "height": 900}, locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    # A typed code (in Chinese): the verdict, the prescriber and the dates; the year of birth
    # from the patient's ID shows the rest.
    await page.goto(f"{real_sandbox.url.rstrip('/')}/rx/{rx.code}?lang=zh_Hans")
    await expect(page.locator(".banner")).to_contain_text("处方有效：可以发药")
    await expect(page.locator("body")).to_contain_text("Dr Ivo Sample")
    await expect(page.locator("body")).not_to_contain_text("Lin Testpatient")
    await expect(page.locator("body")).not_to_contain_text("Amoxicillin")
    await page.screenshot(path=str(screenshot_dir / "rx_page_code_zh.png"), full_page=True)
    await page.get_by_label("患者出生年份").fill("1961")
    await page.get_by_role("button", name="显示处方").click()
    await expect(page.locator("body")).to_contain_text("Lin Testpatient")
    await expect(page.get_by_role("button", name="记录为已发药")).to_have_count(1)

    await page.goto(link)
    await expect(page.locator(".banner")).to_contain_text("Valid prescription: may be dispensed")
    for shown in ("Lin Testpatient", "1961", "Female", "Acute bacterial sinusitis"):
        await expect(page.locator("body")).to_contain_text(shown)
    items = page.locator("table.items").first
    await expect(items).to_contain_text("Amoxicillin")
    await expect(items).to_contain_text("21 capsules")
    await expect(items).to_contain_text("Ibuprofen")
    amoxicillin = page.get_by_label("Given now: Amoxicillin")
    await expect(amoxicillin).to_have_value("21")
    await expect(page.get_by_label("Given now: Ibuprofen")).to_have_value("20")
    await page.screenshot(path=str(screenshot_dir / "rx_page_valid.png"), full_page=True)

    await page.get_by_label("Pharmacy name").fill("Riverside Pharmacy")
    await amoxicillin.fill("14")
    await page.get_by_role("button", name="Record as dispensed").click()
    banner = page.locator(".banner")
    await expect(banner).to_contain_text("Dispensed (partly) — record kept")
    await expect(page.locator("body")).to_contain_text("Riverside Pharmacy")
    await expect(page.locator("body")).to_contain_text("14")
    await page.screenshot(path=str(screenshot_dir / "rx_page_done.png"), full_page=True)

    await page.goto(link)
    await expect(banner).to_contain_text(
        f"Already dispensed (partly) on {today} at Riverside Pharmacy"
    )
    await expect(page.get_by_role("button", name="Record as dispensed")).to_have_count(0)
    await expect(page.locator("table.items")).to_contain_text("14")
    await page.screenshot(path=str(screenshot_dir / "rx_page_dispensed.png"), full_page=True)
    await context.close()
    assert errors == []

    async with db.uow() as uow:
        row = await uow.prescriptions.get(rx.rx_id)
        assert row is not None and row.status == "dispensed"
        record = await uow.prescriptions.dispensing(row)
    assert record["pharmacy"] == "Riverside Pharmacy" and record["quantities"] == [14, 20]
    assert record["partial"] is True
