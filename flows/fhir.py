"""FHIR R4 export of an intake as a QuestionnaireResponse, validated with ``fhir.resources``.

Codes are Careline's own (``urn:careline:...`` systems) with English displays, so a receiving
system can map them; free text stays as the patient wrote it.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from flows.intake import HISTORY_STATES, State
from flows.questionnaire import Questionnaire
from locales import Translator
from storage.models import Intake

SYSTEM = "urn:careline:intake"
EN = Translator("en")


def _coding(kind: str, code: str, msgid: str) -> dict[str, Any]:
    return {
        "valueCoding": {"system": f"{SYSTEM}:{kind}", "code": code, "display": EN.plain(msgid)}
    }


def questionnaire_response(
    q: Questionnaire, intake: Intake, answers: dict[str, Any], *, patient_ref: str
) -> dict[str, Any]:
    """The intake as a FHIR R4 QuestionnaireResponse (a plain dict that validates)."""
    items: list[dict[str, Any]] = []

    def add(link_id: str, text: str, values: list[dict[str, Any]]) -> None:
        if values:
            items.append({"linkId": link_id, "text": text, "answer": values})

    add(
        "subject",
        "Who is it for",
        [
            _coding(
                "subject",
                answers.get("subject", "self"),
                f"intake.subject.{answers.get('subject', 'self')}",
            )
        ],
    )
    if answers.get("subject") == "other":
        if answers.get("age_band"):
            band = answers["age_band"]
            add("age_band", "Age", [_coding("age-band", band, f"intake.age.{band}")])
        if answers.get("sex"):
            add("sex", "Sex", [_coding("sex", answers["sex"], f"sex.{answers['sex']}")])
    category = q.categories.get(str(answers.get("category", "")))
    if category is not None:
        add(
            "complaint",
            "Main complaint",
            [_coding("category", category.id, f"intake.category.{category.id}")],
        )
    if answers.get("complaint_text"):
        add(
            "complaint_text",
            "In the patient's words",
            [{"valueString": answers["complaint_text"]}],
        )
    if answers.get("duration"):
        d = answers["duration"]
        add("onset", "Onset and duration", [_coding("duration", d, f"intake.duration.{d}")])
    if answers.get("severity") is not None:
        add("severity", "Severity (0-10)", [{"valueInteger": int(answers["severity"])}])
    if answers.get("red_flag"):
        flag = answers["red_flag"]
        add("red_flag", "Red flag", [_coding("red-flag", flag, f"redflag.{flag}")])
    elif answers.get("red_flags_cleared"):
        add("red_flag", "Red flag", [{"valueString": "none of these"}])
    if category is not None:
        for question in category.questions:
            chosen = answers.get("followup", {}).get(question.id)
            if chosen:
                add(
                    f"q.{question.id}",
                    EN.plain(f"intake.q.{question.id}"),
                    [_coding(f"q:{question.id}", chosen, f"intake.q.{question.id}.{chosen}")],
                )
    if answers.get("associated"):
        add(
            "associated",
            "Associated symptoms",
            [_coding("symptom", s, f"intake.symptom.{s}") for s in answers["associated"]],
        )
    for name in HISTORY_STATES.values():
        value = answers.get(name)
        if value:
            add(name, name.capitalize(), [{"valueString": "none" if value == "none" else value}])
    if "attachments" in answers:
        add(
            "attachments",
            "Photos and voice notes",
            [{"valueInteger": len(answers["attachments"])}],
        )
    if answers.get("offline_diagnosis") is not None:
        add(
            "offline_diagnosis",
            "Diagnosed offline before",
            [{"valueBoolean": bool(answers["offline_diagnosis"])}],
        )
    result = answers.get("triage")
    if result:
        disp, dept = result["disposition"], result["department"]
        add("disposition", "Triage", [_coding("disposition", disp, f"disposition.{disp}")])
        add("department", "Department", [_coding("department", dept, f"dept.{dept}")])
    state = State(intake.state)
    status = {
        State.TRIAGED: "completed",
        State.EMERGENCY: "stopped",
        State.CANCELLED: "stopped",
    }.get(state, "in-progress")
    authored = (
        intake.created_at if intake.created_at.tzinfo else intake.created_at.replace(tzinfo=UTC)
    )
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": intake.id,
        "questionnaire": f"urn:careline:questionnaire:intake|{intake.questionnaire_version}",
        "status": status,
        "subject": {"reference": f"Patient/{patient_ref}"},
        "authored": authored.isoformat(timespec="seconds"),
        "item": items,
    }
    QuestionnaireResponse.model_validate(resource)  # raises if the resource is not valid FHIR
    return resource


def questionnaire_response_json(
    q: Questionnaire, intake: Intake, answers: dict[str, Any], *, patient_ref: str
) -> bytes:
    """:func:`questionnaire_response` as UTF-8 JSON."""
    doc = questionnaire_response(q, intake, answers, patient_ref=patient_ref)
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")
