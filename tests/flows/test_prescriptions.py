"""E-prescriptions (flows/prescriptions.py) on SQLite and PostgreSQL: the lifecycle machine,
the clinic's rules (cn first visits, forbidden classes, validity, supply and the chronic rule),
pharmacist review, dispensing once (also under two pharmacies at the same moment), the
verdicts of tokens, codes and altered records, expiry, the FHIR export, and the forbidden-class
detector on a phrase set written by someone who never saw its word list."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from flows import prescriptions as rxf
from flows import referrals as rf
from flows.signing import Signer, b64u, unb64u
from storage.crypto import KeyRing
from storage.models import AuditRecord, Consultation, Doctor, Patient, Prescription
from storage.uow import Database, UnitOfWork

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LINE = "Amoxicillin; 500 mg; 1 capsule three times a day; 21 capsules; 7"
HELDOUT = Path(__file__).parents[1] / "data" / "rx_heldout.json"


@pytest.fixture
def signer(keyring: KeyRing) -> Signer:
    return Signer(keyring)


async def people(
    uow: UnitOfWork, *, followup: bool = True, tg: int = 8100
) -> tuple[Patient, Doctor, Doctor, Consultation]:
    """A patient, a verified doctor with an active case of theirs, and a verified pharmacist."""
    patient = await uow.patients.add(
        Patient(
            tg_user_id=tg,
            locale="ru",
            onboarding_state="done",
            consent_version="1",
            timezone="Europe/Moscow",
        )
    )
    await uow.patients.set_field(patient, "name", "Vera Testova")
    await uow.patients.set_field(patient, "birth_year", "1958")
    await uow.patients.set_field(patient, "sex", "female")
    doctor = await uow.doctors.add(
        Doctor(
            tg_user_id=tg + 1000,
            locale="en",
            status="verified",
            verified_until=T0 + timedelta(days=300),
            departments="general",
        )
    )
    await uow.doctors.set_field(doctor, "name", "Dr Ivo Sample")
    await uow.doctors.set_field(doctor, "licence", "LIC-0042")
    pharmacist = await uow.doctors.add(
        Doctor(
            tg_user_id=tg + 2000,
            locale="en",
            status="verified",
            role="pharmacist",
            verified_until=T0 + timedelta(days=300),
            departments="",
        )
    )
    case = await uow.consultations.add(
        Consultation(
            patient_id=patient.id,
            department="general",
            state="active",
            doctor_id=doctor.id,
            requested_at=T0,
            accepted_at=T0,
            followup_visit=followup,
        )
    )
    return patient, doctor, pharmacist, case


async def draft(
    uow: UnitOfWork,
    doctor: Doctor,
    case: Consultation,
    *,
    jurisdiction: str = "generic",
    lines: tuple[str, ...] = (LINE,),
    valid: str = "3",
    chronic: str = "-",
    review: bool = False,
) -> Prescription:
    rx = await rxf.begin(uow, doctor, case, T0, jurisdiction, review=review)
    for line in lines:
        await rxf.add_item(uow, doctor, rx, line, jurisdiction)
    await rxf.set_adding(uow, rx, adding=False)
    await rxf.set_answer(
        uow, doctor, rx, "diagnosis", "Community-acquired pneumonia", jurisdiction
    )
    await rxf.set_answer(uow, doctor, rx, "validity", valid, jurisdiction)
    await rxf.set_answer(uow, doctor, rx, "chronic", chronic, jurisdiction)
    assert rxf.next_step(await rxf.answers(uow, rx)) == "review"
    return rx


async def issued(
    db: Database, signer: Signer, *, jurisdiction: str = "generic", review: bool = False
) -> tuple[str, str, str, str]:
    """One issued prescription; returns (id, code, token, pharmacist id)."""
    async with db.uow() as uow:
        _, doctor, pharmacist, case = await people(uow)
        rx = await draft(uow, doctor, case, jurisdiction=jurisdiction, review=review)
        content, token = await rxf.issue(uow, doctor, rx, T0, signer, jurisdiction)
        await uow.commit()
        assert content.patient_name == "Vera Testova" and content.doctor_licence == "LIC-0042"
        assert rx.code is not None
        return rx.id, rx.code, token, pharmacist.id


async def actions(db: Database, rx_id: str) -> list[str]:
    async with db.uow() as uow:
        rows = await uow.session.scalars(
            select(AuditRecord).where(AuditRecord.record_id == rx_id).order_by(AuditRecord.seq)
        )
        return [r.action for r in rows]


# --- the machine and the rules -----------------------------------------------------------------


def test_machine_allows_only_the_lifecycle() -> None:
    assert rxf.next_state("draft", "issue", review=True) is rxf.State.PENDING
    assert rxf.next_state("draft", "issue", review=False) is rxf.State.ACTIVE
    assert rxf.next_state("pending", "approve") is rxf.State.ACTIVE
    assert rxf.next_state("pending", "reject") is rxf.State.REJECTED
    assert rxf.next_state("active", "dispense") is rxf.State.DISPENSED
    for bad in (("pending", "dispense"), ("dispensed", "dispense"), ("rejected", "approve"),
                ("active", "approve"), ("revoked", "dispense"), ("expired", "dispense"),
                ("dispensed", "revoke"), ("nonsense", "issue")):  # fmt: skip
        assert rxf.next_state(*bad) is None, bad


def test_rules_follow_the_jurisdiction() -> None:
    cn, generic = rxf.rules_for("cn"), rxf.rules_for("generic")
    assert cn.review_required and cn.max_valid_days == 3
    assert not generic.review_required and generic.max_valid_days == 7
    assert cn.supply_limit(None) == 7 and cn.supply_limit("hypertension") == 30
    assert set(cn.forbidden) == {"narcotic", "psychotropic"}


@pytest.mark.parametrize(
    "line",
    [
        "Morphine sulfate; 10 mg; 1 tab every 4 h; 20 tabs; 5",
        "Феназепам; 1 мг; 1 таб на ночь; 10 таб; 10",
        "艾司唑仑片; 1mg; 睡前1片; 7片; 7",
        "Alprazolm; 0.5 mg; 1 tab bid; 10; 5",  # a typo still counts
    ],
)
def test_forbidden_classes_are_recognised(line: str) -> None:
    assert rxf.forbidden_class(line, rxf.rules_for("cn")) is not None


@pytest.mark.parametrize(
    "line",
    [
        "Loratadine; 10 mg; 1 tab daily; 10 tabs; 10",
        "Paracetamol 500 mg, no tramadol; 500 mg; 1 tab; 10; 3",
        "Cough syrup codeine-free; 100 ml; 5 ml tid; 1 bottle; 5",
        "麻仁丸（含火麻仁）; 6g; 每次6g; 2盒; 7",
    ],
)
def test_lookalikes_are_not_refused(line: str) -> None:
    assert rxf.forbidden_class(line, rxf.rules_for("cn")) is None


def test_the_detector_on_phrases_written_without_its_word_list() -> None:
    """The set in tests/data/rx_heldout.json was written from a brief that showed none of
    the names in prescribing.toml. First measured before any change to the list: recall
    101/104 (97.1%), false refusals 1/144 (0.7%); docs/PRESCRIPTIONS.md keeps that figure.
    The list was then grown from its misses, so this is now a regression floor."""
    data = json.loads(HELDOUT.read_text(encoding="utf-8"))
    rules = rxf.rules_for("cn")
    missed = [i["text"] for i in data["items"] if i["forbidden"] and not
              rxf.forbidden_class(i["text"], rules)]  # fmt: skip
    wrong = [i["text"] for i in data["items"] if not i["forbidden"] and
             rxf.forbidden_class(i["text"], rules)]  # fmt: skip
    assert len(data["items"]) >= 200
    assert not missed, missed
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("raw", "msgid"),
    [
        ("Amoxicillin 500 mg three times a day", "rx.error.item_format"),
        ("Amoxicillin; 500 mg; 1 cap; none; 7", "rx.error.quantity"),
        ("Amoxicillin; 500 mg; 1 cap; 21; forever", "rx.error.days"),
        ("Amoxicillin; ; 1 cap; 21; 7", "rx.error.item_format"),
        ("A" * 101 + "; 500 mg; 1 cap; 21; 7", "rx.error.item_long"),
    ],
)
def test_bad_medicine_lines_say_what_to_type(raw: str, msgid: str) -> None:
    with pytest.raises(rxf.RxError) as exc:
        rxf.parse_item(raw)
    assert exc.value.msgid == msgid


def test_a_line_parses_in_every_script() -> None:
    item = rxf.parse_item("氨氯地平片；5mg；每日1次，每次1片；28片；28")
    assert item.name == "氨氯地平片" and item.days == 28 and item.amount == 28
    item = rxf.parse_item("Лизиноприл | 10 мг | 1 таб утром | 30 таб | 30 дней")
    assert item.days == 30 and item.amount == 30


# --- the lifecycle on both databases ----------------------------------------------------------


async def test_issue_without_review_is_valid_at_once(db: Database, signer: Signer) -> None:
    rx_id, code, token, _ = await issued(db, signer)
    async with db.uow() as uow:
        verdict = await rxf.verify_token(uow, token, signer, T0, code=code, actor="test")
        assert verdict.status == "valid" and verdict.content is not None
        assert verdict.content.items[0].name == "Amoxicillin"
        assert (await rxf.verify_code(uow, code.lower().replace("-", " "), T0)).status == "valid"
        await uow.commit()
    assert (await actions(db, rx_id))[-2:] == ["rx.issue", "rx.verify"]


async def test_cn_needs_a_follow_up_visit_and_a_pharmacist(db: Database, signer: Signer) -> None:
    async with db.uow() as uow:
        _, doctor, pharmacist, case = await people(uow, followup=False)
        with pytest.raises(rxf.RxError) as exc:
            await rxf.begin(uow, doctor, case, T0, "cn")
        assert exc.value.msgid == "rx.refused.first_visit"
        await uow.commit()
    assert "rx.refused" in await actions(db, case.id)
    async with db.uow() as uow:
        case2 = await uow.consultations.get(case.id)
        assert case2 is not None
        case2.followup_visit = True
        doctor2 = await uow.doctors.get(doctor.id)
        assert doctor2 is not None
        rx = await draft(uow, doctor2, case2, jurisdiction="cn")
        content, token = await rxf.issue(uow, doctor2, rx, T0, signer, "cn")
        assert rx.status == "pending" and content.review_required
        verdict = await rxf.verify_token(uow, token, signer, T0)
        assert verdict.status == "pending"
        with pytest.raises(rxf.RxError) as exc:
            await rxf.dispense(uow, rx, "Example Pharmacy", [""], T0, actor="pharmacy:test")
        assert exc.value.msgid == "rx.dispense.pending"
        # a doctor is not a pharmacist
        with pytest.raises(rxf.RxError):
            await rxf.approve(uow, doctor2, rx.id, T0)
        ph = await uow.doctors.get(pharmacist.id)
        assert ph is not None
        await rxf.approve(uow, ph, rx.id, T0 + timedelta(hours=1))
        assert rx.status == "active"
        assert (await rxf.verify_token(uow, token, signer, T0)).status == "valid"
        # approving twice is refused
        with pytest.raises(rxf.RxError) as exc:
            await rxf.approve(uow, ph, rx.id, T0)
        assert exc.value.msgid == "rx.review.not_pending"
        await uow.commit()


async def test_unverified_pharmacist_cannot_review(db: Database, signer: Signer) -> None:
    rx_id, _, _, ph_id = await issued(db, signer, review=True)
    async with db.uow() as uow:
        ph = await uow.doctors.get(ph_id)
        assert ph is not None
        ph.status = "pending"
        with pytest.raises(rxf.RxError) as exc:
            await rxf.reject(uow, ph, rx_id, "dose too high", T0)
        assert exc.value.msgid == "rx.review.not_pharmacist"
        await uow.commit()
    assert (await actions(db, rx_id))[-1] == "rx.refused"


async def test_rejection_keeps_the_reason(db: Database, signer: Signer) -> None:
    rx_id, _code, token, ph_id = await issued(db, signer, review=True)
    async with db.uow() as uow:
        ph = await uow.doctors.get(ph_id)
        assert ph is not None
        with pytest.raises(rxf.RxError):
            await rxf.reject(uow, ph, rx_id, "   ", T0)
        rx = await rxf.reject(uow, ph, rx_id, "Interacts with warfarin", T0)
        assert await rxf.review_reason(uow, rx) == "Interacts with warfarin"
        assert (await rxf.verify_token(uow, token, signer, T0)).status == "rejected"
        await uow.commit()


async def test_rules_refuse_and_audit(db: Database, signer: Signer) -> None:
    async with db.uow() as uow:
        _, doctor, _, case = await people(uow)
        rx = await rxf.begin(uow, doctor, case, T0, "cn")
        with pytest.raises(rxf.RxError) as exc:
            await rxf.add_item(uow, doctor, rx, "Zolpidem; 10 mg; 1 tab at night; 14; 14", "cn")
        assert (
            exc.value.msgid == "rx.error.forbidden" and exc.value.params["cls"] == "psychotropic"
        )
        assert (await rxf.answers(uow, rx))["items"] == []
        with pytest.raises(rxf.RxError) as exc:
            await rxf.set_answer(uow, doctor, rx, "validity", "5", "cn")
        assert exc.value.msgid == "rx.error.validity_far"
        # a 14-day course needs a chronic rule
        await rxf.add_item(uow, doctor, rx, "Amlodipine; 5 mg; 1 tab daily; 28 tabs; 28", "cn")
        await rxf.set_adding(uow, rx, adding=False)
        await rxf.set_answer(uow, doctor, rx, "diagnosis", "Essential hypertension", "cn")
        await rxf.set_answer(uow, doctor, rx, "validity", "3", "cn")
        await rxf.set_answer(uow, doctor, rx, "chronic", "-", "cn")
        with pytest.raises(rxf.RxError) as exc:
            await rxf.issue(uow, doctor, rx, T0, signer, "cn")
        assert exc.value.msgid == "rx.error.supply" and exc.value.params == {"days": 28, "max": 7}
        await rxf.set_answer(uow, doctor, rx, "chronic", "hypertension", "cn")
        content, _ = await rxf.issue(uow, doctor, rx, T0, signer, "cn")
        assert content.supply_days == 28 and content.chronic == "hypertension"
        await uow.commit()
    refused = [a for a in await actions(db, rx.id) if a == "rx.refused"]
    assert len(refused) == 3


async def test_dispensing_once_and_partly(db: Database, signer: Signer) -> None:
    rx_id, code, _token, _ = await issued(db, signer)
    async with db.uow() as uow:
        rx = await uow.prescriptions.get(rx_id)
        assert rx is not None
        bad_inputs = (
            (["22"], "rx.dispense.quantity_over"),
            (["x"], "rx.dispense.quantity_bad"),
            (["0"], "rx.dispense.nothing"),
        )
        for bad, msgid in bad_inputs:
            with pytest.raises(rxf.RxError) as exc:
                await rxf.dispense(uow, rx, "Example Pharmacy", bad, T0, actor="pharmacy:test")
            assert exc.value.msgid == msgid
        given = await rxf.dispense(uow, rx, "Example Pharmacy", ["14"], T0, actor="pharmacy:t")
        assert given.partial and given.quantities == (14.0,)
        await uow.commit()
    async with db.uow() as uow:
        rx = await uow.prescriptions.get(rx_id)
        assert rx is not None
        with pytest.raises(rxf.RxError) as exc:
            await rxf.dispense(uow, rx, "Other Pharmacy", [""], T0, actor="pharmacy:t")
        assert exc.value.msgid == "rx.dispense.already"
        verdict = await rxf.verify_code(uow, code, T0)
        assert verdict.status == "dispensed" and verdict.dispensing is not None
        assert verdict.dispensing.pharmacy == "Example Pharmacy"
        await uow.commit()
    assert (await actions(db, rx_id))[-1] == "rx.dispense.refused"


async def test_two_pharmacies_at_once_dispense_it_once(db: Database, signer: Signer) -> None:
    rx_id, _, _, _ = await issued(db, signer)
    gate = asyncio.Event()

    async def pharmacy(name: str) -> str:
        async with db.uow() as uow:
            rx = await uow.prescriptions.get(rx_id)
            assert rx is not None
            await gate.wait()
            try:
                await rxf.dispense(uow, rx, name, [""], T0, actor=f"pharmacy:{name}")
            except rxf.RxError as exc:
                await uow.commit()
                return exc.msgid
            await uow.commit()
            return "ok"

    if db.sqlite:  # one writer at a time by design: the second sees the first's mark
        gate.set()
        results = [await pharmacy("A"), await pharmacy("B")]
    else:
        tasks = [asyncio.create_task(pharmacy(n)) for n in ("A", "B")]
        await asyncio.sleep(0)
        gate.set()
        results = list(await asyncio.gather(*tasks))
    gate.set()
    assert sorted(results) == ["ok", "rx.dispense.already"]


async def test_revoke_and_expiry(db: Database, signer: Signer) -> None:
    rx_id, code, _token, _ = await issued(db, signer)
    async with db.uow() as uow:
        rx = await uow.prescriptions.get(rx_id)
        assert rx is not None
        # valid for 3 days counting the day of issue (Moscow): expired on the fourth
        assert (await rxf.verify_code(uow, code, T0 + timedelta(days=2))).status == "valid"
        assert (await rxf.verify_code(uow, code, T0 + timedelta(days=3))).status == "expired"
        with pytest.raises(rxf.RxError) as exc:
            await rxf.dispense(uow, rx, "P", [""], T0 + timedelta(days=3), actor="pharmacy:t")
        assert exc.value.msgid == "rx.dispense.expired"
        assert rx.status == "expired"
        await uow.commit()
    rx_id2, _code2, token2, _ = await issued_again(db, signer)
    async with db.uow() as uow:
        rx2 = await uow.prescriptions.get(rx_id2)
        assert rx2 is not None
        doctor = await uow.doctors.get(rx2.doctor_id)
        assert doctor is not None
        await rxf.revoke(uow, doctor, rx_id2, T0)
        assert (await rxf.verify_token(uow, token2, signer, T0)).status == "revoked"
        with pytest.raises(rxf.RxError):
            await rxf.revoke(uow, doctor, rx_id2, T0)
        await uow.commit()


async def issued_again(db: Database, signer: Signer) -> tuple[str, str, str, str]:
    async with db.uow() as uow:
        _, doctor, pharmacist, case = await people(uow, tg=9500)
        rx = await draft(uow, doctor, case)
        _, token = await rxf.issue(uow, doctor, rx, T0, signer, "generic")
        await uow.commit()
        assert rx.code is not None
        return rx.id, rx.code, token, pharmacist.id


async def test_forged_and_altered_are_caught(db: Database, signer: Signer) -> None:
    rx_id, code, token, _ = await issued(db, signer)
    head, _, sig = token.partition(".")
    payload = json.loads(unb64u(head))
    async with db.uow() as uow:
        # one character of the signature changed
        bad = head + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
        assert (await rxf.verify_token(uow, bad, signer, T0)).status == "forged"
        # a payload with a later expiry, signature kept
        payload2 = dict(payload, exp="2027-01-01")
        forged = (
            b64u(json.dumps(payload2, sort_keys=True, separators=(",", ":")).encode()) + "." + sig
        )
        assert (await rxf.verify_token(uow, forged, signer, T0)).status == "forged"
        # a genuine token on another code's page
        assert (
            await rxf.verify_token(uow, token, signer, T0, code=rf.new_code())
        ).status == "forged"
        # a referral slip's token is not a prescription's, nor the other way round
        slip_token = signer.sign({k: v for k, v in payload.items() if k not in ("kid", "typ")})
        assert (await rxf.verify_token(uow, slip_token, signer, T0)).status == "forged"
        assert signer.verify(token) is None
        # the stored record altered behind the signature's back
        rx = await uow.prescriptions.get(rx_id)
        assert rx is not None
        content = await rxf.content_of(uow, rx)
        doc = content.to_dict()
        doc["items"][0]["quantity"] = "210 capsules"
        await uow.prescriptions.set_content(rx, json.dumps(doc, ensure_ascii=False))
        assert (await rxf.verify_token(uow, token, signer, T0)).status == "forged"
        assert (await rxf.verify_code(uow, code, T0)).status == "forged"
        assert (await rxf.verify_code(uow, "ZZZ-ZZZ-ZZZ", T0)).status == "unknown"
        await uow.rollback()


async def test_export_carries_dispense_request_and_dispense(db: Database, signer: Signer) -> None:
    from flows.export import record_bundle

    rx_id, _, _, _ = await issued(db, signer)
    async with db.uow() as uow:
        rx = await uow.prescriptions.get(rx_id)
        assert rx is not None
        await rxf.dispense(uow, rx, "Example Pharmacy", ["14"], T0, actor="pharmacy:t")
        patient = await uow.patients.get(rx.patient_id)
        assert patient is not None
        bundle = await record_bundle(uow, patient, now=T0)
        await uow.rollback()
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    request = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
        and "groupIdentifier" in e["resource"]
    )
    assert request["status"] == "completed"
    assert request["dispenseRequest"]["expectedSupplyDuration"]["value"] == 7
    assert request["dispenseRequest"]["quantity"] == {"value": 21, "unit": "capsules"}
    assert request["dispenseRequest"]["validityPeriod"] == {
        "start": "2026-03-02",
        "end": "2026-03-04",
    }
    dispense = next(
        e for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationDispense"
    )
    assert dispense["resource"]["quantity"]["value"] == 14
    assert dispense["resource"]["authorizingPrescription"][0]["reference"].startswith("urn:uuid:")
    assert "MedicationDispense" in kinds


async def test_erasure_revokes_and_keeps_or_deletes(db: Database, signer: Signer) -> None:
    """The attack: a pharmacy scans an erased patient's prescription. A kept record's
    prescription is revoked and names nobody on a code-only check; without a kept record it
    is gone (unknown)."""
    from flows import privacy, retention

    rx_id, code, token, _ = await issued(db, signer)
    async with db.uow() as uow:
        rx = await uow.prescriptions.get(rx_id)
        assert rx is not None
        patient = await uow.patients.get(rx.patient_id)
        assert patient is not None
        await privacy.erase(uow, patient, bot="patient", policy=retention.Policy(), now=T0)
        await uow.commit()
    async with db.uow() as uow:
        verdict = await rxf.verify_token(uow, token, signer, T0)
        assert verdict.status == "revoked"
        rx = await uow.prescriptions.get(rx_id)
        assert rx is not None and rx.key_owner == rx.consultation_id
        with pytest.raises(rxf.RxError) as exc:
            await rxf.dispense(uow, rx, "P", [""], T0, actor="pharmacy:t")
        assert exc.value.msgid == "rx.dispense.revoked"
        await uow.rollback()
    rx_id2, code2, _, _ = await issued_again(db, signer)
    async with db.uow() as uow:
        rx2 = await uow.prescriptions.get(rx_id2)
        assert rx2 is not None
        patient2 = await uow.patients.get(rx2.patient_id)
        assert patient2 is not None
        await privacy.erase(
            uow, patient2, bot="patient", policy=retention.Policy(record_years=0), now=T0
        )
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.prescriptions.get(rx_id2) is None
        assert (await rxf.verify_code(uow, code2, T0)).status == "unknown"
    assert code
