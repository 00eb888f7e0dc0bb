"""Doctor bot, admins: ``/ops``, the operator's view (doctors on duty, queues, waits, SLA
breaches, stranded cases per department) with a Refresh button that edits the message, and
``/ops week`` (or its button): the last seven days as a chart (handlers/doctor/ops_alerts.py)."""

from __future__ import annotations

from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import doctors as doctors_flow
from flows import ops as flow
from flows.domain import Doctor, utcnow
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from handlers.doctor.admin import ADMIN, on_not_admin
from handlers.doctor.ops_alerts import send_week
from handlers.doctor.ops_render import report
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.ops")


class OpsCB(CallbackData, prefix="ops"):
    """The operator's view's buttons (``refresh``, ``week``)."""

    action: str


def keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """Refresh (the same message, with the figures of now) and the last seven days."""
    buttons = [
        InlineKeyboardButton(text=tr.plain(msgid), callback_data=OpsCB(action=action).pack())
        for action, msgid in (("refresh", "ops.refresh"), ("week", "ops.week.button"))
    ]
    return InlineKeyboardMarkup(inline_keyboard=[buttons])


async def _text(uow: UnitOfWork, tr: Translator, settings: Settings) -> str:
    view = await flow.overview(uow, utcnow(), settings.timezone)
    return report(tr, view, settings.timezone, rich=True)


# Someone who is not an admin gets the refusal of every admin command (audited the same way).
routes.message(~ADMIN, Command("ops"))(on_not_admin)


async def _week(uow: UnitOfWork, tr: Translator, settings: Settings, chat_id: int) -> None:
    week = await flow.weekly_due(uow, utcnow(), settings.timezone)  # plans Mondays too
    await send_week(uow, week, tr, chat_id)


@routes.message(ADMIN, Command("ops"))
async def on_ops(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The admin sees the table of every department and the clinic, with Refresh; with
    ``week``, the chart of the last seven days; anything else: what /ops knows."""
    args = (command.args or "").strip().lower()
    if not args:
        await reply.text(await _text(uow, tr, settings), keyboard(tr))
    elif args == "week":
        await _week(uow, tr, settings, message.chat.id)
    else:
        await reply.text(tr("ops.usage"))


@routes.callback_query(OpsCB.filter())
async def on_refresh(
    query: CallbackQuery,
    callback_data: OpsCB,
    uow: UnitOfWork,
    doctor: Doctor | None,
    is_admin: bool,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Refresh: the message shows the figures of now; the week button sends the chart. A
    non-admin is refused and audited."""
    if not is_admin:
        actor = doctors_flow.doctor_ref(doctor) if doctor else f"tg:{query.from_user.id}"
        await doctors_flow.refused_attempt(uow, actor, "-", "ops")
        await reply.answer_callback(query.id, tr.plain("doctor.admin.not_admin"), alert=True)
        return
    if callback_data.action == "week":
        await reply.answer_callback(query.id, tr.plain("ops.week.coming"))
        await _week(uow, tr, settings, query.from_user.id)
        return
    if callback_data.action != "refresh" or query.message is None:
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    await reply.answer_callback(query.id, tr.plain("ops.refreshed"))
    await reply.edit_text(query.message.message_id, await _text(uow, tr, settings), keyboard(tr))
