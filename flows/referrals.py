"""Referral slips: draft → issued → used | expired | revoked, and their verification.

A doctor's draft (the wizard's answers, sealed under the patient's key) is *issued*: the slip's
content (:class:`SlipContent`: minimal patient identification, the referring doctor, target,
reason, urgency, findings, dates) is fixed, hashed (SHA-256 of its canonical JSON), sealed in
``referrals.content_enc``, given a short human code (:func:`new_code`) and signed into a token
(:mod:`flows.signing`) that the slip's QR carries. A hospital desk checks a slip by its token
(the QR), its typed code or the file itself; the verdict is ``valid``, ``expired``,
``revoked``, ``used``, ``forged`` or ``unknown`` with only what the desk needs to match the
patient. The desk (or the patient) marks a slip used once; the doctor may revoke it; it expires
after its valid-until date. Every transition goes through one module-level ``transitions``
machine and is audited with its actor. No aiogram here.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import zoneinfo
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from transitions import Machine

from flows.machines import fire
from flows.signing import Signer
from storage.crypto import CryptoError
from storage.models import Doctor, HospitalAppointment, Referral, ScheduledEvent
from storage.uow import UnitOfWork

if TYPE_CHECKING:
    from flows.slip import SlipAppointment

URGENCIES = ("emergency", "within_24h", "within_2w", "routine")
# Default validity (days after issue, inclusive) when the doctor gives no valid-until date.
DEFAULT_VALID_DAYS = {"emergency": 2, "within_24h": 3, "within_2w": 30, "routine": 90}
MAX_VALID_DAYS = 366
EXPIRE = "referral.expire"  # scheduled event kind (subject: the referral id)

# Crockford's base-32: no I, L, O, U; typed I/L read as 1 and O as 0.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_BODY = 8
_CONFUSABLE = {"O": "0", "I": "1", "L": "1"}
_TEXT_MAX = 2000  # one free-text field of a slip


class ReferralError(ValueError):
    """A referral cannot be issued or changed; ``msgid`` is a catalog id for the person."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params = params


# --- codes -------------------------------------------------------------------------------------


def _check_symbol(body: str) -> str:
    """Luhn mod 32 check symbol: catches every single wrong symbol and adjacent swaps."""
    n = len(CODE_ALPHABET)
    total, factor = 0, 2
    for ch in reversed(body):
        addend = factor * CODE_ALPHABET.index(ch)
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return CODE_ALPHABET[(n - total % n) % n]


def _format(symbols: str) -> str:
    return f"{symbols[0:3]}-{symbols[3:6]}-{symbols[6:9]}"


def new_code() -> str:
    """A fresh slip code: 8 random symbols and a check symbol, e.g. ``K7Q-4M9-XDB``."""
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_BODY))
    return _format(body + _check_symbol(body))


def normalize_code(typed: str | None) -> str | None:
    """The canonical form of a typed code (any case, spaces or dashes, O for 0, I or L for 1),
    or None when it is not a well-formed code with a correct check symbol."""
    if not typed or len(typed) > 40:
        return None
    symbols = "".join(c for c in typed.upper() if c not in " -_.\u2010\u2011\u2012\u2013\u2014")
    symbols = "".join(_CONFUSABLE.get(c, c) for c in symbols)
    if len(symbols) != CODE_BODY + 1 or any(c not in CODE_ALPHABET for c in symbols):
        return None
    if _check_symbol(symbols[:CODE_BODY]) != symbols[CODE_BODY]:
        return None
    return _format(symbols)


def slip_url(base_url: str, code: str, token: str) -> str:
    """What the slip's QR carries: the verify page of this code, with the signed token."""
    return f"{base_url.rstrip('/')}/r/{code}?t={token}"


def token_from_text(text: str) -> str | None:
    """The token in a scanned QR: a verify URL (``?t=`` or ``#``) or the bare token."""
    text = (text or "").strip()
    if not text or len(text) > 2048:
        return None
    if "://" in text:
        try:
            parts = urlsplit(text)
        except ValueError:
            return None
        found = parse_qs(parts.query).get("t")
        if found:
            return found[0]
        frag = parts.fragment
        return frag[2:] if frag.startswith("t=") else (frag or None)
    return text


def code_from_text(text: str) -> str | None:
    """The code in a scanned verify URL (``.../r/<code>``), if any."""
    try:
        path = urlsplit((text or "").strip()).path
    except ValueError:
        return None
    if "/r/" not in path:
        return None
    return normalize_code(path.rsplit("/r/", 1)[1].strip("/"))


# --- the machine -------------------------------------------------------------------------------


class State(StrEnum):
    """Where a referral is."""

    DRAFT = "draft"
    ISSUED = "issued"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


S = State
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "issue", "source": S.DRAFT, "dest": S.ISSUED},
    {"trigger": "use", "source": S.ISSUED, "dest": S.USED},
    {"trigger": "expire", "source": S.ISSUED, "dest": S.EXPIRED},
    {"trigger": "revoke", "source": S.ISSUED, "dest": S.REVOKED},
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


async def _move(
    uow: UnitOfWork, ref: Referral, trigger: str, actor: str, details: dict[str, Any]
) -> bool:
    new = next_state(ref.status, trigger)
    if new is None:
        return False
    ref.status = new.value
    await uow.audit.record(actor, f"referral.{trigger}", "referral", ref.id, details)
    return True


# --- content -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlipContent:
    """What a slip says; its canonical JSON is hashed into the signed token."""

    code: str
    patient_name: str
    birth_year: str
    sex: str
    doctor_name: str
    doctor_title: str
    doctor_licence: str
    doctor_hospital: str
    target_hospital: str
    target_department: str
    reason: str
    urgency: str
    findings: str
    issued_on: date
    valid_until: date
    locale: str
    hospital_locale: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (dates as ISO strings)."""
        out = asdict(self)
        out["issued_on"] = self.issued_on.isoformat()
        out["valid_until"] = self.valid_until.isoformat()
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SlipContent:
        """The inverse of :meth:`to_dict`."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in names}
        values["issued_on"] = date.fromisoformat(raw["issued_on"])
        values["valid_until"] = date.fromisoformat(raw["valid_until"])
        return cls(**values)


def canonical(content: SlipContent) -> bytes:
    """Sorted-key compact JSON, UTF-8 (the bytes that are hashed)."""
    return json.dumps(
        content.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


def content_hash(content: SlipContent) -> str:
    """SHA-256 (hex) of the canonical content."""
    return hashlib.sha256(canonical(content)).hexdigest()


# --- drafts (the doctor's wizard) --------------------------------------------------------------

DRAFT_FIELDS = (
    "hospital_id",  # a directory entry, or None for free text
    "target_hospital",
    "target_department",
    "reason",
    "urgency",
    "findings",
    "valid_until",  # ISO date, inclusive
)


async def start_draft(
    uow: UnitOfWork,
    doctor: Doctor,
    patient_id: str,
    *,
    consultation_id: str | None = None,
    findings: str = "",
) -> Referral:
    """A new draft referral of ``doctor`` for a patient (audited ``referral.draft``)."""
    ref = Referral(patient_id=patient_id, doctor_id=doctor.id, consultation_id=consultation_id)
    ref.status, ref.step, ref.urgency = State.DRAFT.value, "target", "routine"
    await uow.referrals.add(ref)
    await save_draft(uow, ref, {"findings": findings[:_TEXT_MAX]})
    await uow.audit.record(
        f"doctor:{doctor.id}",
        "referral.draft",
        "referral",
        ref.id,
        {"consultation": consultation_id},
    )
    return ref


async def draft(uow: UnitOfWork, ref: Referral) -> dict[str, Any]:
    """The draft's answers so far (every :data:`DRAFT_FIELDS` key, None when unanswered)."""
    out: dict[str, Any] = dict.fromkeys(DRAFT_FIELDS)
    if ref.status == State.DRAFT:
        answers = await uow.referrals.draft_answers(ref)
        out.update({k: v for k, v in answers.items() if k in DRAFT_FIELDS})
    return out


async def save_draft(uow: UnitOfWork, ref: Referral, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into a draft and seal it again; returns the whole draft. Checks
    urgency and the valid-until date (raises :class:`ReferralError`)."""
    if ref.status != State.DRAFT:
        raise ReferralError("referral.error.not_draft")
    unknown = set(changes) - set(DRAFT_FIELDS)
    if unknown:
        raise ValueError(f"unknown draft fields {sorted(unknown)}")
    if "urgency" in changes:
        if changes["urgency"] not in URGENCIES:
            raise ReferralError("referral.error.urgency")
        ref.urgency = changes["urgency"]
    if "hospital_id" in changes:
        ref.hospital_id = changes["hospital_id"]
    if changes.get("valid_until") is not None:
        date.fromisoformat(str(changes["valid_until"]))  # ValueError on nonsense
    current = await draft(uow, ref)
    for key, value in changes.items():
        current[key] = value[:_TEXT_MAX] if isinstance(value, str) else value
    await uow.referrals.save_draft_answers(ref, current)
    return current


def local_today(now: datetime, tz: str | None) -> date:
    """``now``'s date in a time zone (UTC when unknown)."""
    return now.astimezone(_zone(tz)).date()


def _zone(tz: str | None) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(tz or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def expires_at(valid_until: date, tz: str | None) -> datetime:
    """The UTC moment a slip valid until ``valid_until`` (inclusive, local) stops being valid."""
    return datetime.combine(valid_until + timedelta(days=1), time(0, 0), _zone(tz)).astimezone(UTC)


# --- issuing -----------------------------------------------------------------------------------


async def _unique_code(uow: UnitOfWork) -> str:
    for _ in range(20):
        code = new_code()
        if not await uow.referrals.code_taken(code):
            return code
    raise RuntimeError("could not find a free referral code")  # 2^40 codes: never in practice


async def issue(
    uow: UnitOfWork,
    doctor: Doctor,
    referral_id: str,
    now: datetime,
    signer: Signer,
    *,
    tz: str | None = None,
) -> tuple[Referral, SlipContent, str]:
    """Issue the doctor's draft: fix and seal its content, give it a code, sign a token,
    schedule its expiry, audit ``referral.issue``. ``tz`` is the zone of the dates on the slip
    (the patient's, else the clinic's). Raises :class:`ReferralError` when something the slip
    needs is missing (``msgid`` says what)."""
    ref = await uow.referrals.get(referral_id)
    if ref is None or ref.doctor_id != doctor.id:
        raise ReferralError("referral.error.not_found")
    if ref.status != State.DRAFT:
        raise ReferralError("referral.error.not_draft")
    answers = await draft(uow, ref)
    patient = await uow.patients.get(ref.patient_id)
    if patient is None:
        raise ReferralError("referral.error.not_found")
    tz = tz or patient.timezone
    hospital = await uow.referrals.hospital(ref.hospital_id) if ref.hospital_id else None
    target = (answers.get("target_hospital") or (hospital.name if hospital else "")).strip()
    if not target:
        raise ReferralError("referral.error.no_target")
    if not (answers.get("reason") or "").strip():
        raise ReferralError("referral.error.no_reason")
    urgency = answers.get("urgency") or ref.urgency
    if urgency not in URGENCIES:
        raise ReferralError("referral.error.urgency")
    today = local_today(now, tz)
    valid = (
        date.fromisoformat(answers["valid_until"])
        if answers.get("valid_until")
        else today + timedelta(days=DEFAULT_VALID_DAYS[urgency])
    )
    if valid < today:
        raise ReferralError("referral.error.valid_past")
    if valid > today + timedelta(days=MAX_VALID_DAYS):
        raise ReferralError("referral.error.valid_far", days=MAX_VALID_DAYS)
    profile = await uow.patients.profile(patient)
    code = await _unique_code(uow)
    content = SlipContent(
        code=code,
        patient_name=profile.get("name") or "",
        birth_year=profile.get("birth_year") or "",
        sex=profile.get("sex") or "",
        doctor_name=await uow.doctors.get_field(doctor, "name") or "",
        doctor_title=await uow.doctors.get_field(doctor, "title") or "",
        doctor_licence=await uow.doctors.get_field(doctor, "licence") or "",
        doctor_hospital=await uow.doctors.get_field(doctor, "hospital") or "",
        target_hospital=target,
        target_department=(answers.get("target_department") or "").strip(),
        reason=answers["reason"].strip(),
        urgency=urgency,
        findings=(answers.get("findings") or "").strip(),
        issued_on=today,
        valid_until=valid,
        locale=patient.locale,
        hospital_locale=hospital.locale if hospital and hospital.locale else None,
    )
    digest = content_hash(content)
    ref.code = code
    ref.urgency = urgency
    await uow.referrals.seal_slip_content(ref, canonical(content).decode("utf-8"))
    ref.content_hash = digest
    ref.issued_at = now
    ref.valid_until = expires_at(valid, tz)
    token = _sign(signer, ref, content)
    ref.key_id = signer.active_kid
    ref.step = "done"
    await _move(uow, ref, "issue", f"doctor:{doctor.id}", {"code": code, "urgency": urgency})
    await uow.events.add(EXPIRE, ref.id, ref.patient_id, ref.valid_until, key=f"refexp:{ref.id}")
    return ref, content, token


def _sign(signer: Signer, ref: Referral, content: SlipContent) -> str:
    return signer.sign(
        {
            "rid": ref.id,
            "iss": content.issued_on.isoformat(),
            "exp": content.valid_until.isoformat(),
            "h": content_hash(content),
        }
    )


async def content_of(uow: UnitOfWork, ref: Referral) -> SlipContent:
    """The issued slip's content, decrypted (raises CryptoError if the key is gone)."""
    if ref.content_enc is None or ref.status == State.DRAFT:
        raise ReferralError("referral.error.not_issued")
    return SlipContent.from_dict(await uow.referrals.slip_content(ref))


async def slip_token(uow: UnitOfWork, ref: Referral, signer: Signer) -> str:
    """The token for an issued slip again (for /referrals). Ed25519 is deterministic, so this
    is the same token as at issue while the signing key is unchanged; after a rotation it is
    signed with the new key (``key_id`` follows)."""
    content = await content_of(uow, ref)
    token = _sign(signer, ref, content)
    ref.key_id = signer.active_kid
    return token


async def slip_appointment(
    uow: UnitOfWork,
    ref: Referral,
    tz: str | None,
    appt: HospitalAppointment | None = None,
    slot_id: str | None = None,
) -> SlipAppointment | None:
    """The hospital appointment as the slip prints it: ``appt``, else the referral's open
    (booked or arrived) one, at its slot (or ``slot_id``: one it was moved away from); None
    when there is none or its slot is gone. The time is in zone
    ``tz`` (``2026-03-05 09:30``); an all-day place gives the date alone and the slip adds
    "any time that day" in each of its languages."""
    from flows.slip import SlipAppointment  # the PDF stack (~55 MB) is loaded on first use

    if appt is None:
        appt = await uow.appointments.open_for_referral(ref.id)
    if appt is None:
        return None
    slot = await uow.appointments.slot(slot_id or appt.slot_id)
    if slot is None:
        return None
    service = await uow.appointments.service(appt.service_id)
    local = _aware(slot.starts_at).astimezone(_zone(tz))
    return SlipAppointment(
        when=local.date().isoformat() if slot.all_day else local.strftime("%Y-%m-%d %H:%M"),
        service=service.name if service else "",
        department=service.department if service else "",
        bring=service.bring if service else "",
        all_day=slot.all_day,
    )


async def attach_file(uow: UnitOfWork, ref: Referral, pdf: bytes) -> None:
    """Record the SHA-256 of the PDF sent to the patient (a file check compares it)."""
    ref.file_hash = hashlib.sha256(pdf).hexdigest()


async def by_code(uow: UnitOfWork, code: str) -> Referral | None:
    """An issued (or later) referral by its code, typed with mistakes or not."""
    canon = normalize_code(code)
    if canon is None:
        return None
    return await uow.referrals.by_code(canon)


async def for_patient(uow: UnitOfWork, patient_id: str) -> list[Referral]:
    """A patient's referrals past draft, newest first."""
    return await uow.referrals.for_patient(patient_id)


async def for_doctor(uow: UnitOfWork, doctor_id: str, *, drafts: bool = False) -> list[Referral]:
    """A doctor's referrals (drafts only, or everything else), newest first."""
    return await uow.referrals.for_doctor(doctor_id, drafts=drafts)


# --- lifecycle -----------------------------------------------------------------------------


async def revoke(
    uow: UnitOfWork, doctor: Doctor, referral_id: str, now: datetime, *, actor: str | None = None
) -> Referral | None:
    """The issuing doctor revokes an issued slip (audited ``referral.revoke``); None when it
    is not theirs or no longer issued. Telling the patient is the caller's part."""
    ref = await uow.referrals.get(referral_id)
    if ref is None or ref.doctor_id != doctor.id:
        return None
    if not await _move(uow, ref, "revoke", actor or f"doctor:{doctor.id}", {"code": ref.code}):
        return None
    ref.revoked_at = now
    await uow.events.cancel_for(EXPIRE, ref.id)
    return ref


async def mark_used(uow: UnitOfWork, ref: Referral, now: datetime, *, by: str, actor: str) -> bool:
    """Mark an issued, unexpired slip used, once (``by``: "desk" or "patient"); False when it
    is not issued any more or has expired. Audited ``referral.use``."""
    if by not in ("desk", "patient"):
        raise ValueError("by must be 'desk' or 'patient'")
    if (
        ref.status == State.ISSUED
        and ref.valid_until is not None
        and now >= _aware(ref.valid_until)
    ):
        await expire(uow, ref, now)
        return False
    if not await _move(uow, ref, "use", actor, {"code": ref.code, "by": by}):
        return False
    ref.used_at, ref.used_by = now, by
    await uow.events.cancel_for(EXPIRE, ref.id)
    return True


async def expire(uow: UnitOfWork, ref: Referral, now: datetime) -> bool:
    """Expire an issued slip past its valid-until date (audited, actor ``system``)."""
    if ref.valid_until is None or now < _aware(ref.valid_until):
        return False
    return await _move(uow, ref, "expire", "system", {"code": ref.code})


async def on_expire(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
    """Scheduler handler of :data:`EXPIRE`."""
    ref = await uow.referrals.get(event.subject)
    if ref is not None:
        await expire(uow, ref, now)


def scheduled() -> dict[str, Any]:
    """Scheduler handlers of referrals, by event kind."""
    return {EXPIRE: on_expire}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- verification ------------------------------------------------------------------------------

STATUSES = ("valid", "expired", "revoked", "used", "forged", "unknown")


@dataclass(frozen=True)
class Verdict:
    """What a check of a slip says. ``reason`` is a short id (``signature``, ``content``,
    ``file``, ``mismatch``, ``not_found``, ``no_qr``, ``code``, ``erased`` or the status
    itself). Only a genuine slip carries the fields a desk needs to match the patient;
    forged and unknown carry nothing."""

    status: str
    reason: str
    code: str | None = None
    patient_name: str | None = None
    birth_year: str | None = None
    sex: str | None = None
    target_hospital: str | None = None
    target_department: str | None = None
    urgency: str | None = None
    issued_on: date | None = None
    valid_until: date | None = None
    used_on: datetime | None = None
    referral_id: str | None = None

    @property
    def ok(self) -> bool:
        """True only for a valid slip."""
        return self.status == "valid"


def _nothing(status: str, reason: str) -> Verdict:
    return Verdict(status=status, reason=reason)


async def _judge(
    uow: UnitOfWork, ref: Referral, now: datetime, payload: dict[str, Any] | None
) -> Verdict:
    """The verdict on a stored referral (and a token's payload, when checked by token)."""
    if ref.status == State.DRAFT or ref.content_enc is None or ref.content_hash is None:
        return _nothing("unknown", "not_found")
    try:
        content = await content_of(uow, ref)
    except CryptoError:
        return _nothing("unknown", "erased")
    digest = content_hash(content)
    if digest != ref.content_hash or content.code != ref.code:
        return _nothing("forged", "content")
    if payload is not None and (
        payload["h"] != digest
        or payload["exp"] != content.valid_until.isoformat()
        or payload["iss"] != content.issued_on.isoformat()
    ):
        return _nothing("forged", "content")
    if ref.status == State.REVOKED:
        status = "revoked"
    elif ref.status == State.USED:
        status = "used"
    elif ref.status == State.EXPIRED or (
        ref.valid_until is not None and now >= _aware(ref.valid_until)
    ):
        status = "expired"
    else:
        status = "valid"
    return Verdict(
        status=status,
        reason=status,
        code=ref.code,
        patient_name=content.patient_name,
        birth_year=content.birth_year,
        sex=content.sex,
        target_hospital=content.target_hospital,
        target_department=content.target_department,
        urgency=content.urgency,
        issued_on=content.issued_on,
        valid_until=content.valid_until,
        used_on=ref.used_at,
        referral_id=ref.id,
    )


async def _audited(uow: UnitOfWork, verdict: Verdict, actor: str | None, via: str) -> Verdict:
    if actor and verdict.referral_id:
        await uow.audit.record(
            actor,
            "referral.verify",
            "referral",
            verdict.referral_id,
            {"status": verdict.status, "via": via},
        )
    return verdict


async def verify_token(
    uow: UnitOfWork,
    token: str,
    signer: Signer,
    now: datetime,
    *,
    code: str | None = None,
    actor: str | None = None,
) -> Verdict:
    """Check a slip's token: our signature, the referral it names, its content hash and
    dates, then revocation, use and expiry. With ``code`` (the page's /r/<code>) the token
    must belong to that code. ``actor`` audits the check (``referral.verify``)."""
    payload = signer.verify(token)
    if payload is None:
        return _nothing("forged", "signature")
    ref = await uow.referrals.get(payload["rid"])
    if ref is None:
        return _nothing("unknown", "not_found")
    if code is not None and normalize_code(code) != ref.code:
        return _nothing("forged", "mismatch")
    return await _audited(uow, await _judge(uow, ref, now, payload), actor, "token")


async def verify_code(
    uow: UnitOfWork, code: str, signer: Signer, now: datetime, *, actor: str | None = None
) -> Verdict:
    """Check a slip by its typed code (mistakes in case, dashes and O/0, I/L/1 forgiven; a
    wrong check symbol is ``unknown``)."""
    del signer  # the stored record is ours; kept for a uniform signature
    if normalize_code(code) is None:
        return _nothing("unknown", "code")
    ref = await by_code(uow, code)
    if ref is None:
        return _nothing("unknown", "not_found")
    return await _audited(uow, await _judge(uow, ref, now, None), actor, "code")


def _qr_texts(data: bytes) -> list[str] | None:
    """The QR codes' texts in a PDF (every page) or an image; None if it is neither."""
    import zxingcpp

    images: list[Any] = []
    if data[:5] == b"%PDF-":
        import pypdfium2  # type: ignore[import-untyped]

        try:
            pdf = pypdfium2.PdfDocument(data)
        except pypdfium2.PdfiumError:
            return None
        try:
            for i in range(min(len(pdf), 5)):
                images.append(pdf[i].render(scale=3).to_pil())
        finally:
            pdf.close()
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            return None
        images.append(img.convert("RGB"))
    texts: list[str] = []
    for img in images:
        for found in zxingcpp.read_barcodes(
            img, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
        ):
            if found.text:
                texts.append(found.text)
    return texts


async def verify_file(
    uow: UnitOfWork,
    data: bytes,
    signer: Signer,
    now: datetime,
    *,
    actor: str | None = None,
) -> Verdict:
    """Check a slip from its file: a PDF (the QR's token, and the file's SHA-256 against the
    issued one) or a photo of it (PNG/JPEG: the QR's token)."""
    texts = _qr_texts(data)
    if texts is None:
        return _nothing("unknown", "not_a_slip")
    if not texts:
        return _nothing("unknown", "no_qr")
    verdict = _nothing("forged", "signature")
    scanned = ""
    for text in texts:
        token = token_from_text(text)
        if token is None:
            continue
        verdict = await verify_token(uow, token, signer, now, code=code_from_text(text))
        scanned = text
        if verdict.status != "forged":
            break
    if (
        data[:5] == b"%PDF-"
        and verdict.referral_id is not None
        and (ref := await uow.referrals.get(verdict.referral_id)) is not None
        and ref.file_hash is not None
        and hashlib.sha256(data).hexdigest() != ref.file_hash
        and not await _renders_the_same(uow, ref, scanned, data)
    ):
        return _nothing("forged", "file")
    return await _audited(uow, verdict, actor, "file")


async def _renders_the_same(uow: UnitOfWork, ref: Referral, scanned: str, data: bytes) -> bool:
    """Is ``data`` exactly the slip this record renders with the token its QR carries? Slips
    render deterministically, so an earlier copy (before the slip was sent again under a
    newer signing key, which replaced ``file_hash``) is recognised byte for byte, and any
    other change to the file is not. A copy may show none of the referral's hospital
    appointments or any one of them at any time it had (a slip sent while it was booked keeps
    showing it after it is cancelled or moved), with its time in the patient's current
    zone."""
    from flows import slip  # the PDF layer imports this module's types

    base, sep, _ = scanned.partition("?t=")
    token = token_from_text(scanned)
    if not sep or token is None:
        return False
    content = await content_of(uow, ref)
    patient = await uow.patients.get(ref.patient_id)
    tz = patient.timezone if patient is not None else None
    shown: list[slip.SlipAppointment | None] = [None]
    for appt in await uow.appointments.for_referral(ref.id):
        for slot_id in [appt.slot_id, *uow.appointments.moved_from(appt)]:
            found = await slip_appointment(uow, ref, tz, appt, slot_id)
            if found is not None and found not in shown:
                shown.append(found)
    digest = hashlib.sha256(data).digest()
    for appointment in shown:
        try:
            again = slip.render_slip(content, token, base, appointment)
        except slip.SlipError:
            return False
        if hashlib.sha256(again).digest() == digest:
            return True
    return False
