"""Doctor bot, admins (CARELINE_ADMIN_IDS): pending applications, approve / reject with a
reason, suspend and reinstate verified doctors."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Command, CommandObject, CommandStart, MagicData, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.settings import Settings
from flows import doctors as flow
from flows.doctors import NotFound, Refused
from flows.domain import Doctor
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from handlers.doctor import render
from handlers.doctor.apply import send_application
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.admin")

ADMIN = MagicData(F.is_admin)


class AdminFlow(StatesGroup):
    """Routing only: the admin is typing a rejection reason (FSM data holds the id)."""

    reason = State()


async def tell_doctor(reply: Replier, doctor: Doctor, msgid: str, **params: object) -> None:
    """A decision message to the doctor, in the doctor's language."""
    await reply.text(Translator(doctor.locale)(msgid, **params), chat_id=doctor.tg_user_id)


@routes.message(ADMIN, CommandStart(), MagicData(F.doctor.is_(None)))
async def on_admin_start(
    message: Message, state: FSMContext, tr: Translator, reply: Replier
) -> None:
    """An admin sees what they can do here."""
    await state.clear()
    await reply.text(tr("doctor.admin.welcome"))


@routes.message(~ADMIN, Command("pending", "suspend", "reinstate"))
async def on_not_admin(
    message: Message, uow: UnitOfWork, doctor: Doctor | None, tr: Translator, reply: Replier
) -> None:
    """An admin command from someone who is not an admin: refused and audited."""
    assert message.from_user is not None
    actor = flow.doctor_ref(doctor) if doctor else f"tg:{message.from_user.id}"
    command = (message.text or "/").split()[0].lstrip("/")[:16]
    await flow.refused_attempt(uow, actor, "-", command)
    await reply.text(tr("doctor.admin.not_admin"))


@routes.message(ADMIN, Command("pending"))
async def on_pending(message: Message, uow: UnitOfWork, tr: Translator, reply: Replier) -> None:
    """Every application waiting for a decision, each with its photo and buttons."""
    assert message.from_user is not None
    pending = await uow.doctors.with_status(flow.PENDING)
    if not pending:
        await reply.text(tr("doctor.admin.none_pending"))
        return
    for doctor in pending[:20]:
        await send_application(uow, reply, tr, doctor, message.from_user.id, via="request")


@routes.callback_query(render.AdminCB.filter())
async def on_decision(
    query: CallbackQuery,
    callback_data: render.AdminCB,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor | None,
    is_admin: bool,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Approve: the doctor is verified and told so. Reject: the admin is asked for the
    reason. A non-admin is refused; a decided application says so."""
    if not is_admin:
        actor = flow.doctor_ref(doctor) if doctor else f"tg:{query.from_user.id}"
        await flow.refused_attempt(uow, actor, callback_data.doctor_id, callback_data.action)
        await reply.answer_callback(query.id, tr.plain("doctor.admin.not_admin"), alert=True)
        return
    await reply.answer_callback(query.id)
    actor = flow.admin_ref(query.from_user.id)
    try:
        if callback_data.action == "approve":
            approved = await flow.approve(
                uow,
                callback_data.doctor_id,
                actor,
                jurisdiction=settings.jurisdiction.value,
                days=settings.doctor_verification_days,
            )
        elif callback_data.action == "reject":
            target = await flow.find(uow, callback_data.doctor_id)
            if target.status != flow.PENDING:
                raise flow.AlreadyDecided(target.status)
            await state.set_state(AdminFlow.reason)
            await state.set_data({"doctor_id": target.id})
            await reply.text(tr("doctor.admin.ask_reason", doctor_id=target.id[:8]))
            return
        else:
            raise flow.InvalidStep("unknown admin action")
    except Refused as refused:
        await reply.text(tr(refused.msgid, **refused.params))
        return
    except NotFound:
        await reply.text(tr("doctor.admin.not_found"))
        return
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    until = approved.verified_until.date().isoformat() if approved.verified_until else ""
    await reply.text(tr("doctor.admin.approved", doctor_id=approved.id[:8], until=until))
    await tell_doctor(reply, approved, "doctor.decision.approved", until=until)


@routes.message(ADMIN, StateFilter(AdminFlow.reason), Command("cancel"))
async def on_reason_cancel(
    message: Message, state: FSMContext, tr: Translator, reply: Replier
) -> None:
    """The admin changed their mind: nothing is decided."""
    await state.clear()
    await reply.text(tr("doctor.admin.cancelled"))


@routes.message(ADMIN, StateFilter(AdminFlow.reason), F.text)
async def on_reason(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> None:
    """The rejection reason: the application is rejected and the applicant told why."""
    assert message.text is not None and message.from_user is not None
    doctor_id = str((await state.get_data()).get("doctor_id", ""))
    try:  # a reason that cannot be taken (BadInput) is a UserError; the next text is the reason
        rejected = await flow.reject(
            uow, doctor_id, flow.admin_ref(message.from_user.id), message.text
        )
    except (Refused, NotFound) as exc:
        await state.clear()
        msgid = exc.msgid if isinstance(exc, Refused) else "doctor.admin.not_found"
        params = exc.params if isinstance(exc, Refused) else {}
        await reply.text(tr(msgid, **params))
        return
    await state.clear()
    reason = await uow.doctors.get_field(rejected, "decision_reason") or ""
    await reply.text(tr("doctor.admin.rejected", doctor_id=rejected.id[:8]))
    await tell_doctor(reply, rejected, "doctor.decision.rejected", reason=reason)


@routes.message(ADMIN, Command("suspend"))
async def on_suspend(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    tr: Translator,
    reply: Replier,
) -> None:
    """``/suspend <id> <reason>``: the doctor is suspended and told why."""
    assert message.from_user is not None
    ref, _, reason = (command.args or "").strip().partition(" ")
    if not ref or not reason.strip():
        await reply.text(tr("doctor.admin.suspend_usage"))
        return
    try:  # a bad reason (BadInput) or a refusal (Refused) is a UserError
        target = await flow.find(uow, ref)
        suspended = await flow.suspend(
            uow, target.id, flow.admin_ref(message.from_user.id), reason
        )
    except NotFound:
        await reply.text(tr("doctor.admin.not_found"))
        return
    text = await uow.doctors.get_field(suspended, "decision_reason") or ""
    await reply.text(tr("doctor.admin.suspended", doctor_id=suspended.id[:8]))
    await tell_doctor(reply, suspended, "doctor.decision.suspended", reason=text)


@routes.message(ADMIN, Command("reinstate"))
async def on_reinstate(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """``/reinstate <id>``: the suspension is lifted and the doctor told so."""
    assert message.from_user is not None
    ref = (command.args or "").strip()
    if not ref:
        await reply.text(tr("doctor.admin.reinstate_usage"))
        return
    try:  # a refusal (Refused) is a UserError
        target = await flow.find(uow, ref)
        back = await flow.reinstate(
            uow,
            target.id,
            flow.admin_ref(message.from_user.id),
            days=settings.doctor_verification_days,
        )
    except NotFound:
        await reply.text(tr("doctor.admin.not_found"))
        return
    until = back.verified_until.date().isoformat() if back.verified_until else ""
    await reply.text(tr("doctor.admin.reinstated", doctor_id=back.id[:8]))
    await tell_doctor(reply, back, "doctor.decision.reinstated", until=until)
