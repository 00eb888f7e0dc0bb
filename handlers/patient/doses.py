"""Dose reminders in the patient bot: the reminder and its buttons (Taken / Snooze / Skip /
Side effect), the skip reason and side-effect questions, caregivers' buttons on an
escalation, /doses, and the scheduler handlers of every dose kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import caregivers as cg_flow
from flows import doses as flow
from flows import timing
from flows.domain import Caregiver, Dose, MedicationPlan, Patient, ScheduledEvent, utcnow
from flows.onboarding import Step, step_of
from flows.outbox import (
    DOSE_CARE_CB,
    DOSE_CB,
    PRIORITY_REPLY,
    PRIORITY_ROUTINE,
    PRIORITY_URGENT,
    Replier,
)
from handlers.common.routes import RouteTable
from handlers.patient.intake_render import show_emergency
from handlers.patient.refusals import refused_button
from locales import Html, Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.doses")

TYPING_MINUTES = 30  # a typed skip reason / side effect is expected this long


class DoseCB(CallbackData, prefix=DOSE_CB.prefix):
    """A reminder button: ``a`` t(aken) | s(nooze) | k (skip) | e (side effect); ``v`` the
    plan version the reminder was sent for; ``m`` snooze minutes. Ids only, no health data."""

    a: str
    d: str
    v: int
    m: int = 0


class SkipCB(CallbackData, prefix="dk"):
    """Why a dose was skipped (``r``: a reason code)."""

    d: str
    r: str


class EffectCB(CallbackData, prefix="de"):
    """An answer of the side-effect questions (``x``: an effect or a severity code)."""

    d: str
    v: int
    x: str


class CareCB(CallbackData, prefix=DOSE_CARE_CB.prefix):
    """A caregiver's answer on an escalation: ``a`` checked | took."""

    a: str
    d: str


# -- rendering --------------------------------------------------------------------------------


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def reminder_keyboard(tr: Translator, dose: Dose, version: int) -> InlineKeyboardMarkup:
    """Taken / Snooze 10 / 30 / 60 / Skip / Side effect."""

    def cb(action: str, minutes: int = 0) -> DoseCB:
        return DoseCB(a=action, d=dose.id, v=version, m=minutes)

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(tr.plain("doses.btn.taken"), cb("t"))],
            [
                _button(tr.plain("doses.btn.snooze", minutes=m), cb("s", m))
                for m in flow.SNOOZE_MINUTES
            ],
            [
                _button(tr.plain("doses.btn.skip"), cb("k")),
                _button(tr.plain("doses.btn.effect"), cb("e")),
            ],
        ]
    )


def skip_keyboard(tr: Translator, dose: Dose) -> InlineKeyboardMarkup:
    """The reasons for skipping a dose."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(tr.plain(f"doses.skip.{r}"), SkipCB(d=dose.id, r=r))]
            for r in flow.SKIP_REASONS
        ]
    )


def effect_keyboard(
    tr: Translator, dose: Dose, version: int, values: tuple[str, ...], prefix: str
) -> InlineKeyboardMarkup:
    """One button per answer of a side-effect question."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(tr.plain(f"{prefix}.{v}"), EffectCB(d=dose.id, v=version, x=v))]
            for v in values
        ]
    )


def care_keyboard(tr: Translator, dose: Dose) -> InlineKeyboardMarkup:
    """A caregiver's two answers."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(tr.plain(f"doses.caregiver.btn.{a}"), CareCB(a=a, d=dose.id))]
            for a in flow.CAREGIVER_ACTIONS
        ]
    )


def food_text(tr: Translator, food: str) -> str:
    """The food note in words (a code of the plan wizard, or the doctor's text)."""
    if food in ("with", "before", "after"):
        return tr.plain(f"doses.food.{food}")
    if food in ("", "none"):
        return ""
    return food


def medicine_text(tr: Translator, details: dict[str, str]) -> Html:
    """ "name — dose" and the food note on its own line."""
    text = tr("doses.medicine", medicine=details["name"] or "—", dose=details["dose"] or "—")
    food = food_text(tr, details.get("food", ""))
    return Html(text + ("\n" + tr("doses.food_line", food=food) if food else ""))


def plan_summary(tr: Translator, plan: MedicationPlan, details: dict[str, str]) -> Html:
    """The current plan in one short paragraph (after a stale button)."""
    try:
        sched = timing.Schedule.from_json(plan.schedule)
    except ValueError:
        times = "—"
    else:
        if sched.every_hours:
            times = tr.plain("doses.every_hours", hours=sched.every_hours, first=sched.times[0])
        else:
            times = ", ".join(sched.times)
    return tr("doses.plan_summary", medicine=medicine_text(tr, details), times=times)


async def send(
    reply: Replier,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
    *,
    chat_id: int,
    silent: bool = False,
    priority: int = PRIORITY_ROUTINE,
) -> None:
    """A message that may arrive without a sound (quiet hours), routine unless told."""
    await reply.text(text, markup, chat_id=chat_id, silent=silent, priority=priority)


async def send_reminder(uow: UnitOfWork, r: flow.Reminder) -> None:
    """The reminder (and the once-only list of what a downtime made missed) to the patient;
    a short copy to caregivers with scope "reminders" (medicine names only if allowed)."""
    patient = r.patient
    tr = Translator(patient.locale)
    reply = Replier(uow, "patient", patient.tg_user_id)
    if r.missed:
        lines = "\n".join(
            tr(
                "doses.missed.line",
                date=d.local[:10],
                time=flow.time_of(d),
                medicine=r.details["name"] or "—",
            )
            for d in r.missed
        )
        await send(
            reply,
            tr("doses.missed", lines=Html(lines)),
            chat_id=patient.tg_user_id,
            silent=r.silent,
        )
    dose = r.dose
    if dose is None:
        return
    if r.again:
        msgid = "doses.reminder.again"
    elif r.late:
        msgid = "doses.reminder.late"
    else:
        msgid = "doses.reminder"
    text = tr(msgid, time=flow.time_of(dose), medicine=medicine_text(tr, r.details))
    await send(
        reply,
        text,
        reminder_keyboard(tr, dose, r.plan.version),
        chat_id=patient.tg_user_id,
        silent=r.silent,
    )
    if not r.caregivers:
        return
    label = await cg_flow.patient_label(uow, patient) or "—"
    for cg in r.caregivers:
        if cg.tg_user_id is None:
            continue
        ctr = Translator(await cg_flow.locale_of(uow, cg))
        if cg.details:
            body = ctr(
                "doses.caregiver.reminder.details",
                patient=label,
                time=flow.time_of(dose),
                medicine=medicine_text(ctr, r.details),
            )
        else:
            body = ctr("doses.caregiver.reminder", patient=label, time=flow.time_of(dose))
        await send(reply, body, chat_id=cg.tg_user_id, silent=r.silent)


async def send_escalation(uow: UnitOfWork, e: flow.Escalation, now: datetime) -> None:
    """The caregivers' alert: the patient has not answered; two acknowledge buttons."""
    reply = Replier(uow, "patient", None)
    label = await cg_flow.patient_label(uow, e.patient) or "—"
    minutes = max(0, int((now - flow.aware(e.dose.due_at)).total_seconds() // 60))
    for cg in e.caregivers:
        assert cg.tg_user_id is not None
        ctr = Translator(await cg_flow.locale_of(uow, cg))
        params: dict[str, Any] = {
            "patient": label,
            "time": flow.time_of(e.dose),
            "minutes": minutes,
        }
        if cg.details:
            text = ctr(
                "doses.caregiver.alert.details", medicine=medicine_text(ctr, e.details), **params
            )
        else:
            text = ctr("doses.caregiver.alert", **params)
        await send(
            reply,
            text,
            care_keyboard(ctr, e.dose),
            chat_id=cg.tg_user_id,
            priority=PRIORITY_URGENT,
        )


Handler = Callable[[UnitOfWork, ScheduledEvent, datetime], Awaitable[None]]


def scheduled(settings: Settings) -> dict[str, Handler]:
    """Scheduler handlers of dose reminders and the escalation ladder, by event kind."""

    async def dose(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        r = await flow.fire_dose(uow, event, now)
        if r is not None:
            await send_reminder(uow, r)

    async def snooze(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        r = await flow.fire_snooze(uow, event, now)
        if r is not None:
            await send_reminder(uow, r)

    async def again(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        r = await flow.fire_again(uow, event, now)
        if r is not None:
            await send_reminder(uow, r)

    async def caregiver(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        e = await flow.fire_caregiver(uow, event, now)
        if e is not None:
            await send_escalation(uow, e, now)

    async def doctor(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        await flow.fire_doctor(uow, event, now)

    return {
        flow.KIND: dose,
        flow.SNOOZE: snooze,
        flow.AGAIN: again,
        flow.CAREGIVER: caregiver,
        flow.DOCTOR: doctor,
    }


# -- the patient's buttons ----------------------------------------------------------------------


async def _refuse(
    uow: UnitOfWork,
    query: CallbackQuery,
    err: flow.DoseError,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """A button that no longer fits, answered clearly (and audited)."""
    if err.reason != "too_long":  # a typed answer too long is bad input, not a refusal
        await refused_button(uow, query, patient, err.reason)
    if err.reason == "answered":
        await reply.answer_callback(query.id, tr.plain("doses.already"))
        return
    if err.reason == "missed":
        await reply.answer_callback(query.id, tr.plain("doses.snooze_missed"), alert=True)
        return
    if err.reason == "limit":
        await reply.answer_callback(query.id, tr.plain("doses.snooze_limit"), alert=True)
        return
    if err.reason == "too_long":
        await reply.answer_callback(query.id)
        await reply.text(tr("doses.text.too_long", max=flow.TEXT_MAX))
        return
    if err.reason == "changed" and err.plan is not None and patient is not None:
        await reply.answer_callback(query.id)
        plan = err.plan
        if plan.status == "active":
            details = await flow.details_of(uow, plan)
            await reply.text(tr("doses.changed", plan=plan_summary(tr, plan, details)))
        elif plan.status == "paused":
            await reply.text(tr("doses.changed.paused"))
        elif plan.status == "proposed":
            await reply.text(tr("doses.changed.proposed"))
        else:
            await reply.text(tr("doses.changed.ended"))
        return
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))


def _ready(patient: Patient | None) -> bool:
    return patient is not None and step_of(patient) is Step.DONE


async def _typing(
    state: FSMContext, dose_id: str | None, what: str | None = None, version: int = 0
) -> None:
    if dose_id is None:
        await state.update_data(dose_typing=None, dose_typing_what=None, dose_typing_until=None)
        return
    until = (utcnow() + timedelta(minutes=TYPING_MINUTES)).isoformat()
    await state.update_data(
        dose_typing=dose_id, dose_typing_what=what, dose_typing_v=version, dose_typing_until=until
    )


@routes.callback_query(DoseCB.filter())
async def on_dose_button(
    query: CallbackQuery,
    callback_data: DoseCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """Taken / Snooze / Skip / Side effect on a reminder."""
    if patient is None or not _ready(patient):
        await refused_button(uow, query, patient, "not_onboarded")
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    now = utcnow()
    data = callback_data
    try:
        if data.a == "t":
            dose = await flow.take(uow, patient, data.d, data.v, now)
            await reply.answer_callback(query.id, tr.plain("doses.taken.short"))
            await _drop_buttons(query, reply)
            await reply.text(tr("doses.taken", time=flow.time_of(dose)))
        elif data.a == "s":
            when = await flow.snooze(uow, patient, data.d, data.v, data.m, now)
            await reply.answer_callback(query.id)
            await _drop_buttons(query, reply)
            local = flow.local_hhmm(when, flow.zone_of(patient))
            await reply.text(tr("doses.snoozed", minutes=data.m, when=local))
        elif data.a == "k":
            dose = await flow.skip(uow, patient, data.d, data.v, now)
            await reply.answer_callback(query.id)
            await _drop_buttons(query, reply)
            await reply.text(
                tr("doses.skipped.ask", time=flow.time_of(dose)), skip_keyboard(tr, dose)
            )
        elif data.a == "e":
            step = await flow.effect_start(uow, patient, data.d, data.v, now)
            await reply.answer_callback(query.id)
            await reply.text(
                tr("doses.effect.ask_what"),
                effect_keyboard(tr, step.dose, data.v, flow.EFFECTS, "doses.effect"),
            )
        else:
            raise flow.DoseError("unknown")
    except flow.DoseError as err:
        await _refuse(uow, query, err, patient, tr, reply)


async def _drop_buttons(query: CallbackQuery, reply: Replier) -> None:
    """The reminder's buttons go once it is answered (a second press is refused anyway)."""
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)


@routes.callback_query(SkipCB.filter())
async def on_skip_reason(
    query: CallbackQuery,
    callback_data: SkipCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """A reason for the skipped dose; "other" asks for it in words."""
    if patient is None or not _ready(patient):
        await refused_button(uow, query, patient, "not_onboarded")
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    if callback_data.r == "other":
        dose = await flow.get_dose(uow, callback_data.d)
        if dose is None or dose.patient_id != patient.id or dose.status != flow.SKIPPED:
            mine = dose is None or dose.patient_id == patient.id
            await refused_button(uow, query, patient, "stale" if mine else "not_yours")
            await reply.answer_callback(query.id, tr.plain("error.stale_button"))
            return
        await reply.answer_callback(query.id)
        await _typing(state, dose.id, "skip")
        await reply.text(tr("doses.skip.type"))
        return
    try:
        await flow.skip_reason(uow, patient, callback_data.d, callback_data.r, None, utcnow())
    except flow.DoseError as err:
        await _refuse(uow, query, err, patient, tr, reply)
        return
    await reply.answer_callback(query.id)
    await _drop_buttons(query, reply)
    msgid = "doses.skip.thanks.ran_out" if callback_data.r == "ran_out" else "doses.skip.thanks"
    await reply.text(tr(msgid))


@routes.callback_query(EffectCB.filter())
async def on_effect_answer(
    query: CallbackQuery,
    callback_data: EffectCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """An answer of the side-effect questions."""
    if patient is None or not _ready(patient):
        await refused_button(uow, query, patient, "not_onboarded")
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    try:
        step = await flow.effect_answer(
            uow, patient, callback_data.d, callback_data.v, callback_data.x, utcnow()
        )
    except flow.DoseError as err:
        await _refuse(uow, query, err, patient, tr, reply)
        return
    await reply.answer_callback(query.id)
    await _drop_buttons(query, reply)
    await _after_effect(uow, step, patient, state, tr, reply, settings)


async def _after_effect(
    uow: UnitOfWork,
    step: flow.EffectStep,
    patient: Patient,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The next side-effect question, or the end (the doctor told; red flags: emergency)."""
    version = step.plan.version
    if step.state is flow.Effect.OTHER:
        await _typing(state, step.dose.id, "effect", version)
        await reply.text(tr("doses.effect.ask_other"))
        return
    if step.state is flow.Effect.SEVERITY:
        await _typing(state, None)
        await reply.text(
            tr("doses.effect.ask_severity"),
            effect_keyboard(tr, step.dose, version, flow.SEVERITIES, "doses.severity"),
        )
        return
    await _typing(state, None)
    number = settings.local_emergency_number
    if not step.red:
        await reply.text(tr("doses.effect.sent", emergency_number=number))
        return
    if step.what in flow.RED_FLAG_OF:
        await show_emergency(reply, tr, flow.RED_FLAG_OF[step.what], settings)
    else:
        await reply.text(
            tr("emergency.call_now", emergency_number=number, what=tr("doses.effect.severe_what")),
            priority=PRIORITY_URGENT,
        )
    await reply.text(tr("doses.effect.red_sent"))
    label = await cg_flow.patient_label(uow, patient) or "—"
    details = await flow.details_of(uow, step.plan)
    for cg in step.caregivers:
        assert cg.tg_user_id is not None
        ctr = Translator(await cg_flow.locale_of(uow, cg))
        if cg.details:
            text = ctr(
                "doses.caregiver.urgent.details",
                patient=label,
                emergency_number=number,
                medicine=medicine_text(ctr, details),
                what=step.text or ctr.plain(f"doses.effect.{step.what}"),
            )
        else:
            text = ctr("doses.caregiver.urgent", patient=label, emergency_number=number)
        await reply.text(text, chat_id=cg.tg_user_id, priority=PRIORITY_URGENT)


async def _typing_for(
    message: Message, patient: Patient | None, state: FSMContext
) -> bool | dict[str, Any]:
    """Filter: the patient was asked to type a skip reason or a side effect."""
    if patient is None:
        return False
    data = await state.get_data()
    dose_id, until = data.get("dose_typing"), data.get("dose_typing_until")
    if not dose_id or not until or datetime.fromisoformat(until) < utcnow():
        return False
    return {
        "typing_dose": dose_id,
        "typing_what": data.get("dose_typing_what"),
        "typing_version": int(data.get("dose_typing_v") or 0),
    }


@routes.message(F.text, ~F.text.startswith("/"), _typing_for)
async def on_typed(
    message: Message,
    typing_dose: str,
    typing_what: str,
    typing_version: int,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A typed skip reason or side effect."""
    assert message.text is not None
    now = utcnow()
    try:
        if typing_what == "skip":
            await flow.skip_reason(uow, patient, typing_dose, "other", message.text, now)
            await _typing(state, None)
            await reply.text(tr("doses.skip.thanks"))
            return
        step = await flow.effect_answer(
            uow, patient, typing_dose, typing_version, "typed", now, text=message.text
        )
    except flow.DoseError as err:
        if err.reason == "too_long":
            await reply.text(tr("doses.text.too_long", max=flow.TEXT_MAX))
            return
        await _typing(state, None)
        msgid = "doses.already" if err.reason == "answered" else "doses.typing.stale"
        await reply.text(tr(msgid))
        return
    await _after_effect(uow, step, patient, state, tr, reply, settings)


@routes.message(~F.text, _typing_for)
async def on_typed_other(message: Message, tr: Translator, reply: Replier) -> None:
    """A photo, sticker or voice while a typed skip reason or side effect is expected."""
    await reply.text(tr("doses.type_please"))


# -- caregivers' buttons ----------------------------------------------------------------------


@routes.callback_query(CareCB.filter())
async def on_caregiver_button(
    query: CallbackQuery,
    callback_data: CareCB,
    uow: UnitOfWork,
    tr: Translator,
    reply: Replier,
) -> None:
    """A caregiver checked on the patient, or says they took it: the ladder stops."""
    try:
        dose, cg, patient = await flow.caregiver_answer(
            uow, query.from_user.id, callback_data.d, callback_data.a, utcnow()
        )
    except flow.DoseError as err:
        await refused_button(uow, query, None, err.reason)
        if err.reason == "answered":
            await reply.answer_callback(query.id, tr.plain("doses.caregiver.already"), alert=True)
        elif err.reason == "not_caregiver":
            await reply.answer_callback(query.id)
            await reply.text(tr("doses.caregiver.not_caregiver"))
        else:
            await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    await reply.answer_callback(query.id)
    await _drop_buttons(query, reply)
    await reply.text(tr(f"doses.caregiver.thanks.{callback_data.a}"))
    await _tell_patient(uow, cg, patient, dose, callback_data.a)


async def _tell_patient(
    uow: UnitOfWork, cg: Caregiver, patient: Patient, dose: Dose, action: str
) -> None:
    ptr = Translator(patient.locale)
    name = await cg_flow.name_of(uow, cg) or ptr.plain("doses.caregiver.someone")
    await Replier(uow, "patient", patient.tg_user_id).text(
        ptr(f"doses.patient.caregiver_{action}", caregiver=name, time=flow.time_of(dose)),
        priority=PRIORITY_REPLY,
    )


# -- /doses ----------------------------------------------------------------------------------


@routes.message(Command("doses"))
async def on_doses(
    message: Message, uow: UnitOfWork, patient: Patient | None, tr: Translator, reply: Replier
) -> None:
    """Today's and recent doses with their status."""
    if patient is None or not _ready(patient):
        await reply.text(tr("doses.list.not_ready"))
        return
    lines = await flow.recent(uow, patient, utcnow())
    if not lines:
        await reply.text(tr("doses.list.empty"))
        return
    body = "\n".join(
        tr(
            "doses.list.line",
            date=line.dose.local[:10],
            time=flow.time_of(line.dose),
            medicine=line.name or "—",
            status=tr.plain(f"doses.status.{line.status}"),
        )
        for line in lines
    )
    await reply.text(tr("doses.list", days=flow.RECENT_DAYS, lines=Html(body)))
