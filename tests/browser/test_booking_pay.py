"""A patient books and pays a consultation in the sandbox page, as a person would.

The real sandbox (`bot.py sandbox`: emulator, both Careline bots, the page) runs in-process,
seeded with the demo clinic's services (Telegram Stars) and the demo doctors' bookable hours.
A new patient is created on the page and onboards; /book, a call mode ("Phone call", or
"Video call" when no phone time is free), "First available doctor", the first offered time;
the page shows the invoice card (title, time, amount in Stars) and its Pay button; Pay
(Stars are paid at once); the patient's chat shows "Booked: ..." and the booked doctor's chat
"New booking ...". The emulator's client API holds exactly one charge, paid. Screenshots of
the invoice and of the paid booking go to $CARELINE_SCREENSHOT_DIR (or pytest's temp dir).
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from bot.sandbox.demo import DEMO_DOCTORS, DEMO_SERVICES
from bot.sandbox.runner import Sandbox
from flows import booking as booking_flow
from flows.domain import now
from handlers.common.bookings import when, zone_label
from locales import Translator
from tests.browser.test_journey import (
    PATIENT,
    PATIENT_BOT,
    WAIT_MS,
    create_patient,
    key_line,
    onboard,
    open_doctor_beside,
    t,
)
from tests.browser.test_real_sandbox import real_sandbox  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

PATIENT_ZONE = "Europe/London"  # the city onboard() presses
MODES = ("phone", "video")  # the paid call modes, in the order a patient tries them


def stars(mode: str) -> int:
    """The demo price of a call mode, in whole Stars ("150 XTR" -> 150)."""
    [price] = [p for m, _, _, p in DEMO_SERVICES if m == mode]
    amount, currency = price.split()
    assert currency == "XTR", price
    return int(amount)


def pattern(msgid: str, **params: str | None) -> re.Pattern[str]:
    """The catalog text as a regex: given params literally, ``None`` ones as groups (plain
    groups, in the text's order: Playwright runs the regex in the page's JavaScript)."""
    marks = {k: (v if v is not None else f"\x00{k}\x00") for k, v in params.items()}
    text = re.escape(t(msgid, **marks))
    for name, value in params.items():
        if value is None:
            text = text.replace(re.escape(f"\x00{name}\x00"), "(.+?)", 1)
    return re.compile(text)


def slot_start(label: str, zone: zoneinfo.ZoneInfo) -> datetime:
    """The moment a slot button ("Tue 08.12 10:00", in ``zone``) names: slots are offered
    for the next two weeks, so the day and month fix the date."""
    found = re.search(r"(\d{2})\.(\d{2}) (\d{2}):(\d{2})$", label)
    assert found, label
    day, month, hour, minute = (int(g) for g in found.groups())
    today = now().astimezone(zone).date()
    for offset in range(-1, 16):
        d = today + timedelta(days=offset)
        if (d.day, d.month) == (day, month):
            return datetime(d.year, d.month, d.day, hour, minute, tzinfo=zone)
    raise AssertionError(f"{label!r} is not within the next two weeks of {today}")


async def test_patient_books_and_pays_a_call(
    browser: Browser,
    real_sandbox: Sandbox,  # noqa: F811 - the fixture imported above
    screenshot_dir: Path,
) -> None:
    sandbox = real_sandbox
    base = sandbox.url.rstrip("/")
    print(f"\nbooking screenshots: {screenshot_dir}")  # noqa: T201 - where to look
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(sandbox.url)

    async def shot(name: str) -> None:
        await page.evaluate("document.activeElement && document.activeElement.blur()")
        await page.screenshot(path=str(screenshot_dir / f"{name}.png"))

    patient = await create_patient(page, *PATIENT)
    await onboard(patient)

    # /book: the modes on offer; a phone call, or a video call when no phone time is free.
    await patient.say("/book")
    offer = await patient.sees(t("book.ask_mode"))
    await expect(offer.get_by_test_id("inline-button").first).to_be_visible()
    offered = [b.strip() for b in await offer.get_by_test_id("inline-button").all_inner_texts()]
    mode = next((m for m in MODES if t(f"svc.mode.{m}") in offered), None)
    assert mode is not None, f"no call mode on offer: {offered}"
    mode_name = t(f"svc.mode.{mode}")
    await patient.press(mode_name, on=t("book.ask_mode"))

    # The doctors of that mode: "First available doctor" on top.
    await patient.step(t("book.ask_doctor", mode=mode_name), t("book.first_available"))

    # The free times, in the patient's zone: the first one.
    zone = zoneinfo.ZoneInfo(PATIENT_ZONE)
    ask_slot = t("book.ask_slot", zone=zone_label(zone))
    times = (await patient.sees(ask_slot)).get_by_test_id("inline-button")
    await expect(times.first).to_be_enabled(timeout=WAIT_MS)
    label = (await times.first.inner_text()).strip()
    await times.first.click()
    await patient.sees(t("book.held", when=label, minutes=booking_flow.HOLD_MINUTES))

    # The invoice card: what is paid for, when, how much; a Pay button with the amount.
    amount = f"⭐ {stars(mode)}"
    card = patient.root.get_by_test_id("message-invoice").last
    await expect(card).to_be_visible(timeout=WAIT_MS)
    title = t("book.invoice_title", mode=mode_name)[:32]
    description = t("book.invoice_description", when=label, zone=zone_label(zone), hours=24)[:255]
    await expect(card.locator(".invoice-title")).to_have_text(title)
    await expect(card.locator(".invoice-desc")).to_have_text(description)
    await expect(card.get_by_test_id("invoice-amount")).to_have_text(amount)
    pay = card.get_by_test_id("invoice-pay")
    await expect(pay).to_be_enabled()
    await expect(pay).to_contain_text(amount)
    await expect(card.get_by_test_id("invoice-card-form")).to_have_count(0)  # Stars: no card
    await expect(card).to_be_in_viewport()
    await shot("booking-01-invoice")

    # Pay: the card turns paid, the chat shows the payment and the booking.
    await pay.click()
    await expect(card.get_by_test_id("invoice-status")).to_have_attribute(
        "data-status", "paid", timeout=WAIT_MS
    )
    await expect(card.get_by_test_id("invoice-pay")).to_have_count(0)
    paid_toast = page.get_by_test_id("toast").filter(has_text=amount)
    await expect(paid_toast).to_be_visible()  # "Paid ⭐ 150", gone after a few seconds
    receipt = patient.root.get_by_test_id("message-payment").last
    await expect(receipt).to_contain_text(amount, timeout=WAIT_MS)
    confirmed = pattern(
        "book.confirmed", mode=mode_name, when=label, zone=zone_label(zone), doctor=None
    )
    booked = patient.bot.filter(has_text=confirmed).last
    await expect(booked).to_be_visible(timeout=WAIT_MS)
    found = confirmed.search(await booked.inner_text())
    assert found, await booked.inner_text()
    doctor_name = found.group(1)
    demo_names = {f"{d.first_name} {d.last_name}" for d in DEMO_DOCTORS}
    assert doctor_name in demo_names, doctor_name
    if mode == "video":  # only the demo GP takes video calls
        gp = next(d for d in DEMO_DOCTORS if d.department == "general")
        assert doctor_name == f"{gp.first_name} {gp.last_name}"

    # Exactly one charge, paid, for this invoice (the emulator's client API).
    row = page.get_by_test_id("person").filter(has_text=" ".join(PATIENT))
    uid = await row.get_attribute("data-user-id")
    response = await page.request.get(f"{base}/client/payments?bot={PATIENT_BOT}&user_id={uid}")
    assert response.ok, await response.text()
    charges: list[dict[str, Any]] = (await response.json())["payments"]
    assert len(charges) == 1, charges
    [charge] = charges
    assert charge["status"] == "paid", charge
    assert (charge["currency"], charge["total_amount"]) == ("XTR", stars(mode)), charge
    assert charge["bot"] == PATIENT_BOT and str(charge["user_id"]) == uid, charge
    booking_id = booking_flow.booking_id_of(charge["invoice_payload"])
    assert booking_id, charge

    # The booked doctor's chat (opened beside) has the notice, the time in the clinic's zone.
    doctor = await open_doctor_beside(page, doctor_name)
    clinic = zoneinfo.ZoneInfo(sandbox.app.settings.timezone)
    notice = t(
        "book.doctor_notice",
        ref=booking_id[:8],
        mode=mode_name,
        when=when(Translator("en"), slot_start(label, zone), clinic),
        zone=zone_label(clinic),
    )
    await doctor.sees(notice)
    await expect(doctor.bot.filter(has_text=key_line(notice))).to_have_count(1)
    # The patient's pane got narrower: scroll to the confirmation as a person would.
    await booked.scroll_into_view_if_needed()
    await expect(booked).to_be_in_viewport(ratio=1)
    await expect(paid_toast).to_have_count(0, timeout=WAIT_MS)  # nothing over the chats
    await shot("booking-02-paid")
    assert errors == []
    await context.close()
