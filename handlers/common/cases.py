"""What each side sees of a consultation, shared by both bots and the scheduler: the case tag
headers, the doctor's card for patients, the department's new-case notice for doctors, the
rating asked of the patient when a case ends, and the files either side may relay.

Doctors see a patient as ``#N · first name``; patients see a doctor as name, title,
department, hospital and a verified mark. Neither ever sees the other's Telegram account or
phone: every cross-person message goes through the outbox of the other bot.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import consultation as flow
from flows import trust
from flows.domain import Consultation, Doctor, Patient
from flows.outbox import PRIORITY_REPLY, Replier
from locales import Html, Translator
from storage.uow import UnitOfWork


class QueueCB(CallbackData, prefix="cq"):
    """Accept or skip one waiting case (``case``: its id); handled in handlers.doctor.queue."""

    action: str  # acc (from /queue's card) | take (from a notice: the card follows) | skip
    case: str


class RateCB(CallbackData, prefix="pr"):
    """A rating of a closed case (``stars`` 1–5; 0 skips the comment); handled in
    handlers.patient.case."""

    case: str
    stars: int


def accept_keyboard(
    tr: Translator, case: Consultation, *, skip: bool = False
) -> InlineKeyboardMarkup:
    """Accept (and Skip, in /queue, under the case's card) for one waiting case. Without
    Skip the button is under a notice that shows no health details, so accepting from it
    sends the doctor the case's card (``take``)."""
    row = [
        InlineKeyboardButton(
            text=tr.plain("consult.doctor.accept"),
            callback_data=QueueCB(action="acc" if skip else "take", case=case.id).pack(),
        )
    ]
    if skip:
        row.append(
            InlineKeyboardButton(
                text=tr.plain("consult.doctor.skip"),
                callback_data=QueueCB(action="skip", case=case.id).pack(),
            )
        )
    return InlineKeyboardMarkup(inline_keyboard=[row])


def duration(tr: Translator, span: timedelta) -> str:
    """A wait in words: minutes under two hours, else hours."""
    minutes = max(1, round(span.total_seconds() / 60))
    if minutes < 120:
        return tr.plain("consult.minutes", n=minutes)
    return tr.plain("consult.hours", n=round(minutes / 60))


def _local_time(when: datetime, patient: Patient, clinic_tz: str) -> str:
    for name in (patient.timezone, clinic_tz, "UTC"):
        try:
            return when.astimezone(zoneinfo.ZoneInfo(name or "UTC")).strftime("%H:%M")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return when.strftime("%H:%M")


def wait_text(
    tr: Translator, case: Consultation, wait: flow.Wait, patient: Patient, clinic_tz: str
) -> Html:
    """The honest part of the "your case is in the queue" message."""
    if not wait.on_duty and wait.next_start is not None:
        text = tr(
            "consult.wait.off_duty_at", time=_local_time(wait.next_start, patient, clinic_tz)
        )
    elif not wait.on_duty:
        text = tr("consult.wait.off_duty")
    elif wait.estimate is not None:
        text = tr("consult.wait.estimate", place=wait.place, estimate=duration(tr, wait.estimate))
    else:
        text = tr("consult.wait.place", place=wait.place)
    preferred = case.preferred_department
    if preferred and preferred != case.department:
        routed = tr(
            "consult.wait.routed",
            preferred=tr.plain(f"dept.{preferred}"),
            department=department(tr, case),
        )
        text = Html(f"{routed}\n{text}")
    return text


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
    uow: UnitOfWork,
    case: Consultation,
    settings: Settings,
    now: datetime,
    *,
    left: str | None = None,
) -> int:
    """One short notice (tag and triage level, no health details) with an Accept button to
    each doctor of the case's department who is on duty and within working hours; ``left``:
    the department the case fell back from. Returns how many were told."""
    doctors = await flow.doctors_for(uow, case.department, now, settings.timezone)
    for doctor in doctors:
        tr, reply = to_doctor(uow, doctor)
        common = {
            "number": case.number,
            "department": department(tr, case),
            "level": level(tr, case),
        }
        if left is None:
            text = tr("consult.doctor.new_case", **common)
        else:
            text = tr("consult.doctor.fell_back", left=tr.plain(f"dept.{left}"), **common)
        await reply.text(text, accept_keyboard(tr, case))
    return len(doctors)


def rate_keyboard(case: Consultation) -> InlineKeyboardMarkup:
    """Five buttons, 1★ to 5★."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=f"{n}★", callback_data=RateCB(case=case.id, stars=n).pack()
                )
                for n in range(1, 6)
            ]
        ]
    )


async def ask_rating(uow: UnitOfWork, case: Consultation) -> None:
    """After a case ends, the patient is asked to rate it (in their language)."""
    found = await to_patient(uow, case)
    if found is None:
        return
    _, tr, reply = found
    await reply.text(tr("trust.rate_ask", number=case.number), rate_keyboard(case))


def file_of(message: Message) -> tuple[str, str, int | None, str | None] | None:
    """(kind, file id, size, file name) of a relayable file in the message."""
    if message.photo:
        best = message.photo[-1]
        return "photo", best.file_id, best.file_size, None
    for kind in ("voice", "document", "audio", "video"):
        item = getattr(message, kind)
        if item is not None:
            return kind, item.file_id, item.file_size, getattr(item, "file_name", None)
    return None
