"""What the patient sees at each intake step, and the summary (also used for clinicians)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo

from bot.settings import Settings
from flows import bodymap, redflags
from flows.domain import Intake
from flows.intake import HISTORY_STATES, SECTIONS, Outcome, State, questions_of, who_of
from flows.onboarding import SEX_VALUES
from flows.outbox import PRIORITY_URGENT, Replier
from flows.questionnaire import Questionnaire
from locales import DEFAULT, Html, Translator, catalog


class IntakeCB(CallbackData, prefix="ik"):
    """A button of one intake (``tag``: the start of its id, so old buttons are recognised)."""

    tag: str
    action: str
    value: str = ""


HISTORY_QUESTIONS = {
    "conditions": ("intake.ask_conditions", "intake.ask_conditions.known"),
    "medicines": ("intake.ask_medicines", "intake.ask_medicines.known"),
    "allergies": ("intake.ask_allergies", "intake.ask_allergies.known"),
}


class CheckbackCB(CallbackData, prefix="chk"):
    """Ask me again in N days (``set``), or how I feel now (``ans``), for one intake."""

    tag: str
    action: str
    value: str = ""


class SafetyCB(CallbackData, prefix="sf"):
    """The answer to "is this an emergency?" (only "yes" is a callback of its own; "no" starts
    or resumes the intake)."""

    answer: str


def _cb_button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def checkback_offer(tr: Translator, intake: Intake) -> InlineKeyboardMarkup:
    """Tomorrow / in 3 days / no thanks."""
    tag = tag_of(intake)
    options = (("1", "checkback.offer.tomorrow"), ("3", "checkback.offer.three_days"),
               ("0", "checkback.offer.no"))  # fmt: skip
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_cb_button(tr.plain(label), CheckbackCB(tag=tag, action="set", value=v))]
            for v, label in options
        ]
    )


def checkback_answers(tr: Translator, intake: Intake) -> InlineKeyboardMarkup:
    """Better / about the same / worse."""
    tag = tag_of(intake)
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _cb_button(
                    tr.plain(f"checkback.answer.{v}"), CheckbackCB(tag=tag, action="ans", value=v)
                )
            ]
            for v in ("better", "same", "worse")
        ]
    )


def tag_of(intake: Intake) -> str:
    """The short intake tag carried in callback data (fits Telegram's 64 bytes)."""
    return intake.id[:8]


def _button(
    text: str, intake: Intake | None, action: str, value: str = ""
) -> InlineKeyboardButton:
    tag = tag_of(intake) if intake is not None else ""
    return InlineKeyboardButton(
        text=text, callback_data=IntakeCB(tag=tag, action=action, value=value).pack()
    )


def _rows(buttons: list[InlineKeyboardButton], width: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


def begin_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """One button that starts an intake."""
    return InlineKeyboardMarkup(
        inline_keyboard=[[_button(tr.plain("intake.begin"), None, "begin")]]
    )


def _nav(tr: Translator, intake: Intake, back: bool = True) -> list[InlineKeyboardButton]:
    row = []
    if back:
        row.append(_button(tr.plain("intake.back"), intake, "back"))
    row.append(_button(tr.plain("intake.cancel"), intake, "cancel"))
    return row


def _keyboard(
    tr: Translator,
    intake: Intake,
    buttons: list[InlineKeyboardButton],
    width: int,
    *,
    back: bool = True,
    extra: list[list[InlineKeyboardButton]] | None = None,
) -> InlineKeyboardMarkup:
    rows = _rows(buttons, width) + (extra or []) + [_nav(tr, intake, back)]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _prefill_view(
    tr: Translator, q: Questionnaire, intake: Intake, answers: dict[str, Any]
) -> tuple[str, InlineKeyboardMarkup]:
    """What Careline read in the patient's own words, to confirm (about me / someone else)
    or change with one tap."""
    prefill: dict[str, Any] = answers["prefill"]
    parts = [tr.plain(f"intake.category.{prefill['category']}")]
    if prefill.get("duration") in q.durations:
        parts.append(tr.plain(f"intake.duration.{prefill['duration']}"))
    if prefill.get("severity") is not None:
        parts.append(tr.plain("intake.prefill.severity", severity=prefill["severity"]))
    said = str(answers.get("complaint_text", ""))
    buttons = [
        _button(tr.plain("intake.prefill.self"), intake, "subj", "self"),
        _button(tr.plain("intake.prefill.other"), intake, "subj", "other"),
        _button(tr.plain("intake.prefill.change"), intake, "pre", "change"),
    ]
    text = tr("intake.prefill.ask", said=said[:300], summary=" · ".join(parts))
    return text, _keyboard(tr, intake, buttons, 1, back=False)


def safety_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """Is this an emergency? [Yes — what to do now] [No — describe my problem]."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_cb_button(tr.plain("safety.yes"), SafetyCB(answer="yes"))],
            [_button(tr.plain("safety.no"), None, "begin")],
        ]
    )


async def ask_safety(reply: Replier, tr: Translator, settings: Settings) -> None:
    """When Careline is not sure what the words mean: ask whether it is an emergency, with
    the emergency number in the question itself (once per update)."""
    if reply.safety_asked:
        return
    reply.safety_asked = True
    await reply.text(
        tr("safety.ask", emergency_number=settings.local_emergency_number),
        safety_keyboard(tr),
    )


def step_view(
    tr: Translator,
    q: Questionnaire,
    intake: Intake,
    answers: dict[str, Any],
    known_history: dict[str, str | None],
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The question and keyboard of the intake's current step."""
    state = State(intake.state)
    category = q.categories.get(str(answers.get("category", "")))
    if state is State.SUBJECT and answers.get("prefill"):
        return _prefill_view(tr, q, intake, answers)
    if state is State.SUBJECT:
        buttons = [
            _button(tr.plain("intake.subject.self"), intake, "subj", "self"),
            _button(tr.plain("intake.subject.other"), intake, "subj", "other"),
        ]
        return tr("intake.ask_subject"), _keyboard(tr, intake, buttons, 1, back=False)
    if state is State.AGE_BAND:
        buttons = [_button(tr.plain(f"intake.age.{a}"), intake, "age", a) for a in q.age_bands]
        return tr("intake.ask_age_band"), _keyboard(tr, intake, buttons, 2)
    if state is State.SEX:
        buttons = [_button(tr.plain(f"sex.{v}"), intake, "sex", v) for v in SEX_VALUES]
        return tr("intake.ask_sex"), _keyboard(tr, intake, buttons, 2)
    who = who_of(answers)
    if state is State.COMPLAINT:
        buttons = [
            _button(tr.plain(f"intake.category.{c.id}"), intake, "cat", c.id)
            for c in q.offered(who)
        ]
        return tr("intake.ask_complaint"), _keyboard(tr, intake, buttons, 2)
    if state is State.ONSET:
        buttons = [
            _button(tr.plain(f"intake.duration.{d}"), intake, "dur", d) for d in q.durations
        ]
        return tr("intake.ask_onset"), _keyboard(tr, intake, buttons, 2)
    if state is State.SEVERITY:
        buttons = [_button(str(n), intake, "sev", str(n)) for n in range(11)]
        return tr("intake.ask_severity"), _keyboard(tr, intake, buttons, 6)
    if state is State.RED_FLAGS:
        assert category is not None
        flags = q.checklist(category, who)
        items = Html("\n".join(f"{i}. {tr(f'redflag.{f}')}" for i, f in enumerate(flags, 1)))
        buttons = [
            _button(f"{i}. {tr.plain(f'redflag.{f}.button')}", intake, "flag", f)
            for i, f in enumerate(flags, 1)
        ]
        none = [[_button(tr.plain("intake.red_flags.none"), intake, "flag", "none")]]
        return tr("intake.ask_red_flags", items=items), _keyboard(
            tr, intake, buttons, 1, extra=none
        )
    if state is State.FOLLOW_UP:
        questions = questions_of(q, answers)
        assert questions
        index = min(int(answers.get("question_index", 0)), len(questions) - 1)
        question = questions[index]
        buttons = [
            _button(tr.plain(f"intake.q.{question.id}.{o}"), intake, f"q{index}", o)
            for o in question.options
        ]
        return tr(f"intake.q.{question.id}"), _keyboard(tr, intake, buttons, 2)
    if state is State.ASSOCIATED:
        assert category is not None
        ticked = set(answers.get("associated", []))
        buttons = [
            _button(
                ("✓ " if s in ticked else "") + tr.plain(f"intake.symptom.{s}"), intake, "sym", s
            )
            for s in q.symptoms_for(category, who)
        ]
        finish = [
            [
                _button(tr.plain("intake.associated.done"), intake, "sym", "done"),
                _button(tr.plain("intake.associated.none"), intake, "sym", "none"),
            ]
        ]
        return tr("intake.ask_associated"), _keyboard(tr, intake, buttons, 2, extra=finish)
    if state in HISTORY_STATES:
        name = HISTORY_STATES[state]
        known = None if answers.get("subject") == "other" else known_history.get(name)
        buttons = []
        ask, ask_known = HISTORY_QUESTIONS[name]
        if known and known != "none":
            text = tr(ask_known, known=known)
            buttons.append(_button(tr.plain("intake.history.keep"), intake, "hist", "keep"))
        else:
            text = tr(ask)
        buttons.append(_button(tr.plain("intake.history.none"), intake, "hist", "none"))
        return text, _keyboard(tr, intake, buttons, 1)
    if state is State.ATTACHMENTS:
        count = len(answers.get("attachments", []))
        action = "done" if count else "skip"
        label = "intake.attachments.done" if count else "intake.attachments.skip"
        buttons = [_button(tr.plain(label), intake, "att", action)]
        return tr("intake.ask_attachments"), _keyboard(tr, intake, buttons, 1)
    if state is State.SUMMARY:
        summary = summary_text(tr, q, answers, for_patient=True)
        text = Html(f"{tr('intake.summary.title')}\n\n{summary}\n\n{tr('intake.summary.ask')}")
        buttons = [_button(tr.plain("intake.summary.confirm"), intake, "ok")]
        fixes = [
            _button(tr.plain(f"intake.fix.{s}"), intake, "fix", s)
            for s in SECTIONS
            if s != "details" or category is not None
        ]
        return text, _keyboard(tr, intake, buttons, 1, extra=_rows(fixes, 2))
    if state is State.DIAGNOSIS_CHECK:
        buttons = [
            _button(tr.plain("intake.diagnosis.yes"), intake, "dx", "yes"),
            _button(tr.plain("intake.diagnosis.no"), intake, "dx", "no"),
        ]
        return tr("intake.ask_diagnosis"), _keyboard(tr, intake, buttons, 1)
    return tr("intake.finished"), None


def who_text(tr: Translator, answers: dict[str, Any], *, for_patient: bool = False) -> Html:
    """Whom the intake is about: in the patient's own words ("Me", "someone you care for")
    only for the patient; a doctor, a referral slip or a record reads "the patient" or
    "someone the patient cares for ..., answered by the patient on their behalf"."""
    if answers.get("subject") != "other":
        return tr("intake.subject.self" if for_patient else "intake.summary.who_patient")
    return tr(
        "intake.summary.who_other" if for_patient else "intake.summary.who_proxy",
        age=tr.plain(f"intake.age.{answers.get('age_band')}"),
        sex=tr.plain(f"sex.{answers.get('sex')}"),
    )


def question_label(tr: Translator, question_id: str) -> Html:
    """A follow-up question's short label in a summary (the question as asked speaks to the
    patient: "... the one that worries you most"); the question itself if it has none."""
    label = f"intake.summary.q.{question_id}"
    return tr(label) if catalog(DEFAULT).get(label) else tr(f"intake.q.{question_id}")


def summary_text(
    tr: Translator, q: Questionnaire, answers: dict[str, Any], *, for_patient: bool = False
) -> str:
    """The intake as a short structured summary, in ``tr``'s language. ``for_patient``: the
    patient reading their own intake; otherwise it is worded for a doctor or a referral slip
    (never "Me")."""
    lines: list[str] = []

    def line(label: str, value: str) -> None:
        lines.append(f"<b>{tr(label)}</b> {value}")

    line("intake.summary.subject", who_text(tr, answers, for_patient=for_patient))
    category = q.categories.get(str(answers.get("category", "")))
    if category is not None:
        line("intake.summary.complaint", tr(f"intake.category.{category.id}"))
    marks = bodymap.stored_marks(answers)
    if marks:
        line("bodymap.summary.location", marks_text(tr, marks))
    if answers.get("complaint_text"):
        line("intake.summary.in_own_words", tr("intake.quoted", text=answers["complaint_text"]))
    if answers.get("duration"):
        line("intake.summary.onset", tr(f"intake.duration.{answers['duration']}"))
    if answers.get("severity") is not None:
        line("intake.summary.severity", tr("intake.summary.severity_value", n=answers["severity"]))
    if answers.get("red_flag"):
        line("intake.summary.red_flag", tr(f"redflag.{answers['red_flag']}"))
    elif answers.get("red_flags_cleared"):
        line("intake.summary.red_flag", tr("intake.summary.red_flags_none"))
    if category is not None:
        for question in category.questions:
            chosen = answers.get("followup", {}).get(question.id)
            if chosen:
                lines.append(
                    f"<b>{question_label(tr, question.id)}</b> "
                    f"{tr(f'intake.q.{question.id}.{chosen}')}"
                )
    if "associated" in answers:
        syms = [tr(f"intake.symptom.{s}") for s in answers["associated"]]
        line("intake.summary.associated", Html(", ".join(syms)) or tr("intake.summary.none"))
    for name in HISTORY_STATES.values():
        value = answers.get(name)
        if value:
            shown = (
                tr("intake.summary.none") if value == "none" else tr("intake.quoted", text=value)
            )
            line(f"intake.summary.{name}", shown)
    if "attachments" in answers:
        line("intake.summary.attachments", str(len(answers["attachments"])))
    if answers.get("offline_diagnosis") is not None:
        yes_no = "intake.diagnosis.yes" if answers["offline_diagnosis"] else "intake.diagnosis.no"
        line("intake.summary.offline_diagnosis", tr(yes_no))
    result = answers.get("triage")
    if result:
        line("intake.summary.outcome", tr(f"disposition.{result['disposition']}"))
        line("intake.summary.department", tr(f"dept.{result['department']}"))
        reasons = [_reason(tr, r) for r in result.get("reasons", [])]
        if reasons:
            line("intake.summary.reasons", Html("; ".join(reasons)))
    return "\n".join(lines)


def _reason(tr: Translator, reason: str) -> str:
    if reason.startswith("redflag:"):
        return tr(f"redflag.{reason.split(':', 1)[1]}")
    return tr(f"triage.reason.{reason}")


async def show(
    reply: Replier,
    tr: Translator,
    q: Questionnaire,
    out: Outcome,
    known_history: dict[str, str | None],
    settings: Settings,
    *,
    case_opened: bool = False,
) -> None:
    """Send what the patient should see now: the next question, or the result
    (``case_opened``: the intake became a consultation case)."""
    state = out.state
    if out.ask_safety and state not in (State.TRIAGED, State.CANCELLED, State.EMERGENCY):
        await ask_safety(reply, tr, settings)
        return
    if state is State.TRIAGED:
        await show_result(reply, tr, out.intake, out.answers, settings, case_opened=case_opened)
        return
    if state is State.CANCELLED:
        await reply.text(tr("intake.cancelled"), begin_keyboard(tr))
        return
    if state is State.EMERGENCY:
        flag = out.answers.get("red_flag")
        await show_emergency(reply, tr, flag, settings)
        return
    text, markup = step_view(tr, q, out.intake, out.answers, known_history)
    url = bodymap_url(settings, tr, out.intake) if state is State.COMPLAINT else None
    if url is not None and markup is not None:
        button = InlineKeyboardButton(text=tr.plain("bodymap.button"), web_app=WebAppInfo(url=url))
        rows = list(markup.inline_keyboard)
        markup = InlineKeyboardMarkup(inline_keyboard=[[button], *rows])
    await reply.text(text, markup)


BODYMAP_PATH = "/m/bodymap"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in _LOOPBACK or host.startswith("127.")


def bodymap_url(settings: Settings, tr: Translator, intake: Intake) -> str | None:
    """Where the "Show on a body" button opens the body map for this intake, or None when
    it cannot be offered: Telegram opens Mini Apps only over HTTPS, so ``public_url`` must be
    https — except with a Bot API emulator on this machine (the sandbox, tests), where the
    page is served on loopback too."""
    base = settings.public_url.rstrip("/")
    local = _loopback(base) and _loopback(settings.telegram_api_url)
    if not base.lower().startswith("https://") and not local:
        return None
    return f"{base}{BODYMAP_PATH}?{urlencode({'lang': tr.locale, 'i': tag_of(intake)})}"


def marks_text(tr: Translator, marks: Sequence[bodymap.Mark]) -> Html:
    """The marked regions in a line, in ``tr``'s language: "Left side of the chest — 7/10,
    sharp; Left elbow and forearm — 4/10"."""
    parts = []
    for mark in marks:
        region = tr.plain(f"bodymap.region.{mark.region}")
        if mark.type:
            kind = tr.plain(f"bodymap.type.{mark.type}")
            parts.append(tr("bodymap.mark", region=region, intensity=mark.intensity, type=kind))
        else:
            parts.append(tr("bodymap.mark.no_type", region=region, intensity=mark.intensity))
    return Html("; ".join(parts))


async def show_result(
    reply: Replier,
    tr: Translator,
    intake: Intake,
    answers: dict[str, Any],
    settings: Settings,
    *,
    case_opened: bool = False,
) -> None:
    """The disposition, in plain words, as one message: self-care advice carries the
    check-back offer's buttons; when the intake became a case, the case's own notice (its
    number, queue and wait: ``consult.opened``) is the confirmation, so a routine result adds
    nothing and an urgent one only the urgency and why."""
    result = answers.get("triage") or {}
    disposition = result.get("disposition", "consultation")
    department = tr.plain(f"dept.{result.get('department', 'general')}")
    reasons = Html("; ".join(_reason(tr, r) for r in result.get("reasons", [])) or "—")
    emergency = settings.local_emergency_number
    if disposition in ("emergency_ambulance", "emergency"):
        await reply.text(
            tr(f"intake.result.{disposition}", emergency_number=emergency, reasons=reasons),
            priority=PRIORITY_URGENT,
        )
        return
    if disposition == "self_care":
        advice = tr(f"selfcare.{answers.get('category')}")
        text = tr("intake.result.self_care", advice=advice, emergency_number=emergency)
        offer = tr("checkback.offer")
        await reply.text(Html(f"{text}\n\n<b>{offer}</b>"), checkback_offer(tr, intake))
        return
    if settings.jurisdiction.value == "cn" and answers.get("offline_diagnosis") is False:
        await reply.text(tr("intake.result.cn_in_person", department=department, reasons=reasons))
        return
    if case_opened:
        if disposition == "consultation_24":
            await reply.text(tr("intake.result.consultation_24.case", reasons=reasons))
        return
    await reply.text(
        tr(
            f"intake.result.{disposition}",
            department=department,
            reasons=reasons,
            emergency_number=emergency,
        )
    )


async def show_emergency(
    reply: Replier, tr: Translator, flag: str | None, settings: Settings
) -> None:
    """Emergency instructions, first in the queue; crisis-line wording for self-harm."""
    number = settings.local_emergency_number
    info = redflags.registry().get(flag or "")
    if info is not None and info.crisis:
        if settings.crisis_line:
            text = tr(
                "emergency.crisis.line", emergency_number=number, crisis_line=settings.crisis_line
            )
        else:
            text = tr("emergency.crisis", emergency_number=number)
    elif info is not None and info.disposition == "emergency":
        text = tr("emergency.go_now", emergency_number=number, what=tr(f"redflag.{flag}"))
    else:
        what = tr(f"redflag.{flag}") if info is not None else ""
        text = tr("emergency.call_now", emergency_number=number, what=what)
    await reply.text(text, priority=PRIORITY_URGENT)
