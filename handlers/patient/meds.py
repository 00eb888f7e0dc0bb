"""The patient's medication plans: the plan card a doctor sends (Confirm / Decline with an
optional reason), and /meds: each active or paused plan with Pause / Resume and Export (a FHIR
MedicationRequest Bundle), then quiet hours, time zone and shifted times.

Typed answers (a decline reason, quiet hours, a time zone, minutes to shift) are routed with
FSM data that holds only ids and the kind of answer expected (``meds``, ``meds_plan``,
``meds_v``), never what the patient typed. Also the rendering of a plan shared with the doctor
bot (:func:`plan_text`, :func:`send_card`).
"""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.filters import Command, ExceptionTypeFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    ErrorEvent,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.settings import Settings
from flows import consultation as cases
from flows import medication as flow
from flows.domain import MedicationPlan, Patient, utcnow
from flows.medication import BadInput, NotAllowed, PlanView, Status
from flows.onboarding import Step, step_of
from flows.outbox import Replier
from handlers.common import cases as case_view
from handlers.common.errors import pressed
from handlers.common.routes import RouteTable
from handlers.patient.refusals import refused, refused_button
from handlers.patient.render import show_step
from locales import Html, Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.meds")

MODES = ("decline", "quiet", "zone", "shift")


class MedCB(CallbackData, prefix="pm"):
    """A button of a plan card or of /meds (``plan``: its id, ``v``: its version)."""

    action: str  # ok | no | nor | back | pause | resume | exp | quiet | qoff | zone | sh | x
    plan: str = ""
    v: int = 0
    value: str = ""


# -- rendering (shared with the doctor bot) ---------------------------------------------------


def when_text(tr: Translator, v: PlanView) -> str:
    """The dose times in words: "08:00, 20:00" or "every 8 hours"."""
    if v.every_hours:
        first = v.times[0] if v.times else "—"
        return tr.plain("meds.when.every", hours=v.every_hours, time=first)
    return ", ".join(v.times) or "—"


def days_text(tr: Translator, days: tuple[int, ...]) -> str:
    """Every day, weekdays, or the days by name."""
    if not days or tuple(sorted(set(days))) == flow.EVERY_DAY:
        return tr.plain("meds.days.every")
    if tuple(sorted(set(days))) == flow.WEEKDAYS:
        return tr.plain("meds.days.weekdays")
    return ", ".join(tr.plain(f"meds.day.{d}") for d in sorted(set(days)))


def dates_text(tr: Translator, v: PlanView) -> str:
    """From … until …, or ongoing."""
    if v.start is None:
        return "—"
    if v.end is None:
        return tr.plain("meds.dates.ongoing", start=v.start.isoformat())
    return tr.plain("meds.dates.range", start=v.start.isoformat(), end=v.end.isoformat())


def plan_text(tr: Translator, v: PlanView) -> Html:
    """The plan's lines: medicine, dose, times, days, dates, food note."""
    return tr(
        "meds.plan_body",
        name=v.name or "—",
        dose=v.dose or "—",
        when=when_text(tr, v),
        days=days_text(tr, v.days),
        dates=dates_text(tr, v),
        food=tr.plain(f"meds.food.{v.food}") if v.food in flow.FOODS else "—",
    )


def _button(tr: Translator, msgid: str, cb: MedCB) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=tr.plain(msgid), callback_data=cb.pack())


def card_keyboard(tr: Translator, plan: MedicationPlan) -> InlineKeyboardMarkup:
    """Confirm / Decline of a proposed plan (bound to its version)."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(tr, "meds.card.confirm", MedCB(action="ok", plan=plan.id, v=plan.version)),
                _button(tr, "meds.card.decline", MedCB(action="no", plan=plan.id, v=plan.version)),
            ]
        ]
    )


async def _doctor_card(uow: UnitOfWork, tr: Translator, plan: MedicationPlan) -> Html:
    doctor = await uow.doctors.get(plan.doctor_id)
    case = await flow.case_of(uow, plan)
    if doctor is None:
        return Html("—")
    if case is None:
        return tr("meds.doctor_name", name=(await cases.doctor_card(uow, doctor))["name"] or "—")
    return await case_view.doctor_card(uow, tr, doctor, case)


async def card_text(
    uow: UnitOfWork, tr: Translator, plan: MedicationPlan, *, changed: bool = False
) -> Html:
    """The plan card a patient confirms: who sent it, the plan, and what reminders do."""
    v = await flow.view(uow, plan)
    return tr(
        "meds.card.changed" if changed else "meds.card.new",
        card=await _doctor_card(uow, tr, plan),
        plan=plan_text(tr, v),
    )


async def send_card(uow: UnitOfWork, plan: MedicationPlan, *, changed: bool = False) -> bool:
    """The doctor sent a plan (or a change): the card goes to the patient. False when there is
    nobody to send it to (erased)."""
    patient = await uow.patients.get(plan.patient_id)
    if patient is None:
        return False
    tr = Translator(patient.locale)
    reply = Replier(uow, "patient", patient.tg_user_id)
    text = await card_text(uow, tr, plan, changed=changed)
    await reply.text(text, card_keyboard(tr, plan), protect=True)
    return True


async def tell_patient(uow: UnitOfWork, plan: MedicationPlan, msgid: str) -> None:
    """A short notice about a plan (ended by the doctor), naming the medicine."""
    patient = await uow.patients.get(plan.patient_id)
    if patient is None:
        return
    tr = Translator(patient.locale)
    v = await flow.view(uow, plan)
    reply = Replier(uow, "patient", patient.tg_user_id)
    await reply.text(tr(msgid, name=v.name, card=await _doctor_card(uow, tr, plan)), protect=True)


async def _tell_doctor(uow: UnitOfWork, plan: MedicationPlan, msgid: str, **params: Any) -> None:
    doctor = await uow.doctors.get(plan.doctor_id)
    if doctor is None:
        return
    dtr, dreply = case_view.to_doctor(uow, doctor)
    case = await flow.case_of(uow, plan)
    number = case.number if case is not None else 0
    name = await cases.patient_first_name(uow, case) if case is not None else "—"
    v = await flow.view(uow, plan)
    await dreply.text(
        dtr(msgid, number=number, name=name, medicine=v.name, **params), protect=True
    )


# -- /meds ------------------------------------------------------------------------------------


def plan_keyboard(tr: Translator, plan: MedicationPlan) -> InlineKeyboardMarkup:
    """Pause or Resume, and Export, for one plan in /meds."""
    toggle = (
        _button(tr, "meds.pause", MedCB(action="pause", plan=plan.id, v=plan.version))
        if plan.status == Status.ACTIVE
        else _button(tr, "meds.resume", MedCB(action="resume", plan=plan.id, v=plan.version))
    )
    export = _button(tr, "meds.export", MedCB(action="exp", plan=plan.id, v=plan.version))
    return InlineKeyboardMarkup(inline_keyboard=[[toggle, export]])


def settings_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """Quiet hours, time zone and shifting times."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(tr, "meds.quiet", MedCB(action="quiet")),
                _button(tr, "meds.zone", MedCB(action="zone")),
            ],
            [
                _button(tr, "meds.shift.earlier", MedCB(action="sh", value="-60")),
                _button(tr, "meds.shift.later", MedCB(action="sh", value="+60")),
            ],
            [
                _button(tr, "meds.shift.type", MedCB(action="sh", value="type")),
                _button(tr, "meds.shift.reset", MedCB(action="sh", value="0")),
            ],
        ]
    )


def cancel_keyboard(tr: Translator, *extra: InlineKeyboardButton) -> InlineKeyboardMarkup:
    """A Cancel button under a typed question (with any extra buttons first)."""
    return InlineKeyboardMarkup(
        inline_keyboard=[[*extra], [_button(tr, "meds.cancel", MedCB(action="x"))]]
        if extra
        else [[_button(tr, "meds.cancel", MedCB(action="x"))]]
    )


def shift_text(tr: Translator, minutes: int) -> str:
    """+1 h 30 min, −2 h, or "none"."""
    if minutes == 0:
        return tr.plain("meds.shift.none")
    sign = "+" if minutes > 0 else "−"
    h, m = divmod(abs(minutes), 60)
    return tr.plain("meds.shift.amount", sign=sign, hours=h, minutes=m)


async def settings_text(tr: Translator, patient: Patient, plans: list[MedicationPlan]) -> Html:
    """Where the patient's reminders stand: quiet hours, time zone, shift."""
    quiet = (
        tr.plain("meds.quiet.range", start=patient.quiet_start, end=patient.quiet_end)
        if patient.quiet_start and patient.quiet_end
        else tr.plain("meds.quiet.off")
    )
    return tr(
        "meds.settings",
        quiet=quiet,
        timezone=patient.timezone or "UTC",
        shift=shift_text(tr, flow.current_shift(plans)),
    )


async def _onboarded(
    patient: Patient | None, tr: Translator, reply: Replier, settings: Settings
) -> Patient | None:
    if patient is None or step_of(patient) is not Step.DONE:
        await reply.text(tr("error.finish_onboarding"))
        await show_step(reply, tr, patient, settings)
        return None
    return patient


@routes.message(Command("meds"))
async def on_meds(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The patient's plans (waiting ones with their card again), then the settings."""
    if (p := await _onboarded(patient, tr, reply, settings)) is None:
        return
    await state.update_data(meds=None, meds_plan=None, meds_v=None)
    waiting = await flow.plans_of_patient(uow, p.id, (Status.PROPOSED,))
    plans = await flow.shown_plans(uow, p)
    if not waiting and not plans:
        await reply.text(tr("meds.none"))
        return
    for plan in waiting:
        await reply.text(await card_text(uow, tr, plan), card_keyboard(tr, plan), protect=True)
    for plan in plans:
        v = await flow.view(uow, plan)
        msgid = "meds.item.active" if plan.status == Status.ACTIVE else "meds.item.paused"
        await reply.text(tr(msgid, plan=plan_text(tr, v)), plan_keyboard(tr, plan), protect=True)
    if plans:
        await reply.text(await settings_text(tr, p, plans), settings_keyboard(tr))


# -- buttons: one handler per action, for an onboarded patient (anyone else's press is refused
# first). A bad value is answered as a UserError; a button of an old version or of another
# person (NotAllowed) by :func:`on_refused_button`. ------------------------------------------


def _not_onboarded(query: CallbackQuery, patient: Patient | None) -> bool:
    """Filter: the presser is no patient here yet, or has not finished onboarding."""
    return patient is None or step_of(patient) is not Step.DONE


@routes.callback_query(MedCB.filter(), _not_onboarded)
async def on_button_too_early(
    query: CallbackQuery,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """A plan or /meds button from someone not (yet) onboarded here: refused, audited."""
    await refused_button(uow, query, patient, "not_onboarded")
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))


async def _no_buttons(
    query: CallbackQuery, reply: Replier, markup: InlineKeyboardMarkup | None = None
) -> None:
    """The pressed message's buttons go (or become ``markup``)."""
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, markup)


@routes.callback_query(MedCB.filter(F.action == "ok"))
async def on_confirm(
    query: CallbackQuery,
    callback_data: MedCB,
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """Confirm a proposed plan: reminders start, the doctor is told."""
    plan = await flow.confirm(uow, patient, callback_data.plan, callback_data.v, utcnow())
    await reply.answer_callback(query.id)
    await _no_buttons(query, reply)
    v = await flow.view(uow, plan)
    await reply.text(tr("meds.confirmed", name=v.name))
    await _tell_doctor(uow, plan, "meds.doctor.confirmed")


@routes.callback_query(MedCB.filter(F.action == "no"))
async def on_decline(
    query: CallbackQuery,
    callback_data: MedCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """Decline a proposed plan: a reason may be typed (or "no reason", or back to the card)."""
    plan = await flow.patient_plan(uow, patient, callback_data.plan, callback_data.v)
    if plan.status != Status.PROPOSED:
        raise NotAllowed("stale")
    await state.update_data(meds="decline", meds_plan=plan.id, meds_v=plan.version, field=None)
    await reply.answer_callback(query.id)
    same = {"plan": plan.id, "v": plan.version}
    rows = [
        [_button(tr, "meds.decline.no_reason", MedCB(action="nor", **same))],
        [_button(tr, "meds.decline.back", MedCB(action="back", **same))],
    ]
    await reply.text(tr("meds.decline.ask"), InlineKeyboardMarkup(inline_keyboard=rows))


@routes.callback_query(MedCB.filter(F.action == "nor"))
async def on_decline_no_reason(
    query: CallbackQuery,
    callback_data: MedCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """Decline without a reason."""
    cb = callback_data
    await _decline(uow, state, patient, tr, reply, cb.plan, cb.v, None)
    await reply.answer_callback(query.id)


@routes.callback_query(MedCB.filter(F.action == "back"))
async def on_decline_back(
    query: CallbackQuery,
    callback_data: MedCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """Not declining after all: the card again."""
    plan = await flow.patient_plan(uow, patient, callback_data.plan, callback_data.v)
    await state.update_data(meds=None, meds_plan=None, meds_v=None)
    await reply.answer_callback(query.id)
    await reply.text(await card_text(uow, tr, plan), card_keyboard(tr, plan), protect=True)


@routes.callback_query(MedCB.filter(F.action.in_({"pause", "resume"})))
async def on_pause_or_resume(
    query: CallbackQuery,
    callback_data: MedCB,
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """Pause (no reminders) or resume a plan; the button turns into the other one."""
    change = flow.pause if callback_data.action == "pause" else flow.resume
    plan = await change(uow, patient, callback_data.plan, callback_data.v, utcnow())
    await reply.answer_callback(query.id)
    await _no_buttons(query, reply, plan_keyboard(tr, plan))
    v = await flow.view(uow, plan)
    await reply.text(tr(f"meds.{callback_data.action}d", name=v.name))


@routes.callback_query(MedCB.filter(F.action == "exp"))
async def on_export(
    query: CallbackQuery,
    callback_data: MedCB,
    uow: UnitOfWork,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """The plan as a FHIR MedicationRequest Bundle (a JSON file)."""
    plan, data = await flow.export(uow, patient, callback_data.plan, utcnow())
    await reply.answer_callback(query.id)
    await reply.document(
        f"careline-medication-{plan.id[:8]}-v{plan.version}.json",
        data,
        tr("meds.export.caption"),
    )


@routes.callback_query(MedCB.filter(F.action == "x"))
async def on_cancel_button(
    query: CallbackQuery, state: FSMContext, patient: Patient, tr: Translator, reply: Replier
) -> None:
    """Cancel under a typed question: nothing changes."""
    await state.update_data(meds=None, meds_plan=None, meds_v=None)
    await reply.answer_callback(query.id)
    await reply.text(tr("meds.edit_cancelled"))


@routes.callback_query(MedCB.filter(F.action.in_({"quiet", "zone"})))
async def on_ask_setting(
    query: CallbackQuery,
    callback_data: MedCB,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """Quiet hours or time zone: the question (the answer is typed)."""
    await state.update_data(meds=callback_data.action, meds_plan=None, meds_v=None, field=None)
    await reply.answer_callback(query.id)
    if callback_data.action == "quiet":
        off = _button(tr, "meds.quiet.turn_off", MedCB(action="qoff"))
        await reply.text(tr("meds.quiet.ask"), cancel_keyboard(tr, off))
    else:
        await reply.text(
            tr("meds.zone.ask", timezone=patient.timezone or "UTC"), cancel_keyboard(tr)
        )


@routes.callback_query(MedCB.filter(F.action == "qoff"))
async def on_quiet_off(
    query: CallbackQuery,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """No quiet hours."""
    await flow.set_quiet(uow, patient, "off")
    await state.update_data(meds=None)
    await reply.answer_callback(query.id)
    await reply.text(tr("meds.quiet.saved_off"))


@routes.callback_query(MedCB.filter(F.action == "sh"))
async def on_shift(
    query: CallbackQuery,
    callback_data: MedCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """An hour earlier or later, back to the plans' times, or "type the minutes"."""
    if callback_data.value == "type":
        if not await flow.shown_plans(uow, patient):
            raise NotAllowed("no_plans")
        await state.update_data(meds="shift", meds_plan=None, meds_v=None, field=None)
        await reply.answer_callback(query.id)
        await reply.text(tr("meds.shift.ask", max=flow.SHIFT_MAX // 60), cancel_keyboard(tr))
        return
    await _shift(uow, patient, tr, reply, callback_data.value)
    await reply.answer_callback(query.id)


@routes.callback_query(MedCB.filter())
async def on_unknown_button(
    query: CallbackQuery, uow: UnitOfWork, patient: Patient, tr: Translator, reply: Replier
) -> None:
    """A button of an action this bot does not have (forged, or from an older version)."""
    await refused_button(uow, query, patient)
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))


@routes.errors(ExceptionTypeFilter(NotAllowed), pressed(MedCB))
async def on_refused_button(event: ErrorEvent, **data: Any) -> bool:
    """A button of an old version of the plan, of another person or of nothing left to do:
    audited; the plan that is over, or having no plans, is said as such, else "stale"."""
    query, no = event.update.callback_query, event.exception
    uow, tr, reply = data["uow"], data["tr"], data["reply"]
    assert query is not None and isinstance(no, NotAllowed)
    await refused_button(uow, query, data.get("patient"), no.reason)
    if no.reason == "over":
        await reply.answer_callback(query.id)
        await reply.text(tr("meds.card.over"))
    elif no.reason == "no_plans":
        await reply.answer_callback(query.id)
        await reply.text(tr("meds.none"))
    else:
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        await reply.text(tr("meds.stale"))
    return True


async def _shift(
    uow: UnitOfWork, patient: Patient, tr: Translator, reply: Replier, value: str
) -> None:
    try:
        minutes = int(value)
    except ValueError:
        raise NotAllowed("stale") from None
    if abs(minutes) > flow.SHIFT_MAX:
        raise NotAllowed("stale")
    by = value.startswith(("+", "-"))
    total = await flow.shift(uow, patient, minutes, utcnow(), by=by)
    plans = await flow.shown_plans(uow, patient)
    lines = []
    for plan in plans:
        v = await flow.view(uow, plan)
        lines.append(tr.plain("meds.shift.line", name=v.name, when=when_text(tr, v)))
    await reply.text(tr("meds.shift.saved", shift=shift_text(tr, total), plans="\n".join(lines)))


async def _decline(
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
    plan_id: str,
    version: int,
    reason: str | None,
) -> None:
    plan = await flow.decline(uow, patient, plan_id, version, reason, utcnow())
    await state.update_data(meds=None, meds_plan=None, meds_v=None)
    v = await flow.view(uow, plan)
    await reply.text(tr("meds.declined", name=v.name))
    if reason and reason.strip():
        await _tell_doctor(uow, plan, "meds.doctor.declined_reason", reason=reason.strip())
    else:
        await _tell_doctor(uow, plan, "meds.doctor.declined")


# -- typed answers ----------------------------------------------------------------------------


async def _editing(
    message: Message, state: FSMContext, patient: Patient | None
) -> bool | dict[str, Any]:
    """Only while a typed answer for a plan or /meds is expected."""
    if patient is None:
        return False
    data = await state.get_data()
    mode = data.get("meds")
    if mode not in MODES:
        return False
    return {"mode": mode, "meds_data": data}


@routes.message(Command("cancel"), _editing)
async def on_cancel(message: Message, state: FSMContext, tr: Translator, reply: Replier) -> None:
    """/cancel while a typed answer is expected: nothing changes."""
    await state.update_data(meds=None, meds_plan=None, meds_v=None)
    await reply.text(tr("meds.edit_cancelled"))


@routes.message(F.text, ~F.text.startswith("/"), _editing)
async def on_typed(
    message: Message,
    mode: str,
    meds_data: dict[str, Any],
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """A decline reason, quiet hours, a time zone or minutes to shift. A bad answer says why
    and the question stays."""
    assert message.text is not None
    now = utcnow()
    try:
        if mode == "decline":
            await _decline(
                uow, state, patient, tr, reply,
                str(meds_data.get("meds_plan") or ""), int(meds_data.get("meds_v") or 0),
                message.text,
            )  # fmt: skip
        elif mode == "quiet":
            quiet = await flow.set_quiet(uow, patient, message.text)
            await state.update_data(meds=None)
            if quiet is None:
                await reply.text(tr("meds.quiet.saved_off"))
            else:
                await reply.text(tr("meds.quiet.saved", start=quiet[0], end=quiet[1]))
        elif mode == "zone":
            zone = await flow.set_zone(uow, patient, message.text, now)
            await state.update_data(meds=None)
            await reply.text(tr("meds.zone.saved", timezone=zone))
        elif mode == "shift":
            minutes = flow.parse_shift(message.text)
            await state.update_data(meds=None)
            await _shift(uow, patient, tr, reply, f"{minutes:+d}")
    except BadInput as bad:
        await reply.text(tr(bad.msgid, **bad.params))
        await reply.text(tr("meds.still_waiting"), cancel_keyboard(tr))
    except NotAllowed as no:
        await refused(uow, message, patient, "meds", no.reason)
        await state.update_data(meds=None, meds_plan=None, meds_v=None)
        await reply.text(tr("meds.stale"))


@routes.message(~F.text, _editing)
async def on_other(message: Message, tr: Translator, reply: Replier) -> None:
    """A photo, sticker or command-less thing while a typed answer is expected."""
    await reply.text(tr("meds.type_please"), cancel_keyboard(tr))
