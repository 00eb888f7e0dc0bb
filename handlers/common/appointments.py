"""What both bots say about a hospital appointment: the time in the reader's zone, the
booking's card (hospital, service, what to bring), and the buttons of free times."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton

from flows import appointments as apf
from locales import Translator
from storage.uow import UnitOfWork

OFFER_BUTTONS = 8


def _zone(tz: str | None) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(tz or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def when(tr: Translator, starts_at: datetime, all_day: bool, tz: str | None) -> str:
    """``2026-03-05 09:30`` (or ``2026-03-05, any time``) in the reader's zone."""
    local = (starts_at if starts_at.tzinfo else starts_at.replace(tzinfo=UTC)).astimezone(
        _zone(tz)
    )
    if all_day:
        return tr.plain("appt.all_day", date=local.date().isoformat())
    return local.strftime("%Y-%m-%d %H:%M")


def offer_buttons(
    tr: Translator, found: list[apf.Offer], tz: str | None, make: Any
) -> list[list[InlineKeyboardButton]]:
    """One button per free time (``make(slot_id) -> CallbackData``)."""
    rows = []
    for offer in found[:OFFER_BUTTONS]:
        label = f"{when(tr, offer.slot.starts_at, offer.slot.all_day, tz)} · {offer.service.name}"
        cb: CallbackData = make(offer.slot.id)
        rows.append([InlineKeyboardButton(text=label[:64], callback_data=cb.pack())])
    return rows


async def card(uow: UnitOfWork, tr: Translator, appt: Any, tz: str | None) -> dict[str, str]:
    """The parameters of an appointment's messages: hospital, city, service, department, when,
    what to bring, the slip's code, and where to go inside the hospital (a line of its own,
    or empty)."""
    slot = await uow.appointments.slot(appt.slot_id)
    service = await uow.appointments.service(appt.service_id)
    hospital = await uow.referrals.hospital(appt.hospital_id)
    referral = await uow.referrals.get(appt.referral_id)
    return {
        "hospital": hospital.name if hospital else "—",
        "city": (hospital.city or "") if hospital else "",
        "service": service.name if service else "—",
        "department": service.department if service else "—",
        "when": when(tr, slot.starts_at, slot.all_day, tz) if slot else "—",
        "bring": (service.bring if service and service.bring else tr.plain("appt.bring_none")),
        "code": (referral.code or "—") if referral else "—",
        "directions": (
            "\n" + tr.plain("appt.directions", text=service.directions)
            if service and service.directions
            else ""
        ),
    }
