"""A consultation as FHIR R4 Communication resources: every resource validates with
``fhir.resources``, a Bundle survives a JSON round trip with texts and files intact, big files
are described instead of inlined, and the patient's exports (one case, and /export) carry
them — audited, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from sqlalchemy import select

from flows import consultation as cases
from flows import privacy
from flows.consultation import State
from flows.fhir import (
    CASE_SYSTEM,
    InlineBudget,
    RecordedMessage,
    case_bundle,
    case_communications,
    communication,
)
from storage.models import AbuseReport, AuditRecord, Consultation, Doctor, Intake, Patient
from storage.uow import Database, UnitOfWork

# A leap day (the retention tests also check that 29 February + 3 years is 28 February).
T0 = datetime(2024, 2, 29, 10, 0, tzinfo=UTC)
ANSWERS: dict[str, Any] = {
    "subject": "self",
    "category": "cough_cold",
    "duration": "days_1_3",
    "severity": 5,
    "complaint_text": "dry cough at night",
}
ADVICE = "Warm fluids and rest; come in if the fever passes 39"
PHOTO = b"\xff\xd8\xff\xe0 fake jpeg bytes of a rash"


async def waiting_case(uow: UnitOfWork, tg: int = 7001) -> tuple[Patient, Doctor, Consultation]:
    """A patient with a profile and a triaged intake in the general queue, and a doctor."""
    patient = await uow.patients.add(
        Patient(tg_user_id=tg, locale="en", onboarding_state="done", consent_version="1")
    )
    for field, value in (("name", "Mira Testpatient"), ("birth_year", "1980"), ("sex", "female")):
        await uow.patients.set_field(patient, field, value)
    intake = await uow.intakes.add(
        Intake(
            patient_id=patient.id,
            state="triaged",
            questionnaire_version="2",
            disposition="consultation",
            department="general",
            created_at=T0 - timedelta(minutes=10),
        ),
        ANSWERS,
    )
    doctor = await uow.doctors.add(
        Doctor(
            tg_user_id=tg + 500,
            locale="en",
            status="verified",
            verified_until=T0 + timedelta(days=300),
            departments="general",
        )
    )
    await uow.doctors.set_field(doctor, "name", "Dr Ora Lind")
    await uow.doctors.set_field(doctor, "title", "Attending physician")
    case = await cases.request_for_intake(uow, patient, intake, ANSWERS, now=T0)
    assert case is not None and case.state == State.WAITING
    return patient, doctor, case


async def active_case(uow: UnitOfWork, tg: int = 7001) -> tuple[Patient, Doctor, Consultation]:
    """As :func:`waiting_case`, accepted, with a text each way and a photo from the patient."""
    patient, doctor, case = await waiting_case(uow, tg)
    await cases.accept(uow, doctor, case.id, now=T0, jurisdiction="generic")
    await cases.patient_says(uow, patient, case, "The cough keeps me awake", now=T0)
    row = await cases.patient_file(uow, patient, case, "photo", "the rash", None, now=T0)
    await uow.consultations.set_message_file(case, row, PHOTO)
    await cases.doctor_says(uow, doctor, case, "Any fever?", now=T0, jurisdiction="generic")
    await uow.reports.add(
        AbuseReport(consultation_id=case.id, patient_id=patient.id, doctor_id=doctor.id),
        "rude message",
    )
    return patient, doctor, case


PATIENT = "a" * 32
DOCTOR = "d" * 32


def _case(**extra: object) -> Consultation:
    values: dict[str, object] = {
        "id": "c" * 32,
        "number": 12,
        "patient_id": PATIENT,
        "department": "general",
        "state": "closed",
        "doctor_id": DOCTOR,
        "requested_at": T0,
        "closed_at": T0 + timedelta(hours=1),
        "updated_at": T0 + timedelta(hours=1),
    }
    values.update(extra)
    return Consultation(**values)


PDF = b"%PDF-1.4 a small lab report"
MESSAGES = [
    RecordedMessage(1, "patient", "text", "My throat hurts", T0),
    RecordedMessage(2, "patient", "photo", "the rash", T0 + timedelta(minutes=1), data=PHOTO),
    RecordedMessage(3, "doctor", "document", None, T0 + timedelta(minutes=2), "lab.pdf", PDF),
    RecordedMessage(4, "patient", "voice", None, T0 + timedelta(minutes=3)),  # not relayed yet
    RecordedMessage(5, "doctor", "summary", ADVICE, T0 + timedelta(hours=1)),
]


def test_each_message_is_a_valid_communication() -> None:
    case = _case()
    out = case_communications(case, MESSAGES, patient_ref=PATIENT, doctor_display="Dr Ora Lind")
    assert len(out) == len(MESSAGES)
    for resource in out:
        Communication.model_validate(resource)
        assert resource["status"] == "completed"
        assert resource["subject"] == {"reference": f"Patient/{PATIENT}"}
        assert resource["encounter"]["identifier"] == {"system": CASE_SYSTEM, "value": "12"}
        assert resource["topic"]["coding"][0]["code"] == "12"
    text, photo, pdf, voice, advice = out
    assert text["sender"] == {"reference": f"Patient/{PATIENT}"}
    assert text["recipient"] == [{"reference": f"Practitioner/{DOCTOR}", "display": "Dr Ora Lind"}]
    assert text["payload"] == [{"contentString": "My throat hurts"}]
    assert text["sent"] == "2024-02-29T10:00:00+00:00"
    assert pdf["sender"]["reference"] == f"Practitioner/{DOCTOR}"
    assert pdf["recipient"] == [{"reference": f"Patient/{PATIENT}"}]
    attachment = pdf["payload"][0]["contentAttachment"]
    assert attachment["contentType"] == "application/pdf" and attachment["title"] == "lab.pdf"
    assert base64.b64decode(attachment["data"]) == PDF and attachment["size"] == len(PDF)
    assert photo["payload"][0]["contentAttachment"]["contentType"] == "image/jpeg"
    assert photo["payload"][1] == {"contentString": "the rash"}
    assert voice["payload"][0]["contentAttachment"] == {
        "contentType": "audio/ogg",
        "title": "voice",
        "creation": "2024-02-29T10:03:00+00:00",
    }
    assert advice["category"][0]["coding"][0]["code"] == "instruction"
    assert advice["payload"] == [{"contentString": ADVICE}]


def test_bundle_round_trip() -> None:
    case = _case()
    bundle = case_bundle(
        case, case_communications(case, MESSAGES, patient_ref=PATIENT), now=T0 + timedelta(days=1)
    )
    text = json.dumps(bundle)
    parsed = Bundle.model_validate_json(text)
    assert parsed.type == "collection" and len(parsed.entry or []) == len(MESSAGES)
    back = json.loads(text)
    assert back == bundle
    urls = [e["fullUrl"] for e in back["entry"]]
    assert len(set(urls)) == len(urls) and all(u.startswith("urn:uuid:") for u in urls)
    # The same case exported twice gets the same entry URLs (stable ids).
    again = case_bundle(case, case_communications(case, MESSAGES, patient_ref=PATIENT), now=T0)
    assert [e["fullUrl"] for e in again["entry"]] == urls
    photo = back["entry"][1]["resource"]["payload"][0]["contentAttachment"]
    data = base64.b64decode(photo["data"])
    assert data == PHOTO
    assert base64.b64decode(photo["hash"]) == hashlib.sha1(data).digest()  # noqa: S324 - FHIR's hash


def test_big_files_are_described_not_inlined() -> None:
    case = _case()
    big = RecordedMessage(9, "patient", "document", None, T0, "scan.tiff", b"x" * 2000)
    small = RecordedMessage(10, "patient", "document", None, T0, "note.txt", b"y" * 600)
    budget = InlineBudget(total=1000, per_file=1500)
    [over_file, fits, over_total] = case_communications(
        case,
        [big, small, RecordedMessage(11, "patient", "document", None, T0, "b.txt", b"z" * 600)],
        patient_ref=PATIENT,
        budget=budget,
    )
    described = over_file["payload"][0]["contentAttachment"]
    assert "data" not in described and described["size"] == 2000
    assert described["contentType"] == "image/tiff"
    assert base64.b64decode(described["hash"]) == hashlib.sha1(b"x" * 2000).digest()  # noqa: S324
    assert "data" in fits["payload"][0]["contentAttachment"]
    assert "data" not in over_total["payload"][0]["contentAttachment"]  # the document is full
    assert budget.left == 400


def test_summary_without_a_message_and_cases_without_a_doctor() -> None:
    waiting = _case(doctor_id=None, state="awaiting_record", closed_at=None)
    record = RecordedMessage(1, "patient", "photo", "my discharge letter", T0, data=PHOTO)
    [only] = case_communications(waiting, [record], patient_ref=PATIENT)
    assert "recipient" not in only  # nobody had accepted the case yet
    closed = _case()
    [advice] = case_communications(closed, [], patient_ref=PATIENT, summary=ADVICE)
    assert advice["id"] == f"{closed.id}-summary"
    assert advice["sent"] == "2024-02-29T11:00:00+00:00"  # closed_at
    Communication.model_validate(advice)


def test_invalid_resources_are_refused() -> None:
    resource = communication(_case(), MESSAGES[0], patient_ref=PATIENT, doctor_ref=DOCTOR)
    broken = {k: v for k, v in resource.items() if k != "status"}
    with pytest.raises(pydantic.ValidationError):
        Communication.model_validate(broken)
    with pytest.raises(pydantic.ValidationError):
        Communication.model_validate({**resource, "sent": "yesterday"})


async def test_patient_exports_carry_the_consultation(db: Database) -> None:
    async with db.uow() as uow:
        patient, doctor, case = await active_case(uow)
        await cases.close(uow, doctor, case, ADVICE, now=T0, jurisdiction="generic")
        other = await uow.patients.add(
            Patient(tg_user_id=9911, locale="en", onboarding_state="done")
        )
        assert await privacy.export_case(uow, other, case.id) is None  # not theirs
        found = await privacy.export_case(uow, patient, case.id)
        assert found is not None
        bundle = json.loads(found[1])
        Bundle.model_validate(bundle)
        resources = [e["resource"] for e in bundle["entry"]]
        strings = [
            p["contentString"] for r in resources for p in r["payload"] if "contentString" in p
        ]
        assert strings == ["The cough keeps me awake", "the rash", "Any fever?", ADVICE]
        attachment = resources[1]["payload"][0]["contentAttachment"]
        assert base64.b64decode(attachment["data"]) == PHOTO
        assert resources[2]["sender"]["display"] == "Dr Ora Lind, Attending physician"
        everything = json.loads(await privacy.export(uow, patient))
        Bundle.model_validate(everything)
        exported = [
            e["resource"]
            for e in everything["entry"]
            if e["resource"]["resourceType"] == "Communication"
        ]
        assert [c["identifier"] for c in exported] == [r["identifier"] for r in resources]
        entries = await privacy.consultations(uow, patient)
        assert [(e.case.number, e.summary, e.doctor) for e in entries] == [
            (case.number, ADVICE, {"name": "Dr Ora Lind", "title": "Attending physician"})
        ]
        audit = [
            (r.action, r.record_id)
            for r in await uow.session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        ]
        assert audit.count(("consultation.export", case.id)) == 1  # the refused one is not
        assert ("record.export", patient.id) in audit
        assert ("consultation.history", patient.id) in audit
