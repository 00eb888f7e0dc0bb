"""Relaying files between the two bots through the outbox (issue 4, part C).

A simulated patient sends files to the patient bot; an outbox row written with
``Replier(uow, "doctor", doctor).relay_file("patient", file_id, kind, ...)`` must reach the
doctor in the doctor bot's chat with the same bytes under that bot's own file id, keep an
encrypted copy with the case message when asked, survive 429/5xx/dropped connections, fail
cleanly (once, no retry loop) on files that can't be fetched, and keep per-chat order.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from bot.telegram.reply import Replier
from flows.relay import MSG_TOO_BIG, MSG_UNSUPPORTED, check_size
from storage.models import CaseMessage, Consultation, OutboxMessage
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic

# A real 1x1 PNG, then random bytes that occur nowhere else (searched for in the database).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)
MB = 1024 * 1024


def _unique(prefix: bytes, size: int = 2048) -> bytes:
    return prefix + os.urandom(size)


async def _people(clinic: Clinic) -> tuple[int, int]:
    """A patient who has started the patient bot and a doctor who has started the doctor bot."""
    patient = await clinic.person("Pat")
    doctor = await clinic.person("Doc")
    await clinic.client.start(doctor, DOCTOR_BOT)
    await clinic.client.start(patient, PATIENT_BOT)
    # Wait for the patient bot's answer: the system data key (outbox payloads) then exists, so
    # the test's own outbox rows don't race the processor to create it (first use only).
    await clinic.client.wait_for(patient, PATIENT_BOT)
    return patient, doctor


async def _patient_sends(clinic: Clinic, uid: int, kind: str, data: bytes, name: str) -> str:
    """The patient sends a file to the patient bot; its file id (valid for that bot only)."""
    send = {
        "photo": clinic.client.send_photo,
        "voice": clinic.client.send_voice,
        "document": clinic.client.send_document,
    }[kind]
    sent = await send(uid, PATIENT_BOT, data, name)
    # the same id as in the chat history the bot's update carries
    history = (await clinic.client.messages(uid, PATIENT_BOT))["messages"]
    mine = [
        m
        for m in history
        if m["from"] == "user" and m["message_id"] == sent["message"]["message_id"]
    ]
    assert mine and mine[0][kind]["file_id"] == sent["message"][kind]["file_id"]
    return str(sent["message"][kind]["file_id"])


async def _relay(clinic: Clinic, doctor: int, *calls: tuple[str, str, dict[str, Any]]) -> None:
    """Queue relayFile rows (file id, kind, options) in one transaction, as a handler would."""
    async with clinic.app.db.uow() as uow:
        reply = Replier(uow, "doctor", doctor)
        for file_id, kind, options in calls:
            await reply.relay_file("patient", file_id, kind, **options)
        await uow.commit()
    clinic.app.sender.poke()


async def _case_message(clinic: Clinic, kind: str) -> int:
    """A consultation with one (file) message from the patient; the message's id."""
    async with clinic.app.db.uow() as uow:
        case = await uow.consultations.add(
            Consultation(patient_id="relaytestpatient", department="general", state="active")
        )
        row = await uow.consultations.add_message(case, "patient", kind, "see the attachment")
        await uow.commit()
        return int(row.id)


async def _record_copy(clinic: Clinic, record: int) -> bytes | None:
    async with clinic.app.db.uow() as uow:
        row = await uow.session.get(CaseMessage, record)
        assert row is not None
        case = await uow.consultations.get(row.consultation_id)
        assert case is not None
        return await uow.consultations.message_file(case, row)


@dataclass
class Row:
    """What a test needs of a relayFile outbox row."""

    status: str
    attempts: int
    error: str | None
    tg_message_id: int | None
    payload_enc: bytes | None


async def _relay_rows(clinic: Clinic) -> list[Row]:
    async with clinic.app.db.uow() as uow:
        rows = await uow.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.method == "relayFile")
            .order_by(OutboxMessage.id)
        )
        return [Row(r.status, r.attempts, r.error, r.tg_message_id, r.payload_enc) for r in rows]


async def _until(check: Callable[[], Any], limit_s: float = 20.0) -> Any:
    """Poll an async check until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        got = await check()
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def _doctor_media(clinic: Clinic, doctor: int) -> list[dict[str, Any]]:
    msgs = (await clinic.client.messages(doctor, DOCTOR_BOT))["messages"]
    kinds = ("photo", "voice", "document", "audio", "video")
    return [m for m in msgs if m["from"] == "bot" and any(m.get(k) for k in kinds)]


async def _all_settled(clinic: Clinic, n: int) -> list[Row]:
    async def check() -> list[Row] | None:
        rows = await _relay_rows(clinic)
        done = [r for r in rows if r.status in ("sent", "failed", "unreachable")]
        return rows if len(rows) == n and len(done) == n else None

    result: list[Row] = await _until(check)
    return result


# --- pure helpers ------------------------------------------------------------------------------


def test_check_size() -> None:
    assert check_size("photo", 10 * MB) is None
    assert check_size("photo", 10 * MB + 1) == MSG_TOO_BIG
    assert check_size("document", 20 * MB) is None
    assert check_size("document", 20 * MB + 1) == MSG_TOO_BIG  # getFile's download limit
    assert check_size("voice", None) is None
    assert check_size("sticker", 10) == MSG_UNSUPPORTED
    assert check_size("video_note", None) == MSG_UNSUPPORTED


# --- delivery ------------------------------------------------------------------------------------


async def test_photo_voice_document_reach_the_doctor_bot(clinic: Clinic) -> None:
    patient, doctor = await _people(clinic)
    photo = PNG + _unique(b"photo")
    voice = _unique(b"OggS")
    doc = _unique(b"%PDF-1.4 ")
    ids = {
        "photo": await _patient_sends(clinic, patient, "photo", photo, "rash.png"),
        "voice": await _patient_sends(clinic, patient, "voice", voice, "note.ogg"),
        "document": await _patient_sends(clinic, patient, "document", doc, "labs.pdf"),
    }
    record = await _case_message(clinic, "photo")
    await _relay(
        clinic,
        doctor,
        (ids["photo"], "photo", {"caption": "<b>#1</b> rash", "protect": True, "record": record}),
        (ids["voice"], "voice", {}),
        (ids["document"], "document", {"filename": "labs.pdf"}),
    )
    rows = await _all_settled(clinic, 3)
    assert [r.status for r in rows] == ["sent"] * 3
    assert all(r.payload_enc is None and r.tg_message_id for r in rows)

    got = await _doctor_media(clinic, doctor)
    assert [next(k for k in ("photo", "voice", "document") if m.get(k)) for m in got] == [
        "photo",
        "voice",
        "document",
    ]
    for msg, (kind, data) in zip(
        got, (("photo", photo), ("voice", voice), ("document", doc)), strict=True
    ):
        media = msg[kind]
        assert media["file_id"] != ids[kind]  # the doctor bot's own file id
        assert await clinic.client.download(media["file_id"]) == data
    assert got[0]["caption"] == "#1 rash" and got[0]["protect_content"] is True
    assert got[1]["protect_content"] is False
    assert got[2]["document"]["file_name"] == "labs.pdf"
    # the record keeps an encrypted copy of the photo; the others had no record
    assert await _record_copy(clinic, record) == photo
    # the patient bot's chat got nothing from the relay
    patient_media = [
        m
        for m in (await clinic.client.messages(patient, PATIENT_BOT))["messages"]
        if m["from"] == "bot" and (m.get("photo") or m.get("voice") or m.get("document"))
    ]
    assert patient_media == []


async def test_record_gone_is_skipped(clinic: Clinic) -> None:
    patient, doctor = await _people(clinic)
    data = _unique(b"%PDF-1.4 ")
    file_id = await _patient_sends(clinic, patient, "document", data, "x.pdf")
    await _relay(clinic, doctor, (file_id, "document", {"record": 987654}))
    rows = await _all_settled(clinic, 1)
    assert rows[0].status == "sent"
    got = await _doctor_media(clinic, doctor)
    assert len(got) == 1 and await clinic.client.download(got[0]["document"]["file_id"]) == data


# --- faults --------------------------------------------------------------------------------------


FAULTS = [
    # (kind relayed, method failing, fault rule, what the emulator counts)
    ("photo", "getFile", {"rate_5xx": 1.0}, "5xx"),
    ("voice", "getFile", {"rate_429": 1.0, "retry_after": 1}, "429"),
    ("document", "getFile", {"drop_rate": 1.0}, "dropped"),
    ("photo", "sendPhoto", {"rate_429": 1.0, "retry_after": 1}, "429"),
    ("voice", "sendVoice", {"drop_rate": 1.0}, "dropped"),
    ("document", "sendDocument", {"rate_5xx": 1.0, "status_5xx": 502}, "5xx"),
]


async def test_429_5xx_and_drops_on_getfile_and_upload_deliver_once(clinic: Clinic) -> None:
    patient, doctor = await _people(clinic)
    delivered: list[bytes] = []
    for n, (kind, method, fault, counter) in enumerate(FAULTS, start=1):
        data = (PNG if kind == "photo" else b"") + _unique(kind.encode())
        file_id = await _patient_sends(clinic, patient, kind, data, f"f{n}.{kind}")
        record = await _case_message(clinic, kind)
        await clinic.client.set_faults(methods=[method], **fault)
        rule = clinic.emulator.faults.rules[-1]
        await _relay(clinic, doctor, (file_id, kind, {"record": record}))

        async def injected(rule: Any = rule, counter: str = counter) -> bool:
            return bool(rule.injected[counter])

        await _until(injected)
        await clinic.client.clear_faults()
        rows = await _all_settled(clinic, n)
        assert rows[-1].status == "sent", (method, fault, rows[-1])
        assert rows[-1].attempts >= 2
        delivered.append(data)
        got = await _doctor_media(clinic, doctor)
        assert len(got) == n, (method, fault)  # exactly once, in order
        assert await clinic.client.download(got[-1][kind]["file_id"]) == data
        assert await _record_copy(clinic, record) == data
    stats = clinic.app.sender.stats
    assert stats.rate_limited >= 2 and stats.retried >= 4 and stats.failed == 0
    got = await _doctor_media(clinic, doctor)
    assert len(got) == len(FAULTS)


async def test_unfetchable_files_fail_once_and_the_chat_goes_on(clinic: Clinic) -> None:
    patient, doctor = await _people(clinic)
    gone = await _patient_sends(clinic, patient, "document", b"%PDF gone", "gone.pdf")
    big = await _patient_sends(clinic, patient, "document", b"%PDF big", "big.pdf")
    # the stored file vanishes (getFile works, the download is 404) / is over 20 MB
    stored = clinic.emulator.files[gone]
    clinic.emulator._files_by_path.pop((stored.bot_id, stored.file_path))
    clinic.emulator.files[big].size = 21 * MB
    record = await _case_message(clinic, "document")
    await _relay(
        clinic,
        doctor,
        ("AgACbogus000000", "photo", {"record": record}),
        (gone, "document", {}),
        (big, "document", {}),
    )
    async with clinic.app.db.uow() as uow:
        await Replier(uow, "doctor", doctor).text("after the files")
        await uow.commit()
    clinic.app.sender.poke()
    await clinic.client.wait_for(doctor, DOCTOR_BOT, "after the files", since=0)
    rows = await _all_settled(clinic, 3)
    assert [r.status for r in rows] == ["failed"] * 3
    assert [r.attempts for r in rows] == [1, 1, 1]  # no retry loop
    assert all(r.payload_enc is None for r in rows)
    errors = [r.error or "" for r in rows]
    assert "wrong file identifier" in errors[0]
    assert "404" in errors[1]
    assert "too big" in errors[2]
    assert await _doctor_media(clinic, doctor) == []
    assert await _record_copy(clinic, record) is None
    assert clinic.app.sender.stats.failed >= 3


async def test_a_text_queued_after_a_file_arrives_after_it(clinic: Clinic) -> None:
    patient, doctor = await _people(clinic)
    data = _unique(b"%PDF")
    file_id = await _patient_sends(clinic, patient, "document", data, "a.pdf")
    # the upload fails for a while: the file is retried, the text must wait behind it
    await clinic.client.set_faults(methods=["sendDocument"], rate_5xx=1.0, duration_s=1.0)
    since = await clinic.seq(doctor, DOCTOR_BOT)
    async with clinic.app.db.uow() as uow:
        reply = Replier(uow, "doctor", doctor)
        await reply.relay_file("patient", file_id, "document", caption="first")
        await reply.text("second")
        await uow.commit()
    clinic.app.sender.poke()
    await clinic.client.wait_for(doctor, DOCTOR_BOT, "second", since=since, timeout=20)
    msgs = (await clinic.client.messages(doctor, DOCTOR_BOT, since=since))["messages"]
    order = [m.get("caption") or m.get("text") for m in msgs if m["from"] == "bot"]
    assert order[-2:] == ["first", "second"]
    rows = await _relay_rows(clinic)
    assert rows[0].attempts >= 2


# --- no plaintext at rest ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["photo", "document"])
async def test_file_bytes_not_in_the_sqlite_files(sqlite_clinic: Clinic, kind: str) -> None:
    clinic = sqlite_clinic
    patient, doctor = await _people(clinic)
    data = (PNG if kind == "photo" else b"%PDF-1.4 ") + _unique(b"SECRET-SCAN-", 8192)
    file_id = await _patient_sends(clinic, patient, kind, data, f"scan.{kind}")
    record = await _case_message(clinic, kind)
    await _relay(clinic, doctor, (file_id, kind, {"record": record}))
    rows = await _all_settled(clinic, 1)
    assert rows[0].status == "sent"
    assert await _record_copy(clinic, record) == data
    needles = [data[-64:], data[len(data) // 2 : len(data) // 2 + 64]]
    needles.append(base64.b64encode(data[-96:])[8:72])
    scanned = 0
    for path in sorted(clinic.data_dir.rglob("*")):
        if not path.is_file():
            continue
        content = path.read_bytes()
        scanned += ".db" in path.name
        for needle in needles:
            assert needle not in content, f"file bytes in plaintext in {path.name}"
    assert scanned >= 1
    assert b"SECRET-SCAN-" not in clinic.logs.getvalue().encode()
