"""Doctor bot, admins: ``/services`` — the clinic's consultation services and prices.

``/services`` lists them (each with a Disable / Enable button), ``/services add ...`` adds one
and ``/services price <id> <price>`` changes a price; the same as ``python bot.py services``.
Anyone else is refused, and the attempt is audited."""

from __future__ import annotations

from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import services
from flows.doctors import doctor_ref
from flows.domain import Doctor
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.services")

#: Services listed in one /services answer (a clinic has a handful; more is a typo loop).
LIST_MAX = 30


class SvcCB(CallbackData, prefix="dsv"):
    """An admin's Disable / Enable button of /services."""

    action: str  # off | on
    id: str


def _actor(query_or_message: Message | CallbackQuery) -> str:
    assert query_or_message.from_user is not None
    return f"admin:{query_or_message.from_user.id}"


def _toggle(tr: Translator, v: services.ServiceView) -> InlineKeyboardMarkup:
    msgid, action = ("svc.button.disable", "off") if v.active else ("svc.button.enable", "on")
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain(msgid, id=v.id[:8])[:64],
                    callback_data=SvcCB(action=action, id=v.id).pack(),
                )
            ]
        ]
    )


async def _refuse(
    uow: UnitOfWork, who: str, via: str, what: str, tr: Translator, reply: Replier
) -> None:
    await uow.audit.record(who, "service.refused", via, what[:16], {})
    await reply.text(tr("doctor.admin.not_admin"))


@routes.message(Command("services"))
async def on_services(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    doctor: Doctor | None,
    is_admin: bool,
    settings: Settings,
    tr: Translator,
    reply: Replier,
) -> None:
    """Admins see the services with their ids, add one, or change a price."""
    assert message.from_user is not None
    if not is_admin:
        who = doctor_ref(doctor) if doctor else f"tg:{message.from_user.id}"
        await _refuse(uow, who, "command", "services", tr, reply)
        return
    action, _, rest = (command.args or "").strip().partition(" ")
    try:
        if action.lower() == "add":
            await _add(uow, message, rest, settings, tr, reply)
        elif action.lower() == "price":
            await _price(uow, message, rest, settings, tr, reply)
        elif action:
            await reply.text(tr("svc.list.help"))
        else:
            await _list(uow, tr, reply)
    except services.BadInput as exc:
        await reply.text(tr(exc.msgid, **exc.params))
    except services.NotFound:
        await reply.text(tr("svc.not_found"))


async def _list(uow: UnitOfWork, tr: Translator, reply: Replier) -> None:
    rows = await services.services(uow, include_disabled=True)
    if not rows:
        await reply.text(tr("svc.list.none"))
        return
    await reply.text(tr("svc.list.title"))
    for v in rows[:LIST_MAX]:
        line = services.describe(v, tr.locale, tr)
        await reply.text(f"<code>{v.id[:8]}</code> {line}", _toggle(tr, v))
    await reply.text(tr("svc.list.help"))


async def _warn_provider(
    settings: Settings, price: services.Price, tr: Translator, reply: Replier
) -> None:
    card = not price.free and price.currency != services.STARS
    if card and settings.payment_provider_token is None:
        await reply.text(tr("svc.no_provider", currency=price.currency))


async def _add(
    uow: UnitOfWork,
    message: Message,
    text: str,
    settings: Settings,
    tr: Translator,
    reply: Replier,
) -> None:
    req = services.parse_add(text)
    row = await services.add(
        uow, _actor(message), req.mode, department=req.department, doctor=req.doctor,
        minutes=req.minutes, response_hours=req.response_hours, price=req.price,
    )  # fmt: skip
    added = services.view(row)
    line = services.describe(added, tr.locale, tr)
    await reply.text(tr("svc.added", id=added.id[:8], line=line), _toggle(tr, added))
    await _warn_provider(settings, added.price, tr, reply)


async def _price(
    uow: UnitOfWork,
    message: Message,
    text: str,
    settings: Settings,
    tr: Translator,
    reply: Replier,
) -> None:
    ref, _, raw = text.strip().partition(" ")
    if not ref or not raw.strip():
        await reply.text(tr("svc.price_usage"))
        return
    service = await services.find(uow, ref)
    price = await services.set_price(uow, _actor(message), service, raw)
    shown = services.format_price(price, tr.locale, tr)
    await reply.text(tr("svc.priced", id=service.id[:8], price=shown))
    await _warn_provider(settings, price, tr, reply)


@routes.callback_query(SvcCB.filter())
async def on_service_button(
    query: CallbackQuery,
    callback_data: SvcCB,
    uow: UnitOfWork,
    doctor: Doctor | None,
    is_admin: bool,
    tr: Translator,
    reply: Replier,
) -> None:
    """Disable or enable a service; the button then offers the opposite."""
    if not is_admin:
        who = doctor_ref(doctor) if doctor else f"tg:{query.from_user.id}"
        await uow.audit.record(who, "service.refused", "button", callback_data.action[:8], {})
        await reply.answer_callback(query.id, tr.plain("doctor.admin.not_admin"), alert=True)
        return
    found = await uow.services.get(callback_data.id)
    if found is None or callback_data.action not in ("on", "off"):
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    await services.set_active(uow, _actor(query), found, callback_data.action == "on")
    v = services.view(found)
    await reply.answer_callback(query.id)
    line = services.describe(v, tr.locale, tr)
    if query.message is not None:
        await reply.edit_text(
            query.message.message_id, f"<code>{v.id[:8]}</code> {line}", _toggle(tr, v)
        )
