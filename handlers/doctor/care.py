"""Chronic care in the doctor bot: care alerts (/alerts and the Acknowledge button), enrolling
a patient in a follow-up plan (/followup in a case or /followup <case number>: template ->
frequency -> time of day -> review date), listing and ending plans (/followups, End with a
confirm step) and reading charts (/chart)."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import alerts, charts, followup, timing
from flows import consultation as flow
from flows.domain import Consultation, Doctor, FollowUpPlan, Patient, utcnow
from flows.outbox import ALERT_CB, PRIORITY_REPLY, Replier
from handlers.common.routes import RouteTable
from handlers.doctor.guard import case_from_command, target_case, verified
from locales import Html, Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.care")
ALERTS_SHOWN = 10


class AlertCB(CallbackData, prefix=ALERT_CB.prefix):
    """Acknowledge one care alert (``alert``: its id); packs as ``ca:ack:<id>``."""

    action: str
    alert: str


class FollowCB(CallbackData, prefix="fu"):
    """A step of the /followup set-up of one draft plan."""

    action: str  # tpl | freq | time | rev | x
    plan: str
    value: str = ""


class PlanCB(CallbackData, prefix="fe"):
    """A running plan under /followups: ``end`` (asks to confirm), ``yes`` / ``no``."""

    action: str
    plan: str


class ChartCB(CallbackData, prefix="ch"):
    """7 / 30 / 90 days under a patient's chart (``case``: the case number it was asked
    for; checked again on every press)."""

    case: int
    days: int


class Typing(StatesGroup):
    """The doctor may type the time of day or the review date of a draft plan."""

    followup = State()


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text[:64], callback_data=data.pack())


# --- care alerts --------------------------------------------------------------------------------


async def queue_alerts(uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier) -> None:
    """The doctor's open care alerts, at the top of /queue (nothing when there are none)."""
    open_ = await alerts.open_for(uow, doctor.id)
    if not open_:
        return
    now = utcnow()
    lines = [await alerts.describe(uow, tr, a, now) for a in open_[:ALERTS_SHOWN]]
    await reply.text(tr("care.queue_alerts", n=len(open_), lines=Html("\n".join(lines))))


@routes.message(Command("alerts"))
@verified("alerts")
async def on_alerts(
    message: Message,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Open care alerts, most urgent first, each with what happened, the patient, since when
    and its Acknowledge button (alerts whose cause went away are closed and not shown)."""
    now = utcnow()
    open_ = await alerts.open_for(uow, doctor.id)
    if not open_:
        await reply.text(tr("care.alerts_empty"))
        return
    shown = open_[:ALERTS_SHOWN]
    await reply.text(
        tr("care.alerts_title", n=len(open_))
        if len(shown) == len(open_)
        else tr("care.alerts_title_some", n=len(open_), shown=len(shown))
    )
    zone = doctor.timezone or settings.timezone
    for alert in shown:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[
                [_button(tr.plain("care.alert.ack"), AlertCB(action="ack", alert=alert.id))]
            ]
        )
        await reply.text(await alerts.card(uow, tr, alert, now, zone), markup)


@routes.callback_query(AlertCB.filter())
@verified("care_ack")
async def on_ack(
    query: CallbackQuery,
    callback_data: AlertCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Acknowledge: the alert leaves /queue and /alerts (audited)."""
    now = utcnow()
    if callback_data.action != "ack":
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    try:
        alert = await alerts.ack(uow, doctor, callback_data.alert, now)
    except alerts.NotAllowed as no:
        msgid = {"acked": "care.already_acked", "resolved": "care.already_resolved"}.get(
            no.reason, "care.not_yours"
        )
        await reply.answer_callback(query.id, tr.plain(msgid), alert=True)
        if no.reason != "not_yours" and query.message is not None:
            await reply.edit_markup(query.message.message_id, None)  # nothing left to press
        return
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    tag = await alerts.patient_tag(uow, tr, doctor.id, alert.patient_id)
    await reply.text(tr("care.acked", tag=tag))


# --- /followup ---------------------------------------------------------------------------------


async def _case_for(
    uow: UnitOfWork,
    doctor: Doctor,
    message: Message,
    state: FSMContext,
    command: CommandObject,
    tr: Translator,
    reply: Replier,
    usage: str,
) -> Consultation | None:
    """The case a /followup or /followups is about: ``<case number>``, else the replied-to or
    chosen case (closed ones included). Answers and returns None when there is none."""
    return await case_from_command(
        uow, doctor, message, command, state, tr, reply,
        refused="consultation.refused", not_yours="followup.doctor.not_yours", which=usage,
        bad_number=usage,
    )  # fmt: skip


def _templates_keyboard(tr: Translator, plan: FollowUpPlan) -> InlineKeyboardMarkup:
    rows = [
        [
            _button(
                tr.plain(f"followup.template.{t}"), FollowCB(action="tpl", plan=plan.id, value=t)
            )
        ]
        for t in followup.load().templates
    ]
    rows.append([_button(tr.plain("followup.doctor.cancel"), FollowCB(action="x", plan=plan.id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def _ask_next(
    uow: UnitOfWork, tr: Translator, reply: Replier, plan: FollowUpPlan, settings: Settings
) -> None:
    step = followup.draft_step(plan)
    cancel = [_button(tr.plain("followup.doctor.cancel"), FollowCB(action="x", plan=plan.id))]
    if step == "frequency":
        row = [
            _button(tr.plain(f"followup.freq.{f}"), FollowCB(action="freq", plan=plan.id, value=f))
            for f in followup.FREQUENCIES
        ]
        name = tr.plain(f"followup.template.{plan.template}")
        await reply.text(
            tr("followup.doctor.choose_frequency", template=name),
            InlineKeyboardMarkup(inline_keyboard=[row, cancel]),
        )
    elif step == "time":
        patient = await uow.patients.get(plan.patient_id)
        zone = followup.zone_of(patient) if patient is not None else "UTC"
        row = [
            _button(t, FollowCB(action="time", plan=plan.id, value=t.replace(":", "")))
            for t in followup.TIMES
        ]
        await reply.text(
            tr("followup.doctor.choose_time", timezone=zone),
            InlineKeyboardMarkup(inline_keyboard=[row, cancel]),
        )
    elif step == "review":
        row = [
            _button(
                tr.plain("followup.doctor.days", n=n),
                FollowCB(action="rev", plan=plan.id, value=str(n)),
            )
            for n in followup.REVIEW_DAYS
        ]
        await reply.text(
            tr("followup.doctor.choose_review"),
            InlineKeyboardMarkup(inline_keyboard=[row, cancel]),
        )


@routes.message(Command("followup"))
@verified("followup")
async def on_followup(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Starts a follow-up plan for the patient of one of the doctor's cases."""
    now = utcnow()
    case = await _case_for(
        uow, doctor, message, state, command, tr, reply, "followup.doctor.usage"
    )
    if case is None:
        return
    plan = await followup.start_draft(uow, doctor, case, now)
    await state.update_data(fu_plan=plan.id)
    await state.set_state(Typing.followup)
    tag = await alerts.patient_tag(uow, tr, doctor.id, case.patient_id)
    await reply.text(tr("followup.doctor.choose_template", tag=tag), _templates_keyboard(tr, plan))


async def _review_set(
    uow: UnitOfWork,
    doctor: Doctor,
    plan: FollowUpPlan,
    raw: str,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> None:
    """The last step: activate, tell the doctor and the patient."""
    now = utcnow()
    patient = await uow.patients.get(plan.patient_id)
    if patient is None:
        raise followup.NotAllowed("gone")
    review = followup.review_date(raw, followup.today_for(patient, now))
    done = await followup.activate(uow, doctor, plan, review, now)
    await state.set_state(None)
    await state.update_data(fu_plan=None)
    d = followup.schedule_of(plan)
    freq = done.freq
    first = done.first[0] if done.first else None
    tag = await alerts.patient_tag(uow, tr, doctor.id, plan.patient_id)
    await reply.text(
        tr(
            "followup.doctor.enrolled", tag=tag,
            template=tr.plain(f"followup.template.{plan.template}"),
            frequency=tr.plain(f"followup.freq.{freq}"), time=d.times[0],
            review=review.isoformat(), first=first or tr.plain("followup.doctor.no_first"),
        )
    )  # fmt: skip
    ptr = Translator(done.patient.locale)
    preply = Replier(uow, "patient", done.patient.tg_user_id)
    await preply.text(
        ptr(
            "followup.enrolled", template=ptr.plain(f"followup.template.{plan.template}"),
            frequency=ptr.plain(f"followup.freq.{freq}"), time=d.times[0],
            review=review.isoformat(), first=first or ptr.plain("followup.doctor.no_first"),
        )
    )  # fmt: skip


@routes.callback_query(FollowCB.filter())
@verified("followup_button")
async def on_followup_button(
    query: CallbackQuery,
    callback_data: FollowCB,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Template, frequency, time and review buttons of a draft plan; Cancel drops it."""
    try:
        plan = await followup.draft_of(uow, doctor, callback_data.plan)
        action, value = callback_data.action, callback_data.value
        if action == "x":
            await uow.followups.delete_plan(plan)
            await state.set_state(None)
            await reply.answer_callback(query.id)
            await reply.text(tr("followup.doctor.cancelled"))
            return
        expected = {"tpl": "template", "freq": "frequency", "time": "time", "rev": "review"}
        if expected.get(action) != followup.draft_step(plan):
            raise followup.NotAllowed("order")
        await reply.answer_callback(query.id)
        if query.message is not None:
            await reply.edit_markup(query.message.message_id, None)
        await state.update_data(fu_plan=plan.id)
        await state.set_state(Typing.followup)
        if action == "tpl":
            followup.set_template(plan, value)
        elif action == "freq":
            followup.set_frequency(plan, value)
        elif action == "time":
            followup.set_time(plan, f"{value[:2]}:{value[2:]}")
        else:
            await _review_set(uow, doctor, plan, value, state, tr, reply)
            return
        await _ask_next(uow, tr, reply, plan, settings)
    except (followup.NotAllowed, followup.BadAnswer, timing.TimingError):
        await reply.answer_callback(query.id, tr.plain("followup.doctor.stale"), alert=True)


@routes.message(StateFilter(Typing.followup), F.text, ~F.text.startswith("/"))
@verified("followup", end_typing=True)
async def on_followup_text(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A typed time of day or review date for the draft plan (buttons for the rest)."""
    try:
        plan = await followup.draft_of(uow, doctor, (await state.get_data()).get("fu_plan"))
    except followup.NotAllowed:
        await state.set_state(None)
        await reply.text(tr("followup.doctor.stale"))
        return
    step = followup.draft_step(plan)
    try:
        if step == "time":
            followup.set_time(plan, message.text or "")
        elif step == "review":
            await _review_set(uow, doctor, plan, message.text or "", state, tr, reply)
            return
        else:
            await reply.text(tr("followup.bad.use_buttons"))
            return
    except timing.TimingError as bad:  # a bad time: said, and the question again
        await reply.text(tr(bad.msgid, **bad.params))
        await _ask_next(uow, tr, reply, plan, settings)
        return
    # (a bad review date, followup.BadAnswer, is a UserError: said, the question stays)
    await _ask_next(uow, tr, reply, plan, settings)


# --- /followups: list and end plans -------------------------------------------------------------


def _plan_line(tr: Translator, plan: FollowUpPlan, patient: Patient | None) -> Html:
    sched = followup.schedule_of(plan)
    since = followup.local_time(patient, plan.created_at)[:10] if patient else "-"
    line = tr(
        "followup.plans.line",
        template=tr.plain(f"followup.template.{plan.template}"),
        frequency=tr.plain(f"followup.freq.{followup.frequency_of(plan)}"),
        time=sched.times[0] if sched.times else "-",
        since=since,
        review=sched.end.isoformat() if sched.end else "-",
    )
    if plan.status == followup.REVIEW:
        return Html(f"{line}\n{tr('followup.plans.review_reached')}")
    return line


@routes.message(Command("followups"))
@verified("followups")
async def on_followups(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """The doctor's running follow-up plans for the patient of a case, each with End."""
    case = await _case_for(uow, doctor, message, state, command, tr, reply, "followup.plans.usage")
    if case is None:
        return
    tag = await alerts.patient_tag(uow, tr, doctor.id, case.patient_id)
    plans = await followup.doctor_plans(uow, doctor.id, case.patient_id)
    if not plans:
        await reply.text(tr("followup.plans.none", tag=tag))
        return
    patient = await uow.patients.get(case.patient_id)
    await reply.text(tr("followup.plans.title", tag=tag, n=len(plans)))
    for plan in plans:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[
                [_button(tr.plain("followup.plans.end"), PlanCB(action="end", plan=plan.id))]
            ]
        )
        await reply.text(_plan_line(tr, plan, patient), markup)


@routes.callback_query(PlanCB.filter())
@verified("followups_button")
async def on_plan_button(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """End (asks to confirm), then Yes: the plan ends and the patient is told; No keeps it."""
    now = utcnow()
    action = callback_data.action
    try:
        if action == "yes":
            plan = await followup.end_by_doctor(uow, doctor, callback_data.plan, now)
        else:
            plan = await followup.own_plan(uow, doctor, callback_data.plan)
    except followup.NotAllowed as no:
        msgid = {
            "ended": "followup.plans.already_ended",
            "not_yours": "followup.plans.not_yours",
        }.get(no.reason, "error.stale_button")
        await reply.answer_callback(query.id, tr.plain(msgid), alert=True)
        if query.message is not None and no.reason == "ended":
            await reply.edit_markup(query.message.message_id, None)
        return
    await reply.answer_callback(query.id)
    template = tr.plain(f"followup.template.{plan.template}")
    tag = await alerts.patient_tag(uow, tr, doctor.id, plan.patient_id)
    if action == "end":
        markup = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    _button(tr.plain("followup.plans.yes"), PlanCB(action="yes", plan=plan.id)),
                    _button(tr.plain("followup.plans.no"), PlanCB(action="no", plan=plan.id)),
                ]
            ]
        )
        await reply.text(tr("followup.plans.confirm", tag=tag, template=template), markup)
        return
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    if action != "yes":
        await reply.text(tr("followup.plans.kept", template=template))
        return
    await reply.text(tr("followup.plans.ended", tag=tag, template=template))
    patient = await uow.patients.get(plan.patient_id)
    if patient is not None and not patient.unreachable:
        ptr = Translator(patient.locale)
        await Replier(uow, "patient", patient.tg_user_id).text(
            ptr("followup.ended", template=ptr.plain(f"followup.template.{plan.template}"))
        )


# --- /chart ------------------------------------------------------------------------------------


@routes.message(Command("chart"))
@verified("chart")
async def on_chart(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """The chart of a patient under the doctor's care (refused and audited otherwise)."""
    arg = (command.args or "").strip().lstrip("#")
    case: Consultation | None
    if arg:
        case = await uow.consultations.by_number(int(arg)) if arg.isdigit() else None
        if case is None and not arg.isdigit():
            await reply.text(tr("followup.chart.usage"))
            return
    else:
        case = await target_case(uow, doctor, message, state)
        if case is None:
            await reply.text(tr("followup.chart.usage"))
            return
    if case is None or not await alerts.under_care(uow, doctor.id, case.patient_id):
        await uow.audit.record(
            flow.doctor_ref(doctor), "care.chart.refused", "case_number", arg[:32] or "-", {}
        )
        await reply.text(tr("followup.chart.refused"))
        return
    await _send_chart(uow, doctor, case, charts.DAYS, tr, reply)


def _days_keyboard(tr: Translator, case: Consultation, current: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(
                    ("• " if n == current else "") + tr.plain("charts.days", n=n),
                    ChartCB(case=case.number, days=n),
                )
                for n in charts.DAY_CHOICES
            ]
        ]
    )


async def _send_chart(
    uow: UnitOfWork, doctor: Doctor, case: Consultation, days: int, tr: Translator,
    reply: Replier,
) -> None:  # fmt: skip
    """The chart of the case's patient (audited), with the 7 / 30 / 90 days buttons."""
    now = utcnow()
    patient = await uow.patients.get(case.patient_id)
    tz = charts.zone(patient.timezone if patient is not None else None)
    data = await charts.data_for(uow, case.patient_id, now, days, tz)
    png = charts.render(data.readings, data.adherence, now, days, tr=tr, targets=data.targets,
                        changes=data.changes, tz=tz)  # fmt: skip
    await uow.audit.record(
        flow.doctor_ref(doctor), "care.chart", "patient", case.patient_id, {"days": days}
    )
    plans = sorted({b.source for bs in data.targets.values() for b in bs} - {"default"})
    source = (
        tr.plain(
            "charts.source.plan",
            template=", ".join(tr.plain(f"followup.template.{p[5:]}") for p in plans),
        )
        if plans
        else tr.plain("charts.source.default")
    )
    tag = await alerts.patient_tag(uow, tr, doctor.id, case.patient_id)
    await charts.send(
        uow, "doctor", doctor.tg_user_id, png,
        tr("charts.caption.doctor", tag=tag, days=days, source=source),
        priority=PRIORITY_REPLY, markup=_days_keyboard(tr, case, days),
    )  # fmt: skip


@routes.callback_query(ChartCB.filter())
@verified("chart_button")
async def on_chart_days(
    query: CallbackQuery,
    callback_data: ChartCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """7 / 30 / 90 days: the chart again over those days; a patient no longer (or never)
    under the doctor's care, or a forged number of days, is refused and audited."""
    case = await uow.consultations.by_number(callback_data.case)
    allowed = case is not None and await alerts.under_care(uow, doctor.id, case.patient_id)
    if case is None or not allowed or callback_data.days not in charts.DAY_CHOICES:
        reason = "days" if allowed else "not_under_care"
        await uow.audit.record(flow.doctor_ref(doctor), "care.chart.refused", "case_number",
                               str(callback_data.case)[:32], {"reason": reason})  # fmt: skip
        await reply.answer_callback(query.id, tr.plain("followup.chart.refused"), alert=True)
        return
    await reply.answer_callback(query.id)
    await _send_chart(uow, doctor, case, callback_data.days, tr, reply)
