"""What happens to a patient's consultations when they erase their data (DESIGN.md §6).

Medical records must outlive an erasure request: the law keeps a consultation record for
``record_years`` (15) and its chat for ``chat_years`` (3). So when a patient erases their data:

1. Their open cases are cancelled through the consultation flow, and the doctor of an active
   one is told.
2. A case a doctor took part in (``doctor_id`` set, or a message from a doctor: a case given
   back to the queue keeps what was said) is *kept*: every encrypted field of the case and of
   its messages is re-sealed under a data key of the case's own (owner = the case id,
   ``consultations.key_owner``), and a snapshot of what identifies the record (the intake's
   answers and questionnaire version, the patient's first name, birth year and sex) is sealed
   into ``record_enc``. Two ``retention.purge`` events follow: at ``chat_until`` the messages
   are deleted, at ``record_until`` the case key is destroyed and the case row deleted.
3. Every other case goes at once, with its messages.

Only then is the patient's own data key destroyed. ``record_years = 0`` keeps nothing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flows import consultation as cases
from flows.onboarding import Actor
from storage.consultations import owner
from storage.models import Consultation, Doctor, Patient, ScheduledEvent
from storage.uow import UnitOfWork

PURGE = "retention.purge"  # scheduled event kind; subject: the case id
RECORD_FORMAT = "careline.case-record/1"

# Told when an erasure cancels a doctor's active case: (case, doctor, patient's first name).
Notify = Callable[[Consultation, Doctor, str], Awaitable[None]]


@dataclass(frozen=True)
class Policy:
    """How long a kept consultation record lives after the patient's erasure (years)."""

    record_years: int = 15
    chat_years: int = 3

    @property
    def keeps(self) -> bool:
        """Are records kept at all?"""
        return self.record_years > 0


def add_years(at: datetime, years: int) -> datetime:
    """``at`` plus whole calendar years (29 February becomes 28 February)."""
    try:
        return at.replace(year=at.year + years)
    except ValueError:
        return at.replace(year=at.year + years, day=28)


def aware(at: datetime) -> datetime:
    """A stored time as timezone-aware UTC (SQLite gives naive values back)."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def doctor_took_part(uow: UnitOfWork, case: Consultation) -> bool:
    """A doctor accepted the case (now or before a transfer) and so it is a medical record."""
    if case.doctor_id:
        return True
    return any(m.sender == "doctor" for m in await uow.consultations.messages(case))


async def kept_cases(uow: UnitOfWork, patient: Patient, policy: Policy) -> list[Consultation]:
    """The patient's cases an erasure would keep, newest first."""
    if not policy.keeps:
        return []
    return [
        case
        for case in await uow.consultations.for_patient(patient.id)
        if await doctor_took_part(uow, case)
    ]


async def cancel_open(
    uow: UnitOfWork, patient: Patient, *, now: datetime, notify: Notify | None = None
) -> list[Consultation]:
    """Erasure, first step: cancel the patient's open cases through the consultation flow;
    ``notify`` tells the doctor of an active one. Returns the cancelled cases."""
    cancelled = []
    for case in await cases.patient_cases(uow, patient, cases.CANCELLABLE):
        doctor = await cases.cancel(uow, patient, case, now=now)
        if doctor is not None and notify is not None:
            await notify(case, doctor, await cases.patient_first_name(uow, case))
        cancelled.append(case)
    return cancelled


async def _snapshot(
    uow: UnitOfWork, patient: Patient, case: Consultation, now: datetime
) -> dict[str, Any]:
    """The minimum that identifies the medical record, read while the patient's key lives."""
    intake = await uow.intakes.get(case.intake_id) if case.intake_id else None
    name = await uow.patients.get_field(patient, "name") or ""
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "kept_at": now.isoformat(timespec="seconds"),
        "patient": {
            "id": patient.id,
            "first_name": name.split()[0] if name.split() else None,
            "birth_year": await uow.patients.get_field(patient, "birth_year"),
            "sex": await uow.patients.get_field(patient, "sex"),
        },
        "intake": None,
    }
    if intake is not None:
        record["intake"] = {
            "id": intake.id,
            "questionnaire_version": intake.questionnaire_version,
            "created_at": aware(intake.created_at).isoformat(timespec="seconds"),
            "disposition": intake.disposition,
            "department": intake.department,
            "answers": await uow.intakes.answers(intake),
        }
    return record


async def delete_messages(uow: UnitOfWork, case: Consultation) -> int:
    """Delete every message of a case; returns how many."""
    return await uow.records.delete_messages(case)


async def drop_case(uow: UnitOfWork, case: Consultation) -> None:
    """Delete a case and its messages (erasure of a case no doctor took part in)."""
    await delete_messages(uow, case)
    await uow.prescriptions.delete_for_case(case.id)
    await uow.records.delete_case(case)


async def keep_record(
    uow: UnitOfWork, patient: Patient, case: Consultation, *, now: datetime, policy: Policy
) -> None:
    """Move a case under its own key with a sealed snapshot, and schedule its purges."""
    base = aware(case.closed_at or now)
    record_until = add_years(base, policy.record_years)
    chat_until = min(add_years(base, policy.chat_years), record_until)
    snapshot = await _snapshot(uow, patient, case, now)
    old = owner(case)
    await uow.records.reseal(case, "consultations", case.id, old, case.id)
    if chat_until <= now:
        await delete_messages(uow, case)
    else:
        for row in await uow.consultations.messages(case):
            await uow.records.reseal(row, "case_messages", str(row.id), old, case.id)
    await _keep_prescriptions(uow, patient, case, now)
    case.key_owner = case.id
    case.record_enc = await uow.consultations.seal_text(
        case, "record_enc", json.dumps(snapshot, ensure_ascii=False)
    )
    case.chat_until, case.record_until = chat_until, record_until
    # patient_id is the erased patient's random id: it names nobody any more.
    if chat_until > now:
        await uow.events.add(PURGE, case.id, patient.id, chat_until)
    await uow.events.add(PURGE, case.id, patient.id, record_until)
    await uow.audit.record(
        Actor(patient.id).ref,
        "retention.keep",
        "consultation",
        case.id,
        {
            "chat_until": chat_until.isoformat(timespec="seconds"),
            "record_until": record_until.isoformat(timespec="seconds"),
        },
    )


async def _keep_prescriptions(
    uow: UnitOfWork, patient: Patient, case: Consultation, now: datetime
) -> None:
    """A kept record keeps its prescriptions under the case's key; one still waiting or
    valid is revoked first (nobody may dispense to an erased patient), a draft goes."""
    from flows import prescriptions as rxf

    for rx in await uow.prescriptions.for_case_any(case.id):
        if rx.status == rxf.State.DRAFT:
            await uow.prescriptions.delete(rx)
            continue
        if rx.status in (rxf.State.PENDING, rxf.State.ACTIVE):
            rx.status = rxf.State.REVOKED.value
            rx.revoked_at = now
            await uow.events.cancel_for(rxf.EXPIRE, rx.id)
            await uow.audit.record(
                Actor(patient.id).ref, "rx.revoke", "prescription", rx.id, {"by": "erasure"}
            )
        await uow.prescriptions.reseal(rx, case.id)


async def settle_cases(
    uow: UnitOfWork, patient: Patient, *, now: datetime, policy: Policy
) -> list[Consultation]:
    """Erasure, second step (open cases already cancelled): keep the records a doctor took
    part in, delete the rest. Returns the kept cases."""
    kept = []
    for case in await uow.consultations.for_patient(patient.id):
        if policy.keeps and await doctor_took_part(uow, case):
            await keep_record(uow, patient, case, now=now, policy=policy)
            kept.append(case)
        else:
            await drop_case(uow, case)
    return kept


async def open_record(uow: UnitOfWork, case: Consultation) -> dict[str, Any] | None:
    """The snapshot of a kept record (under the case's key), or None."""
    if case.record_enc is None:
        return None
    data: dict[str, Any] = json.loads(
        await uow.consultations.open_text(case, "record_enc", case.record_enc)
    )
    return data


async def purge_due(uow: UnitOfWork, case_id: str, now: datetime) -> str | None:
    """A ``retention.purge`` event: at ``record_until`` the case key is destroyed and the
    case deleted (``"record"``); at ``chat_until`` its messages are deleted (``"chat"``).
    Anything else (not a kept record, not due yet) does nothing (None)."""
    case = await uow.consultations.get(case_id)
    if case is None or case.key_owner != case.id:
        return None
    if case.record_until is not None and now >= aware(case.record_until):
        await drop_case(uow, case)
        await uow.records.destroy_key(case.id)
        await uow.audit.record("system", "retention.purge_record", "consultation", case_id, {})
        return "record"
    if case.chat_until is not None and now >= aware(case.chat_until):
        count = await delete_messages(uow, case)
        await uow.audit.record(
            "system", "retention.purge_chat", "consultation", case_id, {"messages": count}
        )
        return "chat"
    return None


async def purge_event(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
    """The scheduler's handler of ``retention.purge``."""
    await purge_due(uow, event.subject, now)
