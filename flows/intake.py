"""Symptom intake: from "I feel unwell" to a disposition, a department and a clean summary.

One module-level ``transitions`` machine (Enum states, no auto transitions) decides every
move; its conditions are pure functions of a :class:`Snapshot` of the answers. The state is
stored in ``intakes.state`` next to the encrypted answers, so a restart or a week's pause
resumes exactly where the patient was. Handlers call one use case per event (:func:`begin`,
:func:`press`, :func:`text`, :func:`media`, :func:`stop_for_red_flag`) and render the
:class:`Outcome`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from transitions import Machine

from flows import consultation, redflag_model, redflags, understand
from flows.machines import fire
from flows.onboarding import SEX_VALUES, Actor, clean_text
from flows.questionnaire import EVERYONE, Facts, Question, Questionnaire, Who
from flows.triage import Triage, for_red_flag, triage
from storage.models import Intake, Patient, utcnow
from storage.uow import UnitOfWork

TEXT_MAX = 1000  # one answer; longer paragraphs get a polite "please shorten"
NOTES_MAX = 20  # words typed beside the questions, kept for the doctor
ATTACHMENTS_MAX = 10


class State(StrEnum):
    """Where an intake is."""

    SUBJECT = "subject"
    AGE_BAND = "age_band"
    SEX = "sex"
    COMPLAINT = "complaint"
    ONSET = "onset"
    SEVERITY = "severity"
    RED_FLAGS = "red_flags"
    FOLLOW_UP = "follow_up"
    ASSOCIATED = "associated"
    CONDITIONS = "conditions"
    MEDICINES = "medicines"
    ALLERGIES = "allergies"
    ATTACHMENTS = "attachments"
    SUMMARY = "summary"
    DIAGNOSIS_CHECK = "diagnosis_check"
    TRIAGED = "triaged"
    EMERGENCY = "emergency"
    CANCELLED = "cancelled"


FINAL = (State.TRIAGED, State.EMERGENCY, State.CANCELLED)
ACTIVE = tuple(s for s in State if s not in FINAL)
HISTORY_STATES = {
    State.CONDITIONS: "conditions",
    State.MEDICINES: "medicines",
    State.ALLERGIES: "allergies",
}
# Summary sections the patient can correct, and the trigger that goes there.
SECTIONS = ("subject", "complaint", "onset", "severity", "details", "history", "attachments")

S = State
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "choose_subject", "source": S.SUBJECT, "dest": S.AGE_BAND, "conditions": "proxy"},
    {"trigger": "choose_subject", "source": S.SUBJECT, "dest": S.COMPLAINT},
    {"trigger": "give_age_band", "source": S.AGE_BAND, "dest": S.SEX},
    {"trigger": "give_sex", "source": S.SEX, "dest": S.COMPLAINT},
    {
        "trigger": "choose_complaint",
        "source": S.COMPLAINT,
        "dest": S.RED_FLAGS,
        "conditions": "returning",
    },
    {"trigger": "choose_complaint", "source": S.COMPLAINT, "dest": S.ONSET},
    {"trigger": "give_onset", "source": S.ONSET, "dest": S.SUMMARY, "conditions": "returning"},
    {"trigger": "give_onset", "source": S.ONSET, "dest": S.SEVERITY},
    {
        "trigger": "give_severity",
        "source": S.SEVERITY,
        "dest": S.SUMMARY,
        "conditions": "returning",
    },
    {"trigger": "give_severity", "source": S.SEVERITY, "dest": S.RED_FLAGS},
    {
        "trigger": "no_red_flags",
        "source": S.RED_FLAGS,
        "dest": S.FOLLOW_UP,
        "conditions": "has_questions",
    },
    {"trigger": "no_red_flags", "source": S.RED_FLAGS, "dest": S.ASSOCIATED},
    {
        "trigger": "answer_question",
        "source": S.FOLLOW_UP,
        "dest": S.FOLLOW_UP,
        "conditions": "more_questions",
    },
    {"trigger": "answer_question", "source": S.FOLLOW_UP, "dest": S.ASSOCIATED},
    {
        "trigger": "give_associated",
        "source": S.ASSOCIATED,
        "dest": S.SUMMARY,
        "conditions": "returning",
    },
    {"trigger": "give_associated", "source": S.ASSOCIATED, "dest": S.CONDITIONS},
    {"trigger": "give_conditions", "source": S.CONDITIONS, "dest": S.MEDICINES},
    {"trigger": "give_medicines", "source": S.MEDICINES, "dest": S.ALLERGIES},
    {
        "trigger": "give_allergies",
        "source": S.ALLERGIES,
        "dest": S.SUMMARY,
        "conditions": "returning",
    },
    {"trigger": "give_allergies", "source": S.ALLERGIES, "dest": S.ATTACHMENTS},
    {"trigger": "finish_attachments", "source": S.ATTACHMENTS, "dest": S.SUMMARY},
    {
        "trigger": "confirm",
        "source": S.SUMMARY,
        "dest": S.DIAGNOSIS_CHECK,
        "conditions": "needs_diagnosis_check",
    },
    {"trigger": "confirm", "source": S.SUMMARY, "dest": S.TRIAGED},
    {"trigger": "answer_diagnosis", "source": S.DIAGNOSIS_CHECK, "dest": S.TRIAGED},
    {"trigger": "edit_subject", "source": S.SUMMARY, "dest": S.SUBJECT},
    {"trigger": "edit_complaint", "source": S.SUMMARY, "dest": S.COMPLAINT},
    {"trigger": "edit_onset", "source": S.SUMMARY, "dest": S.ONSET},
    {"trigger": "edit_severity", "source": S.SUMMARY, "dest": S.SEVERITY},
    {
        "trigger": "edit_details",
        "source": S.SUMMARY,
        "dest": S.FOLLOW_UP,
        "conditions": "has_questions",
    },
    {"trigger": "edit_details", "source": S.SUMMARY, "dest": S.ASSOCIATED},
    {"trigger": "edit_history", "source": S.SUMMARY, "dest": S.CONDITIONS},
    {"trigger": "edit_attachments", "source": S.SUMMARY, "dest": S.ATTACHMENTS},
    # Back: one step towards the start, along the path this intake took.
    {"trigger": "back", "source": S.AGE_BAND, "dest": S.SUBJECT},
    {"trigger": "back", "source": S.SEX, "dest": S.AGE_BAND},
    {"trigger": "back", "source": S.COMPLAINT, "dest": S.SEX, "conditions": "proxy"},
    {"trigger": "back", "source": S.COMPLAINT, "dest": S.SUBJECT},
    {"trigger": "back", "source": S.ONSET, "dest": S.COMPLAINT},
    {"trigger": "back", "source": S.SEVERITY, "dest": S.ONSET},
    {"trigger": "back", "source": S.RED_FLAGS, "dest": S.SEVERITY},
    {"trigger": "back", "source": S.FOLLOW_UP, "dest": S.FOLLOW_UP, "unless": "first_question"},
    {"trigger": "back", "source": S.FOLLOW_UP, "dest": S.RED_FLAGS},
    {
        "trigger": "back",
        "source": S.ASSOCIATED,
        "dest": S.FOLLOW_UP,
        "conditions": "has_questions",
    },
    {"trigger": "back", "source": S.ASSOCIATED, "dest": S.RED_FLAGS},
    {"trigger": "back", "source": S.CONDITIONS, "dest": S.ASSOCIATED},
    {"trigger": "back", "source": S.MEDICINES, "dest": S.CONDITIONS},
    {"trigger": "back", "source": S.ALLERGIES, "dest": S.MEDICINES},
    {"trigger": "back", "source": S.ATTACHMENTS, "dest": S.ALLERGIES},
    {"trigger": "back", "source": S.SUMMARY, "dest": S.ATTACHMENTS},
    {"trigger": "back", "source": S.DIAGNOSIS_CHECK, "dest": S.SUMMARY},
    {"trigger": "red_flag", "source": list(ACTIVE), "dest": S.EMERGENCY},
    {"trigger": "cancel", "source": list(ACTIVE), "dest": S.CANCELLED},
]
TRIGGERS = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))


@dataclass(frozen=True)
class Snapshot:
    """What the machine's conditions may look at: plain facts, no I/O."""

    proxy: bool = False
    returning: bool = False
    question_count: int = 0
    question_index: int = 0
    needs_diagnosis_check: bool = False


# Conditions as pure functions of the snapshot.
def is_proxy(s: Snapshot) -> bool:
    """The intake is for someone the patient cares for."""
    return s.proxy


def is_returning(s: Snapshot) -> bool:
    """The patient is correcting one section from the summary."""
    return s.returning


def has_questions(s: Snapshot) -> bool:
    """The complaint has follow-up questions."""
    return s.question_count > 0


def more_questions(s: Snapshot) -> bool:
    """Another follow-up question comes after the current one."""
    return s.question_index + 1 < s.question_count


def first_question(s: Snapshot) -> bool:
    """The current follow-up question is the first."""
    return s.question_index == 0


class _Model:
    """A light model the machine attaches to for one decision."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.state: State = State.SUBJECT

    def proxy(self) -> bool:
        return is_proxy(self.snap)

    def returning(self) -> bool:
        return is_returning(self.snap)

    def has_questions(self) -> bool:
        return has_questions(self.snap)

    def more_questions(self) -> bool:
        return more_questions(self.snap)

    def first_question(self) -> bool:
        return first_question(self.snap)

    def needs_diagnosis_check(self) -> bool:
        return self.snap.needs_diagnosis_check


_MACHINE = Machine(
    model=None,
    states=State,
    transitions=TRANSITIONS,
    initial=State.SUBJECT,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)


class StaleButton(Exception):
    """A button or trigger that does not belong to the intake's current step."""


class BadAnswer(Exception):
    """The answer cannot be taken; ``msgid`` says why, politely. The step stays."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params = params


def next_state(current: State, trigger: str, snap: Snapshot) -> State:
    """The state after ``trigger`` from ``current``; :class:`StaleButton` if not allowed."""
    new = fire(_MACHINE, _Model(snap), current, trigger, TRIGGERS)
    if new is None:
        raise StaleButton(f"{trigger} is not allowed in {current.value}")
    return State(new)


# -- pure parsing of typed answers ------------------------------------------------------------

_WORD_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10,
    "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
    "九": 9, "十": 10,
    "ноль": 0, "один": 1, "два": 2, "три": 3, "четыре": 4, "пять": 5, "шесть": 6,
    "семь": 7, "восемь": 8, "девять": 9, "десять": 10,
}  # fmt: skip


def parse_severity(raw: str) -> int:
    """0-10 from "7", "７", "7/10", "seven", "七分", "семь"; anything else is a BadAnswer."""
    text = unicodedata.normalize("NFKC", clean_text(raw)).casefold()
    match = re.fullmatch(r"(\d{1,2})(?:\s*(?:/|из|out of)\s*10)?\s*(?:分|балл\w*)?", text)
    if match and 0 <= int(match.group(1)) <= 10:
        return int(match.group(1))
    word = re.sub(r"\s*(分|балл\w*)$", "", text)
    if word in _WORD_NUMBERS:
        return _WORD_NUMBERS[word]
    raise BadAnswer("intake.error.severity")


def parse_free_text(raw: str) -> str:
    """A typed answer: cleaned, non-empty, not longer than :data:`TEXT_MAX`."""
    text = clean_text(raw)
    if not text or not any(ch.isalnum() for ch in text):
        raise BadAnswer("intake.error.text_empty")
    if len(text) > TEXT_MAX:
        raise BadAnswer("error.text_too_long", max=TEXT_MAX)
    return text


# -- use cases -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened, for the handler to render."""

    intake: Intake
    answers: dict[str, Any]
    resumed: bool = False
    notice: str | None = None  # a message id to show before the step (e.g. "noted")
    notice_params: dict[str, Any] = field(default_factory=dict)
    edited_keyboard: bool = False  # only the current keyboard changed (a symptom toggled)
    ask_safety: bool = False  # words not understood: ask "is this an emergency?" first

    @property
    def state(self) -> State:
        """The intake's state now."""
        return State(self.intake.state)


def subject_facts(answers: dict[str, Any], history: bool) -> Facts:
    """The rule engine's view of the answers."""
    return Facts(
        category=str(answers.get("category", "")),
        subject="other" if answers.get("subject") == "other" else "self",
        age_band=answers.get("age_band"),
        severity=answers.get("severity"),
        duration=answers.get("duration"),
        associated=frozenset(answers.get("associated", [])),
        answers=dict(answers.get("followup", {})),
        has_history=history,
    )


def has_history(answers: dict[str, Any]) -> bool:
    """The person has chronic conditions on record (anything but "none")."""
    value = answers.get("conditions")
    return bool(value) and value != "none"


def who_of(answers: dict[str, Any]) -> Who:
    """Whom the intake is about: the sex and age band in the answers (the patient's own from
    their profile, or what they said about someone else); None where not known."""
    sex = answers.get("sex")
    return Who(sex=str(sex) if sex else None, age_band=_age_band(answers))


def questions_of(q: Questionnaire, answers: dict[str, Any]) -> tuple[Question, ...]:
    """The follow-up questions of the chosen complaint that can apply to this person."""
    category = q.categories.get(str(answers.get("category", "")))
    return category.questions_for(who_of(answers)) if category else ()


def _prune(q: Questionnaire, answers: dict[str, Any]) -> None:
    """Forget answers that cannot apply to the person any more (the patient corrected whom
    the intake is about: a pregnancy answer given for a woman does not stay for a man)."""
    who = who_of(answers)
    followup: dict[str, str] = answers.get("followup") or {}
    for qid in list(followup):
        question = q.question(qid)
        if question is not None and not question.applies.to(who):
            del followup[qid]
    if answers.get("associated"):
        answers["associated"] = [
            s for s in answers["associated"] if q.symptom_applies.get(s, EVERYONE).to(who)
        ]


def snapshot(
    q: Questionnaire, answers: dict[str, Any], *, jurisdiction: str = "generic"
) -> Snapshot:
    """The machine's view of the answers."""
    pending = answers.get("pending_disposition")
    return Snapshot(
        proxy=answers.get("subject") == "other",
        returning=bool(answers.get("returning")),
        question_count=len(questions_of(q, answers)),
        question_index=int(answers.get("question_index", 0)),
        needs_diagnosis_check=jurisdiction == "cn"
        and pending in ("consultation", "consultation_24"),
    )


def is_final(intake: Intake) -> bool:
    """Has the intake ended (triaged, emergency or cancelled)?"""
    return State(intake.state) in FINAL


async def open_intake(uow: UnitOfWork, patient: Patient) -> Intake | None:
    """The patient's intake in progress, if any."""
    return await uow.intakes.open_for(patient.id, [s.value for s in FINAL])


async def begin(uow: UnitOfWork, patient: Patient, q: Questionnaire) -> Outcome:
    """Start an intake, or resume the one in progress exactly where it was."""
    current = await open_intake(uow, patient)
    if current is not None:
        return Outcome(current, await uow.intakes.answers(current), resumed=True)
    intake = Intake(
        patient_id=patient.id, state=State.SUBJECT.value, questionnaire_version=q.version
    )
    await uow.intakes.add(intake, {})
    await uow.audit.record(Actor(patient.id).ref, "intake.start", "intake", intake.id)
    return Outcome(intake, {})


async def abandon(uow: UnitOfWork, patient: Patient, actor: str, reason: str) -> Intake | None:
    """End the patient's intake in progress without a triage (an admin blocked them): it is
    cancelled and audited with ``reason``, so it can never open a case. None if none was open."""
    intake = await open_intake(uow, patient)
    if intake is None:
        return None
    answers = await uow.intakes.answers(intake)
    intake.state = State.CANCELLED.value
    intake.completed_at = utcnow()
    await uow.intakes.save_answers(intake, answers)
    await uow.audit.record(
        actor, "intake.cancel", "intake", intake.id, {"state": "cancelled", "reason": reason}
    )
    return intake


async def _move(
    uow: UnitOfWork,
    intake: Intake,
    answers: dict[str, Any],
    trigger: str,
    q: Questionnaire,
    jurisdiction: str,
) -> None:
    """Fire ``trigger``, keep the bookkeeping of the answers in step, save."""
    was = State(intake.state)
    new = next_state(was, trigger, snapshot(q, answers, jurisdiction=jurisdiction))
    if trigger.startswith("edit_"):
        answers["returning"] = True
    if new is State.SUMMARY:
        answers.pop("returning", None)
    if trigger == "back" and new is State.FOLLOW_UP and was is State.FOLLOW_UP:
        answers["question_index"] = max(0, int(answers.get("question_index", 0)) - 1)
    elif trigger == "answer_question" and new is State.FOLLOW_UP:
        answers["question_index"] = int(answers.get("question_index", 0)) + 1
    elif new is State.FOLLOW_UP and was is not State.FOLLOW_UP:
        count = len(questions_of(q, answers))
        # Back from the symptoms lands on the last question; forward starts at the first.
        answers["question_index"] = count - 1 if trigger == "back" else 0
    new = _skip_prefilled(q, new, answers, jurisdiction)
    _prune(q, answers)
    intake.state = new.value
    await uow.intakes.save_answers(intake, answers)


async def take_complaint(
    uow: UnitOfWork,
    intake: Intake,
    answers: dict[str, Any],
    category: str,
    q: Questionnaire,
    jurisdiction: str = "generic",
) -> None:
    """The complaint chosen other than by its button (the body map): a new one starts its
    checklist, questions and symptoms afresh, and the intake moves on as after the button."""
    if answers.get("category") != category:
        for key in ("red_flags_cleared", "followup", "associated", "question_index"):
            answers.pop(key, None)
    answers["category"] = category
    await _move(uow, intake, answers, "choose_complaint", q, jurisdiction)


# What a typed first message already answered: the step, the trigger that leaves it, and the
# answer's key. Each prefilled answer is used once, so Back shows the question again.
_PREFILL_STEPS = {
    State.COMPLAINT: ("choose_complaint", "category"),
    State.ONSET: ("give_onset", "duration"),
    State.SEVERITY: ("give_severity", "severity"),
}


def _skip_prefilled(
    q: Questionnaire, new: State, answers: dict[str, Any], jurisdiction: str
) -> State:
    """Move past the steps the patient's own words already answered (category, onset,
    severity), each through the machine's own trigger."""
    prefill: dict[str, Any] = answers.get("prefill") or {}
    while new in _PREFILL_STEPS and _PREFILL_STEPS[new][1] in prefill:
        trigger, key = _PREFILL_STEPS[new]
        value = prefill.pop(key)
        if key == "category":
            chosen = q.categories.get(str(value))
            if chosen is None or not chosen.offered_for(who_of(answers)):
                break  # e.g. "cough" for a child: the patient picks from the child's list
        answers[key] = value
        new = next_state(new, trigger, snapshot(q, answers, jurisdiction=jurisdiction))
    if not prefill:
        answers.pop("prefill", None)
    return new


def _check(intake: Intake, expected: State | tuple[State, ...]) -> None:
    states = expected if isinstance(expected, tuple) else (expected,)
    if State(intake.state) not in states:
        raise StaleButton(f"button for {states} in {intake.state}")


async def press(
    uow: UnitOfWork,
    patient: Patient,
    q: Questionnaire,
    tag: str,
    action: str,
    value: str,
    *,
    jurisdiction: str = "generic",
    case_expiry_hours: float = 24.0,
    clinic_tz: str = "UTC",
) -> Outcome:
    """A button of the intake: ``tag`` names the intake it was shown for."""
    intake = await open_intake(uow, patient)
    if intake is None or not intake.id.startswith(tag) or not tag:
        raise StaleButton("no open intake for this button")
    answers = await uow.intakes.answers(intake)
    out = Outcome(intake, answers)
    state = State(intake.state)
    category = q.categories.get(str(answers.get("category", "")))

    async def move(trigger: str) -> Outcome:
        await _move(uow, intake, answers, trigger, q, jurisdiction)
        return out

    if action == "back":
        return await move("back")
    if action == "cancel":
        await move("cancel")
        await _finish(uow, patient, intake, answers, "intake.cancel")
        return out
    if action == "subj":
        _check(intake, State.SUBJECT)
        if value not in ("self", "other"):
            raise StaleButton("bad subject")
        answers["subject"] = value
        answers.pop("age_band", None)
        answers.pop("sex", None)
        if value == "self":
            # The rules, and what is offered and asked, depend on age and sex: both come from
            # the profile (unknown ones rule nothing out).
            birth_year = await uow.patients.get_field(patient, "birth_year")
            band = age_band_for(birth_year, q.age_bands)
            if band is not None:
                answers["age_band"] = band
            sex = await uow.patients.get_field(patient, "sex")
            if sex in SEX_VALUES:
                answers["sex"] = sex
        return await move("choose_subject")
    if action == "pre":
        # "Change": the patient's words stay as their own description; nothing is prefilled.
        _check(intake, State.SUBJECT)
        if value != "change" or "prefill" not in answers:
            raise StaleButton("nothing prefilled")
        answers.pop("prefill", None)
        await uow.intakes.save_answers(intake, answers)
        return out
    if action == "age":
        _check(intake, State.AGE_BAND)
        if value not in q.age_bands:
            raise StaleButton("bad age band")
        answers["age_band"] = value
        return await move("give_age_band")
    if action == "sex":
        _check(intake, State.SEX)
        if value not in SEX_VALUES:
            raise StaleButton("bad sex")
        answers["sex"] = value
        return await move("give_sex")
    if action == "cat":
        _check(intake, State.COMPLAINT)
        chosen = q.categories.get(value)
        if chosen is None or not chosen.offered_for(who_of(answers)):
            raise StaleButton("bad category")
        if answers.get("category") != value:
            # A new complaint: its checklist, questions and symptoms start afresh.
            for key in ("red_flags_cleared", "followup", "associated", "question_index"):
                answers.pop(key, None)
        answers["category"] = value
        return await move("choose_complaint")
    if action == "dur":
        _check(intake, State.ONSET)
        if value not in q.durations:
            raise StaleButton("bad duration")
        answers["duration"] = value
        return await move("give_onset")
    if action == "sev":
        _check(intake, State.SEVERITY)
        if not value.isdigit() or not 0 <= int(value) <= 10:
            raise StaleButton("bad severity")
        answers["severity"] = int(value)
        return await move("give_severity")
    if action == "flag":
        _check(intake, State.RED_FLAGS)
        if value == "none":
            answers["red_flags_cleared"] = True
            return await move("no_red_flags")
        # Any item of the complaint's checklist is taken, even one no longer shown to this
        # person (an older message's button): a warning sign someone ticks is never refused.
        if category is None or value not in category.red_flags:
            raise StaleButton("bad red flag")
        await stop_for_red_flag(uow, patient, value, source="checklist", q=q, intake=intake)
        out.answers = await uow.intakes.answers(intake)
        return out
    if action.startswith("q") and action[1:].isdigit():
        _check(intake, State.FOLLOW_UP)
        index = int(action[1:])
        if category is None or index != int(answers.get("question_index", 0)):
            raise StaleButton("another question")
        questions = questions_of(q, answers)
        question = questions[index] if index < len(questions) else None
        if question is None or value not in question.options:
            raise StaleButton("bad option")
        answers.setdefault("followup", {})[question.id] = value
        return await move("answer_question")
    if action == "sym":
        _check(intake, State.ASSOCIATED)
        chosen_syms: list[str] = list(answers.get("associated", []))
        if value in ("done", "none"):
            if value == "none":
                chosen_syms = []
            answers["associated"] = chosen_syms
            return await move("give_associated")
        if category is None or value not in q.symptoms_for(category, who_of(answers)):
            raise StaleButton("bad symptom")
        if value in chosen_syms:
            chosen_syms.remove(value)
        else:
            chosen_syms.append(value)
        answers["associated"] = chosen_syms
        await uow.intakes.save_answers(intake, answers)
        out.edited_keyboard = True
        return out
    if action == "hist":
        _check(intake, tuple(HISTORY_STATES))
        name = HISTORY_STATES[state]
        if value == "none":
            answers[name] = "none"
        elif value == "keep":
            known = (await uow.patients.history(patient)).get(name)
            if answers.get("subject") == "other" or not known:
                raise StaleButton("nothing to keep")
            answers[name] = known
        else:
            raise StaleButton("bad history answer")
        return await move(f"give_{name}")
    if action == "att":
        _check(intake, State.ATTACHMENTS)
        if value not in ("done", "skip"):
            raise StaleButton("bad attachments answer")
        answers.setdefault("attachments", [])
        return await move("finish_attachments")
    if action == "ok":
        _check(intake, State.SUMMARY)
        result = decide(q, answers)
        answers["pending_disposition"] = result.disposition
        await move("confirm")
        if State(intake.state) is State.TRIAGED:
            await _complete(uow, patient, intake, answers, result, case_expiry_hours, clinic_tz)
        else:
            await uow.intakes.save_answers(intake, answers)
        return out
    if action == "fix":
        _check(intake, State.SUMMARY)
        if value not in SECTIONS:
            raise StaleButton("bad section")
        return await move(f"edit_{value}")
    if action == "dx":
        _check(intake, State.DIAGNOSIS_CHECK)
        if value not in ("yes", "no"):
            raise StaleButton("bad diagnosis answer")
        answers["offline_diagnosis"] = value == "yes"
        result = decide(q, answers)
        await move("answer_diagnosis")
        await _complete(uow, patient, intake, answers, result, case_expiry_hours, clinic_tz)
        return out
    raise StaleButton(f"unknown action {action}")


def _age_band(answers: dict[str, Any]) -> str | None:
    band = answers.get("age_band")
    return str(band) if band else None


# Whole years of age -> age band id (the ids are fixed by the questionnaire schema).
_BANDS_BY_AGE = ((65, "senior_65"), (18, "adult_18_64"), (13, "teen_13_17"),
                 (6, "child_6_12"), (1, "child_1_5"), (0, "infant_3_12m"))  # fmt: skip


def age_band_for(
    birth_year: str | None, bands: tuple[str, ...], year: int | None = None
) -> str | None:
    """The patient's own age band from their year of birth (None if unknown)."""
    if not birth_year or not birth_year.isdigit():
        return None
    age = (year or utcnow().year) - int(birth_year)
    for low, band in _BANDS_BY_AGE:
        if age >= low and band in bands:
            return band
    return None


def decide(q: Questionnaire, answers: dict[str, Any]) -> Triage:
    """Triage the answers (red flags decide first)."""
    flag = answers.get("red_flag")
    if flag:
        return for_red_flag(q, str(flag), answers.get("category"))
    return triage(q, subject_facts(answers, has_history(answers)))


async def _complete(
    uow: UnitOfWork,
    patient: Patient,
    intake: Intake,
    answers: dict[str, Any],
    result: Triage,
    case_expiry_hours: float = 24.0,
    clinic_tz: str = "UTC",
) -> None:
    answers.pop("pending_disposition", None)
    answers["triage"] = {
        "disposition": result.disposition,
        "department": result.department,
        "reasons": list(result.reasons),
    }
    intake.disposition = result.disposition
    intake.department = result.department
    if answers.get("subject") != "other":
        # The patient's own history is kept for their next intake.
        for name in HISTORY_STATES.values():
            value = answers.get(name)
            if value:
                await uow.patients.set_field(patient, name, value)
    await _finish(uow, patient, intake, answers, "intake.complete")
    await consultation.request_for_intake(
        uow, patient, intake, answers, now=utcnow(), expiry_hours=case_expiry_hours,
        clinic_tz=clinic_tz,
    )  # fmt: skip


async def _finish(
    uow: UnitOfWork, patient: Patient, intake: Intake, answers: dict[str, Any], action: str
) -> None:
    intake.completed_at = utcnow()
    await uow.intakes.save_answers(intake, answers)
    details: dict[str, Any] = {"state": intake.state}
    if intake.disposition:
        details["disposition"] = intake.disposition
    await uow.audit.record(Actor(patient.id).ref, action, "intake", intake.id, details)


async def text(
    uow: UnitOfWork,
    patient: Patient,
    q: Questionnaire,
    raw: str,
    *,
    jurisdiction: str = "generic",
) -> Outcome | None:
    """A typed message while an intake is open (None if none is); the red-flag check has
    already run on it."""
    intake = await open_intake(uow, patient)
    if intake is None:
        return None
    answers = await uow.intakes.answers(intake)
    out = Outcome(intake, answers)
    state = State(intake.state)
    if state in (State.SUBJECT, State.COMPLAINT):
        said = parse_free_text(raw)
        answers["complaint_text"] = said
        seen = understand.understand(said)
        prefill = prefill_of(seen)
        if state is State.SUBJECT:
            # Typed instead of choosing "me / someone else": shown back for one-tap confirm.
            if prefill:
                answers["prefill"] = prefill
            await uow.intakes.save_answers(intake, answers)
            out.ask_safety = redflag_model.possible(said) or (
                not prefill and understand.health_related(said)
            )
            if not prefill and not out.ask_safety:
                out.notice = "intake.complaint.noted"
            return out
        # Words the lexicon did not flag but that read like an emergency: asked first.
        out.ask_safety = redflag_model.possible(said)
        chosen = q.categories.get(str(prefill.pop("category", "")))
        if chosen is not None and chosen.offered_for(who_of(answers)):
            if answers.get("category") != chosen.id:
                for key in ("red_flags_cleared", "followup", "associated", "question_index"):
                    answers.pop(key, None)
            answers["category"] = chosen.id
            # What the body map already said (its severity) stays unless the words say it.
            answers["prefill"] = {**(answers.get("prefill") or {}), **prefill}
            await _move(uow, intake, answers, "choose_complaint", q, jurisdiction)
            return out
        await uow.intakes.save_answers(intake, answers)
        out.notice = None if out.ask_safety else "intake.complaint.noted"
        return out
    if state is State.ONSET:
        duration = understand.parse_duration(raw)
        if duration is not None and duration in q.durations:
            answers["duration"] = duration
            await _move(uow, intake, answers, "give_onset", q, jurisdiction)
            return out
    if state is State.SEVERITY:
        try:
            answers["severity"] = parse_severity(raw)
        except BadAnswer:
            level = understand.parse_severity_phrase(raw)
            if level is None:
                if understand.health_related(clean_text(raw)):
                    return await _extra_words(uow, intake, answers, raw, out)
                raise  # "a lot", "11": the severity question's own hint
            answers["severity"] = level
        await _move(uow, intake, answers, "give_severity", q, jurisdiction)
        return out
    if state in HISTORY_STATES:
        name = HISTORY_STATES[state]
        answers[name] = parse_free_text(raw)
        await _move(uow, intake, answers, f"give_{name}", q, jurisdiction)
        return out
    if state is State.ATTACHMENTS:
        raise BadAnswer("intake.error.attachments_expected")
    return await _extra_words(uow, intake, answers, raw, out)


async def _extra_words(
    uow: UnitOfWork, intake: Intake, answers: dict[str, Any], raw: str, out: Outcome
) -> Outcome:
    """Words typed at a button question that are not its answer: health words are kept for
    the doctor (encrypted with the answers) and the patient is asked whether it is an
    emergency; anything else gets "please use the buttons"."""
    said = clean_text(raw)
    if not understand.health_related(said):
        raise BadAnswer("intake.error.use_buttons")
    notes: list[str] = list(answers.get("notes", []))
    if len(notes) < NOTES_MAX:
        notes.append(said[:TEXT_MAX])
    answers["notes"] = notes
    await uow.intakes.save_answers(intake, answers)
    out.ask_safety = True
    return out


def prefill_of(seen: understand.Understood) -> dict[str, Any]:
    """What an intake can take from the patient's words: the category (not "other", which
    says nothing), the onset and the severity."""
    prefill: dict[str, Any] = {}
    if seen.category and seen.category != "other":
        prefill["category"] = seen.category
        if seen.duration:
            prefill["duration"] = seen.duration
        if seen.severity is not None:
            prefill["severity"] = seen.severity
    return prefill


async def begin_from_text(
    uow: UnitOfWork, patient: Patient, q: Questionnaire, raw: str
) -> Outcome | None:
    """A first message in the patient's own words, with no intake open: an intake starts
    with those words kept as the complaint (encrypted) and, when they name a complaint, the
    category, onset and severity prefilled for the patient to confirm. None when the words
    are not health-related (nothing is stored)."""
    said = clean_text(raw)
    if not said or not understand.health_related(said):
        return None
    out = await begin(uow, patient, q)
    if out.resumed:
        return await text(uow, patient, q, said)
    prefill = prefill_of(understand.understand(said))
    out.answers["complaint_text"] = said[:TEXT_MAX]
    if prefill:
        out.answers["prefill"] = prefill
    # Nothing named, or words that read like an emergency the lexicon did not flag: "is this
    # an emergency?" first; "No" shows the intake with what was understood.
    out.ask_safety = not prefill or redflag_model.possible(said)
    await uow.intakes.save_answers(out.intake, out.answers)
    return out


async def media(
    uow: UnitOfWork, patient: Patient, kind: str, file_id: str, unique_id: str
) -> Outcome | None:
    """A photo, voice note, video note or document while an intake is open."""
    intake = await open_intake(uow, patient)
    if intake is None:
        return None
    answers = await uow.intakes.answers(intake)
    out = Outcome(intake, answers)
    if State(intake.state) is not State.ATTACHMENTS:
        raise BadAnswer("intake.error.media_not_now")
    files: list[dict[str, str]] = answers.setdefault("attachments", [])
    if len(files) >= ATTACHMENTS_MAX:
        raise BadAnswer("intake.error.too_many_files", max=ATTACHMENTS_MAX)
    if all(f["unique_id"] != unique_id for f in files):
        files.append({"kind": kind, "file_id": file_id, "unique_id": unique_id})
    await uow.intakes.save_answers(intake, answers)
    out.notice = "intake.attachments.received"
    out.notice_params = {"count": len(files)}
    return out


async def stop_for_red_flag(
    uow: UnitOfWork,
    patient: Patient,
    flag: str,
    *,
    source: str,
    q: Questionnaire,
    intake: Intake | None = None,
) -> Intake | None:
    """A red flag (ticked, or found in free text): the open intake stops as an emergency and
    the event is audited. Returns the intake it stopped, if any."""
    if flag not in redflags.registry():
        raise ValueError(f"unknown red flag {flag!r}")
    intake = intake or await open_intake(uow, patient)
    details: dict[str, Any] = {"source": source}
    if intake is not None and not is_final(intake):
        answers = await uow.intakes.answers(intake)
        answers["red_flag"] = flag
        answers["red_flag_source"] = source
        result = decide(q, answers)
        answers["triage"] = {
            "disposition": result.disposition,
            "department": result.department,
            "reasons": list(result.reasons),
        }
        intake.state = next_state(State(intake.state), "red_flag", Snapshot()).value
        intake.disposition = result.disposition
        intake.department = result.department
        intake.completed_at = utcnow()
        await uow.intakes.save_answers(intake, answers)
        details["intake"] = intake.id
    else:
        intake = None
    # The flag id itself is health data; the audit log carries only that one was raised.
    await uow.audit.record(Actor(patient.id).ref, "redflag.raised", "patient", patient.id, details)
    return intake


def started_at(intake: Intake) -> datetime:
    """When the intake began, timezone-aware."""
    at = intake.created_at
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def history(uow: UnitOfWork, patient: Patient) -> list[tuple[Intake, dict[str, Any]]]:
    """The patient's intakes, newest first, with their answers; the access is audited."""
    items = await uow.intakes.for_patient(patient.id)
    await uow.audit.record(Actor(patient.id).ref, "intake.list", "patient", patient.id)
    return [(item, await uow.intakes.answers(item)) for item in items]


async def find(
    uow: UnitOfWork, patient: Patient, tag: str
) -> tuple[Intake, dict[str, Any]] | None:
    """One of the patient's own intakes by the start of its id; the access is audited."""
    if not tag:
        return None
    for item in await uow.intakes.for_patient(patient.id, limit=500):
        if item.id.startswith(tag):
            await uow.audit.record(Actor(patient.id).ref, "intake.view", "intake", item.id)
            return item, await uow.intakes.answers(item)
    return None
