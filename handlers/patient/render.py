"""What the patient sees for each onboarding step."""

from __future__ import annotations

from aiogram.types import ReplyKeyboardRemove

from bot.settings import Settings
from flows.domain import Patient
from flows.onboarding import CONSENT_VERSION, Step, step_of
from flows.outbox import Replier
from handlers.patient import keyboards as kb
from locales import Translator


async def show_step(
    reply: Replier, tr: Translator, patient: Patient | None, settings: Settings
) -> None:
    """Ask the question of the patient's current step (or say what to do next)."""
    step = step_of(patient)
    emergency = settings.local_emergency_number
    if step in (Step.NEW, Step.LANGUAGE):
        await reply.text(tr("onboarding.choose_language"), kb.languages())
    elif step is Step.INTRO:
        await reply.text(
            tr("onboarding.intro", emergency_number=emergency),
            kb.single(tr, "onboarding.intro.continue", kb.StepCB(action="intro")),
        )
    elif step is Step.CONSENT:
        await reply.text(tr("onboarding.consent", version=CONSENT_VERSION), kb.consent(tr))
    elif step is Step.DECLINED:
        await reply.text(tr("onboarding.declined", emergency_number=emergency))
    elif step is Step.NAME:
        await reply.text(tr("onboarding.ask_name"))
    elif step is Step.BIRTH_YEAR:
        await reply.text(tr("onboarding.ask_birth_year"))
    elif step is Step.SEX:
        await reply.text(tr("onboarding.ask_sex"), kb.sexes(tr))
    elif step is Step.PHONE:
        await reply.text(tr("onboarding.ask_phone"), kb.share_phone(tr))
    elif step is Step.TIMEZONE:
        await reply.text(
            tr("onboarding.ask_timezone"),
            kb.timezones(tr, settings.timezone),
        )
    else:
        await reply.text(tr("help.patient", emergency_number=emergency), ReplyKeyboardRemove())
