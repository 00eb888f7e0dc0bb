"""The patient's whole record as one FHIR R4 Bundle (issue 6 point 5), validated with the R4B
models of ``fhir.resources``.

:func:`record_bundle` gathers, decrypted under the patient's own data key (after erasure there
is nothing left to export):

- ``Patient``: name, birth year (``birthDate`` at year precision), gender, preferred language,
  the phone as ``telecom`` only when one is stored; the patient's own history (conditions,
  medicines, allergies as they typed them) as ``Condition``, ``MedicationStatement`` and
  ``AllergyIntolerance`` (verification ``unconfirmed``: patient-reported);
- ``QuestionnaireResponse`` per intake and ``Communication`` per case message (the builders of
  :mod:`flows.fhir`);
- ``MedicationRequest`` per medication plan (not drafts) and ``MedicationAdministration`` per
  answered or missed dose (:func:`flows.doses.medication_administration`);
- ``CarePlan`` per follow-up plan (not drafts): the schedule as a recurring activity, and each
  check-in asked as an activity of its own with its outcome readings;
- ``Observation`` per reading (LOINC: blood pressure panel 85354-9 with 8480-6 / 8462-4
  components, pulse 8867-4, glucose 15074-8 (mmol/L, the unit Careline records), temperature
  8310-5, pain 72514-3), ``basedOn`` its CarePlan;
- ``ServiceRequest`` per referral slip issued (:func:`flows.referrals.content_of`), with the
  referring doctor as a contained ``Practitioner`` whose qualification carries the licence;
- ``Consent`` per consent decision: the health-data consent with its version, and each
  caregiver decision with the caregiver as a ``RelatedPerson`` actor and the scope as the
  provision's code;
- ``Practitioner`` for each doctor referenced (name and title, as the patient sees them);
- ``AuditEvent`` per access-log entry about the patient (who: the patient, a doctor, or the
  clinic — never a Telegram id).

Every entry has a ``urn:uuid`` ``fullUrl`` (stable: derived from the row) and every reference
between entries points at one; the Bundle's own ``Resource.id`` values are those UUIDs, so no
database id or Telegram id leaves in a reference.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from flows import alerts, doses, fhir_booking, followup
from flows import consultation as cases
from flows.caregivers import CONSENT_KIND as CAREGIVER_CONSENT_KIND
from flows.fhir import (
    InlineBudget,
    RecordedMessage,
    case_communications,
    encounter_ref,
    medication_request,
    questionnaire_response,
)
from flows.questionnaire import load
from locales import Translator
from storage.crypto import CryptoError
from storage.models import (
    AuditRecord,
    Caregiver,
    CheckIn,
    Consent,
    Consultation,
    Doctor,
    FollowUpPlan,
    Patient,
    Referral,
    utcnow,
)
from storage.uow import UnitOfWork

SYSTEM = "urn:careline:record"
EXPORT_SYSTEM = "urn:careline:export"
REFERRAL_SYSTEM = "urn:careline:referral"
CAREPLAN_SYSTEM = "urn:careline:followup-plan"
CHECKIN_SYSTEM = "urn:careline:checkin"
CAREGIVER_SCOPE_SYSTEM = "urn:careline:caregiver-scope"
AUDIT_SYSTEM = "urn:careline:audit"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
AUDIT_TYPE = "http://dicom.nema.org/resources/ontology/DCM"
EN = Translator("en")

REFERRAL_DRAFT = "draft"
# Referral urgency -> ServiceRequest.priority.
PRIORITY = {
    "emergency": "stat",
    "within_24h": "asap",
    "within_2w": "urgent",
    "routine": "routine",
}
REFERRAL_STATUS = {
    "issued": "active",
    "used": "completed",
    "revoked": "revoked",
    "expired": "revoked",  # no longer authorises a visit (a note says it expired)
}
_LANGUAGES = {"en": "en", "zh_Hans": "zh-Hans", "ru": "ru"}
_GENDER = {"female": "female", "male": "male", "other": "other", "undisclosed": "unknown"}
_PLAN_STATUS = {"active": "active", "review": "active", "ended": "completed"}
_CHECKIN_STATUS = {
    "pending": "in-progress",
    "done": "completed",
    "missed": "stopped",
    "closed": "cancelled",
}
_NOTHING = {"", "none", "no", "nothing", "-", "нет", "无", "没有"}


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _iso(at: datetime) -> str:
    return _aware(at).isoformat(timespec="seconds")


def entry_uuid(resource_type: str, row_id: str) -> str:
    """The stable UUID of an entry: the same row always gets the same one."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SYSTEM}:{resource_type}/{row_id}"))


# -- small builders ------------------------------------------------------------------------------


def patient_resource(
    patient: Patient, profile: dict[str, str | None], *, patient_ref: str
) -> dict[str, Any]:
    """The patient: name, birth year, gender, language, phone (only when stored)."""
    resource: dict[str, Any] = {"resourceType": "Patient", "id": patient_ref, "active": True}
    if profile.get("name"):
        resource["name"] = [{"use": "usual", "text": profile["name"]}]
    sex = profile.get("sex")
    if sex:
        resource["gender"] = _GENDER.get(sex, "unknown")
    year = (profile.get("birth_year") or "").strip()
    if re.fullmatch(r"\d{4}", year):
        resource["birthDate"] = year  # year precision: Careline asks for the year only
    if profile.get("phone"):
        resource["telecom"] = [{"system": "phone", "value": profile["phone"], "use": "mobile"}]
    language = _LANGUAGES.get(patient.locale)
    if language:
        resource["communication"] = [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": language}]},
                "preferred": True,
            }
        ]
    return resource


def _said(value: str | None) -> bool:
    return bool(value) and (value or "").strip().lower() not in _NOTHING


def history_resources(
    history: dict[str, str | None], *, patient_id: str, at: datetime
) -> list[dict[str, Any]]:
    """What the patient said of their conditions, medicines and allergies (free text)."""
    subject = {"reference": f"Patient/{patient_id}"}
    out: list[dict[str, Any]] = []
    if _said(history.get("conditions")):
        out.append(
            {
                "resourceType": "Condition",
                "id": f"{patient_id}-conditions",
                "category": [
                    {"coding": [{"system": CONDITION_CATEGORY, "code": "problem-list-item"}]}
                ],
                # con-3: a problem-list item states its clinical status.
                "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
                "verificationStatus": {
                    "coding": [{"system": VERIFICATION, "code": "unconfirmed"}]
                },
                "code": {"text": history["conditions"]},
                "subject": subject,
                "recordedDate": _iso(at),
                "note": [{"text": "As the patient described it"}],
            }
        )
    if _said(history.get("medicines")):
        out.append(
            {
                "resourceType": "MedicationStatement",
                "id": f"{patient_id}-medicines",
                "status": "active",
                "medicationCodeableConcept": {"text": history["medicines"]},
                "subject": subject,
                "dateAsserted": _iso(at),
                "informationSource": subject,
                "note": [{"text": "As the patient described it"}],
            }
        )
    if _said(history.get("allergies")):
        out.append(
            {
                "resourceType": "AllergyIntolerance",
                "id": f"{patient_id}-allergies",
                # ait-1: the clinical status is present unless entered in error.
                "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
                "verificationStatus": {
                    "coding": [{"system": ALLERGY_VERIFICATION, "code": "unconfirmed"}]
                },
                "code": {"text": history["allergies"]},
                "patient": subject,
                "recordedDate": _iso(at),
                "note": [{"text": "As the patient described it"}],
            }
        )
    return out


def practitioner(doctor_id: str, card: dict[str, str]) -> dict[str, Any]:
    """A doctor as the patient sees them: name and title (no account, phone or licence)."""
    resource: dict[str, Any] = {"resourceType": "Practitioner", "id": doctor_id}
    if card.get("name"):
        resource["name"] = [{"text": card["name"]}]
    if card.get("title"):
        resource["qualification"] = [{"code": {"text": card["title"]}}]
    return resource


# -- readings ------------------------------------------------------------------------------------

_VITAL = [{"coding": [{"system": OBS_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}]
_LAB = [{"coding": [{"system": OBS_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}]
_SURVEY = [{"coding": [{"system": OBS_CATEGORY, "code": "survey", "display": "Survey"}]}]
# kind -> (LOINC code, display, UCUM unit, unit text, category)
READING_CODES: dict[str, tuple[str, str, str, str, list[dict[str, Any]]]] = {
    "pulse": ("8867-4", "Heart rate", "/min", "beats/minute", _VITAL),
    "glucose": ("15074-8", "Glucose [Moles/volume] in Blood", "mmol/L", "mmol/L", _LAB),
    "temperature": ("8310-5", "Body temperature", "Cel", "°C", _VITAL),
    "pain": (
        "72514-3",
        "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
        "{score}",
        "score",
        _SURVEY,
    ),
}
_FLAG = {
    "none": ("N", "Normal"),
    "high": ("H", "High"),
    "low": ("L", "Low"),
    "danger": ("AA", "Critical abnormal"),
}


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    number: int | float = int(value) if float(value).is_integer() else value
    return {"value": number, "unit": unit, "system": UCUM, "code": code}


def observation(
    reading_id: str,
    kind: str,
    value: str,
    flag: str,
    taken_at: datetime,
    *,
    patient_ref: str,
    careplan_ref: str | None = None,
) -> dict[str, Any]:
    """A reading as an Observation (a BP panel with its two components); a value that does
    not parse stays as ``valueString``."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": reading_id,
        "status": "final",
        "subject": {"reference": f"Patient/{patient_ref}"},
        "effectiveDateTime": _iso(taken_at),
        "performer": [{"reference": f"Patient/{patient_ref}"}],
        "note": [{"text": "Measured and reported by the patient"}],
    }
    if careplan_ref:
        resource["basedOn"] = [{"reference": f"CarePlan/{careplan_ref}"}]
    if flag in _FLAG:
        code, display = _FLAG[flag]
        resource["interpretation"] = [
            {"coding": [{"system": INTERPRETATION, "code": code, "display": display}]}
        ]
    bp = re.fullmatch(r"\s*(\d{2,3})\s*/\s*(\d{2,3})\s*", value)
    if kind == "bp":
        resource["category"] = _VITAL
        resource["code"] = {
            "coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}],
            "text": "Blood pressure",
        }
        if bp:
            resource["component"] = [
                {
                    "code": {"coding": [{"system": LOINC, "code": c, "display": d}]},
                    "valueQuantity": _quantity(float(v), "mmHg", "mm[Hg]"),
                }
                for c, d, v in (
                    ("8480-6", "Systolic blood pressure", bp.group(1)),
                    ("8462-4", "Diastolic blood pressure", bp.group(2)),
                )
            ]
        else:
            resource["valueString"] = value
        return resource
    known = READING_CODES.get(kind)
    if known is None:
        resource["code"] = {"coding": [{"system": f"{SYSTEM}:reading", "code": kind}]}
        resource["valueString"] = value
        return resource
    code, display, ucum, unit, category = known
    resource["category"] = category
    resource["code"] = {"coding": [{"system": LOINC, "code": code, "display": display}]}
    try:
        resource["valueQuantity"] = _quantity(float(value.replace(",", ".")), unit, ucum)
    except ValueError:
        resource["valueString"] = value
    return resource


# -- follow-up plans -----------------------------------------------------------------------------


def care_plan(
    plan: FollowUpPlan,
    checkins: Iterable[CheckIn],
    outcomes: dict[str, list[str]],
    *,
    patient_ref: str,
    case_numbers: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A follow-up plan as a CarePlan: its schedule as one recurring activity, then every
    check-in asked (status, when, the readings it recorded as ``outcomeReference``)."""
    name = EN.plain(f"followup.template.{plan.template}")
    schedule = json.loads(plan.schedule or "{}")
    repeat: dict[str, Any] = {}
    if schedule.get("times"):
        repeat["timeOfDay"] = [f"{t}:00" for t in schedule["times"]]
    days = sorted({int(d) for d in schedule.get("days") or []})
    if days and days != [1, 2, 3, 4, 5, 6, 7]:
        repeat["dayOfWeek"] = [
            ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[d - 1] for d in days
        ]
    if schedule.get("every_hours"):
        repeat.update(frequency=1, period=int(schedule["every_hours"]), periodUnit="h")
    bounds = {k: schedule[k] for k in ("start", "end") if schedule.get(k)}
    if bounds:
        repeat["boundsPeriod"] = bounds
    status = _PLAN_STATUS.get(plan.status, "unknown")
    recurring: dict[str, Any] = {
        "kind": "Task",
        "code": {
            "coding": [{"system": CHECKIN_SYSTEM, "code": plan.template}],
            "text": "Check-in",
        },
        "status": "scheduled" if status == "active" else "completed",
        "description": f"{name} check-in",
    }
    if repeat:
        recurring["scheduledTiming"] = {"repeat": repeat}
    activity: list[dict[str, Any]] = [{"detail": recurring}]
    for row in checkins:
        detail: dict[str, Any] = {
            "kind": "Task",
            "code": {
                "coding": [{"system": CHECKIN_SYSTEM, "code": plan.template}],
                "text": "Check-in",
            },
            "status": _CHECKIN_STATUS.get(row.status, "unknown"),
            "scheduledString": f"{row.local} (patient's local time)",
            "description": f"{name} check-in, {row.local}",
        }
        if row.status == "missed":
            detail["statusReason"] = {"text": "Not answered"}
        item: dict[str, Any] = {"detail": detail}
        refs = outcomes.get(row.id) or []
        if refs:
            item["outcomeReference"] = [{"reference": f"Observation/{r}"} for r in refs]
        if row.level in ("alert", "danger"):
            item["progress"] = [{"text": f"Answers flagged: {row.level}"}]
        activity.append(item)
    period: dict[str, Any] = {"start": _iso(plan.created_at)}
    end = plan.ended_at or plan.review_by
    if end is not None:
        period["end"] = _iso(end)
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": plan.id,
        "identifier": [{"system": CAREPLAN_SYSTEM, "value": f"{plan.id}/{plan.version}"}],
        "status": status,
        "intent": "plan",
        "title": f"Follow-up: {name}",
        "subject": {"reference": f"Patient/{patient_ref}"},
        "period": period,
        "created": _iso(plan.created_at),
        "author": {"reference": f"Practitioner/{plan.doctor_id}"},
        "activity": activity,
    }
    if plan.consultation_id:
        resource["encounter"] = encounter_ref(plan.consultation_id, case_numbers)
    return resource


# -- referrals -----------------------------------------------------------------------------------


def service_request(
    referral: Referral,
    content: Any,
    *,
    patient_ref: str,
    now: datetime,
    case_numbers: dict[str, int] | None = None,
) -> dict[str, Any]:
    """An issued referral slip as a ServiceRequest. ``content`` is its
    :class:`flows.referrals.SlipContent` (decrypted under the patient's key): the requester is
    the referring doctor as a contained Practitioner (qualification: the licence number)."""
    status = referral.status
    if (
        status == "issued"
        and referral.valid_until is not None
        and _aware(referral.valid_until) < now
    ):
        status = "expired"
    doctor: dict[str, Any] = {"resourceType": "Practitioner", "id": "requester"}
    if getattr(content, "doctor_name", None):
        doctor["name"] = [{"text": content.doctor_name}]
    qualification: dict[str, Any] = {
        "code": {"text": getattr(content, "doctor_title", "") or "Physician"}
    }
    if getattr(content, "doctor_licence", None):
        qualification["identifier"] = [
            {"type": {"text": "Practice licence"}, "value": content.doctor_licence}
        ]
    if getattr(content, "doctor_hospital", None):
        qualification["issuer"] = {"display": content.doctor_hospital}
    doctor["qualification"] = [qualification]
    target = ", ".join(
        v
        for v in (
            getattr(content, "target_hospital", ""),
            getattr(content, "target_department", ""),
        )
        if v
    )
    notes: list[dict[str, Any]] = []
    if getattr(content, "findings", None):
        notes.append({"text": f"Findings: {content.findings}"})
    if status == "expired":
        notes.append({"text": "The slip expired before it was used."})
    if status == "revoked" and referral.revoked_at is not None:
        on = _aware(referral.revoked_at).date().isoformat()
        notes.append({"text": f"Revoked by the referring doctor on {on}."})
    if status == "used" and referral.used_at is not None:
        who = "the hospital desk" if referral.used_by == "desk" else "the patient"
        notes.append(
            {"text": f"Visit recorded by {who} on {_aware(referral.used_at).date().isoformat()}."}
        )
    urgency = getattr(content, "urgency", None) or referral.urgency
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": referral.id,
        "contained": [doctor],
        "identifier": [
            {
                "system": REFERRAL_SYSTEM,
                "value": getattr(content, "code", None) or referral.code or referral.id,
            }
        ],
        "status": REFERRAL_STATUS.get(status, "unknown"),
        "intent": "order",
        "category": [
            {"coding": [{"system": SNOMED, "code": "3457005", "display": "Patient referral"}]}
        ],
        "priority": PRIORITY.get(urgency, "routine"),
        "code": {"text": f"Referral to {target}" if target else "Referral"},
        "subject": {"reference": f"Patient/{patient_ref}"},
        "requester": {"reference": "#requester"},
    }
    issued = getattr(content, "issued_on", None)
    until = getattr(content, "valid_until", None)
    period = {
        k: (v.isoformat() if isinstance(v, date) else str(v))
        for k, v in (("start", issued), ("end", until))
        if v
    }
    if period:
        resource["occurrencePeriod"] = period
    if referral.issued_at is not None:
        resource["authoredOn"] = _iso(referral.issued_at)
    if target:
        resource["performer"] = [{"display": target}]
    if getattr(content, "reason", None):
        resource["reasonCode"] = [{"text": content.reason}]
    if notes:
        resource["note"] = notes
    if referral.consultation_id:
        resource["encounter"] = encounter_ref(referral.consultation_id, case_numbers)
    return resource


# -- consents ------------------------------------------------------------------------------------

# A caregiver's consent decision -> the audit action recorded with it.
_DECISION_ACTION = {
    "granted": "caregiver.accept",
    "declined": "caregiver.decline",
    "revoked": "caregiver.revoke",
    "withdrawn": "caregiver.stop",
}


def consent(
    row: Consent,
    *,
    patient_ref: str,
    current: bool,
    caregiver: Caregiver | None = None,
) -> dict[str, Any]:
    """One consent decision: the health-data consent (with its version), or a caregiver's
    scope (the caregiver as a RelatedPerson actor). ``current``: the latest decision of its
    kind (only a current grant is ``active``)."""
    if row.decision == "granted":
        status = "active" if current else "inactive"
    elif row.decision == "declined":
        status = "rejected"
    else:
        status = "inactive"
    provision: dict[str, Any] = {"type": "permit" if row.decision == "granted" else "deny"}
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": str(row.id),
        "status": status,
        "patient": {"reference": f"Patient/{patient_ref}"},
        "dateTime": _iso(row.at),
    }
    if row.kind == CAREGIVER_CONSENT_KIND:
        resource["scope"] = {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]}
        resource["category"] = [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]},
            {"text": "Family caregiver access"},
        ]
        resource["policy"] = [{"uri": f"urn:careline:consent:caregiver:{row.version}"}]
        provision["code"] = [
            {
                "coding": [{"system": CAREGIVER_SCOPE_SYSTEM, "code": row.version}],
                "text": EN.plain(f"caregivers.scope.{row.version}")
                if row.version in ("reminders", "missed", "checkins")
                else row.version,
            }
        ]
        if caregiver is not None:
            provision["actor"] = [
                {
                    "role": {"coding": [{"system": ROLE_CODE, "code": "CAREGIVER"}]},
                    "reference": {"reference": f"RelatedPerson/{caregiver.id}"},
                }
            ]
            if caregiver.accepted_at is not None:
                period = {"start": _iso(caregiver.accepted_at)}
                if caregiver.revoked_at is not None:
                    period["end"] = _iso(caregiver.revoked_at)
                provision["period"] = period
    else:
        resource["scope"] = {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]}
        resource["category"] = [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]},
            {"text": "Processing of health data"},
        ]
        resource["policy"] = [{"uri": f"urn:careline:consent:{row.kind}:{row.version}"}]
        resource["policyRule"] = {"text": f"Careline privacy notice, version {row.version}"}
    resource["provision"] = provision
    return resource


def related_person(caregiver: Caregiver, name: str, *, patient_ref: str) -> dict[str, Any]:
    """A caregiver: the name the patient gave (never their Telegram account)."""
    resource: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "id": caregiver.id,
        "active": caregiver.status == "active",
        "patient": {"reference": f"Patient/{patient_ref}"},
        "relationship": [
            {"coding": [{"system": ROLE_CODE, "code": "CAREGIVER"}], "text": "Family caregiver"}
        ],
    }
    if name:
        resource["name"] = [{"text": name}]
    if caregiver.accepted_at is not None:
        period = {"start": _iso(caregiver.accepted_at)}
        if caregiver.revoked_at is not None:
            period["end"] = _iso(caregiver.revoked_at)
        resource["period"] = period
    return resource


# -- the access log ------------------------------------------------------------------------------


def audit_event(row: AuditRecord, *, patient_ref: str, doctors: set[str]) -> dict[str, Any]:
    """One access-log entry about the patient: what, when, and who (the patient, a doctor of
    theirs, a doctor, or the clinic) — no Telegram id, no details."""
    kind, _, ref = row.actor.partition(":")
    who: dict[str, Any]
    if kind == "patient" and ref == patient_ref:
        who = {"reference": f"Patient/{patient_ref}"}
    elif kind == "doctor" and ref in doctors:
        who = {"reference": f"Practitioner/{ref}"}
    elif kind == "doctor":
        who = {"display": "A Careline doctor"}
    elif kind in ("admin", "system"):
        who = {"display": "Careline"}
    else:
        who = {"display": "Someone else"}
    return {
        "resourceType": "AuditEvent",
        "id": f"audit-{row.seq}",
        "type": {"system": AUDIT_TYPE, "code": "110110", "display": "Patient Record"},
        "subtype": [{"system": AUDIT_SYSTEM, "code": row.action}],
        "recorded": _iso(row.at),
        "agent": [{"who": who, "requestor": True}],
        "source": {"observer": {"display": "Careline"}},
        "entity": [{"what": {"reference": f"Patient/{patient_ref}"}}],
    }


# -- consultations -------------------------------------------------------------------------------


async def case_resources(
    uow: UnitOfWork, case: Consultation, budget: InlineBudget
) -> list[dict[str, Any]]:
    """Every message of a case (and its advice) as FHIR Communications, decrypted (the whole
    record here, and one case's export: :func:`flows.privacy.export_case`)."""
    recorded = [
        RecordedMessage(
            id=row.id,
            sender=row.sender,
            kind=row.kind,
            text=await uow.consultations.message_text(case, row),
            sent=row.created_at,
            file_name=row.file_name,
            data=await uow.consultations.message_file(case, row),
        )
        for row in await uow.consultations.messages(case)
    ]
    doctor = await uow.doctors.get(case.doctor_id) if case.doctor_id else None
    display = None
    if doctor is not None:
        card = await cases.doctor_card(uow, doctor)
        display = ", ".join(v for v in (card["name"], card["title"]) if v) or None
    summary = (
        await uow.consultations.open_text(case, "summary_enc", case.summary_enc)
        if case.summary_enc is not None
        else None
    )
    return case_communications(
        case,
        recorded,
        patient_ref=case.patient_id,
        summary=summary,
        doctor_display=display,
        budget=budget,
    )


# -- the bundle ----------------------------------------------------------------------------------


def _relink(node: Any, urls: dict[str, str]) -> Any:
    """Every ``reference`` to an entry of the bundle ("Type/id") becomes its ``urn:uuid``."""
    if isinstance(node, dict):
        out = {k: _relink(v, urls) for k, v in node.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref in urls:
            out["reference"] = urls[ref]
        return out
    if isinstance(node, list):
        return [_relink(v, urls) for v in node]
    return node


def assemble(resources: list[dict[str, Any]], *, bundle_id: str, now: datetime) -> dict[str, Any]:
    """Resources (with row ids and "Type/id" references) as one validated Bundle of type
    ``collection``: each gets a stable ``urn:uuid`` fullUrl and that UUID as its id; a
    reference to something not in the bundle keeps only its display (or is dropped)."""
    urls: dict[str, str] = {}
    for r in resources:
        key = f"{r['resourceType']}/{r['id']}"
        urls[key] = f"urn:uuid:{entry_uuid(r['resourceType'], r['id'])}"
    entries = []
    for r in resources:
        linked = _relink(r, urls)
        linked = _drop_dangling(linked)
        full = urls[f"{r['resourceType']}/{r['id']}"]
        linked["id"] = full.removeprefix("urn:uuid:")
        entries.append({"fullUrl": full, "resource": linked})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"lastUpdated": _iso(now)},
        "identifier": {"system": EXPORT_SYSTEM, "value": bundle_id},
        "type": "collection",
        "timestamp": _iso(now),
        "entry": entries,
    }
    # Validation raises if the bundle (or any resource) is not valid FHIR; the model's own
    # JSON is what leaves (UTC as "Z"), so reading the file back gives the same JSON.
    from fhir.resources.R4B.bundle import Bundle  # on first use, not at start (see fhir.py)

    model = Bundle.model_validate(bundle)
    out: dict[str, Any] = json.loads(model.model_dump_json(exclude_none=True))
    return out


_RELATIVE = re.compile(r"^[A-Z][A-Za-z]+/[^/]+$")


def _drop_dangling(node: Any) -> Any:
    """A relative reference left after relinking points outside the bundle: keep its display
    (a reference needs one of reference, identifier or display) and drop the id."""
    if isinstance(node, dict):
        out = {k: _drop_dangling(v) for k, v in node.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and _RELATIVE.match(ref):
            del out["reference"]
            if not out:
                out["display"] = ref.split("/", 1)[0]
        return out
    if isinstance(node, list):
        return [_drop_dangling(v) for v in node]
    return node


async def _referral_resources(
    uow: UnitOfWork, patient: Patient, now: datetime, case_numbers: dict[str, int]
) -> list[dict[str, Any]]:
    """ServiceRequests of the patient's issued referrals (needs :mod:`flows.referrals`)."""
    rows = await uow.records.referrals(patient.id, excluding=REFERRAL_DRAFT)
    rows = [r for r in rows if r.content_enc is not None]
    if not rows:
        return []
    from flows import referrals  # late: lands with the referral slips

    out = []
    for row in rows:
        content = await referrals.content_of(uow, row)
        out.append(
            service_request(
                row, content, patient_ref=patient.id, now=now, case_numbers=case_numbers
            )
        )
    return out


async def _prescription_resources(
    uow: UnitOfWork, patient: Patient, case_numbers: dict[str, int], cite: Any
) -> list[dict[str, Any]]:
    """MedicationRequests (with dispenseRequest) and MedicationDispenses of the patient's
    issued e-prescriptions."""
    from flows import fhir_rx
    from flows import prescriptions as rxf

    out: list[dict[str, Any]] = []
    for rx in reversed(await rxf.for_patient(uow, patient.id)):
        try:
            content = await rxf.content_of(uow, rx)
        except CryptoError:  # a record kept under its case's key after an erasure
            continue
        cite(rx.doctor_id)
        out += fhir_rx.medication_requests(
            rx, content, patient_ref=patient.id, case_numbers=case_numbers
        )
        given = await rxf.dispensing_of(uow, rx)
        if given is not None:
            out += fhir_rx.medication_dispenses(rx, content, given, patient_ref=patient.id)
    return out


async def _caregiver_of(
    uow: UnitOfWork, row: Consent, caregivers: list[Caregiver]
) -> Caregiver | None:
    """The caregiver a caregiver consent decision was about: the only one with that scope,
    else the one whose audited decision is closest in time (the consent row names nobody)."""
    same = [c for c in caregivers if c.scope == row.version]
    if len(same) <= 1:
        return same[0] if same else None
    action = _DECISION_ACTION.get(row.decision)
    best: tuple[float, Caregiver] | None = None
    for cg in same:
        for link in await uow.audit.for_record("caregiver", cg.id):
            if link.action != action:
                continue
            gap = abs((_aware(link.at) - _aware(row.at)).total_seconds())
            if best is None or gap < best[0]:
                best = (gap, cg)
    return best[1] if best else None


async def record_bundle(
    uow: UnitOfWork, patient: Patient, *, now: datetime | None = None
) -> dict[str, Any]:
    """The patient's whole record as a validated FHIR R4 Bundle (type ``collection``).
    Reads only; the caller audits the export (:func:`export_for_patient`,
    :func:`export_for_doctor`)."""
    now = now or utcnow()
    pid = patient.id
    resources: list[dict[str, Any]] = []
    profile = await uow.patients.profile(patient)
    resources.append(patient_resource(patient, profile, patient_ref=pid))
    resources += history_resources(
        await uow.patients.history(patient), patient_id=pid, at=patient.updated_at
    )

    doctor_ids: list[str] = []

    def cite(doctor_id: str | None) -> None:
        if doctor_id and doctor_id not in doctor_ids:
            doctor_ids.append(doctor_id)

    q = load()
    for intake in reversed(await uow.intakes.for_patient(pid, limit=100_000)):
        resources.append(
            questionnaire_response(q, intake, await uow.intakes.answers(intake), patient_ref=pid)
        )

    budget = InlineBudget()  # one budget for the whole document (see flows.fhir)
    own_cases = sorted(await uow.consultations.for_patient(pid), key=lambda c: c.number)
    numbers = {c.id: c.number for c in own_cases}  # one identifier per consultation: its number
    for case in own_cases:
        cite(case.doctor_id)
        resources += await case_resources(uow, case, budget)

    plans = await doses.plans_of(
        uow, patient, ("proposed", "active", "paused", "ended", "declined", "cancelled")
    )
    for plan in plans:
        cite(plan.doctor_id)
        details = await doses.details_of(uow, plan)
        resources.append(
            medication_request(
                plan,
                details,
                json.loads(plan.schedule or "{}"),
                patient_ref=pid,
                case_numbers=numbers,
            )
        )
    resources += await doses.administrations(uow, patient)

    followups = [p for p in await uow.records.followup_plans(pid) if p.status != followup.DRAFT]
    readings = await uow.records.readings(pid)
    checkins = await uow.records.checkins(pid)
    plan_of_checkin = {c.id: c.plan_id for c in checkins}
    plan_ids = {p.id for p in followups}
    outcomes: dict[str, list[str]] = {}
    observations = []
    for reading in readings:
        value = await uow.records.reading_value(reading)
        plan_id = plan_of_checkin.get(reading.checkin_id or "")
        if reading.checkin_id:
            outcomes.setdefault(reading.checkin_id, []).append(reading.id)
        observations.append(
            observation(
                reading.id,
                reading.kind,
                value,
                reading.flag,
                reading.taken_at,
                patient_ref=pid,
                careplan_ref=plan_id if plan_id in plan_ids else None,
            )
        )
    for fplan in followups:
        cite(fplan.doctor_id)
        asked = [c for c in checkins if c.plan_id == fplan.id and c.status != "closed"]
        resources.append(care_plan(fplan, asked, outcomes, patient_ref=pid, case_numbers=numbers))
    resources += observations

    resources += await _referral_resources(uow, patient, now, numbers)
    resources += await _prescription_resources(uow, patient, numbers, cite)

    # Booked consultations: Appointment, and the receipt (Invoice) of a paid one.
    for b in sorted(await uow.bookings.of_patient(pid), key=lambda b: b.created_at):
        cite(b.doctor_id)
        slot = await uow.bookings.slot(b.slot_id)
        resources.append(
            fhir_booking.appointment(b, patient_ref=pid, end=slot.end_at if slot else None)
        )
        receipt = fhir_booking.invoice(b, patient_ref=pid)
        if receipt is not None:
            resources.append(receipt)

    # Hospital appointments behind referrals.
    for appt in await uow.appointments.for_patient(pid):
        hslot = await uow.appointments.slot(appt.slot_id)
        if hslot is None:
            continue
        service = await uow.appointments.service(appt.service_id)
        hospital = await uow.referrals.hospital(appt.hospital_id)
        resources.append(
            fhir_booking.hospital_appointment(
                appt,
                hslot,
                service,
                hospital.name if hospital else "Hospital",
                patient_ref=pid,
                outcome=await uow.appointments.outcome(appt),
            )
        )

    caregivers = await uow.records.caregivers(pid)
    consents = await uow.consents.for_patient(pid)
    about: dict[int, Caregiver | None] = {}
    latest: dict[str, int] = {}  # the latest decision of each kind (each caregiver)
    for row in consents:
        cg = None
        if row.kind == CAREGIVER_CONSENT_KIND:
            cg = await _caregiver_of(uow, row, caregivers)
        about[row.id] = cg
        key = row.kind if cg is None else f"caregiver:{cg.id}"
        latest[key] = row.id
    named: set[str] = set()
    for row in consents:
        cg = about[row.id]
        key = row.kind if cg is None else f"caregiver:{cg.id}"
        if cg is not None:
            named.add(cg.id)
        resources.append(
            consent(row, patient_ref=pid, current=latest[key] == row.id, caregiver=cg)
        )
    for cg in caregivers:
        if cg.id in named or cg.status == "active":
            name = await uow.records.caregiver_name(cg)
            resources.append(related_person(cg, name, patient_ref=pid))

    for doctor_id in doctor_ids:
        doctor = await uow.doctors.get(doctor_id)
        card = await cases.doctor_card(uow, doctor) if isinstance(doctor, Doctor) else {}
        resources.append(practitioner(doctor_id, card))

    known = set(doctor_ids)
    for link in await uow.audit.for_record("patient", pid):
        resources.append(audit_event(link, patient_ref=pid, doctors=known))

    return assemble(resources, bundle_id=str(uuid.uuid4()), now=now)


def to_json(bundle: dict[str, Any]) -> bytes:
    """A bundle as the UTF-8 JSON file the patient downloads."""
    return json.dumps(bundle, ensure_ascii=False, indent=2).encode("utf-8")


def file_name(now: datetime) -> str:
    """The document's name: ``careline-record-YYYY-MM-DD.json``."""
    return f"careline-record-{_aware(now).date().isoformat()}.json"


async def export_for_patient(
    uow: UnitOfWork, patient: Patient, *, now: datetime | None = None
) -> bytes:
    """The patient's own /export: the record Bundle as JSON; audited (``record.export``)."""
    now = now or utcnow()
    await uow.audit.record(f"patient:{patient.id}", "record.export", "patient", patient.id)
    return to_json(await record_bundle(uow, patient, now=now))  # the export is in its own log


class NotUnderCare(Exception):
    """The doctor asked for the record of a patient not under their care (audited)."""


async def export_for_doctor(
    uow: UnitOfWork, doctor: Doctor, patient: Patient, *, now: datetime | None = None
) -> bytes:
    """A doctor's /export of a patient under their care (:func:`flows.alerts.under_care`);
    audited either way (``record.export`` by the doctor, or ``record.export.refused``)."""
    now = now or utcnow()
    actor = cases.doctor_ref(doctor)
    if not await alerts.under_care(uow, doctor.id, patient.id):
        await uow.audit.record(actor, "record.export.refused", "patient", patient.id)
        raise NotUnderCare()
    await uow.audit.record(actor, "record.export", "patient", patient.id)
    return to_json(await record_bundle(uow, patient, now=now))
