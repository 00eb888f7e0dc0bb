"""What each side sees of a consultation, shared by both bots and the scheduler: the case tag
headers, the doctor's card for patients, and the department's new-case notice for doctors.

Doctors see a patient as ``#N · first name``; patients see a doctor as name, title,
department, hospital and a verified mark. Neither ever sees the other's Telegram account or
phone: every cross-person message goes through the outbox of the other bot.
"""

from __future__ import annotations

import re
from datetime import datetime

from bot.settings import Settings
from bot.telegram.reply import PRIORITY_REPLY, Replier
from flows import consultation as flow
from flows import trust
from locales import Html, Translator
from storage.models import Consultation, Doctor, Patient
from storage.uow import UnitOfWork

_TAG = re.compile(r"^\s*#(\d{1,9})\b")


def tag_of(text: str | None) -> int | None:
    """The case number a bot message starts with (``#12 · Anna``), if any."""
    m = _TAG.match(text or "")
    return int(m.group(1)) if m else None


def level(tr: Translator, case: Consultation) -> str:
    """The triage level of a case, in words."""
    return tr.plain(f"disposition.{flow.RANKS[case.priority]}")


def department(tr: Translator, case: Consultation) -> str:
    """The case's department, in words."""
    return tr.plain(f"dept.{case.department}")


async def doctor_card(uow: UnitOfWork, tr: Translator, doctor: Doctor, case: Consultation) -> Html:
    """Name, title, department, hospital, the verified mark and the rating (once rated)."""
    card = await flow.doctor_card(uow, doctor)
    text = tr(
        "consult.doctor_card",
        name=card["name"] or "—",
        title=card["title"] or "—",
        department=department(tr, case),
        hospital=card["hospital"] or "—",
    )
    rating = trust.rating_of(doctor)
    if rating.average is None:
        return text
    return Html(text + " · " + tr("trust.rating", average=rating.average, count=rating.count))


async def to_patient(
    uow: UnitOfWork, case: Consultation, *, priority: int = PRIORITY_REPLY
) -> tuple[Patient, Translator, Replier] | None:
    """The patient of a case with their language and the patient bot's replier."""
    patient = await uow.patients.get(case.patient_id)
    if patient is None:
        return None
    return patient, Translator(patient.locale), Replier(uow, "patient", patient.tg_user_id)


def to_doctor(uow: UnitOfWork, doctor: Doctor) -> tuple[Translator, Replier]:
    """A doctor's language and the doctor bot's replier addressed to them."""
    return Translator(doctor.locale), Replier(uow, "doctor", doctor.tg_user_id)


async def notify_department(
    uow: UnitOfWork, case: Consultation, settings: Settings, now: datetime
) -> int:
    """One short notice (tag and triage level, no health details) to each doctor of the
    case's department who is on duty and within working hours; returns how many."""
    doctors = await flow.doctors_for(uow, case.department, now, settings.timezone)
    for doctor in doctors:
        tr, reply = to_doctor(uow, doctor)
        await reply.text(
            tr(
                "consult.doctor.new_case",
                number=case.number,
                department=department(tr, case),
                level=level(tr, case),
            )
        )
    return len(doctors)
