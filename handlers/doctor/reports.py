"""Abuse reports in the doctor bot: a doctor's ``/report <what happened>`` on one of their
cases, the admins' review (block the patient / dismiss), ``/reports`` for admins, and the
review of a blocked patient's appeal (unblock / keep blocked). The patient is told each
decision in the patient bot, in their language."""

from __future__ import annotations

from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.settings import Settings
from flows import consultation as cases
from flows import trust
from flows.consultation import NotAllowed
from flows.doctors import admin_ref, doctor_ref
from flows.domain import Consultation, Doctor, utcnow
from flows.outbox import Replier
from handlers.common import cases as view
from handlers.common.reports import ReportCB, report_buttons, report_text, send_to_admins
from handlers.common.routes import RouteTable
from handlers.doctor.guard import verified
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.reports")


async def _reported_case(
    uow: UnitOfWork, doctor: Doctor, message: Message, state: FSMContext
) -> Consultation | None:
    """The case of the replied-to tagged message, else the chosen one; the doctor's own."""
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.is_bot:
        number = view.tag_of(replied.text or replied.caption)
        if number is not None:
            return await uow.consultations.by_number(number)
    chosen = (await state.get_data()).get("case")
    return await uow.consultations.get(chosen) if chosen else None


@routes.message(Command("report"))
@verified("report")
async def on_report(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """``/report <what happened>`` about the patient of the replied-to (or chosen) case."""
    now = utcnow()
    case = await _reported_case(uow, doctor, message, state)
    raw = (message.text or "").partition(" ")[2]
    if case is None:
        await reply.text(tr("trust.report.usage"))
        return
    try:
        report = await trust.report(uow, doctor, case, raw, now=now)
    except NotAllowed as no:
        if no.reason == "not_yours":
            await reply.text(tr("consult.doctor.choose"))
        elif no.reason == "already":
            await reply.text(tr("trust.report.already", number=case.number))
        elif no.reason == "too_long":
            await reply.text(tr("trust.report.too_long", max=trust.REASON_MAX))
        else:
            await reply.text(tr("trust.report.usage"))
        return
    await reply.text(tr("trust.report.sent", number=case.number))
    await send_to_admins(uow, settings, report)


@routes.message(Command("reports"))
async def on_reports(
    message: Message,
    uow: UnitOfWork,
    doctor: Doctor | None,
    is_admin: bool,
    tr: Translator,
    reply: Replier,
) -> None:
    """Admins: every open report and pending appeal, each with its buttons."""
    assert message.from_user is not None
    if not is_admin:
        actor = doctor_ref(doctor) if doctor else f"tg:{message.from_user.id}"
        await trust.refused(uow, actor, "list", "reports")
        await reply.text(tr("doctor.admin.not_admin"))
        return
    waiting = await uow.reports.with_status(trust.OPEN, trust.APPEALED)
    if not waiting:
        await reply.text(tr("trust.admin.none"))
        return
    for report in waiting[:20]:
        await uow.audit.record(
            admin_ref(message.from_user.id), "report.view", "abuse_report", report.id, {}
        )
        actions = ("lift", "keep") if report.status == trust.APPEALED else ("block", "dismiss")
        await reply.text(
            await report_text(uow, tr, report), report_buttons(tr, report, actions), protect=True
        )


@routes.callback_query(ReportCB.filter())
async def on_decision(
    query: CallbackQuery,
    callback_data: ReportCB,
    uow: UnitOfWork,
    doctor: Doctor | None,
    is_admin: bool,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """An admin decides; the reporting doctor, the patient and the doctors of cancelled cases
    are told. Anyone else pressing (a forged button) is refused and audited."""
    if not is_admin:
        actor = doctor_ref(doctor) if doctor else f"tg:{query.from_user.id}"
        await trust.refused(uow, actor, callback_data.report, callback_data.action)
        await reply.answer_callback(query.id, tr.plain("doctor.admin.not_admin"), alert=True)
        return
    admin = admin_ref(query.from_user.id)
    now = utcnow()
    steps = {
        "block": (trust.uphold, "trust.admin.upheld"),
        "dismiss": (trust.dismiss, "trust.admin.dismissed"),
        "lift": (trust.lift, "trust.admin.lifted"),
        "keep": (trust.keep_blocked, "trust.admin.kept"),
    }
    if callback_data.action not in steps:
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    step, msgid = steps[callback_data.action]
    try:
        decision = await step(uow, callback_data.report, admin, now=now)
    except NotAllowed:
        await reply.answer_callback(query.id, tr.plain("trust.admin.decided"), alert=True)
        return
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    await reply.text(tr(msgid, count=len(decision.cancelled)))
    await _tell_others(uow, settings, callback_data.action, decision)


async def _tell_others(
    uow: UnitOfWork, settings: Settings, action: str, decision: trust.Decision
) -> None:
    report, patient = decision.report, decision.patient
    case = await uow.consultations.get(report.consultation_id)
    if action in ("block", "dismiss"):
        reporter = await uow.doctors.get(report.doctor_id)
        if reporter is not None and case is not None:
            rtr, rreply = view.to_doctor(uow, reporter)
            msgid = "trust.report.upheld" if action == "block" else "trust.report.dismissed"
            await rreply.text(rtr(msgid, number=case.number))
    for cancelled, doctor in decision.cancelled:
        if doctor is not None and doctor.id != report.doctor_id:
            dtr, dreply = view.to_doctor(uow, doctor)
            name = await cases.patient_first_name(uow, cancelled)
            await dreply.text(
                dtr("trust.case_cancelled_blocked", number=cancelled.number, name=name)
            )
    if patient is None or action == "dismiss":
        return
    ptr, preply = Translator(patient.locale), Replier(uow, "patient", patient.tg_user_id)
    number = settings.local_emergency_number
    if action == "block":
        await preply.text(ptr("trust.blocked", emergency_number=number))
        if decision.cancelled:
            numbers = ", ".join(f"#{c.number}" for c, _ in decision.cancelled)
            await preply.text(ptr("trust.blocked.cancelled", numbers=numbers))
    elif action == "lift":
        await preply.text(ptr("trust.appeal.lifted"))
    else:
        await preply.text(ptr("trust.appeal.refused", emergency_number=number))
