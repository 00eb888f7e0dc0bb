"""Doctor bot: the application's answers (typed, buttons, licence photo, contact)."""

from __future__ import annotations

from aiogram import Bot, F
from aiogram.filters import MagicData
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bot.settings import Settings
from flows import doctors as flow
from flows.doctors import BadInput, InvalidStep, Step
from flows.domain import Doctor
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from handlers.doctor import render
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.apply")

PNG_MAGIC = b"\x89PNG"
APPLYING = MagicData(F.doctor.status == flow.APPLYING)


async def _bad(reply: Replier, tr: Translator, bad: BadInput) -> None:
    """A short re-prompt saying what is wanted; the question stays open."""
    await reply.text(tr(bad.msgid, **bad.params))


@routes.callback_query(render.ApplyCB.filter(F.action == "reapply"))
async def on_reapply(
    query: CallbackQuery, uow: UnitOfWork, doctor: Doctor | None, tr: Translator, reply: Replier
) -> None:
    """A rejected applicant starts a new application: the first question."""
    if doctor is None:
        raise InvalidStep("no application")
    await flow.reapply(uow, doctor)
    await reply.answer_callback(query.id)
    await render.show_step(reply, tr, doctor, uow)


@routes.message(APPLYING, F.text, ~F.text.startswith("/"))
async def on_text(
    message: Message, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """A typed answer: the next question, or why the answer was not taken and the same
    question again."""
    assert message.text is not None
    step = flow.step_of(doctor)
    if step is Step.PHONE and message.text == tr.plain("doctor.apply.back"):
        flow.go_back(doctor)
        await reply.text(tr("doctor.apply.going_back"), ReplyKeyboardRemove())
        await render.show_step(reply, tr, doctor, uow)
        return
    if step not in flow.TEXT_STEPS:
        hint = {
            Step.PHONE: "doctor.error.phone_use_button",
            Step.PHOTO: "doctor.error.photo",
        }.get(step, "doctor.error.use_buttons")
        await reply.text(tr(hint), render.share_phone(tr) if step is Step.PHONE else None)
        return
    try:
        await flow.answer_text(uow, doctor, message.text)
    except BadInput as bad:
        await _bad(reply, tr, bad)
        return
    await render.show_step(reply, tr, doctor, uow)


@routes.message(APPLYING, F.photo | F.document.mime_type.startswith("image/"))
async def on_photo(
    message: Message, bot: Bot, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """The licence photo: stored encrypted, then the phone question; too big or at another
    step, a short note and the current question."""
    if flow.step_of(doctor) is not Step.PHOTO:
        await reply.text(tr("doctor.error.unexpected"))
        await render.show_step(reply, tr, doctor, uow)
        return
    if message.photo:
        file_id, size = message.photo[-1].file_id, message.photo[-1].file_size
    else:
        assert message.document is not None
        file_id, size = message.document.file_id, message.document.file_size
    try:
        flow.check_photo_size(size)
        downloaded = await bot.download(file_id)
        data = downloaded.read() if downloaded is not None else b""
        await flow.give_photo(uow, doctor, data)
    except BadInput as bad:
        await _bad(reply, tr, bad)
        return
    await reply.text(tr("doctor.apply.photo_saved"))
    await render.show_step(reply, tr, doctor, uow)


@routes.message(APPLYING, F.contact)
async def on_contact(
    message: Message, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """The applicant's own phone number from the contact button (nobody else's)."""
    assert message.contact is not None and message.from_user is not None
    if flow.step_of(doctor) is not Step.PHONE:
        await reply.text(tr("doctor.error.unexpected"), ReplyKeyboardRemove())
        await render.show_step(reply, tr, doctor, uow)
        return
    if message.contact.user_id != message.from_user.id:
        await reply.text(tr("doctor.error.phone_not_own"), render.share_phone(tr))
        return
    try:
        await flow.give_phone(uow, doctor, message.contact.phone_number)
    except BadInput as bad:
        await reply.text(tr(bad.msgid, **bad.params), render.share_phone(tr))
        return
    await reply.text(tr("doctor.apply.phone_saved"), ReplyKeyboardRemove())
    await render.show_step(reply, tr, doctor, uow)


@routes.callback_query(APPLYING, render.ApplyCB.filter(F.action == "dept"))
async def on_department(
    query: CallbackQuery,
    callback_data: render.ApplyCB,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Ticks or unticks a department on the same message."""
    chosen = flow.toggle_department(doctor, callback_data.value, render.departments())
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, render.department_picker(tr, chosen))


@routes.callback_query(APPLYING, render.ApplyCB.filter(F.action == "done"))
async def on_departments_done(
    query: CallbackQuery, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """Departments chosen: the title question (or a reminder to choose at least one)."""
    try:
        flow.finish_departments(doctor)
    except BadInput as bad:
        await reply.answer_callback(query.id, tr.plain(bad.msgid, **bad.params), alert=True)
        return
    await reply.answer_callback(query.id)
    await render.show_step(reply, tr, doctor, uow)


@routes.callback_query(APPLYING, render.ApplyCB.filter(F.action == "back"))
async def on_back(
    query: CallbackQuery, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """The previous question again."""
    flow.go_back(doctor)
    await reply.answer_callback(query.id)
    await render.show_step(reply, tr, doctor, uow)


@routes.callback_query(APPLYING, render.ApplyCB.filter(F.action == "restart"))
async def on_restart(
    query: CallbackQuery, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """Everything cleared: the first question again."""
    await flow.restart(uow, doctor)
    await reply.answer_callback(query.id)
    await render.show_step(reply, tr, doctor, uow)


@routes.callback_query(APPLYING, render.ApplyCB.filter(F.action == "confirm"))
async def on_confirm(
    query: CallbackQuery,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The application is sent: the applicant is told it waits for review; each admin gets
    it with the licence photo and Approve / Reject."""
    await flow.submit(uow, doctor)
    await reply.answer_callback(query.id)
    await reply.text(tr("doctor.apply.submitted"))
    admin_tr = Translator(settings.default_locale)
    for admin_id in settings.admin_ids:
        await send_application(uow, reply, admin_tr, doctor, admin_id, via="submitted")


async def send_application(
    uow: UnitOfWork, reply: Replier, tr: Translator, doctor: Doctor, admin_id: int, *, via: str
) -> None:
    """One application to one admin (audited as a view): summary, photo, decision buttons."""
    app, photo = await flow.view_application(uow, doctor, flow.admin_ref(admin_id), via=via)
    await reply.text(
        render.application_text(tr, app, "doctor.admin.application"),
        chat_id=admin_id,
        protect=True,
    )
    if photo is not None:
        ext = ".png" if photo.startswith(PNG_MAGIC) else ".jpg"
        await reply.document(
            f"licence-{doctor.id[:8]}{ext}",
            photo,
            tr("doctor.admin.licence_caption", doctor_id=doctor.id[:8]),
            chat_id=admin_id,
            protect=True,
        )
    await reply.text(
        tr("doctor.admin.decide", doctor_id=doctor.id[:8]),
        render.decision_keyboard(tr, doctor.id),
        chat_id=admin_id,
    )
