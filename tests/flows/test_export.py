"""The whole record as a FHIR R4 Bundle (issue 6 point 5): a full patient record seeded through
the real flows (onboarding, an intake and a case with messages, a medication plan with doses
answered on the fake clock, a follow-up check-in with readings, a caregiver, referrals) comes
out as one Bundle that validates with ``fhir.resources``, survives a JSON round trip, holds the
expected resources with LOINC-coded readings and urn:uuid references that all resolve, carries
no Telegram id; the patient's and a doctor's exports are audited and another doctor is refused;
after erasure nothing is left to export. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from bot.settings import Settings
from flows import (
    caregivers,
    doses,
    export,
    followup,
    onboarding,
    prescriptions,
    privacy,
    referrals,
    timing,
)
from flows import consultation as cases
from flows.signing import Signer
from handlers.doctor import ops_alerts
from handlers.patient import scheduled
from scheduler.sweeper import Sweeper
from storage.models import (
    AuditRecord,
    Doctor,
    Dose,
    Intake,
    MedicationPlan,
    Patient,
    Referral,
)
from storage.uow import Database, UnitOfWork

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
PATIENT_TG = 861_001
DOCTOR_TG = 861_500
OTHER_DOCTOR_TG = 861_600
CARER_TG = 861_900
NAME = "Vera Testfall"
PHONE = "+15550100123"
ANSWERS: dict[str, Any] = {
    "subject": "self",
    "category": "cough_cold",
    "duration": "days_1_3",
    "severity": 4,
    "complaint_text": "headache in the mornings",
}
ADVICE = "Measure your blood pressure twice a day and come back in two weeks"
MEDICINE = "Amlodipine 5 mg"
ASKED = T0 + timedelta(hours=13, minutes=2)  # the first check-in, 20:00 + jitter
ISSUED = T0 + timedelta(days=1, hours=3)


async def _doctor(uow: UnitOfWork, tg: int, name: str) -> Doctor:
    doctor = await uow.doctors.add(
        Doctor(
            tg_user_id=tg,
            locale="en",
            status="verified",
            verified_until=T0 + timedelta(days=400),
            departments="general",
        )
    )
    for field, value in (
        ("name", name),
        ("title", "Attending physician"),
        ("licence", "LIC-2026-0042"),
        ("hospital", "Careline Online Clinic"),
    ):
        await uow.doctors.set_field(doctor, field, value)
    return doctor


async def _onboard(uow: UnitOfWork) -> Patient:
    patient, _ = await onboarding.start(uow, PATIENT_TG, "en")
    await onboarding.choose_language(uow, patient, "en")
    await onboarding.acknowledge_intro(uow, patient)
    await onboarding.decide_consent(uow, patient, True)
    for answer in (NAME, "1958", "female", PHONE, "UTC"):
        await onboarding.answer_step(uow, patient, answer)
    assert onboarding.step_of(patient) is onboarding.Step.DONE
    await uow.patients.set_field(patient, "conditions", "high blood pressure")
    await uow.patients.set_field(patient, "allergies", "penicillin")
    await uow.patients.set_field(patient, "medicines", "none")
    return patient


async def _sweep(db: Database, now: datetime) -> None:
    sweeper = Sweeper(db, {**scheduled(Settings()), **ops_alerts.scheduled(Settings())})
    while await sweeper.sweep_once(now):
        pass
    assert sweeper.failed == 0, "a scheduled handler raised"


async def _checkin(db: Database, patient_id: str) -> None:
    """The first check-in at 20:00: blood pressure high, pulse, no symptoms."""
    await _sweep(db, ASKED)
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        checkin = await followup.open_checkin(uow, patient, ASKED)
        assert checkin is not None
        await followup.answer_text(uow, patient, checkin, "182/111", ASKED)
        await followup.answer_text(uow, patient, checkin, "76", ASKED)
        out = await followup.press(uow, patient, checkin.id, 2, "none", "", ASKED)
        assert out.question is None
        await uow.commit()


async def _seed(db: Database) -> tuple[str, str, str, int]:
    """The full record; returns the patient's, the doctor's and another doctor's ids and the
    case number."""
    async with db.uow() as uow:
        patient = await _onboard(uow)
        doctor = await _doctor(uow, DOCTOR_TG, "Dr Ines Probe")
        other = await _doctor(uow, OTHER_DOCTOR_TG, "Dr Otto Fremd")
        intake = await uow.intakes.add(
            Intake(
                patient_id=patient.id,
                state="triaged",
                questionnaire_version="2",
                disposition="consultation",
                department="general",
            ),
            ANSWERS,
        )
        case = await cases.request_for_intake(uow, patient, intake, ANSWERS, now=T0)
        assert case is not None
        await cases.accept(uow, doctor, case.id, now=T0, jurisdiction="generic")
        await cases.patient_says(uow, patient, case, "It is worse after coffee", now=T0)
        await cases.doctor_says(uow, doctor, case, "What is your usual BP?", now=T0,
                                jurisdiction="generic")  # fmt: skip
        await cases.patient_says(uow, patient, case, "About 150 over 95", now=T0)
        await cases.close(uow, doctor, case, ADVICE, now=T0, jurisdiction="generic")
        # A medication plan (doctor-entered), started: one dose a day at 08:00.
        plan = MedicationPlan(
            patient_id=patient.id,
            doctor_id=doctor.id,
            consultation_id=case.id,
            status="active",
            step="done",
            schedule=timing.Schedule(times=("08:00",), start=T0.date()).to_json(),
        )
        plan.id = "1" * 32
        plan.details_enc = await uow.vault.seal(
            patient.id, "med_plans", "details_enc", plan.id,
            json.dumps({"name": MEDICINE, "dose": "1 tablet", "food": "with"}),
        )  # fmt: skip
        uow.session.add(plan)
        await uow.session.flush()
        await doses.start(uow, plan, patient, T0)
        # A caregiver the patient invites and who accepts.
        invitation = await caregivers.invite(uow, patient, "missed", False, "Tom", now=T0)
        await caregivers.accept(uow, invitation.token, CARER_TG, "Tommy", now=T0)
        # A follow-up plan: daily check-ins at 20:00 for 30 days.
        fplan = await followup.start_draft(uow, doctor, case, T0)
        followup.set_template(fplan, "hypertension")
        followup.set_frequency(fplan, "daily")
        followup.set_time(fplan, "20:00")
        review = followup.review_date("30", followup.today_for(patient, T0))
        await followup.activate(uow, doctor, fplan, review, T0)
        ids = (patient.id, doctor.id, other.id, case.number)
        await uow.commit()

    # The 08:00 dose is taken on day 1 and skipped (ran out) on day 2.
    for day, answer in ((0, "take"), (1, "skip")):
        if day == 1:
            await _checkin(db, ids[0])
        await _sweep(db, T0 + timedelta(days=day, hours=1, minutes=2))
        async with db.uow() as uow:
            someone = await uow.patients.get(ids[0])
            assert someone is not None
            local = (T0 + timedelta(days=day)).date().isoformat() + " 08:00"
            dose = await doses.dose_at(uow, "1" * 32, local)
            assert dose is not None
            at = T0 + timedelta(days=day, hours=1, minutes=5)
            if answer == "take":
                await doses.take(uow, someone, dose.id, dose.plan_version, at)
            else:
                await doses.skip(uow, someone, dose.id, dose.plan_version, at)
                await doses.skip_reason(uow, someone, dose.id, "ran_out", None, at)
            await uow.commit()

    # Two referrals: one issued (within 2 weeks), one issued and revoked.
    signer = Signer(db.ring)
    async with db.uow() as uow:
        issuer = await uow.doctors.get(ids[1])
        assert issuer is not None
        case = await uow.consultations.by_number(ids[3])
        assert case is not None
        for reason, urgency in (("Echocardiography", "within_2w"), ("Retinal exam", "routine")):
            ref = await referrals.start_draft(
                uow, issuer, ids[0], consultation_id=case.id, findings="BP 165/102 at home"
            )
            await referrals.save_draft(
                uow,
                ref,
                {
                    "target_hospital": "Riverside General Hospital",
                    "target_department": "Cardiology",
                    "reason": reason,
                    "urgency": urgency,
                },
            )
            issued, _content, _token = await referrals.issue(uow, issuer, ref.id, ISSUED, signer)
            if urgency == "routine":
                await referrals.revoke(uow, issuer, issued.id, ISSUED + timedelta(hours=1))
        await uow.commit()

    # Two e-prescriptions: one dispensed in part, one revoked.
    async with db.uow() as uow:
        issuer = await uow.doctors.get(ids[1])
        case = await uow.consultations.by_number(ids[3])
        assert issuer is not None and case is not None
        for n, line in enumerate(
            ("Amlodipine; 5 mg; 1 tablet every morning; 28 tablets; 28",
             "Amoxicillin; 500 mg; 1 capsule 3 times a day; 21 capsules; 7")
        ):  # fmt: skip
            rx = await prescriptions.begin(uow, issuer, case, ISSUED, "generic")
            await prescriptions.add_item(uow, issuer, rx, line, "generic")
            await prescriptions.set_adding(uow, rx, adding=False)
            for step, value in (("diagnosis", "Essential hypertension"), ("validity", "3"),
                                ("chronic", "hypertension" if n == 0 else "-")):  # fmt: skip
                await prescriptions.set_answer(uow, issuer, rx, step, value, "generic")
            await prescriptions.issue(uow, issuer, rx, ISSUED, signer, "generic")
            if n == 0:
                await prescriptions.dispense(
                    uow, rx, "Example Pharmacy", ["14"], ISSUED + timedelta(hours=2), actor="t"
                )
            else:
                await prescriptions.revoke(uow, issuer, rx.id, ISSUED + timedelta(hours=1))
        await uow.commit()
    return ids


def _by_type(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        out.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return out


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def _loinc(resource: dict[str, Any]) -> str:
    return next(c["code"] for c in resource["code"]["coding"] if c["system"] == "http://loinc.org")


async def test_a_full_record_exports_as_one_valid_bundle(db: Database) -> None:
    patient_id, doctor_id, _other, _number = await _seed(db)
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        data = await privacy.export(uow, patient, now=T0 + timedelta(days=3))
        await uow.commit()

    raw = json.loads(data)
    # Validates, and the JSON survives model -> JSON unchanged.
    model = Bundle.model_validate(raw)
    assert json.loads(model.model_dump_json(exclude_none=True)) == raw
    assert Bundle.model_validate_json(data).model_dump() == model.model_dump()
    assert raw["type"] == "collection"

    counts = Counter(e["resource"]["resourceType"] for e in raw["entry"])
    assert counts == {
        "Patient": 1,
        "Condition": 1,  # the patient's own history ("none" medicines are left out)
        "AllergyIntolerance": 1,
        "QuestionnaireResponse": 1,
        "Communication": 4,  # three messages and the advice
        "MedicationRequest": 3,  # the plan, and one per medicine of two prescriptions
        "MedicationDispense": 1,  # the dispensed prescription's medicine
        "MedicationAdministration": 2,
        "CarePlan": 1,
        "Observation": 2,  # blood pressure and pulse
        "ServiceRequest": 2,
        "Consent": 2,  # the health-data consent and the caregiver's scope
        "RelatedPerson": 1,
        "Practitioner": 1,
        "AuditEvent": counts["AuditEvent"],
    }
    assert counts["AuditEvent"] >= 6  # consent, profile answers, the export itself...

    # Every entry has a urn:uuid fullUrl equal to its id; every reference resolves.
    urls = {e["fullUrl"] for e in raw["entry"]}
    assert len(urls) == len(raw["entry"])
    for entry in raw["entry"]:
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
    refs = _references(raw["entry"])
    assert refs and all(r in urls or r.startswith("#") for r in refs), refs
    # Nothing names a Telegram account or a database id.
    for secret in (str(PATIENT_TG), str(DOCTOR_TG), str(CARER_TG), patient_id, doctor_id):
        assert secret not in data.decode(), secret

    res = _by_type(raw)
    [person] = res["Patient"]
    assert person["name"] == [{"use": "usual", "text": NAME}]
    assert person["birthDate"] == "1958" and person["gender"] == "female"
    assert person["telecom"] == [{"system": "phone", "value": PHONE, "use": "mobile"}]
    patient_url = f"urn:uuid:{person['id']}"

    [qr] = res["QuestionnaireResponse"]
    assert qr["subject"]["reference"] == patient_url
    said = [
        p["contentString"]
        for c in res["Communication"]
        for p in c.get("payload", [])
        if "contentString" in p
    ]
    assert said == [
        "It is worse after coffee",
        "What is your usual BP?",
        "About 150 over 95",
        ADVICE,
    ]
    [doctor] = res["Practitioner"]
    assert doctor["name"] == [{"text": "Dr Ines Probe"}]
    assert res["Communication"][1]["sender"]["reference"] == f"urn:uuid:{doctor['id']}"

    [request] = [r for r in res["MedicationRequest"] if "groupIdentifier" not in r]
    assert request["medicationCodeableConcept"]["text"] == MEDICINE
    revoked, dispensed = sorted(
        (r for r in res["MedicationRequest"] if "groupIdentifier" in r), key=lambda r: r["status"]
    )
    assert (dispensed["status"], revoked["status"]) == ("completed", "cancelled")
    assert dispensed["dispenseRequest"]["expectedSupplyDuration"]["value"] == 28
    assert dispensed["dispenseRequest"]["numberOfRepeatsAllowed"] == 0
    [given] = res["MedicationDispense"]
    assert given["authorizingPrescription"][0]["reference"] == f"urn:uuid:{dispensed['id']}"
    assert given["quantity"] == {"value": 14, "unit": "tablets"}
    assert request["requester"]["reference"] == f"urn:uuid:{doctor['id']}"
    taken, skipped = res["MedicationAdministration"]
    assert taken["status"] == "completed" and skipped["status"] == "not-done"
    assert skipped["statusReason"][0]["coding"][0]["code"] == "ran_out"
    assert taken["request"]["reference"] == f"urn:uuid:{request['id']}"

    [careplan] = res["CarePlan"]
    assert careplan["status"] == "active" and careplan["title"] == "Follow-up: Blood pressure"
    recurring, first = careplan["activity"]
    assert recurring["detail"]["scheduledTiming"]["repeat"]["timeOfDay"] == ["20:00:00"]
    assert first["detail"]["status"] == "completed"
    [bp] = [o for o in res["Observation"] if "component" in o]
    [pulse] = [o for o in res["Observation"] if "component" not in o]
    assert sorted(first["outcomeReference"], key=lambda r: r["reference"]) == sorted(
        ({"reference": f"urn:uuid:{o['id']}"} for o in (bp, pulse)),
        key=lambda r: r["reference"],
    )
    assert _loinc(bp) == "85354-9"
    assert [(_loinc(c), c["valueQuantity"]["value"]) for c in bp["component"]] == [
        ("8480-6", 182),
        ("8462-4", 111),
    ]
    assert bp["interpretation"][0]["coding"][0]["code"] == "H"
    assert _loinc(pulse) == "8867-4" and pulse["valueQuantity"]["value"] == 76
    assert pulse["valueQuantity"]["code"] == "/min"
    assert bp["basedOn"] == [{"reference": f"urn:uuid:{careplan['id']}"}]

    active, revoked = res["ServiceRequest"]
    assert (active["status"], active["priority"]) == ("active", "urgent")
    assert (revoked["status"], revoked["priority"]) == ("revoked", "routine")
    assert active["reasonCode"] == [{"text": "Echocardiography"}]
    assert active["performer"] == [{"display": "Riverside General Hospital, Cardiology"}]
    [requester] = active["contained"]
    assert active["requester"] == {"reference": f"#{requester['id']}"}
    assert requester["name"] == [{"text": "Dr Ines Probe"}]
    assert requester["qualification"][0]["identifier"][0]["value"] == "LIC-2026-0042"
    async with db.uow() as uow:
        codes = [r.code or "" for r in await referrals.for_patient(uow, patient_id)]
    assert sorted(r["identifier"][0]["value"] for r in (active, revoked)) == sorted(codes)

    health, carer = res["Consent"]
    assert health["status"] == "active"
    assert health["policy"] == [
        {"uri": f"urn:careline:consent:health_data:{onboarding.CONSENT_VERSION}"}
    ]
    [related] = res["RelatedPerson"]
    assert related["name"] == [{"text": "Tom"}] and related["active"] is True
    assert carer["status"] == "active"
    assert carer["provision"]["actor"][0]["reference"] == {
        "reference": f"urn:uuid:{related['id']}"
    }
    assert carer["provision"]["code"][0]["coding"][0]["code"] == "missed"

    audits = res["AuditEvent"]
    assert any(a["subtype"][0]["code"] == "record.export" for a in audits)
    assert all(a["agent"][0]["who"] for a in audits)


async def test_doctor_export_needs_the_patient_under_care_and_is_audited(db: Database) -> None:
    patient_id, doctor_id, other_id, _ = await _seed(db)
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        doctor = await uow.doctors.get(doctor_id)
        other = await uow.doctors.get(other_id)
        assert patient is not None and doctor is not None and other is not None
        with pytest.raises(export.NotUnderCare):
            await export.export_for_doctor(uow, other, patient, now=T0 + timedelta(days=3))
        data = await export.export_for_doctor(uow, doctor, patient, now=T0 + timedelta(days=3))
        Bundle.model_validate_json(data)
        await uow.commit()
    async with db.uow() as uow:
        rows = await uow.session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        actions = [(r.actor, r.action, r.record_id) for r in rows]
    assert (f"doctor:{other_id}", "record.export.refused", patient_id) in actions
    assert (f"doctor:{doctor_id}", "record.export", patient_id) in actions
    assert (f"doctor:{other_id}", "record.export", patient_id) not in actions


async def test_a_bare_patient_exports_and_erasure_leaves_nothing(db: Database) -> None:
    async with db.uow() as uow:
        patient, _ = await onboarding.start(uow, PATIENT_TG, "zh_Hans")
        await onboarding.choose_language(uow, patient, "zh_Hans")
        await onboarding.acknowledge_intro(uow, patient)
        await onboarding.decide_consent(uow, patient, True)
        bundle = await export.record_bundle(uow, patient, now=T0)
        Bundle.model_validate(bundle)
        [person] = [
            e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
        ]
        assert "name" not in person and "telecom" not in person  # nothing stored, nothing made up
        assert person["communication"][0]["language"]["coding"][0]["code"] == "zh-Hans"
        await privacy.erase(uow, patient, bot="patient", now=T0)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.patients.by_tg_user(PATIENT_TG) is None
        assert list(await uow.session.scalars(select(Dose))) == []


def test_readings_map_to_loinc_with_units() -> None:
    glucose = export.observation("r1", "glucose", "7.8", "none", T0, patient_ref="p")
    assert _loinc(glucose) == "15074-8"
    assert glucose["valueQuantity"] == {
        "value": 7.8, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"
    }  # fmt: skip
    temp = export.observation("r2", "temperature", "38.4", "high", T0, patient_ref="p")
    assert _loinc(temp) == "8310-5" and temp["valueQuantity"]["code"] == "Cel"
    pain = export.observation("r3", "pain", "9", "danger", T0, patient_ref="p")
    assert _loinc(pain) == "72514-3" and pain["interpretation"][0]["coding"][0]["code"] == "AA"
    odd = export.observation("r4", "bp", "high-ish", "none", T0, patient_ref="p")
    assert odd["valueString"] == "high-ish" and "component" not in odd
    bundle = export.assemble([glucose, temp, pain, odd], bundle_id="b1", now=T0)
    # The patient is not in this bundle: the dangling references keep a display only.
    assert all("reference" not in r["subject"] for r in (e["resource"] for e in bundle["entry"]))
    Bundle.model_validate(bundle)


def test_referral_lifecycle_maps_to_service_request_status() -> None:
    content = referrals.SlipContent(
        code="K7Q4-M9XD", patient_name=NAME, birth_year="1958", sex="female",
        doctor_name="Dr Ines Probe", doctor_title="Cardiologist", doctor_licence="LIC-1",
        doctor_hospital="Careline Online Clinic", target_hospital="Riverside General Hospital",
        target_department="", reason="Chest pain on exertion", urgency="emergency",
        findings="", issued_on=T0.date(), valid_until=(T0 + timedelta(days=2)).date(),
        locale="en",
    )  # fmt: skip
    row = Referral(
        id="r" * 32, patient_id="p", doctor_id="d", status="issued", urgency="emergency"
    )
    row.valid_until, row.issued_at = T0 + timedelta(days=2), T0
    fresh = export.service_request(row, content, patient_ref="p", now=T0)
    assert (fresh["status"], fresh["priority"]) == ("active", "stat")
    assert fresh["performer"] == [{"display": "Riverside General Hospital"}]
    late = export.service_request(row, content, patient_ref="p", now=T0 + timedelta(days=3))
    assert late["status"] == "revoked" and "expired" in late["note"][-1]["text"]
    row.status, row.used_at, row.used_by = "used", T0 + timedelta(hours=5), "desk"
    used = export.service_request(row, content, patient_ref="p", now=T0 + timedelta(days=3))
    assert used["status"] == "completed" and "hospital desk" in used["note"][-1]["text"]
    for urgency, priority in (("within_24h", "asap"), ("within_2w", "urgent")):
        other = dataclasses.replace(content, urgency=urgency)
        assert export.service_request(row, other, patient_ref="p", now=T0)["priority"] == priority
    Bundle.model_validate(export.assemble([fresh], bundle_id="b2", now=T0))


# HL7's own R4 invariants (hl7.org/fhir/R4: allergyintolerance, condition,
# medicationadministration), evaluated with an independent FHIRPath engine (fhirpathpy), not
# with fhir.resources, which builds and validates the export (its models check structure,
# not these rules).
R4_INVARIANTS: dict[str, tuple[str, str, str]] = {
    "ait-1": (
        "AllergyIntolerance",
        "AllergyIntolerance",
        "verificationStatus.coding.where(system = "
        "'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification' and "
        "code = 'entered-in-error').exists() or clinicalStatus.exists()",
    ),
    "con-3": (
        "Condition",
        "Condition",
        "clinicalStatus.exists() or verificationStatus.coding.where(system = "
        "'http://terminology.hl7.org/CodeSystem/condition-ver-status' and "
        "code = 'entered-in-error').exists() or "
        "category.coding.where(code = 'problem-list-item').empty()",
    ),
    "mad-1": (
        "MedicationAdministration",
        "MedicationAdministration.dosage",
        "dose.exists() or rate.exists()",
    ),
    "mdd-1": (
        "MedicationDispense",
        "MedicationDispense",
        "whenHandedOver.empty() or whenPrepared.empty() or whenHandedOver >= whenPrepared",
    ),
}


async def test_the_export_keeps_hl7s_r4_invariants_and_one_case_identifier(db: Database) -> None:
    from fhirpathpy import evaluate  # an engine of its own, from its registry package

    patient_id, _doctor, _other, number = await _seed(db)
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        raw = json.loads(await privacy.export(uow, patient, now=T0 + timedelta(days=3)))
        await uow.commit()
    resources = [e["resource"] for e in raw["entry"]]
    checked = Counter[str]()
    for key, (kind, context, rule) in R4_INVARIANTS.items():
        for r in (r for r in resources if r["resourceType"] == kind):
            element = context.partition(".")[2]  # "" for the resource itself
            found = r.get(element) if element else r
            nodes = found if isinstance(found, list) else [found] if found else []
            for node in nodes:
                assert evaluate(node, rule) == [True], (key, r["id"])
                checked[key] += 1
    assert checked["ait-1"] >= 1 and checked["con-3"] >= 1  # the rules did run
    # One consultation, one identifier: under urn:careline:consultation only the case number.
    values = {
        str(v)
        for r in resources
        for v in evaluate(
            r, "descendants().where(system = 'urn:careline:consultation').select(value | code)"
        )
    }
    assert values == {str(number)}, values


VALIDATOR = Path(__file__).resolve().parents[1] / "fhir_validator"


async def test_a_second_validator_accepts_the_export(db: Database, tmp_path: Path) -> None:
    """FHIR.js (npm "fhir", no code shared with fhir.resources) checks the whole-record
    export's structure, required bindings and reference target types; it must run in CI
    (``CARELINE_TEST_FHIR_VALIDATOR``), and on a laptop without Node.js it is skipped."""
    node = shutil.which("node")
    installed = (VALIDATOR / "node_modules" / "fhir").is_dir()
    if node is None or not installed:
        if os.environ.get("CARELINE_TEST_FHIR_VALIDATOR"):
            pytest.fail("the second FHIR validator is required here: node and `npm ci` in "
                        "tests/fhir_validator (.ci/test installs it)")  # fmt: skip
        pytest.skip("no Node.js or no tests/fhir_validator/node_modules (bash .ci/test)")
    patient_id, _doctor, _other, _number = await _seed(db)
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        data = await privacy.export(uow, patient, now=T0 + timedelta(days=3))
        await uow.commit()
    good = tmp_path / "record.json"
    good.write_bytes(data)
    # The same record broken the ways this validator catches: a status outside its required
    # value set, a reference to the wrong kind of resource.
    broken = json.loads(data)
    for entry in broken["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Communication":
            r["status"] = "sent-ish"
        if r["resourceType"] == "Observation":
            r["subject"] = {"reference": "Practitioner/someone"}
    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps(broken))
    done = await asyncio.to_thread(
        subprocess.run,
        [node, str(VALIDATOR / "validate.js"), str(good), str(bad)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    verdicts = json.loads(done.stdout)
    assert verdicts[str(good)] == {"valid": True, "errors": []}
    errors = verdicts[str(bad)]["errors"]
    assert verdicts[str(bad)]["valid"] is False
    assert any(e.startswith("Communication.status") for e in errors)
    assert any(e.startswith("Observation.subject: Invalid type for reference") for e in errors)
