"""Dose reminders: one occurrence of a medication plan at a time, the patient's answer, side
effects, catch-up after downtime and the escalation ladder (patient -> again -> caregivers ->
the doctor).

Scheduling: an active plan always has exactly one future ``dose`` event (subject = the Dose
row's id, key ``dose:{plan_id}:{local}``). The handler of that event sends the reminder and,
in the same transaction, schedules the next occurrence, so the chain never breaks. The Dose
row (unique per plan and local time) is created together with its event, so an occurrence is
never scheduled twice, whichever process runs it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from flows import timing
from storage.models import Dose, MedicationPlan, Patient, ScheduledEvent
from storage.uow import UnitOfWork

# Event kinds (<= 32 chars).
KIND = "dose"
AGAIN = "dose.again"
SNOOZE = "dose.snooze"
CAREGIVER = "dose.caregiver"
DOCTOR = "dose.doctor"
KINDS = (KIND, AGAIN, SNOOZE, CAREGIVER, DOCTOR)
LADDER = (AGAIN, CAREGIVER, DOCTOR)

PRIORITY_ROUTINE = 5
PRIORITY_URGENT = 0

# Dose statuses.
PENDING = "pending"
TAKEN = "taken"
SKIPPED = "skipped"
MISSED = "missed"
CANCELLED = "cancelled"
ANSWERED = (TAKEN, SKIPPED)


def aware(when: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def zone_of(patient: Patient) -> str:
    """The patient's time zone (UTC when they never gave one)."""
    return patient.timezone or "UTC"


def schedule_of(plan: MedicationPlan) -> timing.Schedule:
    """The plan's timing."""
    return timing.Schedule.from_json(plan.schedule)


def occurrence_key(plan_id: str, local: str) -> str:
    """The occurrence key of a dose reminder event."""
    return f"{KIND}:{plan_id}:{local}"


async def dose_at(uow: UnitOfWork, plan_id: str, local: str) -> Dose | None:
    """The dose of a plan at a local time, if there is one."""
    return await uow.session.scalar(
        select(Dose).where(Dose.plan_id == plan_id, Dose.local == local)
    )


async def get_dose(uow: UnitOfWork, dose_id: str) -> Dose | None:
    """A dose by id."""
    return await uow.session.get(Dose, dose_id)


async def get_plan(uow: UnitOfWork, plan_id: str) -> MedicationPlan | None:
    """A plan by id."""
    return await uow.session.get(MedicationPlan, plan_id)


async def _add_event(
    uow: UnitOfWork,
    kind: str,
    subject: str,
    patient_id: str,
    due_at: datetime,
    key: str,
    priority: int = PRIORITY_ROUTINE,
) -> ScheduledEvent | None:
    """Schedule an event by occurrence key; a cancelled event with the same key (a plan that
    was paused, moved or changed and then re-planned onto the same occurrence) is revived
    rather than lost, a pending or done one is left as it is (returns None)."""
    row = await uow.events.add(kind, subject, patient_id, due_at, key=key, priority=priority)
    if row is not None:
        return row
    old = await uow.events.by_key(key)
    if old is None or old.status != "cancelled":
        return None
    old.status = "pending"
    old.subject = subject
    old.due_at = due_at
    old.attempts = 0
    old.done_at = None
    old.lease_until = None
    old.leased_by = None
    old.priority = priority
    return old


async def schedule_occurrence(
    uow: UnitOfWork, plan: MedicationPlan, patient: Patient, local: str, due: datetime
) -> Dose:
    """The Dose row of one occurrence and its reminder event (idempotent)."""
    dose = await dose_at(uow, plan.id, local)
    if dose is None:
        dose = Dose(
            plan_id=plan.id,
            patient_id=patient.id,
            plan_version=plan.version,
            local=local,
            due_at=due,
            status=PENDING,
            late=False,
            step=0,
        )
        uow.session.add(dose)
        await uow.session.flush()
    elif dose.status == CANCELLED:
        # Re-planned onto the same local time (zone move, resume): the occurrence lives again.
        dose.status = PENDING
        dose.step = 0
        dose.late = False
        dose.acked_by = None
        dose.acked_at = None
    if dose.status == PENDING:
        dose.plan_version = plan.version
        dose.due_at = due
        key = occurrence_key(plan.id, local)
        when = due + timedelta(seconds=timing.jitter_seconds(key))
        await _add_event(uow, KIND, dose.id, patient.id, when, key)
    return dose


async def start(uow: UnitOfWork, plan: MedicationPlan, patient: Patient, now: datetime) -> None:
    """Schedule the next occurrence of an active plan (idempotent: the occurrence key and the
    (plan, local) Dose row make a second call a no-op)."""
    if plan.status != "active":
        return
    nxt = timing.next_occurrence(schedule_of(plan), zone_of(patient), plan.shift_minutes, now)
    if nxt is None:
        return
    local, due = nxt
    await schedule_occurrence(uow, plan, patient, local, due)


async def _pending_doses(uow: UnitOfWork, plan_id: str) -> list[Dose]:
    rows = await uow.session.scalars(
        select(Dose).where(Dose.plan_id == plan_id, Dose.status == PENDING)
    )
    return list(rows)


async def cancel_ladder(uow: UnitOfWork, dose_id: str) -> None:
    """Cancel the pending re-remind, snooze and escalation events of one dose."""
    for kind in (AGAIN, SNOOZE, CAREGIVER, DOCTOR):
        await uow.events.cancel_for(kind, dose_id)


async def stop(uow: UnitOfWork, plan: MedicationPlan, now: datetime) -> None:
    """Cancel every pending reminder and escalation of a plan (pause, end, change, decline,
    re-plan). Pending doses in the future are deleted; pending doses already reminded and
    never answered become ``cancelled`` (their buttons now say the plan changed)."""
    for dose in await _pending_doses(uow, plan.id):
        await uow.events.cancel_for(KIND, dose.id)
        await cancel_ladder(uow, dose.id)
        if aware(dose.due_at) > now and dose.step == 0 and not dose.late:
            await uow.session.delete(dose)
        else:
            dose.status = CANCELLED
    await uow.session.flush()
