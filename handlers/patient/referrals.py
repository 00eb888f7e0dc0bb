"""The patient's referral slips: the slip as a protected PDF when a doctor issues it,
``/referrals`` (each slip with "Send the slip again" and "I went / tell the doctor what they
said"), the follow-up after an urgent referral ("did you go?": I went / Not yet / I couldn't
go), the typed outcome relayed to the doctor, and the notice of a revoked slip."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import referral_followup as followup
from flows import referrals as core
from flows.domain import Hospital, Patient, Referral, ScheduledEvent, utcnow
from flows.outbox import PRIORITY_ROUTINE, Replier
from handlers.common.routes import RouteTable
from handlers.common.slips import patient_chat as _patient_chat
from handlers.common.slips import send_slip
from handlers.patient import appointments
from handlers.patient.refusals import refused, refused_button
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.referrals")
TELLING = "ref_outcome"  # FSM data key: the referral whose outcome the patient is typing
TELLING_TTL_S = 24 * 3600
_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")


class PRefCB(CallbackData, prefix="prf"):
    """A patient's referral button (``ref``: the referral id)."""

    action: str  # again | went | fu
    ref: str
    value: str = ""


async def font_problem(
    uow: UnitOfWork, referral: Referral, texts: list[str], hospital: Hospital | None
) -> bool:
    """True when the slip needs Chinese glyphs and this server has no CJK font (checked
    before issuing, so a slip is never issued that can't be printed)."""
    from flows import slip  # the PDF stack (~55 MB) is loaded on the first slip

    if slip.find_cjk_font() is not None:
        return False
    patient = await uow.patients.get(referral.patient_id)
    locales = {patient.locale if patient else "en", hospital.locale if hospital else None}
    return "zh_Hans" in locales or any(_CJK.search(t) for t in texts)


async def tell_revoked(uow: UnitOfWork, referral: Referral) -> None:
    """The patient is told their slip was revoked by the doctor."""
    found = await _patient_chat(uow, referral)
    if found is None:
        return
    patient, ptr = found
    await Replier(uow, "patient", patient.tg_user_id).text(
        ptr("ref.pat.revoked", code=referral.code or "—")
    )


async def tell_doctor(uow: UnitOfWork, referral: Referral, answer: str, text: str | None) -> None:
    """The referring doctor sees the patient's answer (and what they were told)."""
    doctor = await uow.doctors.get(referral.doctor_id)
    if doctor is None or doctor.tg_user_id is None:
        return
    dtr = Translator(doctor.locale)
    case = await uow.consultations.get(referral.consultation_id or "")
    number = case.number if case is not None else 0
    patient = await uow.patients.get(referral.patient_id)
    name = (await uow.patients.get_field(patient, "name") or "") if patient else ""
    first = name.split()[0] if name.split() else "—"
    await Replier(uow, "doctor", doctor.tg_user_id).text(
        dtr(
            "ref.doc.answer",
            number=number,
            name=first,
            code=referral.code or "—",
            answer=dtr.plain(f"ref.answer.{answer}"),
            text=text or "—",
        ),
        protect=True,
    )


def _fu_keyboard(tr: Translator, referral: Referral) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_b(tr, f"ref.pat.fu.{a}", PRefCB(action="fu", ref=referral.id, value=a))]
            for a in followup.ANSWERS
        ]
    )


def _b(tr: Translator, msgid: str, cb: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=tr.plain(msgid)[:64], callback_data=cb.pack())


async def send_followup(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
    """``referral.followup`` event: "did you go? what did they say?" (or its recall)."""
    ask = await followup.due(uow, event, now)
    if ask is None:
        return
    tr = Translator(ask.patient.locale)
    content = await core.content_of(uow, ask.referral)
    await Replier(uow, "patient", ask.patient.tg_user_id).text(
        tr(
            "ref.pat.fu_recall" if ask.recall else "ref.pat.fu_ask",
            code=ask.referral.code or "—",
            hospital=content.target_hospital,
        ),
        _fu_keyboard(tr, ask.referral),
        priority=PRIORITY_ROUTINE,
    )


def scheduled() -> dict[str, Any]:
    """Scheduler handlers of the patient's referrals, by event kind."""
    return {followup.KIND: send_followup}


@routes.message(Command("referrals"))
async def on_referrals(
    message: Message,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """The patient's slips: code, target, urgency, status, valid until, with buttons."""
    if patient is None:
        await reply.text(tr("ref.pat.none"))
        return
    mine = await core.for_patient(uow, patient.id)
    if not mine:
        await reply.text(tr("ref.pat.none"))
        return
    for referral in mine[:20]:
        content = await core.content_of(uow, referral)
        rows = []
        if referral.status == "issued":
            rows.append([_b(tr, "ref.pat.again", PRefCB(action="again", ref=referral.id))])
        booked = await uow.appointments.open_for_referral(referral.id)
        if (
            booked is None
            and referral.status == "issued"
            and referral.hospital_id is not None
            and await uow.appointments.services(referral.hospital_id)
        ):
            rows.append([appointments.book_button(tr, referral.id)])
        said = await followup.outcome(uow, referral)
        if referral.status in ("issued", "used") and not said.get("text"):
            rows.append([_b(tr, "ref.pat.went", PRefCB(action="went", ref=referral.id))])
        await reply.text(
            tr(
                "ref.pat.item",
                code=referral.code or "—",
                hospital=content.target_hospital,
                department=content.target_department or "—",
                urgency=tr.plain(f"ref.urgency.{content.urgency}"),
                status=tr.plain(f"ref.status.{referral.status}"),
                valid_until=content.valid_until.isoformat(),
            ),
            InlineKeyboardMarkup(inline_keyboard=rows) if rows else None,
            protect=True,
        )
        if booked is not None:  # the hospital time booked for it, with "I can't come"
            await appointments.confirm(uow, patient, booked)


async def _telling(
    message: Message, state: FSMContext, patient: Patient | None
) -> bool | dict[str, Any]:
    """Only while the patient is asked what they were told at the hospital."""
    data = (await state.get_data()).get(TELLING)
    if patient is None or not isinstance(data, dict) or not data.get("ref"):
        return False
    if utcnow().timestamp() - float(data.get("at") or 0) > TELLING_TTL_S:
        return False
    return {"telling": str(data["ref"])}


@routes.message(F.text, ~F.text.startswith("/"), _telling)
async def on_outcome_text(
    message: Message,
    telling: str,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient,
    tr: Translator,
    reply: Replier,
) -> None:
    """What the patient was told at the hospital: kept and passed on to the doctor."""
    assert message.text is not None
    try:  # an unusable text (BadInput) is a UserError: said, the question stays
        referral, text = await followup.tell(uow, patient, telling, message.text, utcnow())
    except followup.NotAllowed as no:
        await refused(uow, message, patient, "referral", no.reason)
        await state.update_data({TELLING: None})
        await reply.text(tr("ref.pat.already_told"))
        return
    await state.update_data({TELLING: None})
    await tell_doctor(uow, referral, "went", text)
    await reply.text(tr("ref.pat.told"))


@routes.message(~F.text, _telling)
async def on_outcome_other(message: Message, tr: Translator, reply: Replier) -> None:
    """A photo or sticker while the outcome is expected: asks for text (the step stays)."""
    await reply.text(tr("ref.pat.text_only"))


@routes.callback_query(PRefCB.filter())
async def on_button(
    query: CallbackQuery,
    callback_data: PRefCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Send again, I went, and the follow-up answers; another person's or an old button is
    stale."""
    cb = callback_data
    now = utcnow()
    if patient is None:
        await refused_button(uow, query, patient, "not_onboarded")
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    message_id = query.message.message_id if query.message is not None else None
    try:
        referral = await followup.mine(uow, patient, cb.ref)
        if cb.action == "again":
            if referral.status != "issued":
                await reply.answer_callback(query.id)
                await reply.text(
                    tr("ref.pat.not_valid", status=tr.plain(f"ref.status.{referral.status}"))
                )
                return
            await reply.answer_callback(query.id)
            if await send_slip(uow, referral, settings) == "no_font":
                await reply.text(tr("ref.slip.no_font_patient"))
            await uow.audit.record(
                followup.patient_ref(patient), "referral.resend", "referral", referral.id, {}
            )
            return
        if cb.action in ("went", "fu"):
            choice = "went" if cb.action == "went" else cb.value
            referral = await followup.answer(uow, patient, referral.id, choice, now)
            await reply.answer_callback(query.id)
            if message_id is not None:
                await reply.edit_markup(message_id, None)
            if choice == "went":
                await state.update_data({TELLING: {"ref": referral.id, "at": now.timestamp()}})
                await reply.text(tr("ref.pat.ask_outcome"))
                return
            await tell_doctor(uow, referral, choice, None)
            await reply.text(tr(f"ref.pat.noted.{choice}"))
            return
        raise followup.NotAllowed("stale")  # an action no button of ours carries
    except followup.NotAllowed as no:
        await refused_button(uow, query, patient, no.reason)
        if no.reason in ("answered", "revoked"):
            await reply.answer_callback(query.id)
            await reply.text(tr(f"ref.pat.{no.reason}"))
            return
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))
