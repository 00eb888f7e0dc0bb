"""/export end to end over the Bot API emulator (issue 6 point 5): the patient gets their whole
record as a protected FHIR R4 Bundle document in their language; the doctor of their case gets
the same record with /export <case number> (or replying to a case message); another doctor, a
case number that does not exist and a malformed argument get a clear answer and nothing else;
every export and refusal is audited."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_consultation import add_doctor, audit_actions, case_of, consult, starts
from tests.e2e.test_intake import new_patient
from tests.e2e.test_onboarding import NAMES


def _has_document(m: dict[str, Any]) -> bool:
    return "document" in m


async def _bundle(clinic: Clinic, sent: dict[str, Any]) -> dict[str, Any]:
    data = await clinic.client.download(sent["document"]["file_id"])
    raw: dict[str, Any] = json.loads(data)
    model = Bundle.model_validate(raw)
    assert json.loads(model.model_dump_json(exclude_none=True)) == raw  # round trip
    return raw


def _types(bundle: dict[str, Any]) -> Counter[str]:
    return Counter(e["resource"]["resourceType"] for e in bundle["entry"])


def _patient(bundle: dict[str, Any]) -> dict[str, Any]:
    [person] = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    return person


async def test_patient_and_their_doctor_export_the_record_another_doctor_is_refused(
    clinic: Clinic,
) -> None:
    doc = await add_doctor(clinic, "Dr Mila Exporta")
    stranger = await add_doctor(clinic, "Dr Ugo Fremdt")
    p = await new_patient(clinic, "ru")
    number = await consult(p)
    first = NAMES["ru"].split()[0]
    await doc.accept(number, first)
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.send(p.uid, PATIENT_BOT, "Голова болит по утрам")
    await doc.wait(starts(f"#{number} ·"), since_d)
    case = await case_of(clinic, p.uid)

    # The patient: a protected document, caption in Russian, a valid Bundle of their record.
    sent = await p.say("/export", _has_document)
    today = datetime.now(UTC).date().isoformat()
    assert sent["document"]["file_name"] == f"careline-record-{today}.json"
    assert sent.get("protect_content") is True
    assert sent["caption"] == p.t("export.record.caption", date=today)
    mine = await _bundle(clinic, sent)
    counts = _types(mine)
    assert counts["Patient"] == 1 and counts["QuestionnaireResponse"] == 1
    assert counts["Communication"] == 1 and counts["Practitioner"] == 1
    assert counts["Consent"] == 1 and counts["AuditEvent"] >= 1
    person = _patient(mine)
    assert person["name"] == [{"use": "usual", "text": NAMES["ru"]}]
    assert person["communication"][0]["language"]["coding"][0]["code"] == "ru"
    said = [
        p_["contentString"]
        for e in mine["entry"]
        if e["resource"]["resourceType"] == "Communication"
        for p_ in e["resource"].get("payload", [])
        if "contentString" in p_
    ]
    assert said == ["Голова болит по утрам"]
    text = json.dumps(mine, ensure_ascii=False)
    for secret in (str(p.uid), str(doc.uid), case.patient_id):
        assert secret not in text

    # Another doctor: refused, the same answer for a number that does not exist.
    refused = await stranger.say(f"/export {number}", lambda m: "text" in m)
    assert refused["text"] == stranger.t("export.doctor.not_yours", number=number)
    missing = await stranger.say("/export #99999", lambda m: "text" in m)
    assert missing["text"] == stranger.t("export.doctor.not_yours", number="99999")
    usage = await stranger.say("/export tomorrow", lambda m: "text" in m)
    assert usage["text"] == stranger.t("export.doctor.usage")
    bare = await stranger.say("/export", lambda m: "text" in m)
    assert bare["text"] == stranger.t("export.doctor.usage")

    # The patient's doctor: the same record, as a protected document.
    got = await doc.say(f"/export {number}", _has_document)
    assert got.get("protect_content") is True
    assert got["document"]["file_name"] == f"careline-record-case-{number}-{today}.json"
    assert got["caption"] == doc.t("export.doctor.caption", number=number, date=today)
    theirs = await _bundle(clinic, got)
    assert _patient(theirs)["name"] == person["name"]
    assert _types(theirs)["Communication"] == 1
    # Replying /export to a message of the case works too.
    tagged = await doc.message_id_of(f"#{number} ·")
    again = await doc.say("/export", _has_document, reply_to=tagged)
    assert again["document"]["file_name"] == got["document"]["file_name"]

    actions = await audit_actions(clinic)
    assert (f"patient:{case.patient_id}", "record.export") in actions
    assert actions.count((f"doctor:{case.doctor_id}", "record.export")) == 2
    async with clinic.app.db.uow() as uow:
        stranger_row = await uow.doctors.by_tg_user(stranger.uid)
        assert stranger_row is not None
        stranger_id = stranger_row.id
    assert actions.count((f"doctor:{stranger_id}", "record.export.refused")) == 2
    assert (f"doctor:{stranger_id}", "record.export") not in actions
