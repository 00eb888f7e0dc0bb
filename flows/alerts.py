"""Care alerts: something a doctor must look at for a patient under their care (a reading
over a threshold, a missed check-in, a side effect, a dose nobody answered).

An alert is a ``care_alerts`` row (shown at the top of the doctor's /queue and in /alerts
until acknowledged) plus one message to the doctor through the doctor bot's outbox: the
patient's case-style tag (``#N · first name · age band``, never their Telegram account), the
alert text and an Acknowledge button. ``danger`` alerts go out at urgent priority.

Other flows can react to an acknowledgement (e.g. stop an escalation ladder) by registering
a hook per alert kind with :func:`on_ack`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from flows.intake import age_band_for
from flows.questionnaire import load
from locales import Html, Translator, catalog
from storage.models import CareAlert, Consultation, Doctor, FollowUpPlan, MedicationPlan, utcnow
from storage.uow import UnitOfWork

LEVELS = ("alert", "danger")
# Outbox priorities (the same numbers as bot.telegram.reply; flows do not import the bot):
# danger goes before everything, an ordinary alert with the replies.
PRIORITY_URGENT = 0
PRIORITY_ALERT = 3
# Callback data of the Acknowledge button: "ca:ack:<alert id>" (aiogram's CallbackData
# format, unpacked by handlers.doctor.care.AlertCB).
CB_PREFIX = "ca"

AckHook = Callable[[UnitOfWork, CareAlert, Doctor, datetime], Awaitable[None]]
_HOOKS: dict[str, AckHook] = {}


class NotAllowed(Exception):
    """The alert is not this doctor's (``not_yours``) or was acknowledged already
    (``acked``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def on_ack(kind: str) -> Callable[[AckHook], AckHook]:
    """Register ``fn(uow, alert, doctor, now)`` to run when an alert of ``kind`` is
    acknowledged (in the same transaction)."""

    def register(fn: AckHook) -> AckHook:
        _HOOKS[kind] = fn
        return fn

    return register


def ack_data(alert_id: str) -> str:
    """The Acknowledge button's callback data."""
    return f"{CB_PREFIX}:ack:{alert_id}"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def doctor_ref(doctor_id: str) -> str:
    """The audit actor of a doctor (as flows.consultation writes it)."""
    return f"doctor:{doctor_id}"


async def case_of(uow: UnitOfWork, doctor_id: str, patient_id: str) -> Consultation | None:
    """The patient's most recent case with this doctor (any state), if any."""
    return await uow.session.scalar(
        select(Consultation)
        .where(Consultation.patient_id == patient_id, Consultation.doctor_id == doctor_id)
        .order_by(Consultation.requested_at.desc())
        .limit(1)
    )


async def under_care(uow: UnitOfWork, doctor_id: str, patient_id: str) -> bool:
    """The doctor accepted a case of this patient (any state since), or owns a medication
    or follow-up plan of theirs."""
    if await case_of(uow, doctor_id, patient_id) is not None:
        return True
    for model in (FollowUpPlan, MedicationPlan):
        found = await uow.session.scalar(
            select(model.id)
            .where(model.doctor_id == doctor_id, model.patient_id == patient_id)
            .limit(1)
        )
        if found is not None:
            return True
    return False


async def patient_tag(uow: UnitOfWork, tr: Translator, doctor_id: str, patient_id: str) -> str:
    """``#N · first name · age band`` as the doctor sees the patient (the number of their
    latest case together; without one, the name and age band only)."""
    patient = await uow.patients.get(patient_id)
    name, band = "—", None
    if patient is not None:
        full = await uow.patients.get_field(patient, "name") or ""
        name = full.split()[0] if full.split() else "—"
        band = age_band_for(await uow.patients.get_field(patient, "birth_year"), load().age_bands)
    age = tr.plain(f"intake.age.{band}") if band else "—"
    case = await case_of(uow, doctor_id, patient_id)
    if case is None:
        return f"{name} · {age}"
    return f"#{case.number} · {name} · {age}"


def kind_label(tr: Translator, kind: str) -> str:
    """An alert kind in words (``care.kind.<kind>``, or a generic label)."""
    msgid = f"care.kind.{kind}"
    return tr.plain(msgid if msgid in catalog("en") else "care.kind.other")


async def raise_alert(
    uow: UnitOfWork,
    *,
    patient_id: str,
    doctor_id: str,
    kind: str,
    ref_id: str,
    level: str,
    msgid: str,
    params: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> CareAlert:
    """Insert a care alert and send the doctor its message (``msgid`` rendered with
    ``params`` in the doctor's language, under the patient's tag) with an Acknowledge
    button; urgent priority for ``danger``. Audited without the values."""
    if level not in LEVELS:
        raise ValueError(f"unknown alert level {level!r}")
    at = now or utcnow()
    alert = CareAlert(
        patient_id=patient_id,
        doctor_id=doctor_id,
        kind=kind[:24],
        ref_id=ref_id[:32],
        level=level,
        created_at=at,
    )
    uow.session.add(alert)
    await uow.session.flush()
    doctor = await uow.doctors.get(doctor_id)
    if doctor is not None and not doctor.unreachable:
        tr = Translator(doctor.locale)
        tag = await patient_tag(uow, tr, doctor_id, patient_id)
        body = tr(msgid, **(params or {}))
        text = tr(f"care.alert.{level}", tag=tag, text=Html(body))
        markup = {
            "inline_keyboard": [
                [{"text": tr.plain("care.alert.ack"), "callback_data": ack_data(alert.id)}]
            ]
        }
        await uow.outbox.enqueue(
            "doctor",
            doctor.tg_user_id,
            "sendMessage",
            {
                "chat_id": doctor.tg_user_id,
                "text": text,
                "parse_mode": "HTML",
                "reply_markup": markup,
                "protect_content": True,
            },
            priority=PRIORITY_URGENT if level == "danger" else PRIORITY_ALERT,
        )
    await uow.audit.record(
        "system", "care.alert", "care_alert", alert.id, {"kind": kind, "level": level}
    )
    return alert


async def ack(uow: UnitOfWork, doctor: Doctor, alert_id: str, now: datetime) -> CareAlert:
    """The doctor acknowledges one of their alerts (audited, hooks of its kind run);
    ``NotAllowed`` when it is not theirs or was acknowledged already."""
    alert = await uow.session.get(CareAlert, alert_id) if alert_id else None
    if alert is None or alert.doctor_id != doctor.id:
        await uow.audit.record(
            doctor_ref(doctor.id), "care.alert.refused", "care_alert", (alert_id or "-")[:32], {}
        )
        raise NotAllowed("not_yours")
    if alert.acked_at is not None:
        raise NotAllowed("acked")
    alert.acked_at = now
    await uow.audit.record(
        doctor_ref(doctor.id), "care.alert.ack", "care_alert", alert.id, {"kind": alert.kind}
    )
    hook = _HOOKS.get(alert.kind)
    if hook is not None:
        await hook(uow, alert, doctor, now)
    return alert


async def open_for(uow: UnitOfWork, doctor_id: str) -> list[CareAlert]:
    """The doctor's unacknowledged alerts: danger first, then oldest first."""
    rows = await uow.session.scalars(
        select(CareAlert)
        .where(CareAlert.doctor_id == doctor_id, CareAlert.acked_at.is_(None))
        .order_by(CareAlert.created_at, CareAlert.id)
        .limit(200)
    )
    alerts = list(rows)
    alerts.sort(key=lambda a: (0 if a.level == "danger" else 1, _aware(a.created_at)))
    return alerts


async def describe(uow: UnitOfWork, tr: Translator, alert: CareAlert, now: datetime) -> Html:
    """One line of /alerts and /queue: level, tag, kind and how long ago."""
    tag = await patient_tag(uow, tr, alert.doctor_id, alert.patient_id)
    minutes = max(0, int((now - _aware(alert.created_at)).total_seconds() // 60))
    ago = (
        tr.plain("care.minutes_ago", n=minutes)
        if minutes < 120
        else tr.plain("care.hours_ago", n=minutes // 60)
    )
    return tr(f"care.alert.line.{alert.level}", tag=tag, kind=kind_label(tr, alert.kind), ago=ago)
