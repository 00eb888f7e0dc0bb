"""Media in a consultation that cannot be passed on, over the emulator with both real bots.

What tests/e2e/test_relay.py and tests/e2e/test_consultation.py already cover is not repeated
here: files that do reach the other side, the sender's failures on files Telegram refuses
(getFile/upload errors in the outbox), ``check_size`` itself, and an English text after a
close from either side. This file covers what the handlers must stop before anything is
queued:

- a photo, document or voice note over Telegram's limits (a bot downloads up to 20 MB and
  uploads photos up to 10 MB), from the patient and from the doctor. The size is declared in
  the update (``file_size``), as Telegram does, so these are raw updates;
- media that can't be relayed (a sticker, a video note, a location) from either side;
- a patient's file after the case closed or was ended as not suitable online, and a doctor's
  file or /close replying to a message of such a case.

Each case: the sender gets a clear answer in their own language, nothing reaches the other
side (their chat and the outbox), and nothing is recorded as a case message. The patients
write in Chinese and Russian, the doctor in Russian.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from locales import Translator
from storage.models import CaseMessage, Consultation, OutboxMessage
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import Doc, add_doctor, consult, is_text, starts
from tests.e2e.test_intake import Patient, new_patient
from tests.e2e.test_onboarding import NAMES

pytestmark = pytest.mark.asyncio(loop_scope="module")

MB = 1024 * 1024
LOCALE_CODE = {"en": "en", "ru": "ru", "zh_Hans": "zh-hans"}


@dataclass
class Side:
    """One party of a case: who, in which bot, in which language."""

    uid: int
    bot: str
    tr: Translator

    def t(self, msgid: str, **params: Any) -> str:
        return self.tr.plain(msgid, **params)


@dataclass
class World:
    clinic: Clinic
    doctor: Side
    patient: Side  # the active case's patient (Chinese)
    active: int  # case numbers
    closed_patient: Side  # a patient whose case the doctor closed with advice (Russian)
    closed: int
    ended_patient: Side  # a patient whose case was ended as not suitable online (Chinese)
    ended: int
    raw_ids: int = 800_000


async def _drained(clinic: Clinic, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        async with clinic.app.db.uow() as uow:
            left = await uow.session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == "pending")
            )
        if not left:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{left} outbox rows still pending")
        clinic.app.sender.poke()
        await asyncio.sleep(0.05)


async def _state_of(clinic: Clinic, uid: int) -> str:
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        assert patient is not None
        [case, *_] = await uow.consultations.for_patient(patient.id)
        return str(case.state)


async def _accept(doc: Doc, p: Patient, number: int, locale: str) -> None:
    await doc.accept(number, NAMES[locale].split()[0])
    await doc.clinic.client.wait_for(p.uid, PATIENT_BOT, starts(f"#{number}"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    clinic, schema = await start_clinic(tmp_path_factory.mktemp("media"), "sqlite", io.StringIO())
    try:
        doc = await add_doctor(clinic, "Dr Olga Frost", departments="general", locale="ru")
        closed_p = await new_patient(clinic, "ru")
        ended_p = await new_patient(clinic, "zh_Hans")
        p = await new_patient(clinic, "zh_Hans")
        n_closed = await consult(closed_p)
        n_ended = await consult(ended_p)
        n_active = await consult(p)
        # One case closed with advice, one ended as not suitable online, one active (the
        # doctor's current case, accepted last).
        await _accept(doc, closed_p, n_closed, "ru")
        name = NAMES["ru"].split()[0]
        await doc.say(
            "/close", is_text(doc.t("consult.doctor.close_ask", number=n_closed, name=name))
        )
        await doc.say(
            "Пейте больше жидкости", is_text(doc.t("consult.doctor.closed", number=n_closed))
        )
        await _accept(doc, ended_p, n_ended, "zh_Hans")
        await doc.say("/terminate", is_text(doc.t("consult.doctor.terminated", number=n_ended)))
        await _accept(doc, p, n_active, "zh_Hans")
        assert await _state_of(clinic, closed_p.uid) == "closed"
        assert await _state_of(clinic, ended_p.uid) == "terminated"
        assert await _state_of(clinic, p.uid) == "active"
        await _drained(clinic)
        yield World(
            clinic=clinic,
            doctor=Side(doc.uid, DOCTOR_BOT, doc.tr),
            patient=Side(p.uid, PATIENT_BOT, p.tr),
            active=n_active,
            closed_patient=Side(closed_p.uid, PATIENT_BOT, closed_p.tr),
            closed=n_closed,
            ended_patient=Side(ended_p.uid, PATIENT_BOT, ended_p.tr),
            ended=n_ended,
        )
    finally:
        await stop_clinic(clinic, schema)


# --- messages the client cannot send: raw updates ---------------------------------------------


def media(kind: str, size: int, n: int) -> dict[str, Any]:
    """The message fields of one kind of media, with a declared ``file_size``."""
    ids = {"file_id": f"BQACdeclared{kind}{n:06d}", "file_unique_id": f"AgADdecl{n:06d}"}
    if kind == "photo":
        sizes = [
            {**ids, "file_id": f"AgACsmall{n:06d}", "width": 90, "height": 90, "file_size": 2048},
            {
                **ids,
                "file_id": f"AgACbig{n:06d}",
                "width": 4000,
                "height": 3000,
                "file_size": size,
            },
        ]
        return {"photo": sizes}
    if kind == "document":
        return {
            "document": {
                **ids,
                "file_name": "ct-scan.pdf",
                "mime_type": "application/pdf",
                "file_size": size,
            }
        }
    if kind == "voice":
        return {"voice": {**ids, "duration": 600, "mime_type": "audio/ogg", "file_size": size}}
    if kind == "sticker":
        sticker = {"type": "regular", "width": 512, "height": 512, "is_animated": False}
        return {"sticker": {**ids, **sticker, "is_video": False, "file_size": size}}
    if kind == "video_note":
        return {"video_note": {**ids, "length": 240, "duration": 5, "file_size": size}}
    raise ValueError(kind)


async def raw_message(w: World, side: Side, **content: Any) -> None:
    """A message from ``side`` to its bot as a raw update."""
    w.raw_ids += 1
    code = LOCALE_CODE.get(side.tr.locale, "en")
    user = {"id": side.uid, "is_bot": False, "first_name": "Tester", "language_code": code}
    message = {
        "message_id": w.raw_ids,
        "date": int(time.time()),
        "chat": {"id": side.uid, "type": "private", "first_name": "Tester"},
        "from": user,
        **content,
    }
    await w.clinic.client.raw(side.bot, {"message": message})


async def reply_to_case(w: World, number: int) -> dict[str, Any]:
    """The newest real bot message in the doctor's chat tagged with case #number, as
    Telegram puts it in ``reply_to_message``."""
    msgs = (await w.clinic.client.messages(w.doctor.uid, DOCTOR_BOT))["messages"]
    for m in reversed(msgs):
        if m["from"] == "bot" and (m.get("text") or "").startswith(f"#{number} "):
            return {
                "message_id": m["message_id"],
                "date": m["date"],
                "chat": {"id": w.doctor.uid, "type": "private", "first_name": "Tester"},
                "from": {"id": 100002, "is_bot": True, "first_name": "Careline Doctors"},
                "text": m["text"],
            }
    raise LookupError(f"no message of case #{number} in the doctor's chat")


# --- checks ----------------------------------------------------------------------------------


async def case_messages(w: World) -> int:
    async with w.clinic.app.db.uow() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(CaseMessage)) or 0)


async def case_states(w: World) -> dict[int, tuple[str, str | None]]:
    async with w.clinic.app.db.uow() as uow:
        rows = await uow.session.scalars(select(Consultation))
        return {c.number: (c.state, c.doctor_id) for c in rows}


async def outbox_head(w: World) -> int:
    async with w.clinic.app.db.uow() as uow:
        return int(await uow.session.scalar(select(func.max(OutboxMessage.id))) or 0)


async def outbox_to(w: World, side: Side, after: int) -> list[str]:
    bot = "patient" if side.bot == PATIENT_BOT else "doctor"
    async with w.clinic.app.db.uow() as uow:
        rows = await uow.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.id > after,
                OutboxMessage.bot == bot,
                OutboxMessage.chat_id == side.uid,
            )
        )
        return [r.method for r in rows]


async def refused(w: World, sender: Side, others: list[Side], expected: str, send: Any) -> None:
    """``send()`` is answered with exactly ``expected`` (in the sender's language); nothing
    reaches ``others`` and no case message or state change is recorded."""
    clinic = w.clinic
    seq = await clinic.seq(sender.uid, sender.bot)
    since = {id(o): await clinic.seq(o.uid, o.bot) for o in others}
    messages, states, outbox = await case_messages(w), await case_states(w), await outbox_head(w)
    await send()
    try:
        got = await clinic.client.wait_for(sender.uid, sender.bot, since=seq, timeout=5)
    except TimeoutError:
        got = {"text": "<silence>"}
    await _drained(clinic)
    problems = []
    text = got.get("text") or got.get("caption") or ""
    if text != expected:
        problems.append(f"answer: expected {expected!r}, got {text!r}")
    for o in others:
        leaked = await outbox_to(w, o, outbox)
        new = await clinic.client.messages(o.uid, o.bot, since=since[id(o)])
        shown = [m.get("text") or m.get("caption") for m in new["messages"] if m["from"] == "bot"]
        if leaked or shown:
            problems.append(f"reached {o.bot} user {o.uid}: outbox {leaked}, chat {shown!r}")
    if await case_messages(w) != messages:
        problems.append("a case message was recorded")
    if await case_states(w) != states:
        problems.append(f"a case changed: {states} -> {await case_states(w)}")
    assert not problems, "\n".join(problems)


# --- over the limits -------------------------------------------------------------------------

OVERSIZE = [
    pytest.param("photo", 10 * MB + 1, id="photo-over-10MB-upload"),
    pytest.param("photo", 25 * MB, id="photo-25MB"),
    pytest.param("document", 20 * MB + 1, id="document-over-20MB"),
    pytest.param("voice", 25 * MB, id="voice-25MB"),
]


@pytest.mark.parametrize(("kind", "size"), OVERSIZE)
async def test_patient_file_over_the_limit(world: World, kind: str, size: int) -> None:
    w = world
    await refused(
        w,
        w.patient,
        [w.doctor],
        w.patient.t("relay.too_big"),
        lambda: raw_message(w, w.patient, **media(kind, size, w.raw_ids), caption="скан"),
    )


@pytest.mark.parametrize(("kind", "size"), OVERSIZE)
async def test_doctor_file_over_the_limit(world: World, kind: str, size: int) -> None:
    """To the current case, and as a reply to a message of the case."""
    w = world
    for reply in (None, await reply_to_case(w, w.active)):
        extra = {"reply_to_message": reply} if reply else {}
        await refused(
            w,
            w.doctor,
            [w.patient],
            w.doctor.t("relay.too_big"),
            lambda extra=extra: raw_message(
                w, w.doctor, **media(kind, size, w.raw_ids), caption="Результаты", **extra
            ),
        )


# --- media that can't be relayed -----------------------------------------------------------------

UNSUPPORTED = ["sticker", "video_note", "location"]


async def _send_unsupported(w: World, side: Side, kind: str) -> None:
    if kind == "location":
        await w.clinic.client.send_location(side.uid, side.bot, 55.75, 37.62)
        return
    await raw_message(w, side, **media(kind, 40_000, w.raw_ids))


@pytest.mark.parametrize("kind", UNSUPPORTED)
async def test_patient_unsupported_media_in_an_active_case(world: World, kind: str) -> None:
    """The patient is told what can be sent to the doctor (relay.unsupported names stickers,
    video messages and locations), not a generic "text and buttons only"."""
    w = world
    await refused(
        w,
        w.patient,
        [w.doctor],
        w.patient.t("relay.unsupported"),
        lambda: _send_unsupported(w, w.patient, kind),
    )


@pytest.mark.parametrize("kind", UNSUPPORTED)
async def test_doctor_unsupported_media_in_an_active_case(world: World, kind: str) -> None:
    """A verified doctor with a current case is told the kind can't be passed on (not the
    "send /start to apply" help text)."""
    w = world
    await refused(
        w,
        w.doctor,
        [w.patient],
        w.doctor.t("relay.unsupported"),
        lambda: _send_unsupported(w, w.doctor, kind),
    )


# --- after the end -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["photo", "document", "voice"])
async def test_patient_file_after_the_case_closed(world: World, kind: str) -> None:
    w = world
    for side, number in ((w.closed_patient, w.closed), (w.ended_patient, w.ended)):
        await refused(
            w,
            side,
            [w.doctor],
            side.t("consult.closed_case", number=number),
            lambda side=side: raw_message(w, side, **media(kind, 50_000, w.raw_ids)),
        )


async def test_patient_text_after_the_case_ended(world: World) -> None:
    """Russian/Chinese texts after a close and after "not suitable online" (the English
    text after a close is in test_consultation)."""
    w = world
    for side, number in ((w.closed_patient, w.closed), (w.ended_patient, w.ended)):
        await refused(
            w,
            side,
            [w.doctor],
            side.t("consult.closed_case", number=number),
            lambda side=side: w.clinic.client.send(side.uid, PATIENT_BOT, "Мне снова хуже"),
        )


@pytest.mark.parametrize("kind", ["photo", "document", "voice"])
async def test_doctor_file_replying_to_an_ended_case(world: World, kind: str) -> None:
    w = world
    for patient, number in ((w.closed_patient, w.closed), (w.ended_patient, w.ended)):
        reply = await reply_to_case(w, number)
        await refused(
            w,
            w.doctor,
            [patient, w.patient],
            w.doctor.t("consult.doctor.case_closed", number=number),
            lambda reply=reply: raw_message(
                w, w.doctor, **media(kind, 50_000, w.raw_ids), reply_to_message=reply
            ),
        )


@pytest.mark.parametrize("command", ["/close", "/terminate", "/transfer", "Ещё вопрос"])
async def test_doctor_command_or_text_replying_to_an_ended_case(
    world: World, command: str
) -> None:
    w = world
    for patient, number in ((w.closed_patient, w.closed), (w.ended_patient, w.ended)):
        mid = (await reply_to_case(w, number))["message_id"]
        await refused(
            w,
            w.doctor,
            [patient, w.patient],
            w.doctor.t("consult.doctor.case_closed", number=number),
            lambda mid=mid: w.clinic.client.send(
                w.doctor.uid, DOCTOR_BOT, command, reply_to_message_id=mid
            ),
        )


async def test_zz_the_active_case_still_relays(world: World) -> None:
    """After all the refusals the active case works both ways (the silence meant something)."""
    w = world
    since = await w.clinic.seq(w.doctor.uid, DOCTOR_BOT)
    await w.clinic.client.send(w.patient.uid, PATIENT_BOT, "还在咳嗽")
    got = await w.clinic.client.wait_for(w.doctor.uid, DOCTOR_BOT, "还在咳嗽", since=since)
    assert got["text"].startswith(f"#{w.active} ")
    since = await w.clinic.seq(w.patient.uid, PATIENT_BOT)
    await w.clinic.client.send(w.doctor.uid, DOCTOR_BOT, "Пейте тёплое")
    got = await w.clinic.client.wait_for(w.patient.uid, PATIENT_BOT, "Пейте тёплое", since=since)
    doctor = w.patient.t("relay.doctor_name", name="Olga Frost")  # the header: the doctor's name
    assert got["text"] == w.patient.t("relay.to_patient", doctor=doctor, text="Пейте тёплое")
