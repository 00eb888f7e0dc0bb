"""E-prescriptions end to end over the emulator, in English, Russian and Chinese: a pharmacist
applies through the doctor bot's ``?start=pharmacist`` link and an admin approves them; a
doctor with a case writes a prescription in the /rx wizard (a malformed line and a forbidden
medicine refused on the way); a pharmacist reviews it (/review → Approve); the patient gets
the protected PDF whose QR checks as valid, and a pharmacy dispenses it once. Also: a
rejection's reason goes back to the doctor, a doctor cannot review and a pharmacist cannot
prescribe, and another doctor's case is refused."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flows import prescriptions as rxf
from flows.signing import Signer
from locales import Translator
from storage.models import AuditRecord, Prescription
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import Doc, add_doctor, consult, is_text, starts
from tests.e2e.test_doctor_onboarding import LANG_BUTTON, PHOTO, approve, decide_prompt, wait
from tests.e2e.test_intake import has_button, new_patient
from tests.e2e.test_onboarding import NAMES

ADMIN_ID = 700000001  # the emulator numbers users from 700000001: create the admin first
LINES = {
    "en": "Amoxicillin; 500 mg; 1 capsule three times a day; 21 capsules; 7",
    "ru": "Амоксициллин; 500 мг; 1 капсула 3 раза в день; 21 капсула; 7",
    "zh_Hans": "阿莫西林胶囊；0.5g；每次1粒，每日3次；21粒；7",
}
FORBIDDEN = {
    "en": "Diazepam; 5 mg; 1 tab at night; 10 tabs; 10",
    "ru": "Феназепам; 1 мг; 1 таб на ночь; 10 таб; 10",
    "zh_Hans": "艾司唑仑片；1mg；睡前1片；7片；7",
}
DIAGNOSIS = {"en": "Acute sinusitis", "ru": "Острый синусит", "zh_Hans": "急性鼻窦炎"}
PHARMACIST = {"en": "Pia Example", "ru": "Пётр Примеров", "zh_Hans": "药师测试"}


@pytest.fixture
async def rxclinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """A clinic with one admin where a pharmacist reviews every prescription."""
    c, schema = await start_clinic(
        tmp_path, "sqlite", log_capture, admin_ids=(ADMIN_ID,), rx_review=True
    )
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


def _doc_msg(m: dict[str, Any]) -> bool:
    return "document" in m


async def apply_pharmacist(clinic: Clinic, admin: int, locale: str) -> Doc:
    """A pharmacist applies with the deep link (no departments question) and is approved."""
    tr = Translator(locale)
    uid = await clinic.person("Pharmacist", "en")
    await clinic.client.send(uid, DOCTOR_BOT, "/start pharmacist")
    asks = {Translator(loc).plain("doctor.apply.ask_name") for loc in LANG_BUTTON}
    await clinic.client.wait_for(uid, DOCTOR_BOT, predicate=lambda m: m.get("text") in asks)
    since = await clinic.seq(uid, DOCTOR_BOT)
    await clinic.client.click_button(uid, DOCTOR_BOT, LANG_BUTTON[locale])
    await clinic.client.wait_for(
        uid, DOCTOR_BOT, is_text(tr.plain("doctor.apply.ask_name")), since=since
    )
    say = clinic.say
    assert (await say(uid, PHARMACIST[locale], DOCTOR_BOT))["text"] == tr.plain(
        "doctor.apply.ask_licence"
    )
    await say(uid, "PH-2026-0042", DOCTOR_BOT)
    await say(uid, "Pharmacy Board of Testland", DOCTOR_BOT)
    # After the workplace comes the title: a pharmacist is never asked for departments.
    assert (await say(uid, "Example Pharmacy", DOCTOR_BOT))["text"] == tr.plain(
        "doctor.apply.ask_title"
    )
    await say(uid, "Licensed pharmacist", DOCTOR_BOT)
    assert (await say(uid, "1", DOCTOR_BOT))["text"] == tr.plain("doctor.apply.ask_photo")
    await clinic.client.send_photo(uid, DOCTOR_BOT, PHOTO, "licence.png")
    await wait(clinic, uid, tr.plain("doctor.apply.ask_phone"))
    await clinic.client.share_contact(uid, DOCTOR_BOT, "+15550100300")
    summary = await clinic.client.wait_for(
        uid, DOCTOR_BOT, predicate=lambda m: PHARMACIST[locale] in (m.get("text") or "")
    )
    assert tr.plain("rx.role.pharmacist") in summary["text"]
    await clinic.press(uid, tr.plain("doctor.apply.confirm"), DOCTOR_BOT)
    async with clinic.app.db.uow() as uow:
        person = await uow.doctors.by_tg_user(uid)
        assert person is not None and person.role == "pharmacist" and not person.departments
        pid = person.id
    await decide_prompt(clinic, admin, pid)
    await approve(clinic, admin, pid)  # one year of practice is enough for a pharmacist
    return Doc(clinic, uid, PHARMACIST[locale], locale)


async def _rows(clinic: Clinic) -> list[Prescription]:
    async with clinic.app.db.uow() as uow:
        rows = list(await uow.session.scalars(select(Prescription)))
        uow.session.expunge_all()
        return rows


async def _write(doc: Doc, number: int, locale: str) -> dict[str, Any]:
    """The /rx wizard to the review card, with a malformed and a forbidden line on the way."""
    t = doc.t
    ask = await doc.say(f"/rx {number}", has_button(t("rx.wiz.cancel")))
    assert ask.get("protect_content") is True
    await doc.say("Amoxicillin 500 mg", is_text(t("rx.error.item_format")))
    cls = {"en": "psychotropic drug", "ru": "психотропное вещество", "zh_Hans": "精神药品"}
    name = FORBIDDEN[locale].replace("；", ";").split(";")[0]
    await doc.say(FORBIDDEN[locale], is_text(t("rx.error.forbidden", name=name, cls=cls[locale])))
    await doc.say(LINES[locale], has_button(t("rx.wiz.done_items")))
    await doc.press(t("rx.wiz.done_items"), is_text(t("rx.wiz.ask_diagnosis")))
    await doc.say(DIAGNOSIS[locale], has_button(t("rx.wiz.days", n=3)))
    await doc.say("30", is_text(t("rx.error.validity_far", max=7)))
    await doc.wait(has_button(t("rx.wiz.days", n=3)))
    await doc.press(t("rx.wiz.days", n=3), has_button(t("rx.wiz.not_chronic")))
    review = await doc.press(t("rx.wiz.not_chronic"), has_button(t("rx.wiz.issue")))
    assert DIAGNOSIS[locale] in review["text"] and review.get("protect_content") is True
    return review


@pytest.mark.parametrize("locale", ["en", "ru", "zh_Hans"])
async def test_prescription_to_pharmacist_to_patient_to_pharmacy(
    rxclinic: Clinic, locale: str
) -> None:
    clinic = rxclinic
    admin = await clinic.person("Ada", "en")
    assert admin == ADMIN_ID
    await clinic.say(admin, "/start", DOCTOR_BOT)
    pharmacist = await apply_pharmacist(clinic, admin, locale)
    doc = await add_doctor(clinic, "Dr Mira Holt", locale=locale)
    p = await new_patient(clinic, locale)
    number = await consult(p)
    first = NAMES[locale].split()[0]
    await doc.accept(number, first)
    await _write(doc, number, locale)
    # Nothing the doctor typed reached the patient before the review.
    assert not any(DIAGNOSIS[locale] in x for x in await clinic.bot_texts(p.uid))

    since_p = await clinic.seq(p.uid)
    since_ph = await clinic.seq(pharmacist.uid, DOCTOR_BOT)
    await doc.press(
        doc.t("rx.wiz.issue"),
        has_button(
            doc.t("rx.plan_button", n=1, name=LINES[locale].replace("；", ";").split(";")[0][:30])
        ),
    )
    [rx] = await _rows(clinic)
    assert rx.status == "pending" and rx.code
    assert any(
        x == doc.t("rx.issued_pending", number=number, name=first, code=rx.code)
        for x in await doc.texts()
    )
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, starts(p.t("rx.pat.pending", code=rx.code, doctor="Dr Mira Holt")),
        since=since_p,
    )  # fmt: skip
    await pharmacist.wait(is_text(pharmacist.t("rx.review.new", code=rx.code)), since_ph)

    # The pharmacist reviews and approves; the patient gets the protected PDF.
    card = await pharmacist.say("/review", has_button(pharmacist.t("rx.review.approve")))
    assert rx.code in card["text"] and DIAGNOSIS[locale] in card["text"]
    assert card.get("protect_content") is True
    since_p = await clinic.seq(p.uid)
    await pharmacist.press(
        pharmacist.t("rx.review.approve"),
        is_text(pharmacist.t("rx.review.approved", code=rx.code)),
    )
    sent = await clinic.client.wait_for(p.uid, PATIENT_BOT, _doc_msg, since=since_p)
    assert sent.get("protect_content") is True and rx.code in (sent.get("caption") or "")
    pdf = await clinic.client.download(sent["document"]["file_id"])
    await doc.wait(starts(doc.t("rx.doc.approved", code=rx.code, number=number, name=first)[:12]))

    async with clinic.app.db.uow() as uow:
        verdict = await rxf.verify_file(
            uow, pdf, Signer(uow.vault.ring), datetime.now(UTC), actor="pharmacy:test"
        )
        assert verdict.status == "valid" and verdict.content is not None
        assert verdict.content.diagnosis == DIAGNOSIS[locale]
        row = await uow.prescriptions.get(rx.id)
        assert row is not None
        await rxf.dispense(uow, row, "Example Pharmacy", ["14"], datetime.now(UTC), actor="t")
        await uow.commit()
    async with clinic.app.db.uow() as uow:
        verdict = await rxf.verify_file(uow, pdf, Signer(uow.vault.ring), datetime.now(UTC))
        assert verdict.status == "dispensed"
        await uow.rollback()

    # The patient's /prescriptions: it, dispensed.
    listing = await p.say("/prescriptions", lambda m: rx.code in (m.get("text") or ""))
    assert p.t("rx.status.dispensed") in listing["text"]
    async with clinic.app.db.uow() as uow:
        actions = [
            r.action
            for r in await uow.session.scalars(
                select(AuditRecord).where(AuditRecord.record_id == rx.id).order_by(AuditRecord.seq)
            )
        ]
    for action in ("rx.draft", "rx.refused", "rx.issue", "rx.review.view", "rx.approve",
                   "rx.verify", "rx.dispense"):  # fmt: skip
        assert action in actions, action


async def test_rejection_and_who_may_do_what(rxclinic: Clinic) -> None:
    clinic = rxclinic
    admin = await clinic.person("Ada", "en")
    await clinic.say(admin, "/start", DOCTOR_BOT)
    pharmacist = await apply_pharmacist(clinic, admin, "en")
    doc = await add_doctor(clinic, "Dr Mira Holt")
    other = await add_doctor(clinic, "Dr Ines Vale")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    first = NAMES["en"].split()[0]
    await doc.accept(number, first)
    # Another doctor's case, a doctor reviewing, a pharmacist prescribing: refused.
    await other.say(f"/rx {number}", is_text(other.t("rx.not_your_case", number=number)))
    await doc.say("/review", is_text(doc.t("rx.review.not_pharmacist")))
    await pharmacist.say(f"/rx {number}", is_text(pharmacist.t("rx.pharmacist.doctors_only")))
    await pharmacist.say("/review", is_text(pharmacist.t("rx.review.none")))

    await _write(doc, number, "en")
    await doc.press(
        doc.t("rx.wiz.issue"), has_button(doc.t("rx.plan_button", n=1, name="Amoxicillin"))
    )
    [rx] = await _rows(clinic)
    # A medicine of it seeds the doctor's reminder plan: name and dose are filled in, the
    # wizard asks for the times (the patient confirms the plan later, as any other).
    await doc.press(
        doc.t("rx.plan_button", n=1, name="Amoxicillin"),
        is_text(doc.t("meds.plan.ask_times", number=number, name=first)),
    )
    await doc.say("/cancel", lambda m: bool(m.get("text")))
    await pharmacist.say("/review", has_button(pharmacist.t("rx.review.reject")))
    await pharmacist.press(
        pharmacist.t("rx.review.reject"),
        is_text(pharmacist.t("rx.review.ask_reason", code=rx.code)),
    )
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    since_p = await clinic.seq(p.uid)
    await pharmacist.say(
        "Penicillin allergy on record", is_text(pharmacist.t("rx.review.rejected", code=rx.code))
    )
    told = await doc.wait(starts(doc.t("rx.doc.rejected", code=rx.code, number=number,
                                       name=first, reason="")[:12]), since_d)  # fmt: skip
    assert "Penicillin allergy on record" in told["text"]
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(p.t("rx.pat.rejected", code=rx.code)), since=since_p
    )
    [rx] = await _rows(clinic)
    assert rx.status == "rejected"
    # The same button again: no longer waiting.
    await pharmacist.say("/review", is_text(pharmacist.t("rx.review.none")))
    # The doctor's list shows the reason; the rejected prescription has no Revoke.
    item = await doc.say(f"/prescriptions {number}", lambda m: rx.code in (m.get("text") or ""))
    assert "Penicillin allergy" in item["text"] and not item.get("reply_markup")
