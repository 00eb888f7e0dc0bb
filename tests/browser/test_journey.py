"""The whole product in the sandbox, driven by a person in Chromium: the journey a visitor
takes on the page (issue 7's "prove it").

The real sandbox (`bot.py sandbox`: emulator, both Careline bots, the page) runs in-process.
A patient is created on the page, onboards and does an intake by clicking buttons; the
doctor's chat receives the case, the doctor accepts it, they write to each other, the doctor
issues a referral and the patient's chat shows the slip PDF (a protected document: named in
the chat, its file checked through the client API); the doctor prescribes a plan with /plan,
the patient confirms, the page's clock control moves the sandbox a day forward and the dose
reminder appears; at phone width the two chats are tabs. Screenshots of the key screens go
to $CARELINE_SCREENSHOT_DIR (or pytest's temp dir; the path is printed). With
CARELINE_UPDATE_SCREENSHOT=1 the test also writes docs/img/sandbox.png, the README's picture
of the sandbox.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from bot.sandbox.demo import DEMO_DOCTORS
from bot.sandbox.runner import Sandbox
from flows.onboarding import CONSENT_VERSION
from flows.questionnaire import load
from locales import Translator
from tests.browser.test_real_sandbox import real_sandbox  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
README_SHOT = ROOT / "docs" / "img" / "sandbox.png"
PATIENT_BOT = "careline_patient_bot"
DOCTOR_BOT = "careline_doctor_bot"
PATIENT = ("Alice", "Testpatient")
WAIT_MS = 20_000  # one bot answer; the whole journey stays well under 3 minutes
MEDICINE = "Examplomycin 250 mg"
tr = Translator("en")


def t(msgid: str, **params: Any) -> str:
    """The English catalog text, as the page shows it (no markup)."""
    return tr.plain(msgid, **params)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip()


def key_line(text: str) -> str:
    """The telling line of a bot text: the longer of its first two lines (wizard questions
    start with the same "#N · name" line)."""
    lines = [line.strip() for line in text.strip().splitlines()[:2]]
    return max(lines, key=len)


class Chat:
    """One person's chat with one bot on the page: type, press buttons, wait for texts."""

    def __init__(self, page: Page, root: Locator | None = None) -> None:
        self.page = page
        self.root = root if root is not None else page.locator("body")

    @property
    def bot(self) -> Locator:
        return self.root.get_by_test_id("message-bot")

    async def say(self, text: str) -> None:
        box = self.root.get_by_test_id("composer-input")
        await box.fill(text)
        await box.press("Enter")
        await expect(self.root.get_by_test_id("message-user").last).to_contain_text(
            first_line(text), timeout=WAIT_MS
        )

    async def sees(self, text: str) -> Locator:
        """Wait for a bot message containing ``text`` (its first line); returns it."""
        message = self.bot.filter(has_text=key_line(text)).last
        await expect(message).to_be_visible(timeout=WAIT_MS)
        return message

    async def press(self, label: str, on: str | None = None) -> None:
        """Press the button ``label`` on the newest bot message that has it (and ``on``)."""
        button = self.page.get_by_role("button", name=label, exact=True)
        messages = self.bot.filter(has=button)
        if on is not None:
            messages = messages.filter(has_text=key_line(on))
        target = messages.last.get_by_role("button", name=label, exact=True)
        await expect(target).to_be_enabled(timeout=WAIT_MS)
        await target.click()

    async def step(self, question: str, label: str) -> None:
        """Wait for ``question``, then press ``label`` on it."""
        await self.sees(question)
        await self.press(label, on=question)


async def create_patient(page: Page, first: str, last: str) -> Chat:
    """The page's new-person form; the person opens in the first pane with the patient bot."""
    await page.get_by_test_id("new-person-first-name").fill(first)
    await page.get_by_test_id("new-person-last-name").fill(last)
    await page.get_by_test_id("new-person-language").select_option("en")
    await page.get_by_test_id("new-person-submit").click()
    pane = page.get_by_test_id("pane").filter(
        has=page.get_by_test_id("chat-title").filter(has_text=f"{first} {last}")
    )
    await expect(pane.get_by_test_id("chat-title")).to_contain_text(f"@{PATIENT_BOT}")
    await expect(pane.get_by_test_id("connection-status")).to_have_text("live")
    return Chat(page, pane)


async def open_doctor_beside(page: Page, name: str) -> Chat:
    """The demo doctor (role badge "doctor"), opened in a pane beside: the doctor bot."""
    row = page.locator("li.person-row").filter(has_text=name)
    await expect(row.get_by_test_id("role-badge")).to_have_attribute("data-role", "doctor")
    await row.get_by_test_id("open-beside").click()
    pane = page.get_by_test_id("pane").filter(
        has=page.get_by_test_id("chat-title").filter(has_text=name)
    )
    await expect(pane.get_by_test_id("chat-title")).to_contain_text(f"@{DOCTOR_BOT}")
    await expect(pane.get_by_test_id("connection-status")).to_have_text("live")
    return Chat(page, pane)


async def onboard(chat: Chat) -> None:
    await chat.say("/start")
    await chat.step(t("onboarding.choose_language"), "English")
    await chat.step(t("onboarding.intro", emergency_number="112"), t("onboarding.intro.continue"))
    await chat.step(
        t("onboarding.consent", version=CONSENT_VERSION), t("onboarding.consent.accept")
    )
    await chat.sees(t("onboarding.ask_name"))
    await chat.say(" ".join(PATIENT))
    await chat.sees(t("onboarding.ask_birth_year"))
    await chat.say("1968")
    await chat.step(t("onboarding.ask_sex"), t("sex.female"))
    await chat.sees(t("onboarding.ask_phone"))
    await chat.root.get_by_test_id("reply-button-contact").click()
    await chat.root.get_by_test_id("contact-phone").fill("+15550100555")
    await chat.root.get_by_test_id("contact-submit").click()
    await chat.step(t("onboarding.ask_timezone"), "London")  # the button names the city
    await chat.sees(t("onboarding.done", name=" ".join(PATIENT)))


async def intake(chat: Chat) -> int:
    """/intake for a cough, buttons only, to the queue; returns the case number."""
    category = "cough_cold"
    await chat.say("/intake")
    await chat.step(t("intake.ask_subject"), t("intake.subject.self"))
    await chat.step(t("intake.ask_complaint"), t(f"intake.category.{category}"))
    await chat.step(t("intake.ask_onset"), t("intake.duration.days_1_3"))
    await chat.step(t("intake.ask_severity"), "5")
    await chat.step(t("intake.ask_red_flags"), t("intake.red_flags.none"))
    for question in load().category(category).questions:
        label = t(f"intake.q.{question.id}.{question.options[-1]}")
        await chat.step(t(f"intake.q.{question.id}"), label)
    await chat.step(t("intake.ask_associated"), t("intake.associated.none"))
    for ask in ("intake.ask_conditions", "intake.ask_medicines", "intake.ask_allergies"):
        await chat.step(t(ask), t("intake.history.none"))
    await chat.step(t("intake.ask_attachments"), t("intake.attachments.skip"))
    await chat.step(t("intake.summary.ask"), t("intake.summary.confirm"))
    opened = await chat.sees("Your request is case")
    found = re.search(r"#(\d+)", await opened.inner_text())
    assert found, await opened.inner_text()
    return int(found.group(1))


async def plan(doctor: Chat, number: int) -> None:
    """/plan N through the wizard: one medicine twice a day, sent to the patient."""
    ask = {"number": number, "name": PATIENT[0]}
    await doctor.say(f"/plan {number}")
    await doctor.sees(t("meds.plan.ask_name", **ask))
    await doctor.say(MEDICINE)
    await doctor.sees(t("meds.plan.ask_dose", **ask))
    await doctor.say("1 tablet")
    await doctor.sees(t("meds.plan.ask_times", **ask))
    await doctor.say("08:00, 20:00")
    await doctor.step(t("meds.plan.ask_days", **ask), t("meds.days.every"))
    await doctor.step(t("meds.plan.ask_period", **ask), t("meds.period.days", n=30))
    await doctor.step(t("meds.plan.ask_food", **ask), t("meds.food.with"))
    await doctor.step("Medication plan — please check it", t("meds.plan.send"))
    await doctor.sees(t("meds.plan.sent", number=number, name=PATIENT[0], version=1))


async def referral(doctor: Chat, number: int) -> str:
    """/referral N with a typed hospital; returns the slip's code from "issued"."""
    ask = {"number": number, "name": PATIENT[0]}
    await doctor.say(f"/referral {number}")
    await doctor.sees(t("ref.wiz.ask_target", **ask))
    await doctor.say("Harbour Hospital")
    await doctor.sees(t("ref.wiz.ask_department", hospital="Harbour Hospital", **ask))
    await doctor.say("Pulmonology")
    await doctor.sees(t("ref.wiz.ask_reason", **ask))
    await doctor.say("Persistent cough: chest X-ray")
    await doctor.step(t("ref.wiz.ask_urgency", **ask), t("ref.urgency.within_2w"))
    await doctor.step(t("ref.wiz.ask_findings", **ask, findings="-"), t("ref.wiz.keep_findings"))
    await doctor.step(t("ref.wiz.ask_valid", **ask, max=90), t("ref.wiz.days", n=30))
    await doctor.step("please check the referral", t("ref.wiz.issue"))
    issued = await doctor.sees("✅ Referral")
    found = re.search(r"Referral (\S+) issued", await issued.inner_text())
    assert found, await issued.inner_text()
    return found.group(1)


async def test_patient_and_doctor_journey(
    browser: Browser,
    real_sandbox: Sandbox,  # noqa: F811 - the fixture imported above
    screenshot_dir: Path,
) -> None:
    sandbox = real_sandbox
    print(f"\njourney screenshots: {screenshot_dir}")  # noqa: T201 - where to look
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(sandbox.url)

    async def shot(name: str) -> None:
        await page.screenshot(path=str(screenshot_dir / f"{name}.png"))

    # A new patient in the first pane, the demo general practitioner beside.
    patient = await create_patient(page, *PATIENT)
    gp = next(d for d in DEMO_DOCTORS if d.department == "general")
    doctor = await open_doctor_beside(page, f"{gp.first_name} {gp.last_name}")
    await onboard(patient)
    await shot("01-onboarded")
    number = await intake(patient)
    await shot("02-intake-sent")

    # The doctor's pane receives the case; /queue, Accept.
    await doctor.sees(f"New case #{number}")
    await doctor.say("/queue")
    await doctor.press(t("consult.doctor.accept"), on=f"#{number} ·")
    await doctor.sees(f"#{number} · {PATIENT[0]} is yours")
    await patient.sees(f"#{number} · A doctor has taken your case")
    await expect(patient.bot.last).to_contain_text(f"{gp.first_name} {gp.last_name}")
    await shot("03-accepted")

    # Messages both ways.
    await patient.say("The cough is worse at night")
    await doctor.sees(f"#{number} · {PATIENT[0]}\nThe cough is worse at night")
    await doctor.say("Drink warm fluids and rest; I am sending you for an X-ray")
    await patient.sees("Drink warm fluids and rest")
    await shot("04-conversation")
    if os.environ.get("CARELINE_UPDATE_SCREENSHOT") == "1":
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.evaluate("document.activeElement && document.activeElement.blur()")
        await page.screenshot(path=str(README_SHOT))
        print(f"README screenshot: {README_SHOT}")  # noqa: T201

    # A referral: the patient's pane shows the slip PDF.
    code = await referral(doctor, number)
    slip = patient.bot.filter(has=page.get_by_test_id("message-document")).last
    await expect(slip).to_contain_text(f"referral-{code}.pdf", timeout=WAIT_MS)
    await expect(slip).to_contain_text(f"Referral slip {code} to Harbour Hospital")
    await shot("05-referral")
    # The file behind it is the real slip (the page marks it protected: shown, not saved).
    row = page.get_by_test_id("person").filter(has_text=" ".join(PATIENT))
    uid = await row.get_attribute("data-user-id")
    history = await page.request.get(
        f"{sandbox.url.rstrip('/')}/client/messages?user_id={uid}&bot={PATIENT_BOT}"
    )
    [doc] = [m for m in (await history.json())["messages"] if "document" in m]
    assert doc["document"]["file_name"] == f"referral-{code}.pdf" and doc["protect_content"]
    pdf = await page.request.get(
        f"{sandbox.url.rstrip('/')}/client/files/{doc['document']['file_id']}"
    )
    assert pdf.ok and (await pdf.body()).startswith(b"%PDF")
    # ... and the page offers to open it (not to save it: no download attribute).
    view = slip.get_by_test_id("document-view")
    href = await view.get_attribute("href")
    assert href and await view.get_attribute("download") is None
    opened = await page.request.get(urljoin(sandbox.url, href))
    assert opened.ok and (await opened.body()).startswith(b"%PDF")

    # A medication plan: /plan, the patient confirms it.
    await plan(doctor, number)
    await patient.step(MEDICINE, t("meds.card.confirm"))
    await patient.sees(t("meds.confirmed", name=MEDICINE))

    # The sandbox clock (the page's control): a day later the dose reminder is there.
    before = await page.get_by_test_id("clock-now").get_attribute("data-iso") or ""
    await page.get_by_test_id("clock-day").click()
    await expect(page.get_by_test_id("clock-now")).not_to_have_attribute(
        "data-iso", before, timeout=WAIT_MS
    )  # a day of scheduled work runs first
    reminder = await patient.sees("💊")
    await expect(reminder).to_contain_text(MEDICINE)
    await expect(reminder.get_by_role("button", name=t("doses.btn.taken"))).to_be_visible()
    await shot("06-reminder")

    # At phone width the two chats are tabs: the doctor's pane is one tap away.
    await page.set_viewport_size({"width": 390, "height": 844})
    tabs = page.get_by_test_id("pane-tab")
    await expect(tabs).to_have_count(2)
    await tabs.filter(has_text=f"{gp.first_name} {gp.last_name}").click()
    await expect(doctor.root.get_by_test_id("composer-input")).to_be_visible()
    await expect(patient.root.get_by_test_id("composer-input")).to_be_hidden()
    await shot("07-phone-doctor")
    assert errors == []
    await context.close()
