"""Family caregivers: the patient invites one with a one-time, expiring deep link (optionally
bound to a person picked with Telegram's user picker), the caregiver reads what they agree to
and accepts or declines; the patient lists and revokes caregivers, the caregiver can stop.

A caregiver's ``status`` moves ``invited`` → ``active`` → ``revoked`` (by the patient, or by the
caregiver stopping), or an invitation ends ``declined`` | ``expired`` | ``revoked`` (cancelled
by the patient). One module-level ``transitions`` machine decides every move.

The invitation token is ``secrets.token_urlsafe(24)`` without ``-``; only its sha256 is stored
(``Caregiver.token_hash``), and it is cleared once the invitation is answered or cancelled, so
a link works once. The caregiver's name (typed by the patient, else their Telegram first name
at acceptance) is ciphertext under the patient's data key.

Other flows ask who gets which alert through :func:`for_alert` (scope order ``reminders`` <
``missed`` < ``checkins``), check a caregiver's button with :func:`current`, and word their
messages with :func:`patient_label`, :func:`name_of`, :func:`locale_of` and
``caregiver.details`` (may messages name medicines and readings). No aiogram here.

Language of messages pushed to a caregiver (:func:`locale_of`): the locale of the caregiver's
own patient record when they use Careline themselves, else the patient's locale (there is no
column for the caregiver's own language). Replies to a caregiver who writes to the bot are in
their Telegram language, like for anyone without a record.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from transitions import Machine

from flows.machines import fire
from flows.onboarding import clean_text
from flows.outbox import PRIORITY_ROUTINE, Replier
from locales import Translator
from storage.models import Caregiver, Patient, new_id, utcnow
from storage.uow import UnitOfWork

SCOPES = ("reminders", "missed", "checkins")  # each includes the ones before it
NEEDS = SCOPES
MAX_ACTIVE = 5
INVITE_TTL = timedelta(hours=48)
LINK_PREFIX = "cg_"
CONSENT_KIND = "caregiver"
NAME_MAX = 60
# The reply-keyboard user picker's request id (KeyboardButtonRequestUsers.request_id).
PICKER_REQUEST_ID = 5105
_TOKEN = re.compile(r"^[A-Za-z0-9_]{20,64}$")


class Status(StrEnum):
    """Where a caregiver (or their invitation) is."""

    INVITED = "invited"
    ACTIVE = "active"
    REVOKED = "revoked"
    DECLINED = "declined"
    EXPIRED = "expired"


TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "accept", "source": Status.INVITED, "dest": Status.ACTIVE},
    {"trigger": "decline", "source": Status.INVITED, "dest": Status.DECLINED},
    {"trigger": "expire", "source": Status.INVITED, "dest": Status.EXPIRED},
    {"trigger": "revoke", "source": [Status.INVITED, Status.ACTIVE], "dest": Status.REVOKED},
    {"trigger": "stop", "source": Status.ACTIVE, "dest": Status.REVOKED},
]
TRIGGERS = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))


class _Model:
    state: Status

    def __init__(self) -> None:
        self.state = Status.INVITED


_MACHINE = Machine(
    model=None,
    states=Status,
    transitions=TRANSITIONS,
    initial=Status.INVITED,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)


class CaregiverError(Exception):
    """A request that cannot be done; ``msgid`` and ``params`` say why, politely."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params = params


def _move(caregiver: Caregiver, trigger: str) -> Status:
    new = fire(_MACHINE, _Model(), Status(caregiver.status), trigger, TRIGGERS)
    if new is None:
        raise CaregiverError("caregivers.error.state")
    caregiver.status = Status(new).value
    return Status(new)


def aware(when: datetime) -> datetime:
    """A stored timestamp as aware UTC (SQLite hands back naive UTC)."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _rank(scope: str) -> int:
    return SCOPES.index(scope) if scope in SCOPES else -1


def actor_ref(caregiver: Caregiver) -> str:
    """The audit actor string of a caregiver (never a name)."""
    return f"caregiver:{caregiver.id}"


def hash_token(token: str) -> str:
    """What is stored of an invitation token."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def new_token() -> str:
    """A one-time invitation token (URL-safe, no ``-``, fits a /start payload)."""
    return secrets.token_urlsafe(24).replace("-", "")


def token_from_payload(payload: str | None) -> str | None:
    """The token of a ``/start cg_<token>`` payload, or None when it is not one of ours."""
    if not payload or not payload.startswith(LINK_PREFIX):
        return None
    return payload[len(LINK_PREFIX) :]


def deep_link(username: str, token: str) -> str:
    """The invitation link to forward to the caregiver."""
    return f"https://t.me/{username.lstrip('@')}?start={LINK_PREFIX}{token}"


# -- the API other flows use -------------------------------------------------------------------


async def for_alert(uow: UnitOfWork, patient_id: str, need: str) -> list[Caregiver]:
    """The patient's active caregivers whose scope covers ``need`` (``reminders`` |
    ``missed`` | ``checkins``), oldest first."""
    if need not in NEEDS:
        raise ValueError(f"unknown caregiver need {need!r}")
    rows = await uow.care.active_caregivers(patient_id)
    return [c for c in rows if _rank(c.scope) >= _rank(need)]


async def by_user(uow: UnitOfWork, tg_user_id: int) -> list[Caregiver]:
    """The active caregiver relations of one Telegram user (whom they care for)."""
    return await uow.care.caregiving_of_user(tg_user_id)


async def current(uow: UnitOfWork, caregiver_id: str, tg_user_id: int) -> Caregiver | None:
    """The caregiver behind a button, if still active and theirs; None when revoked, stopped,
    erased or someone else's."""
    cg = await uow.care.caregiver(caregiver_id)
    if cg is None or cg.status != Status.ACTIVE.value or cg.tg_user_id != tg_user_id:
        return None
    return cg


async def get(uow: UnitOfWork, caregiver_id: str) -> Caregiver | None:
    """A caregiver row by id (any status)."""
    return await uow.care.caregiver(caregiver_id)


async def patient_label(uow: UnitOfWork, patient: Patient) -> str:
    """How messages to a caregiver name the patient: their first name only."""
    name = await uow.patients.get_field(patient, "name")
    return (name or "").split(" ")[0] if name else ""


async def name_of(uow: UnitOfWork, caregiver: Caregiver) -> str:
    """The caregiver's name (as the patient typed it, else their Telegram first name); ""
    for an invitation nobody has named yet."""
    return await uow.care.caregiver_name(caregiver) or ""


async def locale_of(uow: UnitOfWork, caregiver: Caregiver) -> str:
    """The language of messages pushed to a caregiver: their own patient record's, else the
    patient's."""
    if caregiver.tg_user_id is not None:
        own = await uow.patients.by_tg_user(caregiver.tg_user_id)
        if own is not None:
            return own.locale
    patient = await uow.patients.get(caregiver.patient_id)
    return patient.locale if patient is not None else "en"


# -- the patient's side ------------------------------------------------------------------------


async def _expire_old(uow: UnitOfWork, rows: list[Caregiver], now: datetime) -> None:
    for cg in rows:
        if cg.status == Status.INVITED.value and aware(cg.expires_at) <= now:
            _move(cg, "expire")
            await uow.audit.record("system", "caregiver.expire", "caregiver", cg.id)


async def for_patient(uow: UnitOfWork, patient: Patient, *, now: datetime) -> list[Caregiver]:
    """The patient's active caregivers and open invitations (oldest first); invitations past
    their time are marked expired on the way."""
    rows = await uow.care.current_caregivers(patient.id)
    await _expire_old(uow, rows, now)
    return [c for c in rows if c.status in (Status.ACTIVE.value, Status.INVITED.value)]


async def _active_count(uow: UnitOfWork, patient_id: str) -> int:
    return await uow.care.active_caregiver_count(patient_id)


def parse_name(text: str) -> str:
    """The caregiver's name as the patient types it (letters required, length capped)."""
    name = clean_text(text)
    if not name or len(name) > NAME_MAX or not any(ch.isalpha() for ch in name):
        raise CaregiverError("caregivers.invite.name_invalid", max=NAME_MAX)
    if name.startswith("/"):
        raise CaregiverError("caregivers.invite.name_invalid", max=NAME_MAX)
    return name


async def check_room(uow: UnitOfWork, patient: Patient, *, now: datetime) -> None:
    """Refuse (``caregivers.error.limit``) when the patient already has :data:`MAX_ACTIVE`
    caregivers and open invitations together."""
    if len(await for_patient(uow, patient, now=now)) >= MAX_ACTIVE:
        raise CaregiverError("caregivers.error.limit", max=MAX_ACTIVE)


@dataclass(frozen=True)
class Invitation:
    """A new invitation and its token (shown once, in the link; only its hash is kept)."""

    caregiver: Caregiver
    token: str


async def invite(
    uow: UnitOfWork,
    patient: Patient,
    scope: str,
    details: bool,
    name: str | None,
    *,
    now: datetime | None = None,
) -> Invitation:
    """Create a one-time invitation, valid for 48 hours. Refused when the patient already has
    :data:`MAX_ACTIVE` caregivers and open invitations together."""
    now = now or utcnow()
    if scope not in SCOPES:
        raise CaregiverError("caregivers.error.state")
    clean = parse_name(name) if name is not None else None
    await check_room(uow, patient, now=now)
    token = new_token()
    cg = Caregiver(
        id=new_id(),
        patient_id=patient.id,
        scope=scope,
        details=details,
        status=Status.INVITED.value,
        token_hash=hash_token(token),
        expires_at=now + INVITE_TTL,
        created_at=now,
    )
    await uow.care.add_caregiver(cg, clean)
    await uow.audit.record(
        f"patient:{patient.id}",
        "caregiver.invite",
        "caregiver",
        cg.id,
        {"scope": scope, "details": details},
    )
    return Invitation(cg, token)


async def bind_user(
    uow: UnitOfWork, patient: Patient, tg_user_id: int, *, now: datetime | None = None
) -> Caregiver:
    """The patient picked the caregiver with Telegram's user picker: their newest open
    invitation not bound yet is bound to that person (only they may accept it)."""
    now = now or utcnow()
    if tg_user_id == patient.tg_user_id:
        raise CaregiverError("caregivers.pick.self")
    open_ = [
        c
        for c in await for_patient(uow, patient, now=now)
        if c.status == Status.INVITED.value and c.tg_user_id is None
    ]
    if not open_:
        raise CaregiverError("caregivers.pick.no_invitation")
    cg = open_[-1]
    cg.tg_user_id = tg_user_id
    await uow.audit.record(f"patient:{patient.id}", "caregiver.bind", "caregiver", cg.id)
    return cg


async def revoke(
    uow: UnitOfWork, patient: Patient, caregiver_id: str, *, now: datetime | None = None
) -> tuple[Caregiver, bool]:
    """The patient revokes a caregiver or cancels an open invitation. Returns the row and
    whether it was active (then the caregiver is to be told)."""
    now = now or utcnow()
    cg = await uow.care.caregiver(caregiver_id)
    if cg is None or cg.patient_id != patient.id:
        raise CaregiverError("caregivers.revoke.gone")
    if cg.status not in (Status.ACTIVE.value, Status.INVITED.value):
        raise CaregiverError("caregivers.revoke.gone")
    was_active = cg.status == Status.ACTIVE.value
    _move(cg, "revoke")
    cg.token_hash = None
    cg.revoked_at = now
    if was_active:
        await uow.consents.record(patient.id, CONSENT_KIND, cg.scope, "revoked")
    await uow.audit.record(
        f"patient:{patient.id}", "caregiver.revoke", "caregiver", cg.id, {"was_active": was_active}
    )
    return cg, was_active


# -- the caregiver's side ----------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """An invitation as the person who opened the link sees it."""

    caregiver: Caregiver
    patient: Patient
    label: str  # the patient's first name


async def _open_invitation(
    uow: UnitOfWork, token: str, tg_user_id: int, now: datetime
) -> tuple[Caregiver, Patient]:
    if not _TOKEN.fullmatch(token):
        raise CaregiverError("caregivers.link.malformed")
    cg = await uow.care.caregiver_by_token_hash(hash_token(token))
    if cg is None:
        raise CaregiverError("caregivers.link.used")
    patient = await uow.patients.get(cg.patient_id)
    if patient is None:
        raise CaregiverError("caregivers.link.used")
    if cg.status == Status.INVITED.value and aware(cg.expires_at) <= now:
        _move(cg, "expire")
        await uow.audit.record("system", "caregiver.expire", "caregiver", cg.id)
    if cg.status == Status.EXPIRED.value:
        raise CaregiverError("caregivers.link.expired")
    if cg.status != Status.INVITED.value:
        raise CaregiverError("caregivers.link.used")
    if patient.tg_user_id == tg_user_id:
        raise CaregiverError("caregivers.link.self")
    if cg.tg_user_id is not None and cg.tg_user_id != tg_user_id:
        await uow.audit.record(
            f"tg:{tg_user_id}", "caregiver.refused", "caregiver", cg.id, {"reason": "other_user"}
        )
        raise CaregiverError("caregivers.link.other_user")
    label = await patient_label(uow, patient)
    if any(c.patient_id == patient.id for c in await by_user(uow, tg_user_id)):
        raise CaregiverError("caregivers.link.already", patient=label)
    if await _active_count(uow, patient.id) >= MAX_ACTIVE:
        raise CaregiverError("caregivers.link.full", patient=label, max=MAX_ACTIVE)
    return cg, patient


async def preview(
    uow: UnitOfWork, token: str, tg_user_id: int, *, now: datetime | None = None
) -> Offer:
    """Check a link someone opened and say what accepting means; :class:`CaregiverError` when
    it cannot be accepted (malformed, used, expired, the patient's own, bound to someone
    else, already a caregiver, the patient's caregivers full)."""
    cg, patient = await _open_invitation(uow, token, tg_user_id, now or utcnow())
    return Offer(cg, patient, await patient_label(uow, patient))


async def accept(
    uow: UnitOfWork,
    token: str,
    tg_user_id: int,
    first_name: str | None,
    *,
    now: datetime | None = None,
) -> Offer:
    """The person accepts: the caregiver becomes active and bound to their Telegram id, the
    token is cleared, the consent is recorded (kind ``caregiver``, version = scope)."""
    now = now or utcnow()
    cg, patient = await _open_invitation(uow, token, tg_user_id, now)
    _move(cg, "accept")
    cg.tg_user_id = tg_user_id
    cg.token_hash = None
    cg.accepted_at = now
    if cg.name_enc is None and first_name:
        name = clean_text(first_name)[:NAME_MAX]
        if name:
            await uow.care.set_caregiver_name(cg, name)
    await uow.consents.record(patient.id, CONSENT_KIND, cg.scope, "granted")
    await uow.audit.record(
        actor_ref(cg),
        "caregiver.accept",
        "caregiver",
        cg.id,
        {"scope": cg.scope, "details": cg.details},
    )
    return Offer(cg, patient, await patient_label(uow, patient))


async def decline(
    uow: UnitOfWork, token: str, tg_user_id: int, *, now: datetime | None = None
) -> Offer:
    """The person declines: the invitation ends (the link no longer works)."""
    now = now or utcnow()
    cg, patient = await _open_invitation(uow, token, tg_user_id, now)
    _move(cg, "decline")
    cg.token_hash = None
    cg.revoked_at = now
    await uow.consents.record(patient.id, CONSENT_KIND, cg.scope, "declined")
    await uow.audit.record(actor_ref(cg), "caregiver.decline", "caregiver", cg.id)
    return Offer(cg, patient, await patient_label(uow, patient))


async def stop(
    uow: UnitOfWork, caregiver_id: str, tg_user_id: int, *, now: datetime | None = None
) -> Offer:
    """The caregiver stops caring for the patient (their own decision)."""
    now = now or utcnow()
    cg = await current(uow, caregiver_id, tg_user_id)
    patient = await uow.patients.get(cg.patient_id) if cg is not None else None
    if cg is None or patient is None:
        raise CaregiverError("caregivers.no_longer")
    _move(cg, "stop")
    cg.revoked_at = now
    await uow.consents.record(patient.id, CONSENT_KIND, cg.scope, "withdrawn")
    await uow.audit.record(actor_ref(cg), "caregiver.stop", "caregiver", cg.id)
    return Offer(cg, patient, await patient_label(uow, patient))


async def cared_for(uow: UnitOfWork, tg_user_id: int) -> list[Offer]:
    """Whom a Telegram user cares for (active relations), with each patient's first name."""
    out = []
    for cg in await by_user(uow, tg_user_id):
        patient = await uow.patients.get(cg.patient_id)
        if patient is not None:
            out.append(Offer(cg, patient, await patient_label(uow, patient)))
    return out


async def former_label(uow: UnitOfWork, caregiver_id: str) -> str | None:
    """The first name of the patient behind a caregiver row that is no longer active (for
    "you are no longer a caregiver for …"), or None when the patient is gone."""
    cg = await uow.care.caregiver(caregiver_id)
    patient = await uow.patients.get(cg.patient_id) if cg is not None else None
    return await patient_label(uow, patient) if patient is not None else None


# -- erasure ------------------------------------------------------------------------------------


async def erase_for_patient(uow: UnitOfWork, patient: Patient, *, bot: str = "patient") -> int:
    """The patient is being erased (call before their data key is destroyed): every active
    caregiver is told, in their language, that they will get no more messages, and all the
    patient's caregiver rows are deleted. Returns how many caregivers were told."""
    label = await patient_label(uow, patient)
    told = 0
    for cg in await for_alert(uow, patient.id, "reminders"):
        if cg.tg_user_id is None:
            continue
        tr = Translator(await locale_of(uow, cg))
        await Replier(uow, bot, cg.tg_user_id).text(
            tr("caregivers.erased", patient=label), priority=PRIORITY_ROUTINE
        )
        told += 1
    await uow.care.delete_caregivers_of(patient.id)
    await uow.audit.record(
        f"patient:{patient.id}", "caregiver.erase", "patient", patient.id, {"told": told}
    )
    return told
