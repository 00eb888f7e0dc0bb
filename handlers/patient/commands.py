"""Commands available at any time: /help, /privacy, /language, /profile, /history (intakes
and consultations), /mydata, /export, /delete, /cancel."""

from __future__ import annotations

import logging

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardRemove,
)

from bot.settings import Settings
from flows import export as record_export
from flows import privacy, retention
from flows.domain import Consultation, Doctor, Patient, utcnow
from flows.onboarding import CONSENT_VERSION, Step, step_of
from flows.outbox import Replier
from handlers.common import bookings
from handlers.common import cases as case_view
from handlers.common.routes import RouteTable
from handlers.patient import intake as intake_handlers
from handlers.patient import keyboards as kb
from handlers.patient.refusals import refused_button
from handlers.patient.render import show_step
from locales import Html, Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.commands")
log = logging.getLogger(__name__)

# One /history message holds at most this much text (Telegram's limit is 4096) and 50
# buttons; more consultations continue in another message.
HISTORY_CHUNK = 3500
ADVICE_PREVIEW = 300


class CaseRecordCB(CallbackData, prefix="hc"):
    """Download one of the patient's consultations as a FHIR Bundle (``case``: its id)."""

    case: str


EDIT_PROMPTS = {
    "name": "onboarding.ask_name",
    "birth_year": "onboarding.ask_birth_year",
    "timezone": "onboarding.ask_timezone",
}


@routes.message(Command("help"))
async def on_help(message: Message, tr: Translator, reply: Replier, settings: Settings) -> None:
    """Lists what the patient bot can do and the emergency number."""
    await reply.text(tr("help.patient", emergency_number=settings.local_emergency_number))


@routes.message(Command("privacy"))
async def on_privacy(message: Message, tr: Translator, reply: Replier) -> None:
    """Shows the privacy notice."""
    await reply.text(tr("privacy.notice", version=CONSENT_VERSION))


@routes.message(Command("language"))
async def on_language(message: Message, tr: Translator, reply: Replier) -> None:
    """Offers the three languages."""
    await reply.text(tr("onboarding.choose_language"), kb.languages())


@routes.message(Command("cancel"))
async def on_cancel(
    message: Message,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Abandons a profile edit."""
    await state.clear()
    await reply.text(tr("profile.edit_cancelled"), ReplyKeyboardRemove())
    if step_of(patient) is not Step.DONE:
        await show_step(reply, tr, patient, settings)


async def _require_profile(
    patient: Patient | None, tr: Translator, reply: Replier, settings: Settings
) -> Patient | None:
    if patient is None or step_of(patient) is not Step.DONE:
        await reply.text(tr("error.finish_onboarding"))
        await show_step(reply, tr, patient, settings)
        return None
    return patient


@routes.message(Command("profile"))
async def on_profile(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Shows the profile with a button per field to change."""
    await state.clear()
    if (p := await _require_profile(patient, tr, reply, settings)) is None:
        return
    prof = await privacy.view_profile(uow, p)
    unset = tr.plain("profile.not_set")
    sex = prof["sex"]
    await reply.text(
        tr(
            "profile.view",
            name=prof["name"] or unset,
            birth_year=prof["birth_year"] or unset,
            sex=tr.plain(f"sex.{sex}") if sex else unset,
            phone=prof["phone"] or unset,
            timezone=p.timezone or unset,
            language=tr.plain("language.name"),
        ),
        kb.profile(tr),
    )


@routes.callback_query(kb.ProfileCB.filter())
async def on_profile_field(
    query: CallbackQuery,
    callback_data: kb.ProfileCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Asks for the new value of the chosen field."""
    await reply.answer_callback(query.id)
    if (await _require_profile(patient, tr, reply, settings)) is None:
        await refused_button(uow, query, patient, "not_onboarded")
        return
    field = callback_data.field
    if field == "language":
        await reply.text(tr("onboarding.choose_language"), kb.languages())
        return
    if field not in ("name", "birth_year", "sex", "phone", "timezone"):
        await refused_button(uow, query, patient)
        await reply.text(tr("error.stale_button"))
        return
    # The FSM holds only which field is being edited (routing), never the value.
    await state.set_data({"field": field})
    if field == "sex":
        await reply.text(tr("onboarding.ask_sex"), kb.sexes(tr))
    elif field == "phone":
        await reply.text(tr("onboarding.ask_phone"), kb.share_phone(tr))
    elif field == "timezone":
        await reply.text(tr(EDIT_PROMPTS[field]), kb.timezones(tr, settings.timezone))
    else:
        await reply.text(tr(EDIT_PROMPTS[field]), kb.cancel(tr))


@routes.callback_query(kb.StepCB.filter(F.action == "cancel"))
async def on_edit_cancel(
    query: CallbackQuery, state: FSMContext, tr: Translator, reply: Replier
) -> None:
    """Abandons a profile edit from its Cancel button."""
    await reply.answer_callback(query.id)
    await state.clear()
    await reply.text(tr("profile.edit_cancelled"), ReplyKeyboardRemove())


def _case_text(tr: Translator, entry: privacy.CaseEntry) -> str:
    """One consultation of /history: number, department, date, state, doctor, advice, rating."""
    case = entry.case
    lines = [
        tr(
            "history.case.item",
            number=case.number,
            department=case_view.department(tr, case),
            date=retention.aware(case.requested_at).strftime("%Y-%m-%d"),
            state=tr.plain(f"history.case.state.{case.state}"),
        )
    ]
    if entry.doctor is not None:
        lines.append(tr("history.case.doctor", **entry.doctor))
    if entry.summary:
        advice = entry.summary
        if len(advice) > ADVICE_PREVIEW:
            advice = advice[:ADVICE_PREVIEW].rstrip() + "…"
        lines.append(tr("history.case.advice", summary=advice))
    if entry.rating is not None:
        lines.append(tr("history.case.rating", stars="★" * entry.rating, rating=entry.rating))
    return "\n".join(lines)


@routes.message(Command("history"))
async def on_history(
    message: Message,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Lists past intakes (each opens its summary), then the consultations, newest first,
    each with a button for its FHIR file, then the receipts of booked consultations."""
    await intake_handlers.send_intake_history(message, uow, patient, tr, reply, settings)
    if patient is None or step_of(patient) is not Step.DONE:
        return  # the intake listing asked them to finish onboarding
    texts: list[str] = []
    buttons: list[list[InlineKeyboardButton]] = []
    for entry in await privacy.consultations(uow, patient):
        text = _case_text(tr, entry)
        if texts and (len("\n\n".join([*texts, text])) > HISTORY_CHUNK or len(buttons) >= 50):
            await _send_cases(reply, tr, texts, buttons)
            texts, buttons = [], []
        texts.append(text)
        label = tr.plain("history.case.button", number=entry.case.number)
        buttons.append(
            [
                InlineKeyboardButton(
                    text=label[:64], callback_data=CaseRecordCB(case=entry.case.id).pack()
                )
            ]
        )
    if texts:
        await _send_cases(reply, tr, texts, buttons)
    receipts = await bookings.receipts(uow, patient, tr, settings)
    if receipts:
        await reply.text("\n".join([tr("history.receipts.title"), *receipts[:40]]), protect=True)


async def _send_cases(
    reply: Replier, tr: Translator, texts: list[str], buttons: list[list[InlineKeyboardButton]]
) -> None:
    """One message of the consultations list (protected: it holds the doctors' advice)."""
    await reply.text(
        "\n\n".join([tr("history.cases.title"), *texts]),
        InlineKeyboardMarkup(inline_keyboard=buttons),
        protect=True,
    )


@routes.callback_query(CaseRecordCB.filter())
async def on_case_record(
    query: CallbackQuery,
    callback_data: CaseRecordCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """Sends one consultation as a protected FHIR JSON file."""
    await reply.answer_callback(query.id)
    found = await privacy.export_case(uow, patient, callback_data.case) if patient else None
    if found is None:
        await refused_button(uow, query, patient, "not_found")
        await reply.text(tr("history.not_found"))
        return
    case, doc = found
    await reply.document(
        f"consultation-{case.number}.json",
        doc,
        tr("history.case.caption", number=case.number),
        protect=True,
    )


@routes.message(Command("mydata"))
async def on_mydata(
    message: Message, uow: UnitOfWork, patient: Patient | None, tr: Translator, reply: Replier
) -> None:
    """Says what is stored about the patient."""
    none = tr.plain("mydata.none")
    if patient is None:
        await reply.text(
            tr(
                "mydata.summary",
                fields=none,
                timezone=none,
                language=tr.plain("language.name"),
                consents=none,
                audit_count=0,
                created=none,
            )
        )
        return
    data = await privacy.summary(uow, patient)
    fields = [tr.plain(f"profile.field.{k}") for k, v in data.profile.items() if v]
    consents = [
        tr.plain(
            "mydata.consent_item",
            decision=tr.plain(f"consent.{c.decision}"),
            version=c.version,
            date=c.at.date().isoformat(),
        )
        for c in data.consents
    ]
    await reply.text(
        tr(
            "mydata.summary",
            fields=", ".join(fields) or none,
            timezone=data.timezone or none,
            language=tr.plain("language.name"),
            consents="; ".join(consents) or none,
            audit_count=data.audit_count,
            created=data.created.date().isoformat(),
        )
    )


@routes.message(Command("export"))
async def on_export(
    message: Message,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Sends the patient's whole record as a protected FHIR R4 Bundle (JSON; audited)."""
    if patient is None:
        await reply.text(tr("error.finish_onboarding"))
        await show_step(reply, tr, patient, settings)
        return
    now = utcnow()
    try:
        doc = await privacy.export(uow, patient, now)
    except ValueError:  # a record that does not make valid FHIR: a bug, never a traceback
        log.exception("export of a patient record failed")
        await reply.text(tr("export.failed"))
        return
    today = now.date().isoformat()
    await reply.document(
        record_export.file_name(now), doc, tr("export.record.caption", date=today), protect=True
    )


def _policy(settings: Settings) -> retention.Policy:
    return retention.Policy(
        record_years=settings.record_retention_years, chat_years=settings.chat_retention_years
    )


def _numbers(numbers: list[int]) -> str:
    return ", ".join(f"#{n}" for n in numbers)


def _kept_text(tr: Translator, kept: list[int], policy: retention.Policy) -> Html:
    """What is kept of the consultations, for how long and why."""
    chat = (
        tr("delete.kept.chat", chat_years=policy.chat_years)
        if policy.chat_years > 0
        else tr("delete.kept.no_chat")
    )
    return tr(
        "delete.kept.what", cases=_numbers(kept), record_years=policy.record_years, chat=chat
    )


@routes.message(Command("delete"))
async def on_delete(
    message: Message,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Asks the patient to confirm erasure, saying which consultations are cancelled and
    which records are kept (and why)."""
    if patient is None:
        await reply.text(
            tr(
                "mydata.summary",
                fields="-",
                timezone="-",
                language="-",
                consents="-",
                audit_count=0,
                created="-",
            )
        )
        return
    policy = _policy(settings)
    preview = await privacy.erasure_preview(uow, patient, policy)
    parts = [
        tr("delete.confirm_kept", kept=_kept_text(tr, preview.kept, policy))
        if preview.kept
        else tr("delete.confirm")
    ]
    if preview.cancelled:
        parts.append(tr("delete.confirm.cancel_cases", cases=_numbers(preview.cancelled)))
    await reply.text("\n\n".join(parts), kb.delete_confirm(tr))


@routes.callback_query(kb.DeleteCB.filter())
async def on_delete_confirmed(
    query: CallbackQuery,
    callback_data: kb.DeleteCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Erases the patient (crypto-shredding; records a doctor took part in are kept as the
    law requires, and a doctor in an active case is told) or keeps everything, as they
    chose."""
    await reply.answer_callback(query.id)
    if not callback_data.confirm:
        await reply.text(tr("delete.cancelled"))
        return
    if patient is None:
        await refused_button(uow, query, patient, "not_onboarded")
        await reply.text(tr("error.stale_button"))
        return
    await state.clear()

    async def tell_doctor(case: Consultation, doctor: Doctor, name: str) -> None:
        dtr, dreply = case_view.to_doctor(uow, doctor)
        await dreply.text(dtr("erase.doctor_notice", number=case.number, name=name))

    policy = _policy(settings)
    preview = await privacy.erasure_preview(uow, patient, policy)
    kept_records = await privacy.erase(
        uow, patient, bot=reply.bot, policy=policy, notify=tell_doctor
    )
    kept = _kept_text(tr, preview.kept, policy) if kept_records else tr("delete.no_records")
    await reply.text(tr("delete.done", kept_records=kept), ReplyKeyboardRemove())
