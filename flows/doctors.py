"""Doctor onboarding and verification: the application, the admins' decisions, suspension.

The application's step lives in ``doctors.apply_step``; one module-level ``transitions``
machine (Enum states, no auto transitions) is attached to a light model per request. The
doctor's status (applying -> pending -> verified | rejected; verified <-> suspended) is the
verification state that queues and cases check through :func:`require_verified` (the status
names and :func:`is_verified` live in :mod:`flows.verification`, which the consultation flow
asks without importing this module).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from transitions import Machine

from flows import booking, consultation, onboarding
from flows.errors import UserError
from flows.machines import fire
from flows.onboarding import BadInput, clean_text, normalize_phone
from flows.verification import (
    APPLYING,
    PENDING,
    REJECTED,
    SUSPENDED,
    VERIFIED,
    is_verified,
)
from storage.models import Doctor, utcnow
from storage.uow import UnitOfWork

YEARS_MAX = 70
CN_MIN_YEARS = 3
PHOTO_MAX_BYTES = 10 * 1024 * 1024
REASON_MAX = 500
PREFIX_MIN = 6
FIELD_MAX = {"name": 100, "licence": 40, "authority": 150, "hospital": 150, "title": 80}

STATUSES = (APPLYING, PENDING, VERIFIED, REJECTED, SUSPENDED)


class Step(StrEnum):
    """Where an applicant is in the application."""

    NAME = "name"
    LICENCE = "licence"
    AUTHORITY = "authority"
    HOSPITAL = "hospital"
    DEPARTMENTS = "departments"
    TITLE = "title"
    YEARS = "years"
    PHOTO = "photo"
    PHONE = "phone"
    CONFIRM = "confirm"
    SUBMITTED = "submitted"


ORDER = (
    Step.NAME,
    Step.LICENCE,
    Step.AUTHORITY,
    Step.HOSPITAL,
    Step.DEPARTMENTS,
    Step.TITLE,
    Step.YEARS,
    Step.PHOTO,
    Step.PHONE,
    Step.CONFIRM,
)
# The trigger that answers each question (and moves to the next step).
ANSWER_TRIGGER = {
    Step.NAME: "give_name",
    Step.LICENCE: "give_licence",
    Step.AUTHORITY: "give_authority",
    Step.HOSPITAL: "give_hospital",
    Step.DEPARTMENTS: "give_departments",
    Step.TITLE: "give_title",
    Step.YEARS: "give_years",
    Step.PHOTO: "give_photo",
    Step.PHONE: "give_phone",
}
TEXT_STEPS = (Step.NAME, Step.LICENCE, Step.AUTHORITY, Step.HOSPITAL, Step.TITLE, Step.YEARS)

TRANSITIONS: list[dict[str, Any]] = [
    *(
        {"trigger": ANSWER_TRIGGER[step], "source": step, "dest": ORDER[i + 1]}
        for i, step in enumerate(ORDER[:-1])
    ),
    *({"trigger": "back", "source": step, "dest": ORDER[i]} for i, step in enumerate(ORDER[1:])),
    {"trigger": "confirm", "source": Step.CONFIRM, "dest": Step.SUBMITTED},
    {"trigger": "restart", "source": list(ORDER[1:]), "dest": Step.NAME},
    # A rejected applicant may apply again (checked against the status by the use case).
    {"trigger": "reapply", "source": Step.SUBMITTED, "dest": Step.NAME},
]
TRIGGERS = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))


class _Model:
    state: Step

    def __init__(self) -> None:
        self.state = Step.NAME


_MACHINE = Machine(
    model=None,
    states=Step,
    transitions=TRANSITIONS,
    initial=Step.NAME,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)


class InvalidStep(onboarding.InvalidStep):
    """A trigger not allowed in the applicant's current step (a stale or forged button)."""


class NotVerified(Exception):
    """The doctor may not work (yet): ``msgid``/``params`` say why, for the doctor."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params = params


class Refused(UserError):
    """An admin decision that cannot be made: ``msgid``/``params`` say why."""


class AlreadyDecided(Refused):
    """Another admin (or the CLI) decided first."""

    def __init__(self, status: str) -> None:
        super().__init__("doctor.admin.already_decided")
        self.status = status


class NotFound(Exception):
    """No doctor matches the id or prefix (or several do)."""


def next_step(current: Step, trigger: str) -> Step:
    """The step after ``trigger`` from ``current``; :class:`InvalidStep` if not allowed."""
    new = fire(_MACHINE, _Model(), current, trigger, TRIGGERS)
    if new is None:
        raise InvalidStep(f"{trigger} is not allowed in {current.value}")
    return Step(new)


# -- pure validators ------------------------------------------------------------------------


def parse_field(field: str, text: str) -> str:
    """A typed identity answer: control characters removed, letters (or for the licence
    number, letters or digits) required, length capped, no commands."""
    limit = FIELD_MAX[field]
    value = clean_text(text)
    if field == "licence":
        ok = bool(re.fullmatch(r"[\w\- /.]+", value)) and any(ch.isalnum() for ch in value)
    else:
        ok = any(ch.isalpha() for ch in value)
    if not value or len(value) > limit or value.startswith("/") or not ok:
        raise BadInput(f"doctor.error.{field}", max=limit)
    return value


def parse_years(text: str) -> int:
    """Whole years of independent practice, 0-70 (other scripts' digits are accepted)."""
    digits = unicodedata.normalize("NFKC", clean_text(text))
    if not re.fullmatch(r"\d{1,2}", digits) or int(digits) > YEARS_MAX:
        raise BadInput("doctor.error.years", max=YEARS_MAX)
    return int(digits)


def parse_reason(text: str) -> str:
    """A decision reason typed by an admin."""
    value = clean_text(text)
    if not value or len(value) > REASON_MAX or value.startswith("/"):
        raise BadInput("doctor.admin.reason_invalid", max=REASON_MAX)
    return value


def check_photo_size(size: int | None) -> None:
    """Refuse licence photos over the limit (``size`` in bytes; unknown sizes pass)."""
    if size is not None and size > PHOTO_MAX_BYTES:
        raise BadInput("doctor.error.photo_too_big", max_mb=PHOTO_MAX_BYTES // (1024 * 1024))


def parse_departments(value: str) -> tuple[str, ...]:
    """The comma-separated department column as a tuple."""
    return tuple(d for d in value.split(",") if d)


# -- verification ---------------------------------------------------------------------------


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return moment


def verification_problem(doctor: Doctor | None, now: datetime | None = None) -> str | None:
    """The message id saying why this doctor cannot work, or ``None`` if they can."""
    if doctor is None:
        return "doctor.status.unknown"
    if doctor.status == VERIFIED:
        return None if is_verified(doctor, now) else "doctor.status.expired"
    return f"doctor.status.{doctor.status}"


def require_verified(doctor: Doctor | None, now: datetime | None = None) -> Doctor:
    """The doctor, if verified and not expired; else :class:`NotVerified` (the doctor bot
    answers it with the reason, in the doctor's language)."""
    problem = verification_problem(doctor, now)
    if problem is not None or doctor is None:
        raise NotVerified(problem or "doctor.status.unknown")
    return doctor


ROLES = ("doctor", "pharmacist")


def set_role(doctor: Doctor, role: str) -> None:
    """An applicant who has not submitted yet applies as a doctor or a pharmacist (a
    pharmacist has no departments: the departments question is skipped)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if doctor.status != APPLYING:
        raise InvalidStep("the application is submitted already")
    doctor.role = role
    if role == "pharmacist":
        doctor.departments = ""
        if step_of(doctor) is Step.DEPARTMENTS:
            _advance(doctor, "give_departments")


def can_approve(years: int | None, jurisdiction: str) -> bool:
    """The cn rule: at least three years of independent practice."""
    return jurisdiction != "cn" or (years or 0) >= CN_MIN_YEARS


# -- use cases: the application ---------------------------------------------------------------


def doctor_ref(doctor: Doctor) -> str:
    """The audit actor of a doctor."""
    return f"doctor:{doctor.id}"


def admin_ref(tg_user_id: int | str) -> str:
    """The audit actor of an admin (a Telegram id, or ``cli`` for the command line)."""
    return f"admin:{tg_user_id}"


def step_of(doctor: Doctor) -> Step:
    """The application step of a doctor."""
    return Step(doctor.apply_step)


async def start(uow: UnitOfWork, tg_user_id: int, locale: str) -> tuple[Doctor, bool]:
    """/start: the doctor record, created (applying, first question) if new."""
    doctor = await uow.doctors.by_tg_user(tg_user_id)
    if doctor is not None:
        return doctor, False
    doctor = await uow.doctors.add(
        Doctor(tg_user_id=tg_user_id, locale=locale, status=APPLYING, apply_step=Step.NAME.value)
    )
    return doctor, True


async def reapply(uow: UnitOfWork, doctor: Doctor) -> Step:
    """A rejected applicant starts a new application (the old answers are cleared)."""
    if doctor.status != REJECTED:
        raise InvalidStep("only a rejected application can be made again")
    step = next_step(step_of(doctor), "reapply")
    await _clear(uow, doctor)
    doctor.status = APPLYING
    doctor.apply_step = step.value
    return step


async def _clear(uow: UnitOfWork, doctor: Doctor) -> None:
    for field in ("name", "licence", "authority", "hospital", "title", "phone"):
        await uow.doctors.set_field(doctor, field, None)
    await uow.doctors.set_licence_photo(doctor, None)
    doctor.departments = ""
    doctor.years_practice = None


def _applying(doctor: Doctor) -> Step:
    if doctor.status != APPLYING:
        raise InvalidStep(f"the application is {doctor.status}")
    return step_of(doctor)


def _advance(doctor: Doctor, trigger: str) -> Step:
    step = next_step(_applying(doctor), trigger)
    doctor.apply_step = step.value
    return step


async def answer_text(uow: UnitOfWork, doctor: Doctor, raw: str) -> Step:
    """The applicant typed an answer to the current text question."""
    step = _applying(doctor)
    if step not in TEXT_STEPS:
        raise InvalidStep(f"no typed answer is expected in {step.value}")
    if step is Step.YEARS:
        years = parse_years(raw)
        next_step(step, ANSWER_TRIGGER[step])
        doctor.years_practice = years
    else:
        value = parse_field(step.value, raw)
        next_step(step, ANSWER_TRIGGER[step])
        await uow.doctors.set_field(doctor, step.value, value)
    new = _advance(doctor, ANSWER_TRIGGER[step])
    if new is Step.DEPARTMENTS and doctor.role == "pharmacist":
        new = _advance(doctor, "give_departments")  # a pharmacist takes no cases
    return new


def toggle_department(doctor: Doctor, department: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """Tick or untick one department; returns the chosen ones."""
    if (
        _applying(doctor) is not Step.DEPARTMENTS
        or department not in known
        or doctor.role != "doctor"
    ):
        raise InvalidStep("not choosing departments")
    chosen = set(parse_departments(doctor.departments)) ^ {department}
    doctor.departments = ",".join(d for d in known if d in chosen)
    return parse_departments(doctor.departments)


def finish_departments(doctor: Doctor) -> Step:
    """Done choosing departments (at least one)."""
    if _applying(doctor) is not Step.DEPARTMENTS:
        raise InvalidStep("not choosing departments")
    if not doctor.departments:
        raise BadInput("doctor.error.departments")
    return _advance(doctor, "give_departments")


async def give_photo(uow: UnitOfWork, doctor: Doctor, data: bytes) -> Step:
    """Store the licence photo encrypted."""
    if _applying(doctor) is not Step.PHOTO:
        raise InvalidStep("no photo is expected")
    check_photo_size(len(data))
    if not data:
        raise BadInput("doctor.error.photo")
    await uow.doctors.set_licence_photo(doctor, data)
    return _advance(doctor, "give_photo")


async def give_phone(uow: UnitOfWork, doctor: Doctor, phone: str) -> Step:
    """Store the applicant's own phone number (from the contact button)."""
    if _applying(doctor) is not Step.PHONE:
        raise InvalidStep("no phone is expected")
    await uow.doctors.set_field(doctor, "phone", normalize_phone(phone))
    return _advance(doctor, "give_phone")


def go_back(doctor: Doctor) -> Step:
    """Back to the previous question (a pharmacist skips the departments)."""
    step = _advance(doctor, "back")
    if step is Step.DEPARTMENTS and doctor.role == "pharmacist":
        step = _advance(doctor, "back")
    return step


async def restart(uow: UnitOfWork, doctor: Doctor) -> Step:
    """Start the application again from the first question."""
    step = _advance(doctor, "restart")
    await _clear(uow, doctor)
    return step


async def submit(uow: UnitOfWork, doctor: Doctor) -> Step:
    """The applicant confirmed the summary: the application waits for an admin."""
    step = _advance(doctor, "confirm")
    doctor.status = PENDING
    await uow.audit.record(
        doctor_ref(doctor),
        "doctor.apply",
        "doctor",
        doctor.id,
        {
            "departments": doctor.departments,
            "years": doctor.years_practice,
            "role": doctor.role,
        },
    )
    return step


@dataclass(frozen=True)
class Application:
    """What an admin (or the applicant, to confirm) sees. Holds identity data: render it,
    never log it."""

    doctor_id: str
    status: str
    name: str
    licence: str
    authority: str
    hospital: str
    departments: tuple[str, ...]
    title: str
    years: int | None
    phone: str
    role: str = "doctor"


async def application(uow: UnitOfWork, doctor: Doctor) -> Application:
    """The decrypted application of a doctor."""

    async def field(name: str) -> str:
        return await uow.doctors.get_field(doctor, name) or ""

    return Application(
        doctor_id=doctor.id,
        status=doctor.status,
        name=await field("name"),
        licence=await field("licence"),
        authority=await field("authority"),
        hospital=await field("hospital"),
        departments=parse_departments(doctor.departments),
        title=await field("title"),
        years=doctor.years_practice,
        phone=await field("phone"),
        role=doctor.role,
    )


async def view_application(
    uow: UnitOfWork, doctor: Doctor, actor: str, *, via: str = "request"
) -> tuple[Application, bytes | None]:
    """An admin sees an application (audited): the summary and the licence photo."""
    await uow.audit.record(
        actor, "doctor.view", "doctor", doctor.id, {"status": doctor.status, "via": via}
    )
    return await application(uow, doctor), await uow.doctors.licence_photo(doctor)


# -- use cases: decisions -----------------------------------------------------------------------


async def find(uow: UnitOfWork, ref: str) -> Doctor:
    """A doctor by id or a unique id prefix of at least six characters."""
    ref = ref.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,32}", ref):
        raise NotFound(f"not a doctor id (at least {PREFIX_MIN} hex characters)")
    rows = await uow.doctors.by_id_prefix(ref, limit=2)
    if not rows:
        raise NotFound("no doctor with this id")
    if len(rows) > 1:
        raise NotFound("several doctors match this prefix; give more characters")
    return rows[0]


async def _locked(uow: UnitOfWork, doctor_id: str) -> Doctor:
    """The doctor row, locked for this transaction (PostgreSQL) and re-read from the DB."""
    doctor = await uow.doctors.locked(doctor_id)
    if doctor is None:
        raise NotFound("no doctor with this id")
    return doctor


async def approve(
    uow: UnitOfWork,
    doctor_id: str,
    actor: str,
    *,
    jurisdiction: str,
    days: int,
    now: datetime | None = None,
) -> Doctor:
    """Verify a pending applicant for ``days``; refuses a decided application and, in cn,
    fewer than three years of independent practice (the application stays pending)."""
    doctor = await _locked(uow, doctor_id)
    if doctor.status != PENDING:
        raise AlreadyDecided(doctor.status)
    if doctor.role == "doctor" and not can_approve(doctor.years_practice, jurisdiction):
        await uow.audit.record(
            actor, "doctor.approve_refused", "doctor", doctor.id, {"rule": "cn_min_years"}
        )
        raise Refused("doctor.admin.cn_years", years=doctor.years_practice or 0, min=CN_MIN_YEARS)
    moment = now or utcnow()
    doctor.status = VERIFIED
    doctor.verified_until = moment + timedelta(days=days)
    doctor.decided_at = moment
    await uow.doctors.set_field(doctor, "decision_reason", None)
    await uow.audit.record(
        actor,
        "doctor.approve",
        "doctor",
        doctor.id,
        {"until": doctor.verified_until.date().isoformat(), "jurisdiction": jurisdiction},
    )
    return doctor


async def reject(
    uow: UnitOfWork, doctor_id: str, actor: str, reason: str, *, now: datetime | None = None
) -> Doctor:
    """Reject a pending application with a reason the applicant will read."""
    text = parse_reason(reason)
    doctor = await _locked(uow, doctor_id)
    if doctor.status != PENDING:
        raise AlreadyDecided(doctor.status)
    doctor.status = REJECTED
    doctor.decided_at = now or utcnow()
    await uow.doctors.set_field(doctor, "decision_reason", text)
    await uow.audit.record(actor, "doctor.reject", "doctor", doctor.id, {"reason_given": True})
    return doctor


async def suspend(
    uow: UnitOfWork, doctor_id: str, actor: str, reason: str, *, now: datetime | None = None
) -> Doctor:
    """Suspend a verified doctor (they are told the reason)."""
    text = parse_reason(reason)
    doctor = await _locked(uow, doctor_id)
    if doctor.status != VERIFIED:
        raise Refused("doctor.admin.not_verified")
    doctor.status = SUSPENDED
    doctor.decided_at = now or utcnow()
    await uow.doctors.set_field(doctor, "decision_reason", text)
    await uow.audit.record(actor, "doctor.suspend", "doctor", doctor.id, {"reason_given": True})
    await consultation.requeue_for_doctor(uow, doctor, doctor.decided_at or utcnow())
    # Their bookings ahead: cancelled and refunded, the patients told.
    await booking.doctor_suspended(uow, doctor, doctor.decided_at or utcnow())
    return doctor


async def reinstate(
    uow: UnitOfWork, doctor_id: str, actor: str, *, days: int, now: datetime | None = None
) -> Doctor:
    """Lift a suspension; an expired verification is renewed for ``days``."""
    doctor = await _locked(uow, doctor_id)
    if doctor.status != SUSPENDED:
        raise Refused("doctor.admin.not_suspended")
    moment = now or utcnow()
    doctor.status = VERIFIED
    until = _aware(doctor.verified_until)
    if until is None or until <= moment:
        doctor.verified_until = moment + timedelta(days=days)
    doctor.decided_at = moment
    await uow.doctors.set_field(doctor, "decision_reason", None)
    await uow.audit.record(actor, "doctor.reinstate", "doctor", doctor.id, {})
    return doctor


async def refused_attempt(uow: UnitOfWork, actor: str, doctor_id: str, action: str) -> None:
    """Audit a decision attempted by someone who is not an admin (a forged button)."""
    await uow.audit.record(
        actor, "doctor.decision_denied", "doctor", doctor_id[:32], {"attempted": action[:16]}
    )
