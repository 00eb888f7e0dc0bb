"""The booked hospital appointment on the referral slip (flows/slip.py, flows/referrals.py,
handlers/patient/referrals.py): without one the slip's bytes are unchanged; with one each
language version shows an "Appointment" box (date and time, service, what to bring) whose text
pypdfium2 extracts in English, Russian and Chinese; ``slip_appointment`` formats the open
appointment in the patient's zone; the file check recognises a copy with or without any of the
referral's appointments and rejects one changed by a byte; ``send_slip`` sends and records the
slip with the appointment. Database tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.settings import Settings
from flows import referrals as rf
from flows import slip
from flows.referrals import SlipContent
from flows.signing import Signer
from locales import Translator
from storage.crypto import KeyRing
from storage.models import (
    HospitalAppointment,
    HospitalService,
    HospitalSlot,
    OutboxMessage,
    Referral,
)
from storage.uow import Database, UnitOfWork
from tests.conftest import drop_database, make_database
from tests.flows.test_referrals import T0, issued
from tests.flows.test_slip import (
    CHINESE,
    RUSSIAN,
    TOKEN,
    URL,
    _content,
    _missing_glyphs,
    _pages,
    _png,
    _qr,
    _squash,
    _text,
    needs_cjk,
)

TIMED = slip.SlipAppointment(
    when="2026-03-05 09:30",
    service="Holter monitoring",
    department="Cardiology",
    bring="Previous ECGs and a list of your medicines",
)
ALL_DAY = slip.SlipAppointment(
    when="2026-03-06",
    service="Суточное мониторирование ЭКГ",
    department="Кардиология",
    bring="Прежние ЭКГ и список лекарств",
    all_day=True,
)
CHINESE_APPT = slip.SlipAppointment(
    when="2026-03-05 09:30",
    service="动态心电图监测",
    department="心内科",
    bring="既往心电图和用药清单",
)


@pytest.fixture
def signer(keyring: KeyRing) -> Signer:
    return Signer(keyring)


def _render(content: SlipContent, appointment: slip.SlipAppointment | None = None) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fpdf2 warns about a glyph a font lacks
        return slip.render_slip(content, TOKEN, URL, appointment)


# --- the PDF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="en"),
        pytest.param(RUSSIAN, id="ru"),
        pytest.param(CHINESE, id="zh_Hans", marks=needs_cjk),
        pytest.param({**RUSSIAN, "hospital_locale": "zh_Hans"}, id="ru+zh_Hans", marks=needs_cjk),
        pytest.param(
            {"findings": " ".join(f"Finding {i}: stable, no change." for i in range(90))},
            id="long",
        ),
    ],
)
def test_without_an_appointment_the_bytes_are_unchanged(changes: dict[str, str]) -> None:
    """A slip with no appointment is the slip as rendered before appointments existed, so a
    copy sent earlier still matches its re-render in the file check."""
    content = _content(**changes)
    before = slip.render_slip(content, TOKEN, URL)
    assert slip.render_slip(content, TOKEN, URL, None) == before
    assert slip.render_slip(content, TOKEN, URL, appointment=None) == before
    with_appt = slip.render_slip(content, TOKEN, URL, TIMED)
    assert with_appt != before
    assert slip.render_slip(content, TOKEN, URL, TIMED) == with_appt  # still deterministic
    heading = Translator(content.locale).plain("slip.section.appointment").upper()
    assert _squash(heading) not in _squash(_text(before, 0))


@pytest.mark.parametrize(
    ("changes", "appointment", "when"),
    [
        pytest.param({}, TIMED, "2026-03-05 09:30", id="en"),
        pytest.param(RUSSIAN, ALL_DAY, "2026-03-06, в любое время дня", id="ru"),
        pytest.param(CHINESE, CHINESE_APPT, "2026-03-05 09:30", id="zh_Hans", marks=needs_cjk),
    ],
)
def test_the_appointment_box_in_each_language(
    changes: dict[str, str], appointment: slip.SlipAppointment, when: str, tmp_path: Path
) -> None:
    content = _content(**changes)
    tr = Translator(content.locale)
    pdf = _render(content, appointment)
    assert _pages(pdf) == 1
    text = _text(pdf, 0)
    labels = [
        tr.plain("slip.section.appointment").upper(),
        tr.plain("slip.appointment.when"),
        tr.plain("slip.appointment.service"),
        tr.plain("slip.appointment.bring"),
    ]
    values = [when, appointment.service, appointment.department, appointment.bring]
    for s in [*labels, *values]:
        assert _squash(s) in _squash(text), f"{s!r} not in the slip's text"
    assert not _missing_glyphs(pdf, *labels, *values), "characters with no embedded glyph"
    # The box leaves the QR scannable and the rest of the slip in place.
    codes = _qr(_png(pdf, 0, tmp_path / "appt.png"))
    assert [c.text for c in codes] == [slip.qr_payload(URL, TOKEN)]
    assert _squash(tr.plain("slip.check", url=URL, code=content.code)) in _squash(text)


@needs_cjk
def test_a_two_language_slip_shows_the_appointment_in_both() -> None:
    pdf = _render(_content(**RUSSIAN, hospital_locale="zh_Hans"), ALL_DAY)
    assert _pages(pdf) == 2
    first, second = _squash(_text(pdf, 0)), _squash(_text(pdf, 1))
    assert _squash("ЗАПИСЬ НА ПРИЁМ") in first and "预约" not in first
    assert _squash("2026-03-06, в любое время дня") in first
    assert "预约" in second and _squash("2026-03-06，当天任意时间") in second
    for page in (first, second):
        assert _squash(ALL_DAY.service) in page and _squash(ALL_DAY.bring) in page


def test_empty_department_and_bring_are_left_out() -> None:
    en = Translator("en")
    text = _text(_render(_content(), replace(TIMED, department="", bring="")), 0)
    assert "2026-03-05 09:30" in text and "Holter monitoring" in text
    assert en.plain("slip.appointment.bring") not in text
    # "Department" is printed once, for the target, not again in the box.
    assert text.count(en.plain("slip.target.department")) == 1


def test_long_appointment_texts_wrap_inside_the_box() -> None:
    long = replace(TIMED, service="Extended cardiac workup " * 8, bring="Everything " * 40)
    pdf = _render(_content(), long)
    text = _squash(_text(pdf, 0))
    assert _squash(long.service) in text and _squash(long.bring) in text


# --- the record: formatting, the file check, sending -------------------------------------------


async def _book(
    uow: UnitOfWork,
    ref: Referral,
    starts_at: datetime,
    *,
    all_day: bool = False,
    status: str = "booked",
) -> HospitalAppointment:
    """A service, a slot and an appointment of the referral, written straight to storage."""
    assert ref.hospital_id is not None
    service = HospitalService(
        hospital_id=ref.hospital_id,
        department="Cardiology",
        kind="examination",
        name="Holter monitoring",
        bring="Previous ECGs",
    )
    uow.session.add(service)
    await uow.session.flush()
    slot = HospitalSlot(
        service_id=service.id,
        hospital_id=ref.hospital_id,
        starts_at=starts_at,
        all_day=all_day,
        capacity=2,
        booked=1,
    )
    uow.session.add(slot)
    await uow.session.flush()
    appt = HospitalAppointment(
        referral_id=ref.id,
        patient_id=ref.patient_id,
        hospital_id=ref.hospital_id,
        service_id=service.id,
        slot_id=slot.id,
        status=status,
        booked_by="doctor",
    )
    uow.session.add(appt)
    await uow.session.flush()
    return appt


async def _referral(uow: UnitOfWork, rid: str) -> Referral:
    ref = await uow.referrals.get(rid)
    assert ref is not None
    return ref


async def test_slip_appointment_is_the_open_one_in_the_zone(db: Database, signer: Signer) -> None:
    rid, *_ = await issued(db, signer)
    async with db.uow() as uow:
        ref = await _referral(uow, rid)
        assert await rf.slip_appointment(uow, ref, "Asia/Shanghai") is None
        # 01:30 UTC is 09:30 in Shanghai; a cancelled one is not printed unless asked for.
        old = await _book(uow, ref, datetime(2026, 3, 4, 2, 0, tzinfo=UTC), status="cancelled")
        await _book(uow, ref, datetime(2026, 3, 5, 1, 30, tzinfo=UTC))
        await uow.commit()
    async with db.uow() as uow:
        ref = await _referral(uow, rid)
        shown = await rf.slip_appointment(uow, ref, "Asia/Shanghai")
        assert shown == slip.SlipAppointment(
            when="2026-03-05 09:30",
            service="Holter monitoring",
            department="Cardiology",
            bring="Previous ECGs",
        )
        utc = await rf.slip_appointment(uow, ref, None)
        assert utc is not None and utc.when == "2026-03-05 01:30"
        given = await rf.slip_appointment(uow, ref, "Asia/Shanghai", old)
        assert given is not None and given.when == "2026-03-04 10:00"


async def test_an_all_day_place_is_its_date(db: Database, signer: Signer) -> None:
    rid, *_ = await issued(db, signer)
    async with db.uow() as uow:
        ref = await _referral(uow, rid)
        # Midnight in Shanghai on the 6th, as flows.appointments stores an all-day quota.
        await _book(uow, ref, datetime(2026, 3, 5, 16, 0, tzinfo=UTC), all_day=True)
        await uow.commit()
    async with db.uow() as uow:
        shown = await rf.slip_appointment(uow, await _referral(uow, rid), "Asia/Shanghai")
        assert shown is not None and shown.all_day and shown.when == "2026-03-06"


@pytest.fixture
async def sqlite_db(tmp_path: Path, keyring: KeyRing) -> AsyncIterator[Database]:
    """SQLite only: the PDF tests below render many slips, which does not depend on the
    database (the appointment queries run on both backends in the tests above)."""
    database, name = await make_database("sqlite", tmp_path, keyring)
    try:
        yield database
    finally:
        await drop_database(database, name)


@needs_cjk
async def test_file_check_knows_slips_with_and_without_the_appointment(
    sqlite_db: Database, signer: Signer
) -> None:
    """The patient's slip with the appointment checks valid and one changed byte of it is
    forged; a copy from before the booking, or from while a since-cancelled appointment was
    booked, is still recognised; an appointment the referral never had is not."""
    db = sqlite_db
    rid, code, token, _ = await issued(db, signer)
    url = f"https://clinic.example/r/{code}"
    async with db.uow() as uow:
        ref = await _referral(uow, rid)
        content = await rf.content_of(uow, ref)
        before_booking = slip.render_slip(content, token, url)
        await rf.attach_file(uow, ref, before_booking)
        appt = await _book(uow, ref, datetime(2026, 3, 5, 1, 30, tzinfo=UTC))
        shown = await rf.slip_appointment(uow, ref, "Asia/Shanghai")
        assert shown is not None
        booked = slip.render_slip(content, token, url, shown)
        await rf.attach_file(uow, ref, booked)
        await uow.commit()
    async with db.uow() as uow:
        assert "09:30" in _text(booked, 0) and "Holter monitoring" in _text(booked, 0)
        assert (await rf.verify_file(uow, booked, signer, T0)).status == "valid"
        assert (await rf.verify_file(uow, before_booking, signer, T0)).status == "valid"
        tampered = bytearray(booked)
        at = booked.index(code.encode()) if code.encode() in booked else len(booked) // 2
        tampered[at] = ord("Z") if tampered[at] != ord("Z") else ord("Y")
        v = await rf.verify_file(uow, bytes(tampered), signer, T0)
        assert v.status == "forged" and v.reason == "file" and v.patient_name is None
        invented = slip.render_slip(content, token, url, replace(shown, when="2026-03-05 10:30"))
        assert (await rf.verify_file(uow, invented, signer, T0)).reason == "file"

    # Cancelled, and the slip sent again without it: the booked copy is still genuine.
    async with db.uow() as uow:
        ref = await _referral(uow, rid)
        stored = await uow.appointments.get(appt.id)
        assert stored is not None
        stored.status = "cancelled"
        await uow.session.flush()
        assert await rf.slip_appointment(uow, ref, "Asia/Shanghai") is None
        await rf.attach_file(uow, ref, before_booking)
        await uow.commit()
    async with db.uow() as uow:
        assert (await rf.verify_file(uow, booked, signer, T0)).status == "valid"
        v = await rf.verify_file(uow, bytes(tampered), signer, T0)
        assert v.status == "forged" and v.reason == "file"


@needs_cjk
async def test_send_slip_sends_and_records_the_slip_with_the_appointment(
    sqlite_db: Database, signer: Signer
) -> None:
    from handlers.common import slips as patient_side

    db = sqlite_db
    rid, code, _, _ = await issued(db, signer)
    settings = Settings(_env_file=None, public_url="https://clinic.example")
    async with db.uow() as uow:
        ref = await _referral(uow, rid)
        await _book(uow, ref, datetime(2026, 3, 5, 1, 30, tzinfo=UTC))
        assert await patient_side.send_slip(uow, ref, settings) == "sent"
        await uow.commit()
    async with db.uow() as uow:
        ref = await _referral(uow, rid)
        [row] = await uow.session.scalars(
            select(OutboxMessage).where(OutboxMessage.method == "sendDocument")
        )
        sent = base64.b64decode((await uow.outbox.params(row))["document"]["data_b64"])
        assert ref.file_hash == hashlib.sha256(sent).hexdigest()
        text = _text(sent, 0)
        # The patient is in Shanghai: 01:30 UTC is printed as 09:30.
        assert "2026-03-05 09:30" in text and "Holter monitoring" in text
        assert "预约" in text and code in text
        assert (await rf.verify_file(uow, sent, signer, T0)).status == "valid"
