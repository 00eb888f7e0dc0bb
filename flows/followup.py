"""Follow-up plans and their check-ins (issue 5 point 4).

A doctor enrols a patient (``/followup`` in a case): a ``followup_plans`` row is created as a
``draft`` and filled in step by step (template, frequency, time of day, review date: at most
90 days, "at least quarterly review"), then ``active``. Its timing is a
:class:`flows.timing.Schedule` (``followup_plans.schedule``), ending on the review date.

Scheduling: an active plan has exactly one future ``checkin`` event (subject the plan id, key
``checkin:{plan}:{local}``). Its handler creates the ``checkins`` row, asks the first question
and schedules the next occurrence in the same transaction. Quiet hours move a prompt to their
end; after downtime :func:`flows.timing.catch_up` decides (late wording, or recorded as missed
and the patient told once — never a burst).

Missed check-ins, on every schedule (daily, twice a week, weekly): a check-in left unanswered
is ``missed`` when the next one is asked (a weekly one also when the doctor is alerted). The
first unanswered check-in after the last answered one is the *anchor* of a run of missed
check-ins. When the run starts, two keyed ``checkin.recall`` events are scheduled
(``recall:{anchor}:1`` at the anchor's time + 3 days, ``recall:{anchor}:2`` at + 6 days):
the first sends ONE recall (the open check-in's question again, with recall wording; when a
check-in prompt goes out within an hour of it, that prompt carries the recall wording
instead, so the patient never gets the question twice), the second alerts the plan's doctor
once. Both do nothing once any check-in of the run has been answered (a later missed run has
its own anchor and keys) or the plan has ended. Check-ins closed without being asked (after a
downtime) start no run.

A check-in is a short questionnaire run by one module-level ``transitions`` machine over a
question list (states Q1..Q8, done, red_flag, missed). Answers are one sealed JSON document
(``checkins.answers_enc``); each measured value is a ``readings`` row with a sealed value and
a readable flag. Out-of-threshold answers alert the plan's doctor (and caregivers whose scope
is ``checkins``); dangerous ones stop the questions and run the red-flag path.

Templates are data: ``flows/questionnaires/followups.toml``, checked by :func:`load`.
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from transitions import Machine

from flows import alerts, caregivers, timing
from flows.errors import UserError
from flows.machines import fire
from flows.outbox import PRIORITY_REPLY, PRIORITY_ROUTINE, PRIORITY_URGENT, Replier
from flows.questionnaire import DataFileError
from locales import LOCALES, Html, Translator, catalog
from storage.models import (
    CareAlert,
    CheckIn,
    Consultation,
    Doctor,
    FollowUpPlan,
    Patient,
)
from storage.models import ScheduledEvent as Event
from storage.uow import UnitOfWork

FILE = Path(__file__).parent / "questionnaires" / "followups.toml"

# Event kinds (<= 32 chars).
KIND = "checkin"
RECALL = "checkin.recall"
RECALL_AFTER = timedelta(days=3)  # a run of missed check-ins this old: one recall
ALERT_AFTER = timedelta(days=6)  # still nothing 3 days after the recall: the doctor, once
FOLD = timedelta(hours=1)  # a check-in prompt this close to the recall carries its wording
ALERT_MISSED = "checkin_missed"  # care alert kind of a run of missed check-ins

MAX_QUESTIONS = 8
TYPES = ("bp", "number", "choice", "checklist", "text")
FREQUENCIES: dict[str, tuple[int, ...] | None] = {
    "daily": (1, 2, 3, 4, 5, 6, 7),
    "twice_weekly": (1, 4),
    "weekly": None,  # the weekday of the day the plan starts
}
TIMES = ("08:00", "20:00")
REVIEW_DAYS = (30, 60, 90)
REVIEW_MAX_DAYS = 90
NOTE_MAX = 500
OPEN_FOR = timedelta(days=7)  # a pending check-in still takes answers this long

# Plan statuses.
DRAFT, ACTIVE, REVIEW, ENDED = "draft", "active", "review", "ended"


# --- templates as data --------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """One check-in question (``followup.q.<id>``)."""

    id: str
    type: str
    reading: str | None = None
    unit: str = ""
    decimals: int = 0
    low: tuple[float, ...] = ()  # plausible minimum(s)
    high: tuple[float, ...] = ()  # plausible maximum(s)
    alert_high: tuple[float, ...] = ()
    alert_low: float | None = None
    danger_high: float | None = None
    danger_low: float | None = None
    options: tuple[str, ...] = ()
    alert_options: tuple[str, ...] = ()
    danger_options: tuple[str, ...] = ()
    danger_with: tuple[str, ...] = ()
    optional: bool = False

    @property
    def typed(self) -> bool:
        """Answered by typing (not with buttons)."""
        return self.type in ("bp", "number", "text")


@dataclass(frozen=True)
class Template:
    """A follow-up template (``followup.template.<id>``): its questions in order."""

    id: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Templates:
    """Everything in the data file."""

    version: str
    templates: dict[str, Template] = field(default_factory=dict)

    def get(self, template_id: str) -> Template:
        """A template by id (KeyError when unknown)."""
        return self.templates[template_id]

    def message_ids(self) -> list[str]:
        """Every catalog id the data needs."""
        ids: list[str] = []
        for t in self.templates.values():
            ids.append(f"followup.template.{t.id}")
            for q in t.questions:
                ids.append(f"followup.q.{q.id}")
                ids += [f"followup.q.{q.id}.{o}" for o in q.options]
                if q.reading:
                    ids.append(f"followup.reading.{q.reading}")
        return list(dict.fromkeys(ids))


_ID = re.compile(r"^[a-z][a-z0-9_]{0,23}$")
_QUESTION_KEYS = {
    "bp": {"type", "reading", "unit", "min", "max", "alert_high"},
    "number": {
        "type",
        "reading",
        "unit",
        "decimals",
        "min",
        "max",
        "alert_high",
        "alert_low",
        "danger_high",
        "danger_low",
    },
    "choice": {"type", "options", "alert_options"},
    "checklist": {"type", "options", "alert_options", "danger_options", "danger_with"},
    "text": {"type", "optional"},
}


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _ids(
    file: str, where: str, value: Any, allowed: tuple[str, ...] | None = None
) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and _ID.match(v) for v in value):
        raise DataFileError(f"{file}: {where} must be a list of ids (a-z, 0-9, _)")
    if len(set(value)) != len(value):
        raise DataFileError(f"{file}: {where} lists an id twice")
    if allowed is not None:
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise DataFileError(f"{file}: {where} names unknown option(s) {unknown}")
    return tuple(value)


def _question(file: str, qid: str, raw: Any) -> Question:
    where = f"questions.{qid}"
    if not _ID.match(qid):
        raise DataFileError(f"{file}: {where}: bad question id")
    if not isinstance(raw, dict):
        raise DataFileError(f"{file}: {where} must be a table")
    kind = raw.get("type")
    if kind not in TYPES:
        raise DataFileError(f"{file}: {where}.type must be one of {', '.join(TYPES)}")
    unknown = sorted(set(raw) - _QUESTION_KEYS[kind])
    if unknown:
        raise DataFileError(f"{file}: {where}: unknown key(s) {unknown}")
    if kind in ("choice", "checklist"):
        options = _ids(file, f"{where}.options", raw.get("options"))
        if not 2 <= len(options) <= 8:
            raise DataFileError(f"{file}: {where}.options must have 2 to 8 options")
        picked = {
            key: _ids(file, f"{where}.{key}", raw[key], options) if key in raw else ()
            for key in ("alert_options", "danger_options")
        }
        with_ = (
            _ids(file, f"{where}.danger_with", raw["danger_with"]) if "danger_with" in raw else ()
        )
        return Question(
            id=qid, type=kind, options=options, alert_options=picked["alert_options"],
            danger_options=picked["danger_options"], danger_with=with_,
        )  # fmt: skip
    if kind == "text":
        optional = raw.get("optional", False)
        if not isinstance(optional, bool):
            raise DataFileError(f"{file}: {where}.optional must be true or false")
        return Question(id=qid, type=kind, optional=optional)
    reading = raw.get("reading")
    if not isinstance(reading, str) or not _ID.match(reading):
        raise DataFileError(f"{file}: {where}.reading must be an id")
    unit = raw.get("unit", "")
    if not isinstance(unit, str):
        raise DataFileError(f"{file}: {where}.unit must be a string")
    width = 2 if kind == "bp" else 1

    def bounds(key: str, required: bool) -> tuple[float, ...]:
        value = raw.get(key)
        if value is None:
            if required:
                raise DataFileError(f"{file}: {where}: missing '{key}'")
            return ()
        values = value if isinstance(value, list) else [value]
        if len(values) != width or not all(_num(v) for v in values):
            shape = "[systolic, diastolic]" if width == 2 else "a number"
            raise DataFileError(f"{file}: {where}.{key} must be {shape}")
        return tuple(float(v) for v in values)

    low, high = bounds("min", True), bounds("max", True)
    if any(lo >= hi for lo, hi in zip(low, high, strict=True)):
        raise DataFileError(f"{file}: {where}: min must be below max")
    alert_high = bounds("alert_high", False)
    singles: dict[str, float | None] = {}
    for key in ("alert_low", "danger_high", "danger_low"):
        got = bounds(key, False) if kind == "number" else ()
        singles[key] = got[0] if got else None
    for key, values in (
        ("alert_high", alert_high),
        *((k, (v,)) for k, v in singles.items() if v is not None),
    ):
        if values and not all(lo <= v <= hi for v, lo, hi in zip(values, low, high, strict=True)):
            raise DataFileError(f"{file}: {where}.{key} lies outside min..max")
    decimals = raw.get("decimals", 0)
    if decimals not in (0, 1, 2):
        raise DataFileError(f"{file}: {where}.decimals must be 0, 1 or 2")
    if kind == "bp" and decimals:
        raise DataFileError(f"{file}: {where}.decimals is for numbers only")
    return Question(
        id=qid, type=kind, reading=reading, unit=unit, decimals=decimals, low=low, high=high,
        alert_high=alert_high, alert_low=singles["alert_low"],
        danger_high=singles["danger_high"], danger_low=singles["danger_low"],
    )  # fmt: skip


def parse(text: str, file: str = FILE.name, *, check_catalogs: bool = True) -> Templates:
    """Read and check a templates file; :class:`DataFileError` names the problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"{file}: not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - {"version", "templates", "questions"})
    if unknown:
        raise DataFileError(f"{file}: unknown key(s) {unknown}")
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise DataFileError(f"{file}: missing 'version'")
    raw_q, raw_t = data.get("questions"), data.get("templates")
    if not isinstance(raw_q, dict) or not isinstance(raw_t, dict) or not raw_t:
        raise DataFileError(f"{file}: needs [templates.*] and [questions.*] tables")
    questions = {qid: _question(file, qid, raw) for qid, raw in raw_q.items()}
    templates: dict[str, Template] = {}
    used: set[str] = set()
    for tid, raw in raw_t.items():
        where = f"templates.{tid}"
        if not _ID.match(tid) or not isinstance(raw, dict):
            raise DataFileError(f"{file}: {where} must be a table with an id name")
        if set(raw) != {"questions"}:
            raise DataFileError(f"{file}: {where} must have exactly 'questions'")
        ids = _ids(file, f"{where}.questions", raw["questions"], tuple(questions))
        if not 1 <= len(ids) <= MAX_QUESTIONS:
            raise DataFileError(f"{file}: {where} must have 1 to {MAX_QUESTIONS} questions")
        for i, qid in enumerate(ids):
            for other in questions[qid].danger_with:
                if other not in ids[:i]:
                    raise DataFileError(
                        f"{file}: {where}: {qid}.danger_with names '{other}', "
                        "which is not asked before it"
                    )
        used.update(ids)
        templates[tid] = Template(id=tid, questions=tuple(questions[q] for q in ids))
    unused = sorted(set(questions) - used)
    if unused:
        raise DataFileError(f"{file}: question(s) no template asks: {unused}")
    out = Templates(version=version, templates=templates)
    if check_catalogs:
        for loc in LOCALES:
            missing = [i for i in out.message_ids() if i not in catalog(loc)]
            if missing:
                raise DataFileError(f"{file}: ids missing from the {loc} catalog: {missing}")
    return out


@cache
def load() -> Templates:
    """The templates (read once)."""
    try:
        text = FILE.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{FILE.name}: cannot read it ({type(exc).__name__})") from None
    return parse(text, FILE.name)


def validate() -> None:
    """Start-up check (``Careline.build``, next to the intake questionnaire's): a broken data
    file stops the bot with one line naming the file and the problem
    (:class:`DataFileError`, printed by ``bot.cli``)."""
    load.cache_clear()
    load()


# --- answers ------------------------------------------------------------------------------------


class BadAnswer(UserError):
    """An answer that does not fit the question (``msgid`` with ``params``); the question
    stays."""


class Stale(Exception):
    """A button of a check-in or question that is no longer open (``reason``: ``ended``
    when its plan was ended by the doctor)."""

    def __init__(self, reason: str = "closed") -> None:
        super().__init__(reason)
        self.reason = reason


_UNITS = re.compile(
    r"(mmhg|mm\s*hg|мм\s*рт\.?\s*ст\.?|毫米汞柱|mmol/?l|ммоль/?л|毫摩尔(/升)?|bpm|уд/?мин|"
    r"次/分|°\s*c|℃|градус\w*|度|c)\s*$",
    re.IGNORECASE,
)
_BP = re.compile(r"^(\d{1,3})\s*(?:/|\\|-|:|over|на|比|\s)\s*(\d{1,3})$", re.IGNORECASE)
_NUMBER = re.compile(r"^(-?\d{1,4})(?:[.,](\d{1,3}))?$")


def _clean(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw or "").strip().lower()
    text = text.replace("，", ",").replace("。", ".")
    return _UNITS.sub("", text).strip()


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def parse_bp(q: Question, raw: str) -> tuple[int, int]:
    """Systolic/diastolic from "150/95" (also "150 / 95", "150 over 95", units allowed);
    implausible pairs are refused."""
    m = _BP.match(_clean(raw))
    if m is None:
        raise BadAnswer("followup.bad.bp_format")
    sys_, dia = int(m.group(1)), int(m.group(2))
    (smin, dmin), (smax, dmax) = q.low, q.high
    if not (smin <= sys_ <= smax and dmin <= dia <= dmax) or dia >= sys_:
        raise BadAnswer(
            "followup.bad.bp_range",
            value=f"{sys_}/{dia}",
            smin=int(smin), smax=int(smax), dmin=int(dmin), dmax=int(dmax),
        )  # fmt: skip
    return sys_, dia


def parse_number(q: Question, raw: str) -> float:
    """One number ("7,8" and "7.8" alike when decimals are allowed), within the plausible
    range."""
    text = _clean(raw)
    m = _NUMBER.match(text)
    if m is None or (m.group(2) and not q.decimals):
        msgid = "followup.bad.whole" if not q.decimals else "followup.bad.number"
        raise BadAnswer(msgid, unit=q.unit)
    value = float(f"{m.group(1)}.{m.group(2) or 0}")
    lo, hi = q.low[0], q.high[0]
    if not lo <= value <= hi:
        raise BadAnswer(
            "followup.bad.range",
            value=_fmt(value, q.decimals) if m.group(2) else m.group(1),
            min=_fmt(lo, q.decimals),
            max=_fmt(hi, q.decimals),
            unit=q.unit,
        )
    return round(value, q.decimals)


def flag_of(q: Question, value: Any) -> str:
    """none | high | low | danger for a reading's value."""
    if q.type == "bp":
        sys_, dia = value
        if q.alert_high and (sys_ >= q.alert_high[0] or dia >= q.alert_high[1]):
            return "high"
        return "none"
    v = float(value)
    if (q.danger_low is not None and v <= q.danger_low) or (
        q.danger_high is not None and v >= q.danger_high
    ):
        return "danger"
    if q.alert_high and v >= q.alert_high[0]:
        return "high"
    if q.alert_low is not None and v <= q.alert_low:
        return "low"
    return "none"


def value_text(q: Question, value: Any) -> str:
    """How a reading's value is shown and stored ("185/115", "7.8")."""
    if q.type == "bp":
        return f"{value[0]}/{value[1]}"
    return _fmt(float(value), q.decimals)


# --- the check-in machine -----------------------------------------------------------------------


class State(StrEnum):
    """Where a check-in is: at question 1..8, or finished."""

    Q1 = "q1"
    Q2 = "q2"
    Q3 = "q3"
    Q4 = "q4"
    Q5 = "q5"
    Q6 = "q6"
    Q7 = "q7"
    Q8 = "q8"
    DONE = "done"
    RED_FLAG = "red_flag"
    MISSED = "missed"  # asked, never answered
    CLOSED = "closed"  # never asked (not sent in time after a downtime, or its plan ended)


QUESTION_STATES = tuple(State(f"q{i}") for i in range(1, MAX_QUESTIONS + 1))
FINAL = (State.DONE, State.RED_FLAG, State.MISSED, State.CLOSED)


class _Model:
    def __init__(self, more: bool) -> None:
        self.more = more
        self.state: str = ""

    def has_more(self) -> bool:
        return self.more


TRANSITIONS: list[dict[str, Any]] = [
    *(
        {"trigger": "answer", "source": QUESTION_STATES[i], "dest": QUESTION_STATES[i + 1],
         "conditions": "has_more"}
        for i in range(MAX_QUESTIONS - 1)
    ),
    {"trigger": "answer", "source": list(QUESTION_STATES), "dest": State.DONE,
     "unless": "has_more"},
    {"trigger": "red_flag", "source": list(QUESTION_STATES), "dest": State.RED_FLAG},
    {"trigger": "miss", "source": list(QUESTION_STATES), "dest": State.MISSED},
    {"trigger": "close", "source": list(QUESTION_STATES), "dest": State.CLOSED},
]  # fmt: skip
TRIGGERS = ("answer", "red_flag", "miss", "close")

_MACHINE = Machine(
    model=None,
    states=State,
    transitions=TRANSITIONS,
    initial=State.Q1,
    auto_transitions=False,
    send_event=False,
)


def next_state(current: State, trigger: str, *, more: bool) -> State:
    """The machine's decision (ValueError when the move is not allowed)."""
    got = fire(_MACHINE, _Model(more), current, trigger, TRIGGERS)
    if got is None:
        raise ValueError(f"{trigger} is not allowed from {current}")
    return State(got)


def index_of(checkin: CheckIn) -> int | None:
    """The 0-based index of the question a check-in is at (None once finished)."""
    try:
        state = State(checkin.state)
    except ValueError:
        return None
    return QUESTION_STATES.index(state) if state in QUESTION_STATES else None


# --- plans: the doctor's side -------------------------------------------------------------------


class NotAllowed(Exception):
    """A plan or check-in action that does not fit (``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def aware(at: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _draft(plan: FollowUpPlan) -> dict[str, Any]:
    try:
        raw = json.loads(plan.schedule or "{}")
    except ValueError:
        return {}
    return raw if isinstance(raw, dict) else {}


def draft_step(plan: FollowUpPlan) -> str:
    """What a draft plan needs next: template | frequency | time | review."""
    d = _draft(plan)
    if not plan.template:
        return "template"
    if "freq" not in d:
        return "frequency"
    if "time" not in d:
        return "time"
    return "review"


async def start_draft(
    uow: UnitOfWork, doctor: Doctor, case: Consultation, now: datetime
) -> FollowUpPlan:
    """A new draft plan for the patient of one of the doctor's cases (any state); an older
    draft of this doctor for the same patient is dropped."""
    if case.doctor_id != doctor.id:
        await uow.audit.record(
            alerts.doctor_ref(doctor.id), "followup.refused", "consultation", case.id, {}
        )
        raise NotAllowed("not_yours")
    for row in await uow.followups.plans(case.patient_id, (DRAFT,), doctor_id=doctor.id):
        await uow.followups.delete_plan(row)
    plan = FollowUpPlan(
        patient_id=case.patient_id, doctor_id=doctor.id, consultation_id=case.id,
        template="", status=DRAFT, schedule="{}", created_at=now,
    )  # fmt: skip
    return await uow.followups.add_plan(plan)


async def draft_of(uow: UnitOfWork, doctor: Doctor, plan_id: str | None) -> FollowUpPlan:
    """The doctor's own draft plan, or NotAllowed (stale)."""
    plan = await uow.followups.plan(plan_id) if plan_id else None
    if plan is None or plan.doctor_id != doctor.id or plan.status != DRAFT:
        raise NotAllowed("stale")
    return plan


def set_template(plan: FollowUpPlan, template_id: str) -> None:
    """Choose the template."""
    if template_id not in load().templates:
        raise NotAllowed("unknown")
    plan.template = template_id


def set_frequency(plan: FollowUpPlan, freq: str) -> None:
    """daily | twice_weekly | weekly."""
    if not plan.template or freq not in FREQUENCIES:
        raise NotAllowed("unknown")
    plan.schedule = json.dumps({"freq": freq})


def set_time(plan: FollowUpPlan, raw: str) -> str:
    """The time of day ("08:00", or typed: "8 pm", "早上八点"); TimingError when it is not
    one time."""
    d = _draft(plan)
    if "freq" not in d:
        raise NotAllowed("order")
    hhmm = timing.parse_clock(raw)
    d["time"] = hhmm
    plan.schedule = json.dumps(d)
    return hhmm


def review_date(raw: str, today: date) -> date:
    """The review date from "30" (days), "60 days", "2026-12-31"…; at least tomorrow and at
    most 90 days ahead (TimingError / BadAnswer otherwise)."""
    text = raw.strip()
    if text.isdigit():
        text = f"{text} days"
    _, end = timing.parse_period(text, today)
    if end is None:
        raise BadAnswer("followup.bad.review", max=REVIEW_MAX_DAYS)
    if end <= today or end > today + timedelta(days=REVIEW_MAX_DAYS):
        raise BadAnswer("followup.bad.review", max=REVIEW_MAX_DAYS)
    return end


def zone_of(patient: Patient) -> str:
    """The patient's time zone (UTC when they never gave one)."""
    return patient.timezone or "UTC"


def _zoneinfo(patient: Patient) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(zone_of(patient))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def today_for(patient: Patient, now: datetime) -> date:
    """The patient's local date."""
    return now.astimezone(_zoneinfo(patient)).date()


def local_time(patient: Patient, at: datetime) -> str:
    """An instant as the patient's local "YYYY-MM-DD HH:MM"."""
    return aware(at).astimezone(_zoneinfo(patient)).strftime("%Y-%m-%d %H:%M")


def schedule_of(plan: FollowUpPlan) -> timing.Schedule:
    """An active plan's timing."""
    return timing.Schedule.from_json(plan.schedule)


def occurrence_key(plan_id: str, local: str) -> str:
    """The occurrence key of a check-in event."""
    return f"{KIND}:{plan_id}:{local}"


def _quiet(patient: Patient, at: datetime) -> datetime:
    return timing.quiet_end_utc(at, zone_of(patient), patient.quiet_start, patient.quiet_end)


async def schedule_next(
    uow: UnitOfWork, plan: FollowUpPlan, patient: Patient, after: datetime
) -> tuple[str, datetime] | None:
    """Schedule the plan's next check-in strictly after ``after`` (moved past quiet hours);
    None when the plan has reached its review date."""
    found = timing.next_occurrence(schedule_of(plan), zone_of(patient), 0, after)
    if found is None:
        return None
    local, at = found
    due = _quiet(patient, at)
    key = occurrence_key(plan.id, local)
    await uow.events.add(
        KIND, plan.id, plan.patient_id, due + timedelta(seconds=timing.jitter_seconds(key)),
        key=key, priority=PRIORITY_ROUTINE,
    )  # fmt: skip
    return local, due


@dataclass
class Enrolled:
    """An activated plan and its first check-in (local label and when, UTC)."""

    plan: FollowUpPlan
    patient: Patient
    first: tuple[str, datetime] | None
    freq: str


async def activate(
    uow: UnitOfWork, doctor: Doctor, plan: FollowUpPlan, review: date, now: datetime
) -> Enrolled:
    """The draft becomes an active plan until ``review``; the first check-in is scheduled.
    Audited (template and frequency only)."""
    d = _draft(plan)
    if not plan.template or "freq" not in d or "time" not in d:
        raise NotAllowed("order")
    patient = await uow.patients.get(plan.patient_id)
    if patient is None:
        raise NotAllowed("gone")
    zone = _zoneinfo(patient)
    today = now.astimezone(zone).date()
    days = FREQUENCIES[d["freq"]] or (today.isoweekday(),)
    sched = timing.Schedule(times=(d["time"],), days=days, start=today, end=review)
    plan.schedule = sched.to_json()
    plan.review_by = datetime.combine(review, datetime.min.time(), tzinfo=zone).astimezone(UTC)
    plan.status = ACTIVE
    # One active plan per template and doctor for a patient: an older one ends.
    older = await uow.followups.plans(
        plan.patient_id, (ACTIVE,), doctor_id=doctor.id, template=plan.template,
        exclude_id=plan.id,
    )  # fmt: skip
    for old in older:
        await end(uow, old, now)
    first = await schedule_next(uow, plan, patient, now)
    await uow.audit.record(
        alerts.doctor_ref(doctor.id), "followup.enrol", "followup_plan", plan.id,
        {"template": plan.template, "freq": d["freq"]},
    )  # fmt: skip
    return Enrolled(plan, patient, first, d["freq"])


async def end(uow: UnitOfWork, plan: FollowUpPlan, now: datetime) -> None:
    """Stop a plan: its pending ``checkin`` events and its run's recall are cancelled, a
    check-in still waiting for answers is closed (its buttons answer that the plan ended)."""
    anchor = await streak_anchor(uow, plan.id)
    if anchor is not None:
        await uow.events.cancel_for(RECALL, anchor.id)
    plan.status = ENDED
    plan.ended_at = now
    plan.version += 1
    await uow.events.cancel_for(KIND, plan.id)
    for row in await uow.followups.pending_checkins(plan.id):
        _finish_unanswered(row, "close", now)


async def doctor_plans(uow: UnitOfWork, doctor_id: str, patient_id: str) -> list[FollowUpPlan]:
    """The doctor's own running plans (active, or at their review date) for a patient."""
    return await uow.followups.plans(patient_id, (ACTIVE, REVIEW), doctor_id=doctor_id)


def frequency_of(plan: FollowUpPlan) -> str:
    """daily | twice_weekly | weekly, from a running plan's days."""
    days = schedule_of(plan).days
    for name, listed in FREQUENCIES.items():
        if listed is not None and tuple(days) == listed:
            return name
    return "weekly"


async def own_plan(uow: UnitOfWork, doctor: Doctor, plan_id: str) -> FollowUpPlan:
    """A running plan of this doctor: NotAllowed ``stale`` (no such plan), ``not_yours``
    (audited) or ``ended``."""
    plan = await uow.followups.plan(plan_id) if plan_id else None
    if plan is None or plan.status == DRAFT:
        raise NotAllowed("stale")
    if plan.doctor_id != doctor.id:
        await uow.audit.record(
            alerts.doctor_ref(doctor.id), "followup.end.refused", "followup_plan", plan.id, {}
        )
        raise NotAllowed("not_yours")
    if plan.status not in (ACTIVE, REVIEW):
        raise NotAllowed("ended")
    return plan


async def end_by_doctor(
    uow: UnitOfWork, doctor: Doctor, plan_id: str, now: datetime
) -> FollowUpPlan:
    """The doctor ends one of their running plans (confirmed): see :func:`end`. Audited
    (the template only); refusals as in :func:`own_plan`."""
    plan = await own_plan(uow, doctor, plan_id)
    await end(uow, plan, now)
    await uow.audit.record(
        alerts.doctor_ref(doctor.id), "followup.end", "followup_plan", plan.id,
        {"template": plan.template},
    )  # fmt: skip
    return plan


async def plans_of(uow: UnitOfWork, patient_id: str) -> list[FollowUpPlan]:
    """A patient's active plans."""
    return await uow.followups.plans(patient_id, (ACTIVE,))


# --- check-ins: scheduled events -----------------------------------------------------------------


@dataclass
class Prompt:
    """What to send the patient: a question of a check-in (``late``/``recall`` wording), or
    only a notice (``missed``: a check-in that could not be asked in time)."""

    patient: Patient
    plan: FollowUpPlan
    checkin: CheckIn
    question: Question | None
    mode: str  # on_time | late | recall | missed
    ticks: tuple[str, ...] = ()
    next_due: datetime | None = None


def _local_of(key: str | None, plan_id: str) -> str | None:
    prefix = f"{KIND}:{plan_id}:"
    if not key or not key.startswith(prefix):
        return None
    return key[len(prefix) : len(prefix) + 16]


async def _checkin_at(uow: UnitOfWork, plan_id: str, local: str) -> CheckIn | None:
    return await uow.followups.checkin_at(plan_id, local)


def _finish_unanswered(row: CheckIn, trigger: str, now: datetime) -> None:
    """A pending check-in ends without its answers: ``miss`` (asked, never answered) or
    ``close`` (never asked, or its plan ended)."""
    try:
        state = next_state(State(row.state), trigger, more=False)
    except ValueError:
        state = State.MISSED if trigger == "miss" else State.CLOSED
    row.status, row.state, row.completed_at = "missed", state.value, now


async def _supersede(uow: UnitOfWork, plan: FollowUpPlan, now: datetime) -> None:
    """Older pending check-ins of the plan end as missed when a new one is asked (their run
    of missed check-ins, and its recall, carry on)."""
    for row in await uow.followups.pending_checkins(plan.id):
        _finish_unanswered(row, "miss", now)


async def streak_anchor(uow: UnitOfWork, plan_id: str) -> CheckIn | None:
    """The first check-in of the plan's current run of missed ones: asked (not closed),
    not answered, and due after the last answered one. None when the last check-in asked
    was answered (or none was asked)."""
    return await uow.followups.streak_anchor(plan_id, State.CLOSED.value)


def recall_key(anchor_id: str, stage: int) -> str:
    """The occurrence key of a run's recall (1) and doctor alert (2)."""
    return f"recall:{anchor_id}:{stage}"


async def _track_run(
    uow: UnitOfWork, plan: FollowUpPlan, patient: Patient, checkin: CheckIn, now: datetime
) -> bool:
    """After a check-in is created: a new run of missed check-ins gets its recall and doctor
    alert scheduled (keyed, once); True when this prompt should carry the run's recall
    (its time is within :data:`FOLD`)."""
    anchor = await streak_anchor(uow, plan.id)
    if anchor is None:
        return False
    start = aware(anchor.due_at)
    if anchor.id == checkin.id:
        for stage, after in ((1, RECALL_AFTER), (2, ALERT_AFTER)):
            await uow.events.add(
                RECALL, anchor.id, patient.id, start + after,
                key=recall_key(anchor.id, stage), priority=PRIORITY_ROUTINE,
            )  # fmt: skip
        return False
    if checkin.status != "pending" or anchor.recalled or now < start + RECALL_AFTER - FOLD:
        return False
    anchor.recalled = True
    await uow.audit.record("system", "followup.checkin.recall", "checkin", checkin.id, {})
    return True


async def fire_checkin(uow: UnitOfWork, event: Event, now: datetime) -> Prompt | None:
    """A ``checkin`` event is due: ask the first question (or record it missed after a long
    downtime), schedule the next occurrence; None when there is nothing to do."""
    plan = await uow.followups.plan(event.subject)
    if plan is None or plan.status != ACTIVE:
        return None
    patient = await uow.patients.get(plan.patient_id)
    if patient is None:
        return None
    local = _local_of(event.key, plan.id)
    if local is None:
        return None
    # Quiet hours set after it was scheduled: wait for their end (once).
    later = _quiet(patient, now)
    if later > now and not (event.key or "").endswith(":w"):
        await uow.events.add(
            KIND, plan.id, plan.patient_id, later, key=f"{event.key}:w", priority=PRIORITY_ROUTINE
        )
        return None
    due = aware(event.due_at)
    mode: str = timing.catch_up(KIND, due, now)
    nxt = await schedule_next(uow, plan, patient, max(now, due))
    if await _checkin_at(uow, plan.id, local) is not None:
        return None  # this occurrence was handled already
    template = load().get(plan.template)
    await _supersede(uow, plan, now)
    checkin = CheckIn(
        plan_id=plan.id, patient_id=patient.id, plan_version=plan.version, local=local,
        due_at=due, status="pending", state=State.Q1.value, level="none", recalled=False,
    )  # fmt: skip
    if mode == "missed":
        _finish_unanswered(checkin, "close", now)  # never asked: starts no run of misses
    elif patient.unreachable:
        _finish_unanswered(checkin, "miss", now)
    await uow.followups.add_checkin(checkin)
    if await _track_run(uow, plan, patient, checkin, now):
        mode = "recall"
    if nxt is None:
        plan.status = REVIEW
        await review_due(uow, plan, now)
    if checkin.status == "missed":
        await uow.audit.record("system", "followup.checkin.missed", "checkin", checkin.id, {})
        if patient.unreachable:
            return None
        return Prompt(patient, plan, checkin, None, "missed", next_due=nxt[1] if nxt else None)
    answers = await device_answers(uow, patient, template, now)
    if answers:
        # Today's device readings answer their questions: only the rest are asked.
        await _save(uow, checkin, answers)
        first = _first_open(template, answers, 0)
        if first is None:
            level, _ = _evaluate(template, answers)
            state = State.DONE if level != "danger" else State.RED_FLAG
            checkin.state, checkin.status, checkin.level = state.value, "done", level
            checkin.completed_at = now
            await uow.audit.record(
                "system", "followup.checkin.by_device", "checkin", checkin.id, {"level": level}
            )
            await _resolve_missed(uow, plan, checkin, now)
            return None  # the device's readings were judged (and told) when they came
        state = State(checkin.state)
        for _ in range(first):
            state = next_state(state, "answer", more=True)
        checkin.state = state.value
        return Prompt(patient, plan, checkin, template.questions[first], mode)
    return Prompt(patient, plan, checkin, template.questions[0], mode)


def _first_open(template: Template, answers: dict[str, Any], start: int) -> int | None:
    """The index of the first question from ``start`` that has no answer yet."""
    for i in range(start, len(template.questions)):
        if template.questions[i].id not in answers:
            return i
    return None


async def device_answers(
    uow: UnitOfWork, patient: Patient, template: Template, now: datetime
) -> dict[str, Any]:
    """The answers today's device readings give to a template's reading questions (the
    newest reading of each kind since the patient's local midnight): a check-in a device
    already answered is not asked again."""
    wanted = {q.reading: q for q in template.questions if q.reading and q.type in ("bp", "number")}
    if not wanted:
        return {}
    midnight = datetime.combine(today_for(patient, now), time(0, 0), _zoneinfo(patient))
    newest: dict[str, str] = {}
    for row, value in await uow.followups.readings_since(patient.id, midnight.astimezone(UTC)):
        if row.source == "device" and row.kind in wanted:
            newest[row.kind] = value  # oldest first: the last one wins
    answers: dict[str, Any] = {}
    for kind, value in newest.items():
        q = wanted[kind]
        try:
            answers[q.id] = list(parse_bp(q, value)) if q.type == "bp" else parse_number(q, value)
        except BadAnswer:
            continue  # outside this question's plausible range: the patient is asked
    return answers


async def _doctor_tr(uow: UnitOfWork, doctor_id: str) -> Translator:
    doctor = await uow.doctors.get(doctor_id)
    return Translator(doctor.locale if doctor is not None else "en")


async def review_due(uow: UnitOfWork, plan: FollowUpPlan, now: datetime) -> None:
    """The plan reached its review date: the doctor is told (a care alert)."""
    tr = await _doctor_tr(uow, plan.doctor_id)
    await alerts.raise_alert(
        uow, patient_id=plan.patient_id, doctor_id=plan.doctor_id, kind="review",
        ref_id=plan.id, level="alert", msgid="followup.alert.review",
        params={"template": _template_name(tr, plan.template)}, now=now,
    )  # fmt: skip


def _template_name(tr: Translator, template_id: str) -> str:
    return tr.plain(f"followup.template.{template_id}")


def _recall_stage(key: str | None) -> tuple[int, bool]:
    """(stage, waited) from ``recall:{anchor}:{stage}[:w]``."""
    parts = (key or "").split(":")
    stage = int(parts[2]) if len(parts) > 2 and parts[2] in ("1", "2") else 1
    return stage, len(parts) > 3


async def _open_of(uow: UnitOfWork, plan_id: str, now: datetime) -> CheckIn | None:
    return await uow.followups.open_checkin_of_plan(plan_id, now - OPEN_FOR)


async def fire_recall(uow: UnitOfWork, event: Event, now: datetime) -> Prompt | None:
    """A ``checkin.recall`` event of a run of missed check-ins (subject: its anchor). Stage 1
    re-asks the open check-in's question once (recall wording; after quiet hours; left to a
    check-in prompt due within the hour); stage 2 records the old unanswered ones missed and
    alerts the plan's doctor once. Nothing when a check-in was answered since the anchor or
    the plan has ended."""
    anchor = await uow.followups.checkin(event.subject)
    if anchor is None:
        return None
    plan = await uow.followups.plan(anchor.plan_id)
    patient = await uow.patients.get(anchor.patient_id)
    if plan is None or patient is None or plan.status not in (ACTIVE, REVIEW):
        return None
    current = await streak_anchor(uow, plan.id)
    if current is None or current.id != anchor.id:
        return None  # answered since: this run is over
    stage, waited = _recall_stage(event.key)
    if stage == 2:
        await _missed_alert(uow, plan, anchor, now)
        return None
    if anchor.recalled:
        return None  # a check-in prompt carried it
    # a leased check-in event counts: it runs in this very sweep
    soon = await uow.events.due_by(KIND, plan.id, now + FOLD)
    if soon or timing.catch_up(RECALL, aware(event.due_at), now) == "missed":
        return None  # the next check-in prompt carries the recall
    later = _quiet(patient, now)
    if later > now and not waited:
        await uow.events.add(
            RECALL, anchor.id, patient.id, later, key=f"{event.key}:w", priority=PRIORITY_ROUTINE
        )
        return None
    anchor.recalled = True
    checkin = await _open_of(uow, plan.id, now)
    idx = index_of(checkin) if checkin is not None else None
    if checkin is None or idx is None or patient.unreachable:
        return None
    await uow.audit.record("system", "followup.checkin.recall", "checkin", checkin.id, {})
    question = load().get(plan.template).questions[idx]
    ticks = tuple((await answers_of(uow, checkin)).get("_ticks", ()))
    return Prompt(patient, plan, checkin, question, "recall", ticks=ticks)


async def _missed_alert(
    uow: UnitOfWork, plan: FollowUpPlan, anchor: CheckIn, now: datetime
) -> None:
    """Stage 2 of a run of missed check-ins: the old unanswered ones are missed, the doctor
    alerted (once: the event is keyed)."""
    rows = await uow.followups.run_checkins(plan.id, anchor.due_at, State.CLOSED.value)
    for row in rows:
        if row.status == "pending" and aware(row.due_at) <= now - RECALL_AFTER:
            _finish_unanswered(row, "miss", now)
            await uow.audit.record("system", "followup.checkin.missed", "checkin", row.id, {})
    tr = await _doctor_tr(uow, plan.doctor_id)
    await alerts.raise_alert(
        uow, patient_id=plan.patient_id, doctor_id=plan.doctor_id, kind=ALERT_MISSED,
        ref_id=anchor.id, level="alert", msgid="followup.alert.missed",
        params={"template": _template_name(tr, plan.template), "local": anchor.local,
                "n": sum(1 for r in rows if aware(r.due_at) <= now - FOLD)},
        now=now,
    )  # fmt: skip


async def _resolve_missed(
    uow: UnitOfWork, plan: FollowUpPlan, checkin: CheckIn, now: datetime
) -> None:
    """A check-in of the plan answered: the run of missed ones is over, so the doctor's open
    "no check-in answered" alert about it is resolved (the doctor told once)."""
    refs = []
    for alert in await alerts.open_about(uow, ALERT_MISSED, plan.patient_id):
        anchor = await uow.followups.checkin(alert.ref_id)
        if anchor is not None and anchor.plan_id == plan.id:
            refs.append(alert.ref_id)
    if not refs:
        return
    patient = await uow.patients.get(plan.patient_id)
    await alerts.resolve(
        uow,
        patient_id=plan.patient_id,
        kind=ALERT_MISSED,
        ref_ids=refs,
        resolution=alerts.Resolution(
            actor=f"patient:{plan.patient_id}", by="patient", cause="checkin.answered",
            msgid="followup.alert.resolved", at=now,
            zone=zone_of(patient) if patient is not None else None,
            labels={"template": f"followup.template.{plan.template}"},
        ),
    )  # fmt: skip


async def _alert_subject(
    uow: UnitOfWork, alert: CareAlert
) -> tuple[CheckIn, FollowUpPlan, Template] | None:
    checkin = await uow.followups.checkin(alert.ref_id)
    plan = await uow.followups.plan(checkin.plan_id) if checkin else None
    if checkin is None or plan is None or plan.template not in load().templates:
        return None
    return checkin, plan, load().get(plan.template)


@alerts.on_describe("reading")
async def _describe_reading(uow: UnitOfWork, tr: Translator, alert: CareAlert) -> Html | None:
    """A check-in outside the thresholds: its flagged answers."""
    found = await _alert_subject(uow, alert)
    if found is None:
        return None
    checkin, plan, template = found
    _, flagged = _evaluate(template, await answers_of(uow, checkin))
    return tr("followup.alert.doctor", template=_template_name(tr, plan.template),
              lines=flagged_lines(tr, flagged))  # fmt: skip


@alerts.on_describe(ALERT_MISSED)
async def _describe_missed(uow: UnitOfWork, tr: Translator, alert: CareAlert) -> Html | None:
    """A run of missed check-ins: since when, and how many went unanswered."""
    found = await _alert_subject(uow, alert)
    if found is None:
        return None
    anchor, plan, _ = found
    n = await uow.followups.count_run(
        plan.id, anchor.due_at, aware(alert.created_at) - FOLD, State.CLOSED.value
    )
    return tr("followup.alert.missed", template=_template_name(tr, plan.template),
              local=anchor.local, n=n)  # fmt: skip


@alerts.on_describe("review")
async def _describe_review(uow: UnitOfWork, tr: Translator, alert: CareAlert) -> Html | None:
    """A plan at its review date."""
    plan = await uow.followups.plan(alert.ref_id)
    if plan is None:
        return None
    return tr("followup.alert.review", template=_template_name(tr, plan.template))


# --- check-ins: the patient's answers -----------------------------------------------------------


async def answers_of(uow: UnitOfWork, checkin: CheckIn) -> dict[str, Any]:
    """The check-in's answers so far (decrypted)."""
    return await uow.followups.answers(checkin)


async def _save(uow: UnitOfWork, checkin: CheckIn, answers: dict[str, Any]) -> None:
    await uow.followups.set_answers(checkin, answers)


async def open_checkin(uow: UnitOfWork, patient: Patient, now: datetime) -> CheckIn | None:
    """The patient's check-in waiting for an answer (the most recent), if any."""
    return await uow.followups.open_checkin_of_patient(patient.id, now - OPEN_FOR)


@dataclass
class Flagged:
    """One answer that needs the doctor's eyes: the question, the value as shown, its flag."""

    question: Question
    value: str
    flag: str


@dataclass
class Outcome:
    """After an answer: the next question, or the end with its level and what was flagged."""

    checkin: CheckIn
    plan: FollowUpPlan
    question: Question | None = None
    ticks: tuple[str, ...] = ()
    level: str = "none"
    flagged: list[Flagged] = field(default_factory=list)
    alert: bool = False  # the doctor was alerted
    # Everything flagged came from today's device readings, which alerted the doctor when they
    # arrived: the finished check-in does not alert again.
    told_by_device: bool = False


async def _checkin_for(
    uow: UnitOfWork, patient: Patient, checkin_id: str, qidx: int
) -> tuple[CheckIn, FollowUpPlan, Template, Question]:
    checkin = await uow.followups.checkin(checkin_id) if checkin_id else None
    if checkin is None or checkin.patient_id != patient.id:
        raise Stale()
    plan = await uow.followups.plan(checkin.plan_id)
    if plan is not None and plan.status == ENDED and checkin.status != "done":
        raise Stale("ended")
    if checkin.status != "pending":
        raise Stale()
    idx = index_of(checkin)
    if idx is None or idx != qidx or plan is None:
        raise Stale()
    template = load().get(plan.template)
    if idx >= len(template.questions):
        raise Stale()
    return checkin, plan, template, template.questions[idx]


async def _reading(
    uow: UnitOfWork, checkin: CheckIn, q: Question, value: str, flag: str, now: datetime
) -> None:
    assert q.reading is not None
    await uow.followups.add_reading(checkin, q.reading, value, flag, now)


def _evaluate(template: Template, answers: dict[str, Any]) -> tuple[str, list[Flagged]]:
    """The check-in's level from its answers so far: danger | alert | none."""
    level, flagged = "none", []
    flags: dict[str, str] = {}
    for q in template.questions:
        if q.id not in answers:
            continue
        got = answers[q.id]
        if q.type in ("bp", "number"):
            value = tuple(got) if q.type == "bp" else got
            f = flag_of(q, value)
            flags[q.id] = f
            if f != "none":
                flagged.append(Flagged(q, value_text(q, value), f))
                level = "danger" if f == "danger" else max(level, "alert", key=_rank)
        elif q.type == "choice" and got in q.alert_options:
            flagged.append(Flagged(q, got, "high"))
            level = max(level, "alert", key=_rank)
        elif q.type == "checklist" and got:
            ticked = list(got)
            if any(o in q.alert_options for o in ticked):
                level = max(level, "alert", key=_rank)
            danger = any(o in q.danger_options for o in ticked) or any(
                flags.get(other, "none") != "none" for other in q.danger_with
            )
            if danger:
                level = "danger"
            flagged.append(Flagged(q, ",".join(ticked), "danger" if danger else "high"))
    return level, flagged


def _rank(level: str) -> int:
    return {"none": 0, "alert": 1, "danger": 2}[level]


async def _advance(
    uow: UnitOfWork,
    checkin: CheckIn,
    plan: FollowUpPlan,
    template: Template,
    answers: dict[str, Any],
    now: datetime,
) -> Outcome:
    await _save(uow, checkin, answers)
    level, flagged = _evaluate(template, answers)
    idx = index_of(checkin) or 0
    if level == "danger":
        state = next_state(State(checkin.state), "red_flag", more=False)
    else:
        # Questions a device answered today are passed over.
        following = _first_open(template, answers, idx + 1)
        state = next_state(State(checkin.state), "answer", more=following is not None)
        for _ in range((following or 0) - idx - 1):
            state = next_state(state, "answer", more=True)
    checkin.state = state.value
    checkin.level = level
    if state in FINAL:
        checkin.status = "done"
        checkin.completed_at = now
        await uow.audit.record(
            f"patient:{checkin.patient_id}", "followup.checkin.done", "checkin", checkin.id,
            {"level": level},
        )  # fmt: skip
        await _resolve_missed(uow, plan, checkin, now)
        given = await _given_by_device(uow, checkin, template, answers, now) if flagged else set()
        told = bool(flagged) and all(f.question.id in given for f in flagged)
        return Outcome(checkin, plan, None, (), level, flagged, told_by_device=told)
    return Outcome(checkin, plan, template.questions[QUESTION_STATES.index(state)], (), level)


async def _given_by_device(
    uow: UnitOfWork, checkin: CheckIn, template: Template, answers: dict[str, Any], now: datetime
) -> set[str]:
    """The questions of a finished check-in that today's device readings answered."""
    patient = await uow.patients.get(checkin.patient_id)
    if patient is None:
        return set()
    given = await device_answers(uow, patient, template, now)
    return {qid for qid, value in given.items() if answers.get(qid) == value}


async def answer_text(
    uow: UnitOfWork, patient: Patient, checkin: CheckIn, raw: str, now: datetime
) -> Outcome:
    """A typed answer to the open question (BadAnswer keeps the question; a button question
    asks for its buttons)."""
    idx = index_of(checkin)
    if idx is None:
        raise Stale()
    checkin, plan, template, q = await _checkin_for(uow, patient, checkin.id, idx)
    answers = await answers_of(uow, checkin)
    if q.type == "bp":
        bp = parse_bp(q, raw)
        answers[q.id] = list(bp)
        await _reading(uow, checkin, q, value_text(q, bp), flag_of(q, bp), now)
    elif q.type == "number":
        v = parse_number(q, raw)
        answers[q.id] = v
        await _reading(uow, checkin, q, value_text(q, v), flag_of(q, v), now)
    elif q.type == "text":
        text = " ".join((raw or "").split())
        if not text:
            raise BadAnswer("followup.bad.empty")
        if len(text) > NOTE_MAX:
            raise BadAnswer("followup.bad.too_long", max=NOTE_MAX)
        answers[q.id] = text
    else:
        raise BadAnswer("followup.bad.use_buttons")
    return await _advance(uow, checkin, plan, template, answers, now)


async def press(
    uow: UnitOfWork,
    patient: Patient,
    checkin_id: str,
    qidx: int,
    action: str,
    value: str,
    now: datetime,
) -> Outcome:
    """A button of a check-in question: ``opt`` (a choice), ``tick`` (toggle a checklist
    option), ``none`` (none of these), ``done`` (the ticked ones), ``skip`` (an optional
    question). Stale when the check-in or question is no longer open."""
    checkin, plan, template, q = await _checkin_for(uow, patient, checkin_id, qidx)
    answers = await answers_of(uow, checkin)
    if action == "opt" and q.type == "choice" and value in q.options:
        answers[q.id] = value
    elif action == "tick" and q.type == "checklist" and value in q.options:
        ticks = list(answers.get("_ticks", []))
        ticks = [t for t in ticks if t != value] if value in ticks else [*ticks, value]
        answers["_ticks"] = ticks
        await _save(uow, checkin, answers)
        return Outcome(checkin, plan, q, tuple(ticks))
    elif action == "none" and q.type == "checklist":
        answers.pop("_ticks", None)
        answers[q.id] = []
    elif action == "done" and q.type == "checklist":
        ticks = list(answers.pop("_ticks", []))
        if not ticks:
            raise BadAnswer("followup.bad.tick_or_none")
        answers[q.id] = [o for o in q.options if o in ticks]
    elif action == "skip" and q.type == "text" and q.optional:
        answers[q.id] = ""
    else:
        raise Stale()
    return await _advance(uow, checkin, plan, template, answers, now)


# --- who is told -------------------------------------------------------------------------------


def reading_name(tr: Translator, q: Question) -> str:
    """A question's reading (or the question) in words."""
    return (
        tr.plain(f"followup.reading.{q.reading}") if q.reading else tr.plain(f"followup.q.{q.id}")
    )


def flagged_lines(tr: Translator, flagged: list[Flagged]) -> Html:
    """The flagged answers, one per line, in ``tr``'s language."""
    lines = []
    for f in flagged:
        q = f.question
        if q.type in ("bp", "number"):
            shown = f"{f.value} {q.unit}".strip()
        else:
            shown = ", ".join(tr.plain(f"followup.q.{q.id}.{o}") for o in f.value.split(",") if o)
        lines.append(
            tr("followup.alert.line", what=reading_name(tr, q), value=shown,
               flag=tr.plain(f"followup.flag.{f.flag}"))
        )  # fmt: skip
    return Html("\n".join(lines))


async def notify(
    uow: UnitOfWork, out: Outcome, patient: Patient, now: datetime, emergency_number: str
) -> None:
    """A finished check-in with an alert or danger: the plan's doctor gets a care alert (with
    the values), caregivers whose scope covers check-ins a note (values only when their
    scope has ``details``)."""
    if out.level == "none" or out.checkin.status != "done" or out.told_by_device:
        return
    plan = out.plan
    dtr = await _doctor_tr(uow, plan.doctor_id)
    await alerts.raise_alert(
        uow, patient_id=patient.id, doctor_id=plan.doctor_id, kind="reading",
        ref_id=out.checkin.id, level="danger" if out.level == "danger" else "alert",
        msgid="followup.alert.doctor",
        params={"template": _template_name(dtr, plan.template),
                "lines": flagged_lines(dtr, out.flagged)},
        now=now,
    )  # fmt: skip
    out.alert = True
    name = await caregivers.patient_label(uow, patient)
    for cg in await caregivers.for_alert(uow, patient.id, "checkins"):
        if cg.tg_user_id is None:
            continue
        ctr = Translator(await caregivers.locale_of(uow, cg))
        if out.level == "danger":
            text = ctr("followup.caregiver.danger", name=name, emergency_number=emergency_number)
        elif cg.details:
            text = ctr(
                "followup.caregiver.alert_details", name=name,
                lines=flagged_lines(ctr, out.flagged),
            )  # fmt: skip
        else:
            text = ctr("followup.caregiver.alert", name=name)
        await Replier(uow, "patient", cg.tg_user_id).text(
            text, protect=True,
            priority=PRIORITY_URGENT if out.level == "danger" else PRIORITY_REPLY,
        )  # fmt: skip
        await uow.audit.record(
            "system", "followup.caregiver.alert", "caregiver", cg.id, {"level": out.level}
        )
    if out.level == "danger":
        await uow.audit.record(
            f"patient:{patient.id}", "redflag.raised", "checkin", out.checkin.id, {}
        )


# --- readings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadingView:
    """A decrypted reading."""

    kind: str
    value: str
    flag: str
    taken_at: datetime
    source: str = "manual"  # manual (typed in a check-in) | device | imported


async def recent_readings(
    uow: UnitOfWork, patient_id: str, now: datetime, days: int = 30
) -> list[ReadingView]:
    """The patient's readings of the last ``days`` days, oldest first (decrypted)."""
    rows = await uow.followups.readings_since(patient_id, now - timedelta(days=days))
    return [
        ReadingView(row.kind, value, row.flag, aware(row.taken_at), row.source or "manual")
        for row, value in rows
    ]


READING_UNITS = {
    "bp": "mmHg",
    "pulse": "bpm",
    "glucose": "mmol/L",
    "temperature": "°C",
    "pain": "/10",
    "spo2": "%",
    "weight": "kg",
}
