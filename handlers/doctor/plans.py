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
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from bot.telegram.reply import Replier
from flows import consultation as cases
from flows import medication as flow
from flows.medication import REVIEW, STEPS, BadInput, NotAllowed
from handlers.common.routes import RouteTable
from handlers.doctor.cases import case_from_command
from handlers.doctor.queue import refuse
from handlers.patient import meds as patient_meds
from locales import Translator
from storage.models import Consultation, Doctor, MedicationPlan, utcnow
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


def _verified(doctor: Doctor | None) -> bool:
    return doctor is not None and cases.is_verified(doctor, utcnow())


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
async def on_plan(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Starts a plan for the case's patient (or shows the open wizard's question again)."""
    if doctor is None or not _verified(doctor):
        await refuse(uow, doctor, "plan", tr, reply)
        return
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
async def on_plans(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """The doctor's live plans for the case's patient, each with Change and End."""
    if doctor is None or not _verified(doctor):
        await refuse(uow, doctor, "plans", tr, reply)
        return
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
    if doctor is None or not _verified(doctor):
        return False
    plan = await flow.wizard_of(uow, doctor)
    return {"plan": plan} if plan is not None else False


@routes.message(Command("cancel"), _wizard)
async def on_cancel(
    message: Message, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """Drops the draft (or abandons a change: the plan stays as it was)."""
    plan = await flow.cancel_wizard(uow, doctor, utcnow())
    msgid = (
        "meds.plan.cancelled"
        if plan is None or plan.status == "cancelled"
        else ("meds.plan.change_cancelled")
    )
    await reply.text(tr(msgid))


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


@routes.callback_query(PlanCB.filter())
async def on_button(
    query: CallbackQuery,
    callback_data: PlanCB,
    uow: UnitOfWork,
    doctor: Doctor | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """Wizard and /plans buttons; one of another step, plan or doctor is stale."""
    cb = callback_data
    now = utcnow()
    if doctor is None or not _verified(doctor):
        await reply.answer_callback(query.id)
        await refuse(uow, doctor, "plan_button", tr, reply)
        return
    message_id = query.message.message_id if query.message is not None else None
    try:
        if cb.action == "pick":
            plan, _ = await flow.choose(uow, doctor, cb.plan, cb.step, cb.value, now)
            await reply.answer_callback(query.id)
            await show_step(uow, tr, reply, plan)
            return
        if cb.action == "type":
            open_plan = await flow.wizard_of(uow, doctor)
            if open_plan is None or open_plan.id != cb.plan or open_plan.step != cb.step:
                raise NotAllowed("stale")
            await reply.answer_callback(query.id)
            hint = "meds.plan.type_days" if cb.step == "days" else "meds.plan.type_period"
            await reply.text(tr(hint))
            return
        if cb.action == "keep":
            plan = await flow.keep(uow, doctor, cb.plan, now)
            await reply.answer_callback(query.id)
            await show_step(uow, tr, reply, plan)
            return
        if cb.action == "steps":
            plan = await flow.goto(uow, doctor, cb.plan, REVIEW, now)
            rows = [
                [_b(tr, f"meds.step.{s}", PlanCB(action="goto", plan=plan.id, step=s))]
                for s in STEPS
            ]
            rows.append(
                [_b(tr, "meds.plan.back", PlanCB(action="goto", plan=plan.id, step=REVIEW))]
            )
            await reply.answer_callback(query.id)
            await reply.text(
                tr("meds.plan.which_step"), InlineKeyboardMarkup(inline_keyboard=rows)
            )
            return
        if cb.action == "goto":
            plan = await flow.goto(uow, doctor, cb.plan, cb.step, now)
            await reply.answer_callback(query.id)
            await show_step(uow, tr, reply, plan)
            return
        if cb.action == "cancel":
            open_plan = await flow.wizard_of(uow, doctor)
            if open_plan is None or open_plan.id != cb.plan:
                raise NotAllowed("stale")
            await on_cancel_button(uow, doctor, tr, reply)
            await reply.answer_callback(query.id)
            if message_id is not None:
                await reply.edit_markup(message_id, None)
            return
        if cb.action == "send":
            plan, changed = await flow.send(uow, doctor, cb.plan, now)
            await reply.answer_callback(query.id)
            if message_id is not None:
                await reply.edit_markup(message_id, None)
            number, name = await _header(uow, plan)
            sent = await patient_meds.send_card(uow, plan, changed=changed)
            msgid = "meds.plan.sent" if sent else "meds.plan.no_patient"
            await reply.text(tr(msgid, number=number, name=name, version=plan.version))
            return
        if cb.action == "chg":
            plan = await flow.begin_change(uow, doctor, cb.plan, now)
            await reply.answer_callback(query.id)
            await show_step(uow, tr, reply, plan)
            return
        if cb.action == "end":
            found = await flow.get(uow, cb.plan)
            if found is None or found.doctor_id != doctor.id:
                raise NotAllowed("stale")
            rows = [
                [_b(tr, "meds.plans.end_yes", PlanCB(action="endok", plan=cb.plan))],
            ]
            v = await flow.view(uow, found)
            await reply.answer_callback(query.id)
            await reply.text(
                tr("meds.plans.end_ask", medicine=v.name),
                InlineKeyboardMarkup(inline_keyboard=rows),
            )
            return
        if cb.action == "endok":
            plan = await flow.end(uow, doctor, cb.plan, now)
            await reply.answer_callback(query.id)
            if message_id is not None:
                await reply.edit_markup(message_id, None)
            number, name = await _header(uow, plan)
            await reply.text(tr("meds.plans.ended", number=number, name=name))
            await patient_meds.tell_patient(uow, plan, "meds.ended_by_doctor")
            return
    except BadInput as bad:
        await reply.answer_callback(query.id)
        await reply.text(tr(bad.msgid, **bad.params))
        return
    except NotAllowed as no:
        if no.reason == "draft_open" and no.plan is not None:
            await reply.answer_callback(query.id)
            await reply.text(tr("meds.plan.already_open"))
            await show_step(uow, tr, reply, no.plan)
            return
        if no.reason == "state":
            await reply.answer_callback(query.id)
            await reply.text(tr("meds.plans.not_live"))
            return
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))


async def on_cancel_button(
    uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """The Cancel button of the wizard: as /cancel."""
    plan = await flow.cancel_wizard(uow, doctor, utcnow())
    msgid = (
        "meds.plan.cancelled"
        if plan is None or plan.status == "cancelled"
        else ("meds.plan.change_cancelled")
    )
    await reply.text(tr(msgid))
