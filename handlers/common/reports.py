"""Abuse reports as the admins see them, shared by both bots: a doctor's report comes from the
doctor bot, a blocked patient's appeal from the patient bot; both go to the admins in the doctor
bot with the decision buttons (handled in handlers.doctor.reports)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.settings import Settings
from flows import consultation as cases
from flows import trust
from flows.doctors import admin_ref
from flows.domain import AbuseReport
from flows.outbox import Replier
from locales import Translator
from storage.uow import UnitOfWork


class ReportCB(CallbackData, prefix="rp"):
    """An admin's decision on a report (``block``/``dismiss``) or appeal (``lift``/``keep``)."""

    action: str
    report: str


def report_buttons(
    tr: Translator, report: AbuseReport, actions: tuple[str, str]
) -> InlineKeyboardMarkup:
    """The two decision buttons of a report (block, dismiss) or an appeal (lift, keep)."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain(f"trust.admin.{action}"),
                    callback_data=ReportCB(action=action, report=report.id).pack(),
                )
                for action in actions
            ]
        ]
    )


async def report_text(uow: UnitOfWork, tr: Translator, report: AbuseReport) -> str:
    """A report (or appeal) as an admin sees it: case number, reporting doctor, the patient's
    first name and random id, the reason (and appeal). Viewing is audited."""
    case = await uow.consultations.get(report.consultation_id)
    doctor = await uow.doctors.get(report.doctor_id)
    doctor_name = (await uow.doctors.get_field(doctor, "name") or "—") if doctor else "—"
    patient = await uow.patients.get(report.patient_id)
    name = (
        await cases.patient_first_name(uow, case)
        if case is not None and patient is not None
        else tr.plain("trust.admin.patient_gone")
    )
    reason = await uow.reports.text(report, "reason_enc") if patient is not None else None
    number = case.number if case is not None else "?"
    if report.status == trust.APPEALED:
        appeal = await uow.reports.text(report, "appeal_enc") if patient is not None else None
        return tr(
            "trust.admin.appeal",
            number=number,
            patient=name,
            patient_id=report.patient_id[:8],
            reason=reason or "—",
            appeal=appeal or "—",
        )
    return tr(
        "trust.admin.report",
        number=number,
        doctor=doctor_name,
        patient=name,
        patient_id=report.patient_id[:8],
        at=report.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        reason=reason or "—",
    )


async def send_to_admins(uow: UnitOfWork, settings: Settings, report: AbuseReport) -> None:
    """A new report, or an appeal, to every admin with the decision buttons."""
    tr = Translator(settings.default_locale)
    reply = Replier(uow, "doctor", None)
    actions = ("lift", "keep") if report.status == trust.APPEALED else ("block", "dismiss")
    for admin_id in settings.admin_ids:
        text = await report_text(uow, tr, report)
        await uow.audit.record(admin_ref(admin_id), "report.view", "abuse_report", report.id, {})
        await reply.text(text, report_buttons(tr, report, actions), chat_id=admin_id, protect=True)
