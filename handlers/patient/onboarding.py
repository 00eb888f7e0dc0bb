"""Onboarding: /start, language, introduction, consent and the profile questions."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bot.settings import Settings
from flows import medication, onboarding, understand
from flows.domain import Patient, utcnow
from flows.onboarding import BadInput, InvalidStep, Step, ZoneChoice, step_of
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from handlers.patient import keyboards as kb
from handlers.patient.intake_render import ask_safety, begin_keyboard
from handlers.patient.render import show_step
from locales import LOCALES, Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.onboarding")

TEXT_STEPS = (Step.NAME, Step.BIRTH_YEAR, Step.TIMEZONE)


async def _done_or_next(
    step: Step, reply: Replier, tr: Translator, patient: Patient, uow: UnitOfWork, s: Settings
) -> None:
    if step is Step.DONE:
        name = await uow.patients.get_field(patient, "name")
        await reply.text(tr("onboarding.done", name=name or ""), begin_keyboard(tr))
    else:
        await show_step(reply, tr, patient, s)


@routes.message(CommandStart())
async def on_start(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Greets a new patient with the language choice, or picks up where they left off."""
    assert message.from_user is not None
    await state.clear()
    # Caregiver invitations (``/start cg_<token>``) are taken by handlers.patient.caregivers
    # first; any other payload is ignored here, whatever its length or alphabet.
    patient, restarted = await onboarding.start(uow, message.from_user.id, tr.locale)
    if not restarted and step_of(patient) is not Step.DONE:
        await reply.text(tr("onboarding.resume"))
    await show_step(reply, tr, patient, settings)


@routes.callback_query(kb.LangCB.filter(F.code.in_(LOCALES)))
async def on_language_chosen(
    query: CallbackQuery,
    callback_data: kb.LangCB,
    uow: UnitOfWork,
    patient: Patient | None,
    reply: Replier,
    settings: Settings,
) -> None:
    """Switches to the chosen language and shows the next step in it."""
    await reply.answer_callback(query.id)
    tr = Translator(callback_data.code)
    if patient is None:
        assert query.from_user is not None
        patient, _ = await onboarding.start(uow, query.from_user.id, callback_data.code)
    was = step_of(patient)
    await onboarding.choose_language(uow, patient, callback_data.code)
    if was is not Step.LANGUAGE:
        await reply.text(tr("language.changed"))
        if was is Step.DONE:
            return
    await show_step(reply, tr, patient, settings)


@routes.callback_query(kb.StepCB.filter(F.action == "intro"))
async def on_intro_read(
    query: CallbackQuery,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Moves from the introduction to the consent question."""
    await reply.answer_callback(query.id)
    if patient is None:
        raise InvalidStep("no patient")
    await onboarding.acknowledge_intro(uow, patient)
    await show_step(reply, tr, patient, settings)


@routes.callback_query(kb.StepCB.filter(F.action == "consent"))
async def on_consent(
    query: CallbackQuery,
    callback_data: kb.StepCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Records agreement (then asks the name) or refusal (then stops politely)."""
    await reply.answer_callback(query.id)
    if patient is None or callback_data.value not in ("yes", "no"):
        raise InvalidStep("bad consent answer")
    await onboarding.decide_consent(uow, patient, callback_data.value == "yes")
    await show_step(reply, tr, patient, settings)


@routes.callback_query(kb.StepCB.filter(F.action.in_({"sex", "tz"})))
async def on_choice(
    query: CallbackQuery,
    callback_data: kb.StepCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Takes a sex or time-zone button, during onboarding or when editing the profile."""
    await reply.answer_callback(query.id)
    field = "sex" if callback_data.action == "sex" else "timezone"
    if patient is None:
        raise InvalidStep("no patient")
    step = step_of(patient)
    editing = await state.get_data()
    if step is Step.DONE and editing.get("field") == field:
        try:
            await onboarding.set_profile_field(
                uow, patient, field, callback_data.value, trigger=None
            )
        except BadInput as bad:  # a forged button value
            await reply.text(tr(bad.msgid, **bad.params))
            return
        if field == "timezone":
            await medication.replan(uow, patient, utcnow())  # reminders follow the new zone
        await state.clear()
        await reply.text(tr("profile.updated", field=tr.plain(f"profile.field.{field}")))
        return
    if onboarding.ONBOARDING_FIELDS.get(step, ("",))[0] != field:
        raise InvalidStep("button of another step")
    try:
        new = await onboarding.answer_step(uow, patient, callback_data.value)
    except BadInput as bad:
        await reply.text(tr(bad.msgid, **bad.params))
        await show_step(reply, tr, patient, settings)
        return
    await _done_or_next(new, reply, tr, patient, uow, settings)


@routes.message(F.contact)
async def on_contact(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Accepts the patient's own phone number from the contact button, nobody else's."""
    assert message.contact is not None
    assert message.from_user is not None
    editing = (await state.get_data()).get("field") == "phone"
    step = step_of(patient)
    if patient is None or (step is not Step.PHONE and not (editing and step is Step.DONE)):
        await reply.text(tr("error.not_understood"), ReplyKeyboardRemove())
        await show_step(reply, tr, patient, settings)
        return
    if message.contact.user_id != message.from_user.id:
        await reply.text(tr("error.phone_not_own"), kb.share_phone(tr))
        return
    try:
        if editing:
            await onboarding.set_profile_field(
                uow, patient, "phone", message.contact.phone_number, trigger=None
            )
            await state.clear()
            await reply.text(
                tr("profile.updated", field=tr.plain("profile.field.phone")),
                ReplyKeyboardRemove(),
            )
            return
        new = await onboarding.answer_step(uow, patient, message.contact.phone_number)
    except BadInput as bad:
        await reply.text(tr(bad.msgid, **bad.params), kb.share_phone(tr))
        return
    await reply.text(
        tr("profile.updated", field=tr.plain("profile.field.phone")), ReplyKeyboardRemove()
    )
    await _done_or_next(new, reply, tr, patient, uow, settings)


async def _expects_text(message: Message, patient: Patient | None, state: FSMContext) -> bool:
    """Onboarding and profile edits take typed words; an onboarded patient's other words go on
    to the routers after this one (the fallback reads them as their own words)."""
    if step_of(patient) is not Step.DONE:
        return True
    return (await state.get_data()).get("field") in ("name", "birth_year", "timezone")


def _reads_as_complaint(step: Step, text: str) -> bool:
    """A sentence about health typed where a name is asked ("my throat hurts since Monday")."""
    return step is Step.NAME and len(text.split()) >= 3 and understand.health_related(text)


@routes.message(F.text, ~F.text.startswith("/"), _expects_text)
async def on_answer_text(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Takes a typed answer: name, year of birth, time zone (onboarding or profile edit)."""
    assert message.text is not None
    step = step_of(patient)
    field = (await state.get_data()).get("field")
    if patient is not None and step is Step.DONE and field in ("name", "birth_year", "timezone"):
        try:
            await onboarding.set_profile_field(uow, patient, field, message.text, trigger=None)
        except ZoneChoice as choice:
            choices = kb.zone_choices(tr, choice.zones, cancel=True)
            await reply.text(tr(choice.msgid, **choice.params), choices)
            return
        except BadInput as bad:
            await reply.text(tr(bad.msgid, **bad.params), kb.cancel(tr))
            return
        if field == "timezone":
            await medication.replan(uow, patient, utcnow())  # reminders follow the new zone
        await state.clear()
        await reply.text(tr("profile.updated", field=tr.plain(f"profile.field.{field}")))
        return
    if patient is not None and step in TEXT_STEPS and not _reads_as_complaint(step, message.text):
        try:
            new = await onboarding.answer_step(uow, patient, message.text)
        except ZoneChoice as choice:
            await reply.text(tr(choice.msgid, **choice.params), kb.zone_choices(tr, choice.zones))
            return
        except BadInput as bad:
            await reply.text(tr(bad.msgid, **bad.params))
            return
        await _done_or_next(new, reply, tr, patient, uow, settings)
        return
    if step is Step.PHONE:
        await reply.text(tr("error.phone_use_button"), kb.share_phone(tr))
        return
    if understand.small_talk(message.text) is not None:
        await show_step(reply, tr, patient, settings)
        return
    # Before consent nothing is stored: the words are answered with "is this an emergency?"
    # and the emergency number, then the step Careline is waiting for. After a refusal the
    # step itself names the emergency number, so only health words get the question first.
    if step is not Step.DECLINED or understand.health_related(message.text):
        await ask_safety(reply, tr, settings)
    await show_step(reply, tr, patient, settings)
