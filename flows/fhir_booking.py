"""Booked consultations in FHIR R4 (for the whole-record export, :mod:`flows.export`): each
booking is an ``Appointment`` (status booked | fulfilled | cancelled | noshow | pending, the
start and end, the mode as its service type, patient and practitioner as participants) and a
paid one also an ``Invoice`` — the receipt: the amount and currency, the Telegram charge id,
and ``balanced`` (paid) or ``cancelled`` (refunded; "to refund" in a note while the clinic
has yet to refund a card payment)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from flows.schedule import MODE_DISPLAY, PARTICIPATION, PARTICIPATION_SYSTEM
from flows.services import EXPONENTS
from storage.models import Booking

SYSTEM = "urn:careline"
CHARGE_SYSTEM = "https://core.telegram.org/bots/api#successfulpayment"
_STATUS = {
    "pending": "pending",
    "booked": "booked",
    "fulfilled": "fulfilled",
    "cancelled": "cancelled",
    "noshow": "noshow",
}


def _iso(at: datetime) -> str:
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return aware.isoformat(timespec="seconds")


def amount(booking: Booking) -> Decimal:
    """The price in the currency's main unit (Stars are whole)."""
    return Decimal(booking.price_minor) / (10 ** EXPONENTS.get(booking.currency, 2))


def appointment(
    booking: Booking, *, patient_ref: str, end: datetime | None = None
) -> dict[str, Any]:
    """The booking as an Appointment (references are "Type/id"; the export relinks them)."""
    code, display = PARTICIPATION.get(booking.mode, ("ONLINEWRIT", "online written"))
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": booking.id,
        "identifier": [{"system": f"{SYSTEM}:booking", "value": booking.id}],
        "status": _STATUS.get(booking.status, "entered-in-error"),
        "serviceType": [
            {
                "coding": [{"system": PARTICIPATION_SYSTEM, "code": code, "display": display}],
                "text": MODE_DISPLAY.get(booking.mode, booking.mode),
            }
        ],
        "created": _iso(booking.created_at),
        "participant": [
            {"actor": {"reference": f"Patient/{patient_ref}"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/{booking.doctor_id}"}, "status": "accepted"},
        ],
    }
    if booking.start_at is not None:
        resource["start"] = _iso(booking.start_at)
        resource["end"] = _iso(end or booking.start_at + timedelta(minutes=15))
    if booking.status == "cancelled" and booking.cancelled_by:
        resource["cancelationReason"] = {"text": f"cancelled by the {booking.cancelled_by}"}
    return resource


def invoice(booking: Booking, *, patient_ref: str) -> dict[str, Any] | None:
    """The receipt of a paid booking (None when nothing was paid)."""
    if not booking.charge_id or booking.price_minor <= 0:
        return None
    refunded = booking.refund == "refunded"
    resource: dict[str, Any] = {
        "resourceType": "Invoice",
        "id": f"receipt-{booking.id}",
        "identifier": [{"system": CHARGE_SYSTEM, "value": booking.charge_id}],
        "status": "cancelled" if refunded else "balanced",
        "subject": {"reference": f"Patient/{patient_ref}"},
        "date": _iso(booking.paid_at or booking.created_at),
        "participant": [
            {"actor": {"reference": f"Practitioner/{booking.doctor_id}"}},
        ],
        "totalGross": {"value": float(amount(booking)), "currency": booking.currency},
        "totalNet": {"value": float(amount(booking)), "currency": booking.currency},
    }
    notes = [f"Appointment {booking.id}"]
    if booking.refund == "to_refund":
        notes.append("payment to be refunded by the clinic")
    if refunded:
        resource["cancelledReason"] = "refunded"
    resource["note"] = [{"text": n} for n in notes]
    return resource


def hospital_appointment(
    appt: Any,
    slot: Any,
    service: Any,
    hospital_name: str,
    *,
    patient_ref: str,
    outcome: str | None = None,
) -> dict[str, Any]:
    """A referral's hospital appointment as an Appointment, based on the referral's
    ServiceRequest (references are "Type/id"; the export relinks them)."""
    start = slot.starts_at if slot.starts_at.tzinfo else slot.starts_at.replace(tzinfo=UTC)
    end = start + (timedelta(days=1) if slot.all_day else timedelta(minutes=30))
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": appt.id,
        "status": appt.status,  # booked | arrived | fulfilled | noshow | cancelled
        "serviceCategory": [{"text": service.kind if service else "visit"}],
        "serviceType": [{"text": service.name if service else "Hospital visit"}],
        "specialty": [{"text": service.department}] if service else [],
        "basedOn": [{"reference": f"ServiceRequest/{appt.referral_id}"}],
        "start": _iso(start),
        "end": _iso(end),
        "created": _iso(appt.created_at),
        "participant": [
            {"actor": {"reference": f"Patient/{patient_ref}"}, "status": "accepted"},
            {"actor": {"display": hospital_name}, "status": "accepted"},
        ],
    }
    if not resource["specialty"]:
        del resource["specialty"]
    if outcome:
        resource["comment"] = f"Outcome recorded by the hospital: {outcome}"
    if appt.status == "cancelled":
        resource["cancelationReason"] = {"text": "cancelled by the patient or the hospital"}
    return resource
