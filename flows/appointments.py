"""Hospital appointments behind referrals (the "green channel").

A hospital of the directory lets the clinic book services (an examination, an outpatient visit
or an admission, per department) with a capacity per slot or per day (``all_day``). A referral
to that hospital can carry one booked appointment: the doctor books it after issuing the slip,
or the patient from /referrals. A place is taken with one conditional UPDATE, so a slot is
never overbooked. The patient is reminded the day before (with what to bring); "I can't come"
releases the place and tells the desk. The hospital's desk (a doctor-bot role of that hospital,
created by an admin) sees the day's list and marks arrived or no-show, then records the visit's
outcome, which goes back to the referring doctor. Statuses follow FHIR Appointment::

    booked -arrive-> arrived -fulfil-> fulfilled
    booked -noshow-> noshow      booked -cancel-> cancelled

Every change is audited with its actor; a desk's mark names the version it saw, so two desks
marking at once cannot both win. No aiogram here.
"""

from __future__ import annotations

import hashlib
import secrets
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from transitions import Machine

from flows import referrals as slips
from flows.errors import UserError
from flows.machines import fire
from storage.models import (
    CaseMessage,
    Consultation,
    DeskInvite,
    Doctor,
    HospitalAppointment,
    HospitalService,
    HospitalSlot,
    Referral,
    ScheduledEvent,
)
from storage.uow import UnitOfWork

KINDS = ("examination", "outpatient", "admission")
REMIND = "appt.remind"  # scheduled event kind (subject: the appointment id)
REMIND_AT = time(18, 0)  # the evening before, in the patient's zone
BOOK_DAYS = 30  # how far ahead times are offered
OUTCOME_MAX = 2000
NAME_MAX = 200
BRING_MAX = 500
MAX_CAPACITY = 500
MAX_FILES = 20  # files a desk can attach to one visit
FILE_KINDS = ("photo", "document")  # a discharge letter or results: a PDF or a photo
INVITE_PREFIX = "desk_"  # ``/start desk_<token>`` in the doctor bot
INVITE_HOURS = 72


class AppointmentError(UserError):
    """An appointment cannot be booked or changed as asked (``msgid`` says why)."""


class State(StrEnum):
    """Where an appointment is (FHIR Appointment.status values)."""

    BOOKED = "booked"
    ARRIVED = "arrived"
    FULFILLED = "fulfilled"
    NOSHOW = "noshow"
    CANCELLED = "cancelled"


S = State
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "arrive", "source": S.BOOKED, "dest": S.ARRIVED},
    {"trigger": "noshow", "source": S.BOOKED, "dest": S.NOSHOW},
    {"trigger": "cancel", "source": S.BOOKED, "dest": S.CANCELLED},
    {"trigger": "fulfil", "source": S.ARRIVED, "dest": S.FULFILLED},
]
TRIGGERS = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))
MACHINE = Machine(
    model=None,
    states=State,
    transitions=TRANSITIONS,
    initial=None,
    auto_transitions=False,
    send_event=False,
)


class _Model:
    state: Any


def next_state(current: str, trigger: str) -> State | None:
    """The state ``trigger`` leads to from ``current``, or None when not allowed there."""
    try:
        start = State(current)
    except ValueError:
        return None
    new = fire(MACHINE, _Model(), start, trigger, TRIGGERS)
    return State(new) if new is not None else None


def _zone(tz: str | None) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(tz or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# --- services and slots (clinic data, managed by admins and desks) ---------------------------


async def add_service(
    uow: UnitOfWork,
    actor: str,
    hospital_id: str,
    department: str,
    kind: str,
    name: str,
    bring: str = "",
    directions: str = "",
) -> HospitalService:
    """A bookable service of a hospital, with what to bring and where to go inside the
    hospital (audited ``hospital.service``)."""
    hospital = await uow.referrals.hospital(hospital_id)
    if hospital is None:
        raise AppointmentError("appt.error.no_hospital")
    if kind not in KINDS:
        raise AppointmentError("appt.error.kind")
    name, department, bring = name.strip(), department.strip(), bring.strip()
    directions = directions.strip()
    if (
        not name
        or not department
        or len(name) > NAME_MAX
        or len(bring) > BRING_MAX
        or len(directions) > BRING_MAX
    ):
        raise AppointmentError("appt.error.service")
    service = await uow.appointments.add_service(
        HospitalService(
            hospital_id=hospital.id,
            department=department[:100],
            kind=kind,
            name=name,
            bring=bring,
            directions=directions,
            active=True,
        )
    )
    await uow.audit.record(actor, "hospital.service", "hospital", hospital.id, {"kind": kind})
    return service


async def add_slots(
    uow: UnitOfWork,
    actor: str,
    service_id: str,
    days: list[date],
    times: list[str],
    capacity: int,
    tz: str,
) -> int:
    """Slots of a service on these days at these local times ("HH:MM"), or one all-day quota
    a day when ``times`` is empty; returns how many were added (existing ones are kept)."""
    service = await uow.appointments.service(service_id)
    if service is None:
        raise AppointmentError("appt.error.no_service")
    if not 1 <= capacity <= MAX_CAPACITY:
        raise AppointmentError("appt.error.capacity", max=MAX_CAPACITY)
    zone = _zone(tz)
    starts: list[tuple[datetime, bool]] = []
    for day in days:
        if not times:
            starts.append((datetime.combine(day, time(0, 0), zone).astimezone(UTC), True))
        for raw in times:
            try:
                at = time.fromisoformat(raw.strip())
            except ValueError:
                raise AppointmentError("appt.error.time", value=raw) from None
            starts.append((datetime.combine(day, at, zone).astimezone(UTC), False))
    added = 0
    for start, all_day in starts:
        slot = HospitalSlot(
            service_id=service.id,
            hospital_id=service.hospital_id,
            starts_at=start,
            all_day=all_day,
            capacity=capacity,
            booked=0,
        )
        added += await uow.appointments.add_slot(slot)
    await uow.audit.record(
        actor,
        "hospital.slots",
        "hospital",
        service.hospital_id,
        {"service": service.id, "n": added},
    )
    return added


@dataclass(frozen=True)
class Offer:
    """A time a referral can be booked into."""

    slot: HospitalSlot
    service: HospitalService


async def offers(uow: UnitOfWork, referral: Referral, now: datetime) -> list[Offer]:
    """Free times of the referral's hospital (its department first, else every service),
    from now until the slip's last day (at most :data:`BOOK_DAYS` ahead)."""
    if referral.hospital_id is None:
        return []
    services = await uow.appointments.services(referral.hospital_id)
    content = await slips.content_of(uow, referral)
    wanted = (content.target_department or "").strip().casefold()
    same = [s for s in services if s.department.casefold() == wanted]
    chosen = same or services
    until = min(
        _aware(referral.valid_until) if referral.valid_until else now + timedelta(days=BOOK_DAYS),
        now + timedelta(days=BOOK_DAYS),
    )
    by_id = {s.id: s for s in chosen}
    slots = await uow.appointments.free_slots(list(by_id), now, until)
    return [Offer(slot, by_id[slot.service_id]) for slot in slots]


# --- booking --------------------------------------------------------------------------------


def _bookable(referral: Referral, now: datetime) -> None:
    if referral.status != slips.State.ISSUED:
        raise AppointmentError("appt.error.referral", status=referral.status)
    if referral.valid_until is not None and now >= _aware(referral.valid_until):
        raise AppointmentError("appt.error.referral", status="expired")


async def book(
    uow: UnitOfWork,
    referral: Referral,
    slot_id: str,
    now: datetime,
    *,
    by: str,
    actor: str,
    tz: str | None = None,
) -> HospitalAppointment:
    """Book a free time of the referral's hospital for it (``by``: doctor or patient). A
    referral has one open appointment at most; a full slot or a time past is refused. The
    patient's reminder is scheduled for the evening before (``tz``: the patient's zone)."""
    _bookable(referral, now)
    if await uow.appointments.open_for_referral(referral.id) is not None:
        raise AppointmentError("appt.error.already_booked")
    slot = await uow.appointments.slot(slot_id)
    if slot is None or slot.hospital_id != referral.hospital_id:
        await uow.audit.record(actor, "appt.refused", "referral", referral.id, {"reason": "slot"})
        raise AppointmentError("appt.error.slot_gone")
    if _aware(slot.starts_at) <= now and not slot.all_day:
        raise AppointmentError("appt.error.slot_gone")
    if not await uow.appointments.take(slot.id):
        raise AppointmentError("appt.error.full")
    appt = HospitalAppointment(
        referral_id=referral.id,
        patient_id=referral.patient_id,
        hospital_id=slot.hospital_id,
        service_id=slot.service_id,
        slot_id=slot.id,
        status=State.BOOKED.value,
        booked_by=by,
        version=1,
        created_at=now,
        updated_at=now,
    )
    if not await uow.appointments.add_open(appt):
        # Another booking of this referral landed meanwhile (the doctor and the patient at
        # once): the place goes back and this one is refused.
        await uow.appointments.release(slot.id)
        await uow.audit.record(actor, "appt.refused", "referral", referral.id, {"reason": "race"})
        raise AppointmentError("appt.error.already_booked")
    await uow.audit.record(
        actor, "appt.book", "appointment", appt.id, {"referral": referral.id, "by": by}
    )
    remind = reminder_time(slot, tz)
    if remind > now:
        await uow.events.add(
            REMIND, appt.id, referral.patient_id, remind, key=f"apptrem:{appt.id}"
        )
    return appt


def reminder_time(slot: HospitalSlot, tz: str | None) -> datetime:
    """18:00 on the evening before the slot's day, in the patient's zone."""
    zone = _zone(tz)
    day = _aware(slot.starts_at).astimezone(zone).date() - timedelta(days=1)
    return datetime.combine(day, REMIND_AT, zone).astimezone(UTC)


async def _release(
    uow: UnitOfWork, appt: HospitalAppointment, version: int, actor: str, details: dict[str, Any]
) -> bool:
    """Booked → cancelled from ``version`` (one conditional UPDATE), the place released and the
    reminder dropped, audited ``appt.cancel``; False when it was not booked at that version."""
    if not await uow.appointments.move(appt.id, version, (State.BOOKED,), State.CANCELLED):
        return False
    await uow.appointments.refresh(appt)
    await uow.appointments.release(appt.slot_id)
    await uow.events.cancel_for(REMIND, appt.id)
    await uow.audit.record(actor, "appt.cancel", "appointment", appt.id, details)
    return True


async def cancel(
    uow: UnitOfWork, appt_id: str, patient_id: str, now: datetime
) -> HospitalAppointment:
    """The patient can't come: the place is released (the desk is told by the caller)."""
    appt = await uow.appointments.get(appt_id)
    if appt is None or appt.patient_id != patient_id:
        raise AppointmentError("appt.error.not_found")
    if not await _release(uow, appt, appt.version, f"patient:{patient_id}", {}):
        raise AppointmentError("appt.error.state", status=appt.status)
    return appt


# --- the desk ----------------------------------------------------------------------------------


def is_desk(person: Doctor | None) -> bool:
    """A hospital desk account (created by an admin, tied to one hospital)."""
    return (
        person is not None
        and person.role == "desk"
        and person.status == "verified"
        and person.hospital_id is not None
    )


async def make_desk(
    uow: UnitOfWork, actor: str, hospital_id: str, tg_user_id: int, name: str, locale: str
) -> Doctor:
    """An admin makes a Telegram user the desk of a hospital (audited ``desk.create``). The
    person must not be a doctor or pharmacist already."""
    hospital = await uow.referrals.hospital(hospital_id)
    if hospital is None:
        raise AppointmentError("appt.error.no_hospital")
    if not name.strip():
        raise AppointmentError("appt.error.service")
    existing = await uow.doctors.by_tg_user(tg_user_id)
    if existing is not None and existing.role != "desk":
        await uow.audit.record(actor, "desk.refused", "doctor", existing.id, {"reason": "taken"})
        raise AppointmentError("appt.error.desk_taken")
    desk = existing or await uow.doctors.add(
        Doctor(tg_user_id=tg_user_id, locale=locale, status="verified", role="desk")
    )
    desk.role, desk.status, desk.hospital_id = "desk", "verified", hospital.id
    desk.locale = locale
    desk.apply_step = "submitted"
    desk.departments = ""
    desk.verified_until = datetime(9999, 1, 1, tzinfo=UTC)
    await uow.doctors.set_field(desk, "name", name.strip()[:100])
    await uow.audit.record(actor, "desk.create", "doctor", desk.id, {"hospital": hospital.id})
    return desk


async def day_list(
    uow: UnitOfWork, desk: Doctor, day: date, tz: str
) -> list[tuple[HospitalAppointment, HospitalSlot]]:
    """The desk's hospital's appointments of a (local) day, by time (audited: the desk sees
    who is coming)."""
    if not is_desk(desk):
        raise AppointmentError("appt.desk.not_desk")
    assert desk.hospital_id is not None
    zone = _zone(tz)
    start = datetime.combine(day, time(0, 0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0, 0), zone).astimezone(UTC)
    rows = await uow.appointments.of_day(desk.hospital_id, start, end)
    await uow.audit.record(
        f"desk:{desk.id}", "appt.list", "hospital", desk.hospital_id, {"day": day.isoformat()}
    )
    return rows


async def of_this_desk(uow: UnitOfWork, desk: Doctor, appt_id: str) -> HospitalAppointment:
    """The appointment, when it is at the desk's hospital; anything else is refused and
    audited."""
    appt = await uow.appointments.get(appt_id)
    if not is_desk(desk) or appt is None or appt.hospital_id != desk.hospital_id:
        await uow.audit.record(
            f"desk:{desk.id}", "appt.refused", "appointment", appt_id[:32],
            {"reason": "not_this_hospital"},
        )  # fmt: skip
        raise AppointmentError("appt.desk.not_yours")
    return appt


async def mark(
    uow: UnitOfWork, desk: Doctor, appt_id: str, trigger: str, version: int, now: datetime
) -> HospitalAppointment:
    """The desk marks an appointment ``arrive`` or ``noshow`` (from the version it saw). A desk
    of another hospital, a stale list (another desk marked it first) or a mark the machine
    does not allow is refused and audited."""
    actor = f"desk:{desk.id}"
    appt = await of_this_desk(uow, desk, appt_id)
    new = next_state(appt.status, trigger)
    if trigger not in ("arrive", "noshow") or new is None:
        await uow.audit.record(actor, "appt.refused", "appointment", appt.id, {"reason": "state"})
        raise AppointmentError("appt.desk.already", status=appt.status)
    if not await uow.appointments.move(appt.id, version, (appt.status,), new.value):
        await uow.appointments.refresh(appt)
        await uow.audit.record(actor, "appt.refused", "appointment", appt.id, {"reason": "stale"})
        raise AppointmentError("appt.desk.already", status=appt.status)
    await uow.appointments.refresh(appt)
    await uow.events.cancel_for(REMIND, appt.id)
    await uow.audit.record(actor, f"appt.{trigger}", "appointment", appt.id, {})
    return appt


async def record_outcome(
    uow: UnitOfWork, desk: Doctor, appt_id: str, text: str, now: datetime
) -> HospitalAppointment:
    """The desk records what the visit found (an arrived appointment becomes fulfilled; the
    text is sealed under the patient's key; the referral is marked used by the desk)."""
    actor = f"desk:{desk.id}"
    appt = await of_this_desk(uow, desk, appt_id)
    clean = " ".join((text or "").split())
    if not clean:
        raise AppointmentError("appt.desk.outcome_empty")
    if len(clean) > OUTCOME_MAX:
        raise AppointmentError("appt.desk.outcome_long", n=OUTCOME_MAX)
    if not await uow.appointments.move(appt.id, appt.version, (State.ARRIVED,), State.FULFILLED):
        raise AppointmentError("appt.desk.already", status=appt.status)
    await uow.appointments.refresh(appt)
    await uow.appointments.set_outcome(appt, clean)
    referral = await uow.referrals.get(appt.referral_id)
    if referral is not None and referral.status == slips.State.ISSUED:
        await slips.mark_used(uow, referral, now, by="desk", actor=actor)
    await uow.audit.record(actor, "appt.fulfil", "appointment", appt.id, {})
    return appt


async def release_for_referral(
    uow: UnitOfWork, referral_id: str, actor: str
) -> HospitalAppointment | None:
    """A revoked slip's booked appointment is cancelled and its place released (the caller
    tells the desk); returns it, or None when there was none."""
    appt = await uow.appointments.open_for_referral(referral_id)
    if appt is None or not await _release(uow, appt, appt.version, actor, {"by": "revocation"}):
        return None
    return appt


async def ask_to_move(
    uow: UnitOfWork, desk: Doctor, appt_id: str, version: int
) -> HospitalAppointment:
    """The desk asks the patient to move: the booking (at the version the desk saw) is
    cancelled and its place released; the caller offers the patient the free times."""
    appt = await of_this_desk(uow, desk, appt_id)
    if not await _release(uow, appt, version, f"desk:{desk.id}", {"by": "desk"}):
        raise AppointmentError("appt.desk.already", status=appt.status)
    return appt


async def move_offers(
    uow: UnitOfWork, desk: Doctor, appt_id: str, now: datetime
) -> tuple[HospitalAppointment, list[Offer]]:
    """The desk's choice of times to move a booked appointment to: free times of the same
    service (not its own), until the slip's last day."""
    appt = await of_this_desk(uow, desk, appt_id)
    if appt.status != State.BOOKED:
        raise AppointmentError("appt.desk.already", status=appt.status)
    referral = await uow.referrals.get(appt.referral_id)
    service = await uow.appointments.service(appt.service_id)
    if referral is None or service is None:
        raise AppointmentError("appt.error.not_found")
    until = min(
        _aware(referral.valid_until) if referral.valid_until else now + timedelta(days=BOOK_DAYS),
        now + timedelta(days=BOOK_DAYS),
    )
    slots = await uow.appointments.free_slots([service.id], now, until)
    return appt, [Offer(slot, service) for slot in slots if slot.id != appt.slot_id]


async def reschedule(
    uow: UnitOfWork,
    desk: Doctor,
    appt_id: str,
    version: int,
    slot_id: str,
    now: datetime,
    *,
    tz: str | None = None,
) -> HospitalAppointment:
    """The desk moves a booked appointment to another free time of its service (from the
    version the desk saw): the new place is taken, the old one released and the patient's
    reminder moved. A full or past time, another hospital's slot or a stale list is refused
    and audited."""
    actor = f"desk:{desk.id}"
    appt = await of_this_desk(uow, desk, appt_id)
    if appt.status != State.BOOKED or appt.version != version:
        await uow.audit.record(actor, "appt.refused", "appointment", appt.id, {"reason": "stale"})
        raise AppointmentError("appt.desk.already", status=appt.status)
    slot = await uow.appointments.slot(slot_id)
    if slot is None or slot.service_id != appt.service_id or slot.id == appt.slot_id:
        await uow.audit.record(actor, "appt.refused", "appointment", appt.id, {"reason": "slot"})
        raise AppointmentError("appt.error.slot_gone")
    if _aware(slot.starts_at) <= now and not slot.all_day:
        raise AppointmentError("appt.error.slot_gone")
    if not await uow.appointments.take(slot.id):
        raise AppointmentError("appt.error.full")
    old = appt.slot_id
    if not await uow.appointments.reslot(appt.id, version, slot.id):
        await uow.appointments.release(slot.id)
        await uow.appointments.refresh(appt)
        await uow.audit.record(actor, "appt.refused", "appointment", appt.id, {"reason": "stale"})
        raise AppointmentError("appt.desk.already", status=appt.status)
    await uow.appointments.release(old)
    await uow.appointments.refresh(appt)
    await uow.appointments.note_moved(appt, old)
    await uow.events.cancel_for(REMIND, appt.id)
    remind = reminder_time(slot, tz)
    if remind > now:
        await uow.events.add(
            REMIND, appt.id, appt.patient_id, remind, key=f"apptrem:{appt.id}:{appt.version}"
        )
    await uow.audit.record(actor, "appt.reschedule", "appointment", appt.id, {})
    return appt


async def attach(
    uow: UnitOfWork,
    desk: Doctor,
    appt_id: str,
    kind: str,
    file_name: str | None,
    caption: str | None,
    now: datetime,
) -> tuple[HospitalAppointment, Consultation, CaseMessage]:
    """The desk attaches a discharge letter or results (a PDF or a photo) to an arrived or
    fulfilled visit. The file becomes a message of the referral's case (the caller relays it
    to the referring doctor, and its bytes are kept sealed under the patient's key when it is
    sent), so it is part of the record: in the export, under the case's retention, erased
    with the patient. Audited ``appt.attach``."""
    actor = f"desk:{desk.id}"
    appt = await of_this_desk(uow, desk, appt_id)
    if appt.status not in (State.ARRIVED, State.FULFILLED):
        await uow.audit.record(actor, "appt.refused", "appointment", appt.id, {"reason": "state"})
        raise AppointmentError("appt.desk.attach_state", status=appt.status)
    if kind not in FILE_KINDS:
        raise AppointmentError("appt.desk.attach_kind")
    if len(uow.appointments.attachment_ids(appt)) >= MAX_FILES:
        raise AppointmentError("appt.desk.attach_many", n=MAX_FILES)
    referral = await uow.referrals.get(appt.referral_id)
    case = await uow.consultations.get(referral.consultation_id or "") if referral else None
    if case is None:
        raise AppointmentError("appt.desk.attach_no_case")
    text = " ".join((caption or "").split())[:OUTCOME_MAX] or None
    row = await uow.consultations.add_message(
        case, "hospital", kind, text, file_name=(file_name or None) and file_name[:128], at=now
    )
    await uow.appointments.add_attachment(appt, row.id)
    await uow.audit.record(actor, "appt.attach", "appointment", appt.id, {"kind": kind})
    return appt, case, row


async def attachments(
    uow: UnitOfWork, appt: HospitalAppointment
) -> list[tuple[CaseMessage, bytes | None]]:
    """The desk's files of an appointment with their bytes (None while a file is still on
    its way: the copy is kept when it is delivered)."""
    ids = uow.appointments.attachment_ids(appt)
    referral = await uow.referrals.get(appt.referral_id)
    case = await uow.consultations.get(referral.consultation_id or "") if referral else None
    if not ids or case is None:
        return []
    rows = [m for m in await uow.consultations.messages(case) if m.id in ids]
    return [(m, await uow.consultations.message_file(case, m)) for m in rows]


# --- admins make desks in the doctor bot -------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


async def invite_desk(uow: UnitOfWork, actor: str, hospital_id: str, now: datetime) -> str:
    """An admin's one-time invitation to become a hospital's desk (valid
    :data:`INVITE_HOURS`); returns the ``/start`` payload (only its hash is kept)."""
    hospital = await uow.referrals.hospital(hospital_id)
    if hospital is None:
        raise AppointmentError("appt.error.no_hospital")
    token = secrets.token_urlsafe(24).replace("-", "")
    await uow.appointments.add_invite(
        DeskInvite(
            token_hash=_hash(token),
            hospital_id=hospital.id,
            created_by=actor[:64],
            expires_at=now + timedelta(hours=INVITE_HOURS),
            created_at=now,
        )
    )
    await uow.audit.record(actor, "desk.invite", "hospital", hospital.id, {})
    return INVITE_PREFIX + token


async def join_desk(
    uow: UnitOfWork, payload: str, tg_user_id: int, name: str, locale: str, now: datetime
) -> Doctor:
    """Someone opened an admin's desk invitation: they become the desk of its hospital (once;
    an unknown, used or expired invitation, or a doctor or pharmacist, is refused and
    audited)."""
    actor = f"tg:{tg_user_id}"
    token = payload[len(INVITE_PREFIX) :] if payload.startswith(INVITE_PREFIX) else ""
    invite = await uow.appointments.invite(_hash(token)) if token else None
    if invite is None or invite.used_at is not None or _aware(invite.expires_at) <= now:
        await uow.audit.record(
            actor, "desk.refused", "desk_invite", invite.id if invite else "-",
            {"reason": "unknown" if invite is None else "used_or_expired"},
        )  # fmt: skip
        raise AppointmentError("appt.desk.invite_bad")
    desk = await make_desk(uow, invite.created_by, invite.hospital_id, tg_user_id, name, locale)
    if not await uow.appointments.use_invite(invite.id, desk.id, now):
        await uow.audit.record(
            actor, "desk.refused", "desk_invite", invite.id, {"reason": "used_or_expired"}
        )
        raise AppointmentError("appt.desk.invite_bad")
    return desk


async def remove_desk(uow: UnitOfWork, actor: str, desk_id: str) -> Doctor:
    """An admin ends a desk account (it is suspended: it sees and marks nothing more)."""
    desk = await uow.doctors.get(desk_id)
    if desk is None or desk.role != "desk":
        raise AppointmentError("appt.desk.not_found")
    desk.status = "suspended"
    await uow.audit.record(actor, "desk.remove", "doctor", desk.id, {})
    return desk


async def desks(uow: UnitOfWork, hospital_id: str) -> list[Doctor]:
    """A hospital's verified desk accounts."""
    return [
        d
        for d in await uow.doctors.with_status("verified", role="desk")
        if d.hospital_id == hospital_id
    ]


async def on_remind(
    uow: UnitOfWork, event: ScheduledEvent, now: datetime
) -> HospitalAppointment | None:
    """The reminder's appointment, if it is still booked (the handler tells the patient)."""
    appt = await uow.appointments.get(event.subject)
    return appt if appt is not None and appt.status == State.BOOKED else None


async def erase_for_patient(uow: UnitOfWork, patient_id: str) -> list[HospitalAppointment]:
    """An erasure: places released, appointments deleted (the desks told by the caller)."""
    return await uow.appointments.delete_for_patient(patient_id)
