"""FHIR R4 (R4B models of ``fhir.resources``) export: an intake as a QuestionnaireResponse, a
consultation as a Bundle of Communication resources. Every resource is validated before it
leaves.

Codes are Careline's own (``urn:careline:...`` systems) with English displays, so a receiving
system can map them; free text stays as the patient or the doctor wrote it.

Files in a consultation become ``contentAttachment``: the kept (decrypted) copy is inlined as
base64 while it fits an :class:`InlineBudget` (5 MB a file, 30 MB a document, so a document
with base64's third more still fits Telegram's 50 MB upload); a bigger file is described by
its type, name, size and SHA-1 only, and the patient can ask the clinic for it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import mimetypes
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flows.intake import HISTORY_STATES, State
from flows.questionnaire import Questionnaire
from locales import Translator
from storage.models import Consultation, Intake

SYSTEM = "urn:careline:intake"
EN = Translator("en")


def _coding(kind: str, code: str, msgid: str) -> dict[str, Any]:
    return {
        "valueCoding": {"system": f"{SYSTEM}:{kind}", "code": code, "display": EN.plain(msgid)}
    }


def _body_mark(mark: dict[str, Any]) -> dict[str, Any]:
    region = str(mark["region"])
    nested: list[dict[str, Any]] = [
        {
            "linkId": "body_map.intensity",
            "text": "Intensity (0-10)",
            "answer": [{"valueInteger": int(mark["intensity"])}],
        }
    ]
    if mark.get("type"):
        kind = str(mark["type"])
        nested.append(
            {
                "linkId": "body_map.type",
                "text": "Kind of pain",
                "answer": [_coding("pain-type", kind, f"bodymap.type.{kind}")],
            }
        )
    return {**_coding("body-region", region, f"bodymap.region.{region}"), "item": nested}


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
                # The record's wording ("The patient"), not the button the patient pressed ("Me").
                f"intake.subject.record.{answers.get('subject', 'self')}",
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
    marks = (answers.get("bodymap") or {}).get("marks") or []
    if marks:
        # The body map's marks: the region, with its intensity and kind of pain inside it.
        add("body_map", "Marked on the body", [_body_mark(m) for m in marks])
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
    # raises if the resource is not valid FHIR
    _validate("questionnaireresponse", "QuestionnaireResponse", resource)
    return resource


def questionnaire_response_json(
    q: Questionnaire, intake: Intake, answers: dict[str, Any], *, patient_ref: str
) -> bytes:
    """:func:`questionnaire_response` as UTF-8 JSON."""
    doc = questionnaire_response(q, intake, answers, patient_ref=patient_ref)
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")


# -- consultations as Communication resources --------------------------------------------------

CASE_SYSTEM = "urn:careline:consultation"  # its value is always the case number
CASE_ID_SYSTEM = "urn:careline:consultation-id"  # the internal id, when no number is at hand
MESSAGE_SYSTEM = "urn:careline:consultation-message"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/communication-category"
INLINE_FILE_MAX = 5 * 1024 * 1024
INLINE_TOTAL_MAX = 30 * 1024 * 1024
# Telegram sends photos as JPEG and voice notes as OGG/Opus; other kinds go by the file name.
_KIND_TYPES = {
    "photo": "image/jpeg",
    "voice": "audio/ogg",
    "audio": "audio/mpeg",
    "video": "video/mp4",
}


class InlineBudget:
    """How many file bytes one document may still inline (shared by all its cases)."""

    def __init__(self, total: int = INLINE_TOTAL_MAX, per_file: int = INLINE_FILE_MAX) -> None:
        self.left = total
        self.per_file = per_file

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (nothing reserved) when the file must stay out."""
        if size > self.per_file or size > self.left:
            return False
        self.left -= size
        return True


@dataclass(frozen=True)
class RecordedMessage:
    """One decrypted case message, as the export sees it."""

    id: int
    sender: str  # patient | doctor | system
    kind: str  # text | summary | photo | voice | document | audio | video
    text: str | None
    sent: datetime
    file_name: str | None = None
    data: bytes | None = None  # the kept copy of a file, if it was relayed


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _content_type(kind: str, file_name: str | None) -> str:
    if kind in _KIND_TYPES:
        return _KIND_TYPES[kind]
    guessed, _ = mimetypes.guess_type(file_name or "")
    return guessed or "application/octet-stream"


def _attachment(msg: RecordedMessage, budget: InlineBudget) -> dict[str, Any]:
    out: dict[str, Any] = {
        "contentType": _content_type(msg.kind, msg.file_name),
        "title": msg.file_name or msg.kind,
        "creation": _aware(msg.sent).isoformat(timespec="seconds"),
    }
    if msg.data is not None:
        out["size"] = len(msg.data)
        # FHIR defines Attachment.hash as the base64 SHA-1 of the data (not a security use).
        digest = hashlib.sha1(msg.data, usedforsecurity=False).digest()
        out["hash"] = base64.b64encode(digest).decode()
        if budget.take(len(msg.data)):
            out["data"] = base64.b64encode(msg.data).decode()
    return out


def _case_refs(case: Consultation) -> dict[str, Any]:
    """What groups a case's Communications: the consultation as a logical Encounter."""
    tag = f"#{case.number}"
    return {
        "encounter": {
            "identifier": {"system": CASE_SYSTEM, "value": str(case.number)},
            "display": f"Careline consultation {tag}",
        },
        "topic": {
            "coding": [{"system": CASE_SYSTEM, "code": str(case.number), "display": tag}],
            "text": f"Consultation {tag} ({EN.plain(f'dept.{case.department}')})",
        },
    }


def communication(
    case: Consultation,
    msg: RecordedMessage,
    *,
    patient_ref: str,
    doctor_ref: str | None,
    doctor_display: str | None = None,
    budget: InlineBudget | None = None,
) -> dict[str, Any]:
    """One case message as a FHIR R4 Communication (a plain dict that validates).

    Text goes into ``payload.contentString``; a file into ``payload.contentAttachment``
    (see the module notes on inline data), its caption into a second ``contentString``. The
    advice summary (kind ``summary``) has the category ``instruction``."""
    patient = {"reference": f"Patient/{patient_ref}"}
    doctor: dict[str, Any] | None = None
    if doctor_ref:
        doctor = {"reference": f"Practitioner/{doctor_ref}"}
        if doctor_display:
            doctor["display"] = doctor_display
    sender: dict[str, Any] | None = None
    recipients: list[dict[str, Any]] = []
    if msg.sender == "patient":
        sender, recipients = patient, [doctor] if doctor else []
    elif msg.sender == "doctor":
        sender, recipients = doctor, [patient]
    else:
        recipients = [patient, *([doctor] if doctor else [])]
    payload: list[dict[str, Any]] = []
    if msg.kind not in ("text", "summary"):
        payload.append({"contentAttachment": _attachment(msg, budget or InlineBudget())})
    if msg.text:
        payload.append({"contentString": msg.text})
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": f"{case.id}-{msg.id}",
        "identifier": [{"system": MESSAGE_SYSTEM, "value": f"{case.number}/{msg.id}"}],
        "status": "completed",
        "subject": patient,
        **_case_refs(case),
        "sent": _aware(msg.sent).isoformat(timespec="seconds"),
    }
    if msg.kind == "summary":
        resource["category"] = [
            {"coding": [{"system": CATEGORY_SYSTEM, "code": "instruction"}], "text": "Advice"}
        ]
    if sender is not None:
        resource["sender"] = sender
    if recipients:
        resource["recipient"] = recipients
    if payload:
        resource["payload"] = payload
    _validate(
        "communication", "Communication", resource
    )  # raises if the resource is not valid FHIR
    return resource


def case_communications(
    case: Consultation,
    messages: Sequence[RecordedMessage],
    *,
    patient_ref: str,
    summary: str | None = None,
    doctor_display: str | None = None,
    budget: InlineBudget | None = None,
) -> list[dict[str, Any]]:
    """Every message of a case as a Communication, in order, with the advice summary (from
    ``summary`` when no ``summary`` message was recorded)."""
    budget = budget or InlineBudget()
    common: dict[str, Any] = {
        "patient_ref": patient_ref,
        "doctor_ref": case.doctor_id,
        "doctor_display": doctor_display,
        "budget": budget,
    }
    out = [communication(case, msg, **common) for msg in messages]
    if summary and not any(m.kind == "summary" for m in messages):
        at = case.closed_at or case.updated_at
        advice = RecordedMessage(id=0, sender="doctor", kind="summary", text=summary, sent=at)
        resource = communication(case, advice, **common)
        resource["id"] = f"{case.id}-summary"
        resource["identifier"] = [{"system": MESSAGE_SYSTEM, "value": f"{case.number}/summary"}]
        out.append(resource)
    return out


def _full_url(resource_id: str) -> str:
    """A stable ``urn:uuid`` for an entry (the same message always gets the same one)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{CASE_SYSTEM}:{resource_id}')}"


def case_bundle(
    case: Consultation, communications: list[dict[str, Any]], *, now: datetime
) -> dict[str, Any]:
    """A case's Communications as one FHIR Bundle of type ``collection``."""
    resource: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": case.id,
        "identifier": {"system": CASE_SYSTEM, "value": str(case.number)},
        "type": "collection",
        "timestamp": _aware(now).isoformat(timespec="seconds"),
        "entry": [{"fullUrl": _full_url(c["id"]), "resource": c} for c in communications],
    }
    _validate("bundle", "Bundle", resource)  # raises if not valid FHIR
    return resource


# -- medication plans as MedicationRequest resources -------------------------------------------

PLAN_SYSTEM = "urn:careline:medication-plan"
FOOD_TEXT = {
    "with": "Take with food",
    "before": "Take before food",
    "after": "Take after food",
}
_DAY_CODES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PLAN_STATUS = {
    "draft": "draft",
    "proposed": "draft",
    "active": "active",
    "paused": "on-hold",
    "ended": "completed",
    "declined": "cancelled",
    "cancelled": "cancelled",
}


def medication_request(
    plan: Any,
    doc: dict[str, Any],
    schedule: dict[str, Any],
    *,
    patient_ref: str,
    case_numbers: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A doctor's medication plan as a FHIR R4 MedicationRequest (a plain dict that validates).

    ``doc`` holds the plan's decrypted texts (``name``, ``dose``, ``food``), ``schedule`` its
    timing JSON (``times`` or ``every_hours``, ``days``, ``start``, ``end``). Times of day go to
    ``timing.repeat.timeOfDay`` (with ``dayOfWeek`` unless every day), every N hours to
    ``frequency``/``period``/``periodUnit``; the dates to ``boundsPeriod``. The dose stays the
    doctor's free text (``dosageInstruction.text``): Careline never codes or changes it."""
    repeat: dict[str, Any] = {}
    if schedule.get("every_hours"):
        repeat.update(frequency=1, period=int(schedule["every_hours"]), periodUnit="h")
    else:
        repeat["timeOfDay"] = [f"{t}:00" for t in schedule.get("times") or []]
    days = [int(d) for d in schedule.get("days") or []]
    if days and sorted(set(days)) != [1, 2, 3, 4, 5, 6, 7]:
        repeat["dayOfWeek"] = [_DAY_CODES[d - 1] for d in sorted(set(days))]
    bounds: dict[str, Any] = {}
    if schedule.get("start"):
        bounds["start"] = schedule["start"]
    if schedule.get("end"):
        bounds["end"] = schedule["end"]
    if bounds:
        repeat["boundsPeriod"] = bounds
    food = doc.get("food") or "none"
    dosage: dict[str, Any] = {
        "sequence": 1,
        "text": doc.get("dose") or "",
        "timing": {"repeat": repeat},
    }
    if food in FOOD_TEXT:
        dosage["additionalInstruction"] = [
            {
                "coding": [{"system": f"{PLAN_SYSTEM}:food", "code": food}],
                "text": FOOD_TEXT[food],
            }
        ]
        dosage["patientInstruction"] = FOOD_TEXT[food]
    authored = plan.confirmed_at or plan.created_at
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": plan.id,
        "meta": {"versionId": str(plan.version)},
        "identifier": [{"system": PLAN_SYSTEM, "value": f"{plan.id}/{plan.version}"}],
        "status": _PLAN_STATUS.get(plan.status, "unknown"),
        "intent": "order",
        "medicationCodeableConcept": {"text": doc.get("name") or ""},
        "subject": {"reference": f"Patient/{patient_ref}"},
        "requester": {"reference": f"Practitioner/{plan.doctor_id}"},
        "dosageInstruction": [dosage],
    }
    if authored is not None:
        resource["authoredOn"] = _aware(authored).isoformat(timespec="seconds")
    if plan.consultation_id:
        resource["encounter"] = encounter_ref(plan.consultation_id, case_numbers)
    if plan.shift_minutes:
        resource["note"] = [
            {
                "text": f"The patient moved the reminder times by {plan.shift_minutes:+d} minutes"
                " (travel); the prescribed times are above."
            }
        ]
    _validate(
        "medicationrequest", "MedicationRequest", resource
    )  # raises if the resource is not valid FHIR
    return resource


def encounter_ref(consultation_id: str, numbers: dict[str, int] | None = None) -> dict[str, Any]:
    """A logical reference to the consultation a resource came from: by its case number under
    :data:`CASE_SYSTEM` (as every Communication of the case), or, without the number, by the
    internal id under a system of its own (never two kinds of value under one system)."""
    number = (numbers or {}).get(consultation_id)
    if number is not None:
        return {"identifier": {"system": CASE_SYSTEM, "value": str(number)}}
    return {"identifier": {"system": CASE_ID_SYSTEM, "value": consultation_id}}


def medication_bundle(
    plan: Any,
    doc: dict[str, Any],
    schedule: dict[str, Any],
    *,
    patient_ref: str,
    now: datetime,
) -> dict[str, Any]:
    """One plan's MedicationRequest in a FHIR Bundle of type ``collection``."""
    request = medication_request(plan, doc, schedule, patient_ref=patient_ref)
    full_url = uuid.uuid5(uuid.NAMESPACE_URL, f"{PLAN_SYSTEM}:{plan.id}/{plan.version}")
    resource: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": f"{plan.id}-{plan.version}",
        "identifier": {"system": PLAN_SYSTEM, "value": f"{plan.id}/{plan.version}"},
        "type": "collection",
        "timestamp": _aware(now).isoformat(timespec="seconds"),
        "entry": [{"fullUrl": f"urn:uuid:{full_url}", "resource": request}],
    }
    _validate("bundle", "Bundle", resource)  # raises if not valid FHIR
    return resource


def _validate(module: str, name: str, resource: dict[str, Any]) -> None:
    """Validate ``resource`` with its ``fhir.resources`` R4B model; raises if it is not valid
    FHIR. The models are imported on first use, not when the bot starts (~4 MB)."""
    model = getattr(importlib.import_module(f"fhir.resources.R4B.{module}"), name)
    model.model_validate(resource)
