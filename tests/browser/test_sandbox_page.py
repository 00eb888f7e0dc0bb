"""The sandbox chat page in a real browser, against the real emulator and a real aiogram bot.

A tiny bot runs in-process, polling the emulator like a production bot polls
Telegram. The browser creates a person, talks to the bot, presses its buttons,
shares a contact and checks that markup sent by users or bots stays text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiohttp import web
from playwright.async_api import Browser, Locator, Page, Route, expect

from bot.sandbox.emulator import BotApiEmulator, RateLimits
from bot.sandbox.web import add_web_routes

pytestmark = pytest.mark.browser

BOT_TOKEN = "123456789:SANDBOXtestTOKENabcdefghijklmnopqrstu"
BOT_USERNAME = "careline_test_bot"
BOT_NAME = "Test Bot"
XSS_TEXT = '<img src=x onerror="window.__xss=true"><script>window.__xss=true</script>'
HTML_REPLY_TRIGGER = "show html"


def tiny_png(width: int = 24, height: int = 16) -> bytes:
    """A valid RGB PNG of a flat teal colour, for the upload."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x20\x90\x90" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


DOCTOR_TOKEN = "987654321:SANDBOXdoctorTOKENabcdefghijklmnopqr"
DOCTOR_USERNAME = "careline_test_doctor_bot"
DOCTOR_BOT_NAME = "Doctor Bot"
INVITE_PAYLOAD = "cg_TestInvite42"
SCRIPT_TEXT = "<script>window.__xss=true</script> and <b>not bold</b>"


@dataclass
class Relay:
    """What the two test bots share: each other and who the patient and the doctor are."""

    patient_bot: Bot | None = None
    doctor_bot: Bot | None = None
    patient_id: int | None = None
    doctor_id: int | None = None


def clinic_router(relay: Relay) -> Router:
    """Patient-bot handlers for the multi-pane tests: deep links, files, a relay to the
    doctor."""
    router = Router()

    @router.message(CommandStart(deep_link=True))
    async def deep_start(message: Message, command: CommandObject) -> None:
        await message.answer(f"Invitation accepted: {command.args}")

    @router.message(F.text == "invite")
    async def invite(message: Message) -> None:
        await message.answer(
            "Forward this link to your caregiver: "
            f"https://t.me/{BOT_USERNAME}?start={INVITE_PAYLOAD}"
        )

    @router.message(F.text == "files")
    async def files(message: Message) -> None:
        await message.answer_photo(BufferedInputFile(tiny_png(), "chart.png"), caption="Chart")
        await message.answer_document(
            BufferedInputFile(b"%PDF-1.4\n%%EOF\n", "referral-slip.pdf"), caption="Your slip"
        )
        await message.answer_document(
            BufferedInputFile(b'{"resourceType": "Bundle"}', "record.json"), caption="Record"
        )

    @router.message(F.text == "script")
    async def script(message: Message) -> None:
        await message.answer(SCRIPT_TEXT)  # no parse_mode: all of it is text

    @router.message(F.text.startswith("relay: "))
    async def to_doctor(message: Message) -> None:
        assert message.text is not None and message.from_user is not None
        relay.patient_id = message.from_user.id
        if relay.doctor_bot is None or relay.doctor_id is None:
            await message.answer("No doctor yet")
            return
        await relay.doctor_bot.send_message(
            relay.doctor_id, f"From patient: {message.text.removeprefix('relay: ')}"
        )
        await message.answer("Sent to your doctor")

    return router


def doctor_router(relay: Relay) -> Router:
    """The doctor bot: /start registers the doctor; 'reply: ...' goes to the patient."""
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        assert message.from_user is not None
        relay.doctor_id = message.from_user.id
        await message.answer("Doctor bot ready")

    @router.message(F.text.startswith("reply: "))
    async def to_patient(message: Message) -> None:
        assert message.text is not None
        if relay.patient_bot is None or relay.patient_id is None:
            await message.answer("No patient yet")
            return
        await relay.patient_bot.send_message(
            relay.patient_id, f"Doctor says: {message.text.removeprefix('reply: ')}"
        )
        await message.answer("Sent to the patient")

    return router


def make_router(relay: Relay | None = None) -> Router:
    """The test bot: /start with both keyboard kinds, a callback, contact, HTML and echo;
    with ``relay``, also deep links, files and a relay to the doctor bot."""
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer(
            "Welcome, <b>friend</b>!",
            parse_mode="HTML",
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="Tap me", callback_data="tap")]]
            ),
        )
        await message.answer(
            "Please share your phone number.",
            reply_markup=ReplyKeyboardMarkup(
                keyboard=[[KeyboardButton(text="Share my phone", request_contact=True)]],
                resize_keyboard=True,
                one_time_keyboard=True,
            ),
        )

    @router.message(Command("help"))
    async def help_command(message: Message) -> None:
        await message.answer("Here is some help")

    @router.callback_query(F.data == "tap")
    async def tap(callback: CallbackQuery) -> None:
        await callback.answer("Tapped!")
        if isinstance(callback.message, Message):
            await callback.message.edit_text("The button was tapped")

    @router.message(F.contact)
    async def contact(message: Message) -> None:
        assert message.contact is not None
        await message.answer(
            f"Thanks, got {message.contact.phone_number}", reply_markup=ReplyKeyboardRemove()
        )

    @router.message(F.photo)
    async def photo(message: Message) -> None:
        await message.answer(f"Got your photo: {message.caption or 'no caption'}")

    @router.message(F.text == "vanish")
    async def vanish(message: Message) -> None:
        sent = await message.answer("This will vanish")
        await asyncio.sleep(0.6)
        await sent.delete()

    @router.message(F.text == HTML_REPLY_TRIGGER)
    async def html_reply(message: Message) -> None:
        await message.reply(
            "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b> stays <i>text</i>", parse_mode="HTML"
        )

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"You said: {message.text}")  # no parse_mode: literal text

    if relay is None:
        return router
    outer = Router()  # the clinic's handlers first, the plain test bot after them
    outer.include_router(clinic_router(relay))
    outer.include_router(router)
    return outer


@dataclass
class Sandbox:
    """A running emulator with the page mounted and the test bot polling it."""

    url: str
    emulator: BotApiEmulator


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """Start the emulator + page on a random port and run the test bot against it."""
    # Flood limits are the emulator's own business; here they would only add flakiness.
    emulator = BotApiEmulator(limits=RateLimits(enabled=False), seed=1)
    emulator.register_bot(BOT_TOKEN, username=BOT_USERNAME, first_name=BOT_NAME)
    add_web_routes(emulator.app, title="Careline sandbox (test)")
    url = await emulator.start("127.0.0.1", 0)

    session = AiohttpSession(api=TelegramAPIServer.from_base(url))
    bot = Bot(BOT_TOKEN, session=session)
    await bot.set_my_commands([BotCommand(command="help", description="What I can do")])
    await bot.set_my_commands(
        [BotCommand(command="help", description="Что я умею")], language_code="ru"
    )
    dispatcher = Dispatcher()
    dispatcher.include_router(make_router())
    polling = asyncio.create_task(
        dispatcher.start_polling(bot, polling_timeout=1, handle_signals=False)
    )
    try:
        yield Sandbox(url=url, emulator=emulator)
    finally:
        with contextlib.suppress(RuntimeError):
            await dispatcher.stop_polling()
        try:
            await asyncio.wait_for(polling, timeout=5)
        except TimeoutError:
            polling.cancel()
        await bot.session.close()
        await emulator.stop()


async def create_person(page: Page, first: str, last: str, language: str = "en") -> None:
    """Fill the new-person form and wait until that person's chat is open."""
    await page.get_by_test_id("new-person-first-name").fill(first)
    await page.get_by_test_id("new-person-last-name").fill(last)
    await page.get_by_test_id("new-person-language").select_option(language)
    await page.get_by_test_id("new-person-submit").click()
    await expect(page.get_by_test_id("chat-title")).to_contain_text(f"{first} {last}")
    await expect(page.get_by_test_id("connection-status")).to_have_text("live")


async def send(page: Page, text: str) -> None:
    """Type into the message box and press Enter."""
    box = page.get_by_test_id("composer-input")
    await box.fill(text)
    await box.press("Enter")


async def test_chat_with_a_bot(browser: Browser, sandbox: Sandbox, screenshot_dir: Path) -> None:
    """Person, /start, inline button, contact, echo, escaping, error banner, screenshots."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(sandbox.url)
    await expect(page).to_have_title("Careline sandbox (test)")
    await expect(page.get_by_test_id("bot-button")).to_have_text(BOT_NAME)

    await create_person(page, "Alice", "Testpatient")
    await expect(page.get_by_test_id("person")).to_contain_text("Alice Testpatient")

    # /start: a formatted greeting with an inline button, then a contact keyboard.
    await send(page, "/start")
    bot_messages = page.get_by_test_id("message-bot")
    greeting = bot_messages.filter(has_text="Welcome, friend!")
    await expect(greeting).to_have_count(1)
    await expect(greeting.locator("b")).to_have_text("friend")
    await expect(page.get_by_test_id("message-user").first).to_contain_text("/start")
    keyboard = page.get_by_test_id("reply-keyboard")
    await expect(keyboard).to_be_visible()
    await expect(page.get_by_test_id("reply-button-contact")).to_contain_text("Share my phone")
    await page.screenshot(path=str(screenshot_dir / "sandbox-1280-start.png"))

    # The inline button: a callback answer toast, and the message edited in place.
    await greeting.get_by_role("button", name="Tap me").click()
    await expect(page.get_by_test_id("toasts")).to_contain_text("Tapped!")
    edited = bot_messages.filter(has_text="The button was tapped")
    await expect(edited).to_have_count(1)
    await expect(edited.get_by_test_id("message-edited")).to_be_visible()
    await expect(bot_messages.filter(has_text="Welcome, friend!")).to_have_count(0)
    await expect(bot_messages.first).to_contain_text("The button was tapped")  # same place

    # Sharing the contact goes through the small phone form.
    await page.get_by_test_id("reply-button-contact").click()
    await expect(page.get_by_test_id("contact-form")).to_be_visible()
    await expect(page.get_by_test_id("contact-first-name")).to_have_value("Alice")
    await page.get_by_test_id("contact-phone").fill("+15550100")
    await page.get_by_test_id("contact-submit").click()
    await expect(page.get_by_test_id("message-contact")).to_contain_text("+15550100")
    await expect(bot_messages.filter(has_text="Thanks, got +15550100")).to_have_count(1)
    await expect(keyboard).to_be_hidden()
    await expect(page.get_by_test_id("contact-form")).to_be_hidden()

    # The command menu lists the bot's commands and sends the one picked.
    await page.get_by_test_id("commands-button").click()
    help_item = page.get_by_test_id("command").filter(has_text="/help")
    await expect(help_item).to_contain_text("What I can do")
    await help_item.click()
    await expect(page.get_by_test_id("commands-menu")).to_be_hidden()
    await expect(bot_messages.filter(has_text="Here is some help")).to_have_count(1)

    # Plain text echo.
    await send(page, "Hello there")
    await expect(bot_messages.filter(has_text="You said: Hello there")).to_have_count(1)

    # Markup from a user, echoed by the bot without parse_mode, stays literal text.
    await page.evaluate("window.__xss = false")
    await send(page, XSS_TEXT)
    await expect(bot_messages.filter(has_text=f"You said: {XSS_TEXT}")).to_have_count(1)
    await expect(page.get_by_test_id("message-user").filter(has_text=XSS_TEXT)).to_have_count(1)
    messages = page.get_by_test_id("messages")
    await expect(messages.locator("img, script")).to_have_count(0)

    # A bot's HTML reply: Telegram tags become formatting, escaped markup stays text.
    await send(page, HTML_REPLY_TRIGGER)
    html_reply = bot_messages.filter(has_text="stays text")
    await expect(html_reply).to_have_count(1)
    await expect(html_reply.locator("b")).to_have_text("<script>alert(1)</script>")
    await expect(html_reply.locator("i")).to_have_text("text")
    await expect(html_reply.get_by_test_id("message-reply-quote")).to_have_text(HTML_REPLY_TRIGGER)
    await expect(messages.locator("img, script")).to_have_count(0)
    assert await page.evaluate("window.__xss") is False

    # A photo with the typed text as its caption.
    await page.get_by_test_id("composer-input").fill("my rash")
    await page.get_by_test_id("file-photo").set_input_files(
        {"name": "rash.png", "mimeType": "image/png", "buffer": tiny_png()}
    )
    await expect(bot_messages.filter(has_text="Got your photo: my rash")).to_have_count(1)
    photo = page.get_by_test_id("message-user").get_by_test_id("message-photo")
    await expect(photo).to_have_count(1)
    assert await photo.evaluate("img => img.complete && img.naturalWidth > 0")

    # A bot message deleted after a moment disappears from the chat.
    await send(page, "vanish")
    await expect(bot_messages.filter(has_text="This will vanish")).to_have_count(1)
    await expect(bot_messages.filter(has_text="This will vanish")).to_have_count(0)

    await page.screenshot(path=str(screenshot_dir / "sandbox-1280.png"))

    # Client-API errors show in a friendly banner, and the typed text is kept.
    async def refuse(route: Route) -> None:
        await route.fulfill(
            status=404,
            content_type="application/json",
            body=json.dumps({"ok": False, "error": "unknown bot @nobody"}),
        )

    await page.route("**/client/send", refuse)
    await send(page, "this one fails")
    banner = page.get_by_test_id("error-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Could not send the message: unknown bot @nobody")
    await expect(page.get_by_test_id("composer-input")).to_have_value("this one fails")
    await page.unroute("**/client/send")
    await page.get_by_test_id("error-close").click()
    await expect(banner).to_be_hidden()

    # Phone width: the chat stays usable, the people list folds behind a toggle.
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(page.get_by_test_id("people-toggle")).to_be_visible()
    await expect(page.get_by_test_id("composer-input")).to_be_visible()
    await page.screenshot(path=str(screenshot_dir / "sandbox-390.png"))
    await page.get_by_test_id("commands-button").click()
    await expect(page.get_by_test_id("commands-menu")).to_be_visible()
    await page.screenshot(path=str(screenshot_dir / "sandbox-390-commands.png"))
    await page.keyboard.press("Escape")
    await page.get_by_test_id("people-toggle").click()
    await expect(page.get_by_test_id("new-person-form")).to_be_visible()
    await page.screenshot(path=str(screenshot_dir / "sandbox-390-people.png"))

    assert errors == []
    await context.close()


async def test_long_poll_fallback_and_reload(browser: Browser, sandbox: Sandbox) -> None:
    """Without the SSE stream the page long-polls; a reload restores person and history."""
    context = await browser.new_context(viewport={"width": 800, "height": 700})
    page = await context.new_page()
    await page.route("**/client/stream**", lambda route: route.abort())
    await page.goto(sandbox.url)
    await page.get_by_test_id("new-person-first-name").fill("Boris")
    await page.get_by_test_id("new-person-language").select_option("ru")
    await page.get_by_test_id("new-person-submit").click()
    await expect(page.get_by_test_id("connection-status")).to_have_text("polling")
    await expect(page.get_by_test_id("person")).to_contain_text("ru")

    await send(page, "ping")
    await expect(
        page.get_by_test_id("message-bot").filter(has_text="You said: ping")
    ).to_have_count(1)

    await page.get_by_test_id("commands-button").click()
    await expect(page.get_by_test_id("command")).to_contain_text("Что я умею")
    await page.keyboard.press("Escape")
    await expect(page.get_by_test_id("commands-menu")).to_be_hidden()
    await expect(page.get_by_test_id("commands-button")).to_be_focused()

    await page.unroute("**/client/stream**")
    await page.reload()
    await expect(page.get_by_test_id("connection-status")).to_have_text("live")
    await expect(page.get_by_test_id("chat-title")).to_contain_text("Boris")
    await expect(
        page.get_by_test_id("message-bot").filter(has_text="You said: ping")
    ).to_have_count(1)
    await context.close()


# -- the multi-role page: two bots, roles, clock -------------------------------------------


@dataclass
class Clinic:
    """Emulator + page with a patient bot and a doctor bot, and stand-ins for the sandbox's
    /sandbox/people (roles by first name) and /sandbox/clock (records what was asked)."""

    url: str
    emulator: BotApiEmulator
    roles: dict[str, str]
    clock_calls: list[str]


def sandbox_stubs(emulator: BotApiEmulator, roles: dict[str, str], calls: list[str]) -> None:
    """The sandbox server's people and clock endpoints, as the runner serves them."""
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    offset = {"s": 0}
    steps = {"1h": 3600, "30m": 1800, "1d": 86400, "next": 5400}

    def state() -> dict[str, object]:
        current = now + timedelta(seconds=offset["s"])
        return {
            "ok": True,
            "now": current.isoformat(),
            "offset_s": offset["s"],
            "next_due": (current + timedelta(minutes=90)).isoformat(),
        }

    async def people(request: web.Request) -> web.Response:
        found = [
            {
                "id": u.id,
                "name": u.first_name,
                "role": roles.get(u.first_name, "patient"),
                "language": u.language_code or "en",
            }
            for u in emulator.users.values()
        ]
        return web.json_response({"ok": True, "people": found})

    async def get_clock(request: web.Request) -> web.Response:
        return web.json_response(state())

    async def post_clock(request: web.Request) -> web.Response:
        body = await request.json()
        advance = body.get("advance") if isinstance(body, dict) else None
        calls.append(str(advance))
        if advance not in steps:
            return web.json_response(
                {"ok": False, "error": "advance must be 1h, 30m, 1d or next"}, status=400
            )
        offset["s"] += steps[advance]
        return web.json_response(state())

    emulator.app.router.add_get("/sandbox/people", people)
    emulator.app.router.add_get("/sandbox/clock", get_clock)
    emulator.app.router.add_post("/sandbox/clock", post_clock)


@pytest.fixture
async def clinic() -> AsyncIterator[Clinic]:
    """A patient bot and a doctor bot polling the emulator, the page and the sandbox stubs."""
    emulator = BotApiEmulator(limits=RateLimits(enabled=False), seed=2)
    emulator.register_bot(BOT_TOKEN, username=BOT_USERNAME, first_name=BOT_NAME)
    emulator.register_bot(DOCTOR_TOKEN, username=DOCTOR_USERNAME, first_name=DOCTOR_BOT_NAME)
    add_web_routes(emulator.app, title="Careline sandbox (clinic test)")
    roles = {"Vera": "doctor", "Oleg": "admin", "Mei": "caregiver"}
    calls: list[str] = []
    sandbox_stubs(emulator, roles, calls)
    url = await emulator.start("127.0.0.1", 0)

    relay = Relay()
    bots = []
    tasks = []
    dispatchers = []
    for token, router in (
        (BOT_TOKEN, make_router(relay)),
        (DOCTOR_TOKEN, doctor_router(relay)),
    ):
        bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
        dispatcher = Dispatcher()
        dispatcher.include_router(router)
        bots.append(bot)
        dispatchers.append(dispatcher)
        tasks.append(
            asyncio.create_task(
                dispatcher.start_polling(bot, polling_timeout=1, handle_signals=False)
            )
        )
    relay.patient_bot, relay.doctor_bot = bots
    try:
        yield Clinic(url=url, emulator=emulator, roles=roles, clock_calls=calls)
    finally:
        for dispatcher in dispatchers:
            with contextlib.suppress(RuntimeError):
                await dispatcher.stop_polling()
        for task in tasks:
            try:
                await asyncio.wait_for(task, timeout=5)
            except TimeoutError:
                task.cancel()
        for bot in bots:
            await bot.session.close()
        await emulator.stop()


def pane(page: Page, index: int) -> Locator:
    """The index-th chat pane."""
    return page.get_by_test_id("pane").nth(index)


async def pane_send(chat: Locator, text: str) -> None:
    """Type into one pane's message box and press Enter."""
    box = chat.get_by_test_id("composer-input")
    await box.fill(text)
    await box.press("Enter")


async def test_roles_and_a_relay_in_two_panes(
    browser: Browser, clinic: Clinic, screenshot_dir: Path
) -> None:
    """Role badges; a patient and a doctor side by side, a relay seen live in both; phone
    width shows one pane at a time with tabs to switch."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for first, last in (("Oleg", "Testadmin"), ("Mei", "Testcarer")):
        made = await page.request.post(
            f"{clinic.url.rstrip('/')}/client/users",
            data={"first_name": first, "last_name": last, "language_code": "en"},
        )
        assert made.ok
    await page.goto(clinic.url)
    await create_person(page, "Anna", "Testpatient")
    await page.get_by_test_id("new-person-first-name").fill("Vera")
    await page.get_by_test_id("new-person-last-name").fill("Testdoctor")
    await page.get_by_test_id("new-person-submit").click()

    people = page.get_by_test_id("people-list").get_by_role("listitem")
    anna = people.filter(has_text="Anna Testpatient")
    vera = people.filter(has_text="Vera Testdoctor")
    await expect(anna.get_by_test_id("role-badge")).to_have_text("patient")
    await expect(vera.get_by_test_id("role-badge")).to_have_text("doctor")
    # A doctor picked in the pane gets the doctor bot.
    await expect(pane(page, 0).get_by_test_id("chat-title")).to_contain_text("Doctor Bot")
    await pane_send(pane(page, 0), "/start")
    await expect(pane(page, 0).get_by_test_id("message-bot")).to_contain_text("Doctor bot ready")

    # Anna beside Vera, with the patient bot.
    await anna.get_by_test_id("open-beside").click()
    await expect(page.get_by_test_id("pane")).to_have_count(2)
    patient = pane(page, 1)
    doctor = pane(page, 0)
    await expect(patient.get_by_test_id("chat-title")).to_contain_text("Anna Testpatient")
    await expect(patient.get_by_test_id("chat-title")).to_contain_text(BOT_NAME)
    await expect(patient.get_by_test_id("connection-status")).to_have_text("live")
    await expect(patient.get_by_test_id("composer-input")).to_be_focused()
    box_doctor = await doctor.bounding_box()
    box_patient = await patient.bounding_box()
    assert box_doctor is not None and box_patient is not None
    assert box_patient["x"] >= box_doctor["x"] + box_doctor["width"] - 1  # side by side
    assert abs(box_patient["y"] - box_doctor["y"]) < 2

    await pane_send(patient, "relay: my knee hurts")
    await expect(patient.get_by_test_id("message-bot").last).to_have_text(
        re.compile("Sent to your doctor")
    )
    await expect(
        doctor.get_by_test_id("message-bot").filter(has_text="From patient: my knee hurts")
    ).to_have_count(1)
    await pane_send(doctor, "reply: rest it for two days")
    await expect(
        patient.get_by_test_id("message-bot").filter(has_text="Doctor says: rest it for two days")
    ).to_have_count(1)
    await page.screenshot(path=str(screenshot_dir / "sandbox-panes-1280.png"))

    # "Open beside" on a chat that is already open goes to it: no second copy.
    await doctor.get_by_test_id("composer-input").focus()
    await anna.get_by_test_id("open-beside").click()
    await expect(page.get_by_test_id("pane")).to_have_count(2)
    await expect(patient.get_by_test_id("composer-input")).to_be_focused()
    await expect(patient).to_have_class(re.compile(r"\bpane-active\b"))

    # At most three panes; a fourth is refused politely (an open one is still reachable).
    await people.filter(has_text="Oleg Testadmin").get_by_test_id("open-beside").click()
    await expect(page.get_by_test_id("pane")).to_have_count(3)
    await vera.get_by_test_id("open-beside").click()
    await expect(doctor.get_by_test_id("composer-input")).to_be_focused()
    await expect(page.get_by_test_id("pane")).to_have_count(3)
    await people.filter(has_text="Mei Testcarer").get_by_test_id("open-beside").click()
    await expect(page.get_by_test_id("toasts")).to_contain_text("At most three chats")
    await expect(page.get_by_test_id("pane")).to_have_count(3)
    await pane(page, 2).get_by_test_id("pane-close").click()
    await expect(page.get_by_test_id("pane")).to_have_count(2)

    # Phone width: one pane at a time, tabs to switch.
    await page.set_viewport_size({"width": 375, "height": 812})
    tabs = page.get_by_test_id("pane-tab")
    await expect(tabs).to_have_count(2)
    await tabs.filter(has_text="Vera").click()
    await expect(doctor).to_be_visible()
    await expect(patient).to_be_hidden()
    await expect(doctor.get_by_test_id("message-bot").last).to_be_visible()
    await page.screenshot(path=str(screenshot_dir / "sandbox-panes-375-doctor.png"))
    await tabs.filter(has_text="Anna").click()
    await expect(patient).to_be_visible()
    await expect(doctor).to_be_hidden()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways at phone width ({width}px)"
    await page.screenshot(path=str(screenshot_dir / "sandbox-panes-375-patient.png"))

    # A reload brings both panes back.
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.reload()
    await expect(page.get_by_test_id("pane")).to_have_count(2)
    await expect(pane(page, 1).get_by_test_id("message-bot")).to_contain_text(
        ["Sent to your doctor", "Doctor says: rest it for two days"]
    )
    assert errors == []
    await context.close()


async def test_deep_link_files_and_escaping(
    browser: Browser, clinic: Clinic, screenshot_dir: Path
) -> None:
    """A t.me deep link opens for the person chosen in a small dialog and sends /start
    <payload> for them; photos inline, PDF and JSON as named downloads; bot text with
    <script> stays text."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(clinic.url)
    await create_person(page, "Mei", "Testcarer")
    await expect(page.get_by_test_id("role-badge")).to_have_text("caregiver")
    await create_person(page, "Anna", "Testpatient")
    first = pane(page, 0)
    await pane_send(first, "invite")
    link = first.get_by_test_id("deep-link")
    await expect(link).to_have_text(f"https://t.me/{BOT_USERNAME}?start={INVITE_PAYLOAD}")

    await link.click()
    dialog = page.get_by_test_id("deeplink-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text(f"@{BOT_USERNAME}")
    choices = dialog.get_by_test_id("deeplink-person")
    await expect(choices).to_have_count(2)
    await expect(choices.first).to_be_focused()
    await page.screenshot(path=str(screenshot_dir / "sandbox-deeplink-chooser.png"))
    await page.keyboard.press("Escape")  # cancel: nothing is sent
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_test_id("pane")).to_have_count(1)

    await link.click()
    await choices.filter(has_text="Mei Testcarer").click()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_test_id("pane")).to_have_count(2)
    carer = pane(page, 1)
    await expect(carer.get_by_test_id("chat-title")).to_contain_text("Mei Testcarer")
    said = carer.get_by_test_id("message-user").get_by_test_id("message-text")
    await expect(said).to_have_text(f"/start {INVITE_PAYLOAD}")
    heard = carer.get_by_test_id("message-bot").get_by_test_id("message-text")
    await expect(heard).to_have_text(f"Invitation accepted: {INVITE_PAYLOAD}")
    anna_said = first.get_by_test_id("message-user").get_by_test_id("message-text")
    await expect(anna_said).to_have_text(["invite"])  # Anna's chat: as it was

    # Files from the bot: the chart inline, the PDF and the JSON as downloads by name.
    await pane_send(first, "files")
    photo = first.get_by_test_id("message-bot").get_by_test_id("message-photo")
    await expect(photo).to_have_count(1)
    await expect(photo).to_have_attribute("alt", "Photo: Chart")
    assert await photo.evaluate("img => img.complete && img.naturalWidth > 0")
    downloads = first.get_by_test_id("document-download")
    await expect(downloads).to_have_text(["Document: referral-slip.pdf", "Document: record.json"])
    await expect(downloads.first).to_have_attribute("download", "referral-slip.pdf")
    async with page.expect_download() as caught:
        await downloads.nth(1).click()
    download = await caught.value
    assert download.suggested_filename == "record.json"
    saved = await download.path()
    assert await asyncio.to_thread(Path(saved).read_bytes) == b'{"resourceType": "Bundle"}'

    # A bot's plain text with markup in it is shown as that text.
    await page.evaluate("window.__xss = false")
    await pane_send(first, "script")
    shown = first.get_by_test_id("message-bot").filter(has_text="window.__xss")
    await expect(shown.get_by_test_id("message-text")).to_have_text(SCRIPT_TEXT)
    await expect(page.get_by_test_id("messages").locator("script, b")).to_have_count(0)
    assert await page.evaluate("window.__xss") is False
    await page.screenshot(path=str(screenshot_dir / "sandbox-files-1280.png"))

    # A link to a bot that is not running here is refused politely.
    await page.evaluate(
        """() => {
            const a = document.createElement('a');
            a.href = 'https://t.me/some_other_bot?start=x1';
            a.textContent = 'elsewhere';
            a.dataset.testid = 'foreign-link';
            document.querySelector('[data-testid=messages]').append(a);
        }"""
    )
    await page.get_by_test_id("foreign-link").click()
    await expect(page.get_by_test_id("error-banner")).to_contain_text(
        "@some_other_bot, which is not running in this sandbox"
    )
    await expect(dialog).to_be_hidden()
    assert errors == []
    await context.close()


async def test_clock_keyboard_and_language(
    browser: Browser, clinic: Clinic, screenshot_dir: Path
) -> None:
    """Clock buttons call the clock API and show the new time (errors politely; no clock
    without the API); keyboard-only chat; the page's language switch."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(clinic.url)
    clock = page.get_by_test_id("clock")
    now = page.get_by_test_id("clock-now")
    await expect(clock).to_be_visible()
    await expect(now).to_have_attribute("data-iso", "2026-03-02T08:00:00+00:00")
    await page.get_by_test_id("clock-hour").click()
    await expect(now).to_have_attribute("data-iso", "2026-03-02T09:00:00+00:00")
    await page.get_by_test_id("clock-day").click()
    await expect(now).to_have_attribute("data-iso", "2026-03-03T09:00:00+00:00")
    await page.get_by_test_id("clock-next-event").click()
    await expect(now).to_have_attribute("data-iso", "2026-03-03T10:30:00+00:00")
    assert clinic.clock_calls == ["1h", "1d", "next"]
    await expect(page.get_by_test_id("toasts")).to_contain_text("Sandbox time is now")
    await expect(page.get_by_test_id("clock-next")).to_contain_text("next:")

    async def refuse(route: Route) -> None:
        await route.fulfill(
            status=400,
            content_type="application/json",
            body=json.dumps({"ok": False, "error": "the scheduler is busy"}),
        )

    await page.route("**/sandbox/clock", refuse)
    await page.get_by_test_id("clock-hour").click()
    await expect(page.get_by_test_id("error-banner")).to_contain_text(
        "Could not move the clock: the scheduler is busy"
    )
    await expect(now).to_have_attribute("data-iso", "2026-03-03T10:30:00+00:00")
    await page.unroute("**/sandbox/clock")
    await page.get_by_test_id("error-close").click()

    # Keyboard only: skip link, type, Enter; a focused bot button shows a ring, Enter presses.
    await create_person(page, "Anna", "Testpatient")
    await page.reload()  # focus starts at the top of the page
    await expect(page.get_by_test_id("connection-status")).to_have_text("live")
    await page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    await expect(skip).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("composer-input")).to_be_focused()
    await page.keyboard.type("/start")
    await page.keyboard.press("Enter")
    greeting = page.get_by_test_id("message-bot").filter(has_text="Welcome, friend!")
    await expect(greeting).to_have_count(1)
    tap = greeting.get_by_role("button", name="Tap me")
    await tap.focus()
    outline = await tap.evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline != "none", "the focused button shows no focus ring"
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("toasts")).to_contain_text("Tapped!")

    # The page's language: Russian, then Chinese, then back; the bots' texts stay theirs.
    await page.get_by_test_id("page-language").select_option("ru")
    await expect(page.get_by_test_id("send-button")).to_have_text("Отправить")
    await expect(page.get_by_test_id("clock-hour")).to_have_text("+1 час")
    await expect(page.get_by_test_id("role-badge")).to_have_text("пациент")
    await expect(page.get_by_test_id("connection-status")).to_have_text("онлайн")
    assert await page.evaluate("document.documentElement.lang") == "ru"
    await expect(page.get_by_test_id("message-bot").first).to_contain_text("The button was tapped")
    await page.screenshot(path=str(screenshot_dir / "sandbox-ru-1280.png"))
    await page.reload()
    await expect(page.get_by_test_id("new-person-submit")).to_have_text("Создать")
    await page.get_by_test_id("page-language").select_option("zh_Hans")
    await expect(page.get_by_test_id("send-button")).to_have_text("发送")
    await expect(page.get_by_test_id("clock-next-event")).to_have_text("下一个事件")
    assert await page.evaluate("document.documentElement.lang") == "zh-Hans"
    await page.set_viewport_size({"width": 375, "height": 812})
    await page.screenshot(path=str(screenshot_dir / "sandbox-zh-375.png"))
    await page.get_by_test_id("page-language").select_option("en")
    await expect(page.get_by_test_id("send-button")).to_have_text("Send")

    # Without a clock API (the real bot has none) the control is not shown.
    await page.route("**/sandbox/clock", lambda route: route.fulfill(status=404, body="{}"))
    await page.reload()
    await expect(page.get_by_test_id("composer-input")).to_be_visible()
    await expect(clock).to_be_hidden()
    assert errors == []
    await context.close()
