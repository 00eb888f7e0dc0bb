"""Follow-up check-ins in the patient bot: the scheduled question (and its recall), answers
typed or pressed, the end of a check-in (thanks, the doctor alerted, or the red-flag path),
and /readings with its chart."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import charts, followup, intake, weekly
from flows.domain import CheckIn, FollowUpPlan, Patient, ScheduledEvent, utcnow
from flows.onboarding import Step, step_of
from flows.outbox import PRIORITY_REPLY, PRIORITY_ROUTINE, PRIORITY_URGENT, Replier
from handlers.common.routes import RouteTable
from handlers.patient.refusals import refused, refused_button
from locales import Html, Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.checkins")


class CheckinCB(CallbackData, prefix="ci"):
    """A button of one question of a check-in (``q``: the question's index)."""

    action: str  # opt | tick | none | done | skip
    checkin: str
    q: int
    value: str = ""


class ReadingsCB(CallbackData, prefix="rd"):
    """The Chart button under /readings and the 7 / 30 / 90 days buttons under a chart
    (``days``: 30 on buttons from before there was a choice)."""

    action: str  # chart
    days: int = charts.DAYS


def days_keyboard(tr: Translator, current: int) -> InlineKeyboardMarkup:
    """7 / 30 / 90 days under the patient's chart, the shown one marked."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=("• " if n == current else "") + tr.plain("charts.days", n=n),
                    callback_data=ReadingsCB(action="chart", days=n).pack(),
                )
                for n in charts.DAY_CHOICES
            ]
        ]
    )


def _keyboard(
    tr: Translator, checkin: CheckIn, q: followup.Question, ticks: tuple[str, ...]
) -> InlineKeyboardMarkup | None:
    idx = followup.index_of(checkin) or 0

    def button(text: str, action: str, value: str = "") -> InlineKeyboardButton:
        data = CheckinCB(action=action, checkin=checkin.id, q=idx, value=value)
        return InlineKeyboardButton(text=text[:64], callback_data=data.pack())

    if q.type == "choice":
        rows = [[button(tr.plain(f"followup.q.{q.id}.{o}"), "opt", o)] for o in q.options]
        return InlineKeyboardMarkup(inline_keyboard=rows)
    if q.type == "checklist":
        rows = [
            [
                button(
                    ("☑ " if o in ticks else "☐ ") + tr.plain(f"followup.q.{q.id}.{o}"), "tick", o
                )
            ]
            for o in q.options
        ]
        rows.append(
            [
                button(tr.plain("followup.button.none"), "none"),
                button(tr.plain("followup.button.done"), "done"),
            ]
        )
        return InlineKeyboardMarkup(inline_keyboard=rows)
    if q.type == "text" and q.optional:
        return InlineKeyboardMarkup(
            inline_keyboard=[[button(tr.plain("followup.button.skip"), "skip")]]
        )
    return None


async def ask(
    reply: Replier,
    tr: Translator,
    plan: FollowUpPlan,
    checkin: CheckIn,
    q: followup.Question,
    *,
    ticks: tuple[str, ...] = (),
    mode: str = "on_time",
    priority: int = PRIORITY_REPLY,
) -> None:
    """One question of a check-in, under the plan's header (with late or recall wording)."""
    name = tr.plain(f"followup.template.{plan.template}")
    parts = [tr("followup.checkin.header", template=name, local=checkin.local)]
    if mode == "late":
        parts.append(tr("followup.checkin.late", local=checkin.local))
    elif mode == "recall":
        parts.append(tr("followup.checkin.recall", local=checkin.local))
    parts.append(tr(f"followup.q.{q.id}"))
    await reply.text(
        Html("\n\n".join(parts)), _keyboard(tr, checkin, q, ticks), protect=True, priority=priority
    )


# --- scheduled events --------------------------------------------------------------------------


async def send_checkin(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
    """``checkin`` event: the first question (or the "skipped" notice after a long
    downtime); the next occurrence is scheduled by the flow in the same transaction."""
    await weekly.ensure_planner(uow, now)  # the weekly summaries' hourly planner runs
    prompt = await followup.fire_checkin(uow, event, now)
    if prompt is None:
        return
    tr = Translator(prompt.patient.locale)
    reply = Replier(uow, "patient", prompt.patient.tg_user_id)
    if prompt.question is None:
        await reply.text(
            tr(
                "followup.checkin.missed",
                template=tr.plain(f"followup.template.{prompt.plan.template}"),
                local=prompt.checkin.local,
            ),
            priority=PRIORITY_ROUTINE,
        )
        return
    await ask(reply, tr, prompt.plan, prompt.checkin, prompt.question, mode=prompt.mode,
              priority=PRIORITY_ROUTINE)  # fmt: skip


async def send_recall(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
    """``checkin.recall`` event of a run of missed check-ins: the first re-asks the open
    check-in's question once, with recall wording (or nothing when a check-in prompt due
    within the hour carries it); the second alerts the doctor (the flow does it)."""
    prompt = await followup.fire_recall(uow, event, now)
    if prompt is None or prompt.question is None:
        return
    tr = Translator(prompt.patient.locale)
    reply = Replier(uow, "patient", prompt.patient.tg_user_id)
    await ask(reply, tr, prompt.plan, prompt.checkin, prompt.question, ticks=prompt.ticks,
              mode="recall", priority=PRIORITY_ROUTINE)  # fmt: skip


def scheduled() -> dict[str, Any]:
    """Scheduler handlers of check-ins and the weekly summary of readings, by event kind."""
    return {followup.KIND: send_checkin, followup.RECALL: send_recall, **weekly.scheduled()}


# --- answers -----------------------------------------------------------------------------------


async def _finish(
    uow: UnitOfWork,
    out: followup.Outcome,
    patient: Patient,
    tr: Translator,
    reply: Replier,
    settings: Settings,
    now: datetime,
) -> None:
    if out.question is not None:
        await ask(reply, tr, out.plan, out.checkin, out.question, ticks=out.ticks)
        return
    number = settings.local_emergency_number
    await followup.notify(uow, out, patient, now, number)
    if out.level == "danger":
        await reply.text(tr("followup.danger", emergency_number=number), priority=PRIORITY_URGENT)
    elif out.level == "alert":
        await reply.text(tr("followup.thanks_alert", emergency_number=number))
    else:
        await reply.text(tr("followup.thanks"))


async def _awaiting_text(
    message: Message, uow: UnitOfWork, patient: Patient | None, state: FSMContext
) -> bool | dict[str, Any]:
    """An onboarded patient with an open check-in waiting for a typed answer, outside an
    intake and a profile edit (injects ``checkin``)."""
    if patient is None or step_of(patient) is not Step.DONE:
        return False
    if await state.get_state() is not None or (await state.get_data()).get("field"):
        return False
    checkin = await followup.open_checkin(uow, patient, utcnow())
    if checkin is None:
        return False
    if await intake.open_intake(uow, patient) is not None:
        return False
    return {"checkin": checkin}


@routes.message(F.text, ~F.text.startswith("/"), _awaiting_text)
async def on_answer_text(
    message: Message,
    checkin: CheckIn,
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A typed answer; a bad one is explained and the question stays."""
    now = utcnow()
    try:  # a bad answer (followup.BadAnswer) is a UserError: said, the question stays
        out = await followup.answer_text(uow, patient, checkin, message.text or "", now)
    except followup.Stale as stale:
        await refused(uow, message, patient, "checkin", stale.reason)
        await reply.text(tr("error.stale_button"))
        return
    await _finish(uow, out, patient, tr, reply, settings, now)


@routes.callback_query(CheckinCB.filter())
async def on_checkin_button(
    query: CallbackQuery,
    callback_data: CheckinCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A choice, a checklist tick, none of these, done or skip."""
    now = utcnow()
    if patient is None:
        await refused_button(uow, query, patient, "not_onboarded")
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    try:
        out = await followup.press(
            uow, patient, callback_data.checkin, callback_data.q,
            callback_data.action, callback_data.value, now,
        )  # fmt: skip
    except followup.Stale as stale:
        await refused_button(uow, query, patient, stale.reason)
        if stale.reason == "ended":
            await reply.answer_callback(query.id, tr.plain("followup.plan_ended"), alert=True)
            if query.message is not None:
                await reply.edit_markup(query.message.message_id, None)
            return
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    except followup.BadAnswer as bad:
        await reply.answer_callback(query.id, tr.plain(bad.msgid, **bad.params), alert=True)
        return
    await reply.answer_callback(query.id)
    if callback_data.action == "tick" and out.question is not None:
        if query.message is not None:
            await reply.edit_markup(
                query.message.message_id, _keyboard(tr, out.checkin, out.question, out.ticks)
            )
        return
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    await _finish(uow, out, patient, tr, reply, settings, now)


# --- /readings ---------------------------------------------------------------------------------


@routes.message(Command("readings"))
async def on_readings(
    message: Message, uow: UnitOfWork, patient: Patient | None, tr: Translator, reply: Replier
) -> None:
    """The patient's readings of the last 30 days, and a Chart button."""
    if patient is None or step_of(patient) is not Step.DONE:
        await reply.text(tr("followup.readings.empty"))
        return
    now = utcnow()
    await weekly.ensure_planner(uow, now)
    readings = await followup.recent_readings(uow, patient.id, now)
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain("followup.readings.chart"),
                    callback_data=ReadingsCB(action="chart").pack(),
                )
            ]
        ]
    )
    if not readings:
        await reply.text(tr("followup.readings.empty"), markup)
        return
    lines = [tr("followup.readings.title")]
    for r in readings[-40:]:
        unit = followup.READING_UNITS.get(r.kind, "")
        mark = {"none": "", "danger": " 🚨"}.get(r.flag, " ⚠️")
        if r.source == "device":
            mark += " 📟"  # from a connected device (/devices)
        lines.append(
            tr("followup.readings.line", when=followup.local_time(patient, r.taken_at),
               what=tr.plain(f"followup.reading.{r.kind}"), value=f"{r.value} {unit}".strip(),
               mark=mark)
        )  # fmt: skip
    await reply.text(Html("\n".join(lines)), markup, protect=True)


@routes.callback_query(ReadingsCB.filter())
async def on_chart_button(
    query: CallbackQuery,
    callback_data: ReadingsCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """The patient's own chart (PNG) of the chosen days, with the 7 / 30 / 90 buttons."""
    if patient is None or step_of(patient) is not Step.DONE or callback_data.action != "chart":
        await refused_button(uow, query, patient)
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    if callback_data.days not in charts.DAY_CHOICES:  # a forged button
        await refused_button(uow, query, patient, "bad_days")
        await reply.answer_callback(query.id, tr.plain("charts.stale"), alert=True)
        return
    await reply.answer_callback(query.id)
    days = callback_data.days
    png = await charts.chart_for(
        uow, patient.id, utcnow(), days, tr, charts.zone(patient.timezone)
    )
    await charts.send(
        uow,
        "patient",
        patient.tg_user_id,
        png,
        tr("charts.caption.patient", days=days),
        markup=days_keyboard(tr, days),
    )
