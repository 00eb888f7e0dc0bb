"""After an urgent referral: "did you go? what did they say?", and the patient's report of the
visit (also from /referrals), relayed to the referring doctor.

An urgent referral (emergency, within 24 h, within 2 weeks) schedules one keyed
``referral.followup`` event within two weeks of issue (3, 7 and 10 days after it, at 10:00 in
the patient's time zone); when it is asked, a recall is scheduled 3 days later, sent only when
the patient has not answered by then ("Not yet" keeps the recall; "I went" with what they
were told, or "I couldn't go", ends it). The answer is sealed in ``referrals.outcome_enc`` as
JSON ``{"answer": "went" | "not_yet" | "couldnt", "text": ..., "at": ISO time}``; "I went"
marks an issued slip used by the patient.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flows import referrals as core
from flows.errors import UserError
from storage.models import Patient, Referral, ScheduledEvent
from storage.uow import UnitOfWork

KIND = "referral.followup"
TABLE = "referrals"
DELAY_DAYS = {"emergency": 3, "within_24h": 7, "within_2w": 10}
RECALL_DAYS = 3
ASK_AT = time(10, 0)  # local time of day the question is asked
ANSWERS = ("went", "not_yet", "couldnt")
TEXT_MAX = 2000


class NotAllowed(Exception):
    """Not the patient's referral, or not in a state for this answer (``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadInput(UserError, ValueError):
    """An unusable typed outcome; ``msgid``/``params`` say why."""


@dataclass(frozen=True)
class Ask:
    """A follow-up question to send: the referral, its patient, and whether it is the recall."""

    referral: Referral
    patient: Patient
    recall: bool


def patient_ref(patient: Patient) -> str:
    """The audit actor of a patient."""
    return f"patient:{patient.id}"


def _zone(name: str | None) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def ask_at(issued: datetime, days: int, tz: str | None) -> datetime:
    """``days`` after ``issued``, at 10:00 local (UTC)."""
    zone = _zone(tz)
    day = _aware(issued).astimezone(zone).date() + timedelta(days=days)
    return datetime.combine(day, ASK_AT, tzinfo=zone).astimezone(UTC)


async def schedule(uow: UnitOfWork, referral: Referral, now: datetime) -> datetime | None:
    """After issuing: the follow-up of an urgent referral (None for a routine one)."""
    days = DELAY_DAYS.get(referral.urgency)
    if days is None:
        return None
    patient = await uow.patients.get(referral.patient_id)
    due = ask_at(referral.issued_at or now, days, patient.timezone if patient else None)
    await uow.events.add(KIND, referral.id, referral.patient_id, due, key=f"reffu:{referral.id}:1")
    return due


async def outcome(uow: UnitOfWork, referral: Referral) -> dict[str, Any]:
    """The patient's answer so far (empty when none)."""
    return await uow.followups.referral_outcome(referral)


async def _save(uow: UnitOfWork, referral: Referral, doc: dict[str, Any]) -> None:
    await uow.followups.set_referral_outcome(referral, doc)


def _final(doc: dict[str, Any]) -> bool:
    return doc.get("answer") == "couldnt" or bool(doc.get("text"))


async def due(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> Ask | None:
    """A ``referral.followup`` event runs: the question to send, or None (revoked, already
    answered, or the patient is gone). The first ask schedules the recall."""
    referral = await uow.followups.referral(event.subject)
    if referral is None or referral.status in ("draft", "revoked"):
        return None
    patient = await uow.patients.get(referral.patient_id)
    if patient is None or patient.tg_user_id is None:
        return None
    doc = await outcome(uow, referral)
    recall = (event.key or "").endswith(":2")
    if _final(doc) or (recall and doc.get("answer") in ("went", "couldnt")):
        return None
    if not recall:
        await uow.events.add(
            KIND,
            referral.id,
            referral.patient_id,
            ask_at(now, RECALL_DAYS, patient.timezone),
            key=f"reffu:{referral.id}:2",
        )
    return Ask(referral, patient, recall)


async def _own(uow: UnitOfWork, patient: Patient, referral_id: str) -> Referral:
    referral = await uow.followups.referral(referral_id) if referral_id else None
    if referral is None or referral.patient_id != patient.id or referral.status == "draft":
        raise NotAllowed("stale")
    return referral


async def mine(uow: UnitOfWork, patient: Patient, referral_id: str) -> Referral:
    """One of the patient's referrals (past draft); :class:`NotAllowed` otherwise."""
    return await _own(uow, patient, referral_id)


async def answer(
    uow: UnitOfWork, patient: Patient, referral_id: str, choice: str, now: datetime
) -> Referral:
    """The patient answered "I went" / "Not yet" / "I couldn't go" (a follow-up button or
    /referrals). "I went" marks an issued slip used (by the patient) and waits for what they
    were told; the other two are final for the doctor to see now."""
    if choice not in ANSWERS:
        raise NotAllowed("stale")
    referral = await _own(uow, patient, referral_id)
    if referral.status == "revoked":
        raise NotAllowed("revoked")
    doc = await outcome(uow, referral)
    if _final(doc):
        raise NotAllowed("answered")
    if choice == "went" and referral.status == "issued":
        await core.mark_used(uow, referral, now, by="patient", actor=patient_ref(patient))
    doc.update({"answer": choice, "at": now.isoformat()})
    await _save(uow, referral, doc)
    if choice == "couldnt":
        await uow.events.cancel_for(KIND, referral.id)
    await uow.audit.record(
        patient_ref(patient), "referral.followup.answer", TABLE, referral.id, {"answer": choice}
    )
    return referral


def clean_text(raw: str) -> str:
    """A typed outcome: 1..2000 characters of text."""
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in (raw or "").splitlines()]
    text = "\n".join(line for line in lines if line).strip()
    if not text:
        raise BadInput("ref.out.empty")
    if len(text) > TEXT_MAX:
        raise BadInput("ref.out.too_long", max=TEXT_MAX)
    return text


async def tell(
    uow: UnitOfWork, patient: Patient, referral_id: str, raw: str, now: datetime
) -> tuple[Referral, str]:
    """What the patient was told at the hospital (after "I went"): sealed with the answer,
    the follow-up ends. Returns the referral and the text for the doctor."""
    text = clean_text(raw)
    referral = await _own(uow, patient, referral_id)
    doc = await outcome(uow, referral)
    if doc.get("text"):
        raise NotAllowed("answered")
    doc.update({"answer": "went", "text": text, "at": now.isoformat()})
    await _save(uow, referral, doc)
    await uow.events.cancel_for(KIND, referral.id)
    await uow.audit.record(patient_ref(patient), "referral.outcome", TABLE, referral.id, {})
    return referral, text
