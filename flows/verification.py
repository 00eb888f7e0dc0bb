"""Whether a doctor may work: the doctor's status names and the verification check.

Shared by the doctors' flow (which decides the status: :mod:`flows.doctors`) and the flows
that only ask it (queues and cases: :mod:`flows.consultation`), so neither imports the
other for it."""

from __future__ import annotations

from datetime import UTC, datetime

from storage.models import Doctor, utcnow

APPLYING, PENDING, VERIFIED, REJECTED, SUSPENDED = (
    "applying",
    "pending",
    "verified",
    "rejected",
    "suspended",
)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return moment


def is_verified(doctor: Doctor | None, now: datetime | None = None) -> bool:
    """Verified and the verification has not expired."""
    if doctor is None or doctor.status != VERIFIED:
        return False
    until = _aware(doctor.verified_until)
    return until is not None and until > (now or utcnow())
