"""Telegram Payments in the emulator: invoices, pre-checkout, charges and Star refunds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
    Update,
)

from bot.sandbox.client import EmulatorClient, EmulatorError
from bot.sandbox.emulator import BotApiEmulator, RateLimits

TOKEN = "100001:AAApaymentsTestToken"
OTHER_TOKEN = "100002:AAApaymentsOtherToken"
BOT = "careline_pay_bot"
PROVIDER_TOKEN = "TEST:emulator-provider"
DECLINED_CARD = "4000 0000 0000 0002"


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(limits=RateLimits(enabled=False), seed=11)
    emulator.register_bot(TOKEN, username=BOT, first_name="Careline Pay")
    emulator.register_bot(OTHER_TOKEN, username="careline_other_bot", first_name="Other")
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    b = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))
    yield b
    await b.session.close()


@pytest.fixture
async def client(emu: BotApiEmulator) -> AsyncIterator[EmulatorClient]:
    async with EmulatorClient(emu.base_url) as c:
        yield c


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Updates:
    """getUpdates with offset bookkeeping, so each test reads every update exactly once."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.offset = 0

    async def next(self, timeout: int = 5) -> Update:  # noqa: ASYNC109 - long-poll seconds
        """The next update, long-polling for it (the emulator answers as soon as one exists)."""
        updates = await self.bot.get_updates(offset=self.offset, limit=1, timeout=timeout)
        assert updates, "no update arrived"
        self.offset = updates[0].update_id + 1
        return updates[0]

    async def batch(self, timeout: int = 5) -> list[Update]:  # noqa: ASYNC109 - as in next
        """Every queued update at once (as aiogram's polling reads them, up to 100)."""
        updates = await self.bot.get_updates(offset=self.offset, timeout=timeout)
        assert updates, "no update arrived"
        self.offset = updates[-1].update_id + 1
        return updates

    async def none_left(self) -> bool:
        """True if nothing else is queued (checked without waiting)."""
        return not await self.bot.get_updates(offset=self.offset, timeout=0)


async def _user(client: EmulatorClient, updates: Updates, name: str = "Alice") -> int:
    """A user who has started the bot (its /start update already read)."""
    user = await client.create_user(name, last_name="Testpatient")
    await client.start(user["id"], BOT)
    assert (await updates.next()).message is not None
    return int(user["id"])


async def _stars_invoice(bot: Bot, uid: int, amount: int = 150) -> Message:
    return await bot.send_invoice(
        uid,
        title="Consultation",
        description="A 20-minute video consultation with a GP",
        payload="visit:42",
        currency="XTR",
        prices=[LabeledPrice(label="Consultation", amount=amount)],
    )


async def _card_invoice(bot: Bot, uid: int, payload: str = "visit:43") -> Message:
    return await bot.send_invoice(
        uid,
        title="Clinic visit",
        description="In-person visit, Dr. Test",
        payload=payload,
        provider_token=PROVIDER_TOKEN,
        currency="EUR",
        prices=[
            LabeledPrice(label="Visit", amount=4500),
            LabeledPrice(label="Lab tests", amount=1250),
        ],
        need_phone_number=True,
        start_parameter="visit43",
    )


async def _pre_checkout(updates: Updates) -> PreCheckoutQuery:
    update = await updates.next()
    assert update.pre_checkout_query is not None, update
    return update.pre_checkout_query


async def test_stars_invoice_paid_once(
    bot: Bot, client: EmulatorClient, emu: BotApiEmulator
) -> None:
    updates = Updates(bot)
    uid = await _user(client, updates)
    sent = await _stars_invoice(bot, uid)
    assert sent.invoice is not None
    assert (sent.invoice.currency, sent.invoice.total_amount) == ("XTR", 150)
    assert sent.invoice.title == "Consultation" and sent.invoice.start_parameter == ""

    shown = await client.wait_for_invoice(uid, BOT, timeout=5)
    assert shown["message_id"] == sent.message_id and shown["from"] == "bot"
    assert shown["invoice"]["status"] == "unpaid"
    assert shown["invoice"]["prices"] == [{"label": "Consultation", "amount": 150}]

    paying = asyncio.create_task(client.pay(uid, BOT, sent.message_id))
    query = await _pre_checkout(updates)  # served while the pay call waits: loop not blocked
    assert (query.currency, query.total_amount, query.invoice_payload) == ("XTR", 150, "visit:42")
    assert query.from_user.id == uid and query.order_info is None
    assert await bot.answer_pre_checkout_query(query.id, ok=True) is True
    outcome = await paying
    assert outcome["status"] == "paid" and outcome["error_message"] is None
    charge_id = outcome["telegram_payment_charge_id"]
    assert charge_id.startswith("stx") and outcome["provider_payment_charge_id"] == ""

    paid = (await updates.next()).message
    assert paid is not None and paid.successful_payment is not None
    assert paid.from_user is not None and paid.from_user.id == uid
    sp = paid.successful_payment
    assert (sp.currency, sp.total_amount, sp.invoice_payload) == ("XTR", 150, "visit:42")
    assert sp.telegram_payment_charge_id == charge_id
    assert await updates.none_left()

    again = await client.pay(uid, BOT, sent.message_id)
    assert again["status"] == "already_paid"
    assert again["telegram_payment_charge_id"] == charge_id
    assert await updates.none_left()  # no second pre-checkout for a paid invoice

    [charge] = await client.payments(BOT)
    assert charge["status"] == "paid" and charge["telegram_payment_charge_id"] == charge_id
    assert (charge["user_id"], charge["message_id"], charge["deliveries"]) == (
        uid,
        sent.message_id,
        1,
    )
    history = await client.messages(uid, BOT)
    service = history["messages"][-1]
    assert service["from"] == "user" and service["invoice_message_id"] == sent.message_id
    assert service["successful_payment"]["telegram_payment_charge_id"] == charge_id
    invoice_view = next(m for m in history["messages"] if m["message_id"] == sent.message_id)
    assert invoice_view["invoice"]["status"] == "paid"
    assert await client.payments("careline_other_bot") == []


async def test_card_payment_success_decline_and_invalid_number(
    bot: Bot, client: EmulatorClient
) -> None:
    updates = Updates(bot)
    uid = await _user(client, updates)
    sent = await _card_invoice(bot, uid)
    assert sent.invoice is not None and sent.invoice.total_amount == 5750
    assert sent.invoice.start_parameter == "visit43"

    # A number the card form refuses never reaches the bot.
    bad = await client.pay(uid, BOT, sent.message_id, card="1234 5678 9012 3456")
    assert bad["status"] == "declined" and "invalid" in bad["error_message"]
    assert await updates.none_left()

    # The provider declines after the bot approved: no successful_payment follows.
    paying = asyncio.create_task(client.pay(uid, BOT, sent.message_id, card=DECLINED_CARD))
    query = await _pre_checkout(updates)
    assert query.order_info is not None and query.order_info.phone_number
    await bot.answer_pre_checkout_query(query.id, ok=True)
    declined = await paying
    assert declined == {
        **declined,
        "status": "declined",
        "error_message": "Your card was declined.",
    }
    assert await updates.none_left()
    assert await client.payments(BOT) == []

    paying = asyncio.create_task(client.pay(uid, BOT, sent.message_id))  # default 4242...
    await bot.answer_pre_checkout_query((await _pre_checkout(updates)).id, ok=True)
    outcome = await paying
    assert outcome["status"] == "paid" and outcome["currency"] == "EUR"
    assert outcome["provider_payment_charge_id"].startswith("ch_")
    message = (await updates.next()).message
    assert message is not None and message.successful_payment is not None
    sp = message.successful_payment
    assert (sp.currency, sp.total_amount) == ("EUR", 5750)
    assert sp.provider_payment_charge_id == outcome["provider_payment_charge_id"]
    assert sp.order_info is not None and sp.order_info.phone_number


async def test_bot_rejects_at_pre_checkout(bot: Bot, client: EmulatorClient) -> None:
    updates = Updates(bot)
    uid = await _user(client, updates)
    sent = await _stars_invoice(bot, uid)
    paying = asyncio.create_task(client.pay(uid, BOT, sent.message_id))
    query = await _pre_checkout(updates)
    await bot.answer_pre_checkout_query(
        query.id, ok=False, error_message="This slot has just been taken."
    )
    outcome = await paying
    assert outcome["status"] == "rejected"
    assert outcome["error_message"] == "This slot has just been taken."
    assert await updates.none_left()
    # the invoice stays payable
    paying = asyncio.create_task(client.pay(uid, BOT, sent.message_id))
    await bot.answer_pre_checkout_query((await _pre_checkout(updates)).id, ok=True)
    assert (await paying)["status"] == "paid"


async def test_pre_checkout_timeout_and_query_id_checks(
    bot: Bot, client: EmulatorClient, emu: BotApiEmulator
) -> None:
    assert (await client.set_settings(pre_checkout_timeout_s=0.3)) == {
        "pre_checkout_timeout_s": 0.3
    }
    updates = Updates(bot)
    uid = await _user(client, updates)
    sent = await _stars_invoice(bot, uid)
    outcome = await client.pay(uid, BOT, sent.message_id)  # nobody answers
    assert outcome["status"] == "timeout" and "in time" in outcome["error_message"]
    stale = await _pre_checkout(updates)
    with pytest.raises(TelegramBadRequest, match="QUERY_ID_INVALID"):
        await bot.answer_pre_checkout_query(stale.id, ok=True)
    with pytest.raises(TelegramBadRequest, match="QUERY_ID_INVALID"):
        await bot.answer_pre_checkout_query("12345", ok=True)

    emu.pre_checkout_timeout_s = 10.0
    paying = asyncio.create_task(client.pay(uid, BOT, sent.message_id))
    query = await _pre_checkout(updates)
    with pytest.raises(TelegramBadRequest, match="ERROR_MESSAGE_EMPTY"):
        await bot.answer_pre_checkout_query(query.id, ok=False)
    # another bot cannot answer this bot's query
    async with Bot(
        OTHER_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url))
    ) as other:
        with pytest.raises(TelegramBadRequest, match="QUERY_ID_INVALID"):
            await other.answer_pre_checkout_query(query.id, ok=True)
    # a second payment of the same invoice while one waits for the bot is refused
    with pytest.raises(EmulatorError, match="already waiting"):
        await client.pay(uid, BOT, sent.message_id)
    await bot.answer_pre_checkout_query(query.id, ok=True)
    with pytest.raises(TelegramBadRequest, match="QUERY_ID_INVALID"):
        await bot.answer_pre_checkout_query(query.id, ok=True)  # answered already
    assert (await paying)["status"] == "paid"


async def test_duplicate_delivery_of_successful_payment(bot: Bot, client: EmulatorClient) -> None:
    updates = Updates(bot)
    uid = await _user(client, updates)
    sent = await _stars_invoice(bot, uid)
    paying = asyncio.create_task(client.pay(uid, BOT, sent.message_id, duplicate=True))
    await bot.answer_pre_checkout_query((await _pre_checkout(updates)).id, ok=True)
    outcome = await paying
    # Same update_id twice: one getUpdates batch carries both (confirming the offset drops
    # both), and a webhook gets the second POST after the first was answered.
    first, second = await updates.batch()
    assert first.update_id == second.update_id
    assert first.message is not None and second.message is not None
    assert first.message.successful_payment == second.message.successful_payment
    assert first.message.successful_payment is not None
    charge_id = first.message.successful_payment.telegram_payment_charge_id
    assert charge_id == outcome["telegram_payment_charge_id"]
    [charge] = await client.payments(BOT, user_id=uid)
    assert charge["deliveries"] == 2
    # the user saw one payment message, not two
    history = await client.messages(uid, BOT)
    assert sum(1 for m in history["messages"] if m.get("successful_payment")) == 1


async def test_override_amount_and_currency(bot: Bot, client: EmulatorClient) -> None:
    updates = Updates(bot)
    uid = await _user(client, updates)
    sent = await _stars_invoice(bot, uid)
    paying = asyncio.create_task(
        client.pay(uid, BOT, sent.message_id, override_total_amount=1, override_currency="eur")
    )
    query = await _pre_checkout(updates)
    assert (query.currency, query.total_amount) == ("EUR", 1)
    await bot.answer_pre_checkout_query(query.id, ok=True)
    outcome = await paying
    assert (outcome["currency"], outcome["total_amount"]) == ("EUR", 1)
    message = (await updates.next()).message
    assert message is not None and message.successful_payment is not None
    assert message.successful_payment.total_amount == 1
    [charge] = await client.payments(BOT)
    assert (charge["currency"], charge["total_amount"]) == ("EUR", 1)


async def test_refund_star_payment(bot: Bot, client: EmulatorClient) -> None:
    updates = Updates(bot)
    uid = await _user(client, updates)
    other_uid = await _user(client, updates, "Bob")
    sent = await _stars_invoice(bot, uid, amount=250)
    paying = asyncio.create_task(client.pay(uid, BOT, sent.message_id))
    await bot.answer_pre_checkout_query((await _pre_checkout(updates)).id, ok=True)
    charge_id = (await paying)["telegram_payment_charge_id"]
    await updates.next()  # successful_payment

    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(other_uid, charge_id)  # not this user's charge
    assert await bot.refund_star_payment(uid, charge_id) is True
    refunded = (await updates.next()).message
    assert refunded is not None and refunded.refunded_payment is not None
    rp = refunded.refunded_payment
    assert (rp.currency, rp.total_amount, rp.invoice_payload) == ("XTR", 250, "visit:42")
    assert rp.telegram_payment_charge_id == charge_id
    [charge] = await client.payments(BOT)
    assert charge["status"] == "refunded" and charge["refund_date"] is not None

    with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
        await bot.refund_star_payment(uid, charge_id)
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(uid, "stx-no-such-charge")
    assert await updates.none_left()

    # Provider payments are refunded through the provider, never through the Bot API.
    card = await _card_invoice(bot, uid)
    paying = asyncio.create_task(client.pay(uid, BOT, card.message_id))
    await bot.answer_pre_checkout_query((await _pre_checkout(updates)).id, ok=True)
    card_charge = (await paying)["telegram_payment_charge_id"]
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(uid, card_charge)
    history = await client.messages(uid, BOT)
    stars_invoice = next(m for m in history["messages"] if m["message_id"] == sent.message_id)
    assert stars_invoice["invoice"]["status"] == "refunded"


async def _raw(
    http: aiohttp.ClientSession, emu: BotApiEmulator, method: str, **params: Any
) -> dict[str, Any]:
    async with http.post(f"{emu.base_url}/bot{TOKEN}/{method}", json=params) as resp:
        body: dict[str, Any] = await resp.json()
        assert (resp.status == 200) == body["ok"]
        return body


def _invoice(uid: int, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "chat_id": uid,
        "title": "Consultation",
        "description": "Video consultation",
        "payload": "visit:1",
        "currency": "XTR",
        "prices": [{"label": "Consultation", "amount": 100}],
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "description"),
    [
        ({"title": ""}, "invoice title must be 1-32 characters long"),
        ({"title": "x" * 33}, "invoice title must be 1-32 characters long"),
        ({"description": None}, "invoice description must be 1-255 characters long"),
        ({"description": "d" * 256}, "invoice description must be 1-255 characters long"),
        ({"payload": ""}, "INVOICE_PAYLOAD_INVALID"),
        ({"payload": "é" * 65}, "INVOICE_PAYLOAD_INVALID"),  # 130 bytes
        ({"currency": "eur"}, "CURRENCY_INVALID"),
        ({"provider_token": "TEST:123"}, "PAYMENT_PROVIDER_INVALID"),
        (
            {"prices": [{"label": "a", "amount": 1}, {"label": "b", "amount": 2}]},
            "exactly one price must be specified for payments in Stars",
        ),
        ({"currency": "EUR"}, "PAYMENT_PROVIDER_INVALID"),
        ({"currency": "EUR", "provider_token": " "}, "PAYMENT_PROVIDER_INVALID"),
        ({"prices": []}, "can't parse prices JSON object"),
        ({"prices": [{"amount": 5}]}, "can't parse LabeledPrice JSON object"),
        ({"prices": [{"label": "a", "amount": 0}]}, "CURRENCY_TOTAL_AMOUNT_INVALID"),
        ({"prices": [{"label": "a", "amount": -5}]}, "CURRENCY_TOTAL_AMOUNT_INVALID"),
        ({"prices": [{"label": "a", "amount": 1.5}]}, "CURRENCY_TOTAL_AMOUNT_INVALID"),
        (
            {"reply_markup": {"inline_keyboard": [[{"text": "Info", "callback_data": "i"}]]}},
            "REPLY_MARKUP_BUY_EMPTY",
        ),
        ({"chat_id": 42}, "chat not found"),
    ],
)
async def test_send_invoice_validation(
    emu: BotApiEmulator,
    bot: Bot,
    client: EmulatorClient,
    http: aiohttp.ClientSession,
    changes: dict[str, Any],
    description: str,
) -> None:
    uid = await _user(client, Updates(bot))
    body = await _raw(http, emu, "sendInvoice", **_invoice(uid, **changes))
    assert body == {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}


async def test_send_invoice_with_pay_button_and_photo(
    emu: BotApiEmulator, bot: Bot, client: EmulatorClient
) -> None:
    uid = await _user(client, Updates(bot))
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Pay ⭐ 100", pay=True)],
            [InlineKeyboardButton(text="Cancel", callback_data="cancel")],
        ]
    )
    sent = await bot.send_invoice(
        uid,
        title="Consultation",
        description="Video consultation",
        payload="visit:1",
        currency="XTR",
        prices=[LabeledPrice(label="Consultation", amount=100)],
        photo_url="https://example.org/doctor.png",
        reply_markup=kb,
        protect_content=True,
    )
    assert sent.reply_markup is not None and sent.reply_markup.inline_keyboard[0][0].pay
    assert sent.has_protected_content is True
    shown = await client.wait_for_invoice(uid, BOT, timeout=5)
    assert shown["invoice"]["photo_url"] == "https://example.org/doctor.png"
    assert shown["protect_content"] is True
    assert (await client.stats())["bots"][BOT]["methods"]["sendInvoice"]["ok"] == 1


async def test_updates_validate_with_aiogram_models(
    emu: BotApiEmulator, bot: Bot, client: EmulatorClient, http: aiohttp.ClientSession
) -> None:
    """The raw JSON the emulator produces parses with aiogram's own pydantic models."""
    updates = Updates(bot)
    uid = await _user(client, updates)
    sent = await _raw(http, emu, "sendInvoice", **_invoice(uid, need_name=True))
    assert Message.model_validate(sent["result"]).invoice is not None
    mid = sent["result"]["message_id"]
    paying = asyncio.create_task(client.pay(uid, BOT, mid))
    raw_updates: list[dict[str, Any]] = []

    async def take() -> dict[str, Any]:
        body = await _raw(http, emu, "getUpdates", offset=updates.offset, timeout=5, limit=1)
        [update] = body["result"]
        updates.offset = update["update_id"] + 1
        raw_updates.append(update)
        return update

    query = (await take())["pre_checkout_query"]
    assert set(query) == {
        "id",
        "from",
        "currency",
        "total_amount",
        "invoice_payload",
        "order_info",
    }
    await _raw(http, emu, "answerPreCheckoutQuery", pre_checkout_query_id=query["id"], ok=True)
    charge_id = (await paying)["telegram_payment_charge_id"]
    await take()
    await _raw(http, emu, "refundStarPayment", user_id=uid, telegram_payment_charge_id=charge_id)
    await take()
    parsed = [Update.model_validate(u, context={"bot": bot}) for u in raw_updates]
    assert parsed[0].pre_checkout_query is not None
    assert parsed[0].pre_checkout_query.order_info is not None
    assert parsed[0].pre_checkout_query.order_info.name == "Alice Testpatient"
    assert parsed[1].message is not None and parsed[1].message.successful_payment is not None
    assert parsed[2].message is not None and parsed[2].message.refunded_payment is not None
    assert parsed[2].message.refunded_payment.currency == "XTR"
    # the refund cannot be repeated; unknown charge ids are not found
    again = await http.post(
        f"{emu.base_url}/bot{TOKEN}/refundStarPayment",
        json={"user_id": uid, "telegram_payment_charge_id": charge_id},
    )
    assert (await again.json())["description"] == "Bad Request: CHARGE_ALREADY_REFUNDED"


async def test_client_pay_errors_and_deleted_invoice(
    emu: BotApiEmulator, bot: Bot, client: EmulatorClient, http: aiohttp.ClientSession
) -> None:
    updates = Updates(bot)
    uid = await _user(client, updates)
    text = await bot.send_message(uid, "not an invoice")
    with pytest.raises(EmulatorError, match="is not an invoice"):
        await client.pay(uid, BOT, text.message_id)
    with pytest.raises(EmulatorError, match="message 99 not found"):
        await client.pay(uid, BOT, 99)
    async with http.post(
        f"{emu.base_url}/client/pay",
        json={"user_id": uid, "bot": BOT, "message_id": text.message_id, "tip": 5},
    ) as resp:
        assert resp.status == 400 and "unknown field(s) tip" in (await resp.json())["error"]
    with pytest.raises(EmulatorError, match="three-letter"):
        await client.pay(uid, BOT, text.message_id, override_currency="EURO")
    with pytest.raises(EmulatorError, match="must be positive"):
        await client.set_settings(pre_checkout_timeout_s=0)
    with pytest.raises(EmulatorError, match="unknown user"):
        await client.payments(user_id=5)

    sent = await _stars_invoice(bot, uid)
    await bot.delete_message(uid, sent.message_id)
    outcome = await client.pay(uid, BOT, sent.message_id)
    assert outcome["status"] == "expired"
    assert await updates.none_left()


async def test_dispatcher_pay_journey_with_idempotent_crediting(
    bot: Bot, client: EmulatorClient
) -> None:
    """An aiogram bot as Careline writes it: pre-checkout check, credit once per charge id."""
    dp = Dispatcher()
    credited: dict[str, int] = {}
    deliveries: list[str] = []
    both_delivered = asyncio.Event()
    price = 150

    @dp.message(Command("pay"))
    async def on_pay(message: Message) -> None:
        await message.answer_invoice(
            title="Consultation",
            description="A 20-minute video consultation",
            payload="visit:7",
            currency="XTR",
            prices=[LabeledPrice(label="Consultation", amount=price)],
        )

    @dp.pre_checkout_query()
    async def on_pre_checkout(query: PreCheckoutQuery) -> None:
        if (query.currency, query.total_amount) != ("XTR", price):
            await query.answer(ok=False, error_message="The price has changed.")
        else:
            await query.answer(ok=True)

    @dp.message(F.successful_payment)
    async def on_paid(message: Message) -> None:
        assert message.successful_payment is not None
        charge = message.successful_payment.telegram_payment_charge_id
        deliveries.append(charge)
        if len(deliveries) == 2:
            both_delivered.set()
        if charge in credited:
            return  # a redelivered update: already credited
        credited[charge] = message.successful_payment.total_amount
        await message.answer("Payment received, thank you")

    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        user = await client.create_user("Erin", last_name="Testpatient")
        uid = user["id"]
        await client.send(uid, BOT, "/pay")
        invoice = await client.wait_for_invoice(uid, BOT, timeout=5)
        wrong = await client.pay(uid, BOT, invoice["message_id"], override_total_amount=1)
        assert wrong == {**wrong, "status": "rejected", "error_message": "The price has changed."}
        outcome = await client.pay(uid, BOT, invoice["message_id"], duplicate=True)
        assert outcome["status"] == "paid"
        thanks = await client.wait_for(uid, BOT, "Payment received", timeout=5)
        assert thanks["from"] == "bot"
        await asyncio.wait_for(both_delivered.wait(), 5)
        charge_id = outcome["telegram_payment_charge_id"]
        assert deliveries == [charge_id, charge_id] and credited == {charge_id: price}
    finally:
        await dp.stop_polling()
        await polling
    [charge] = await client.payments(BOT)
    assert charge["deliveries"] == 2
    history = await client.messages(uid, BOT)
    assert [m["text"] for m in history["messages"] if m["from"] == "bot"].count(
        "Payment received, thank you"
    ) == 1
