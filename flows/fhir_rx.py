"""E-prescriptions as FHIR R4 resources (plain dicts the export validates).

One ``MedicationRequest`` per medicine of a prescription (FHIR orders one medication per
request): the prescription's code is the ``groupIdentifier`` that ties them together, the
doctor's free text stays free text (``medicationCodeableConcept.text``,
``dosageInstruction.text``), and ``dispenseRequest`` carries the validity, the quantity and
the expected supply duration (no repeats). A dispensed prescription adds one
``MedicationDispense`` per medicine given (the quantity given, when, and the pharmacy).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flows.fhir import encounter_ref

RX_SYSTEM = "urn:careline:prescription"
UCUM = "http://unitsofmeasure.org"
# Careline's prescription status -> MedicationRequest.status (and why, when not plain).
STATUS = {
    "pending": ("draft", "Waiting for a pharmacist's review; not yet in effect."),
    "active": ("active", None),
    "rejected": ("cancelled", "Rejected at the pharmacist's review."),
    "dispensed": ("completed", None),
    "expired": ("stopped", "Expired before it was dispensed."),
    "revoked": ("cancelled", "Revoked by the prescriber."),
}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def _iso(at: datetime) -> str:
    moment = at if at.tzinfo else at.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _quantity(text: str, value: float | None = None) -> dict[str, Any] | None:
    found = _NUMBER.search(text)
    if value is None:
        if found is None:
            return None
        value = float(found.group().replace(",", "."))
    unit = text[found.end() :].strip() if found else ""
    out: dict[str, Any] = {"value": int(value) if value == int(value) else value}
    if unit:
        out["unit"] = unit[:60]
    return out


def _prescriber(content: Any) -> dict[str, Any]:
    doctor: dict[str, Any] = {"resourceType": "Practitioner", "id": "prescriber"}
    if content.doctor_name:
        doctor["name"] = [{"text": content.doctor_name}]
    qualification: dict[str, Any] = {"code": {"text": content.doctor_title or "Physician"}}
    if content.doctor_licence:
        qualification["identifier"] = [
            {"type": {"text": "Practice licence"}, "value": content.doctor_licence}
        ]
    if content.doctor_hospital:
        qualification["issuer"] = {"display": content.doctor_hospital}
    doctor["qualification"] = [qualification]
    return doctor


def request_id(rx_id: str, index: int) -> str:
    """The row-level id of the ``index``-th medicine's MedicationRequest."""
    return f"{rx_id}-{index + 1}"


def medication_requests(
    rx: Any,
    content: Any,
    *,
    patient_ref: str,
    case_numbers: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The prescription's MedicationRequests (``content``: its
    :class:`flows.prescriptions.RxContent`, decrypted)."""
    status, why = STATUS.get(rx.status, ("unknown", None))
    out = []
    for i, item in enumerate(content.items):
        dispense: dict[str, Any] = {
            "validityPeriod": {
                "start": content.issued_on.isoformat(),
                "end": content.valid_until.isoformat(),
            },
            "numberOfRepeatsAllowed": 0,
            "expectedSupplyDuration": {
                "value": item.days,
                "unit": "days",
                "system": UCUM,
                "code": "d",
            },
        }
        quantity = _quantity(item.quantity)
        if quantity is not None:
            dispense["quantity"] = quantity
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": request_id(rx.id, i),
            "contained": [_prescriber(content)],
            "identifier": [{"system": f"{RX_SYSTEM}-item", "value": f"{content.code}/{i + 1}"}],
            "groupIdentifier": {"system": RX_SYSTEM, "value": content.code},
            "status": status,
            "intent": "order",
            "category": [{"text": "E-prescription"}],
            "medicationCodeableConcept": {"text": f"{item.name} {item.strength}".strip()},
            "subject": {"reference": f"Patient/{patient_ref}"},
            "requester": {"reference": "#prescriber"},
            "reasonCode": [{"text": content.diagnosis}],
            "dosageInstruction": [{"sequence": 1, "text": item.dose}],
            "dispenseRequest": dispense,
        }
        if why:
            resource["statusReason"] = {"text": why}
        if rx.issued_at is not None:
            resource["authoredOn"] = _iso(rx.issued_at)
        if rx.consultation_id:
            resource["encounter"] = encounter_ref(rx.consultation_id, case_numbers)
        notes = []
        if content.chronic:
            notes.append({"text": f"Chronic-disease rule: {content.chronic}."})
        if content.review_required:
            notes.append({"text": "Takes effect after a pharmacist's review."})
        if notes:
            resource["note"] = notes
        out.append(resource)
    return out


def medication_dispenses(
    rx: Any, content: Any, dispensing: Any, *, patient_ref: str
) -> list[dict[str, Any]]:
    """The MedicationDispenses of a dispensed prescription (one per medicine given; a
    medicine given in quantity 0 has none)."""
    out = []
    for i, (item, given) in enumerate(zip(content.items, dispensing.quantities, strict=True)):
        if not given:
            continue
        resource: dict[str, Any] = {
            "resourceType": "MedicationDispense",
            "id": f"{rx.id}-d{i + 1}",
            "status": "completed",
            "medicationCodeableConcept": {"text": f"{item.name} {item.strength}".strip()},
            "subject": {"reference": f"Patient/{patient_ref}"},
            "performer": [{"actor": {"display": dispensing.pharmacy}}],
            "authorizingPrescription": [
                {"reference": f"MedicationRequest/{request_id(rx.id, i)}"}
            ],
            "quantity": _quantity(item.quantity, given),
            "daysSupply": {"value": item.days, "unit": "days", "system": UCUM, "code": "d"},
            "whenHandedOver": _iso(dispensing.at),
            "dosageInstruction": [{"sequence": 1, "text": item.dose}],
        }
        if given < item.amount:
            resource["note"] = [{"text": f"Partly dispensed: {given:g} of {item.quantity}."}]
        out.append(resource)
    return out
