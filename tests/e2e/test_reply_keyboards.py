"""Reply keyboards go away once their question is answered, end to end over the Bot API
emulator with the real patient bot: the caregiver invitation's user picker ("Choose the
person" / "Not now") is removed after "Not now", after a person is picked, and when the
patient leaves the question (a command, other words) — then the message still reaches its
own handler, and the closing line comes once. The phone request of onboarding is removed
once the number is shared. Checked on the bot's recorded reply_markup and on the keyboard
the emulator shows the person."""

from __future__ import annotations

import time
from typing import Any

from flows import caregivers as flow
from locales import Translator
from tests.e2e.conftest import PATIENT_BOT, Clinic
from tests.e2e.test_caregivers import invite, is_text
from tests.e2e.test_intake import has_button, new_patient
from tests.e2e.test_onboarding import to_timezone_step

REMOVE = {"remove_keyboard": True}


async def _shown(clinic: Clinic, uid: int) -> dict[str, Any] | None:
    """The reply keyboard the emulator shows the person now."""
    keyboard: dict[str, Any] | None = (await clinic.client.messages(uid, PATIENT_BOT))[
        "reply_keyboard"
    ]
    return keyboard


async def _picker_up(clinic: Clinic, uid: int, tr: Translator, name: str) -> None:
    await invite(clinic, uid, tr, "reminders", False, name)
    shown = await _shown(clinic, uid)
    assert shown is not None
    assert shown["keyboard"][0][0]["text"] == tr.plain("caregivers.invite.pick_button")


async def _bot_messages(clinic: Clinic, uid: int, since: int) -> list[dict[str, Any]]:
    history = await clinic.client.messages(uid, PATIENT_BOT, since=since)
    return [m for m in history["messages"] if m["from"] == "bot"]


async def test_the_user_picker_is_removed_once_answered(clinic: Clinic) -> None:
    p = await new_patient(clinic, "en")
    tr = p.tr

    # "Not now": the answer carries the removal.
    await _picker_up(clinic, p.uid, tr, "Cleo")
    since = await clinic.seq(p.uid)
    await clinic.client.reply_button(p.uid, PATIENT_BOT, tr.plain("caregivers.invite.pick_skip"))
    skipped = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(tr.plain("caregivers.pick.skipped")), since=since
    )
    assert skipped["reply_markup"] == REMOVE
    assert await _shown(clinic, p.uid) is None

    # A person picked with Telegram's picker: removed too.
    await _picker_up(clinic, p.uid, tr, "Ben")
    ben = await clinic.person("Ben", "en")
    since = await clinic.seq(p.uid)
    await clinic.client.raw(
        PATIENT_BOT,
        {
            "message": {
                "message_id": 999101,
                "date": int(time.time()),
                "chat": {"id": p.uid, "type": "private", "first_name": "Tester"},
                "from": {"id": p.uid, "is_bot": False, "first_name": "Tester"},
                "users_shared": {
                    "request_id": flow.PICKER_REQUEST_ID,
                    "users": [{"user_id": ben, "first_name": "Ben"}],
                },
            }
        },
    )
    bound = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(tr.plain("caregivers.pick.bound", name="Ben")), since=since
    )
    assert bound["reply_markup"] == REMOVE
    assert await _shown(clinic, p.uid) is None  # the raw update leaves it to the bot


async def test_leaving_the_user_picker_removes_it_and_the_message_goes_on(
    clinic: Clinic,
) -> None:
    p = await new_patient(clinic, "ru")
    tr = p.tr
    closed = tr.plain("caregivers.pick.closed")

    # A command instead of an answer: the picker goes, the command is answered as usual.
    await _picker_up(clinic, p.uid, tr, "Oskar")
    since = await clinic.seq(p.uid)
    await clinic.client.send(p.uid, PATIENT_BOT, "/caregivers")
    listing = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(tr.plain("caregivers.button.invite")), since=since
    )
    texts = await _bot_messages(clinic, p.uid, since)
    assert [m["text"] for m in texts][:1] == [closed]
    assert texts[0]["reply_markup"] == REMOVE
    assert listing["message_id"] > texts[0]["message_id"]
    assert await _shown(clinic, p.uid) is None
    # Asked once: the next message gets no second closing line.
    since = await clinic.seq(p.uid)
    await clinic.client.send(p.uid, PATIENT_BOT, "/caregivers")
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(tr.plain("caregivers.button.invite")), since=since
    )
    assert closed not in [m["text"] for m in await _bot_messages(clinic, p.uid, since)]
    # "Not now" typed after the picker is gone is ordinary words, not the picker's answer.
    since = await clinic.seq(p.uid)
    await clinic.client.send(p.uid, PATIENT_BOT, tr.plain("caregivers.invite.pick_skip"))
    reply = await clinic.client.wait_for(p.uid, PATIENT_BOT, since=since)
    assert reply["text"] not in (closed, tr.plain("caregivers.pick.skipped"))

    # Other words instead of an answer: the same, and they are still answered.
    await _picker_up(clinic, p.uid, tr, "Vera")
    since = await clinic.seq(p.uid)
    await clinic.client.send(p.uid, PATIENT_BOT, "Спасибо!")
    await clinic.client.wait_for(p.uid, PATIENT_BOT, lambda m: m.get("text") != closed, since)
    texts = await _bot_messages(clinic, p.uid, since)
    assert texts[0]["text"] == closed and texts[0]["reply_markup"] == REMOVE
    assert len(texts) >= 2
    assert await _shown(clinic, p.uid) is None


async def test_the_phone_request_is_removed_once_the_number_is_shared(clinic: Clinic) -> None:
    uid = await clinic.person("Tester", "en")
    ask_zone = await to_timezone_step(clinic, uid, "en")
    assert ask_zone["text"] == Translator("en").plain("onboarding.ask_timezone")
    assert await _shown(clinic, uid) is None
    history = await clinic.client.messages(uid, PATIENT_BOT)
    removals = [m for m in history["messages"] if m.get("reply_markup") == REMOVE]
    assert removals, "the phone keyboard was never removed"
