"""Patient bot routers."""

from __future__ import annotations

from aiogram import F, Router

from bot.settings import Settings
from flows import checkback as flows_checkback
from flows import prescriptions as rx_flow
from flows import referrals as referral_flow  # not `referrals`: a handler module has that name
from flows import retention
from handlers.common import errors
from handlers.patient import (
    appointments,
    booking,
    case,
    checkback,
    checkins,
    commands,
    devices,
    emergency,
    fallback,
    intake,
    onboarding,
    refusals,
)
from handlers.patient import caregivers as caregiver_handlers
from handlers.patient import doses as dose_handlers
from handlers.patient import meds as meds_handlers
from handlers.patient import prescriptions as rx_handlers
from handlers.patient import referrals as referral_handlers
from scheduler.sweeper import Handler


def scheduled(settings: Settings | None = None) -> dict[str, Handler]:
    """Scheduler handlers of the patient bot, by event kind."""
    return {
        flows_checkback.KIND: checkback.send_checkback,
        retention.PURGE: retention.purge_event,
        **case.scheduled(settings or Settings()),
        **checkins.scheduled(),
        **dose_handlers.scheduled(settings or Settings()),
        **referral_handlers.scheduled(),
        **referral_flow.scheduled(),
        **rx_flow.scheduled(),
        **appointments.scheduled(),
        **booking.scheduled(settings or Settings()),
    }


def get_router() -> Router:
    """All patient routers, limited to private chats with people (not bots)."""
    root = Router(name="patient")
    # A message without a sender (never sent by Telegram in a private chat) is ignored too.
    root.message.filter(F.chat.type == "private", F.from_user, ~F.from_user.is_bot)
    root.edited_message.filter(F.chat.type == "private", F.from_user, ~F.from_user.is_bot)
    root.callback_query.filter(~F.from_user.is_bot)
    # Red flags first: an emergency in any message wins over every other handler.
    root.include_routers(
        errors.routes.router(),  # a UserError anywhere below: its message, nothing else
        refusals.routes.router(),  # audits a button of another step (an error, no handler)
        emergency.routes.router(),
        booking.routes.router(),  # /book, its buttons, pre-checkout and payments
        meds_handlers.routes.router(),  # plan cards, /meds; typed answers before case relays
        dose_handlers.routes.router(),  # reminder buttons, typed skip reasons/side effects
        caregiver_handlers.routes.router(),  # invitation links, /caregivers, /stop, home
        checkins.routes.router(),  # follow-up check-in answers, /readings
        referral_handlers.routes.router(),  # /referrals, a visit's outcome typed after "I went"
        rx_handlers.routes.router(),  # /prescriptions and "send it again"
        appointments.routes.router(),  # hospital times for a referral, "I can't come"
        devices.routes.router(),  # /devices: connect a device or app, revoke one
        case.cancel_routes.router(),  # /cancel of a case, unless a profile edit is going on
        commands.routes.router(),
        case.routes.router(),
        intake.routes.router(),
        checkback.routes.router(),
        onboarding.routes.router(),
        fallback.routes.router(),
    )
    return root
