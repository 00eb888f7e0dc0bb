"""Red flags everywhere: every text a patient sends, in any state, is checked first.

A hit stops the open intake (if any), sends emergency instructions ahead of everything else
and is audited. Nothing else handles that message, so no further questions follow.

A hit the second-opinion model finds very unlikely to be an emergency ("lips went a bit blue
after swimming but warmed up straight away") is *doubted*: for flags whose data allows it (not
self-harm, not chest pain), the patient is asked "Is this an emergency?" with the emergency
number (Yes gives the instructions and alerts the doctor), and the message then goes on to
whatever would have taken it (the intake, a live case, a check-in), so nothing said is lost.
"""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.types import CallbackQuery, Message

from bot.settings import Settings
from flows import caregivers, intake, medication, redflag_model, redflags
from flows.domain import Patient
from flows.outbox import PRIORITY_URGENT, Replier
from flows.questionnaire import load
from handlers.common import cases as view
from handlers.common.routes import RouteTable
from handlers.patient import case
from handlers.patient.intake_render import SafetyCB, ask_safety, show_emergency
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.emergency")


def red_flag_in(message: Message) -> bool | dict[str, Any]:
    """Filter: the message's text or caption names an emergency (injects ``hit``)."""
    text = message.text or message.caption
    if not text:
        return False
    hit = redflags.detect(text)
    if hit is None:
        return False
    return {"hit": hit, "doubted": redflag_model.doubted(text, hit.flag)}


@routes.edited_message(F.text | F.caption, red_flag_in)
@routes.message(F.text | F.caption, red_flag_in)
async def on_red_flag_text(
    message: Message,
    hit: redflags.Hit,
    doubted: bool,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """An emergency in the patient's own words (also when they edit a message to say it):
    instructions now, the intake stops. A doubted hit is asked about, then handled as
    ordinary words."""
    if doubted:
        ref = f"patient:{patient.id}" if patient is not None else "patient:unknown"
        await uow.audit.record(
            ref, "redflag.doubted", "patient", patient.id if patient else "-", {"flag": hit.flag}
        )
        await ask_safety(reply, tr, settings)
        raise SkipHandler
    if patient is not None:
        await intake.stop_for_red_flag(uow, patient, hit.flag, source="text", q=load())
    else:
        # Someone who has not consented yet: no record of them, only that a flag was raised.
        await uow.audit.record("patient:unknown", "redflag.raised", "patient", "-", {})
    await show_emergency(reply, tr, hit.flag, settings)
    if patient is not None:  # a doctor with a live case of this patient is alerted at once
        await case.alert_doctor(uow, patient, hit.flag, message.text or message.caption, settings)
    if message.from_user is not None:
        await alert_for_caregiver(uow, message.from_user.id, hit.flag, settings)


async def alert_for_caregiver(
    uow: UnitOfWork, tg_user_id: int, flag: str | None, settings: Settings
) -> None:
    """A caregiver reports an emergency ("she collapsed"): the doctors of the people they care
    for are alerted — the doctor of a live case, else the doctor of an active medication
    plan. The caregiver's words are not stored in the patient's record."""
    for cg in await caregivers.by_user(uow, tg_user_id):
        cared = await uow.patients.get(cg.patient_id)
        if cared is None:
            continue
        await uow.audit.record(
            caregivers.actor_ref(cg), "redflag.caregiver", "patient", cared.id, {"flag": flag}
        )
        if await case.alert_doctor(uow, cared, flag, None, settings):
            continue
        label = await caregivers.patient_label(uow, cared)
        plans = await medication.plans_of_patient(uow, cared.id, (medication.Status.ACTIVE,))
        for doctor_id in dict.fromkeys(p.doctor_id for p in plans):
            doctor = await uow.doctors.get(doctor_id)
            if doctor is None:
                continue
            dtr, dreply = view.to_doctor(uow, doctor)
            await dreply.text(
                dtr(
                    "emergency.doctor.caregiver",
                    name=label,
                    what=dtr(f"redflag.{flag}") if flag else dtr("safety.what"),
                    emergency_number=settings.local_emergency_number,
                ),
                priority=PRIORITY_URGENT,
                protect=True,
            )


@routes.callback_query(SafetyCB.filter(F.answer == "yes"))
async def on_safety_yes(
    query: CallbackQuery,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """ "Yes, it is an emergency": what to do now (the emergency number first), the doctor of a
    live case (or a caregiver's patient's doctor) alerted, audited."""
    await reply.answer_callback(query.id)
    ref = f"patient:{patient.id}" if patient is not None else "patient:unknown"
    await uow.audit.record(ref, "redflag.confirmed", "patient", patient.id if patient else "-")
    await show_emergency(reply, tr, None, settings)
    if patient is not None:
        await case.alert_doctor(uow, patient, None, None, settings)
    await alert_for_caregiver(uow, query.from_user.id, None, settings)
