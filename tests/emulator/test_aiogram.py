"""Real aiogram bots against the emulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiohttp import web

from bot.sandbox.client import EmulatorClient
from bot.sandbox.emulator import BotApiEmulator, RateLimits

TOKEN = "100001:AAAemulatorTestTokenAlpha"
OTHER_TOKEN = "100002:AAAemulatorTestTokenBeta"
BOT = "careline_test_bot"

PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(limits=RateLimits(enabled=False), seed=7)
    emulator.register_bot(TOKEN, username=BOT, first_name="Careline Test")
    emulator.register_bot(OTHER_TOKEN, username="careline_other_bot", first_name="Other")
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url))
    b = Bot(TOKEN, session=session)
    yield b
    await b.session.close()


@pytest.fixture
async def client(emu: BotApiEmulator) -> AsyncIterator[EmulatorClient]:
    async with EmulatorClient(emu.base_url) as c:
        yield c


async def _user(client: EmulatorClient, name: str = "Alice") -> int:
    """A user who has started the bot, so the bot may write to them."""
    user = await client.create_user(name, last_name="Testpatient")
    await client.start(user["id"], BOT)
    return int(user["id"])


async def test_get_me_and_unknown_token(emu: BotApiEmulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (100001, BOT, True)
    stranger = Bot(
        "999:nope", session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url))
    )
    with pytest.raises(TelegramUnauthorizedError):
        await stranger.get_me()
    await stranger.session.close()


async def test_send_edit_document_getfile_download(bot: Bot, client: EmulatorClient) -> None:
    uid = await _user(client)
    kb = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="y")]]
    )
    sent = await bot.send_message(
        uid, "<b>Hello</b>, Alice", parse_mode="HTML", reply_markup=kb, protect_content=True
    )
    assert sent.text == "Hello, Alice"
    assert sent.entities is not None and sent.entities[0].type == "bold"
    assert sent.reply_markup is not None
    assert sent.reply_markup.model_dump() == kb.model_dump()
    edited = await bot.edit_message_text("Bye", chat_id=uid, message_id=sent.message_id)
    assert isinstance(edited, Message)
    assert edited.text == "Bye" and edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Bye", chat_id=uid, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=uid, message_id=999)

    doc = await bot.send_document(
        uid, BufferedInputFile(b"%PDF-1.4 test", "lab.pdf"), caption="Labs"
    )
    assert doc.document is not None and doc.document.file_name == "lab.pdf"
    file = await bot.get_file(doc.document.file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == b"%PDF-1.4 test"
    # the same file_id may be re-sent by the same bot
    again = await bot.send_document(uid, doc.document.file_id)
    assert again.document is not None and again.document.file_id == doc.document.file_id

    history = await client.messages(uid, BOT)
    bot_msgs = [m for m in history["messages"] if m["from"] == "bot"]
    assert bot_msgs[0]["text"] == "Bye" and bot_msgs[0]["edited"] is True
    assert bot_msgs[0]["protect_content"] is True
    assert await client.download(bot_msgs[1]["document"]["download_url"]) == b"%PDF-1.4 test"


async def test_file_id_of_another_bot_is_refused(
    emu: BotApiEmulator, bot: Bot, client: EmulatorClient
) -> None:
    uid = await _user(client)
    await client.start(uid, "careline_other_bot")
    sent = await client.send_photo(uid, "careline_other_bot", PNG_1X1, "scan.png", caption="rash")
    photo = sent["message"]["photo"]
    assert (photo["width"], photo["height"]) == (1, 1)
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(uid, photo["file_id"])
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.get_file(photo["file_id"])


async def test_validation_errors(bot: Bot, client: EmulatorClient) -> None:
    uid = await _user(client)
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(uid, "Dr. Smith <3 & co", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(uid, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(uid, "<b> </b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(
            uid,
            "pick",
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="a", callback_data="x" * 65)]]
            ),
        )
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(123456, "hi")
    assert (await bot.send_message(uid, "x" * 4096)).text == "x" * 4096


async def test_long_poll_and_offset_confirmation(bot: Bot, client: EmulatorClient) -> None:
    user = await client.create_user("Bob", last_name="Testpatient")
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    await client.send(user["id"], BOT, "/help me")
    updates = await poll
    assert time.monotonic() - started < 2.5  # returned as soon as the update existed
    assert len(updates) == 1 and updates[0].message is not None
    assert updates[0].message.text == "/help me"
    assert updates[0].message.entities is not None
    assert updates[0].message.entities[0].type == "bot_command"
    # unconfirmed updates come again; offset confirms and drops them
    assert [u.update_id for u in await bot.get_updates()] == [updates[0].update_id]
    assert await bot.get_updates(offset=updates[0].update_id + 1) == []


async def test_concurrent_get_updates_conflict(bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await first
    assert await second == []


async def test_webhook_push_retry_secret_and_409(
    emu: BotApiEmulator, bot: Bot, client: EmulatorClient
) -> None:
    received: list[tuple[dict[str, Any], str | None]] = []
    failures = [1]  # the first delivery fails, so the emulator must retry

    async def hook(request: web.Request) -> web.Response:
        if failures[0]:
            failures[0] -= 1
            return web.Response(status=500)
        body = await request.json()
        received.append((body, request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        if body.get("message", {}).get("text") == "ping":
            # answering the webhook with a method call, as aiogram can
            return web.json_response(
                {"method": "sendMessage", "chat_id": body["message"]["chat"]["id"], "text": "pong"}
            )
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        with pytest.raises(TelegramBadRequest, match="loopback"):
            await bot.set_webhook("https://example.org/hook")
        user = await client.create_user("Carol", last_name="Testpatient")
        await client.send(user["id"], BOT, "first")
        await client.send(user["id"], BOT, "ping")
        pong = await client.wait_for(user["id"], BOT, "pong", timeout=5)
        assert pong["from"] == "bot"
        assert [b["message"]["text"] for b, _ in received] == ["first", "ping"]
        assert all(secret == "s3cret" for _, secret in received)
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0 and info.last_error_message
        assert await bot.delete_webhook()
        assert await bot.get_updates() == []
    finally:
        await runner.cleanup()


async def test_rate_limit_429_with_retry_after(
    emu: BotApiEmulator, bot: Bot, client: EmulatorClient
) -> None:
    uid = await _user(client)
    await client.set_limits(enabled=True, per_chat_per_s=0.25, per_chat_burst=3)
    for i in range(3):
        await bot.send_message(uid, f"msg {i}")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(uid, "one too many")
    assert info.value.retry_after == 4  # ceil(1 token / 0.25 per s)
    # the global bucket is separate: a tiny global burst limits other chats too (for bulk
    # messages: with no reply window every message is one)
    await client.set_limits(
        global_per_s=1, global_burst=1, per_chat_per_s=100, per_chat_burst=100, reply_window_s=1e-6
    )
    await bot.send_message(uid, "ok")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(uid, "global")
    assert info.value.retry_after == 1
    stats = (await client.stats())["bots"][BOT]["methods"]["sendMessage"]
    assert stats["429"] == 2 and stats["ok"] == 4


async def test_injected_faults(emu: BotApiEmulator, bot: Bot, client: EmulatorClient) -> None:
    uid = await _user(client)
    await client.set_faults(bot=BOT, methods=["sendMessage"], rate_429=1.0, retry_after=7, seed=1)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(uid, "a")
    assert info.value.retry_after == 7
    # turning the rule off leaves the chat "in retry_after", as Telegram does
    await client.set_faults(bot=BOT, methods=["sendMessage"], rate_429=0.0)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(uid, "b")
    assert 1 <= info.value.retry_after <= 7
    await client.clear_faults()

    await client.set_faults(methods=["sendMessage"], rate_5xx=1.0, status_5xx=502)
    with pytest.raises(TelegramServerError):
        await bot.send_message(uid, "c")
    await client.set_faults(methods=["sendMessage"], delay_ms=150)
    started = time.monotonic()
    await bot.send_message(uid, "slow")
    assert time.monotonic() - started >= 0.15

    before = len((await client.messages(uid, BOT))["messages"])
    await client.set_faults(methods=["sendMessage"], drop_rate=1.0)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(uid, "lost")
    assert len((await client.messages(uid, BOT))["messages"]) == before
    await client.set_faults(methods=["sendMessage"], drop_rate=1.0, drop_after_effect=True)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(uid, "delivered anyway")
    last = (await client.messages(uid, BOT))["messages"][-1]
    assert last["text"] == "delivered anyway"
    await client.clear_faults()
    assert (await bot.send_message(uid, "fine")).text == "fine"
    counters = (await client.stats())["bots"][BOT]["methods"]["sendMessage"]
    assert counters["dropped"] == 2 and counters["5xx"] == 1 and counters["429"] == 2


async def test_block_gives_403_and_my_chat_member(bot: Bot, client: EmulatorClient) -> None:
    uid = await _user(client)
    await bot.get_updates(offset=-1)  # confirm the /start
    await client.block(uid, BOT)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(uid, "are you there?")
    updates = await bot.get_updates(offset=-1)
    member = updates[-1].my_chat_member
    assert member is not None and member.new_chat_member.status == "kicked"
    await client.block(uid, BOT, blocked=False)
    assert (await bot.send_message(uid, "welcome back")).text == "welcome back"


async def test_dispatcher_flow_with_clicks_and_forged_callback(
    emu: BotApiEmulator, bot: Bot, client: EmulatorClient
) -> None:
    dp = Dispatcher()
    answers: list[str] = []

    @dp.message(CommandStart())
    async def on_start(message: Message) -> None:
        kb = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Book a visit", callback_data="book")]]
        )
        await message.answer("Welcome to Careline", reply_markup=kb)

    @dp.callback_query(F.data == "book")
    async def on_book(query: CallbackQuery) -> None:
        await query.answer("Booked")
        assert isinstance(query.message, Message)
        await query.message.edit_text("Visit booked")

    @dp.callback_query()
    async def on_other(query: CallbackQuery) -> None:
        answers.append(query.data or "")
        await query.answer("Unknown button", show_alert=True)

    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        user = await client.create_user("Dana", last_name="Testpatient")
        uid = user["id"]
        await client.start(uid, BOT, payload="ref_123")
        welcome = await client.wait_for(uid, BOT, "Welcome", timeout=5)
        with pytest.raises(Exception, match="no inline button"):
            await client.click(uid, BOT, welcome["message_id"], "admin")
        await client.click_button(uid, BOT, "Book a visit")
        edited = await client.wait_for(uid, BOT, lambda m: m["edited"], timeout=5)
        assert edited["text"] == "Visit booked" and edited["reply_markup"] is None
        forged = await client.click(uid, BOT, welcome["message_id"], "admin", force=True)
        for _ in range(100):
            history = await client.messages(uid, BOT)
            if len(history["callback_answers"]) == 2:
                break
            await asyncio.sleep(0.05)
        first, second = history["callback_answers"]
        assert first["text"] == "Booked"
        assert second["callback_query_id"] == forged["callback_query_id"]
        assert second["show_alert"] is True and answers == ["admin"]
        assert (await client.bots())[0]["commands"]["default"][0]["command"] == "start"
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await bot.answer_callback_query(forged["callback_query_id"])
    finally:
        await dp.stop_polling()
        await polling
