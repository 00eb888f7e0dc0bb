"""The doctor's medication plans: ``/plan`` (a wizard: medicine and strength, dose, times,
days, period, food note, then a review card with Send to patient / Change a step / Cancel),
``/plans`` (the doctor's live plans for a case's patient, each with Change and End) and
``/cancel`` of the open wizard.

The case is found like ``/close`` finds it: ``/plan 12`` names it, else the tagged message
replied to, else the chosen case (closed cases of the doctor's own count: the patient is
under their care). While a wizard is open the doctor's plain texts are its answers, so this
router goes before the case router (an answer must never be relayed to the patient).
Careline never suggests medicines or doses: those two steps have no buttons at all.
"""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.filters import Command, CommandObject, ExceptionTypeFilter
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
from flows.domain import Consultation, Doctor, MedicationPlan, utcnow
from flows.medication import REVIEW, STEPS, BadInput, NotAllowed
from flows.outbox import Replier
from handlers.common.errors import pressed
from handlers.common.routes import RouteTable
from handlers.doctor.guard import can_work, case_from_command, verified
from handlers.patient import meds as patient_meds
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.plans")
MSG_ASK = {
    "name": "meds.plan.ask_name",
    "dose": "meds.plan.ask_dose",
    "times": "meds.plan.ask_times",
    "days": "meds.plan.ask_days",
    "period": "meds.plan.ask_period",
    "food": "meds.plan.ask_food",
}


class PlanCB(CallbackData, prefix="dp"):
    """A wizard or /plans button (``plan``: the plan's id)."""

    action: str  # pick | type | send | steps | goto | keep | cancel | chg | end | endok
    plan: str
    step: str = ""
    value: str = ""


def _b(tr: Translator, msgid: str, cb: PlanCB, **params: Any) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=tr.plain(msgid, **params), callback_data=cb.pack())


async def _header(uow: UnitOfWork, plan: MedicationPlan) -> tuple[int, str]:
    case = await flow.case_of(uow, plan)
    if case is None:
        return 0, "—"
    return case.number, await cases.patient_first_name(uow, case)


async def show_step(uow: UnitOfWork, tr: Translator, reply: Replier, plan: MedicationPlan) -> None:
    """Ask the wizard's current question (or show the review card)."""
    number, name = await _header(uow, plan)
    values = await flow.draft_values(uow, plan)
    step = plan.step
    cancel = _b(tr, "meds.plan.cancel", PlanCB(action="cancel", plan=plan.id))
    rows: list[list[InlineKeyboardButton]] = []
    if step == REVIEW:
        v = await flow.view(uow, plan, draft=True)
        body = patient_meds.plan_text(tr, v)
        rows = [
            [_b(tr, "meds.plan.send", PlanCB(action="send", plan=plan.id))],
            [_b(tr, "meds.plan.change_step", PlanCB(action="steps", plan=plan.id))],
            [cancel],
        ]
        msgid = "meds.plan.review_change" if plan.status != "draft" else "meds.plan.review"
        await reply.text(
            tr(msgid, number=number, name=name, plan=body),
            InlineKeyboardMarkup(inline_keyboard=rows),
            protect=True,
        )
        return
    pick = {"plan": plan.id, "step": step}
    if step == "days":
        rows.append(
            [
                _b(tr, "meds.days.every", PlanCB(action="pick", value="every", **pick)),
                _b(tr, "meds.days.weekdays", PlanCB(action="pick", value="weekdays", **pick)),
            ]
        )
        rows.append([_b(tr, "meds.days.type", PlanCB(action="type", **pick))])
    elif step == "period":
        rows.append(
            [
                _b(tr, "meds.period.days", PlanCB(action="pick", value="7", **pick), n=7),
                _b(tr, "meds.period.days", PlanCB(action="pick", value="30", **pick), n=30),
                _b(tr, "meds.period.ongoing", PlanCB(action="pick", value="ongoing", **pick)),
            ]
        )
        rows.append([_b(tr, "meds.period.type", PlanCB(action="type", **pick))])
    elif step == "food":
        rows.extend(
            [
                [_b(tr, f"meds.food.{f}", PlanCB(action="pick", value=f, **pick))]
                for f in flow.FOODS
            ]
        )
    if flow.can_keep(values):
        rows.append([_b(tr, "meds.plan.keep", PlanCB(action="keep", plan=plan.id))])
    rows.append([cancel])
    await reply.text(
        tr(MSG_ASK[step], number=number, name=name),
        InlineKeyboardMarkup(inline_keyboard=rows),
    )


async def _case_for(
    uow: UnitOfWork,
    doctor: Doctor,
    message: Message,
    command: CommandObject,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> Consultation | None:
    """The case named by ``/plan 12``, else the replied-to or chosen case (any state)."""
    return await case_from_command(
        uow, doctor, message, command, state, tr, reply,
        refused="medplan.refused", not_yours="meds.plan.not_your_case",
        which="meds.plan.which_case",
    )  # fmt: skip


@routes.message(Command("plan"))
@verified("plan")
async def on_plan(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Starts a plan for the case's patient (or shows the open wizard's question again)."""
    open_plan = await flow.wizard_of(uow, doctor)
    if open_plan is not None:
        await reply.text(tr("meds.plan.already_open"))
        await show_step(uow, tr, reply, open_plan)
        return
    case = await _case_for(uow, doctor, message, command, state, tr, reply)
    if case is None:
        return
    try:
        ladder = (
            settings.remind_again_minutes,
            settings.caregiver_after_minutes,
            settings.doctor_after_minutes,
        )
        plan = await flow.begin(uow, doctor, case, utcnow(), ladder)
    except NotAllowed:
        await reply.text(tr("meds.plan.which_case"))
        return
    await state.update_data(case=case.id)
    await show_step(uow, tr, reply, plan)


@routes.message(Command("plans"))
@verified("plans")
async def on_plans(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """The doctor's live plans for the case's patient, each with Change and End."""
    case = await _case_for(uow, doctor, message, command, state, tr, reply)
    if case is None:
        return
    plans = await flow.doctor_plans(uow, doctor, case.patient_id, utcnow())
    name = await cases.patient_first_name(uow, case)
    if not plans:
        await reply.text(tr("meds.plans.none", number=case.number, name=name))
        return
    for plan in plans:
        v = await flow.view(uow, plan)
        rows = [
            [
                _b(tr, "meds.plans.change", PlanCB(action="chg", plan=plan.id)),
                _b(tr, "meds.plans.end", PlanCB(action="end", plan=plan.id)),
            ]
        ]
        await reply.text(
            tr(
                "meds.plans.item",
                number=case.number,
                name=name,
                status=tr.plain(f"meds.status.{plan.status}"),
                version=plan.version,
                plan=patient_meds.plan_text(tr, v),
            ),
            InlineKeyboardMarkup(inline_keyboard=rows),
            protect=True,
        )


async def _wizard(
    message: Message, uow: UnitOfWork, doctor: Doctor | None
) -> bool | dict[str, Any]:
    """Only while this (verified) doctor has a plan wizard open."""
    if not can_work(doctor):
        return False
    plan = await flow.wizard_of(uow, doctor)
    return {"plan": plan} if plan is not None else False


async def _cancel_wizard(uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier) -> None:
    """Drops the draft (or abandons a change: the plan stays as it was)."""
    plan = await flow.cancel_wizard(uow, doctor, utcnow())
    msgid = (
        "meds.plan.cancelled"
        if plan is None or plan.status == "cancelled"
        else ("meds.plan.change_cancelled")
    )
    await reply.text(tr(msgid))


@routes.message(Command("cancel"), _wizard)
async def on_cancel(
    message: Message, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """Drops the draft (or abandons a change: the plan stays as it was)."""
    await _cancel_wizard(uow, doctor, tr, reply)


@routes.message(F.text, ~F.text.startswith("/"), _wizard)
async def on_answer(
    message: Message,
    plan: MedicationPlan,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """A typed answer to the wizard's step; a bad one says why and the step stays."""
    assert message.text is not None
    try:
        await flow.answer(uow, doctor, plan, message.text, utcnow())
    except BadInput as bad:
        await reply.text(tr(bad.msgid, **bad.params))
    await show_step(uow, tr, reply, plan)


# -- buttons: one handler per action. A verified doctor only (others are refused as
# ``plan_button``); a bad value is answered as a UserError; a button of another step, plan
# or doctor (NotAllowed) by :func:`on_refused_button`. --------------------------------------


async def _no_buttons(query: CallbackQuery, reply: Replier) -> None:
    """The pressed message's buttons go (the step they belonged to is over)."""
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)


@routes.callback_query(PlanCB.filter(F.action == "pick"))
@verified("plan_button")
async def on_pick(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """A choice of the current step (days, period, food)."""
    cb = callback_data
    plan, _ = await flow.choose(uow, doctor, cb.plan, cb.step, cb.value, utcnow())
    await reply.answer_callback(query.id)
    await show_step(uow, tr, reply, plan)


@routes.callback_query(PlanCB.filter(F.action == "type"))
@verified("plan_button")
async def on_type(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """ "Type it": how to write the days or the period."""
    open_plan = await flow.wizard_of(uow, doctor)
    if (
        open_plan is None
        or open_plan.id != callback_data.plan
        or open_plan.step != callback_data.step
    ):
        raise NotAllowed("stale")
    await reply.answer_callback(query.id)
    hint = "meds.plan.type_days" if callback_data.step == "days" else "meds.plan.type_period"
    await reply.text(tr(hint))


@routes.callback_query(PlanCB.filter(F.action == "keep"))
@verified("plan_button")
async def on_keep(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Keep the step's value as it is (changing a plan) and go on."""
    plan = await flow.keep(uow, doctor, callback_data.plan, utcnow())
    await reply.answer_callback(query.id)
    await show_step(uow, tr, reply, plan)


@routes.callback_query(PlanCB.filter(F.action == "steps"))
@verified("plan_button")
async def on_steps(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """ "Change a step": the steps to go back to, and Back to the review."""
    plan = await flow.goto(uow, doctor, callback_data.plan, REVIEW, utcnow())
    rows = [[_b(tr, f"meds.step.{s}", PlanCB(action="goto", plan=plan.id, step=s))] for s in STEPS]
    rows.append([_b(tr, "meds.plan.back", PlanCB(action="goto", plan=plan.id, step=REVIEW))])
    await reply.answer_callback(query.id)
    await reply.text(tr("meds.plan.which_step"), InlineKeyboardMarkup(inline_keyboard=rows))


@routes.callback_query(PlanCB.filter(F.action == "goto"))
@verified("plan_button")
async def on_goto(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Back to one step (or to the review)."""
    plan = await flow.goto(uow, doctor, callback_data.plan, callback_data.step, utcnow())
    await reply.answer_callback(query.id)
    await show_step(uow, tr, reply, plan)


@routes.callback_query(PlanCB.filter(F.action == "cancel"))
@verified("plan_button")
async def on_cancel_button(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """The wizard's Cancel: as /cancel."""
    open_plan = await flow.wizard_of(uow, doctor)
    if open_plan is None or open_plan.id != callback_data.plan:
        raise NotAllowed("stale")
    await _cancel_wizard(uow, doctor, tr, reply)
    await reply.answer_callback(query.id)
    await _no_buttons(query, reply)


@routes.callback_query(PlanCB.filter(F.action == "send"))
@verified("plan_button")
async def on_send(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Send to the patient: the card goes out for their confirmation."""
    plan, changed = await flow.send(uow, doctor, callback_data.plan, utcnow())
    await reply.answer_callback(query.id)
    await _no_buttons(query, reply)
    number, name = await _header(uow, plan)
    sent = await patient_meds.send_card(uow, plan, changed=changed)
    msgid = "meds.plan.sent" if sent else "meds.plan.no_patient"
    await reply.text(tr(msgid, number=number, name=name, version=plan.version))


@routes.callback_query(PlanCB.filter(F.action == "chg"))
@verified("plan_button")
async def on_change(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Change a live plan: the wizard opens on a copy of it."""
    plan = await flow.begin_change(uow, doctor, callback_data.plan, utcnow())
    await reply.answer_callback(query.id)
    await show_step(uow, tr, reply, plan)


@routes.callback_query(PlanCB.filter(F.action == "end"))
@verified("plan_button")
async def on_end(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """End a plan: asks to confirm."""
    found = await flow.get(uow, callback_data.plan)
    if found is None or found.doctor_id != doctor.id:
        raise NotAllowed("stale")
    rows = [[_b(tr, "meds.plans.end_yes", PlanCB(action="endok", plan=callback_data.plan))]]
    v = await flow.view(uow, found)
    await reply.answer_callback(query.id)
    await reply.text(
        tr("meds.plans.end_ask", medicine=v.name), InlineKeyboardMarkup(inline_keyboard=rows)
    )


@routes.callback_query(PlanCB.filter(F.action == "endok"))
@verified("plan_button")
async def on_end_confirmed(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Yes, end it: the plan ends and the patient is told."""
    plan = await flow.end(uow, doctor, callback_data.plan, utcnow())
    await reply.answer_callback(query.id)
    await _no_buttons(query, reply)
    number, name = await _header(uow, plan)
    await reply.text(tr("meds.plans.ended", number=number, name=name))
    await patient_meds.tell_patient(uow, plan, "meds.ended_by_doctor")


@routes.callback_query(PlanCB.filter())
@verified("plan_button")
async def on_unknown_button(query: CallbackQuery, tr: Translator, reply: Replier) -> None:
    """A button of an action this bot does not have (forged, or from an older version)."""
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))


@routes.errors(ExceptionTypeFilter(NotAllowed), pressed(PlanCB))
async def on_refused_button(event: ErrorEvent, **data: Any) -> bool:
    """A plan button that does not fit (another step, plan or doctor): a draft already open
    is shown again, a plan no longer live says so, anything else is a stale button."""
    query, no = event.update.callback_query, event.exception
    uow, tr, reply = data["uow"], data["tr"], data["reply"]
    assert query is not None and isinstance(no, NotAllowed)
    if no.reason == "draft_open" and no.plan is not None:
        await reply.answer_callback(query.id)
        await reply.text(tr("meds.plan.already_open"))
        await show_step(uow, tr, reply, no.plan)
    elif no.reason == "state":
        await reply.answer_callback(query.id)
        await reply.text(tr("meds.plans.not_live"))
    else:
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
    return True
