"""Doctor bot routers."""

from __future__ import annotations

from aiogram import F, Router

from handlers.common import errors
from handlers.doctor import (
    admin,
    apply,
    calls,
    care,
    cases,
    desk,
    export,
    fallback,
    guard,
    ops,
    plans,
    prescriptions,
    queue,
    referrals,
    reports,
    schedule,
    services,
    start,
)


def get_router() -> Router:
    """All doctor routers, limited to private chats with people (not bots)."""
    root = Router(name="doctor")
    # A message without a sender (never sent by Telegram in a private chat) is ignored, as in
    # the patient bot: the handlers below all act for ``message.from_user``.
    root.message.filter(F.chat.type == "private", F.from_user, ~F.from_user.is_bot)
    root.edited_message.filter(F.chat.type == "private", F.from_user, ~F.from_user.is_bot)
    root.callback_query.filter(~F.from_user.is_bot)
    # Handlers marked @guard.verified(...) run for verified doctors only; others are refused
    # (and audited) here, once, before the handler.
    root.message.middleware(guard.VerifiedOnly())
    root.callback_query.middleware(guard.VerifiedOnly())
    root.include_routers(
        errors.routes.router(),  # a UserError anywhere below: its message, nothing else
        # /ops before the admin's typed answers: while a rejection reason is asked for,
        # "/ops" is the operator's view, not the reason.
        ops.routes.router(),
        admin.routes.router(),  # admins first: a typed rejection reason is not an answer
        services.routes.router(),  # /services (admins): before any typed answer
        start.routes.router(),
        apply.routes.router(),
    )
    # --- the doctor's work: after the application, before the fallback. Its commands and
    # buttons are @guard.verified; a wizard's or a case's typed texts go on to the fallback
    # when the doctor may not work.
    root.include_routers(export.routes.router())  # /export [case]: before typed answers
    # /review's typed rejection reason and the /rx wizard's typed medicines: before plans
    root.include_routers(prescriptions.routes.router())
    root.include_routers(desk.routes.router())  # /desk; a desk's typed visit outcome
    root.include_routers(plans.routes.router())  # a typed plan answer is not a case message
    root.include_routers(referrals.routes.router())  # nor a referral answer or a hospital
    root.include_routers(queue.routes.router(), reports.routes.router())
    root.include_routers(schedule.routes.router())  # /schedule: hours patients book into
    root.include_routers(calls.routes.router())  # a booked time's call card buttons
    root.include_routers(care.routes.router())  # alerts, /followup, /chart: before case texts
    root.include_routers(cases.routes.router())
    root.include_routers(fallback.routes.router())
    return root
