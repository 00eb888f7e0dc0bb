"""Trust and protection around consultations: the patient's rating of a closed case, a
doctor's abuse report with the admins' review, the blocked patient's appeal, and the patients'
limits (open cases at once, messages per minute).

Reports move ``open`` → ``upheld`` (the patient is blocked and their open cases cancelled) |
``dismissed``; an upheld report can be appealed once (``appealed``) → ``lifted`` (unblocked) |
``upheld`` again. Every step is audited. No aiogram here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flows import consultation as cases
from flows import intake as intake_flow
from flows.consultation import NotAllowed, State
from flows.onboarding import Actor, clean_text
from flows.signing import Signer
from storage.models import AbuseReport, Consultation, Doctor, Patient
from storage.uow import UnitOfWork

COMMENT_MAX = 500
REASON_MAX = 500
APPEAL_MAX = 1000
RATEABLE = (State.CLOSED, State.TERMINATED)

OPEN, UPHELD, DISMISSED, APPEALED, LIFTED = "open", "upheld", "dismissed", "appealed", "lifted"


# -- ratings -----------------------------------------------------------------------------------


async def rate(
    uow: UnitOfWork, patient: Patient, case: Consultation, stars: int, *, now: datetime
) -> Doctor:
    """The patient rates their closed case 1–5, once; the doctor's average is updated.
    Returns the doctor."""
    if case.patient_id != patient.id:
        raise NotAllowed("not_yours")
    if State(case.state) not in RATEABLE or case.doctor_id is None:
        raise NotAllowed("state")
    if case.rating is not None:
        raise NotAllowed("rated")
    if not 1 <= stars <= 5:
        raise NotAllowed("stars")
    doctor = await uow.doctors.get(case.doctor_id)
    if doctor is None:
        raise NotAllowed("state")
    case.rating = stars
    case.updated_at = now
    doctor.rating_sum += stars
    doctor.rating_count += 1
    await uow.audit.record(
        Actor(patient.id).ref, "consultation.rate", "consultation", case.id, {"stars": stars}
    )
    return doctor


async def comment(
    uow: UnitOfWork, patient: Patient, case: Consultation, raw: str, *, now: datetime
) -> str:
    """The optional comment after a rating (kept encrypted); once."""
    if case.patient_id != patient.id:
        raise NotAllowed("not_yours")
    if case.rating is None or case.rating_comment_enc is not None:
        raise NotAllowed("state")
    text = clean_text(raw)
    if not text:
        raise NotAllowed("empty")
    if len(text) > COMMENT_MAX:
        raise NotAllowed("too_long")
    case.rating_comment_enc = await uow.consultations.seal_text(case, "rating_comment_enc", text)
    case.updated_at = now
    await uow.audit.record(
        Actor(patient.id).ref, "consultation.comment", "consultation", case.id, {}
    )
    return text


@dataclass(frozen=True)
class Rating:
    """A doctor's average rating (``None`` before the first)."""

    average: float | None
    count: int


def rating_of(doctor: Doctor) -> Rating:
    """The doctor's average and count."""
    if not doctor.rating_count:
        return Rating(None, 0)
    return Rating(round(doctor.rating_sum / doctor.rating_count, 1), doctor.rating_count)


# -- limits ------------------------------------------------------------------------------------


async def open_cases(uow: UnitOfWork, patient: Patient) -> list[Consultation]:
    """The patient's open cases (the ones that count against the limit)."""
    return await cases.patient_cases(uow, patient, cases.OPEN)


async def may_open_case(uow: UnitOfWork, patient: Patient, max_open: int) -> bool:
    """Under the limit of open cases at once."""
    return len(await open_cases(uow, patient)) < max_open


async def over_message_rate(
    uow: UnitOfWork, patient: Patient, per_minute: int, now: datetime
) -> bool:
    """Has the patient already sent ``per_minute`` case messages in the last minute?"""
    sent = await uow.consultations.patient_messages_since(patient.id, now - timedelta(minutes=1))
    return sent >= per_minute


# -- abuse reports -----------------------------------------------------------------------------


def _clean(raw: str, limit: int) -> str:
    text = clean_text(raw)
    if not text:
        raise NotAllowed("empty")
    if len(text) > limit:
        raise NotAllowed("too_long")
    return text


async def report(
    uow: UnitOfWork, doctor: Doctor, case: Consultation, raw: str, *, now: datetime
) -> AbuseReport:
    """A doctor reports the patient of one of their own cases (any state)."""
    if not cases.is_verified(doctor, now):
        raise NotAllowed("unverified")
    if case.doctor_id != doctor.id:
        await uow.audit.record(
            cases.doctor_ref(doctor), "report.refused", "consultation", case.id, {}
        )
        raise NotAllowed("not_yours")
    reason = _clean(raw, REASON_MAX)
    pending = await uow.reports.for_patient(case.patient_id, (OPEN, APPEALED))
    if any(r.consultation_id == case.id and r.doctor_id == doctor.id for r in pending):
        raise NotAllowed("already")
    row = AbuseReport(
        consultation_id=case.id,
        patient_id=case.patient_id,
        doctor_id=doctor.id,
        status=OPEN,
        created_at=now,
    )
    await uow.reports.add(row, reason)
    await uow.audit.record(
        cases.doctor_ref(doctor), "report.file", "abuse_report", row.id, {"case": case.id}
    )
    return row


def is_blocked(patient: Patient | None) -> bool:
    """Blocked from consultations after an upheld report."""
    return patient is not None and patient.blocked_at is not None


async def _report_for(uow: UnitOfWork, report_id: str, *statuses: str) -> AbuseReport:
    row = await uow.reports.get(report_id[:32])
    if row is None or row.status not in statuses:
        raise NotAllowed("decided" if row is not None else "unknown")
    return row


@dataclass
class Decision:
    """What an admin's decision changed: the report, its patient, and the cases it cancelled
    (with their doctors, to be told)."""

    report: AbuseReport
    patient: Patient | None
    cancelled: list[tuple[Consultation, Doctor | None]]


async def uphold(uow: UnitOfWork, report_id: str, admin: str, *, now: datetime) -> Decision:
    """The admin upholds an open report: the patient is blocked and their open cases are
    cancelled (doctors other than the reporter are told by the caller)."""
    row = await _report_for(uow, report_id, OPEN)
    row.status, row.decided_by, row.decided_at = UPHELD, admin, now
    patient = await uow.patients.get(row.patient_id)
    cancelled: list[tuple[Consultation, Doctor | None]] = []
    if patient is not None:
        if patient.blocked_at is None:
            patient.blocked_at = now
        # An intake in progress would otherwise complete into a case nobody will take.
        await intake_flow.abandon(uow, patient, admin, "patient_blocked")
        for case in await cases.patient_cases(uow, patient, cases.CANCELLABLE):
            await cases.cancel_by_admin(uow, case, admin, now=now)
            doctor = await uow.doctors.get(case.doctor_id) if case.doctor_id else None
            cancelled.append((case, doctor))
    await uow.audit.record(admin, "report.uphold", "abuse_report", row.id, {})
    if patient is not None:
        await uow.audit.record(admin, "patient.block", "patient", patient.id, {"report": row.id})
    return Decision(row, patient, cancelled)


async def dismiss(uow: UnitOfWork, report_id: str, admin: str, *, now: datetime) -> Decision:
    """The admin dismisses an open report: nothing happens to the patient."""
    row = await _report_for(uow, report_id, OPEN)
    row.status, row.decided_by, row.decided_at = DISMISSED, admin, now
    await uow.audit.record(admin, "report.dismiss", "abuse_report", row.id, {})
    return Decision(row, await uow.patients.get(row.patient_id), [])


async def appeal(uow: UnitOfWork, patient: Patient, raw: str, *, now: datetime) -> AbuseReport:
    """A blocked patient appeals (once per upheld report) with their reason."""
    if not is_blocked(patient):
        raise NotAllowed("not_blocked")
    upheld = await uow.reports.for_patient(patient.id, (UPHELD, APPEALED))
    if not upheld:
        raise NotAllowed("not_blocked")
    latest = upheld[0]
    if latest.status == APPEALED or latest.appealed_at is not None:
        raise NotAllowed("already")
    text = _clean(raw, APPEAL_MAX)
    await uow.reports.set_appeal(latest, text)
    latest.status, latest.appealed_at = APPEALED, now
    await uow.audit.record(Actor(patient.id).ref, "report.appeal", "abuse_report", latest.id, {})
    return latest


async def lift(uow: UnitOfWork, report_id: str, admin: str, *, now: datetime) -> Decision:
    """The admin grants the appeal: the patient is unblocked (when no other upheld report
    still stands)."""
    row = await _report_for(uow, report_id, APPEALED)
    row.status, row.decided_by, row.decided_at = LIFTED, admin, now
    patient = await uow.patients.get(row.patient_id)
    if patient is not None and not await uow.reports.for_patient(patient.id, (UPHELD,)):
        patient.blocked_at = None
        await uow.audit.record(admin, "patient.unblock", "patient", patient.id, {"report": row.id})
    await uow.audit.record(admin, "report.lift", "abuse_report", row.id, {})
    return Decision(row, patient, [])


async def keep_blocked(uow: UnitOfWork, report_id: str, admin: str, *, now: datetime) -> Decision:
    """The admin refuses the appeal: the block stays (no second appeal)."""
    row = await _report_for(uow, report_id, APPEALED)
    row.status, row.decided_by, row.decided_at = UPHELD, admin, now
    await uow.audit.record(admin, "report.appeal_refused", "abuse_report", row.id, {})
    return Decision(row, await uow.patients.get(row.patient_id), [])


async def refused(uow: UnitOfWork, actor: str, report_id: str, action: str) -> None:
    """Audit a review step attempted by someone who is not an admin (a forged button)."""
    await uow.audit.record(
        actor, "report.decision_denied", "abuse_report", report_id[:32], {"attempted": action[:8]}
    )


# -- the clinic's keys, as the bots use them ---------------------------------------------------


def signer(uow: UnitOfWork) -> Signer:
    """The referral slip signer over the clinic's key ring."""
    return Signer(uow.ring)


def stranger_ref(uow: UnitOfWork, user_id: int) -> str:
    """The audit actor of a Telegram user with no record here: a keyed hash of their id (the
    audit log keeps no raw Telegram ids of patients)."""
    return f"user:{uow.ring.blind_index('audit-actor', str(user_id))[:16]}"
