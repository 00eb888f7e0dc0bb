"""Doctor bot: callback data, keyboards and the messages of the application and decisions."""

from __future__ import annotations

from datetime import datetime

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from flows import doctors as flow
from flows import questionnaire
from flows.doctors import Application, Step
from flows.domain import Doctor
from flows.outbox import Replier
from flows.trust import rating_of
from locales import LOCALES, Html, Translator
from storage.uow import UnitOfWork


class DocLangCB(CallbackData, prefix="dlang"):
    """Pick the doctor bot's language."""

    code: str


class ApplyCB(CallbackData, prefix="dap"):
    """A button of the application (department tick, done, back, restart, confirm)."""

    action: str
    value: str = ""


class AdminCB(CallbackData, prefix="dadm"):
    """An admin's decision on an application."""

    action: str
    doctor_id: str


ASK = {
    Step.NAME: "doctor.apply.ask_name",
    Step.LICENCE: "doctor.apply.ask_licence",
    Step.AUTHORITY: "doctor.apply.ask_authority",
    Step.HOSPITAL: "doctor.apply.ask_hospital",
    Step.DEPARTMENTS: "doctor.apply.ask_departments",
    Step.TITLE: "doctor.apply.ask_title",
    Step.YEARS: "doctor.apply.ask_years",
    Step.PHOTO: "doctor.apply.ask_photo",
    Step.PHONE: "doctor.apply.ask_phone",
}


def departments() -> tuple[str, ...]:
    """The clinic's department ids."""
    return questionnaire.load().departments


def languages() -> InlineKeyboardMarkup:
    """Each language in its own name."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=Translator(code).plain("language.name"),
                    callback_data=DocLangCB(code=code).pack(),
                )
                for code in LOCALES
            ]
        ]
    )


def _button(tr: Translator, msgid: str, action: str, value: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=tr.plain(msgid), callback_data=ApplyCB(action=action, value=value).pack()
    )


def back_only(tr: Translator) -> InlineKeyboardMarkup:
    """A single Back button."""
    return InlineKeyboardMarkup(inline_keyboard=[[_button(tr, "doctor.apply.back", "back")]])


def department_picker(tr: Translator, chosen: tuple[str, ...]) -> InlineKeyboardMarkup:
    """Department toggles (ticked when chosen), Done and Back."""
    buttons = [
        InlineKeyboardButton(
            text=("✅ " if dept in chosen else "") + tr.plain(f"dept.{dept}"),
            callback_data=ApplyCB(action="dept", value=dept).pack(),
        )
        for dept in departments()
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    rows.append(
        [_button(tr, "doctor.apply.back", "back"), _button(tr, "doctor.apply.done", "done")]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def share_phone(tr: Translator) -> ReplyKeyboardMarkup:
    """The contact button (own number only) and Back."""
    return ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text=tr.plain("doctor.apply.share_phone"), request_contact=True)],
            [KeyboardButton(text=tr.plain("doctor.apply.back"))],
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def confirm_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """Send the application, start again or go back."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(tr, "doctor.apply.confirm", "confirm")],
            [
                _button(tr, "doctor.apply.back", "back"),
                _button(tr, "doctor.apply.restart", "restart"),
            ],
        ]
    )


def decision_keyboard(tr: Translator, doctor_id: str) -> InlineKeyboardMarkup:
    """Approve / Reject for admins."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain("doctor.admin.approve"),
                    callback_data=AdminCB(action="approve", doctor_id=doctor_id).pack(),
                ),
                InlineKeyboardButton(
                    text=tr.plain("doctor.admin.reject"),
                    callback_data=AdminCB(action="reject", doctor_id=doctor_id).pack(),
                ),
            ]
        ]
    )


def application_text(tr: Translator, app: Application, msgid: str) -> Html:
    """The application's fields in a message (``msgid``: the applicant's or the admin's)."""
    return tr(
        msgid,
        doctor_id=app.doctor_id,
        name=app.name,
        licence=app.licence,
        authority=app.authority,
        hospital=app.hospital,
        departments=(
            tr.plain("rx.role.pharmacist")
            if app.role == "pharmacist"
            else ", ".join(tr.plain(f"dept.{d}") for d in app.departments)
        ),
        title=app.title,
        years=app.years if app.years is not None else "",
        phone=app.phone,
    )


async def show_step(reply: Replier, tr: Translator, doctor: Doctor, uow: UnitOfWork) -> None:
    """The current question of an applicant (or where their application stands)."""
    if doctor.status != flow.APPLYING:
        await show_status(reply, tr, doctor, uow)
        return
    step = flow.step_of(doctor)
    if step is Step.NAME:
        await reply.text(tr(ASK[step]))
    elif step is Step.DEPARTMENTS:
        chosen = flow.parse_departments(doctor.departments)
        await reply.text(tr(ASK[step]), department_picker(tr, chosen))
    elif step is Step.PHONE:
        await reply.text(tr(ASK[step]), share_phone(tr))
    elif step is Step.CONFIRM:
        app = await flow.application(uow, doctor)
        await reply.text(
            application_text(tr, app, "doctor.apply.summary"), confirm_keyboard(tr), protect=True
        )
    elif step in ASK:
        await reply.text(tr(ASK[step]), back_only(tr))


def _date(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment is not None else ""


async def show_status(
    reply: Replier,
    tr: Translator,
    doctor: Doctor | None,
    uow: UnitOfWork,
    now: datetime | None = None,
) -> None:
    """Where the person's application or verification stands."""
    if doctor is None:
        await reply.text(tr("doctor.status.unknown"))
        return
    if doctor.status == flow.APPLYING:
        step = flow.step_of(doctor)
        position = flow.ORDER.index(step) + 1 if step in flow.ORDER else len(flow.ORDER)
        await reply.text(tr("doctor.status.applying_step", step=position, total=len(flow.ORDER)))
        return
    if doctor.status == flow.VERIFIED and flow.is_verified(doctor, now):
        rating = rating_of(doctor)
        line = (
            tr("doctor.help.pharmacist")
            if doctor.role == "pharmacist"
            else tr("trust.profile_rating", average=rating.average, count=rating.count)
            if rating.average is not None
            else tr("trust.profile_unrated")
        )
        status = tr("doctor.status.verified", until=_date(doctor.verified_until))
        await reply.text(Html(status + "\n\n" + line))
        return
    problem = flow.verification_problem(doctor, now) or "doctor.status.unknown"
    reason = await uow.doctors.get_field(doctor, "decision_reason")
    text = tr(problem)
    if reason and doctor.status in (flow.REJECTED, flow.SUSPENDED):
        text = Html(text + "\n\n" + tr("doctor.status.reason", reason=reason))
    markup = None
    if doctor.status == flow.REJECTED:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[_button(tr, "doctor.apply.again", "reapply")]]
        )
    await reply.text(text, markup)
