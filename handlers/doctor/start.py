"""Doctor bot: /start (starts or resumes an application), /status, /help and the language."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.settings import Settings
from flows import appointments as apf
from flows import doctors as flow
from flows.domain import Doctor, utcnow
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from handlers.doctor import desk, render
from locales import LOCALES, Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.start")


@routes.message(CommandStart())
async def on_start(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A newcomer sees what the bot is, the language choice and the first question (with the
    deep link ``?start=pharmacist``: a pharmacist's application; ``?start=desk_<token>``: an
    admin's invitation to be a hospital's desk); an applicant picks up where
    they left off; anyone else sees where they stand."""
    assert message.from_user is not None
    await state.clear()
    payload = (command.args or "").strip()
    if payload.startswith(apf.INVITE_PREFIX):
        await desk.join(message, payload, uow, tr, reply, settings)
        return
    pharmacist = payload == "pharmacist"
    if doctor is None:
        doctor, _ = await flow.start(uow, message.from_user.id, tr.locale)
        if pharmacist:
            flow.set_role(doctor, "pharmacist")
        await reply.text(
            tr("doctor.start.pharmacist" if pharmacist else "doctor.start"), render.languages()
        )
        await render.show_step(reply, tr, doctor, uow)
        return
    if doctor.status == flow.APPLYING:
        if pharmacist and doctor.role != "pharmacist":
            flow.set_role(doctor, "pharmacist")
            await reply.text(tr("doctor.start.pharmacist"))
        await reply.text(tr("doctor.apply.resume"))
        await render.show_step(reply, tr, doctor, uow)
        return
    await render.show_status(reply, tr, doctor, uow)


@routes.message(Command("status"))
async def on_status(
    message: Message, uow: UnitOfWork, doctor: Doctor | None, tr: Translator, reply: Replier
) -> None:
    """Where the person's application or verification stands."""
    await render.show_status(reply, tr, doctor, uow)


@routes.message(Command("help"))
async def on_help(message: Message, doctor: Doctor | None, tr: Translator, reply: Replier) -> None:
    """What the doctor bot is and how to start; a verified doctor gets their commands."""
    if doctor is not None and flow.is_verified(doctor, utcnow()):
        msgid = {"pharmacist": "doctor.help.pharmacist", "desk": "doctor.help.desk"}
        await reply.text(tr(msgid.get(doctor.role, "doctor.help.verified")))
        return
    await reply.text(tr("doctor.help"))


@routes.message(Command("language"))
async def on_language_command(message: Message, tr: Translator, reply: Replier) -> None:
    """The three languages to choose from."""
    await reply.text(tr("doctor.choose_language"), render.languages())


@routes.callback_query(render.DocLangCB.filter(F.code.in_(LOCALES)))
async def on_language(
    query: CallbackQuery,
    callback_data: render.DocLangCB,
    uow: UnitOfWork,
    doctor: Doctor | None,
    reply: Replier,
) -> None:
    """Switches to the chosen language and repeats the current question in it."""
    await reply.answer_callback(query.id)
    tr = Translator(callback_data.code)
    if doctor is None:
        doctor, _ = await flow.start(uow, query.from_user.id, callback_data.code)
    doctor.locale = callback_data.code
    await reply.text(tr("doctor.language_changed"))
    if doctor.status == flow.APPLYING:
        await render.show_step(reply, tr, doctor, uow)
