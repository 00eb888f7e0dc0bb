"""The doctor's queue: /queue (waiting cases of their departments with the intake summary,
Accept / Skip), /duty on|off and /hours 09:00-18:00."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import bodymap, bodymap_image
from flows import consultation as flow
from flows.domain import Consultation, Doctor, utcnow
from flows.intake import age_band_for
from flows.outbox import Replier
from flows.questionnaire import load
from handlers.common import cases as view
from handlers.common.cases import QueueCB, accept_keyboard
from handlers.common.routes import RouteTable
from handlers.doctor.care import queue_alerts
from handlers.doctor.cases import CaseCB
from handlers.doctor.guard import verified
from handlers.doctor.referrals import referral_button
from handlers.patient.intake_render import marks_text, summary_text
from locales import Html, Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.queue")
QUEUE_SHOWN = 10


def _waited(tr: Translator, since: datetime, now: datetime) -> str:
    start = since if since.tzinfo else since.replace(tzinfo=UTC)
    minutes = max(0, int((now - start).total_seconds() // 60))
    if minutes < 120:
        return tr.plain("consult.minutes", n=minutes)
    return tr.plain("consult.hours", n=minutes // 60)


async def case_view(
    uow: UnitOfWork, tr: Translator, doctor: Doctor, case: Consultation, now: datetime
) -> Html:
    """A case as a doctor sees it: tag, first name, age band, sex, level and the intake."""
    return (await case_card(uow, tr, doctor, case, now))[0]


async def case_card(
    uow: UnitOfWork, tr: Translator, doctor: Doctor, case: Consultation, now: datetime
) -> tuple[Html, dict[str, Any]]:
    """:func:`case_view`'s text and the intake's answers it was made from."""
    answers, who = await flow.view_intake(uow, doctor, case)
    q = load()
    band = age_band_for(who["birth_year"], q.age_bands)
    text = tr(
        "consult.doctor.case",
        number=case.number,
        name=who["name"] or "—",
        age=tr.plain(f"intake.age.{band}") if band else "—",
        sex=tr.plain(f"sex.{who['sex']}") if who["sex"] else "—",
        level=view.level(tr, case),
        department=view.department(tr, case),
        waited=_waited(tr, case.requested_at, now),
        summary=Html(summary_text(tr, q, answers)),
    )
    preferred = case.preferred_department
    if preferred and preferred != case.department:
        # After the first line: a doctor's message must start with the case tag (#N).
        came = tr("consult.doctor.from", left=tr.plain(f"dept.{preferred}"))
        head, _, rest = text.partition("\n")
        text = Html(f"{head}\n{came}\n{rest}")
    return text, answers


async def send_bodymap(
    reply: Replier, tr: Translator, case: Consultation, answers: dict[str, Any]
) -> None:
    """The regions the patient marked on the body map, as a small picture (front and back,
    shaded by intensity) with the list in the doctor's language; nothing without marks."""
    marks = bodymap.stored_marks(answers)
    if not marks:
        return
    picture = bodymap_image.render(bodymap.load(), marks, tr)
    caption = tr("bodymap.card.caption", number=case.number, regions=marks_text(tr, marks))
    await reply.photo(f"bodymap-{case.number}.png", picture, Html(caption[:1024]))


@routes.message(Command("queue"))
@verified("queue")
async def on_queue(
    message: Message, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """Waiting cases of the doctor's departments, most urgent first, each with Accept/Skip."""
    now = utcnow()
    await queue_alerts(uow, doctor, tr, reply)  # open care alerts first
    cases = await flow.queue_for(uow, doctor, now)
    if not cases:
        await reply.text(tr("consult.doctor.queue_empty"))
        return
    for case in cases[:QUEUE_SHOWN]:
        markup = accept_keyboard(tr, case, skip=True)
        text, answers = await case_card(uow, tr, doctor, case, now)
        await send_bodymap(reply, tr, case, answers)
        await reply.text(text, markup, protect=True)
    if len(cases) > QUEUE_SHOWN:
        await reply.text(tr("consult.doctor.queue_more", n=len(cases) - QUEUE_SHOWN))


@routes.callback_query(QueueCB.filter())
@verified("accept")
async def on_queue_button(
    query: CallbackQuery,
    callback_data: QueueCB,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Accept takes the case (or says it is already taken) and, pressed under a notice,
    sends the case's card with the body map; Skip hides the buttons."""
    now = utcnow()
    if callback_data.action == "skip":
        await reply.answer_callback(query.id, tr.plain("consult.doctor.skipped"))
        if query.message is not None:
            await reply.edit_markup(query.message.message_id, None)
        return
    if callback_data.action not in ("acc", "take"):
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    try:
        case = await flow.accept(
            uow, doctor, callback_data.case, now=now, jurisdiction=settings.jurisdiction.value
        )
    except flow.NotAllowed as no:
        msgid = "consult.doctor.taken" if no.reason in ("taken", "state") else "error.stale_button"
        await reply.answer_callback(query.id, tr.plain(msgid), alert=True)
        return
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    await state.update_data(case=case.id, closing=None)
    name = await flow.patient_first_name(uow, case)
    markup = None
    msgid = "consult.doctor.accepted"
    if settings.jurisdiction.value == "cn":
        msgid = "consult.doctor.accepted_cn"
        markup = followup_keyboard(tr, case)
    await reply.text(tr(msgid, number=case.number, name=name), markup)
    if callback_data.action == "take":
        # Accepted from a notice, which carries no health details: the card /queue shows.
        text, answers = await case_card(uow, tr, doctor, case, now)
        await send_bodymap(reply, tr, case, answers)
        await reply.text(text, protect=True)
    for row, file_id in await flow.pending_record_files(uow, case):
        caption = tr("consult.doctor.record_file", number=case.number, name=name)
        await reply.relay_file(
            "patient", file_id, row.kind, caption=caption, protect=True, record=row.id,
            filename=row.file_name if row.kind == "document" else None,
        )  # fmt: skip
    notes = await flow.waiting_notes(uow, case)
    texts = []
    for row in notes:
        words = await uow.consultations.message_text(case, row)
        source = await uow.consultations.source_file(case, row)
        if source:
            caption = tr("consult.doctor.waiting_file", number=case.number, name=name)
            if words:
                caption = Html(f"{caption}\n{escape(words)}")
            await reply.relay_file(
                "patient", source, row.kind, caption=caption, protect=True, record=row.id,
                filename=row.file_name if row.kind == "document" else None,
            )  # fmt: skip
        elif words:
            texts.append(f"• {words}")
    if texts:
        notes_text = "\n".join(texts)
        await reply.text(
            tr("consult.doctor.waiting_notes", number=case.number, name=name, notes=notes_text),
            protect=True,
        )
    found = await view.to_patient(uow, case)
    if found is not None:
        _, ptr, preply = found
        card = await view.doctor_card(uow, ptr, doctor, case)
        await preply.text(ptr("consult.accepted", number=case.number, card=card))


def followup_keyboard(tr: Translator, case: Consultation) -> InlineKeyboardMarkup:
    """cn: accept the case as a follow-up visit, or (the record does not make it one: a
    first visit) issue a referral to an in-person visit."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain("consult.doctor.followup"),
                    callback_data=CaseCB(action="fu", case=case.id).pack(),
                )
            ],
            [referral_button(tr, case)],
        ]
    )


@routes.message(Command("duty"))
@verified("duty")
async def on_duty(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """On duty: new cases are announced; off duty: only urgent alerts about own cases."""
    arg = (command.args or "").strip().lower()
    if arg not in ("on", "off"):
        await reply.text(tr("consult.doctor.duty_usage"))
        return
    await flow.set_duty(uow, doctor, arg == "on")
    await reply.text(tr("consult.doctor.duty_on" if arg == "on" else "consult.doctor.duty_off"))


@routes.message(Command("hours"))
@verified("hours")
async def on_hours(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Sets the working hours (in the doctor's time zone) for new-case notifications."""
    try:
        hours = await flow.set_hours(uow, doctor, command.args or "", settings.timezone)
    except ValueError:
        zone = doctor.timezone or settings.timezone
        await reply.text(tr("consult.doctor.hours_usage", timezone=zone))
        return
    zone = doctor.timezone or settings.timezone
    await reply.text(tr("consult.doctor.hours_set", hours=hours, timezone=zone))
