"""Red flags everywhere: every text a patient sends, in any state, is checked first.

A hit stops the open intake (if any), sends emergency instructions ahead of everything else
and is audited. Nothing else handles that message, so no further questions follow.
"""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.types import Message

from bot.settings import Settings
from bot.telegram.reply import Replier
from flows import intake, redflags
from flows.questionnaire import load
from handlers.common.routes import RouteTable
from handlers.patient import case
from handlers.patient.intake_render import show_emergency
from locales import Translator
from storage.models import Patient
from storage.uow import UnitOfWork

routes = RouteTable("patient.emergency")


def red_flag_in(message: Message) -> bool | dict[str, Any]:
    """Filter: the message's text or caption names an emergency (injects ``hit``)."""
    text = message.text or message.caption
    if not text:
        return False
    hit = redflags.detect(text)
    return False if hit is None else {"hit": hit}


@routes.edited_message(F.text | F.caption, red_flag_in)
@routes.message(F.text | F.caption, red_flag_in)
async def on_red_flag_text(
    message: Message,
    hit: redflags.Hit,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """An emergency in the patient's own words (also when they edit a message to say it):
    instructions now, the intake stops."""
    if patient is not None:
        await intake.stop_for_red_flag(uow, patient, hit.flag, source="text", q=load())
    else:
        # Someone who has not consented yet: no record of them, only that a flag was raised.
        await uow.audit.record("patient:unknown", "redflag.raised", "patient", "-", {})
    await show_emergency(reply, tr, hit.flag, settings)
    if patient is not None:  # a doctor with a live case of this patient is alerted at once
        await case.alert_doctor(uow, patient, hit.flag, message.text or message.caption, settings)
