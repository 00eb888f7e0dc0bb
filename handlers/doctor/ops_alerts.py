"""Doctor bot, admins: what the operator is told without asking, from scheduled events.

- ``ops.breach``: a case waited longer than its limit. Each admin gets one message per case
  and queue entry, in their language, with Accept when they are also a doctor of its
  department.
- ``ops.staffing``: a department has waiting cases and nobody on duty. One message per
  department and episode (checked every 15 minutes while anything waits).
- ``ops.weekly``: Mondays 08:00 clinic time, the last seven days as a PNG chart with the key
  figures in the caption (also ``/ops week`` and ``python bot.py ops --week FILE``).

The flows (``flows/ops.py``) decide whether to alert and keep the events' keys, so restarts and
repeated sweeps never send an alert twice; this module renders and queues the messages.
"""

from __future__ import annotations

from datetime import datetime

from bot.settings import Settings
from flows import charts, ops_chart
from flows import ops as flow
from flows.domain import ScheduledEvent
from flows.outbox import PRIORITY_ROUTINE, Replier
from handlers.common.cases import accept_keyboard
from handlers.doctor.ops_render import breach_text, unstaffed_text, week_caption
from locales import Translator
from scheduler.sweeper import Handler
from storage.uow import UnitOfWork


async def send_week(
    uow: UnitOfWork,
    week: flow.Week,
    tr: Translator,
    chat_id: int,
    pngs: dict[str, bytes] | None = None,
) -> None:
    """The weekly chart as a photo with its caption, in ``tr``'s language (``pngs``: charts
    already drawn, by language, so several admins of one language share one drawing)."""
    cache = pngs if pngs is not None else {}
    if tr.locale not in cache:
        cache[tr.locale] = ops_chart.render(week, tr)
    caption = week_caption(tr, week)
    await charts.send(uow, "doctor", chat_id, cache[tr.locale], caption, priority=PRIORITY_ROUTINE)


def scheduled(settings: Settings) -> dict[str, Handler]:
    """Scheduler handlers of the operator's alerts and summary, by event kind."""

    async def breach(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        admins = await flow.admins(uow, settings.admin_ids)
        found = await flow.breach_due(uow, event, now, settings.timezone) if admins else None
        if found is None:
            return
        for admin in admins:
            tr = Translator(admin.locale(settings.default_locale))
            markup = accept_keyboard(tr, found.case) if admin.can_accept(found.case, now) else None
            await Replier(uow, "doctor", admin.tg_user_id).text(breach_text(tr, found), markup)

    async def staffing(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        await flow.plan_weekly(uow, now, settings.timezone)  # the summary's first Monday
        found = await flow.staffing_due(uow, event, now, settings.timezone)
        if not found:
            return
        for admin in await flow.admins(uow, settings.admin_ids):
            tr = Translator(admin.locale(settings.default_locale))
            reply = Replier(uow, "doctor", admin.tg_user_id)
            for department in found:
                await reply.text(unstaffed_text(tr, department, now, settings.timezone))

    async def weekly(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
        week = await flow.weekly_due(uow, now, settings.timezone)
        pngs: dict[str, bytes] = {}
        for admin in await flow.admins(uow, settings.admin_ids):
            tr = Translator(admin.locale(settings.default_locale))
            await send_week(uow, week, tr, admin.tg_user_id, pngs)

    return {flow.BREACH: breach, flow.STAFFING: staffing, flow.WEEKLY: weekly}
