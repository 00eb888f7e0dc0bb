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

import json
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from transitions import Machine

from flows import alerts, caregivers, timing
from flows.machines import fire
from flows.outbox import PRIORITY_ROUTINE, PRIORITY_URGENT
from locales import Html, Translator
from storage.models import (
    CareAlert,
    Caregiver,
    Doctor,
    Dose,
    MedicationPlan,
    Patient,
    ScheduledEvent,
)
from storage.uow import UnitOfWork

# Event kinds (<= 32 chars).
KIND = "dose"
AGAIN = "dose.again"
SNOOZE = "dose.snooze"
CAREGIVER = "dose.caregiver"
DOCTOR = "dose.doctor"
KINDS = (KIND, AGAIN, SNOOZE, CAREGIVER, DOCTOR)
LADDER = (AGAIN, CAREGIVER, DOCTOR)

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
    return await uow.medication.dose_at(plan_id, local)


async def get_dose(uow: UnitOfWork, dose_id: str) -> Dose | None:
    """A dose by id."""
    return await uow.medication.dose(dose_id)


async def get_plan(uow: UnitOfWork, plan_id: str) -> MedicationPlan | None:
    """A plan by id."""
    return await uow.medication.plan(plan_id)


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


async def _dose_row(
    uow: UnitOfWork, plan: MedicationPlan, patient: Patient, local: str, due: datetime
) -> tuple[Dose, bool]:
    """The plan's Dose row at ``local``, added (pending) when there is none; and whether it
    was added now."""
    dose = await dose_at(uow, plan.id, local)
    if dose is not None:
        return dose, False
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
    return await uow.medication.add_dose(dose), True


async def schedule_occurrence(
    uow: UnitOfWork, plan: MedicationPlan, patient: Patient, local: str, due: datetime
) -> Dose:
    """The Dose row of one occurrence and its reminder event (idempotent)."""
    dose, added = await _dose_row(uow, plan, patient, local, due)
    if not added and dose.status == CANCELLED:
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
    schedule, zone = schedule_of(plan), zone_of(patient)
    after = now
    for _ in range(8):
        nxt = timing.next_occurrence(schedule, zone, plan.shift_minutes, after)
        if nxt is None:
            return
        local, due = nxt
        done = await dose_at(uow, plan.id, local)
        if done is None or done.status in (PENDING, CANCELLED):
            await schedule_occurrence(uow, plan, patient, local, due)
            return
        # Already answered (or missed) under this local time: a move west can bring the same
        # wall-clock dose round again; the chain goes on to the following occurrence.
        after = due


async def cancel_ladder(uow: UnitOfWork, dose_id: str) -> None:
    """Cancel the pending re-remind, snooze and escalation events of one dose."""
    for kind in (AGAIN, SNOOZE, CAREGIVER, DOCTOR):
        await uow.events.cancel_for(kind, dose_id)


async def stop(uow: UnitOfWork, plan: MedicationPlan, now: datetime) -> None:
    """Cancel every pending reminder and escalation of a plan (pause, end, change, decline,
    re-plan). Pending doses in the future are deleted; pending doses already reminded and
    never answered become ``cancelled`` (their buttons now say the plan changed)."""
    unsent = []
    for dose in await uow.medication.pending_doses(plan.id):
        await uow.events.cancel_for(KIND, dose.id)
        await cancel_ladder(uow, dose.id)
        if aware(dose.due_at) > now and dose.step == 0 and not dose.late:
            unsent.append(dose)
        else:
            dose.status = CANCELLED
    await uow.medication.delete_doses(unsent)


# -- reading a plan ----------------------------------------------------------------------------

SNOOZE_MINUTES = (10, 30, 60)
MAX_SNOOZES = 6
SKIP_REASONS = ("unwell", "ran_out", "forgot", "other")
TEXT_MAX = 500
EFFECTS = ("nausea", "dizziness", "rash", "breathing", "swelling", "other")
RED_EFFECTS = ("breathing", "swelling")  # red flags at once: no further questions
SEVERITIES = ("mild", "moderate", "severe")
# The red-flag registry entry each red side effect is (flows/questionnaires/redflags.toml).
RED_FLAG_OF = {"breathing": "breathing", "swelling": "anaphylaxis"}
RECENT_DAYS = 7
ALERT_DOSE = "dose"
ALERT_EFFECT = "side_effect"


def patient_ref(patient_id: str) -> str:
    """The audit actor of a patient."""
    return f"patient:{patient_id}"


async def details_of(uow: UnitOfWork, plan: MedicationPlan) -> dict[str, str]:
    """What the medicine is (decrypted): ``name``, ``dose``, ``food`` (each may be empty).
    The plan's wizard stores the doctor's typed texts as one JSON object."""
    raw = await uow.medication.details_text(plan)
    if raw is None:
        return {"name": "", "dose": "", "food": ""}
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"name": raw}
    if not isinstance(data, dict):
        data = {"name": str(data)}

    def pick(*keys: str) -> str:
        for k in keys:
            v = data.get(k)
            if isinstance(v, str) and v.strip():
                return v.strip()
        return ""

    return {
        "name": pick("name", "medicine", "medicine_name"),
        "dose": pick("dose", "amount"),
        "food": pick("food", "food_note", "note"),
    }


def local_hhmm(when: datetime, tz: str) -> str:
    """A UTC moment as the patient's local "HH:MM"."""
    return timing_zone_time(when, tz).strftime("%H:%M")


def timing_zone_time(when: datetime, tz: str) -> datetime:
    """A UTC moment in the patient's zone (UTC if the zone is unknown)."""
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return aware(when).astimezone(zone)


def time_of(dose: Dose) -> str:
    """The dose's local time "HH:MM" (from its occurrence label)."""
    return dose.local[-5:]


async def _note(uow: UnitOfWork, dose: Dose) -> dict[str, Any]:
    return await uow.medication.note(dose)


async def _save_note(uow: UnitOfWork, dose: Dose, note: dict[str, Any]) -> None:
    await uow.medication.set_note(dose, note)


# -- the scheduler's side ----------------------------------------------------------------------


@dataclass
class Reminder:
    """What a reminder event asks the handler to send (rendering is the handler's)."""

    patient: Patient
    plan: MedicationPlan
    details: dict[str, str]
    dose: Dose | None = None  # the dose to remind of (None: only the missed list)
    late: bool = False  # "this was due at 08:00"
    again: bool = False  # the re-remind
    silent: bool = False  # quiet hours: arrives without a sound
    missed: list[Dose] = field(default_factory=list)  # recorded missed after downtime
    caregivers: list[Caregiver] = field(default_factory=list)  # get a copy (scope reminders)


@dataclass
class Escalation:
    """A ladder step to caregivers: who, about which dose."""

    patient: Patient
    plan: MedicationPlan
    dose: Dose
    details: dict[str, str]
    caregivers: list[Caregiver]


async def _live(uow: UnitOfWork, dose_id: str) -> tuple[Dose, MedicationPlan, Patient] | None:
    """A dose still waiting for an answer, of an active plan, with its patient."""
    dose = await get_dose(uow, dose_id)
    if dose is None or dose.status != PENDING:
        return None
    plan = await get_plan(uow, dose.plan_id)
    patient = await uow.patients.get(dose.patient_id)
    if plan is None or patient is None or plan.status != "active":
        return None
    if dose.plan_version != plan.version:
        return None
    return dose, plan, patient


def _quiet_now(patient: Patient, now: datetime) -> bool:
    if not patient.quiet_start or not patient.quiet_end:
        return False
    return timing.in_quiet(
        local_hhmm(now, zone_of(patient)), patient.quiet_start, patient.quiet_end
    )


async def _rounds(uow: UnitOfWork, dose_id: str) -> int:
    """How many snoozes a dose has had (each pushes the ladder back one round)."""
    return await uow.events.count_for(SNOOZE, dose_id)


async def _schedule_ladder(
    uow: UnitOfWork, plan: MedicationPlan, patient: Patient, dose: Dose, base: datetime
) -> None:
    """Re-remind, caregivers and the doctor after the plan's silences, counted from
    ``base`` (when the patient got the reminder). A re-remind falling in quiet hours waits
    until they end. Keys carry the snooze round, so a snooze can push the ladder back."""
    n = await _rounds(uow, dose.id)
    again = base + timedelta(minutes=max(1, plan.again_after_min))
    if patient.quiet_start and patient.quiet_end:
        again = timing.quiet_end_utc(
            again, zone_of(patient), patient.quiet_start, patient.quiet_end
        )
    steps = (
        (AGAIN, again, PRIORITY_ROUTINE),
        (CAREGIVER, base + timedelta(minutes=max(1, plan.caregiver_after_min)), PRIORITY_URGENT),
        (DOCTOR, base + timedelta(minutes=max(1, plan.doctor_after_min)), PRIORITY_URGENT),
    )
    for kind, due, priority in steps:
        await _add_event(uow, kind, dose.id, patient.id, due, f"{kind}:{dose.id}:{n}", priority)


async def _record_missed(uow: UnitOfWork, dose: Dose, now: datetime, why: str) -> None:
    dose.status = MISSED
    await cancel_ladder(uow, dose.id)
    await uow.audit.record("system", "dose.missed", "dose", dose.id, {"why": why})


async def _occurrence_row(
    uow: UnitOfWork, plan: MedicationPlan, patient: Patient, local: str, due: datetime
) -> Dose:
    dose, added = await _dose_row(uow, plan, patient, local, due)
    if not added:
        # Its own reminder (if one was ever scheduled) is superseded by this catch-up.
        await uow.events.cancel_for(KIND, dose.id)
    return dose


async def _close_unanswered(
    uow: UnitOfWork, plan: MedicationPlan, now: datetime, handled: set[str]
) -> None:
    window = timing.CATCH_UP.get(KIND, timing.DEFAULT_CATCH_UP)
    cutoff = now - max(window, timedelta(minutes=plan.doctor_after_min + 60))
    for dose in await uow.medication.pending_doses(plan.id, due_before=cutoff):
        if dose.id not in handled:
            await _record_missed(uow, dose, now, "unanswered")


async def fire_dose(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> Reminder | None:
    """The ``dose`` event: remind (on time, or with late wording within the catch-up
    window), record as missed what is beyond it (with every occurrence the downtime
    swallowed, listed to the patient once), and schedule the next future occurrence in the
    same transaction. None when there is nothing to send (plan paused/ended, answered)."""
    dose = await get_dose(uow, event.subject)
    if dose is None or dose.status != PENDING:
        return None
    plan = await get_plan(uow, dose.plan_id)
    patient = await uow.patients.get(dose.patient_id)
    if plan is None or patient is None or plan.status != "active":
        return None
    dose.plan_version = plan.version
    sched, tz = schedule_of(plan), zone_of(patient)
    # Every occurrence due by now: this one and any the downtime swallowed (no event yet).
    due_now: list[tuple[str, datetime, Dose | None]] = [(dose.local, aware(dose.due_at), dose)]
    for local, due in timing.occurrences_between(
        sched, tz, plan.shift_minutes, aware(dose.due_at), now
    ):
        if local != dose.local:
            due_now.append((local, due, None))
    remind: tuple[Dose, timing.CatchUp] | None = None
    missed: list[Dose] = []
    for local, due, row in reversed(due_now):  # newest first: only it may still be reminded
        verdict = timing.catch_up(KIND, due, now)
        if row is None:
            row = await _occurrence_row(uow, plan, patient, local, due)
            if row.status != PENDING:
                continue
        if remind is None and verdict != "missed":
            remind = (row, verdict)
        else:
            await _record_missed(uow, row, now, "late" if remind is None else "superseded")
            missed.append(row)
    missed.sort(key=lambda d: d.local)
    out = Reminder(patient=patient, plan=plan, details=await details_of(uow, plan), missed=missed)
    if remind is not None:
        row, how = remind
        row.late = how == "late"
        row.step = 0
        out.dose = row
        out.late = row.late
        out.silent = _quiet_now(patient, now)
        await _schedule_ladder(uow, plan, patient, row, now)
        out.caregivers = await caregivers.for_alert(uow, patient.id, "reminders")
    # Earlier doses nobody ever answered, well past their whole ladder, count as missed
    # (a late "Taken" on their old reminder still records them).
    handled = {d.id for d in missed} | ({remind[0].id} if remind else set())
    await _close_unanswered(uow, plan, now, handled)
    # The chain: the next occurrence strictly after now.
    nxt = timing.next_occurrence(sched, tz, plan.shift_minutes, now)
    if nxt is not None:
        await schedule_occurrence(uow, plan, patient, *nxt)
    return out


async def fire_snooze(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> Reminder | None:
    """A snoozed reminder comes back (late wording after downtime; missed beyond the
    window), and the ladder starts again from now."""
    live = await _live(uow, event.subject)
    if live is None:
        return None
    dose, plan, patient = live
    if dose.acked_at is not None:
        return None
    out = Reminder(patient=patient, plan=plan, details=await details_of(uow, plan))
    verdict = timing.catch_up(KIND, aware(event.due_at), now)
    if verdict == "missed":
        await _record_missed(uow, dose, now, "late")
        out.missed = [dose]
        return out
    dose.late = dose.late or verdict == "late"
    out.dose, out.late, out.silent = dose, verdict == "late", _quiet_now(patient, now)
    await _schedule_ladder(uow, plan, patient, dose, now)
    return out


async def _stale_step(
    uow: UnitOfWork, kind: str, step: int, dose: Dose, event: ScheduledEvent, now: datetime
) -> bool:
    """A ladder step that runs too late after downtime is recorded and skipped."""
    if timing.catch_up(kind, aware(event.due_at), now) != "missed":
        return False
    dose.step = max(dose.step, step)
    await uow.audit.record("system", "dose.step_skipped", "dose", dose.id, {"step": step})
    return True


async def fire_again(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> Reminder | None:
    """The one re-remind, while the dose is unanswered and nobody acknowledged it."""
    live = await _live(uow, event.subject)
    if live is None:
        return None
    dose, plan, patient = live
    if dose.acked_at is not None or await _stale_step(uow, AGAIN, 1, dose, event, now):
        return None
    dose.step = max(dose.step, 1)
    await uow.audit.record("system", "dose.reminded_again", "dose", dose.id, {})
    return Reminder(
        patient=patient,
        plan=plan,
        details=await details_of(uow, plan),
        dose=dose,
        again=True,
        late=dose.late,
        silent=_quiet_now(patient, now),
    )


async def fire_caregiver(
    uow: UnitOfWork, event: ScheduledEvent, now: datetime
) -> Escalation | None:
    """Silence after the re-remind: the caregivers whose scope includes missed doses."""
    live = await _live(uow, event.subject)
    if live is None:
        return None
    dose, plan, patient = live
    if dose.acked_at is not None or await _stale_step(uow, CAREGIVER, 2, dose, event, now):
        return None
    dose.step = max(dose.step, 2)
    found = await caregivers.for_alert(uow, patient.id, "missed")
    found = [c for c in found if c.tg_user_id is not None]
    await uow.audit.record(
        "system", "dose.escalated", "dose", dose.id, {"step": 2, "caregivers": len(found)}
    )
    return Escalation(patient, plan, dose, await details_of(uow, plan), found)


async def fire_doctor(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> CareAlert | None:
    """Still nobody answered: a care alert to the plan's doctor (with Acknowledge)."""
    live = await _live(uow, event.subject)
    if live is None:
        return None
    dose, plan, patient = live
    if dose.acked_at is not None or await _stale_step(uow, DOCTOR, 3, dose, event, now):
        return None
    dose.step = max(dose.step, 3)
    details = await details_of(uow, plan)
    await uow.audit.record("system", "dose.escalated", "dose", dose.id, {"step": 3})
    return await alerts.raise_alert(
        uow,
        patient_id=patient.id,
        doctor_id=plan.doctor_id,
        kind=ALERT_DOSE,
        ref_id=dose.id,
        level="alert",
        msgid="doses.doctor.unanswered",
        params=_unanswered_params(details, dose, now),
        now=now,
    )


# -- answers -----------------------------------------------------------------------------------


class DoseError(Exception):
    """A button that does not fit: ``unknown`` (not this person's / forged), ``changed``
    (the plan changed, was paused or ended), ``answered`` (already recorded), ``limit``
    (too many snoozes), ``missed`` (too late to snooze: recorded missed; Taken still works),
    ``not_caregiver`` (no longer a caregiver of this patient)."""

    def __init__(self, reason: str, plan: MedicationPlan | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.plan = plan


async def check(
    uow: UnitOfWork, patient: Patient, dose_id: str, version: int
) -> tuple[Dose, MedicationPlan]:
    """The dose behind a reminder button, if the button still fits."""
    dose = await get_dose(uow, dose_id) if dose_id else None
    if dose is None or dose.patient_id != patient.id:
        raise DoseError("unknown")
    plan = await get_plan(uow, dose.plan_id)
    if plan is None:
        raise DoseError("unknown")
    if plan.status != "active" or plan.version != version or dose.status == CANCELLED:
        raise DoseError("changed", plan)
    if dose.status in ANSWERED:
        raise DoseError("answered", plan)
    return dose, plan


async def _acknowledge(uow: UnitOfWork, dose: Dose, actor: str, now: datetime) -> None:
    """Stop the ladder: recorded on the dose (who, when)."""
    await cancel_ladder(uow, dose.id)
    if dose.acked_at is None:
        dose.acked_by = actor
        dose.acked_at = now


async def take(
    uow: UnitOfWork, patient: Patient, dose_id: str, version: int, now: datetime
) -> Dose:
    """The patient took it (late too: a dose recorded missed still takes it); the doctor's
    alert about this dose going unanswered, if one is open, is resolved."""
    dose, plan = await check(uow, patient, dose_id, version)
    dose.status = TAKEN
    dose.responded_at = now
    await _acknowledge(uow, dose, patient_ref(patient.id), now)
    await uow.audit.record(patient_ref(patient.id), "dose.taken", "dose", dose.id, {})
    await _resolve_unanswered(uow, dose, plan, patient, patient_ref(patient.id), "patient", now)
    return dose


async def snooze(
    uow: UnitOfWork, patient: Patient, dose_id: str, version: int, minutes: int, now: datetime
) -> datetime:
    """Remind again in 10, 30 or 60 minutes; the ladder is pushed back behind it. Returns
    when."""
    dose, _ = await check(uow, patient, dose_id, version)
    if minutes not in SNOOZE_MINUTES:
        raise DoseError("unknown")
    if dose.status == MISSED:
        raise DoseError("missed")
    n = await _rounds(uow, dose.id)
    if n >= MAX_SNOOZES:
        raise DoseError("limit")
    await cancel_ladder(uow, dose.id)
    when = now + timedelta(minutes=minutes)
    await _add_event(uow, SNOOZE, dose.id, patient.id, when, f"{SNOOZE}:{dose.id}:{n + 1}")
    await uow.audit.record(
        patient_ref(patient.id), "dose.snoozed", "dose", dose.id, {"minutes": minutes}
    )
    return when


async def skip(
    uow: UnitOfWork, patient: Patient, dose_id: str, version: int, now: datetime
) -> Dose:
    """The patient skips this dose (the reason comes next)."""
    dose, _ = await check(uow, patient, dose_id, version)
    dose.status = SKIPPED
    dose.responded_at = now
    await _acknowledge(uow, dose, patient_ref(patient.id), now)
    await uow.audit.record(patient_ref(patient.id), "dose.skipped", "dose", dose.id, {})
    return dose


async def skip_reason(
    uow: UnitOfWork, patient: Patient, dose_id: str, reason: str, text: str | None, now: datetime
) -> Dose:
    """Why the dose was skipped (a button, or typed for "other"), sealed on the dose."""
    dose = await get_dose(uow, dose_id) if dose_id else None
    if dose is None or dose.patient_id != patient.id or reason not in SKIP_REASONS:
        raise DoseError("unknown")
    if dose.status != SKIPPED:
        raise DoseError("unknown")
    note = await _note(uow, dose)
    if note.get("skip"):
        raise DoseError("answered")
    if text is not None:
        text = text.strip()
        if not text or len(text) > TEXT_MAX:
            raise DoseError("too_long")
    note["skip"] = {"reason": reason, "text": text, "at": now.isoformat(timespec="seconds")}
    await _save_note(uow, dose, note)
    await uow.audit.record(patient_ref(patient.id), "dose.skip_reason", "dose", dose.id, {})
    return dose


# -- side effects: a short transitions questionnaire --------------------------------------------


class Effect(StrEnum):
    """Where a side-effect report is."""

    WHAT = "what"
    OTHER = "other"  # typing what it is
    SEVERITY = "severity"
    DONE = "done"


EFFECT_TRANSITIONS = [
    {"trigger": "pick", "source": Effect.WHAT, "dest": Effect.SEVERITY},
    {"trigger": "pick_other", "source": Effect.WHAT, "dest": Effect.OTHER},
    {"trigger": "pick_red", "source": Effect.WHAT, "dest": Effect.DONE},
    {"trigger": "typed", "source": Effect.OTHER, "dest": Effect.SEVERITY},
    {"trigger": "rate", "source": Effect.SEVERITY, "dest": Effect.DONE},
]
EFFECT_TRIGGERS = tuple(t["trigger"] for t in EFFECT_TRANSITIONS)
_EFFECT_MACHINE = Machine(
    model=None,
    states=Effect,
    transitions=EFFECT_TRANSITIONS,
    initial=Effect.WHAT,
    auto_transitions=False,
    send_event=False,
)


class _EffectModel:
    state: Any = None


def next_effect_state(current: Effect, trigger: str) -> Effect | None:
    """The side-effect questionnaire's next state, or None when the trigger does not fit."""
    out = fire(_EFFECT_MACHINE, _EffectModel(), current, trigger, EFFECT_TRIGGERS)
    return None if out is None else Effect(out)


@dataclass
class EffectStep:
    """Where a side-effect report stands after an answer."""

    dose: Dose
    plan: MedicationPlan
    state: Effect
    what: str | None = None
    text: str | None = None
    severity: str | None = None
    red: bool = False  # the red-flag path ran
    alert: CareAlert | None = None
    caregivers: list[Caregiver] = field(default_factory=list)


async def _current_effect(uow: UnitOfWork, dose: Dose) -> tuple[dict[str, Any], dict[str, Any]]:
    note = await _note(uow, dose)
    effects = note.setdefault("effects", [])
    if not effects or effects[-1].get("state") == Effect.DONE.value:
        effects.append({"state": Effect.WHAT.value})
    return note, effects[-1]


async def effect_start(
    uow: UnitOfWork, patient: Patient, dose_id: str, version: int, now: datetime
) -> EffectStep:
    """Side effect pressed: the questionnaire starts (or resumes); the patient answered, so
    the ladder stops."""
    dose, plan = await _effect_dose(uow, patient, dose_id, version)
    note, current = await _current_effect(uow, dose)
    current["state"] = Effect.WHAT.value
    await _save_note(uow, dose, note)
    await _acknowledge(uow, dose, patient_ref(patient.id), now)
    return EffectStep(dose, plan, Effect.WHAT)


async def _effect_dose(
    uow: UnitOfWork, patient: Patient, dose_id: str, version: int
) -> tuple[Dose, MedicationPlan]:
    """A side effect can be reported on a dose already answered too (taken, then unwell)."""
    try:
        return await check(uow, patient, dose_id, version)
    except DoseError as err:
        if err.reason != "answered":
            raise
    dose = await get_dose(uow, dose_id)
    plan = await get_plan(uow, dose.plan_id) if dose is not None else None
    assert dose is not None and plan is not None
    return dose, plan


async def effect_answer(
    uow: UnitOfWork,
    patient: Patient,
    dose_id: str,
    version: int,
    value: str,
    now: datetime,
    *,
    text: str | None = None,
) -> EffectStep:
    """One answer of the side-effect questionnaire: ``value`` is an effect (step what), a
    severity (step severity), or ``typed`` with ``text`` (step other). On the last answer the
    report goes to the doctor as a care alert; severe, trouble breathing or swelling run the
    red-flag path (urgent alert, caregivers in scope, audited)."""
    dose, plan = await _effect_dose(uow, patient, dose_id, version)
    note, current = await _current_effect(uow, dose)
    state = Effect(current.get("state", Effect.WHAT.value))
    if state is Effect.WHAT and value in EFFECTS:
        trigger = (
            "pick_red" if value in RED_EFFECTS else "pick_other" if value == "other" else "pick"
        )
    elif state is Effect.OTHER and value == "typed":
        trigger = "typed"
    elif state is Effect.SEVERITY and value in SEVERITIES:
        trigger = "rate"
    else:
        raise DoseError("unknown")
    nxt = next_effect_state(state, trigger)
    if nxt is None:
        raise DoseError("unknown")
    if trigger == "typed":
        clean = (text or "").strip()
        if not clean or len(clean) > TEXT_MAX:
            raise DoseError("too_long")
        current["text"] = clean
    elif trigger in ("pick", "pick_other", "pick_red"):
        current["what"] = value
    if trigger == "pick_red":
        current["severity"] = "severe"
    if trigger == "rate":
        current["severity"] = value
    current["state"] = nxt.value
    step = EffectStep(
        dose, plan, nxt, current.get("what"), current.get("text"), current.get("severity")
    )
    if nxt is Effect.DONE:
        current["at"] = now.isoformat(timespec="seconds")
        step.red = current["what"] in RED_EFFECTS or current["severity"] == "severe"
        current["red"] = step.red
    await _save_note(uow, dose, note)
    if nxt is not Effect.DONE:
        return step
    await _acknowledge(uow, dose, patient_ref(patient.id), now)
    details = await details_of(uow, plan)
    doctor = await uow.doctors.get(plan.doctor_id)
    dtr = Translator(doctor.locale if doctor is not None else "en")
    step.alert = await alerts.raise_alert(
        uow,
        patient_id=patient.id,
        doctor_id=plan.doctor_id,
        kind=ALERT_EFFECT,
        ref_id=dose.id,
        level="danger" if step.red else "alert",
        msgid="doses.doctor.effect",
        params=_effect_params(dtr, details, dose, current),
        now=now,
    )
    action = "dose.side_effect.red_flag" if step.red else "dose.side_effect"
    await uow.audit.record(patient_ref(patient.id), action, "dose", dose.id, {})
    if step.red:
        await uow.audit.record(
            patient_ref(patient.id), "redflag.raised", "patient", patient.id, {"source": "dose"}
        )
        step.caregivers = [
            c for c in await caregivers.for_alert(uow, patient.id, "missed") if c.tg_user_id
        ]
    return step


# -- caregivers' and doctors' acknowledgements --------------------------------------------------


CAREGIVER_ACTIONS = ("checked", "took")


async def caregiver_answer(
    uow: UnitOfWork, tg_user_id: int, dose_id: str, action: str, now: datetime
) -> tuple[Dose, Caregiver, Patient]:
    """A caregiver's button on an escalation: "I've checked on them" (acknowledged) or "They
    took it" (recorded as taken: the doctor's open alert about the dose is resolved). Either
    stops the ladder; audited."""
    dose = await get_dose(uow, dose_id) if dose_id else None
    if dose is None or action not in CAREGIVER_ACTIONS:
        raise DoseError("unknown")
    mine = [
        c for c in await caregivers.by_user(uow, tg_user_id) if c.patient_id == dose.patient_id
    ]
    patient = await uow.patients.get(dose.patient_id)
    if not mine or patient is None:
        raise DoseError("not_caregiver")
    cg = mine[0]
    if dose.status != PENDING or dose.acked_at is not None:
        raise DoseError("answered")
    actor = caregivers.actor_ref(cg)
    await _acknowledge(uow, dose, actor, now)
    if action == "took":
        dose.status = TAKEN
        dose.responded_at = now
    await uow.audit.record(actor, f"dose.ack.{action}", "dose", dose.id, {})
    plan = await get_plan(uow, dose.plan_id)
    if action == "took" and plan is not None:
        await _resolve_unanswered(uow, dose, plan, patient, actor, "caregiver", now)
    return dose, cg, patient


@alerts.on_ack(ALERT_DOSE)
async def _doctor_acked(uow: UnitOfWork, alert: CareAlert, doctor: Doctor, now: datetime) -> None:
    """The doctor acknowledged an unanswered-dose alert: recorded on the dose; the ladder
    (if anything is left of it) stops."""
    dose = await get_dose(uow, alert.ref_id)
    if dose is None:
        return
    await _acknowledge(uow, dose, alerts.doctor_ref(doctor.id), now)
    await uow.audit.record(alerts.doctor_ref(doctor.id), "dose.ack.doctor", "dose", dose.id, {})


async def _resolve_unanswered(
    uow: UnitOfWork,
    dose: Dose,
    plan: MedicationPlan,
    patient: Patient,
    actor: str,
    by: str,
    now: datetime,
) -> None:
    """The dose was taken after all: an open "not answered" alert about it is resolved and the
    doctor told once ("Resolved: Nora took Examplol at 09:40 (the 08:00 dose)")."""
    if not await alerts.any_open(uow, patient.id, ALERT_DOSE, [dose.id]):
        return
    details = await details_of(uow, plan)
    await alerts.resolve(
        uow,
        patient_id=patient.id,
        kind=ALERT_DOSE,
        ref_ids=[dose.id],
        resolution=alerts.Resolution(
            actor=actor,
            by=by,
            cause="dose.taken",
            msgid=f"doses.doctor.resolved.{by}",
            at=now,
            zone=zone_of(patient),
            params={"medicine": details["name"] or "—", "due": time_of(dose)},
        ),
    )


def _unanswered_params(details: dict[str, str], dose: Dose, at: datetime) -> dict[str, Any]:
    """The "not answered" alert's placeholders, as it was raised at ``at``."""
    return {
        "medicine": details["name"] or "—",
        "dose": details["dose"] or "—",
        "time": dose.local,
        "minutes": int((aware(at) - aware(dose.due_at)).total_seconds() // 60),
    }


def _effect_params(
    tr: Translator, details: dict[str, str], dose: Dose, effect: dict[str, Any]
) -> dict[str, Any]:
    """A side-effect alert's placeholders in ``tr``'s language."""
    what = str(effect.get("what") or "other")
    severity = str(effect.get("severity") or "mild")
    return {
        "medicine": details["name"] or "—",
        "time": dose.local,
        "what": effect.get("text") or tr.plain(f"doses.effect.{what}"),
        "severity": tr.plain(f"doses.severity.{severity}"),
    }


@alerts.on_describe(ALERT_DOSE)
async def _describe_unanswered(uow: UnitOfWork, tr: Translator, alert: CareAlert) -> Html | None:
    """A dose nobody answered: the medicine, its dose and time, how long it went unanswered."""
    dose = await get_dose(uow, alert.ref_id)
    plan = await get_plan(uow, dose.plan_id) if dose is not None else None
    if dose is None or plan is None:
        return None
    details = await details_of(uow, plan)
    return tr("doses.doctor.unanswered", **_unanswered_params(details, dose, alert.created_at))


@alerts.on_describe(ALERT_EFFECT)
async def _describe_effect(uow: UnitOfWork, tr: Translator, alert: CareAlert) -> Html | None:
    """A side effect: the report of this alert (the one finished when it was raised)."""
    dose = await get_dose(uow, alert.ref_id)
    plan = await get_plan(uow, dose.plan_id) if dose is not None else None
    if dose is None or plan is None:
        return None
    done = [
        e
        for e in (await _note(uow, dose)).get("effects", [])
        if isinstance(e, dict) and e.get("state") == Effect.DONE.value and e.get("at")
    ]
    if not done:
        return None
    raised = aware(alert.created_at)

    def distance(effect: dict[str, Any]) -> float:
        try:
            at = aware(datetime.fromisoformat(str(effect["at"])))
        except ValueError:
            return float("inf")
        return abs((at - raised).total_seconds())

    effect = min(done, key=distance)
    details = await details_of(uow, plan)
    return tr("doses.doctor.effect", **_effect_params(tr, details, dose, effect))


# -- the patient's views -----------------------------------------------------------------------


@dataclass
class DoseLine:
    """One row of /doses."""

    dose: Dose
    name: str
    status: str  # taken | skipped | missed | late | pending | cancelled | snoozed


async def recent(
    uow: UnitOfWork, patient: Patient, now: datetime, days: int = RECENT_DAYS
) -> list[DoseLine]:
    """Today's and recent doses (due by now, or answered), newest first, with their
    status."""
    rows = await uow.medication.recent_doses(patient.id, now - timedelta(days=days), now)
    names: dict[str, str] = {}
    out: list[DoseLine] = []
    for dose in rows:
        if dose.plan_id not in names:
            plan = await get_plan(uow, dose.plan_id)
            names[dose.plan_id] = (await details_of(uow, plan))["name"] if plan else ""
        status = dose.status
        if status == TAKEN and dose.late:
            status = "late"
        out.append(DoseLine(dose, names[dose.plan_id], status))
    return out


async def plans_of(
    uow: UnitOfWork, patient: Patient, statuses: Sequence[str]
) -> list[MedicationPlan]:
    """The patient's plans in these statuses."""
    return await uow.medication.plans_of_patient(patient.id, statuses)


# -- FHIR --------------------------------------------------------------------------------------

FHIR_SKIP_SYSTEM = "urn:careline:dose:skip-reason"


def medication_administration(
    dose: Dose,
    details: dict[str, str],
    *,
    patient_ref: str,
    skip_reason: str | None = None,
) -> dict[str, Any]:
    """An answered dose as a FHIR R4 MedicationAdministration (a plain dict that validates):
    ``completed`` when taken, ``not-done`` with the reason when skipped or missed."""
    if dose.status not in (TAKEN, SKIPPED, MISSED):
        raise ValueError("only answered or missed doses are administrations")
    when = aware(dose.responded_at or dose.due_at)
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": dose.id,
        "status": "completed" if dose.status == TAKEN else "not-done",
        "medicationCodeableConcept": {"text": details.get("name") or "medicine"},
        "subject": {"reference": patient_ref},
        "request": {"reference": f"MedicationRequest/{dose.plan_id}"},
        "effectiveDateTime": when.isoformat(timespec="seconds"),
        "note": [{"text": f"scheduled {dose.local} (patient's local time)"}],
    }
    if details.get("dose"):
        # mad-1: a dosage needs a coded dose or rate; the doctor's free text is not one (and
        # Careline never codes it), so it goes in a note instead.
        resource["note"].append({"text": f"dose as prescribed: {details['dose']}"})
    if dose.status != TAKEN:
        code = skip_reason if dose.status == SKIPPED and skip_reason else dose.status
        resource["statusReason"] = [{"coding": [{"system": FHIR_SKIP_SYSTEM, "code": code}]}]
    if dose.acked_by and not dose.acked_by.startswith("patient:") and dose.status == TAKEN:
        resource["performer"] = [{"actor": {"display": dose.acked_by.split(":", 1)[0]}}]
    return resource


async def administrations(uow: UnitOfWork, patient: Patient) -> list[dict[str, Any]]:
    """Every answered or missed dose of the patient as MedicationAdministration dicts."""
    rows = await uow.medication.doses_of_patient(patient.id, (TAKEN, SKIPPED, MISSED))
    out = []
    plans: dict[str, dict[str, str]] = {}
    for dose in rows:
        if dose.plan_id not in plans:
            plan = await get_plan(uow, dose.plan_id)
            plans[dose.plan_id] = await details_of(uow, plan) if plan else {}
        reason = (await _note(uow, dose)).get("skip", {}).get("reason")
        out.append(
            medication_administration(
                dose, plans[dose.plan_id], patient_ref=f"Patient/{patient.id}", skip_reason=reason
            )
        )
    return out
