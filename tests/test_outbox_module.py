"""The neutral outbox module: its callback data packs byte for byte what the handlers' aiogram
filters unpack, its keyboards render as aiogram's do, and :class:`Replier` writes the same
calls whichever kind of keyboard it is given (pure unit tests, no database, no bot)."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.telegram import reply as bot_reply
from flows import outbox
from flows.outbox import Callback, Replier, buttons, markup_json
from handlers.doctor.care import AlertCB
from handlers.patient.caregivers import CgOfferCB, CgStopCB
from handlers.patient.checkins import CheckinCB
from handlers.patient.doses import CareCB, DoseCB
from storage.repositories import QueuedCall

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"  # as long as the ids the buttons carry
HEX = "0f8fad5bd9cb469fa16570867728950e"

# (neutral type, the handler's filter, sample field values)
PAIRS: list[tuple[Callback, type[CallbackData], dict[str, Any]]] = [
    (outbox.ALERT_CB, AlertCB, {"action": "ack", "alert": HEX}),
    (outbox.DOSE_CB, DoseCB, {"a": "t", "d": HEX, "v": 3}),
    (outbox.DOSE_CB, DoseCB, {"a": "s", "d": HEX, "v": 12, "m": 30}),
    (outbox.DOSE_CARE_CB, CareCB, {"a": "checked", "d": HEX}),
    (outbox.CHECKIN_CB, CheckinCB, {"action": "done", "checkin": HEX, "q": 0}),
    (outbox.CHECKIN_CB, CheckinCB, {"action": "opt", "checkin": HEX, "q": 7, "value": "high"}),
    (outbox.CAREGIVER_OFFER_CB, CgOfferCB, {"action": "a", "token": "tok_" + "x" * 20}),
    (outbox.CAREGIVER_STOP_CB, CgStopCB, {"id": ID}),
]


@pytest.mark.parametrize(("neutral", "handler", "values"), PAIRS)
def test_pack_is_byte_identical_to_the_handler_filter(
    neutral: Callback, handler: type[CallbackData], values: dict[str, Any]
) -> None:
    packed = neutral.pack(**values)
    assert packed == handler(**values).pack()
    assert len(packed.encode()) <= outbox.MAX_CALLBACK_BYTES
    assert handler.unpack(packed) == handler(**values)


@pytest.mark.parametrize(
    ("neutral", "handler"),
    list(dict.fromkeys((neutral, handler) for neutral, handler, _ in PAIRS)),
    ids=lambda v: v.prefix if isinstance(v, Callback) else v.__name__,
)
def test_prefix_fields_and_defaults_match_the_handler_filter(
    neutral: Callback, handler: type[CallbackData]
) -> None:
    assert neutral.prefix == handler.__prefix__
    assert neutral.fields == tuple(handler.model_fields)
    defaults = {name: f.default for name, f in handler.model_fields.items() if not f.is_required()}
    assert neutral.defaults == defaults


def test_alert_ack_data_is_the_one_the_doctor_filter_reads() -> None:
    from flows import alerts

    assert alerts.ack_data(HEX) == f"ca:ack:{HEX}" == AlertCB(action="ack", alert=HEX).pack()


def test_pack_refuses_what_aiogram_refuses() -> None:
    with pytest.raises(ValueError, match="':'"):
        outbox.DOSE_CARE_CB.pack(a="a:b", d=HEX)
    with pytest.raises(ValueError, match="longer"):
        outbox.CAREGIVER_STOP_CB.pack(id="x" * 61)
    with pytest.raises(TypeError, match="missing"):
        outbox.ALERT_CB.pack(action="ack")
    with pytest.raises(TypeError, match="unknown"):
        outbox.ALERT_CB.pack(action="ack", alert=HEX, extra=1)
    with pytest.raises(ValueError, match="prefix"):
        Callback("a:b", "x")
    with pytest.raises(ValueError, match="no field"):
        Callback("zz", "x", y=1)


def test_pack_encodes_values_as_aiogram_does() -> None:
    class Probe(CallbackData, prefix="pb"):
        flag: bool
        n: int
        maybe: str | None = None

    neutral = Callback("pb", "flag", "n", "maybe", maybe=None)
    for values in ({"flag": True, "n": -2}, {"flag": False, "n": 0, "maybe": "x"}):
        assert neutral.pack(**values) == Probe(**values).pack()


def test_buttons_render_as_aiogram_keyboards_do() -> None:
    rows = [[("Taken", "dz:t:1:2:0")], [("10", "dz:s:1:2:10"), ("30", "dz:s:1:2:30")]]
    aiogram = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=text, callback_data=data) for text, data in row]
            for row in rows
        ]
    )
    assert buttons(rows) == markup_json(aiogram)
    assert markup_json(buttons(rows)) == buttons(rows)
    assert markup_json(None) is None


class _Outbox:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str, dict[str, Any], int]] = []

    async def enqueue(
        self, bot: str, chat_id: int, method: str, params: dict[str, Any], *, priority: int
    ) -> QueuedCall:
        self.calls.append((bot, chat_id, method, params, priority))
        return QueuedCall(len(self.calls), bot, chat_id, method, priority, None)


class _Uow:
    def __init__(self) -> None:
        self.outbox = _Outbox()


async def test_replier_writes_the_same_call_for_either_keyboard() -> None:
    uow = _Uow()
    reply = Replier(uow, "doctor", 42)  # type: ignore[arg-type]  # only .outbox is used
    rows = [[("Acknowledge", f"ca:ack:{HEX}")]]
    aiogram = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Acknowledge", callback_data=rows[0][0][1])]]
    )
    await reply.text("<b>hi</b>", buttons(rows), protect=True, priority=outbox.PRIORITY_URGENT)
    await reply.text("<b>hi</b>", aiogram, protect=True, priority=outbox.PRIORITY_URGENT)
    first, second = uow.outbox.calls
    assert first == second
    bot, chat, method, params, priority = first
    assert (bot, chat, method, priority) == ("doctor", 42, "sendMessage", 0)
    # key order too: the outbox stores the JSON as written
    assert list(params) == ["chat_id", "text", "parse_mode", "reply_markup", "protect_content"]


async def test_replier_silent_text_and_photo() -> None:
    uow = _Uow()
    reply = Replier(uow, "patient", None)  # type: ignore[arg-type]  # only .outbox is used
    with pytest.raises(ValueError, match="no chat"):
        await reply.text("x")
    await reply.text("x", chat_id=7, silent=True, priority=outbox.PRIORITY_ROUTINE)
    await reply.photo("chart.png", b"\x89PNG", "<i>c</i>", chat_id=7)
    (_, _, _, text, p1), (_, _, method, photo, p2) = uow.outbox.calls
    assert text == {"chat_id": 7, "text": "x", "parse_mode": "HTML", "disable_notification": True}
    assert (p1, method, p2) == (5, "sendPhoto", 3)
    assert photo == {
        "chat_id": 7,
        "photo": {"filename": "chart.png", "data_b64": "iVBORw=="},
        "caption": "<i>c</i>",
        "parse_mode": "HTML",
        "protect_content": True,
    }
    assert list(photo) == ["chat_id", "photo", "caption", "parse_mode", "protect_content"]


def test_priorities_live_in_one_place() -> None:
    assert (outbox.PRIORITY_URGENT, outbox.PRIORITY_REPLY, outbox.PRIORITY_ROUTINE) == (0, 3, 5)
    assert bot_reply.Replier is Replier
    assert bot_reply.PRIORITY_REPLY is outbox.PRIORITY_REPLY
    assert bot_reply.RELAY_METHOD == outbox.RELAY_METHOD == "relayFile"
