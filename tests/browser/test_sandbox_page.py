"""The sandbox chat page in a real browser, against the real emulator and a real aiogram bot.

A tiny bot runs in-process, polling the emulator like a production bot polls
Telegram. The browser creates a person, talks to the bot, presses its buttons,
shares a contact and checks that markup sent by users or bots stays text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, CommandStart
from aiogram.types import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from playwright.async_api import Browser, Page, Route, expect

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


def make_router() -> Router:
    """The test bot: /start with both keyboard kinds, a callback, contact, HTML and echo."""
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

    return router


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
