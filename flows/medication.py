"""Medication plans: a doctor enters one (a wizard), the patient confirms or declines it, and
then manages it (pause, resume, quiet hours, time zone, shifted times, FHIR export).

Careline never suggests medicines or doses: every value comes from the doctor, typed as free
text (name and strength, dose) or parsed from what they typed (times, days, period) by
:mod:`flows.timing`; the only choices offered are days (every day, weekdays), periods
(7 days, 30 days, ongoing) and the food note.

The plan's status is the state of a module-level ``transitions`` machine::

    draft -propose-> proposed -confirm-> active <-pause/resume-> paused
    draft -cancel-> cancelled       proposed -decline-> declined
    proposed|active|paused -change-> proposed (version + 1)     ... -end-> ended

The wizard's ``step`` (``name`` … ``food``, ``review``; ``done`` outside the wizard) is where
the doctor is. What they entered is a JSON document sealed under the patient's data key in
``details_enc``::

    {"name": ..., "dose": ..., "food": ...,              # the plan as sent (once sent)
     "draft": {"name", "dose", "times", "every_hours", "days", "start", "end", "food"},
     "decline_reason": ...}

A new plan and a change of an existing one both fill ``draft``; "Send to patient" copies it
into the plan (``schedule`` is the plain timing JSON of :class:`flows.timing.Schedule`, so the
scheduler never decrypts) and, for a change, raises ``version`` so every older button (the
old card's Confirm, reminders' Taken) is recognised as stale.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from transitions import Machine

from flows import doses, timing
from flows.consultation import doctor_ref, is_verified
from flows.errors import UserError
from flows.machines import fire
from storage.models import Consultation, Doctor, MedicationPlan, Patient
from storage.uow import UnitOfWork

TABLE = "med_plans"
COLUMN = "details_enc"
TEXT_MAX = 200  # medicine name and strength; dose
REASON_MAX = 500  # a patient's reason for declining
MAX_TIMES = 12  # times of day in one plan (the timing parser has its own limit too)
SHIFT_STEP = 60
SHIFT_MAX = 12 * 60
EVERY_DAY = (1, 2, 3, 4, 5, 6, 7)
WEEKDAYS = (1, 2, 3, 4, 5)
FOODS = ("with", "before", "after", "none")
PERIODS = {"7": "7 days", "30": "30 days", "ongoing": "ongoing"}  # buttons, via the parser


class Status(StrEnum):
    """A plan's status (the machine's states)."""

    DRAFT = "draft"
    PROPOSED = "proposed"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"
    DECLINED = "declined"
    CANCELLED = "cancelled"


S = Status
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "propose", "source": S.DRAFT, "dest": S.PROPOSED},
    {"trigger": "cancel", "source": S.DRAFT, "dest": S.CANCELLED},
    {"trigger": "confirm", "source": S.PROPOSED, "dest": S.ACTIVE},
    {"trigger": "decline", "source": S.PROPOSED, "dest": S.DECLINED},
    {"trigger": "pause", "source": S.ACTIVE, "dest": S.PAUSED},
    {"trigger": "resume", "source": S.PAUSED, "dest": S.ACTIVE},
    {"trigger": "change", "source": [S.PROPOSED, S.ACTIVE, S.PAUSED], "dest": S.PROPOSED},
    {"trigger": "end", "source": [S.PROPOSED, S.ACTIVE, S.PAUSED], "dest": S.ENDED},
]
TRIGGERS = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))
LIVE = (S.PROPOSED, S.ACTIVE, S.PAUSED)  # plans a doctor can change or end
SHOWN = (S.ACTIVE, S.PAUSED)  # plans the patient manages in /meds


class _Model:
    """The light model the machine is attached to for one decision."""

    state: Status


_MACHINE = Machine(
    model=None,
    states=Status,
    transitions=TRANSITIONS,
    initial=Status.DRAFT,
    auto_transitions=False,
    send_event=False,
)

STEPS = ("name", "dose", "times", "days", "period", "food")
REVIEW = "review"
DONE = "done"


class NotAllowed(Exception):
    """The action does not fit the plan (``reason``: stale, not_yours, state, draft_open, ...)."""

    def __init__(self, reason: str = "not_allowed", plan: MedicationPlan | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.plan = plan


class BadInput(UserError, ValueError):
    """An answer that cannot be used; ``msgid`` and ``params`` say why (the step stays)."""


def next_status(current: Status, trigger: str) -> Status:
    """The machine's decision, or ``NotAllowed("state")``."""
    new = fire(_MACHINE, _Model(), current, trigger, TRIGGERS)
    if new is None:
        raise NotAllowed("state")
    return Status(new)


def patient_ref(patient: Patient) -> str:
    """The audit actor of a patient."""
    return f"patient:{patient.id}"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def local_today(patient: Patient | None, now: datetime) -> date:
    """Today in the patient's time zone (UTC when unknown)."""
    try:
        zone = zoneinfo.ZoneInfo((patient.timezone if patient else None) or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return _aware(now).astimezone(zone).date()


# -- the sealed details -----------------------------------------------------------------------


async def details(uow: UnitOfWork, plan: MedicationPlan) -> dict[str, Any]:
    """The decrypted details document of a plan (see the module notes)."""
    return await uow.medication.details(plan)


async def _save(uow: UnitOfWork, plan: MedicationPlan, doc: dict[str, Any]) -> None:
    await uow.medication.set_details(plan, doc)


def schedule_of(values: dict[str, Any]) -> timing.Schedule:
    """The timing of a draft (or of a sent plan's copy of it)."""
    return timing.Schedule(
        times=tuple(values.get("times") or ()),
        every_hours=values.get("every_hours"),
        days=tuple(values.get("days") or EVERY_DAY),
        start=date.fromisoformat(values["start"]),
        end=date.fromisoformat(values["end"]) if values.get("end") else None,
    )


@dataclass(frozen=True)
class PlanView:
    """What a card shows of a plan (the doctor's draft or the plan as sent)."""

    plan: MedicationPlan
    name: str
    dose: str
    times: tuple[str, ...]  # local "HH:MM", shifted by the patient's shift
    every_hours: int | None
    days: tuple[int, ...]
    start: date | None
    end: date | None
    food: str
    shift_minutes: int


def shifted(times: tuple[str, ...] | list[str], minutes: int) -> tuple[str, ...]:
    """Local "HH:MM" times moved by ``minutes`` (wrapping around midnight), sorted."""
    out = []
    for t in times:
        h, m = (int(x) for x in t.split(":"))
        total = (h * 60 + m + minutes) % (24 * 60)
        out.append(f"{total // 60:02d}:{total % 60:02d}")
    return tuple(sorted(out))


async def view(uow: UnitOfWork, plan: MedicationPlan, *, draft: bool = False) -> PlanView:
    """A plan as cards show it: the draft (``draft=True``) or the plan as sent."""
    doc = await details(uow, plan)
    sent = {**json.loads(plan.schedule or "{}"), **doc}
    values: dict[str, Any] = (doc.get("draft") or {}) if draft else sent
    shift = 0 if draft else plan.shift_minutes
    start = values.get("start")
    end = values.get("end")
    return PlanView(
        plan=plan,
        name=str(values.get("name") or ""),
        dose=str(values.get("dose") or ""),
        times=shifted(values.get("times") or (), shift),
        every_hours=values.get("every_hours"),
        days=tuple(values.get("days") or ()),
        start=date.fromisoformat(start) if start else None,
        end=date.fromisoformat(end) if end else None,
        food=str(values.get("food") or "none"),
        shift_minutes=shift,
    )


# -- finding plans ----------------------------------------------------------------------------


async def get(uow: UnitOfWork, plan_id: str) -> MedicationPlan | None:
    """A plan by id."""
    return await uow.medication.plan(plan_id) if plan_id else None


async def wizard_of(uow: UnitOfWork, doctor: Doctor) -> MedicationPlan | None:
    """The plan this doctor is entering or changing right now (one at a time), if any."""
    return await uow.medication.open_wizard(
        doctor.id, [S.DRAFT.value, *(s.value for s in LIVE)], DONE
    )


async def plans_of_patient(
    uow: UnitOfWork, patient_id: str, statuses: tuple[Status, ...], doctor_id: str | None = None
) -> list[MedicationPlan]:
    """A patient's plans in these statuses (optionally one doctor's), oldest first."""
    return await uow.medication.plans_of_patient(
        patient_id, [s.value for s in statuses], doctor_id
    )


async def case_of(uow: UnitOfWork, plan: MedicationPlan) -> Consultation | None:
    """The consultation a plan was entered in."""
    return await uow.consultations.get(plan.consultation_id) if plan.consultation_id else None


# -- the doctor's wizard ----------------------------------------------------------------------


def _check_doctor(doctor: Doctor, now: datetime) -> None:
    if not is_verified(doctor, now):
        raise NotAllowed("unverified")


async def begin(
    uow: UnitOfWork,
    doctor: Doctor,
    case: Consultation,
    now: datetime,
    ladder: tuple[int, int, int] = (30, 60, 120),
) -> MedicationPlan:
    """A new draft for the patient of one of the doctor's cases (closed ones too: the patient
    is under their care). ``NotAllowed("draft_open")`` (with the plan) when a wizard is open."""
    _check_doctor(doctor, now)
    if case.doctor_id != doctor.id:
        await uow.audit.record(doctor_ref(doctor), "medplan.refused", "consultation", case.id, {})
        raise NotAllowed("not_yours")
    open_plan = await wizard_of(uow, doctor)
    if open_plan is not None:
        raise NotAllowed("draft_open", open_plan)
    plan = MedicationPlan(
        patient_id=case.patient_id,
        doctor_id=doctor.id,
        consultation_id=case.id,
        status=S.DRAFT.value,
        step=STEPS[0],
        version=1,
        schedule="{}",
        shift_minutes=0,
        # minutes of silence before: the re-reminder, the caregivers' alert, the doctor's
        again_after_min=ladder[0],
        caregiver_after_min=ladder[1],
        doctor_after_min=ladder[2],
        created_at=now,
    )
    await uow.medication.add_plan(plan, {"draft": {}})
    await uow.audit.record(doctor_ref(doctor), "medplan.draft", TABLE, plan.id, {"case": case.id})
    return plan


def _next_step(draft: dict[str, Any]) -> str:
    for step in STEPS:
        if step == "times":
            if not draft.get("times") and not draft.get("every_hours"):
                return step
        elif step == "period":
            if not draft.get("start"):
                return step
        elif not draft.get(step):
            return step
    return REVIEW


async def _wizard_plan(uow: UnitOfWork, doctor: Doctor, plan_id: str | None) -> MedicationPlan:
    plan = await wizard_of(uow, doctor)
    if plan is None or (plan_id is not None and plan.id != plan_id):
        raise NotAllowed("stale")
    return plan


async def _store_answer(
    uow: UnitOfWork, doctor: Doctor, plan: MedicationPlan, step: str, values: dict[str, Any]
) -> str:
    doc = await details(uow, plan)
    draft = dict(doc.get("draft") or {})
    draft.update(values)
    doc["draft"] = draft
    await _save(uow, plan, doc)
    plan.step = _next_step(draft)
    await uow.audit.record(doctor_ref(doctor), "medplan.step", TABLE, plan.id, {"step": step})
    return plan.step


async def prefill(
    uow: UnitOfWork, doctor: Doctor, plan: MedicationPlan, values: dict[str, Any]
) -> str:
    """Fill a new draft's ``name`` and ``dose`` from elsewhere (a prescription's medicine);
    the wizard goes on from the next unanswered step."""
    clean = {k: _clean(str(v))[:TEXT_MAX] for k, v in values.items() if k in ("name", "dose")}
    return await _store_answer(uow, doctor, plan, "prefill", clean)


def _text_value(raw: str) -> str:
    text = _clean(raw)
    if not text:
        raise BadInput("meds.plan.empty")
    if len(text) > TEXT_MAX:
        raise BadInput("meds.plan.too_long", max=TEXT_MAX)
    return text


def _timing(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except timing.TimingError as exc:
        raise BadInput(exc.msgid, **exc.params) from None


async def answer(
    uow: UnitOfWork, doctor: Doctor, plan: MedicationPlan, raw: str, now: datetime
) -> str:
    """The doctor typed an answer to the current step; returns the next step. A bad answer
    raises :class:`BadInput` and the step stays."""
    _check_doctor(doctor, now)
    step = plan.step
    values: dict[str, Any]
    if step in ("name", "dose"):
        values = {step: _text_value(raw)}
    elif step == "times":
        times, every = _timing(timing.parse_times, raw)
        if len(times) > MAX_TIMES:
            raise BadInput("meds.plan.too_many_times", max=MAX_TIMES)
        values = {"times": list(times), "every_hours": every}
    elif step == "days":
        values = {"days": list(_timing(timing.parse_days, raw))}
    elif step == "period":
        patient = await uow.patients.get(plan.patient_id)
        start, end = _timing(timing.parse_period, raw, local_today(patient, now))
        values = {"start": start.isoformat(), "end": end.isoformat() if end else None}
    else:  # food and review are answered with buttons
        raise BadInput("meds.plan.use_buttons")
    return await _store_answer(uow, doctor, plan, step, values)


async def choose(
    uow: UnitOfWork, doctor: Doctor, plan_id: str, step: str, value: str, now: datetime
) -> tuple[MedicationPlan, str]:
    """A button answer (days, period, food) of the current step; returns the plan and the
    next step. A button of another step or plan is stale."""
    _check_doctor(doctor, now)
    plan = await _wizard_plan(uow, doctor, plan_id)
    if plan.step != step:
        raise NotAllowed("stale")
    values: dict[str, Any]
    if step == "days" and value in ("every", "weekdays"):
        values = {"days": list(EVERY_DAY if value == "every" else WEEKDAYS)}
    elif step == "period" and value in PERIODS:
        patient = await uow.patients.get(plan.patient_id)
        start, end = _timing(timing.parse_period, PERIODS[value], local_today(patient, now))
        values = {"start": start.isoformat(), "end": end.isoformat() if end else None}
    elif step == "food" and value in FOODS:
        values = {"food": value}
    else:
        raise NotAllowed("stale")
    return plan, await _store_answer(uow, doctor, plan, step, values)


async def goto(
    uow: UnitOfWork, doctor: Doctor, plan_id: str, step: str, now: datetime
) -> MedicationPlan:
    """From the review card, "Change a step": that step is asked again (then back to review)."""
    _check_doctor(doctor, now)
    plan = await _wizard_plan(uow, doctor, plan_id)
    if plan.step != REVIEW or step not in (*STEPS, REVIEW):
        raise NotAllowed("stale")
    plan.step = step
    if step != REVIEW:
        doc = await details(uow, plan)
        draft = dict(doc.get("draft") or {})
        cleared = {
            "times": ("times", "every_hours"),
            "period": ("start", "end"),
        }.get(step, (step,))
        draft["_keep"] = {k: draft.get(k) for k in cleared}
        for key in cleared:
            draft.pop(key, None)
        doc["draft"] = draft
        await _save(uow, plan, doc)
    return plan


async def keep(uow: UnitOfWork, doctor: Doctor, plan_id: str, now: datetime) -> MedicationPlan:
    """While changing one step from the review card: keep its old value, back to review."""
    _check_doctor(doctor, now)
    plan = await _wizard_plan(uow, doctor, plan_id)
    doc = await details(uow, plan)
    draft = dict(doc.get("draft") or {})
    kept = draft.pop("_keep", None)
    if not kept or plan.step in (REVIEW, DONE):
        raise NotAllowed("stale")
    draft.update(kept)
    doc["draft"] = draft
    await _save(uow, plan, doc)
    plan.step = _next_step(draft)
    return plan


def can_keep(values: dict[str, Any]) -> bool:
    """Whether the current step has an old value the doctor may keep."""
    return bool(values.get("_keep"))


async def draft_values(uow: UnitOfWork, plan: MedicationPlan) -> dict[str, Any]:
    """The draft as entered so far."""
    return dict((await details(uow, plan)).get("draft") or {})


async def cancel_wizard(uow: UnitOfWork, doctor: Doctor, now: datetime) -> MedicationPlan | None:
    """/cancel (or the Cancel button): a new plan's draft is dropped (cancelled); a change of
    an existing plan is abandoned and the plan stays as it was. None when nothing was open."""
    plan = await wizard_of(uow, doctor)
    if plan is None:
        return None
    if Status(plan.status) is S.DRAFT:
        plan.status = next_status(S.DRAFT, "cancel").value
        plan.ended_at = now
    doc = await details(uow, plan)
    doc.pop("draft", None)
    await _save(uow, plan, doc)
    plan.step = DONE
    await uow.audit.record(doctor_ref(doctor), "medplan.cancel", TABLE, plan.id, {})
    return plan


async def send(
    uow: UnitOfWork, doctor: Doctor, plan_id: str, now: datetime
) -> tuple[MedicationPlan, bool]:
    """ "Send to patient" on the review card: the draft becomes the plan (proposed, waiting for
    the patient's confirmation). For a change the version goes up and the old reminders are
    cancelled. Returns the plan and whether it was a change."""
    _check_doctor(doctor, now)
    plan = await _wizard_plan(uow, doctor, plan_id)
    if plan.step != REVIEW:
        raise NotAllowed("stale")
    doc = await details(uow, plan)
    draft = dict(doc.get("draft") or {})
    draft.pop("_keep", None)
    if _next_step(draft) != REVIEW:
        raise NotAllowed("incomplete")
    schedule = schedule_of(draft)
    was = Status(plan.status)
    change = was is not S.DRAFT
    new = next_status(was, "change" if change else "propose")
    if change:
        await doses.stop(uow, plan, now)
        plan.version += 1
        plan.confirmed_at = None
        plan.paused_at = None
    plan.status = new.value
    plan.schedule = schedule.to_json()
    plan.step = DONE
    await _save(
        uow,
        plan,
        {"name": draft["name"], "dose": draft["dose"], "food": draft.get("food", "none")},
    )
    await uow.audit.record(
        doctor_ref(doctor),
        "medplan.change" if change else "medplan.propose",
        TABLE,
        plan.id,
        {"from": was.value, "to": new.value, "version": plan.version},
    )
    return plan, change


async def _doctor_plan(
    uow: UnitOfWork, doctor: Doctor, plan_id: str, now: datetime
) -> MedicationPlan:
    _check_doctor(doctor, now)
    plan = await get(uow, plan_id)
    if plan is None or plan.doctor_id != doctor.id:
        await uow.audit.record(
            doctor_ref(doctor), "medplan.refused", TABLE, (plan_id or "-")[:32], {}
        )
        raise NotAllowed("not_yours")
    return plan


async def begin_change(
    uow: UnitOfWork, doctor: Doctor, plan_id: str, now: datetime
) -> MedicationPlan:
    """ "Change" in /plans: the wizard again, prefilled with the plan (straight to the review
    card). The plan keeps working as it is until the change is sent."""
    plan = await _doctor_plan(uow, doctor, plan_id, now)
    if Status(plan.status) not in LIVE:
        raise NotAllowed("state")
    open_plan = await wizard_of(uow, doctor)
    if open_plan is not None:
        raise NotAllowed("draft_open", open_plan)
    doc = await details(uow, plan)
    current = json.loads(plan.schedule or "{}")
    doc["draft"] = {
        "name": doc.get("name"),
        "dose": doc.get("dose"),
        "times": list(current.get("times") or []),
        "every_hours": current.get("every_hours"),
        "days": list(current.get("days") or EVERY_DAY),
        "start": current.get("start"),
        "end": current.get("end"),
        "food": doc.get("food", "none"),
    }
    await _save(uow, plan, doc)
    plan.step = REVIEW
    await uow.audit.record(
        doctor_ref(doctor), "medplan.change_begin", TABLE, plan.id, {"version": plan.version}
    )
    return plan


async def end(uow: UnitOfWork, doctor: Doctor, plan_id: str, now: datetime) -> MedicationPlan:
    """ "End" in /plans: no more reminders; the patient is told (by the caller)."""
    plan = await _doctor_plan(uow, doctor, plan_id, now)
    was = Status(plan.status)
    new = next_status(was, "end")
    await doses.stop(uow, plan, now)
    plan.status = new.value
    plan.ended_at = now
    if plan.step != DONE:
        doc = await details(uow, plan)
        doc.pop("draft", None)
        await _save(uow, plan, doc)
        plan.step = DONE
    await uow.audit.record(
        doctor_ref(doctor), "medplan.end", TABLE, plan.id, {"from": was.value, "to": new.value}
    )
    return plan


async def doctor_plans(
    uow: UnitOfWork, doctor: Doctor, patient_id: str, now: datetime
) -> list[MedicationPlan]:
    """/plans: this doctor's live plans for one patient (reading them is audited)."""
    _check_doctor(doctor, now)
    plans = await plans_of_patient(uow, patient_id, LIVE, doctor.id)
    await uow.audit.record(doctor_ref(doctor), "medplan.view", "patient", patient_id, {})
    return plans


# -- the patient's side -----------------------------------------------------------------------


async def patient_plan(
    uow: UnitOfWork, patient: Patient, plan_id: str, version: int | None = None
) -> MedicationPlan:
    """One of the patient's plans; an older version's button is stale."""
    plan = await get(uow, plan_id)
    if plan is None or plan.patient_id != patient.id:
        raise NotAllowed("stale")
    if version is not None and plan.version != version:
        raise NotAllowed("stale")
    return plan


async def _move(
    uow: UnitOfWork, patient: Patient, plan: MedicationPlan, trigger: str, **details: Any
) -> Status:
    was = Status(plan.status)
    try:
        new = next_status(was, trigger)
    except NotAllowed:
        raise NotAllowed("stale") from None
    plan.status = new.value
    await uow.audit.record(
        patient_ref(patient),
        f"medplan.{trigger}",
        TABLE,
        plan.id,
        {"from": was.value, "to": new.value, "version": plan.version, **details},
    )
    return new


async def confirm(
    uow: UnitOfWork, patient: Patient, plan_id: str, version: int, now: datetime
) -> MedicationPlan:
    """The patient confirms the plan card: active, reminders start."""
    plan = await patient_plan(uow, patient, plan_id, version)
    if plan.step != DONE and Status(plan.status) is S.DRAFT:
        raise NotAllowed("stale")
    sched = json.loads(plan.schedule or "{}")
    if sched.get("end") and date.fromisoformat(sched["end"]) < local_today(patient, now):
        raise NotAllowed("over")
    await _move(uow, patient, plan, "confirm")
    plan.confirmed_at = now
    await doses.start(uow, plan, patient, now)
    return plan


async def decline(
    uow: UnitOfWork,
    patient: Patient,
    plan_id: str,
    version: int,
    reason: str | None,
    now: datetime,
) -> MedicationPlan:
    """The patient declines the plan card, with an optional reason (for the doctor)."""
    plan = await patient_plan(uow, patient, plan_id, version)
    text = _clean(reason or "")
    if len(text) > REASON_MAX:
        raise BadInput("meds.decline.too_long", max=REASON_MAX)
    await _move(uow, patient, plan, "decline", reason=bool(text))
    plan.ended_at = now
    if text:
        doc = await details(uow, plan)
        doc["decline_reason"] = text
        await _save(uow, plan, doc)
    return plan


async def pause(
    uow: UnitOfWork, patient: Patient, plan_id: str, version: int, now: datetime
) -> MedicationPlan:
    """Pause: no reminders until resumed."""
    plan = await patient_plan(uow, patient, plan_id, version)
    await _move(uow, patient, plan, "pause")
    plan.paused_at = now
    await doses.stop(uow, plan, now)
    return plan


async def resume(
    uow: UnitOfWork, patient: Patient, plan_id: str, version: int, now: datetime
) -> MedicationPlan:
    """Resume: reminders again from the next dose time (the paused ones are not made up)."""
    plan = await patient_plan(uow, patient, plan_id, version)
    await _move(uow, patient, plan, "resume")
    plan.paused_at = None
    await doses.start(uow, plan, patient, now)
    return plan


async def shown_plans(uow: UnitOfWork, patient: Patient) -> list[MedicationPlan]:
    """/meds: the patient's active and paused plans."""
    return await plans_of_patient(uow, patient.id, SHOWN)


async def replan(uow: UnitOfWork, patient: Patient, now: datetime) -> int:
    """Reminders of every active plan computed again (after a zone or shift change)."""
    plans = await plans_of_patient(uow, patient.id, (S.ACTIVE,))
    for plan in plans:
        await doses.stop(uow, plan, now)
        await doses.start(uow, plan, patient, now)
    return len(plans)


_OFF = {"off", "none", "no", "关", "关闭", "无", "выкл", "выключить", "нет"}


def parse_quiet(raw: str) -> tuple[str, str] | None:
    """``22:00-07:00`` (a dash, "to", "–" or "—"), or Off (None)."""
    text = _clean(raw).lower()
    if text in _OFF:
        return None
    parts = re.split(r"\s*(?:-|–|—|~|to|до|至|到)\s*", text, maxsplit=1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise BadInput("meds.quiet.invalid")
    start = _timing(timing.parse_clock, parts[0])
    end_ = _timing(timing.parse_clock, parts[1])
    if start == end_:
        raise BadInput("meds.quiet.invalid")
    return start, end_


async def set_quiet(uow: UnitOfWork, patient: Patient, raw: str) -> tuple[str, str] | None:
    """Quiet hours from what the patient typed (None: off)."""
    quiet = parse_quiet(raw)
    patient.quiet_start, patient.quiet_end = quiet if quiet else (None, None)
    await uow.audit.record(
        patient_ref(patient), "medplan.quiet", "patient", patient.id, {"on": quiet is not None}
    )
    return quiet


async def set_zone(uow: UnitOfWork, patient: Patient, raw: str, now: datetime) -> str:
    """A new time zone (typed); every active plan is planned again in it."""
    zone = _timing(timing.parse_zone, _clean(raw))
    patient.timezone = zone
    count = await replan(uow, patient, now)
    await uow.audit.record(
        patient_ref(patient), "medplan.zone", "patient", patient.id, {"replanned": count}
    )
    return zone


_MINUTES = re.compile(r"^([+-]?)\s*(\d{1,4})\s*(m|min|mins|minutes|мин|分钟|分)?$")
_HOURS = re.compile(
    r"^([+-]?)\s*(\d{1,2})(?:[.,](\d))?\s*(h|hr|hrs|hours?|ч|час|часа|часов|小时)$"
)


def parse_shift(raw: str) -> int:
    """Typed minutes (``+30``, ``-90``, ``45 min``) or hours (``+2 h``); ±12 h at most."""
    text = _clean(raw).lower().replace("−", "-").replace("＋", "+")
    if m := _HOURS.match(text):
        minutes = int(m.group(2)) * 60 + (int(m.group(3)) * 6 if m.group(3) else 0)
    elif m := _MINUTES.match(text):
        minutes = int(m.group(2))
    else:
        raise BadInput("meds.shift.invalid", max=SHIFT_MAX // 60)
    minutes = -minutes if m.group(1) == "-" else minutes
    if abs(minutes) > SHIFT_MAX:
        raise BadInput("meds.shift.too_far", max=SHIFT_MAX // 60)
    return minutes


async def shift(
    uow: UnitOfWork, patient: Patient, minutes: int, now: datetime, *, by: bool = True
) -> int:
    """Move every active and paused plan's times by ``minutes`` (``by``) or to ``minutes``
    from the doctor's times; ±12 h at most. Returns the new shift; active plans re-planned."""
    plans = await shown_plans(uow, patient)
    if not plans:
        raise NotAllowed("no_plans")
    base = plans[0].shift_minutes if by else 0
    target = base + minutes
    if abs(target) > SHIFT_MAX:
        raise BadInput("meds.shift.too_far", max=SHIFT_MAX // 60)
    for plan in plans:
        plan.shift_minutes = target
    await replan(uow, patient, now)
    await uow.audit.record(
        patient_ref(patient), "medplan.shift", "patient", patient.id, {"minutes": target}
    )
    return target


def current_shift(plans: list[MedicationPlan]) -> int:
    """The shift shown in /meds (all shown plans share it)."""
    return plans[0].shift_minutes if plans else 0


async def export(
    uow: UnitOfWork, patient: Patient, plan_id: str, now: datetime
) -> tuple[MedicationPlan, bytes]:
    """One plan as a FHIR R4 Bundle with its MedicationRequest (UTF-8 JSON); audited."""
    from flows import fhir

    plan = await patient_plan(uow, patient, plan_id)
    doc = await details(uow, plan)
    sched = json.loads(plan.schedule or "{}")
    bundle = fhir.medication_bundle(plan, doc, sched, patient_ref=patient.id, now=now)
    await uow.audit.record(
        patient_ref(patient), "medplan.export", TABLE, plan.id, {"version": plan.version}
    )
    return plan, json.dumps(bundle, ensure_ascii=False, indent=2).encode("utf-8")


def days_until(plan_end: date | None, today: date) -> int | None:
    """Days left in a plan (inclusive), None when ongoing."""
    return None if plan_end is None else (plan_end - today).days + 1
