"""Family caregivers end to end over the Bot API emulator, with the real patient bot: the
patient invites (scope, details, name) and gets a one-time link; the caregiver opens it, reads
the terms in their language, accepts; the patient is told and sees them listed; revoking tells
the caregiver and their old buttons are refused. Also: a link used twice, an expired link, the
patient opening their own link, a malformed token, a link bound with the user picker, the
caregiver's /stop and home message, and the terms and the patient's notice in all three
languages. Texts are checked against the catalog in the reader's language and the database is
checked after the steps that change it."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import Chat
from sqlalchemy import select

from flows import caregivers as flow
from handlers.patient import caregivers as handlers
from locales import Translator
from storage.models import Caregiver, Consent, utcnow
from tests.e2e.conftest import PATIENT_BOT, Clinic
from tests.e2e.test_intake import has_button, new_patient
from tests.e2e.test_onboarding import NAMES

LINK = re.compile(r"https://t\.me/" + PATIENT_BOT + r"\?start=(cg_[A-Za-z0-9_]+)")
EN = Translator("en")


def first(locale: str) -> str:
    return NAMES[locale].split()[0]


def is_text(text: str) -> Any:
    """wait_for predicate: a bot message with exactly this (plain) text."""
    return lambda m: (m.get("text") or "") == text


def starts(prefix: str) -> Any:
    return lambda m: (m.get("text") or "").startswith(prefix)


def offer_text(tr: Translator, patient: str, scope: str, details: bool) -> str:
    return tr.plain(
        "caregivers.offer",
        patient=patient,
        scope=tr.plain(f"caregivers.scope.{scope}"),
        details=tr.plain(
            f"caregivers.offer.details.{'yes' if details else 'no'}", patient=patient
        ),
        emergency_number="112",
    )


async def say(clinic: Clinic, uid: int, text: str, then: Any) -> dict[str, Any]:
    since = await clinic.seq(uid)
    await clinic.client.send(uid, PATIENT_BOT, text)
    return await clinic.client.wait_for(uid, PATIENT_BOT, then, since=since)


async def press(clinic: Clinic, uid: int, label: str, then: Any) -> dict[str, Any]:
    since = await clinic.seq(uid)
    await clinic.client.click_button(uid, PATIENT_BOT, label)
    return await clinic.client.wait_for(uid, PATIENT_BOT, then, since=since)


async def open_link(clinic: Clinic, uid: int, payload: str, then: Any) -> dict[str, Any]:
    since = await clinic.seq(uid)
    await clinic.client.start(uid, PATIENT_BOT, payload)
    return await clinic.client.wait_for(uid, PATIENT_BOT, then, since=since)


async def invite(
    clinic: Clinic,
    uid: int,
    tr: Translator,
    scope: str = "missed",
    details: bool = False,
    name: str | None = "Oskar",
) -> str:
    """/caregivers → Invite → scope → details → name (or Skip); returns the link's payload."""
    await say(clinic, uid, "/caregivers", has_button(tr.plain("caregivers.button.invite")))
    await press(
        clinic,
        uid,
        tr.plain("caregivers.button.invite"),
        is_text(tr.plain("caregivers.invite.ask_scope")),
    )
    await press(
        clinic,
        uid,
        tr.plain(f"caregivers.invite.scope.{scope}"),
        is_text(tr.plain("caregivers.invite.ask_details")),
    )
    await press(
        clinic,
        uid,
        tr.plain(f"caregivers.invite.details.{'yes' if details else 'no'}"),
        is_text(tr.plain("caregivers.invite.ask_name")),
    )
    wants = starts(tr.plain("caregivers.invite.link", until="", link="", pick="")[:20])
    if name is None:
        msg = await press(clinic, uid, tr.plain("caregivers.invite.skip"), wants)
    else:
        msg = await say(clinic, uid, name, wants)
    # The user picker is offered as a reply keyboard (one person, not a bot).
    keyboard = (msg.get("reply_markup") or {}).get("keyboard") or []
    picker = keyboard[0][0]
    assert picker["text"] == tr.plain("caregivers.invite.pick_button")
    assert picker["request_users"]["request_id"] == flow.PICKER_REQUEST_ID
    assert picker["request_users"]["user_is_bot"] is False
    match = LINK.search(msg["text"])
    assert match, msg["text"]
    return match.group(1)


async def caregivers(clinic: Clinic) -> list[Caregiver]:
    async with clinic.app.db.uow() as uow:
        rows = list(await uow.session.scalars(select(Caregiver).order_by(Caregiver.created_at)))
        uow.session.expunge_all()
        return rows


async def last_bot(clinic: Clinic, uid: int) -> dict[str, Any]:
    msgs = (await clinic.client.messages(uid, PATIENT_BOT))["messages"]
    return next(m for m in reversed(msgs) if m["from"] == "bot")


async def test_invite_accept_list_revoke(clinic: Clinic) -> None:
    p = await new_patient(clinic, "en")
    tr = p.tr
    ru = Translator("ru")
    # An empty list first.
    msg = await say(clinic, p.uid, "/caregivers", has_button(tr.plain("caregivers.button.invite")))
    assert tr.plain("caregivers.list.empty") in msg["text"]
    payload = await invite(clinic, p.uid, tr, "missed", False, "Oskar")
    [row] = await caregivers(clinic)
    assert row.status == "invited" and row.tg_user_id is None and row.token_hash
    assert payload[3:] not in row.token_hash  # only the hash is stored

    # The caregiver (not a patient; Telegram in Russian) opens the link and reads the terms.
    carer = await clinic.person("Oskar", "ru")
    label = first("en")
    await open_link(clinic, carer, payload, is_text(offer_text(ru, label, "missed", False)))
    await press(
        clinic,
        carer,
        ru.plain("caregivers.offer.accept"),
        is_text(
            ru.plain(
                "caregivers.accepted", patient=label, scope=ru.plain("caregivers.scope.missed")
            )
        ),
    )
    await clinic.client.wait_for(
        p.uid,
        PATIENT_BOT,
        is_text(
            tr.plain(
                "caregivers.patient.accepted",
                name="Oskar",
                scope=tr.plain("caregivers.scope.missed"),
            )
        ),
        since=0,
    )
    [row] = await caregivers(clinic)
    assert row.status == "active" and row.tg_user_id == carer and row.token_hash is None
    async with clinic.app.db.uow() as uow:
        consents = list(
            await uow.session.scalars(select(Consent).where(Consent.kind == "caregiver"))
        )
        assert [(c.patient_id, c.version, c.decision) for c in consents] == [
            (row.patient_id, "missed", "granted")
        ]
        assert [c.id for c in await flow.for_alert(uow, row.patient_id, "missed")] == [row.id]
        assert await flow.for_alert(uow, row.patient_id, "checkins") == []

    # The link works once: someone else opening it is refused.
    eve = await clinic.person("Eve", "en")
    await open_link(clinic, eve, payload, is_text(EN.plain("caregivers.link.used")))
    # The caregiver opening it again is refused too (it is used).
    await open_link(clinic, carer, payload, is_text(ru.plain("caregivers.link.used")))

    # The caregiver writes anything: their home message, with a Stop button.
    home = await say(
        clinic, carer, "hello", has_button(ru.plain("caregivers.home.stop_button", patient=label))
    )
    assert label in home["text"] and "/stop" in home["text"]

    # The patient lists and revokes.
    msg = await say(
        clinic,
        p.uid,
        "/caregivers",
        has_button(tr.plain("caregivers.button.revoke", name="Oskar")),
    )
    assert "Oskar" in msg["text"] and tr.plain("caregivers.status.active") in msg["text"]
    since = await clinic.seq(carer)
    await press(
        clinic,
        p.uid,
        tr.plain("caregivers.button.revoke", name="Oskar"),
        is_text(tr.plain("caregivers.revoked", name="Oskar")),
    )
    # The caregiver is told, in the language of their messages (the patient's: see flow doc).
    await clinic.client.wait_for(
        carer,
        PATIENT_BOT,
        is_text(tr.plain("caregivers.revoked_notice", patient=label)),
        since=since,
    )
    [row] = await caregivers(clinic)
    assert row.status == "revoked" and row.revoked_at is not None
    # An old button of the revoked caregiver is refused, in their language.
    await press(
        clinic,
        carer,
        ru.plain("caregivers.home.stop_button", patient=label),
        is_text(ru.plain("caregivers.no_longer", patient=label)),
    )
    # Now not a caregiver any more: they are an ordinary newcomer (onboarding is offered).
    msg = await say(clinic, carer, "hello again", lambda m: True)
    assert ru.plain("caregivers.home.own_button") not in str(msg)
    # The patient's list is empty again.
    msg = await say(clinic, p.uid, "/caregivers", has_button(tr.plain("caregivers.button.invite")))
    assert tr.plain("caregivers.list.empty") in msg["text"]


async def test_bad_links(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    p = await new_patient(clinic, "en")
    tr = p.tr
    payload = await invite(clinic, p.uid, tr, "reminders", False, None)
    # The patient opens their own link.
    await open_link(clinic, p.uid, payload, is_text(tr.plain("caregivers.link.self")))
    # Malformed tokens.
    carer = await clinic.person("Ana", "en")
    for bad in ("cg_", "cg_abc", "cg_" + "x" * 60 + "!", "cg_" + "%" * 30):
        await open_link(clinic, carer, bad, is_text(EN.plain("caregivers.link.malformed")))
    # Well-formed but unknown.
    await open_link(clinic, carer, "cg_" + "A" * 32, is_text(EN.plain("caregivers.link.used")))
    # Expired: move the invitation's deadline into the past.
    async with clinic.app.db.uow() as uow:
        row = await uow.session.scalar(select(Caregiver))
        assert row is not None
        row.expires_at = utcnow() - timedelta(minutes=1)
        await uow.commit()
    await open_link(clinic, carer, payload, is_text(EN.plain("caregivers.link.expired")))
    [row] = await caregivers(clinic)
    assert row.status == "expired"
    # An expired invitation is not listed; the patient can invite again.
    msg = await say(clinic, p.uid, "/caregivers", has_button(tr.plain("caregivers.button.invite")))
    assert tr.plain("caregivers.list.empty") in msg["text"]

    # Bound with the user picker: only the picked person may accept.
    payload = await invite(clinic, p.uid, tr, "checkins", True, "Ben")
    ben = await clinic.person("Ben", "en")
    since = await clinic.seq(p.uid)
    await clinic.client.raw(
        PATIENT_BOT,
        {
            "message": {
                "message_id": 999001,
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
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(tr.plain("caregivers.pick.bound", name="Ben")), since=since
    )
    await open_link(clinic, carer, payload, is_text(EN.plain("caregivers.link.other_user")))
    await open_link(clinic, ben, payload, is_text(offer_text(EN, first("en"), "checkins", True)))
    # A forged Accept with someone else's token is refused the same way.
    msg = await last_bot(clinic, ben)
    data = msg["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    since = await clinic.seq(carer)
    await clinic.client.click(carer, PATIENT_BOT, msg["message_id"], data, force=True)
    await clinic.client.wait_for(
        carer, PATIENT_BOT, is_text(EN.plain("caregivers.link.other_user")), since=since
    )
    # Ben declines: the patient is told, the link is dead.
    await press(
        clinic,
        ben,
        EN.plain("caregivers.offer.decline"),
        is_text(EN.plain("caregivers.declined", patient=first("en"))),
    )
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(tr.plain("caregivers.patient.declined", name="Ben")), since=0
    )
    await open_link(clinic, ben, payload, is_text(EN.plain("caregivers.link.used")))
    # "Not now" under the picker removes the keyboard; elsewhere it is ordinary text.
    await invite(clinic, p.uid, tr, "reminders", False, "Cleo")
    await say(
        clinic,
        p.uid,
        tr.plain("caregivers.invite.pick_skip"),
        is_text(tr.plain("caregivers.pick.skipped")),
    )
    msg = await say(clinic, p.uid, tr.plain("caregivers.invite.pick_skip"), lambda m: True)
    assert msg["text"] != tr.plain("caregivers.pick.skipped")
    # A bad name is asked again; the invitation is made once the name is fine.
    await say(clinic, p.uid, "/caregivers", has_button(tr.plain("caregivers.button.invite")))
    await press(
        clinic,
        p.uid,
        tr.plain("caregivers.button.invite"),
        is_text(tr.plain("caregivers.invite.ask_scope")),
    )
    await press(
        clinic,
        p.uid,
        tr.plain("caregivers.invite.scope.missed"),
        is_text(tr.plain("caregivers.invite.ask_details")),
    )
    await press(
        clinic,
        p.uid,
        tr.plain("caregivers.invite.details.no"),
        is_text(tr.plain("caregivers.invite.ask_name")),
    )
    await say(
        clinic,
        p.uid,
        "12345",
        is_text(tr.plain("caregivers.invite.name_invalid", max=flow.NAME_MAX)),
    )
    before = len(await caregivers(clinic))
    await say(clinic, p.uid, "Dora", lambda m: bool(LINK.search(m.get("text") or "")))
    assert len(await caregivers(clinic)) == before + 1
    # Pressing the old Skip afterwards does not make a second invitation.
    await press(
        clinic,
        p.uid,
        tr.plain("caregivers.invite.skip"),
        is_text(tr.plain("caregivers.error.restart")),
    )
    assert len(await caregivers(clinic)) == before + 1


async def test_limit_stop_and_own_use(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    p = await new_patient(clinic, "en")
    tr = p.tr
    label = first("en")
    payloads = [await invite(clinic, p.uid, tr, "reminders", False, f"C{n}") for n in range(5)]
    # The sixth invitation is refused before any question.
    await say(clinic, p.uid, "/caregivers", has_button(tr.plain("caregivers.button.invite")))
    await press(
        clinic,
        p.uid,
        tr.plain("caregivers.button.invite"),
        is_text(tr.plain("caregivers.error.limit", max=flow.MAX_ACTIVE)),
    )
    people = []
    for n, payload in enumerate(payloads[:2]):
        uid = await clinic.person(f"C{n}", "en")
        await open_link(clinic, uid, payload, is_text(offer_text(EN, label, "reminders", False)))
        await press(clinic, uid, EN.plain("caregivers.offer.accept"), starts("Thank you"))
        people.append(uid)
    # /stop by a caregiver: they stop at once, the patient is told.
    since = await clinic.seq(p.uid)
    await say(clinic, people[0], "/stop", is_text(EN.plain("caregivers.stopped", patient=label)))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(tr.plain("caregivers.patient.stopped", name="C0")), since=since
    )
    # /stop again: not a caregiver any more, so it is an unknown command for a newcomer.
    msg = await say(clinic, people[0], "/stop", lambda m: True)
    assert msg["text"] != EN.plain("caregivers.stopped", patient=label)
    # The other caregiver starts using Careline for themselves: the normal onboarding.
    await say(
        clinic,
        people[1],
        "/start",
        has_button(EN.plain("caregivers.home.own_button")),
    )
    await press(
        clinic,
        people[1],
        EN.plain("caregivers.home.own_button"),
        is_text(EN.plain("onboarding.choose_language")),
    )
    # From now on they are a patient in onboarding (messages go there), still a caregiver.
    msg = await say(clinic, people[1], "hello", lambda m: True)
    assert EN.plain("caregivers.home.own_button") not in str(msg)
    async with clinic.app.db.uow() as uow:
        assert [c.tg_user_id for c in await flow.by_user(uow, people[1])] == [people[1]]


@pytest.mark.parametrize("locale", ["en", "zh_Hans", "ru"])
async def test_languages(sqlite_clinic: Clinic, locale: str) -> None:
    clinic = sqlite_clinic
    p = await new_patient(clinic, locale)
    tr = p.tr
    msg = await say(clinic, p.uid, "/caregivers", has_button(tr.plain("caregivers.button.invite")))
    assert msg["text"].startswith(tr.plain("caregivers.list.title")[:10])
    payload = await invite(clinic, p.uid, tr, "checkins", True, None)
    code = {"en": "en", "zh_Hans": "zh-hans", "ru": "ru"}[locale]
    carer = await clinic.person("Lin", code)
    label = first(locale)
    await open_link(clinic, carer, payload, is_text(offer_text(tr, label, "checkins", True)))
    await press(
        clinic,
        carer,
        tr.plain("caregivers.offer.accept"),
        starts(tr.plain("caregivers.accepted", patient="", scope="")[:4]),
    )
    # Skipped name: the caregiver's Telegram first name is used.
    await clinic.client.wait_for(
        p.uid,
        PATIENT_BOT,
        is_text(
            tr.plain(
                "caregivers.patient.accepted",
                name="Lin",
                scope=tr.plain("caregivers.scope.checkins"),
            )
        ),
        since=0,
    )


async def test_naming_expires() -> None:
    """An invitation left at the name question does not take later messages as a name."""
    state = FSMContext(MemoryStorage(), StorageKey(bot_id=1, chat_id=5, user_id=5))
    event = Chat(id=5, type="private")
    assert await handlers.typing_name(event, state) is False
    fresh = {"scope": "missed", "details": False, "at": utcnow().timestamp()}
    await state.update_data({handlers.NAMING: fresh})
    assert await handlers.typing_name(event, state) == {"naming": fresh}
    stale = {**fresh, "at": utcnow().timestamp() - handlers.NAMING_TTL_S - 1}
    await state.update_data({handlers.NAMING: stale})
    assert await handlers.typing_name(event, state) is False


async def test_erasure_tells_caregiver(sqlite_clinic: Clinic) -> None:
    """The patient deletes their data: the active caregiver is told and the rows are gone."""
    clinic = sqlite_clinic
    p = await new_patient(clinic, "ru")
    tr = p.tr
    payload = await invite(clinic, p.uid, tr, "missed", False, "Oskar")
    carer = await clinic.person("Oskar", "en")
    label = first("ru")
    await open_link(clinic, carer, payload, is_text(offer_text(EN, label, "missed", False)))
    await press(clinic, carer, EN.plain("caregivers.offer.accept"), starts("Thank you"))
    stop = EN.plain("caregivers.home.stop_button", patient=label)
    await say(clinic, carer, "hi", has_button(stop))
    await say(clinic, p.uid, "/delete", has_button(tr.plain("delete.confirm.yes")))
    since = await clinic.seq(carer)
    await clinic.client.click_button(p.uid, PATIENT_BOT, tr.plain("delete.confirm.yes"))
    # The caregiver is not a patient, so the message is in the patient's language.
    await clinic.client.wait_for(
        carer, PATIENT_BOT, is_text(tr.plain("caregivers.erased", patient=label)), since=since
    )
    assert await caregivers(clinic) == []
    # Their old Stop button is refused politely (the patient is gone).
    await press(clinic, carer, stop, is_text(EN.plain("caregivers.no_longer_anyone")))
