"""Doctor bot: ``/schedule`` — the doctor's weekly hours per consultation mode, days off and
slot length, from which patients book (``/book`` in the patient bot).

``/schedule`` shows the schedule; ``/schedule phone mon-fri 09:00-12:00,13:00-17:00 slot 15
break 10:30-10:45`` adds hours; ``/schedule off 2026-12-24`` / ``/schedule on 2026-12-24``
takes a day off or works it again; ``/schedule clear phone`` removes a mode's hours. Booked
times are never dropped by a change. Verified doctors only."""

from __future__ import annotations

from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.settings import Settings
from flows import booking as flow
from flows import schedule as sched
from flows.domain import Doctor, utcnow
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from handlers.doctor.guard import verified
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.schedule")


async def _show(
    tr: Translator, reply: Replier, av: sched.Availability, free: int | None = None
) -> None:
    lines = sched.describe(av, tr)
    text = tr("schedule.bot.title", zone=av.tz) + "\n" + "\n".join(lines)
    if free is not None:
        text += "\n\n" + tr("schedule.bot.free", n=free, days=flow.HORIZON_DAYS)
    await reply.text(text)


@routes.message(Command("schedule"))
@verified("schedule")
async def on_schedule(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    doctor: Doctor,
    settings: Settings,
    tr: Translator,
    reply: Replier,
) -> None:
    """The doctor sees or changes their schedule; a mistake gets why and an example."""
    args = (command.args or "").strip()
    head, _, rest = args.partition(" ")
    now = utcnow()
    try:
        if not args:
            av = await flow.availability(uow, doctor, settings.timezone)
            await _show(tr, reply, av)
            await reply.text(tr("schedule.bot.usage"))
            return
        if head.lower() in ("off", "on"):
            av, free = await flow.day_off(
                uow, doctor, rest, settings.timezone, now, off=head.lower() == "off"
            )
        elif head.lower() == "clear":
            av, free = await flow.clear_mode(
                uow, doctor, rest.strip().lower(), settings.timezone, now
            )
        else:
            av, free = await flow.add_rule(uow, doctor, args, settings.timezone, now)
    except sched.ScheduleError as exc:
        await reply.text(sched.error_text(exc, tr))
        return
    await _show(tr, reply, av, free)
