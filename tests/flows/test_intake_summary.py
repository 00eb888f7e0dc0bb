"""The clinician's summary of an intake renders in any of the three languages (a doctor reads
it in theirs), without raw message ids, with the patient's words escaped; the FHIR export of
the same answers validates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from flows.fhir import questionnaire_response
from flows.intake import State
from flows.questionnaire import load
from handlers.patient.intake_render import summary_text
from locales import LOCALES, Translator
from storage.models import Intake

ANSWERS: dict[str, Any] = {
    "subject": "other",
    "age_band": "child_1_5",
    "sex": "female",
    "category": "child_illness",
    "complaint_text": "fever since <Monday> & a cough",
    "duration": "days_1_3",
    "severity": 6,
    "red_flags_cleared": True,
    "followup": {"child_temperature": "t39_40", "child_drinking": "a_bit_less"},
    "associated": [],
    "conditions": "none",
    "medicines": "vitamin drops",
    "allergies": "none",
    "attachments": [{"kind": "photo", "file_id": "f", "unique_id": "u"}],
    "triage": {
        "disposition": "consultation_24",
        "department": "pediatrics",
        "reasons": ["child_drinking_much_less", "redflag:infant_fever"],
    },
}


@pytest.mark.parametrize("locale", LOCALES)
def test_summary_in_each_language(locale: str) -> None:
    tr = Translator(locale)
    text = summary_text(tr, load(), ANSWERS)
    assert tr.plain("intake.category.child_illness") in text
    assert tr.plain("dept.pediatrics") in text
    assert tr.plain("intake.q.child_temperature.t39_40") in text
    for raw_id in ("intake.", "redflag.", "triage.", "dept.", "disposition."):
        assert raw_id not in text, f"{locale}: untranslated id in {text!r}"
    assert "&lt;Monday&gt; &amp; a cough" in text  # the patient's words stay text


def test_fhir_questionnaire_response_validates() -> None:
    intake = Intake(
        id="a" * 32,
        patient_id="p" * 32,
        state=State.TRIAGED.value,
        questionnaire_version=load().version,
        created_at=datetime(2026, 11, 22, 9, 30, tzinfo=UTC),
    )
    doc = questionnaire_response(load(), intake, ANSWERS, patient_ref="p" * 32)
    QuestionnaireResponse.model_validate(doc)
    items = {i["linkId"]: i["answer"] for i in doc["item"]}
    assert items["severity"] == [{"valueInteger": 6}]
    assert items["complaint"][0]["valueCoding"]["code"] == "child_illness"
    assert items["q.child_temperature"][0]["valueCoding"]["code"] == "t39_40"
    assert items["complaint_text"] == [{"valueString": "fever since <Monday> & a cough"}]
    assert doc["status"] == "completed"
