"""Consultations: a triaged intake becomes a case in a department queue, a verified doctor
accepts it, messages go both ways, and the doctor closes it with advice (or terminates it as
"not suitable online", or transfers it); the patient may cancel; nobody accepting within
``case_expiry_hours`` expires it.

One module-level ``transitions`` machine (Enum states, no auto transitions); its conditions are
pure functions of a :class:`Snapshot`. The state is ``consultations.state``; every transition is
audited with its actor (``patient:<id>``, ``doctor:<id>`` or ``system``). No aiogram here: what
people are told is rendered by the handlers, and messages that cannot come from a handler
(a case opened inside an intake, an expiry, a suspension) go through scheduled events.
"""

from __future__ import annotations

import bisect
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from transitions import Machine

from flows import ops, routing, verification
from flows.machines import fire
from flows.onboarding import Actor, clean_text
from storage.models import CaseMessage, Consultation, Doctor, Intake, Patient
from storage.uow import UnitOfWork

# Scheduled event kinds (subject: the case id).
OPENED = "consult.opened"  # tell the patient the case number, notify the department
EXPIRE = "consult.expire"  # nobody accepted in time
REQUEUED = "consult.requeued"  # the doctor became unavailable: back in the queue
FALLBACK = "consult.fallback"  # nobody of the department accepted in time: down the chain
PLACE = "consult.place"  # a waiting patient's place, looked at again (told when it moved)

PLACE_EVERY = timedelta(minutes=15)  # a waiting patient hears of their place at most this often
WAITING_NOTES_MAX = 20  # messages and files a patient may add to one waiting case

TEXT_MAX = 3500  # one relayed message (the tag and header must still fit Telegram's 4096)
RANKS = ("emergency_ambulance", "emergency", "consultation_24", "consultation", "self_care")


class State(StrEnum):
    """Where a case is."""

    REQUESTED = "requested"
    AWAITING_RECORD = "awaiting_record"
    WAITING = "waiting"
    ACTIVE = "active"
    CLOSED = "closed"
    TERMINATED = "terminated"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINAL = (State.CLOSED, State.TERMINATED, State.CANCELLED)
OPEN = tuple(s for s in State if s not in FINAL)
CANCELLABLE = (State.AWAITING_RECORD, State.WAITING, State.ACTIVE, State.EXPIRED)

S = State
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "submit", "source": S.REQUESTED, "dest": S.AWAITING_RECORD, "conditions": "cn"},
    {"trigger": "submit", "source": S.REQUESTED, "dest": S.WAITING},
    {"trigger": "attach_record", "source": S.AWAITING_RECORD, "dest": S.WAITING},
    {"trigger": "accept", "source": S.WAITING, "dest": S.ACTIVE},
    {
        "trigger": "confirm_followup",
        "source": S.ACTIVE,
        "dest": S.ACTIVE,
        "conditions": "cn",
        "unless": "followup_visit",
    },
    {"trigger": "patient_message", "source": S.ACTIVE, "dest": S.ACTIVE},
    {"trigger": "doctor_message", "source": S.ACTIVE, "dest": S.ACTIVE, "conditions": "advise"},
    {"trigger": "close", "source": S.ACTIVE, "dest": S.CLOSED, "conditions": "advise"},
    {"trigger": "terminate", "source": S.ACTIVE, "dest": S.TERMINATED},
    {"trigger": "transfer", "source": S.ACTIVE, "dest": S.WAITING},
    {"trigger": "requeue", "source": S.ACTIVE, "dest": S.WAITING},
    {"trigger": "fall_back", "source": S.WAITING, "dest": S.WAITING},
    {"trigger": "expire", "source": S.WAITING, "dest": S.EXPIRED},
    {"trigger": "keep_waiting", "source": S.EXPIRED, "dest": S.WAITING},
    {"trigger": "cancel", "source": list(CANCELLABLE), "dest": S.CANCELLED},
]
TRIGGERS = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))


@dataclass(frozen=True)
class Snapshot:
    """What the machine's conditions may look at."""

    cn: bool = False  # mainland-China rules: a record first, a follow-up visit confirmed
    followup_visit: bool = False  # the doctor accepted the case as a follow-up visit


def is_cn(s: Snapshot) -> bool:
    """The case follows mainland-China rules (record upload, follow-up visits only)."""
    return s.cn


def may_advise(s: Snapshot) -> bool:
    """Advice may reach the patient: outside cn always, in cn once a follow-up visit."""
    return not s.cn or s.followup_visit


class _Model:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.state: State = State.REQUESTED

    def cn(self) -> bool:
        return is_cn(self.snap)

    def followup_visit(self) -> bool:
        return self.snap.followup_visit

    def advise(self) -> bool:
        return may_advise(self.snap)


_MACHINE = Machine(
    model=None,
    states=State,
    transitions=TRANSITIONS,
    initial=State.REQUESTED,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)


class NotAllowed(Exception):
    """The step does not fit the case (wrong state, not theirs, taken, forged)."""

    def __init__(self, reason: str = "not_allowed") -> None:
        super().__init__(reason)
        self.reason = reason


def next_state(current: State, trigger: str, snap: Snapshot) -> State:
    """The state after ``trigger`` from ``current``; :class:`NotAllowed` if not allowed."""
    new = fire(_MACHINE, _Model(snap), current, trigger, TRIGGERS)
    if new is None:
        raise NotAllowed("state")
    return State(new)


# -- who ---------------------------------------------------------------------------------------


def doctor_ref(doctor: Doctor) -> str:
    """The audit actor of a doctor."""
    return f"doctor:{doctor.id}"


def is_verified(doctor: Doctor | None, now: datetime) -> bool:
    """A doctor allowed to see and take cases (decided by the doctors' flow)."""
    return verification.is_verified(doctor, now)


def departments_of(doctor: Doctor) -> list[str]:
    """The doctor's department ids."""
    return [d.strip() for d in doctor.departments.split(",") if d.strip()]


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]|24):([0-5]\d)$")


def parse_hours(raw: str) -> str:
    """``09:00-18:00`` (overnight ``22:00-06:00`` too), normalised; ValueError otherwise."""
    m = _HOURS.match(clean_text(raw).replace("–", "-"))
    if not m or (m.group(3) == "24" and m.group(4) != "00"):
        raise ValueError("working hours must look like 09:00-18:00")
    start, end = f"{m.group(1)}:{m.group(2)}", f"{m.group(3)}:{m.group(4)}"
    if start == end:
        raise ValueError("working hours must look like 09:00-18:00")
    return f"{start}-{end}"


def _zone(name: str | None, default: str) -> zoneinfo.ZoneInfo:
    for candidate in (name, default, "UTC"):
        try:
            return zoneinfo.ZoneInfo(candidate or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return zoneinfo.ZoneInfo("UTC")


def within_hours(doctor: Doctor, now: datetime, clinic_tz: str) -> bool:
    """Is ``now`` inside the doctor's working hours, in their time zone? (no hours: always)"""
    if not doctor.work_hours:
        return True
    start_s, end_s = doctor.work_hours.split("-")
    local = now.astimezone(_zone(doctor.timezone, clinic_tz)).time()
    start = time.fromisoformat(start_s)
    end = time.max if end_s == "24:00" else time.fromisoformat(end_s)
    if start < end:
        return start <= local < end
    return local >= start or local < end  # overnight


def available(doctor: Doctor, now: datetime, clinic_tz: str) -> bool:
    """Gets new-case notifications: verified, on duty and within working hours."""
    return is_verified(doctor, now) and doctor.on_duty and within_hours(doctor, now, clinic_tz)


async def doctors_for(
    uow: UnitOfWork, department: str, now: datetime, clinic_tz: str
) -> list[Doctor]:
    """Doctors to tell about a new case of this department."""
    return [
        d
        for d in await uow.doctors.with_status("verified", role="doctor")
        if department in departments_of(d) and available(d, now, clinic_tz) and not d.unreachable
    ]


# -- use cases ---------------------------------------------------------------------------------


def snapshot(case: Consultation, jurisdiction: str) -> Snapshot:
    """The machine's view of a case."""
    return Snapshot(cn=jurisdiction == "cn", followup_visit=bool(case.followup_visit))


async def _move(
    uow: UnitOfWork,
    case: Consultation,
    trigger: str,
    actor: str,
    jurisdiction: str,
    now: datetime,
    **details: Any,
) -> State:
    was = State(case.state)
    new = next_state(was, trigger, snapshot(case, jurisdiction))
    case.state = new.value
    case.updated_at = now
    await uow.audit.record(
        actor,
        f"consultation.{trigger}",
        "consultation",
        case.id,
        {"from": was.value, "to": new.value, **details},
    )
    return new


async def _schedule_expiry(
    uow: UnitOfWork, case: Consultation, now: datetime, hours: float
) -> None:
    case.expires_at = now + timedelta(hours=hours)
    await uow.events.add(EXPIRE, case.id, case.patient_id, case.expires_at)


async def staffing(uow: UnitOfWork, now: datetime, clinic_tz: str) -> tuple[set[str], set[str]]:
    """(departments with a verified doctor, departments with one on duty and reachable now)."""
    staffed: set[str] = set()
    on_duty: set[str] = set()
    for d in await uow.doctors.with_status("verified", role="doctor"):
        if not is_verified(d, now):
            continue
        depts = departments_of(d)
        staffed.update(depts)
        if available(d, now, clinic_tz) and not d.unreachable:
            on_duty.update(depts)
    return staffed, on_duty


async def reachable(uow: UnitOfWork, now: datetime, clinic_tz: str, within: timedelta) -> set[str]:
    """Departments with a verified, reachable doctor on duty now or whose working hours start
    within ``within`` (a doctor who switched duty off does not count)."""
    out: set[str] = set()
    for d in await uow.doctors.with_status("verified", role="doctor"):
        if not is_verified(d, now) or d.unreachable or not d.on_duty:
            continue
        if within_hours(d, now, clinic_tz):
            out.update(departments_of(d))
            continue
        start = next_shift(d, now, clinic_tz)
        if start is not None and start - now <= within:
            out.update(departments_of(d))
    return out


def disposition_at(priority: int) -> str:
    """The triage disposition of a queue priority (its rank)."""
    return RANKS[priority] if 0 <= priority < len(RANKS) else "consultation"


def disposition_of(case: Consultation) -> str:
    """The case's triage disposition (from its queue priority)."""
    return disposition_at(case.priority)


async def _schedule_fallback(uow: UnitOfWork, case: Consultation, now: datetime) -> None:
    """The limit of the case's disposition starts in its department (none at the chain's end)."""
    await ops.case_queued(uow, case, now)  # the admins' breach alert and staffing check
    rules = routing.current()
    if rules.next_of(case.department) is None:
        return
    due = now + rules.limit(disposition_of(case))
    await uow.events.add(FALLBACK, case.id, case.patient_id, due)


async def _into_queue(uow: UnitOfWork, case: Consultation, now: datetime, hours: float) -> None:
    case.queued_at = now
    case.told_place = None
    case.told_at = None
    await _schedule_place(uow, case, now)
    await _schedule_expiry(uow, case, now, hours)
    await _schedule_fallback(uow, case, now)


async def fallback_due(
    uow: UnitOfWork, case_id: str, now: datetime, clinic_tz: str
) -> tuple[Consultation, str] | None:
    """The fallback event: a case still waiting in the department it entered a limit ago
    moves to the next staffed department of its chain; returns (case, department it left).
    None when it was accepted, moved or requeued meanwhile, or is at the chain's end."""
    case = await uow.consultations.get(case_id)
    if case is None or State(case.state) is not State.WAITING:
        return None
    rules = routing.current()
    entered = _aware(case.queued_at or case.updated_at)  # a message added meanwhile keeps it
    if entered + rules.limit(disposition_of(case)) > now + timedelta(seconds=1):
        return None  # it entered this department later: a later event covers it
    staffed, _ = await staffing(uow, now, clinic_tz)
    soon = await reachable(uow, now, clinic_tz, rules.limit(disposition_of(case)))
    new = rules.fall_back(case.department, staffed.__contains__, soon.__contains__)
    if new is None:
        return None
    left = case.department
    await _move(
        uow, case, "fall_back", "system", "generic", now, department_from=left, department_to=new
    )
    case.department = new
    case.queued_at = now
    await _schedule_fallback(uow, case, now)
    return case, left


async def _schedule_place(uow: UnitOfWork, case: Consultation, now: datetime) -> None:
    """Look at the waiting patient's place again in :data:`PLACE_EVERY`."""
    due = now + PLACE_EVERY
    key = f"{PLACE}:{case.id}:{int(due.timestamp())}"
    await uow.events.add(PLACE, case.id, case.patient_id, due, key=key)


def moved_meaningfully(told: int | None, place: int) -> bool:
    """A new place worth a message: one or more places forward near the front (5th or
    closer), at least a fifth of the queue further back."""
    if told is None or place >= told:
        return False
    return place <= 5 or (told - place) >= max(1, told // 5)


async def place_due(
    uow: UnitOfWork, case_id: str, now: datetime, clinic_tz: str
) -> tuple[Consultation, Wait] | None:
    """The place event: while the case waits, look again in 15 minutes; returns the case and
    its wait when the patient should hear of a new place (it moved forward meaningfully since
    they were last told, at least :data:`PLACE_EVERY` ago), else None."""
    case = await uow.consultations.get(case_id)
    if case is None or State(case.state) is not State.WAITING:
        return None
    await _schedule_place(uow, case, now)
    wait = await wait_of(uow, case, now, clinic_tz)
    told_at = _aware(case.told_at) if case.told_at is not None else None
    if told_at is not None and now - told_at < PLACE_EVERY - timedelta(seconds=1):
        return None
    if not moved_meaningfully(case.told_place, wait.place):
        return None
    told(case, wait.place, now)
    return case, wait


def told(case: Consultation, place: int, now: datetime) -> None:
    """Remember the place the patient was just told."""
    case.told_place = place
    case.told_at = now


async def waiting_notes(uow: UnitOfWork, case: Consultation) -> list[CaseMessage]:
    """What the patient added while the case waited this time (texts and files), in order."""
    since = _aware(case.requested_at)
    return [
        row
        for row in await uow.consultations.messages(case)
        if row.sender == "patient" and _aware(row.created_at) > since
    ]


async def add_while_waiting(
    uow: UnitOfWork,
    patient: Patient,
    case: Consultation,
    raw: str | None,
    *,
    now: datetime,
    kind: str = "text",
    file_name: str | None = None,
    file_id: str | None = None,
) -> int:
    """The patient adds a message or a file to their waiting case: kept encrypted and given
    to the doctor who accepts it. Returns how many they have added this time.
    ``NotAllowed``: not theirs, not waiting, empty or too long, or too many."""
    if case.patient_id != patient.id:
        raise NotAllowed("not_yours")
    if State(case.state) is not State.WAITING:
        raise NotAllowed("state")
    if kind == "text":
        text: str | None = parse_message(raw or "")
    else:
        text = clean_text(raw or "")[:TEXT_MAX] or None
    added = await waiting_notes(uow, case)
    if len(added) >= WAITING_NOTES_MAX:
        raise NotAllowed("too_many")
    entered = case.queued_at or case.updated_at  # adding words does not restart the limit
    row = await uow.consultations.add_message(
        case, "patient", kind, text, file_name=file_name, at=now
    )
    case.queued_at = entered
    row.created_at = now
    if file_id:
        await uow.consultations.set_source_file(case, row, file_id)
    await uow.audit.record(
        Actor(patient.id).ref, "consultation.added", "consultation", case.id, {"kind": kind}
    )
    return len(added) + 1


RECENT_WAITS = timedelta(days=7)  # acceptance times older than this say nothing of today
MIN_SAMPLES = 3  # fewer recent acceptances than this: no estimate
WITHIN = 0.5  # an estimate is right when it is within ±50% of the actual wait


def best_estimate(seconds: Sequence[float]) -> float:
    """The wait that, told to each recent patient of the queue, would have been right (within
    ±``WITHIN`` of their actual wait) for the most of them; among equals the shortest group,
    and in the middle of what would have been right for all of its waits. ``seconds`` sorted,
    not empty. For waits spread evenly over 1-8 minutes this is about 4 minutes (right for
    three in four) where the median, 4.5, is right for two in three."""
    best, right = (0, len(seconds)), -1
    for lo, shortest in enumerate(seconds):
        # |told - wait| <= WITHIN * wait  <=>  told / (1 + WITHIN) <= wait <= told / (1 - WITHIN);
        # the best group starts at one of the waits, so try each as the shortest it covers.
        hi = bisect.bisect_right(seconds, shortest * (1 + WITHIN) / (1 - WITHIN))
        if hi - lo > right:
            best, right = (lo, hi), hi - lo
    lo, hi = best
    # Right for every wait of the group: from (1 - WITHIN) x its longest to (1 + WITHIN) x its
    # shortest.
    return ((1 - WITHIN) * seconds[hi - 1] + (1 + WITHIN) * seconds[lo]) / 2


@dataclass(frozen=True)
class Wait:
    """What a waiting patient is told: their place and an honest estimate."""

    place: int  # 1: the next case a doctor of the department takes
    estimate: timedelta | None  # the median recent wait of this queue (else the clinic's)
    on_duty: bool  # a doctor of the department is on duty and within hours now
    next_start: datetime | None  # off duty: when the next doctor's hours start (UTC)


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def next_shift(doctor: Doctor, now: datetime, clinic_tz: str) -> datetime | None:
    """When the doctor's working hours next start (UTC); None without set hours."""
    if not doctor.work_hours:
        return None
    hour, minute = (int(x) for x in doctor.work_hours.split("-")[0].split(":"))
    local = now.astimezone(_zone(doctor.timezone, clinic_tz))
    start = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if start <= local:
        start += timedelta(days=1)
    return start.astimezone(UTC)


async def wait_of(uow: UnitOfWork, case: Consultation, now: datetime, clinic_tz: str) -> Wait:
    """The patient's place in their queue, the typical wait there, and whether anyone of the
    department is on duty (if not, when the next one starts)."""
    ahead = await uow.consultations.ahead_of(case)
    waits = await uow.consultations.recent_waits(now - RECENT_WAITS, case.department)
    if len(waits) < MIN_SAMPLES:
        waits = await uow.consultations.recent_waits(now - RECENT_WAITS)
    estimate = None
    if len(waits) >= MIN_SAMPLES:
        seconds = sorted((_aware(a) - _aware(r)).total_seconds() for r, a in waits)
        estimate = timedelta(seconds=max(60.0, best_estimate(seconds)))
    team = [
        d
        for d in await uow.doctors.with_status("verified", role="doctor")
        if case.department in departments_of(d) and is_verified(d, now) and not d.unreachable
    ]
    on_duty = any(available(d, now, clinic_tz) for d in team)
    starts = [t for d in team if d.on_duty and (t := next_shift(d, now, clinic_tz)) is not None]
    return Wait(ahead + 1, estimate, on_duty, min(starts) if starts else None)


def priority_of(disposition: str | None) -> int:
    """The queue priority: the disposition's rank, 0 most urgent."""
    return RANKS.index(disposition) if disposition in RANKS else RANKS.index("consultation")


async def request_for_intake(
    uow: UnitOfWork,
    patient: Patient,
    intake: Intake,
    answers: dict[str, Any],
    *,
    now: datetime,
    expiry_hours: float = 24,
    clinic_tz: str = "UTC",
) -> Consultation | None:
    """A triaged intake that needs a doctor becomes a case (None when it does not: other
    dispositions, or a cn first visit sent to an in-person visit). It waits in the first
    department of the triage's chain that someone can see it in (``flows.routing``). The
    patient is told and the department notified by the ``consult.opened`` event."""
    if intake.disposition not in ("consultation", "consultation_24"):
        return None
    if patient.blocked_at is not None:  # blocked after an upheld abuse report
        return None
    offline = answers.get("offline_diagnosis")
    if offline is False:
        return None
    jurisdiction = "cn" if offline is True else "generic"
    case = Consultation(
        patient_id=patient.id,
        intake_id=intake.id,
        department=intake.department or "general",
        priority=priority_of(intake.disposition),
        state=State.REQUESTED.value,
        requested_at=now,
    )
    preferred = case.department
    rules = routing.current()
    staffed, _ = await staffing(uow, now, clinic_tz)
    soon = await reachable(uow, now, clinic_tz, rules.limit(intake.disposition))
    case.department = rules.place(
        preferred, intake.disposition, staffed.__contains__, soon.__contains__
    )
    case.preferred_department = preferred
    await uow.consultations.add(case)
    await uow.audit.record(
        Actor(patient.id).ref, "consultation.request", "consultation", case.id, {}
    )
    if case.department != preferred:
        await uow.audit.record(
            "system", "consultation.routed", "consultation", case.id,
            {"preferred": preferred, "department": case.department},
        )  # fmt: skip
    if await _move(uow, case, "submit", "system", jurisdiction, now) is State.WAITING:
        await _into_queue(uow, case, now, expiry_hours)
    await uow.events.add(OPENED, case.id, patient.id, now)
    return case


async def patient_cases(
    uow: UnitOfWork, patient: Patient, states: tuple[State, ...] = OPEN
) -> list[Consultation]:
    """The patient's cases in these states, newest first."""
    return await uow.consultations.for_patient(patient.id, [s.value for s in states])


async def live_case(uow: UnitOfWork, patient: Patient) -> Consultation | None:
    """The patient's case that messages go to (active first, then the newest open one)."""
    return live_of(await patient_cases(uow, patient))


def live_of(cases: list[Consultation]) -> Consultation | None:
    """:func:`live_case` among cases already loaded (any states, newest first)."""
    open_cases = [c for c in cases if State(c.state) in OPEN]
    active = [c for c in open_cases if c.state == State.ACTIVE]
    return active[0] if active else (open_cases[0] if open_cases else None)


async def attach_record(
    uow: UnitOfWork,
    patient: Patient,
    case: Consultation,
    kind: str,
    caption: str | None,
    file_name: str | None,
    *,
    now: datetime,
    expiry_hours: float,
    file_id: str | None = None,
) -> None:
    """cn: the offline record (a photo or document) arrives; the case enters the queue."""
    if case.patient_id != patient.id:
        raise NotAllowed("not_yours")
    await _move(uow, case, "attach_record", Actor(patient.id).ref, "cn", now)
    row = await uow.consultations.add_message(case, "patient", kind, caption, file_name=file_name)
    row.created_at = now  # part of the request: what is added later is a waiting note
    if file_id:
        await uow.consultations.set_source_file(case, row, file_id)
    case.requested_at = now
    await _into_queue(uow, case, now, expiry_hours)


async def accept(
    uow: UnitOfWork, doctor: Doctor, case_id: str, *, now: datetime, jurisdiction: str
) -> Consultation:
    """A verified doctor takes a waiting case of their department: atomically, so of two
    doctors racing one wins and the other gets ``NotAllowed("taken")``."""
    if not is_verified(doctor, now):
        raise NotAllowed("unverified")
    case = await uow.consultations.get(case_id)
    if case is None or case.department not in departments_of(doctor):
        await uow.audit.record(
            doctor_ref(doctor), "consultation.accept_refused", "consultation", case_id, {}
        )
        raise NotAllowed("not_yours")
    next_state(State.WAITING, "accept", snapshot(case, jurisdiction))  # the machine agrees
    if not await uow.consultations.claim(case, doctor.id, now):
        raise NotAllowed("taken")
    await uow.audit.record(
        doctor_ref(doctor),
        "consultation.accept",
        "consultation",
        case.id,
        {"from": State.WAITING.value, "to": State.ACTIVE.value},
    )
    return case


async def doctor_case(
    uow: UnitOfWork, doctor: Doctor, case_id: str | None, now: datetime
) -> Consultation:
    """One of this doctor's own cases (any state), or ``NotAllowed``."""
    if not is_verified(doctor, now):
        raise NotAllowed("unverified")
    case = await uow.consultations.get(case_id) if case_id else None
    if case is None or case.doctor_id != doctor.id:
        await uow.audit.record(
            doctor_ref(doctor), "consultation.refused", "consultation", (case_id or "-")[:32], {}
        )
        raise NotAllowed("not_yours")
    return case


async def confirm_followup(
    uow: UnitOfWork, doctor: Doctor, case: Consultation, *, now: datetime, jurisdiction: str
) -> None:
    """cn: the doctor accepts the case as a follow-up visit; advice may now reach the
    patient."""
    await _move(uow, case, "confirm_followup", doctor_ref(doctor), jurisdiction, now)
    case.followup_visit = True


def parse_message(raw: str) -> str:
    """A relayed text: cleaned, non-empty, not too long."""
    text = clean_text(raw)
    if not text:
        raise NotAllowed("empty")
    if len(text) > TEXT_MAX:
        raise NotAllowed("too_long")
    return text


async def patient_says(
    uow: UnitOfWork, patient: Patient, case: Consultation, raw: str, *, now: datetime
) -> str:
    """The patient writes in their active case: stored encrypted; returns the text to relay."""
    if case.patient_id != patient.id:
        raise NotAllowed("not_yours")
    text = parse_message(raw)
    await _move(uow, case, "patient_message", Actor(patient.id).ref, "generic", now)
    await uow.consultations.add_message(case, "patient", "text", text, at=now)
    return text


async def patient_file(
    uow: UnitOfWork,
    patient: Patient,
    case: Consultation,
    kind: str,
    caption: str | None,
    file_name: str | None,
    *,
    now: datetime,
) -> CaseMessage:
    """The patient sends a file in their active case: recorded (the sender keeps an
    encrypted copy once it is relayed); returns the case message."""
    if case.patient_id != patient.id:
        raise NotAllowed("not_yours")
    await _move(uow, case, "patient_message", Actor(patient.id).ref, "generic", now, kind=kind)
    text = clean_text(caption or "")[:TEXT_MAX] or None
    return await uow.consultations.add_message(
        case, "patient", kind, text, file_name=file_name, at=now
    )


async def doctor_file(
    uow: UnitOfWork,
    doctor: Doctor,
    case: Consultation,
    kind: str,
    caption: str | None,
    file_name: str | None,
    *,
    now: datetime,
    jurisdiction: str,
) -> CaseMessage:
    """The doctor sends a file in their active case (in cn only after the follow-up
    confirmation); returns the case message."""
    if case.doctor_id != doctor.id:
        raise NotAllowed("not_yours")
    if State(case.state) is not State.ACTIVE:
        raise NotAllowed("closed")
    try:
        await _move(uow, case, "doctor_message", doctor_ref(doctor), jurisdiction, now, kind=kind)
    except NotAllowed:
        raise NotAllowed("followup_first") from None
    text = clean_text(caption or "")[:TEXT_MAX] or None
    return await uow.consultations.add_message(
        case, "doctor", kind, text, file_name=file_name, at=now
    )


async def doctor_says(
    uow: UnitOfWork,
    doctor: Doctor,
    case: Consultation,
    raw: str,
    *,
    now: datetime,
    jurisdiction: str,
) -> str:
    """The doctor writes in their active case; in cn only after the follow-up confirmation."""
    if case.doctor_id != doctor.id:
        raise NotAllowed("not_yours")
    if State(case.state) is not State.ACTIVE:
        raise NotAllowed("closed")
    text = parse_message(raw)
    try:
        await _move(uow, case, "doctor_message", doctor_ref(doctor), jurisdiction, now)
    except NotAllowed:
        raise NotAllowed("followup_first") from None
    await uow.consultations.add_message(case, "doctor", "text", text, at=now)
    return text


async def close(
    uow: UnitOfWork,
    doctor: Doctor,
    case: Consultation,
    raw: str,
    *,
    now: datetime,
    jurisdiction: str,
) -> str:
    """The doctor closes the case with an advice summary (kept encrypted); returns it."""
    if case.doctor_id != doctor.id:
        raise NotAllowed("not_yours")
    text = parse_message(raw)
    try:
        await _move(uow, case, "close", doctor_ref(doctor), jurisdiction, now)
    except NotAllowed:
        raise NotAllowed(
            "followup_first" if State(case.state) is State.ACTIVE else "closed"
        ) from None
    case.summary_enc = await uow.consultations.seal_text(case, "summary_enc", text)
    case.closed_at = now
    await uow.consultations.add_message(case, "doctor", "summary", text)
    return text


async def terminate(uow: UnitOfWork, doctor: Doctor, case: Consultation, *, now: datetime) -> None:
    """Not suitable online: the patient is told to see a doctor in person."""
    if case.doctor_id != doctor.id:
        raise NotAllowed("not_yours")
    await _move(uow, case, "terminate", doctor_ref(doctor), "generic", now)
    case.closed_at = now


async def transfer(
    uow: UnitOfWork,
    doctor: Doctor,
    case: Consultation,
    department: str,
    known_departments: tuple[str, ...],
    *,
    now: datetime,
    expiry_hours: float,
) -> None:
    """The doctor sends the case to another department's queue."""
    if case.doctor_id != doctor.id:
        raise NotAllowed("not_yours")
    if department not in known_departments or department == case.department:
        raise NotAllowed("department")
    await _move(
        uow, case, "transfer", doctor_ref(doctor), "generic", now,
        department_from=case.department, department_to=department,
    )  # fmt: skip
    _back_to_queue(case, now)
    case.department = department
    await _into_queue(uow, case, now, expiry_hours)


def _back_to_queue(case: Consultation, now: datetime) -> None:
    case.doctor_id = None
    case.accepted_at = None
    case.followup_visit = False
    case.requested_at = now


async def cancel(
    uow: UnitOfWork, patient: Patient, case: Consultation, *, now: datetime
) -> Doctor | None:
    """The patient cancels; returns the doctor to tell, if one had accepted."""
    if case.patient_id != patient.id:
        raise NotAllowed("not_yours")
    await _move(uow, case, "cancel", Actor(patient.id).ref, "generic", now)
    case.closed_at = now
    return await uow.doctors.get(case.doctor_id) if case.doctor_id else None


async def expire_due(uow: UnitOfWork, case_id: str, now: datetime) -> Consultation | None:
    """The expiry event: the case expires if it is still waiting for this period."""
    case = await uow.consultations.get(case_id)
    if case is None or State(case.state) is not State.WAITING:
        return None
    expires = case.expires_at
    if expires is not None and (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) > now:
        return None  # requeued or transferred meanwhile: a later event covers it
    await _move(uow, case, "expire", "system", "generic", now)
    return case


async def cancel_by_admin(
    uow: UnitOfWork, case: Consultation, admin: str, *, now: datetime
) -> None:
    """An admin blocked the patient: their open case is cancelled."""
    await _move(uow, case, "cancel", admin, "generic", now, reason="patient_blocked")
    case.closed_at = now


async def pending_record_files(
    uow: UnitOfWork, case: Consultation
) -> list[tuple[CaseMessage, str]]:
    """cn: the offline record's files (message, the patient bot's file id), passed to each
    doctor who accepts the case."""
    out = []
    since = _aware(case.requested_at)
    for row in await uow.consultations.messages(case):
        if _aware(row.created_at) > since:
            continue  # added while waiting: see waiting_notes
        if row.sender == "patient" and row.source_file_enc is not None:
            file_id = await uow.consultations.source_file(case, row)
            if file_id:
                out.append((row, file_id))
    return out


async def keep_waiting(
    uow: UnitOfWork, patient: Patient, case: Consultation, *, now: datetime, expiry_hours: float
) -> None:
    """After an expiry the patient chooses to wait another period."""
    if case.patient_id != patient.id:
        raise NotAllowed("not_yours")
    await _move(uow, case, "keep_waiting", Actor(patient.id).ref, "generic", now)
    await _into_queue(uow, case, now, expiry_hours)


async def requeue_for_doctor(
    uow: UnitOfWork, doctor: Doctor, now: datetime, *, expiry_hours: float = 24
) -> list[Consultation]:
    """A doctor became unavailable (suspended): their active cases go back to their
    department's queue; the patients are told (``consult.requeued`` events)."""
    moved = []
    for case in await uow.consultations.active_for_doctor(doctor.id):
        await _move(uow, case, "requeue", "system", "generic", now, doctor=doctor.id)
        _back_to_queue(case, now)
        await _into_queue(uow, case, now, expiry_hours)
        await uow.events.add(REQUEUED, case.id, case.patient_id, now)
        moved.append(case)
    return moved


async def set_duty(uow: UnitOfWork, doctor: Doctor, on: bool) -> None:
    """On or off duty (off: no new-case notifications)."""
    doctor.on_duty = on
    await uow.audit.record(doctor_ref(doctor), "doctor.duty", "doctor", doctor.id, {"on": on})


async def set_hours(uow: UnitOfWork, doctor: Doctor, raw: str, clinic_tz: str) -> str:
    """Working hours in the doctor's time zone (the clinic's unless they have one)."""
    hours = parse_hours(raw)
    doctor.work_hours = hours
    doctor.timezone = doctor.timezone or clinic_tz
    await uow.audit.record(doctor_ref(doctor), "doctor.hours", "doctor", doctor.id, {})
    return hours


async def queue_for(uow: UnitOfWork, doctor: Doctor, now: datetime) -> list[Consultation]:
    """Waiting cases of the doctor's departments: triage level first, then waiting time."""
    if not is_verified(doctor, now):
        raise NotAllowed("unverified")
    return await uow.consultations.waiting(departments_of(doctor))


async def view_intake(
    uow: UnitOfWork, doctor: Doctor, case: Consultation
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """What the doctor may see of the patient: the intake's answers and first name, age
    year and sex (never their Telegram account or phone). The access is audited."""
    intake = await uow.intakes.get(case.intake_id) if case.intake_id else None
    answers = await uow.intakes.answers(intake) if intake is not None else {}
    patient = await uow.patients.get(case.patient_id)
    who: dict[str, str | None] = {"name": None, "birth_year": None, "sex": None}
    if patient is not None:
        for field in who:
            who[field] = await uow.patients.get_field(patient, field)
        name = who["name"] or ""
        who["name"] = name.split()[0] if name.split() else None
    await uow.audit.record(doctor_ref(doctor), "consultation.view", "consultation", case.id, {})
    return answers, who


async def patient_first_name(uow: UnitOfWork, case: Consultation) -> str:
    """The first word of the patient's name (the header of messages to the doctor)."""
    patient = await uow.patients.get(case.patient_id)
    name = (await uow.patients.get_field(patient, "name") or "") if patient else ""
    return name.split()[0] if name.split() else "—"


async def doctor_card(uow: UnitOfWork, doctor: Doctor) -> dict[str, str]:
    """What a patient sees of their doctor: name, title, hospital (never account or phone)."""
    out = {}
    for field in ("name", "title", "hospital"):
        out[field] = await uow.doctors.get_field(doctor, field) or ""
    return out
