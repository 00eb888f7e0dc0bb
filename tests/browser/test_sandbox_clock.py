"""The one clock, seen on the sandbox page (issue 13, item 5): a patient's medicine reminder,
the page's clock moved a day on, and every time the page shows — the reminder's, the
patient's reply's, the snoozed reminder's — is sandbox time, with the sandbox's date on the
day line above it; a snooze is 10 minutes after sandbox now, not after the real clock.

The real sandbox runs in-process (as in test_journey.py); the browser runs in UTC so the
page's times can be compared with the clock's. Screenshots go to $CARELINE_SCREENSHOT_DIR
(or pytest's temp dir).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from bot.sandbox.demo import DEMO_DOCTORS
from bot.sandbox.runner import Sandbox
from tests.browser.test_journey import (
    PATIENT,
    WAIT_MS,
    Chat,
    create_patient,
    intake,
    onboard,
    open_doctor_beside,
    t,
)
from tests.browser.test_real_sandbox import real_sandbox  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

MEDICINE = "Clockamide 5 mg (fictional)"
LONDON = ZoneInfo("Europe/London")  # the patient's zone (onboard() picks London)


async def sandbox_now(page: Page, sandbox: Sandbox) -> datetime:
    """Sandbox now, from the clock API the page uses."""
    answer = await page.request.get(f"{sandbox.url.rstrip('/')}/sandbox/clock")
    return datetime.fromisoformat((await answer.json())["now"])


async def shown_at(message: Locator) -> datetime:
    """The time a message shows (its <time>), checked against what the page prints."""
    time = message.get_by_test_id("message-time")
    stamp = await time.get_attribute("datetime")
    assert stamp, "the message shows no time"
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    await expect(time).to_have_text(f"{at:%I:%M %p}")  # the browser runs in UTC, English
    return at


async def day_line(message: Locator) -> str:
    """The text of the day line above a message."""
    text = await message.evaluate(
        """(el) => {
            let p = el.previousElementSibling;
            while (p && !p.classList.contains("day-divider")) p = p.previousElementSibling;
            return p ? p.textContent : "";
        }"""
    )
    return str(text)


def whole(at: datetime) -> datetime:
    """``at`` to the second (message dates are whole seconds)."""
    return at.replace(microsecond=0)


def day_label(at: datetime) -> str:
    """How the page writes a day in English (Chromium's en long date)."""
    return f"{at:%A}, {at:%B} {at.day}, {at.year}"


async def plan_at(doctor: Chat, number: int, hhmm: str) -> None:
    """/plan N: one medicine every day at ``hhmm`` (the patient's local time), sent."""
    ask = {"number": number, "name": PATIENT[0]}
    await doctor.say(f"/plan {number}")
    await doctor.sees(t("meds.plan.ask_name", **ask))
    await doctor.say(MEDICINE)
    await doctor.sees(t("meds.plan.ask_dose", **ask))
    await doctor.say("1 tablet")
    await doctor.sees(t("meds.plan.ask_times", **ask))
    await doctor.say(hhmm)
    await doctor.step(t("meds.plan.ask_days", **ask), t("meds.days.every"))
    await doctor.step(t("meds.plan.ask_period", **ask), t("meds.period.days", n=30))
    await doctor.step(t("meds.plan.ask_food", **ask), t("meds.food.with"))
    await doctor.step("Medication plan — please check it", t("meds.plan.send"))
    await doctor.sees(t("meds.plan.sent", number=number, name=PATIENT[0], version=1))


async def test_reminder_reply_and_snooze_at_sandbox_time(
    browser: Browser,
    real_sandbox: Sandbox,  # noqa: F811 - the fixture imported above
    screenshot_dir: Path,
) -> None:
    sandbox = real_sandbox
    context = await browser.new_context(
        viewport={"width": 1440, "height": 900}, timezone_id="UTC", locale="en-US"
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(sandbox.url)

    # A patient with a case taken by the demo GP.
    patient = await create_patient(page, *PATIENT)
    gp = next(d for d in DEMO_DOCTORS if d.department == "general")
    doctor = await open_doctor_beside(page, f"{gp.first_name} {gp.last_name}")
    await onboard(patient)
    number = await intake(patient)
    await doctor.sees(f"New case #{number}")
    await doctor.say("/queue")
    await doctor.press(t("consult.doctor.accept"), on=f"#{number} ·")
    await patient.sees(f"#{number} · A doctor has taken your case")

    # The medicine reminder: daily at an hour ago (patient's time), so the next one is due
    # about 23 hours from now — only the sandbox clock can bring it today.
    start = await sandbox_now(page, sandbox)
    local = (start - timedelta(hours=1)).astimezone(LONDON)
    hhmm = f"{local:%H:%M}"
    await plan_at(doctor, number, hhmm)
    await patient.step(MEDICINE, t("meds.card.confirm"))
    await patient.sees(t("meds.confirmed", name=MEDICINE))
    due = datetime.combine(local.date() + timedelta(days=1), local.time(), LONDON).replace(
        second=0, microsecond=0
    )

    # +1 day on the page's clock: the reminder arrives, stamped with sandbox time.
    await page.get_by_test_id("clock-day").click()
    # A day of scheduled work runs first. Wait for the day itself: the shown time also ticks on
    # with the real clock, so "it changed" can pass before the move has landed.
    await page.wait_for_function(
        """(target) => {
            const el = document.querySelector('[data-testid="clock-now"]');
            return el !== null && Date.parse(el.dataset.iso) >= target;
        }""",
        arg=(start + timedelta(days=1)).timestamp() * 1000,
        timeout=WAIT_MS,
    )
    moved = datetime.fromisoformat(
        await page.get_by_test_id("clock-now").get_attribute("data-iso") or ""
    )
    assert moved - start >= timedelta(days=1)
    reminders = patient.bot.filter(has_text=f"Time for your {hhmm} dose")
    await expect(reminders).to_have_count(1, timeout=WAIT_MS)
    reminder = reminders.first
    await expect(reminder).to_contain_text(MEDICINE)
    reminded = await shown_at(reminder)
    real_now = datetime.now(UTC)
    assert due - timedelta(minutes=1) <= reminded <= moved + timedelta(minutes=2)
    assert reminded > real_now + timedelta(hours=20), "the reminder shows the real clock"
    assert await day_line(reminder) == day_label(reminded)

    # The patient's reply: sandbox now, the sandbox's date (a day after the real one).
    await patient.say("Thank you")
    reply = patient.root.get_by_test_id("message-user").filter(has_text="Thank you").last
    replied = await shown_at(reply)
    assert whole(moved) <= replied <= await sandbox_now(page, sandbox)
    assert await day_line(reply) == day_label(replied) != day_label(datetime.now(UTC))
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    await page.screenshot(path=str(screenshot_dir / "clock-reminder-and-reply.png"))

    # Snooze 10 min on the newest reminder, then +10 min on the page's clock: it comes
    # back at sandbox time + 10 min (the real clock would need ten real minutes).
    snooze = t("doses.btn.snooze", minutes=10)
    before_press = await sandbox_now(page, sandbox)
    await patient.press(snooze)
    ack = await patient.sees("OK, I will remind you again in 10 min")
    after_press = await sandbox_now(page, sandbox)
    found = re.search(r"\(at (\d\d:\d\d)\)", await ack.inner_text())
    assert found, await ack.inner_text()
    window = {
        f"{(at + timedelta(minutes=10)).astimezone(LONDON):%H:%M}"
        for at in (before_press, after_press)
    }
    assert found.group(1) in window
    await page.get_by_test_id("clock-minutes").click()
    await expect(reminders).to_have_count(2, timeout=WAIT_MS)
    again = await shown_at(reminders.last)
    assert whole(before_press + timedelta(minutes=10)) <= again
    assert again <= await sandbox_now(page, sandbox)
    assert again > datetime.now(UTC) + timedelta(hours=20)
    await expect(reminders.last.get_by_role("button", name=snooze)).to_be_visible()
    await page.screenshot(path=str(screenshot_dir / "clock-snoozed-reminder.png"))
    assert errors == []
    await context.close()
