"""Doctors apply, admins decide — both over the emulator, on the real doctor bot."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Jurisdiction
from flows import doctors as flow
from locales import Translator
from storage.models import AuditRecord, Doctor
from tests.conftest import BACKENDS
from tests.e2e.conftest import DOCTOR_BOT, Clinic, start_clinic, stop_clinic

ADMIN_ID = 700000001  # the emulator numbers users from 700000001: create the admin first
ADMIN2_ID = 700000002
LANG_BUTTON = {"en": "English", "zh_Hans": "简体中文", "ru": "Русский"}
NAMES = {"en": "Dr. Test Example", "zh_Hans": "王测试医生", "ru": "Тест Примеров"}
LICENCE = "110-2026-000042"
PHOTO = b"\x89PNG\r\n\x1a\n" + b"LICENCE-PHOTO-SECRET-" * 64
EN = Translator("en")


async def _clinic(tmp_path: Path, backend: str, logs: io.StringIO, **extra: Any) -> Any:
    return await start_clinic(tmp_path, backend, logs, admin_ids=(ADMIN_ID, ADMIN2_ID), **extra)


@pytest.fixture(params=BACKENDS)
async def dclinic(
    request: pytest.FixtureRequest, tmp_path: Path, log_capture: io.StringIO
) -> AsyncIterator[Clinic]:
    """A clinic with two admins, on each backend."""
    c, schema = await _clinic(tmp_path, request.param, log_capture)
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


@pytest.fixture
async def sq(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """A clinic with two admins on SQLite."""
    c, schema = await _clinic(tmp_path, "sqlite", log_capture)
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


@pytest.fixture
async def cn(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """A clinic under the cn rules."""
    c, schema = await _clinic(tmp_path, "sqlite", log_capture, jurisdiction=Jurisdiction.CN)
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


async def admins(clinic: Clinic) -> tuple[int, int]:
    """Both admins exist and have opened the doctor bot."""
    a1 = await clinic.person("Admin One")
    a2 = await clinic.person("Admin Two")
    assert (a1, a2) == (ADMIN_ID, ADMIN2_ID)
    for a in (a1, a2):
        assert (await clinic.say(a, "/start", DOCTOR_BOT))["text"] == EN.plain(
            "doctor.admin.welcome"
        )
    return a1, a2


async def wait(clinic: Clinic, uid: int, text: str) -> dict[str, Any]:
    """The next bot message (after the last action) with exactly this text."""
    return await clinic.client.wait_for(
        uid, DOCTOR_BOT, predicate=lambda m: (m.get("text") or m.get("caption")) == text
    )


async def apply(clinic: Clinic, uid: int, locale: str, *, years: str = "12") -> None:
    """A full application with buttons, typed answers, the photo and the contact."""
    tr = Translator(locale)
    await clinic.client.send(uid, DOCTOR_BOT, "/start")
    asks = {Translator(loc).plain("doctor.apply.ask_name") for loc in LANG_BUTTON}
    await clinic.client.wait_for(uid, DOCTOR_BOT, predicate=lambda m: m.get("text") in asks)
    await clinic.client.click_button(uid, DOCTOR_BOT, LANG_BUTTON[locale])
    await wait(clinic, uid, tr.plain("doctor.apply.ask_name"))
    say = clinic.say
    assert (await say(uid, NAMES[locale], DOCTOR_BOT))["text"] == tr.plain(
        "doctor.apply.ask_licence"
    )
    assert (await say(uid, LICENCE, DOCTOR_BOT))["text"] == tr.plain("doctor.apply.ask_authority")
    assert (await say(uid, "Health Commission of Testland", DOCTOR_BOT))["text"] == tr.plain(
        "doctor.apply.ask_hospital"
    )
    assert (await say(uid, "Test General Hospital", DOCTOR_BOT))["text"] == tr.plain(
        "doctor.apply.ask_departments"
    )
    await clinic.client.click_button(uid, DOCTOR_BOT, tr.plain("dept.cardiology"))
    await clinic.client.click_button(uid, DOCTOR_BOT, tr.plain("dept.general"))
    await clinic.client.click_button(uid, DOCTOR_BOT, tr.plain("doctor.apply.done"))
    await wait(clinic, uid, tr.plain("doctor.apply.ask_title"))
    assert (await say(uid, "Attending physician", DOCTOR_BOT))["text"] == tr.plain(
        "doctor.apply.ask_years"
    )
    assert (await say(uid, years, DOCTOR_BOT))["text"] == tr.plain("doctor.apply.ask_photo")
    await clinic.client.send_photo(uid, DOCTOR_BOT, PHOTO, "licence.png")
    await wait(clinic, uid, tr.plain("doctor.apply.ask_phone"))
    await clinic.client.share_contact(uid, DOCTOR_BOT, "+15550100200")
    summary = await clinic.client.wait_for(
        uid, DOCTOR_BOT, predicate=lambda m: NAMES[locale] in (m.get("text") or "")
    )
    assert LICENCE in summary["text"] and "+15550100200" in summary["text"]
    assert summary["protect_content"] is True
    done = await clinic.press(uid, tr.plain("doctor.apply.confirm"), DOCTOR_BOT)
    assert done["text"] == tr.plain("doctor.apply.submitted")


async def doctor_of(clinic: Clinic, uid: int) -> Doctor:
    async with clinic.app.db.uow() as uow:
        doctor = await uow.doctors.by_tg_user(uid)
        assert doctor is not None
        uow.session.expunge(doctor)
        return doctor


async def actions(clinic: Clinic, doctor_id: str) -> list[tuple[str, str]]:
    async with clinic.app.db.uow() as uow:
        rows: list[AuditRecord] = await uow.audit.for_record("doctor", doctor_id)
        return [(r.actor, r.action) for r in rows]


def until_date() -> str:
    """A year from today (the default verification period)."""
    return (datetime.now(UTC) + timedelta(days=365)).date().isoformat()


async def approve(clinic: Clinic, admin: int, doctor_id: str) -> str:
    """The admin presses Approve; returns the verified-until date."""
    until = until_date()
    await clinic.client.click_button(admin, DOCTOR_BOT, "Approve")
    await wait(
        clinic, admin, EN.plain("doctor.admin.approved", doctor_id=doctor_id[:8], until=until)
    )
    return until


async def decide_prompt(clinic: Clinic, admin: int, doctor_id: str) -> None:
    await wait(clinic, admin, EN.plain("doctor.admin.decide", doctor_id=doctor_id[:8]))


@pytest.mark.parametrize("locale", ["en", "zh_Hans", "ru"])
async def test_apply_in_each_language_and_admin_approves(dclinic: Clinic, locale: str) -> None:
    clinic = dclinic
    a1, _ = await admins(clinic)
    uid = await clinic.person("Applicant", "en")
    await apply(clinic, uid, locale)
    doctor = await doctor_of(clinic, uid)
    assert (doctor.status, doctor.years_practice) == ("pending", 12)
    assert doctor.departments == "general,cardiology"
    await decide_prompt(clinic, a1, doctor.id)
    msgs = (await clinic.client.messages(a1, DOCTOR_BOT))["messages"]
    card = next(m for m in msgs if NAMES[locale] in (m.get("text") or ""))
    assert LICENCE in card["text"] and card["protect_content"] is True
    document = next(m for m in msgs if m.get("document"))
    assert document["protect_content"] is True
    assert await clinic.client.download(document["document"]["download_url"]) == PHOTO
    # /status while pending.
    tr = Translator(locale)
    assert (await clinic.say(uid, "/status", DOCTOR_BOT))["text"] == tr.plain(
        "doctor.status.pending"
    )
    since = await clinic.seq(uid, DOCTOR_BOT)
    until = await approve(clinic, a1, doctor.id)
    told = await clinic.client.wait_for(uid, DOCTOR_BOT, since=since)
    assert told["text"] == tr.plain("doctor.decision.approved", until=until)
    doctor = await doctor_of(clinic, uid)
    assert flow.is_verified(doctor)
    assert (await clinic.say(uid, "/status", DOCTOR_BOT))["text"] == tr.plain(
        "doctor.status.verified", until=until
    ) + "\n\n" + tr.plain("trust.profile_unrated")
    log = await actions(clinic, doctor.id)
    assert (f"doctor:{doctor.id}", "doctor.apply") in log
    assert (f"admin:{a1}", "doctor.view") in log
    assert (f"admin:{a1}", "doctor.approve") in log
    async with clinic.app.db.uow() as uow:
        details = [r.details for r in await uow.audit.for_record("doctor", doctor.id)]
    assert not any(NAMES[locale] in d or LICENCE in d for d in details)


async def test_reject_with_a_reason_then_apply_again(sq: Clinic) -> None:
    clinic = sq
    a1, _ = await admins(clinic)
    uid = await clinic.person("Applicant", "ru")
    await apply(clinic, uid, "ru")
    doctor = await doctor_of(clinic, uid)
    await decide_prompt(clinic, a1, doctor.id)
    ask = await clinic.press(a1, "Reject", DOCTOR_BOT)
    assert ask["text"] == EN.plain("doctor.admin.ask_reason", doctor_id=doctor.id[:8])
    since = await clinic.seq(uid, DOCTOR_BOT)
    done = await clinic.say(a1, "The licence photo is unreadable", DOCTOR_BOT)
    assert done["text"] == EN.plain("doctor.admin.rejected", doctor_id=doctor.id[:8])
    told = await clinic.client.wait_for(uid, DOCTOR_BOT, since=since)
    ru = Translator("ru")
    assert told["text"] == ru.plain(
        "doctor.decision.rejected", reason="The licence photo is unreadable"
    )
    assert (await doctor_of(clinic, uid)).status == "rejected"
    assert (f"admin:{a1}", "doctor.reject") in await actions(clinic, doctor.id)
    # The second admin's buttons are now stale: already decided.
    late = await clinic.press(ADMIN2_ID, "Approve", DOCTOR_BOT)
    assert late["text"] == EN.plain("doctor.admin.already_decided")
    # Applying again starts from the first question with nothing kept.
    status = await clinic.say(uid, "/start", DOCTOR_BOT)
    assert status["text"].startswith(ru.plain("doctor.status.rejected"))
    again = await clinic.press(uid, ru.plain("doctor.apply.again"), DOCTOR_BOT)
    assert again["text"] == ru.plain("doctor.apply.ask_name")
    doctor = await doctor_of(clinic, uid)
    assert (doctor.status, doctor.name_enc, doctor.licence_photo_enc) == ("applying", None, None)


async def test_cn_refuses_fewer_than_three_years(cn: Clinic) -> None:
    clinic = cn
    a1, _ = await admins(clinic)
    uid = await clinic.person("Applicant", "zh-hans")
    await apply(clinic, uid, "zh_Hans", years="2")
    doctor = await doctor_of(clinic, uid)
    await decide_prompt(clinic, a1, doctor.id)
    refused = await clinic.press(a1, "Approve", DOCTOR_BOT)
    assert refused["text"] == EN.plain("doctor.admin.cn_years", years=2, min=3)
    assert (await doctor_of(clinic, uid)).status == "pending"
    assert (f"admin:{a1}", "doctor.approve_refused") in await actions(clinic, doctor.id)


async def test_racing_admins_second_is_told_already_decided(sq: Clinic) -> None:
    clinic = sq
    a1, a2 = await admins(clinic)
    uid = await clinic.person("Applicant")
    await apply(clinic, uid, "en")
    doctor = await doctor_of(clinic, uid)
    await decide_prompt(clinic, a1, doctor.id)
    await decide_prompt(clinic, a2, doctor.id)
    s1, s2 = await clinic.seq(a1, DOCTOR_BOT), await clinic.seq(a2, DOCTOR_BOT)
    await clinic.client.click_button(a1, DOCTOR_BOT, "Approve")
    await clinic.client.click_button(a2, DOCTOR_BOT, "Reject")
    await clinic.client.wait_for(a1, DOCTOR_BOT, since=s1, predicate="approved")
    await clinic.client.wait_for(
        a2, DOCTOR_BOT, since=s2, predicate=EN.plain("doctor.admin.already_decided")
    )
    assert [a for _, a in await actions(clinic, doctor.id)].count("doctor.approve") == 1


async def test_forged_and_stale_buttons(sq: Clinic) -> None:
    clinic = sq
    await admins(clinic)
    uid = await clinic.person("Applicant")
    await apply(clinic, uid, "en")
    doctor = await doctor_of(clinic, uid)
    intruder = await clinic.person("Intruder")
    await clinic.client.send(intruder, DOCTOR_BOT, "/start")
    await wait(clinic, intruder, EN.plain("doctor.apply.ask_name"))
    msg_id = (await clinic.client.messages(intruder, DOCTOR_BOT))["messages"][-1]["message_id"]
    await clinic.client.click(
        intruder, DOCTOR_BOT, msg_id, f"dadm:approve:{doctor.id}", force=True
    )
    await clinic.client.click(intruder, DOCTOR_BOT, msg_id, "dap:dept:general", force=True)
    stale = await wait(clinic, intruder, EN.plain("error.stale_button"))
    assert stale is not None
    assert (await doctor_of(clinic, uid)).status == "pending"
    intruder_doc = await doctor_of(clinic, intruder)
    assert (f"doctor:{intruder_doc.id}", "doctor.decision_denied") in await actions(
        clinic, doctor.id
    )
    # The applicant's own stale button (Confirm again) changes nothing.
    await clinic.client.click_button(uid, DOCTOR_BOT, "Send the application")
    assert (await doctor_of(clinic, uid)).status == "pending"
    # An admin's forged id is just not found.
    await clinic.client.click(ADMIN_ID, DOCTOR_BOT, 1, "dadm:approve:zzzz", force=True)
    await wait(clinic, ADMIN_ID, EN.plain("doctor.admin.not_found"))


async def test_bad_input_keeps_the_step(sq: Clinic) -> None:
    clinic = sq
    await admins(clinic)
    uid = await clinic.person("Applicant", "ru")
    ru = Translator("ru")
    await clinic.client.send(uid, DOCTOR_BOT, "/start")
    await wait(clinic, uid, ru.plain("doctor.apply.ask_name"))
    for bad in ("😀🙂", "N" * 4096):
        reply = await clinic.say(uid, bad, DOCTOR_BOT)
        assert reply["text"] == ru.plain("doctor.error.name", max=100)
    await clinic.say(uid, NAMES["ru"], DOCTOR_BOT)
    back = await clinic.press(uid, ru.plain("doctor.apply.back"), DOCTOR_BOT)
    assert back["text"] == ru.plain("doctor.apply.ask_name")
    for answer in (NAMES["ru"], LICENCE, "Минздрав Тестовой области", "Больница №1"):
        await clinic.say(uid, answer, DOCTOR_BOT)
    await clinic.client.click_button(uid, DOCTOR_BOT, ru.plain("dept.neurology"))
    await clinic.client.click_button(uid, DOCTOR_BOT, ru.plain("doctor.apply.done"))
    await wait(clinic, uid, ru.plain("doctor.apply.ask_title"))
    await clinic.say(uid, "Невролог", DOCTOR_BOT)
    for bad in ("семь", "71", "🙂"):
        reply = await clinic.say(uid, bad, DOCTOR_BOT)
        assert reply["text"] == ru.plain("doctor.error.years", max=70)
    assert (await clinic.say(uid, "7", DOCTOR_BOT))["text"] == ru.plain("doctor.apply.ask_photo")
    # A sticker where the photo is expected; a PDF; a file over 10 MB.
    since = await clinic.seq(uid, DOCTOR_BOT)
    sticker = {
        "file_id": "CAACAgIAAxkBAAEBsticker",
        "file_unique_id": "AgADsticker",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    await clinic.client.raw(
        DOCTOR_BOT,
        {
            "update_id": 990001,
            "message": {
                "message_id": 990001,
                "date": 1_800_000_000,
                "chat": {"id": uid, "type": "private", "first_name": "A"},
                "from": {"id": uid, "is_bot": False, "first_name": "A", "language_code": "ru"},
                "sticker": sticker,
            },
        },
    )
    await clinic.client.wait_for(
        uid,
        DOCTOR_BOT,
        since=since,
        predicate=lambda m: m.get("text") == ru.plain("doctor.apply.ask_photo"),
    )
    texts = await clinic.bot_texts(uid, DOCTOR_BOT)
    assert texts[-2:] == [ru.plain("doctor.error.unexpected"), ru.plain("doctor.apply.ask_photo")]
    await clinic.client.send_document(uid, DOCTOR_BOT, b"%PDF-1.4 test", "licence.pdf")
    await wait(clinic, uid, ru.plain("doctor.apply.ask_photo"))
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024)
    await clinic.client.send_document(uid, DOCTOR_BOT, big, "licence.png")
    await wait(clinic, uid, ru.plain("doctor.error.photo_too_big", max_mb=10))
    doctor = await doctor_of(clinic, uid)
    assert (doctor.apply_step, doctor.licence_photo_enc) == ("photo", None)
    # An image document is accepted; typed phone numbers and others' contacts are not.
    await clinic.client.send_document(uid, DOCTOR_BOT, PHOTO, "licence.png")
    await wait(clinic, uid, ru.plain("doctor.apply.ask_phone"))
    typed = await clinic.say(uid, "+15550100200", DOCTOR_BOT)
    assert typed["text"] == ru.plain("doctor.error.phone_use_button")
    since = await clinic.seq(uid, DOCTOR_BOT)
    await clinic.client.share_contact(uid, DOCTOR_BOT, "+15550100999", own=False)
    other = await clinic.client.wait_for(uid, DOCTOR_BOT, since=since)
    assert other["text"] == ru.plain("doctor.error.phone_not_own")
    assert (await doctor_of(clinic, uid)).apply_step == "phone"


async def test_licence_photo_is_not_stored_in_plaintext(sq: Clinic) -> None:
    clinic = sq
    await admins(clinic)
    uid = await clinic.person("Applicant")
    await apply(clinic, uid, "en")
    doctor = await doctor_of(clinic, uid)
    await decide_prompt(clinic, ADMIN_ID, doctor.id)
    await clinic.app.stop()
    blobs = b"".join(p.read_bytes() for p in clinic.data_dir.glob("careline.db*"))
    assert blobs
    for needle in (
        PHOTO[8:80],
        base64.b64encode(PHOTO)[:60],
        NAMES["en"].encode(),
        LICENCE.encode(),
    ):
        assert needle not in blobs
    await clinic.app.start()


async def test_suspended_and_expired_doctors_are_told(sq: Clinic) -> None:
    clinic = sq
    a1, _ = await admins(clinic)
    uid = await clinic.person("Applicant")
    await apply(clinic, uid, "en")
    doctor = await doctor_of(clinic, uid)
    await decide_prompt(clinic, a1, doctor.id)
    await approve(clinic, a1, doctor.id)
    await wait(clinic, uid, EN.plain("doctor.decision.approved", until=until_date()))
    since = await clinic.seq(uid, DOCTOR_BOT)
    await clinic.client.send(a1, DOCTOR_BOT, f"/suspend {doctor.id[:8]} Complaint under review")
    await wait(clinic, a1, EN.plain("doctor.admin.suspended", doctor_id=doctor.id[:8]))
    told = await clinic.client.wait_for(uid, DOCTOR_BOT, since=since)
    assert told["text"] == EN.plain("doctor.decision.suspended", reason="Complaint under review")
    status = await clinic.say(uid, "/start", DOCTOR_BOT)
    assert status["text"].startswith(EN.plain("doctor.status.suspended"))
    assert "Complaint under review" in status["text"]
    back = await clinic.say(a1, f"/reinstate {doctor.id[:8]}", DOCTOR_BOT)
    assert back["text"] == EN.plain("doctor.admin.reinstated", doctor_id=doctor.id[:8])
    log = [a for _, a in await actions(clinic, doctor.id)]
    assert "doctor.suspend" in log and "doctor.reinstate" in log
    # Expiry: verified_until in the past.
    async with clinic.app.db.uow() as uow:
        row = await uow.doctors.get(doctor.id)
        assert row is not None
        row.verified_until = datetime.now(UTC) - timedelta(days=1)
        await uow.commit()
    expired = await clinic.say(uid, "/status", DOCTOR_BOT)
    assert expired["text"] == EN.plain("doctor.status.expired")
    assert not flow.is_verified(await doctor_of(clinic, uid))
