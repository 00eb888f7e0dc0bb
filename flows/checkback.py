"""Check-backs after self-care advice: "how are you feeling now?" a day or a few days later.

The patient chooses when; the question comes at 10:00 in their own time zone on that day,
through the scheduler's due-event queue (kind ``intake.checkback``, subject the intake id).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flows import intake as intake_flow
from flows.onboarding import Actor
from storage.models import Intake, Patient, ScheduledEvent
from storage.uow import UnitOfWork

KIND = "intake.checkback"
DAYS = (1, 3)
ANSWERS = ("better", "same", "worse")
LOCAL_HOUR = 10
LATE_AFTER = timedelta(days=2)


class NotAllowed(Exception):
    """The button does not fit (another intake, already answered, a forged value)."""


def due_time(now: datetime, days: int, timezone: str | None) -> datetime:
    """10:00 local time ``days`` days from today, in UTC."""
    try:
        zone = zoneinfo.ZoneInfo(timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    local_day = now.astimezone(zone).date() + timedelta(days=days)
    return datetime.combine(local_day, time(LOCAL_HOUR), tzinfo=zone).astimezone(UTC)


async def _self_care_intake(uow: UnitOfWork, patient: Patient, tag: str) -> Intake:
    found = await intake_flow.find(uow, patient, tag)
    if found is None:
        raise NotAllowed("no such intake")
    item, _ = found
    if item.disposition != "self_care":
        raise NotAllowed("check-backs follow self-care advice only")
    return item


async def schedule(
    uow: UnitOfWork, patient: Patient, tag: str, days: int, now: datetime
) -> datetime | None:
    """Ask again in ``days`` days (0: no check-back). Returns when, or None."""
    if days not in (0, *DAYS):
        raise NotAllowed("unknown delay")
    item = await _self_care_intake(uow, patient, tag)
    for pending in await uow.events.pending_for(KIND, item.id):
        pending.status = "cancelled"
    if days == 0:
        return None
    when = due_time(now, days, patient.timezone)
    await uow.events.add(KIND, item.id, patient.id, when)
    await uow.audit.record(Actor(patient.id).ref, "checkback.schedule", "intake", item.id)
    return when


async def due(
    uow: UnitOfWork, event: ScheduledEvent, now: datetime
) -> tuple[Patient, Intake, dict[str, Any], bool] | None:
    """The event fired: who to ask about what, and whether it is late (after downtime).
    None when there is nobody left to ask (erased meanwhile)."""
    item = await uow.intakes.get(event.subject)
    patient = await uow.patients.get(event.patient_id)
    if item is None or patient is None or patient.unreachable:
        return None
    answers = await uow.intakes.answers(item)
    due_at = event.due_at if event.due_at.tzinfo else event.due_at.replace(tzinfo=UTC)
    return patient, item, answers, now - due_at > LATE_AFTER


async def answer(uow: UnitOfWork, patient: Patient, tag: str, value: str, now: datetime) -> str:
    """Record how the patient feels; returns the answer."""
    if value not in ANSWERS:
        raise NotAllowed("unknown answer")
    item = await _self_care_intake(uow, patient, tag)
    answers = await uow.intakes.answers(item)
    if answers.get("checkback"):
        raise NotAllowed("already answered")
    answers["checkback"] = {"answer": value, "at": now.isoformat(timespec="seconds")}
    await uow.intakes.save_answers(item, answers)
    await uow.audit.record(Actor(patient.id).ref, "checkback.answer", "intake", item.id)
    return value
