"""Care alerts: something a doctor must look at for a patient under their care (a reading
over a threshold, a missed check-in, a side effect, a dose nobody answered).

An alert is a ``care_alerts`` row (shown at the top of the doctor's /queue and in /alerts
while open) plus one message to the doctor through the doctor bot's outbox: the patient's
case-style tag (``#N · first name · age band``, never their Telegram account), the alert text
and an Acknowledge button. ``danger`` alerts go out at urgent priority. Its cause is ``kind``
plus ``ref_id`` (the dose, check-in or plan it is about).

An alert closes (``acked_at``) in one of two ways, and the audit log says which: the doctor
presses Acknowledge (``care.alert.ack``), or its cause goes away — a dose taken late, a
missed check-in answered — and the flow that saw it calls :func:`resolve`
(``care.alert.resolved``, by whom and what), which tells each doctor who was alerted once.

The row keeps no text: /alerts re-renders what happened from the record the alert is about,
with a describer the owning flow registers per kind (:func:`on_describe`). Other flows can
react to an acknowledgement (e.g. stop an escalation ladder) with :func:`on_ack`.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flows.intake import age_band_for
from flows.outbox import ALERT_CB, PRIORITY_REPLY, PRIORITY_URGENT, Replier, buttons
from flows.questionnaire import load
from locales import Html, Translator, catalog
from storage.models import CareAlert, Consultation, Doctor, utcnow
from storage.uow import UnitOfWork

LEVELS = ("alert", "danger")

AckHook = Callable[[UnitOfWork, CareAlert, Doctor, datetime], Awaitable[None]]
_HOOKS: dict[str, AckHook] = {}
# What happened, re-rendered from the record an alert is about (None: that record is gone).
Describer = Callable[[UnitOfWork, Translator, CareAlert], Awaitable[Html | None]]
_DESCRIBERS: dict[str, Describer] = {}


class NotAllowed(Exception):
    """The alert is not this doctor's (``not_yours``), was acknowledged already (``acked``)
    or closed itself when its cause went away (``resolved``)."""

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


def on_describe(kind: str) -> Callable[[Describer], Describer]:
    """Register ``fn(uow, tr, alert)``: the text of an alert of ``kind`` in ``tr``'s language
    (the same words its message had), for /alerts."""

    def register(fn: Describer) -> Describer:
        _DESCRIBERS[kind] = fn
        return fn

    return register


def ack_data(alert_id: str) -> str:
    """The Acknowledge button's callback data (``ca:ack:<alert id>``)."""
    return ALERT_CB.pack(action="ack", alert=alert_id)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def doctor_ref(doctor_id: str) -> str:
    """The audit actor of a doctor (as flows.consultation writes it)."""
    return f"doctor:{doctor_id}"


async def case_of(uow: UnitOfWork, doctor_id: str, patient_id: str) -> Consultation | None:
    """The patient's most recent case with this doctor (any state), if any."""
    return await uow.care.latest_case(doctor_id, patient_id)


async def under_care(uow: UnitOfWork, doctor_id: str, patient_id: str) -> bool:
    """The doctor accepted a case of this patient (any state since), or owns a medication
    or follow-up plan of theirs."""
    if await case_of(uow, doctor_id, patient_id) is not None:
        return True
    return await uow.care.owns_plan(doctor_id, patient_id)


async def first_name(uow: UnitOfWork, patient_id: str) -> str:
    """The patient's first name ("—" when unknown)."""
    patient = await uow.patients.get(patient_id)
    full = (await uow.patients.get_field(patient, "name") or "") if patient else ""
    return full.split()[0] if full.split() else "—"


async def patient_tag(uow: UnitOfWork, tr: Translator, doctor_id: str, patient_id: str) -> str:
    """``#N · first name · age band`` as the doctor sees the patient (the number of their
    latest case together; without one, the name and age band only)."""
    patient = await uow.patients.get(patient_id)
    name, band = await first_name(uow, patient_id), None
    if patient is not None:
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
    await uow.care.add_alert(alert)
    doctor = await uow.doctors.get(doctor_id)
    if doctor is not None and not doctor.unreachable:
        tr = Translator(doctor.locale)
        tag = await patient_tag(uow, tr, doctor_id, patient_id)
        body = tr(msgid, **(params or {}))
        text = tr(f"care.alert.{level}", tag=tag, text=Html(body))
        # danger goes before everything, an ordinary alert with the replies
        await Replier(uow, "doctor", doctor.tg_user_id).text(
            text,
            buttons([[(tr.plain("care.alert.ack"), ack_data(alert.id))]]),
            protect=True,
            priority=PRIORITY_URGENT if level == "danger" else PRIORITY_REPLY,
        )
    await uow.audit.record(
        "system", "care.alert", "care_alert", alert.id, {"kind": kind, "level": level}
    )
    return alert


async def ack(uow: UnitOfWork, doctor: Doctor, alert_id: str, now: datetime) -> CareAlert:
    """The doctor acknowledges one of their alerts (audited, hooks of its kind run);
    ``NotAllowed`` when it is not theirs or was acknowledged already."""
    alert = await uow.care.alert(alert_id) if alert_id else None
    if alert is None or alert.doctor_id != doctor.id:
        await uow.audit.record(
            doctor_ref(doctor.id), "care.alert.refused", "care_alert", (alert_id or "-")[:32], {}
        )
        raise NotAllowed("not_yours")
    if alert.acked_at is not None:
        raise NotAllowed("resolved" if await was_resolved(uow, alert) else "acked")
    alert.acked_at = now
    await uow.audit.record(
        doctor_ref(doctor.id), "care.alert.ack", "care_alert", alert.id, {"kind": alert.kind}
    )
    hook = _HOOKS.get(alert.kind)
    if hook is not None:
        await hook(uow, alert, doctor, now)
    return alert


async def open_for(uow: UnitOfWork, doctor_id: str) -> list[CareAlert]:
    """The doctor's open alerts: danger first, then oldest first."""
    alerts = await uow.care.open_alerts_for_doctor(doctor_id)
    alerts.sort(key=lambda a: (0 if a.level == "danger" else 1, _aware(a.created_at)))
    return alerts


def _ago(tr: Translator, since: datetime, now: datetime) -> str:
    minutes = max(0, int((now - _aware(since)).total_seconds() // 60))
    if minutes < 120:
        return tr.plain("care.minutes_ago", n=minutes)
    if minutes < 48 * 60:
        return tr.plain("care.hours_ago", n=minutes // 60)
    return tr.plain("care.days_ago", n=minutes // (24 * 60))


def _zone(name: str | None) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def local_time(at: datetime, zone: str | None, now: datetime | None = None) -> str:
    """A moment as "HH:MM" in ``zone``, with the date in front when it is not ``now``'s
    day there."""
    tz = _zone(zone)
    local = _aware(at).astimezone(tz)
    if now is not None and _aware(now).astimezone(tz).date() != local.date():
        return f"{local:%Y-%m-%d %H:%M}"
    return f"{local:%H:%M}"


async def describe(uow: UnitOfWork, tr: Translator, alert: CareAlert, now: datetime) -> Html:
    """One line of /queue: level, tag, kind and how long ago."""
    tag = await patient_tag(uow, tr, alert.doctor_id, alert.patient_id)
    ago = _ago(tr, alert.created_at, now)
    return tr(f"care.alert.line.{alert.level}", tag=tag, kind=kind_label(tr, alert.kind), ago=ago)


async def text_of(uow: UnitOfWork, tr: Translator, alert: CareAlert) -> Html | None:
    """What happened, as the alert's message said it (None when no describer knows)."""
    describer = _DESCRIBERS.get(alert.kind)
    return None if describer is None else await describer(uow, tr, alert)


async def card(
    uow: UnitOfWork, tr: Translator, alert: CareAlert, now: datetime, zone: str | None
) -> Html:
    """One open alert in /alerts: level, tag and kind; what happened; since when (in the
    doctor's ``zone``) and how long ago."""
    tag = await patient_tag(uow, tr, alert.doctor_id, alert.patient_id)
    lines = [tr(f"care.alert.head.{alert.level}", tag=tag, kind=kind_label(tr, alert.kind))]
    text = await text_of(uow, tr, alert)
    if text:
        lines.append(text)
    since = local_time(alert.created_at, zone, now)
    lines.append(tr("care.alert.since", since=since, ago=_ago(tr, alert.created_at, now)))
    return Html("\n".join(lines))


# --- resolution: the cause went away ------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """What made an alert's cause go away, for the audit and the doctor's notice.

    ``actor`` is the audit actor (``patient:<id>``, ``caregiver:<id>``, ``system``); ``by``
    and ``cause`` are codes for the audit details (who: patient | caregiver | system; what:
    ``dose.taken``, ``checkin.answered``). ``msgid`` is the doctor's one-line notice: it gets
    ``name`` (the patient's first name and case number), ``time`` (``at`` in the patient's
    ``zone``, as the alert's times are), ``params``, and ``labels`` (placeholder -> message
    id, rendered in the doctor's language)."""

    actor: str
    by: str
    cause: str
    msgid: str
    at: datetime
    zone: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


async def any_open(uow: UnitOfWork, patient_id: str, kind: str, ref_ids: Sequence[str]) -> bool:
    """Whether an alert of ``kind`` about one of the patient's ``ref_ids`` is still open."""
    refs = [r[:32] for r in ref_ids]
    return bool(await uow.care.open_alerts_by_cause(patient_id, kind, refs))


async def open_about(uow: UnitOfWork, kind: str, patient_id: str) -> list[CareAlert]:
    """A patient's open alerts of one kind, whichever doctor has them."""
    return await uow.care.open_alerts_of_patient(kind, patient_id)


async def resolve(
    uow: UnitOfWork,
    *,
    patient_id: str,
    kind: str,
    ref_ids: Sequence[str],
    resolution: Resolution,
) -> list[CareAlert]:
    """Close the patient's open alerts of ``kind`` about ``ref_ids``: their cause went away.
    Each is
    closed at ``resolution.at`` and audited (``care.alert.resolved``: who, what); each doctor
    who was alerted gets ONE short notice, however many of their alerts it closed. The
    alerts it closed (none the second time: resolving twice is a no-op)."""
    refs = [r[:32] for r in ref_ids]
    rows = await uow.care.open_alerts_by_cause(patient_id, kind, refs)
    told: set[str] = set()
    for alert in rows:
        alert.acked_at = resolution.at
        await uow.audit.record(
            resolution.actor,
            "care.alert.resolved",
            "care_alert",
            alert.id,
            {"kind": alert.kind, "by": resolution.by, "cause": resolution.cause},
        )
        if alert.doctor_id not in told:
            told.add(alert.doctor_id)
            await _tell_resolved(uow, alert, resolution)
    return rows


async def _tell_resolved(uow: UnitOfWork, alert: CareAlert, resolution: Resolution) -> None:
    doctor = await uow.doctors.get(alert.doctor_id)
    if doctor is None or doctor.unreachable:
        return
    tr = Translator(doctor.locale)
    name = await first_name(uow, alert.patient_id)
    case = await case_of(uow, doctor.id, alert.patient_id)
    who = tr.plain("care.patient_case", name=name, number=case.number) if case else name
    labels = {key: tr.plain(msgid) for key, msgid in resolution.labels.items()}
    text = tr(
        resolution.msgid,
        name=who,
        time=local_time(resolution.at, resolution.zone),
        **{**resolution.params, **labels},
    )
    await Replier(uow, "doctor", doctor.tg_user_id).text(
        text, protect=True, priority=PRIORITY_REPLY
    )


async def was_resolved(uow: UnitOfWork, alert: CareAlert) -> bool:
    """The alert closed itself (its cause went away) rather than by the doctor's press."""
    links = await uow.audit.for_record("care_alert", alert.id)
    return any(link.action == "care.alert.resolved" for link in links)
