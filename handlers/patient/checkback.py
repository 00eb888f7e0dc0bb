"""Check-backs after self-care advice: choosing when, the scheduled question, the answer."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from aiogram.types import CallbackQuery

from bot.settings import Settings
from flows import checkback, intake
from flows.domain import Patient, ScheduledEvent, utcnow
from flows.onboarding import Step, step_of
from flows.outbox import Replier
from flows.questionnaire import load
from handlers.common.routes import RouteTable
from handlers.patient import intake_render as view
from handlers.patient.case import intake_refusal, refuse_intake
from handlers.patient.refusals import refused_button
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.checkback")


def _local_date(when: datetime, patient: Patient) -> str:
    try:
        zone = zoneinfo.ZoneInfo(patient.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M")


@routes.callback_query(view.CheckbackCB.filter())
async def on_checkback_button(
    query: CallbackQuery,
    callback_data: view.CheckbackCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Schedules (or declines) a check-back, or takes the answer to one."""
    if patient is None or step_of(patient) is not Step.DONE:
        await refused_button(uow, query, patient, "not_onboarded")
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    now = utcnow()
    try:
        if callback_data.action == "set":
            days = int(callback_data.value) if callback_data.value.isdigit() else -1
            when = await checkback.schedule(uow, patient, callback_data.tag, days, now)
            await reply.answer_callback(query.id)
            if when is None:
                await reply.text(tr("checkback.declined"))
            else:
                await reply.text(tr("checkback.scheduled", when=_local_date(when, patient)))
            return
        if callback_data.action != "ans":
            raise checkback.NotAllowed("unknown action")
        value = await checkback.answer(uow, patient, callback_data.tag, callback_data.value, now)
    except checkback.NotAllowed:
        await refused_button(uow, query, patient)
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    await reply.answer_callback(query.id)
    if value == "better":
        await reply.text(tr("checkback.better"))
    elif value == "same":
        await reply.text(tr("checkback.same"), view.begin_keyboard(tr))
    else:
        await reply.text(tr("checkback.worse"))
        if await intake.open_intake(uow, patient) is None:
            # The same gate as /intake: a blocked patient or one at the open-case limit.
            refused = await intake_refusal(uow, patient, settings)
            if refused is not None:
                await refused_button(uow, query, patient, refused[0])
                await refuse_intake(reply, tr, settings, *refused)
                return
        out = await intake.begin(uow, patient, load())
        known = await uow.patients.history(patient)
        await view.show(reply, tr, load(), out, known, settings)


async def send_checkback(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
    """Scheduler handler for ``intake.checkback``: ask the patient how they are now."""
    found = await checkback.due(uow, event, now)
    if found is None:
        return
    patient, item, answers, late = found
    tr = Translator(patient.locale)
    category = answers.get("category")
    q = load()
    complaint = tr.plain(f"intake.category.{category}") if category in q.categories else "—"
    msgid = "checkback.ask_late" if late else "checkback.ask"
    reply = Replier(uow, "patient", patient.tg_user_id)
    await reply.text(
        tr(msgid, complaint=complaint, date=intake.started_at(item).strftime("%Y-%m-%d")),
        view.checkback_answers(tr, item),
    )
