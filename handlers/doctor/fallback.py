"""Doctor bot: whatever the other routers did not take. Strangers get the help text;
applicants a short note and their question again; doctors who may not work (pending,
rejected, suspended, expired) are told where they stand."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import CallbackQuery, ChatMemberUpdated, ErrorEvent, Message

from flows import doctors as flow
from flows.domain import Doctor
from flows.outbox import Replier
from handlers.common.cases import tag_of
from handlers.common.routes import RouteTable
from handlers.doctor import render
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.fallback")


async def _audit_case_attempt(uow: UnitOfWork, doctor: Doctor | None, message: Message) -> None:
    """A reply to a tagged case message by someone who may not work on cases: audited."""
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or not replied.from_user.is_bot:
        return
    number = tag_of(replied.text or replied.caption)
    if number is None:
        return
    user = message.from_user.id if message.from_user else "?"
    actor = flow.doctor_ref(doctor) if doctor is not None else f"tg:{user}"
    await uow.audit.record(actor, "consultation.refused", "case_number", str(number), {})


@routes.callback_query()
async def on_stale_button(
    query: CallbackQuery, uow: UnitOfWork, doctor: Doctor | None, tr: Translator, reply: Replier
) -> None:
    """An old or forged button: says so and repeats the current question."""
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))
    if doctor is not None and doctor.status == flow.APPLYING:
        await render.show_step(reply, tr, doctor, uow)


@routes.message(F.text)
async def on_text(
    message: Message, uow: UnitOfWork, doctor: Doctor | None, tr: Translator, reply: Replier
) -> None:
    """Unknown text or command: the help text, the open question, or the doctor's status."""
    await _audit_case_attempt(uow, doctor, message)
    if doctor is None or flow.is_verified(doctor):
        await reply.text(tr("doctor.help"))
    elif doctor.status == flow.APPLYING:
        await reply.text(tr("doctor.error.not_understood"))
        await render.show_step(reply, tr, doctor, uow)
    else:
        await render.show_status(reply, tr, doctor, uow)


@routes.message()
async def on_unsupported(
    message: Message, uow: UnitOfWork, doctor: Doctor | None, tr: Translator, reply: Replier
) -> None:
    """Stickers, locations, voice and the like."""
    await _audit_case_attempt(uow, doctor, message)
    if doctor is not None and doctor.status == flow.APPLYING:
        await reply.text(tr("doctor.error.unexpected"))
        await render.show_step(reply, tr, doctor, uow)
    elif doctor is None or flow.is_verified(doctor):
        await reply.text(tr("doctor.help"))
    else:
        await render.show_status(reply, tr, doctor, uow)


@routes.my_chat_member()
async def on_membership(event: ChatMemberUpdated, doctor: Doctor | None) -> None:
    """The doctor blocked or unblocked the bot: remember whether they can be reached."""
    if doctor is not None and event.chat.type == "private":
        doctor.unreachable = event.new_chat_member.status in ("kicked", "left")


@routes.errors(ExceptionTypeFilter(flow.NotVerified))
async def on_not_verified(event: ErrorEvent, **data: object) -> bool:
    """A doctor who may not work used a doctor feature: why not, in their language."""
    reply, tr = data.get("reply"), data.get("tr")
    exc = event.exception
    if isinstance(reply, Replier) and isinstance(tr, Translator) and reply.chat_id:
        if event.update.callback_query is not None:
            await reply.answer_callback(event.update.callback_query.id)
        assert isinstance(exc, flow.NotVerified)
        await reply.text(tr(exc.msgid, **exc.params))
    return True


@routes.errors(ExceptionTypeFilter(flow.InvalidStep))
async def on_invalid_step(event: ErrorEvent, **data: object) -> bool:
    """A button from another step: says so and repeats the applicant's question."""
    reply, tr, uow = data.get("reply"), data.get("tr"), data.get("uow")
    doctor = data.get("doctor")
    if isinstance(reply, Replier) and isinstance(tr, Translator) and reply.chat_id:
        if event.update.callback_query is not None:
            await reply.answer_callback(event.update.callback_query.id)
        await reply.text(tr("error.stale_button"))
        applying = isinstance(doctor, Doctor) and doctor.status == flow.APPLYING
        if applying and isinstance(doctor, Doctor) and isinstance(uow, UnitOfWork):
            await render.show_step(reply, tr, doctor, uow)
    return True
