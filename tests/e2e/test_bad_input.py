"""Bad and unusual input, end to end: the real bots over HTTP against the Bot API emulator.

Each test checks what the person sees (the texts of ``Translator(locale).plain``), that the
conversation state did not move when it should not, and that no update failed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.sandbox.emulator import BotApiEmulator
from bot.sandbox.emulator_botapi import Params, format_text
from bot.sandbox.emulator_state import BotRecord
from flows.onboarding import CONSENT_VERSION, Step
from locales import Translator
from storage.models import InboxUpdate, OutboxMessage
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic

LANG_BUTTON = {"en": "English", "zh_Hans": "简体中文", "ru": "Русский"}
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
_message_ids = itertools.count(800_000)


# --- helpers -------------------------------------------------------------------------------


async def advance(
    clinic: Clinic, uid: int, locale: str, until: Step, *, name: str = "Alice Testpatient"
) -> None:
    """Take a new person through onboarding until ``until`` is the open question."""
    tr = Translator(locale)

    async def share_phone() -> None:
        since = await clinic.seq(uid)
        await clinic.client.share_contact(uid, PATIENT_BOT, "+15550100777")
        await clinic.client.wait_for(
            uid, PATIENT_BOT, tr.plain("onboarding.ask_timezone"), since=since
        )

    actions: list[tuple[Step, Callable[[], Awaitable[Any]]]] = [
        (Step.LANGUAGE, lambda: clinic.say(uid, "/start")),
        (Step.INTRO, lambda: clinic.press(uid, LANG_BUTTON[locale])),
        (Step.CONSENT, lambda: clinic.press(uid, tr.plain("onboarding.intro.continue"))),
        (Step.NAME, lambda: clinic.press(uid, tr.plain("onboarding.consent.accept"))),
        (Step.BIRTH_YEAR, lambda: clinic.say(uid, name)),
        (Step.SEX, lambda: clinic.say(uid, "1968")),
        (Step.PHONE, lambda: clinic.press(uid, tr.plain("sex.female"))),
        (Step.TIMEZONE, share_phone),
        (Step.DONE, lambda: clinic.say(uid, "+3")),
    ]
    for step, action in actions:
        await action()
        if step is until:
            break
    assert await state_of(clinic, uid) == until.value


async def state_of(clinic: Clinic, uid: int) -> str | None:
    """The person's onboarding step in the database (None: no patient record)."""
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        return patient.onboarding_state if patient else None


async def profile_of(clinic: Clinic, uid: int) -> dict[str, str | None]:
    """The person's decrypted profile."""
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        assert patient is not None
        return await uow.patients.profile(patient)


async def replies(
    clinic: Clinic, uid: int, since: int, count: int, bot: str = PATIENT_BOT
) -> list[str]:
    """The texts of the next ``count`` bot messages after ``since``."""
    texts = []
    for _ in range(count):
        msg = await clinic.client.wait_for(uid, bot, since=since)
        texts.append(msg.get("text") or msg.get("caption") or "")
        since = msg["seq"]
    return texts


async def settled(clinic: Clinic, role: str, update_id: int) -> str:
    """Wait until the update is processed and every queued call made; returns its status."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with clinic.app.db.uow() as uow:
            status = await uow.session.scalar(
                select(InboxUpdate.status).where(
                    InboxUpdate.bot == role, InboxUpdate.update_id == update_id
                )
            )
            queued = await uow.session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(("pending", "sending")))
            )
        if status not in (None, "pending") and not queued:
            return str(status)
        await asyncio.sleep(0.05)
    raise TimeoutError(f"update {update_id} of the {role} bot was not processed in 10 s")


async def bot_messages_since(
    clinic: Clinic, uid: int, since: int, bot: str = PATIENT_BOT
) -> list[dict[str, Any]]:
    """Bot messages in the person's chat after ``since``."""
    history = await clinic.client.messages(uid, bot, since=since)
    return [m for m in history["messages"] if m["from"] == "bot"]


async def outbox_rows_for(clinic: Clinic, chat_id: int) -> int:
    """How many calls were ever queued for a chat."""
    async with clinic.app.db.uow() as uow:
        return int(
            await uow.session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.chat_id == chat_id)
            )
            or 0
        )


def person(uid: int, language_code: str = "en", *, is_bot: bool = False) -> dict[str, Any]:
    """A Telegram User object."""
    return {"id": uid, "is_bot": is_bot, "first_name": "Pat", "language_code": language_code}


def message(chat: dict[str, Any], sender: dict[str, Any], **content: Any) -> dict[str, Any]:
    """A raw ``message`` update (for what the client API has no action for)."""
    return {
        "message": {
            "message_id": next(_message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
            **content,
        }
    }


def private(uid: int) -> dict[str, Any]:
    return {"id": uid, "type": "private", "first_name": "Pat"}


STICKER = {
    "file_id": "CAACAgIAAxkBAAEBsticker",
    "file_unique_id": "AgADsticker",
    "type": "regular",
    "width": 512,
    "height": 512,
    "is_animated": False,
    "is_video": False,
    "emoji": "🙂",
}


class GroupChats:
    """The emulator has private chats only; this lets the bots send to group chats (negative
    ids): the call is validated like sendMessage (HTML, length) and its text recorded."""

    def __init__(self, emulator: BotApiEmulator) -> None:
        self.sent: dict[int, list[str]] = defaultdict(list)
        handlers = emulator.methods.handlers
        private_send = handlers["sendmessage"]

        async def send_message(bot: BotRecord, p: Params) -> Any:
            chat_id = p.get_int("chat_id")
            if chat_id is None or chat_id >= 0:
                return await private_send(bot, p)
            text, _ = format_text(p.get_str("text"), p.get_str("parse_mode"), None)
            self.sent[chat_id].append(text)
            return {
                "message_id": len(self.sent[chat_id]),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "supergroup", "title": "Family"},
                "text": text,
            }

        handlers["sendmessage"] = send_message


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "locale", "step", "question"),
    [
        ("sticker", "ru", Step.NAME, "onboarding.ask_name"),
        ("location", "zh_Hans", Step.CONSENT, "onboarding.consent"),
        ("photo", "en", Step.PHONE, "onboarding.ask_phone"),
    ],
)
async def test_unsupported_content_repeats_the_question(
    clinic: Clinic, kind: str, locale: str, step: Step, question: str
) -> None:
    uid = await clinic.person("Sam", "en")
    await advance(clinic, uid, locale, step)
    tr = Translator(locale)
    since = await clinic.seq(uid)
    if kind == "sticker":
        await clinic.client.raw(PATIENT_BOT, message(private(uid), person(uid), sticker=STICKER))
    elif kind == "location":
        await clinic.client.send_location(uid, PATIENT_BOT, 55.75, 37.61)
    else:
        await clinic.client.send_photo(uid, PATIENT_BOT, PNG, "rash.png", caption="<b>look</b>")
    expected_question = tr.plain(question, version=CONSENT_VERSION)
    assert await replies(clinic, uid, since, 2) == [
        tr.plain("error.unsupported_content"),
        expected_question,
    ]
    assert await state_of(clinic, uid) == step.value
    assert clinic.app.processor.failed == 0


async def test_overlong_and_invisible_names_are_refused(clinic: Clinic) -> None:
    uid = await clinic.person("Nia", "en")
    await advance(clinic, uid, "en", Step.NAME)
    tr = Translator("en")
    refused = tr.plain("error.name_invalid", max=100)
    # 5,000 characters: more than Telegram lets a person send, so it comes as a raw update.
    since = await clinic.seq(uid)
    await clinic.client.raw(PATIENT_BOT, message(private(uid), person(uid), text="N" * 5000))
    assert await replies(clinic, uid, since, 1) == [refused]
    # Only direction marks, zero-width and control characters: nothing a name is made of.
    for invisible in ("\u202e\u200f\u200e", "\u200b\u200d\ufeff\u2066", "\x07\x1b\u202e"):
        assert (await clinic.say(uid, invisible))["text"] == refused
    assert await state_of(clinic, uid) == Step.NAME.value
    assert (await profile_of(clinic, uid))["name"] is None
    # The question is still open and a real name is taken.
    assert (await clinic.say(uid, "Nia Example"))["text"] == tr.plain("onboarding.ask_birth_year")
    assert clinic.app.processor.failed == 0


async def test_html_in_a_name_is_stored_and_shown_literally(clinic: Clinic) -> None:
    uid = await clinic.person("Bo", "en")
    name = "<b>&amp;</b>"
    tr = Translator("en")
    await advance(clinic, uid, "en", Step.TIMEZONE, name=name)
    done = await clinic.say(uid, "+3")
    # The emulator parses the HTML like Telegram: a broken escape would fail the send or turn
    # the name bold; the person sees exactly what they typed.
    assert done["text"] == tr.plain("onboarding.done", name=name)
    assert name in done["text"]
    assert (await profile_of(clinic, uid))["name"] == name
    profile = await clinic.say(uid, "/profile")
    assert name in profile["text"]
    assert profile["text"] == tr.plain(
        "profile.view",
        name=name,
        birth_year="1968",
        sex=tr.plain("sex.female"),
        phone="+15550100777",
        timezone="Etc/GMT-3",
        language=tr.plain("language.name"),
    )
    start = profile["text"].index(name)
    for entity in profile.get("entities") or []:
        assert entity["offset"] + entity["length"] <= start or entity["offset"] >= start + len(
            name
        ), f"the name is formatted: {entity}"
    assert clinic.app.processor.failed == 0


async def test_group_chats_get_a_pointer_to_a_private_chat_and_nothing_else(
    clinic: Clinic,
) -> None:
    groups = GroupChats(clinic.emulator)
    uid = await clinic.person("Gus", "ru")
    group = {"id": -1_001_234_567_890, "type": "supergroup", "title": "Family <&>"}
    small_group = {"id": -4_000_123, "type": "group", "title": "Friends"}
    helper_bot = person(5_000_000_001, is_bot=True)
    commands = [
        (PATIENT_BOT, message(group, person(uid, "ru"), text="/start")),
        (PATIENT_BOT, message(small_group, person(uid, "ru"), text="/help@careline_patient_bot")),
        (DOCTOR_BOT, message(group, person(uid, "ru"), text="/start")),
    ]
    ignored = [
        (PATIENT_BOT, message(group, person(uid, "ru"), text="Hello everyone, I'm Gus, 1968")),
        (PATIENT_BOT, message(group, person(uid, "ru"), sticker=STICKER)),
        (PATIENT_BOT, message(group, helper_bot, text="/start")),
        (PATIENT_BOT, message(group, person(uid, "ru"), new_chat_members=[person(uid, "ru")])),
        (DOCTOR_BOT, message(small_group, person(uid, "ru"), text="doctor?")),
    ]
    for bot, update in commands + ignored:
        update_id = (await clinic.client.raw(bot, update))["update_id"]
        role = "patient" if bot == PATIENT_BOT else "doctor"
        assert await settled(clinic, role, update_id) == "done"
    pointer = Translator("ru").plain("group.not_supported")
    assert groups.sent == {group["id"]: [pointer, pointer], small_group["id"]: [pointer]}
    # Nothing was said privately and no patient record was made from a group.
    assert await bot_messages_since(clinic, uid, 0) == []
    assert await state_of(clinic, uid) is None
    assert clinic.app.processor.failed == 0


async def test_edited_message_is_ignored(clinic: Clinic) -> None:
    uid = await clinic.person("Eda", "en")
    await advance(clinic, uid, "en", Step.NAME)
    sent = await clinic.client.send(uid, PATIENT_BOT, "Eda Original")
    await clinic.client.wait_for(
        uid, PATIENT_BOT, Translator("en").plain("onboarding.ask_birth_year")
    )
    since = await clinic.seq(uid)
    edit = await clinic.client.edit(uid, PATIENT_BOT, sent["message"]["message_id"], "Bob Edited")
    assert await settled(clinic, "patient", edit["update_id"]) == "done"
    assert await bot_messages_since(clinic, uid, since) == []
    assert await state_of(clinic, uid) == Step.BIRTH_YEAR.value
    assert (await profile_of(clinic, uid))["name"] == "Eda Original"
    assert clinic.app.processor.failed == 0


async def test_start_with_an_overlong_or_foreign_payload_works_like_start(clinic: Clinic) -> None:
    uid = await clinic.person("Pia", "zh-hans")
    tr = Translator("zh_Hans")
    since = await clinic.seq(uid)
    await clinic.client.start(uid, PATIENT_BOT, "ref_" + "x" * 3000)
    assert await replies(clinic, uid, since, 1) == [tr.plain("onboarding.choose_language")]
    assert await state_of(clinic, uid) == Step.LANGUAGE.value
    await clinic.press(uid, LANG_BUTTON["zh_Hans"])
    # Mid-onboarding, any payload resumes where the person left off.
    for payload in ("漢字-Ωmega-\u202eflipped", "<b>&</b>", "../../etc/passwd", "%00%FF"):
        since = await clinic.seq(uid)
        await clinic.client.start(uid, PATIENT_BOT, payload)
        assert await replies(clinic, uid, since, 2) == [
            tr.plain("onboarding.resume"),
            tr.plain("onboarding.intro", emergency_number="112"),
        ]
    assert await state_of(clinic, uid) == Step.INTRO.value
    assert clinic.app.processor.failed == 0


async def test_messages_from_bots_are_ignored(clinic: Clinic) -> None:
    uid = await clinic.person("Ola", "en")
    helper = 5_000_000_002
    for bot in (PATIENT_BOT, DOCTOR_BOT):
        role = "patient" if bot == PATIENT_BOT else "doctor"
        for text in ("/start", "hello", "/delete"):
            update = message(private(helper), person(helper, is_bot=True), text=text)
            update_id = (await clinic.client.raw(bot, update))["update_id"]
            assert await settled(clinic, role, update_id) == "done"
        # A bot's message can also claim a person's private chat: still ignored.
        update = message(private(uid), person(uid, is_bot=True), text="/start")
        update_id = (await clinic.client.raw(bot, update))["update_id"]
        assert await settled(clinic, role, update_id) == "done"
    assert await outbox_rows_for(clinic, helper) == 0
    assert await outbox_rows_for(clinic, uid) == 0
    assert await state_of(clinic, helper) is None
    assert await state_of(clinic, uid) is None
    assert clinic.app.processor.failed == 0


async def test_forwarded_message_is_handled_like_any_message(clinic: Clinic) -> None:
    uid = await clinic.person("Fay", "ru")
    tr = Translator("ru")
    await advance(clinic, uid, "ru", Step.BIRTH_YEAR)
    origin = {"type": "hidden_user", "date": int(time.time()) - 3600, "sender_user_name": "Mum"}
    since = await clinic.seq(uid)
    await clinic.client.raw(
        PATIENT_BOT,
        message(private(uid), person(uid, "ru"), text="1970", forward_origin=origin),
    )
    assert await replies(clinic, uid, since, 1) == [tr.plain("onboarding.ask_sex")]
    assert (await profile_of(clinic, uid))["birth_year"] == "1970"
    # A forwarded sticker is a sticker.
    since = await clinic.seq(uid)
    await clinic.client.raw(
        PATIENT_BOT,
        message(private(uid), person(uid, "ru"), sticker=STICKER, forward_origin=origin),
    )
    assert await replies(clinic, uid, since, 2) == [
        tr.plain("error.unsupported_content"),
        tr.plain("onboarding.ask_sex"),
    ]
    assert await state_of(clinic, uid) == Step.SEX.value
    assert clinic.app.processor.failed == 0


async def test_unknown_command_is_not_understood(clinic: Clinic) -> None:
    uid = await clinic.person("Uma", "en")
    tr = Translator("en")
    await advance(clinic, uid, "en", Step.CONSENT)
    consent = tr.plain("onboarding.consent", version=CONSENT_VERSION)
    for command in ("/foo", "/foo@careline_patient_bot with arguments", "/help_me please"):
        since = await clinic.seq(uid)
        await clinic.client.send(uid, PATIENT_BOT, command)
        assert await replies(clinic, uid, since, 2) == [tr.plain("error.not_understood"), consent]
    assert await state_of(clinic, uid) == Step.CONSENT.value
    # Once onboarded, only the hint: there is no question to repeat.
    done = await clinic.person("Ugo", "en")
    await advance(clinic, done, "en", Step.DONE)
    since = await clinic.seq(done)
    await clinic.client.send(done, PATIENT_BOT, "/foo bar")
    assert await replies(clinic, done, since, 1) == [tr.plain("error.not_understood")]
    assert await state_of(clinic, done) == Step.DONE.value
    assert clinic.app.processor.failed == 0
