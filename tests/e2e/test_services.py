"""The clinic's consultation services end to end: admins manage them with /services in the
doctor bot (in their language) and with ``python bot.py services`` on the same database;
bad input gets the reason and changes nothing; a doctor who is not an admin, a stranger and a
forged button are refused, and every change and refusal is audited."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from flows import services as flow
from handlers.doctor.services import SvcCB
from locales import Translator
from storage.models import AuditRecord, ConsultationService
from tests.cli_runner import run_cli_async
from tests.e2e.conftest import DOCTOR_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import Doc, add_doctor, is_text
from tests.e2e.test_trust import click_data

ADMIN_EN = 700000001  # the emulator numbers users from 700000001: the admins come first
ADMIN_ZH = 700000002


@pytest.fixture
async def sclinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """A clinic with two admins on SQLite (the command line shares its database file)."""
    c, schema = await start_clinic(tmp_path, "sqlite", log_capture, admin_ids=(ADMIN_EN, ADMIN_ZH))
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


async def _admin(clinic: Clinic, name: str, locale: str) -> Doc:
    uid = await clinic.person(name, locale)
    since = await clinic.seq(uid, DOCTOR_BOT)
    await clinic.client.start(uid, DOCTOR_BOT)
    await clinic.client.wait_for(uid, DOCTOR_BOT, since=since)
    return Doc(clinic, uid, name, locale)


async def _rows(clinic: Clinic) -> list[ConsultationService]:
    async with clinic.app.db.uow() as uow:
        rows = list(await uow.session.scalars(select(ConsultationService)))
        uow.session.expunge_all()
    return sorted(rows, key=lambda r: r.created_at)


async def _audit(clinic: Clinic) -> list[tuple[str, str]]:
    async with clinic.app.db.uow() as uow:
        rows = await uow.session.scalars(
            select(AuditRecord)
            .where(AuditRecord.action.startswith("service."))
            .order_by(AuditRecord.seq)
        )
        return [(r.actor, r.action) for r in rows]


def _starts(prefix: str) -> object:
    return lambda m: (m.get("text") or "").startswith(prefix)


async def test_admins_manage_services_in_their_language(sclinic: Clinic) -> None:
    clinic = sclinic
    en = await _admin(clinic, "Ada Ledger", "en")
    zh = await _admin(clinic, "Lin Zhangbu", "zh_Hans")
    assert (en.uid, zh.uid) == (ADMIN_EN, ADMIN_ZH)
    await en.say("/services", is_text(en.t("svc.list.none")))

    # Bad input: the reason, in the admin's language, and nothing stored.
    await en.say("/services add fax 15 min free", is_text(en.t("svc.bad_mode")))
    await en.say("/services add phone 15 min 300", is_text(en.t("svc.bad_price")))
    await en.say(
        "/services add phone 500 min free", is_text(en.t("svc.bad_minutes", min=5, max=120))
    )
    await zh.say("/services add 电话 15分钟 12.345 EUR", is_text(zh.t(
        "svc.too_many_decimals", currency="EUR", decimals=2)))  # fmt: skip
    await en.say("/services add text 15 min free", is_text(en.t("svc.minutes_for_calls")))
    await en.say("/services add", is_text(en.t("svc.add_usage")))
    assert await _rows(clinic) == []

    # Added: a free text service for the clinic, a paid phone call for cardiology (in
    # Chinese, with the note that card payments need the provider token), video in Stars.
    added = await en.say("/services add text 24 h free", _starts("Added "))
    assert added["text"].endswith("Text · answer within 24 h · whole clinic · free")
    since = await clinic.seq(zh.uid, DOCTOR_BOT)
    await clinic.client.send(zh.uid, DOCTOR_BOT, "/services add 电话 15分钟 300 CNY cardiology")
    await zh.wait(is_text(zh.t("svc.no_provider", currency="CNY")), since=since)
    texts = await zh.texts()
    assert any(t.endswith("电话问诊 · 15 分钟 · 心血管内科 · ¥300.00") for t in texts)
    await en.say("/services add video 20 min 150 XTR", _starts("Added "))
    text_svc, phone, video = await _rows(clinic)
    assert (phone.mode, phone.department, phone.minutes) == ("phone", "cardiology", 15)
    assert (phone.price_minor, phone.currency) == (30000, "CNY")
    assert (video.price_minor, video.currency, text_svc.response_hours) == (150, "XTR", 24)

    # The list, with ids, and a price change by id prefix.
    await en.say("/services", is_text(en.t("svc.list.help")))
    lines = [t for t in await en.texts() if t.startswith(phone.id[:8])]
    assert lines == [f"{phone.id[:8]} Phone call · 15 min · Cardiology (heart) · CN¥300.00"]
    await en.say(f"/services price {phone.id[:6]} 250 CNY", _starts(f"{phone.id[:8]} now costs"))
    await en.say("/services price abcdef99 5 EUR", is_text(en.t("svc.not_found")))
    await en.say(f"/services price {phone.id[:8]}", is_text(en.t("svc.price_usage")))
    await en.say(f"/services price {phone.id[:8]} lots", is_text(en.t("svc.bad_price")))
    assert (await _rows(clinic))[1].price_minor == 25000

    # Disable with the button: the message now offers Enable; enable again.
    await en.press(en.t("svc.button.disable", id=video.id[:8]), _starts(video.id[:8]))
    assert (await _rows(clinic))[2].active is False
    await en.press(en.t("svc.button.enable", id=video.id[:8]), _starts(video.id[:8]))
    assert (await _rows(clinic))[2].active is True
    assert await _audit(clinic) == [
        (f"admin:{ADMIN_EN}", "service.add"),
        (f"admin:{ADMIN_ZH}", "service.add"),
        (f"admin:{ADMIN_EN}", "service.add"),
        (f"admin:{ADMIN_EN}", "service.price"),
        (f"admin:{ADMIN_EN}", "service.disable"),
        (f"admin:{ADMIN_EN}", "service.enable"),
    ]
    assert clinic.app.processor.failed == 0


async def test_others_are_refused_and_audited(sclinic: Clinic) -> None:
    clinic = sclinic
    admin = await _admin(clinic, "Ada Ledger", "en")
    assert await clinic.person("Lin Zhangbu", "zh_Hans") == ADMIN_ZH  # the doctor is not
    await admin.say("/services add phone 15 min 100 XTR", _starts("Added "))
    [svc] = await _rows(clinic)
    doc = await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    refusal = Translator("en").plain("doctor.admin.not_admin")
    await doc.say("/services", is_text(refusal))
    await doc.say("/services price " + svc.id[:8] + " free", is_text(refusal))
    stranger = await clinic.person("Nemo Nobody")
    assert (await clinic.say(stranger, "/services", DOCTOR_BOT))["text"] == refusal
    # A forged Disable on a message of their own.
    last = (await doc.history())["messages"][-1]
    answer = await click_data(
        clinic, doc.uid, DOCTOR_BOT, last["message_id"], SvcCB(action="off", id=svc.id).pack()
    )
    assert answer.get("text") == refusal
    [after] = await _rows(clinic)
    assert (after.active, after.price_minor) == (True, 100)
    refused = [a for a in await _audit(clinic) if a[1] == "service.refused"]
    assert len(refused) == 4
    assert clinic.app.processor.failed == 0


async def test_services_from_the_command_line(sclinic: Clinic) -> None:
    clinic = sclinic
    doc = await add_doctor(clinic, "Dr Ada Fictus", departments="general")
    async with clinic.app.db.uow() as uow:
        d = await uow.doctors.by_tg_user(doc.uid)
        assert d is not None
        doctor_id = d.id

    async def cli(*args: str) -> tuple[int, str, str]:
        done = await run_cli_async(["services", *args], clinic.data_dir)
        assert "Traceback" not in done.stderr
        return done.returncode, done.stdout, done.stderr

    rc, out, err = await cli("add", "phone", "--doctor", doctor_id[:8], "--minutes", "20",
                             "--price", "25.50 EUR")  # fmt: skip
    assert rc == 0 and "Phone call · 20 min · doctor " in out and "€25.50" in out
    assert "CARELINE_PAYMENT_PROVIDER_TOKEN" in err  # a card price, no provider token yet
    sid = out.split()[1]
    rc, out, err = await cli("add", "video", "--department", "cardiology", "--doctor", "abc")
    assert rc == 2 and "not allowed with argument" in err
    rc, out, err = await cli("add", "text", "--window", "200")
    assert rc == 2 and "A response window is 1 to 168 hours." in err
    rc, out, err = await cli("add", "phone", "--doctor", "ffffff00")
    assert rc == 2 and "No single doctor has that id" in err
    rc, out, _ = await cli("price", sid, "30 EUR")
    assert rc == 0 and out.strip() == f"service {sid}: €30.00"
    rc, out, _ = await cli("disable", sid)
    assert rc == 0 and out.strip() == f"service {sid}: disabled"
    rc, out, _ = await cli("disable", sid)
    assert rc == 0 and out.strip() == f"service {sid}: disabled (already)"
    rc, out, _ = await cli("list")
    assert out.strip() == "0 service(s)"
    rc, out, _ = await cli("list", "--all")
    assert "Phone call · 20 min" in out and "(disabled)" in out
    rc, _, err = await cli("enable", "12")
    assert rc == 2 and "not a service id" in err

    # What applies to the doctor now: their own service, enabled again.
    await cli("enable", sid)
    async with clinic.app.db.uow() as uow:
        d = await uow.doctors.get(doctor_id)
        assert d is not None
        offer = await flow.offer(uow, d, "phone")
        assert offer is not None and offer.price == flow.Price(3000, "EUR")
        assert await flow.offer(uow, d, "video") is None
    assert {a for a, _ in await _audit(clinic)} == {"admin:cli"}
