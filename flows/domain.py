"""The domain objects the handlers work with, as the flows see them, and the clinic's clock.

For now the ORM classes of :mod:`storage.models` *are* the domain objects: a flow hands a
handler a ``Patient`` or a ``Consultation`` row and the handler reads its plain fields to
render a reply. This module re-exports them so that handlers depend on the flows' vocabulary
and never on the storage layer: handlers use these classes as values and as type annotations,
never to build queries (the repositories behind ``uow`` own all SQL and every encrypted field).
Tables that are storage's own business (data keys, inbox, outbox, audit records) are not here.

``utcnow`` and ``now`` are the one clock (:mod:`storage.clock`): timezone-aware UTC, the real
clock unless the sandbox has taken it over. They are the same functions the models use for
their timestamps, so a handler's "now" and a stored ``created_at`` always agree.
"""

from __future__ import annotations

from storage.clock import now
from storage.models import (
    AbuseReport,
    Booking,
    CareAlert,
    Caregiver,
    CaseMessage,
    CheckIn,
    Consent,
    Consultation,
    Doctor,
    Dose,
    FollowUpPlan,
    Hospital,
    Intake,
    MedicationPlan,
    Patient,
    Reading,
    Referral,
    ScheduledEvent,
    utcnow,
)

__all__ = [
    "AbuseReport",
    "Booking",
    "CareAlert",
    "Caregiver",
    "CaseMessage",
    "CheckIn",
    "Consent",
    "Consultation",
    "Doctor",
    "Dose",
    "FollowUpPlan",
    "Hospital",
    "Intake",
    "MedicationPlan",
    "Patient",
    "Reading",
    "Referral",
    "ScheduledEvent",
    "now",
    "utcnow",
]
