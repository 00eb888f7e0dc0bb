"""E-prescriptions: draft → pending (a pharmacist reviews) | active → dispensed | expired |
revoked; pending → rejected.

A verified doctor prescribes in a case of their own (cn: only a follow-up visit of a problem
diagnosed offline, which the doctor confirmed on the case; never at a first visit). The
medicines are free text the doctor types (Careline never suggests one): name, strength, dose,
quantity and days. The clinic's rules (``flows/questionnaires/prescribing.toml``, data a
clinician can read) refuse a forbidden class (cn: narcotic and psychotropic drugs), a validity
over the limit and a course longer than the supply limit unless a chronic-disease rule allows
it. Issuing fixes the content (:class:`RxContent`), seals it under the patient's key, gives it
a code like a referral slip's and signs a token (:mod:`flows.signing`, payload ``typ: rx``) that
the PDF's QR carries to ``/rx/<code>``. Where review is required (cn always, elsewhere a clinic
setting) it takes effect only when a verified pharmacist approves it; a rejection goes back to
the doctor with the reason. A pharmacy checks it (token, code, or the file) and marks it
dispensed once, with its name and the quantities given (less than prescribed is a partial
dispensing, recorded). Every step goes through one module-level ``transitions`` machine and is
audited with its actor. No aiogram here.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from transitions import Machine

from flows import referrals as slips
from flows.consultation import doctor_ref, is_verified
from flows.errors import UserError
from flows.machines import fire
from flows.signing import Signer
from storage.crypto import CryptoError
from storage.models import Consultation, Doctor, Prescription, ScheduledEvent
from storage.uow import UnitOfWork

RULES_FILE = Path(__file__).parent / "questionnaires" / "prescribing.toml"
EXPIRE = "rx.expire"  # scheduled event kind (subject: the prescription id)
MAX_ITEMS = 10
NAME_MAX = 100
FIELD_MAX = 120
DIAGNOSIS_MAX = 300
PHARMACY_MAX = 120
REASON_MAX = 500
TYP = "rx"  # the token payload's type: a referral's token never passes as a prescription's


class RxError(UserError):
    """A prescription cannot be made, issued, reviewed or dispensed; ``msgid`` is a catalog id
    for the person (its params alongside). Unanswered in a handler, the bots' common error
    router says it and the conversation stays where it was."""


class DraftOpen(RxError):
    """The doctor has a prescription draft open already (``rx``)."""

    def __init__(self, rx: Prescription) -> None:
        super().__init__("rx.wiz.already_open")
        self.rx = rx


# --- the clinic's rules ---------------------------------------------------------------------


@dataclass(frozen=True)
class DrugClass:
    """A class of medicines a jurisdiction may forbid online, with the names that identify it."""

    id: str
    names: tuple[str, ...]
    labels: dict[str, str]


@dataclass(frozen=True)
class Chronic:
    """A chronic-disease rule: a diagnosed, stable condition allows a longer course."""

    id: str
    max_supply_days: int
    labels: dict[str, str]


@dataclass(frozen=True)
class Rules:
    """What ``prescribing.toml`` says, for one jurisdiction."""

    default_valid_days: int
    max_valid_days: int
    max_supply_days: int
    review_required: bool
    forbidden: tuple[str, ...]
    classes: tuple[DrugClass, ...]
    chronic: tuple[Chronic, ...]
    allow: tuple[str, ...] = field(default=())

    def chronic_rule(self, rule_id: str | None) -> Chronic | None:
        """The chronic-disease rule with this id, if any."""
        return next((c for c in self.chronic if c.id == rule_id), None)

    def supply_limit(self, chronic: str | None) -> int:
        """The longest course allowed (days), with the chronic rule chosen, if any."""
        rule = self.chronic_rule(chronic)
        return max(self.max_supply_days, rule.max_supply_days) if rule else self.max_supply_days


def _labels(raw: dict[str, Any]) -> dict[str, str]:
    return {k: str(raw[k]) for k in ("en", "ru", "zh_Hans") if k in raw}


def parse_rules(data: dict[str, Any], jurisdiction: str) -> Rules:
    """The rules for ``jurisdiction`` from the parsed TOML (ValueError on a bad file)."""
    local = dict(data.get("jurisdiction", {}).get(jurisdiction, {}))
    classes = tuple(
        DrugClass(
            id=str(c["id"]),
            names=tuple(_norm(str(n)) for n in c.get("names", ())),
            labels=_labels(c),
        )
        for c in data.get("class", ())
    )
    forbidden = tuple(str(x) for x in local.get("forbidden", ()))
    unknown = set(forbidden) - {c.id for c in classes}
    if unknown:
        raise ValueError(f"prescribing rules: unknown classes {sorted(unknown)}")
    rules = Rules(
        default_valid_days=int(data["validity"]["default_days"]),
        max_valid_days=int(local.get("max_valid_days", data["validity"]["max_days"])),
        max_supply_days=int(local.get("max_supply_days", data["supply"]["max_days"])),
        review_required=bool(local.get("review_required", data["review"]["required"])),
        forbidden=forbidden,
        classes=classes,
        chronic=tuple(
            Chronic(id=str(c["id"]), max_supply_days=int(c["max_supply_days"]), labels=_labels(c))
            for c in data.get("chronic", ())
        ),
        allow=tuple(_norm(str(p)) for p in data.get("allow", {}).get("phrases", ())),
    )
    if not 1 <= rules.default_valid_days <= rules.max_valid_days:
        raise ValueError("prescribing rules: default validity must be within 1..max_days")
    return rules


@lru_cache(maxsize=4)
def rules_for(jurisdiction: str, path: str = str(RULES_FILE)) -> Rules:
    """The clinic's rules for a jurisdiction (read once)."""
    with open(path, "rb") as fh:
        return parse_rules(tomllib.load(fh), jurisdiction)


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")


_WORD = r"[0-9a-zа-я]"


@lru_cache(maxsize=4096)
def _pattern(name: str) -> re.Pattern[str]:
    if re.search(r"[\u3400-\u9fff]", name):
        return re.compile(re.escape(name))
    return re.compile(rf"(?<!{_WORD}){re.escape(name)}")


_NEGATED = re.compile(r"(?:(?<![0-9a-zа-я])(?:no|not|without|без|не|нет)|不含|无|非)\W{0,3}$")
_TOKEN = re.compile(r"[a-zа-я]{6,}")
FUZZY_MIN = 7  # names this long or longer also match with one typo (a letter wrong, missing,
# extra, or two swapped): "alprazolm", "lorazapam"


def _one_edit(a: str, b: str) -> bool:
    """At most one edit (substitution, insertion, deletion, adjacent swap) apart."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    i = 0
    while i < min(la, lb) and a[i] == b[i]:
        i += 1
    if la == lb:
        if a[i + 1 :] == b[i + 1 :]:
            return True
        return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
    return a[i + 1 :] == b[i:] if la > lb else a[i:] == b[i + 1 :]


def _negated(norm: str, start: int) -> bool:
    return _NEGATED.search(norm[max(0, start - 12) : start]) is not None


def _fuzzy(norm: str, names: tuple[str, ...]) -> bool:
    tokens = [m.group() for m in _TOKEN.finditer(norm) if not _negated(norm, m.start())]
    for name in names:
        if len(name) < FUZZY_MIN or not name.isalpha():
            continue
        for token in tokens:
            if token[0] != name[0]:
                continue
            # the name's stem against the token's start (inflections and salts follow it)
            if any(_one_edit(token[: len(name) + d], name) for d in (-1, 0, 1)):
                return True
    return False


def forbidden_class(text: str, rules: Rules) -> DrugClass | None:
    """The forbidden class a typed medicine line names, if any: names matched at a word's
    start (anywhere in Chinese), long names also with one typo; the clinic's ``allow``
    phrases removed first, and a name right after "no", "without", "без", "不含"... skipped."""
    norm = _norm(text)
    for phrase in rules.allow:
        norm = norm.replace(phrase, " ")
    for cls in rules.classes:
        if cls.id not in rules.forbidden:
            continue
        for name in cls.names:
            for found in _pattern(name).finditer(norm):
                if not _negated(norm, found.start()):
                    return cls
    for cls in rules.classes:
        if cls.id in rules.forbidden and _fuzzy(norm, cls.names):
            return cls
    return None


# --- medicines ------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"\s*[;；|]\s*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@dataclass(frozen=True)
class Item:
    """One medicine as the doctor typed it: name, strength, dose, quantity, days."""

    name: str
    strength: str
    dose: str
    quantity: str
    days: int

    @property
    def amount(self) -> float:
        """The number in the quantity (what a partial dispensing is measured against)."""
        found = _NUMBER.search(self.quantity)
        return float(found.group().replace(",", ".")) if found else 0.0

    def line(self) -> str:
        """The item in one line (the PDF, the cards, the pharmacist's review)."""
        return f"{self.name} {self.strength} — {self.dose}; {self.quantity}; {self.days} d"


def _clean(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def parse_item(raw: str) -> Item:
    """One typed medicine line: ``name; strength; dose; quantity; days`` (``;``, ``；`` or
    ``|`` between them). Raises :class:`RxError` saying what is wrong."""
    text = _clean(raw or "")
    parts = [p.strip() for p in _SEPARATORS.split(text)] if text else []
    if len(parts) != 5 or not all(parts):
        raise RxError("rx.error.item_format")
    name, strength, dose, quantity, days_text = parts
    if len(name) > NAME_MAX or any(len(p) > FIELD_MAX for p in parts[1:]):
        raise RxError("rx.error.item_long", n=FIELD_MAX)
    found = _NUMBER.search(quantity)
    if found is None or float(found.group().replace(",", ".")) <= 0:
        raise RxError("rx.error.quantity")
    days_found = re.search(r"\d+", days_text)
    if days_found is None or not 1 <= int(days_found.group()) <= 366:
        raise RxError("rx.error.days")
    return Item(name=name, strength=strength, dose=dose, quantity=quantity,
                days=int(days_found.group()))  # fmt: skip


def item_to_dict(item: Item) -> dict[str, Any]:
    """Plain JSON values of an item."""
    return asdict(item)


def item_from_dict(raw: dict[str, Any]) -> Item:
    """The inverse of :func:`item_to_dict`."""
    return Item(
        name=str(raw["name"]),
        strength=str(raw["strength"]),
        dose=str(raw["dose"]),
        quantity=str(raw["quantity"]),
        days=int(raw["days"]),
    )


# --- the machine ------------------------------------------------------------------------------


class State(StrEnum):
    """Where a prescription is."""

    DRAFT = "draft"
    PENDING = "pending"
    ACTIVE = "active"
    REJECTED = "rejected"
    DISPENSED = "dispensed"
    EXPIRED = "expired"
    REVOKED = "revoked"


S = State
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "issue", "source": S.DRAFT, "dest": S.PENDING, "conditions": "review"},
    {"trigger": "issue", "source": S.DRAFT, "dest": S.ACTIVE},
    {"trigger": "approve", "source": S.PENDING, "dest": S.ACTIVE},
    {"trigger": "reject", "source": S.PENDING, "dest": S.REJECTED},
    {"trigger": "dispense", "source": S.ACTIVE, "dest": S.DISPENSED},
    {"trigger": "expire", "source": [S.PENDING, S.ACTIVE], "dest": S.EXPIRED},
    {"trigger": "revoke", "source": [S.PENDING, S.ACTIVE], "dest": S.REVOKED},
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

    def __init__(self, review: bool) -> None:
        self.review = review


def next_state(current: str, trigger: str, *, review: bool = False) -> State | None:
    """The state ``trigger`` leads to from ``current``, or None when not allowed there."""
    try:
        start = State(current)
    except ValueError:
        return None
    new = fire(MACHINE, _Model(review), start, trigger, TRIGGERS)
    return State(new) if new is not None else None


async def _move(
    uow: UnitOfWork, rx: Prescription, trigger: str, actor: str, details: dict[str, Any]
) -> bool:
    new = next_state(rx.status, trigger, review=rx.review_required)
    if new is None:
        return False
    rx.status = new.value
    await uow.audit.record(actor, f"rx.{trigger}", "prescription", rx.id, details)
    return True


# --- content ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RxContent:
    """What an issued prescription says; its canonical JSON is hashed into the signed token."""

    code: str
    patient_name: str
    birth_year: str
    sex: str
    doctor_name: str
    doctor_title: str
    doctor_licence: str
    doctor_hospital: str
    diagnosis: str
    items: tuple[Item, ...]
    supply_days: int
    chronic: str
    issued_on: date
    valid_until: date
    locale: str
    review_required: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (dates as ISO strings, items as objects)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["items"] = [item_to_dict(i) for i in self.items]
        out["issued_on"] = self.issued_on.isoformat()
        out["valid_until"] = self.valid_until.isoformat()
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RxContent:
        """The inverse of :meth:`to_dict`."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in names}
        values["items"] = tuple(item_from_dict(i) for i in raw["items"])
        values["issued_on"] = date.fromisoformat(raw["issued_on"])
        values["valid_until"] = date.fromisoformat(raw["valid_until"])
        return cls(**values)


def canonical(content: RxContent) -> bytes:
    """Sorted-key compact JSON, UTF-8 (the bytes that are hashed)."""
    return json.dumps(
        content.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


def content_hash(content: RxContent) -> str:
    """SHA-256 (hex) of the canonical content."""
    return hashlib.sha256(canonical(content)).hexdigest()


def rx_url(base_url: str, code: str, token: str) -> str:
    """What the prescription's QR carries: the check page of this code, with the token."""
    return f"{base_url.rstrip('/')}/rx/{code}?t={token}"


def code_from_text(text: str) -> str | None:
    """The code in a scanned check URL (``.../rx/<code>``), if any."""
    from urllib.parse import urlsplit

    try:
        path = urlsplit((text or "").strip()).path
    except ValueError:
        return None
    if "/rx/" not in path:
        return None
    return slips.normalize_code(path.rsplit("/rx/", 1)[1].strip("/"))


# --- drafts (the doctor's wizard) ---------------------------------------------------------------

STEPS = ("items", "diagnosis", "validity", "chronic", "review")


async def draft_of(uow: UnitOfWork, doctor: Doctor) -> Prescription | None:
    """The doctor's open prescription draft, if any."""
    return await uow.prescriptions.open_draft(doctor.id)


async def answers(uow: UnitOfWork, rx: Prescription) -> dict[str, Any]:
    """A draft's answers: ``items`` (list of dicts), ``diagnosis``, ``valid_days``,
    ``chronic`` (a rule id or ""), each None/empty until answered."""
    out: dict[str, Any] = {"items": [], "diagnosis": None, "valid_days": None, "chronic": None}
    if rx.status == State.DRAFT:
        out.update(await uow.prescriptions.content(rx))
    return out


async def _save(uow: UnitOfWork, rx: Prescription, values: dict[str, Any]) -> None:
    await uow.prescriptions.set_content(rx, json.dumps(values, ensure_ascii=False))


def may_prescribe(case: Consultation, doctor: Doctor, now: datetime, jurisdiction: str) -> str:
    """Why this doctor may not prescribe in this case ("" when they may): ``not_verified``,
    ``not_yours``, ``first_visit`` (cn: not confirmed as a follow-up of an offline diagnosis),
    ``case_state`` (a case that never became active)."""
    if not is_verified(doctor, now) or doctor.role != "doctor":
        return "not_verified"
    if case.doctor_id != doctor.id:
        return "not_yours"
    if case.accepted_at is None:
        return "case_state"
    if jurisdiction == "cn" and not case.followup_visit:
        return "first_visit"
    return ""


async def begin(
    uow: UnitOfWork,
    doctor: Doctor,
    case: Consultation,
    now: datetime,
    jurisdiction: str,
    *,
    review: bool = False,
) -> Prescription:
    """A new draft for the case's patient (audited ``rx.draft``); ``review``: the clinic
    wants a pharmacist's review (cn always does). Raises :class:`RxError` (refusals audited
    ``rx.refused`` with the reason); an open draft raises :class:`DraftOpen`."""
    why = may_prescribe(case, doctor, now, jurisdiction)
    if why:
        await uow.audit.record(
            doctor_ref(doctor), "rx.refused", "consultation", case.id, {"reason": why}
        )
        raise RxError(f"rx.refused.{why}", number=case.number)
    open_rx = await draft_of(uow, doctor)
    if open_rx is not None:
        raise DraftOpen(open_rx)
    rules = rules_for(jurisdiction)
    rx = Prescription(
        patient_id=case.patient_id,
        doctor_id=doctor.id,
        consultation_id=case.id,
        status=State.DRAFT.value,
        step="items",
        review_required=rules.review_required or review,
        created_at=now,
    )
    await uow.prescriptions.add(rx)
    await _save(uow, rx, {"items": [], "diagnosis": None, "valid_days": None, "chronic": None})
    await uow.audit.record(
        doctor_ref(doctor), "rx.draft", "prescription", rx.id, {"case": case.id}
    )
    return rx


async def _refuse(uow: UnitOfWork, doctor: Doctor, rx: Prescription, msgid: str, **p: Any) -> None:
    await uow.audit.record(
        doctor_ref(doctor), "rx.refused", "prescription", rx.id, {"reason": msgid.split(".")[-1]}
    )
    raise RxError(msgid, **p)


async def add_item(
    uow: UnitOfWork, doctor: Doctor, rx: Prescription, raw: str, jurisdiction: str
) -> Item:
    """Add one typed medicine line (or several, one per line) to the draft. A forbidden class
    is refused and audited; a malformed line says what to type."""
    rules = rules_for(jurisdiction)
    values = await answers(uow, rx)
    lines = [ln for ln in (raw or "").splitlines() if ln.strip()] or [""]
    parsed = [parse_item(ln) for ln in lines]
    for item in parsed:
        cls = forbidden_class(f"{item.name} {item.strength}", rules)
        if cls is not None:
            await _refuse(uow, doctor, rx, "rx.error.forbidden", name=item.name, cls=cls.id)
    if len(values["items"]) + len(parsed) > MAX_ITEMS:
        raise RxError("rx.error.too_many", n=MAX_ITEMS)
    values["items"] = [*values["items"], *(item_to_dict(i) for i in parsed)]
    await _save(uow, rx, values)
    return parsed[-1]


async def remove_last(uow: UnitOfWork, rx: Prescription) -> None:
    """Take the last medicine off the draft."""
    values = await answers(uow, rx)
    values["items"] = values["items"][:-1]
    values["adding"] = True
    await _save(uow, rx, values)


async def set_answer(
    uow: UnitOfWork, doctor: Doctor, rx: Prescription, step: str, raw: str, jurisdiction: str
) -> None:
    """Answer ``diagnosis`` (text), ``validity`` (days) or ``chronic`` (a rule id, or ``-`` for
    none); a bad answer raises :class:`RxError` and the step stays."""
    rules = rules_for(jurisdiction)
    values = await answers(uow, rx)
    if step == "diagnosis":
        text = _clean(raw or "")
        if not text:
            raise RxError("rx.error.diagnosis")
        if len(text) > DIAGNOSIS_MAX:
            raise RxError("rx.error.too_long", n=DIAGNOSIS_MAX)
        values["diagnosis"] = text
    elif step == "validity":
        found = re.fullmatch(r"\s*(\d{1,3})\s*\D{0,12}", raw or "")
        if found is None:
            raise RxError("rx.error.validity_format", max=rules.max_valid_days)
        days = int(found.group(1))
        if not 1 <= days <= rules.max_valid_days:
            await _refuse(uow, doctor, rx, "rx.error.validity_far", max=rules.max_valid_days)
        values["valid_days"] = days
    elif step == "chronic":
        if raw != "-" and rules.chronic_rule(raw) is None:
            raise RxError("rx.error.chronic")
        values["chronic"] = "" if raw == "-" else raw
    else:
        raise ValueError(f"no typed answer in step {step}")
    await _save(uow, rx, values)


async def set_adding(uow: UnitOfWork, rx: Prescription, *, adding: bool) -> None:
    """The doctor is done adding medicines (or goes back to adding)."""
    values = await answers(uow, rx)
    values["adding"] = adding
    await _save(uow, rx, values)


def next_step(values: dict[str, Any]) -> str:
    """The first step still unanswered (``review`` when all are); medicines are added until
    the doctor says they are done."""
    if not values.get("items") or values.get("adding", True):
        return "items"
    if not values.get("diagnosis"):
        return "diagnosis"
    if not values.get("valid_days"):
        return "validity"
    if values.get("chronic") is None:
        return "chronic"
    return "review"


async def cancel(uow: UnitOfWork, doctor: Doctor) -> bool:
    """Drop the doctor's open draft (audited ``rx.cancel``)."""
    rx = await draft_of(uow, doctor)
    if rx is None:
        return False
    await uow.audit.record(doctor_ref(doctor), "rx.cancel", "prescription", rx.id, {})
    await uow.prescriptions.delete(rx)
    return True


# --- issuing ----------------------------------------------------------------------------------


async def _unique_code(uow: UnitOfWork) -> str:
    for _ in range(20):
        code = slips.new_code()
        if not await uow.prescriptions.code_taken(code) and not await uow.referrals.code_taken(
            code
        ):
            return code
    raise RuntimeError("could not find a free prescription code")


async def issue(
    uow: UnitOfWork,
    doctor: Doctor,
    rx: Prescription,
    now: datetime,
    signer: Signer,
    jurisdiction: str,
) -> tuple[RxContent, str]:
    """Issue the draft: check it against the rules again (a rule may have changed since a
    line was added), fix and seal its content, give it a code, sign it, schedule its expiry.
    Goes to ``pending`` when review is required, else ``active``. Raises :class:`RxError`."""
    if rx.status != State.DRAFT or rx.doctor_id != doctor.id:
        raise RxError("rx.error.not_draft")
    case = await uow.consultations.get(rx.consultation_id or "")
    if case is None:
        raise RxError("rx.error.not_draft")
    why = may_prescribe(case, doctor, now, jurisdiction)
    if why:
        await _refuse(uow, doctor, rx, f"rx.refused.{why}", number=case.number)
    rules = rules_for(jurisdiction)
    values = await answers(uow, rx)
    if next_step(values) != "review":
        raise RxError("rx.error.incomplete")
    items = tuple(item_from_dict(i) for i in values["items"])
    for item in items:
        cls = forbidden_class(f"{item.name} {item.strength}", rules)
        if cls is not None:
            await _refuse(uow, doctor, rx, "rx.error.forbidden", name=item.name, cls=cls.id)
    supply = max(i.days for i in items)
    limit = rules.supply_limit(values["chronic"] or None)
    if supply > limit:
        await _refuse(uow, doctor, rx, "rx.error.supply", days=supply, max=limit)
    valid_days = int(values["valid_days"])
    if not 1 <= valid_days <= rules.max_valid_days:
        await _refuse(uow, doctor, rx, "rx.error.validity_far", max=rules.max_valid_days)
    patient = await uow.patients.get(rx.patient_id)
    if patient is None:
        raise RxError("rx.error.not_draft")
    profile = await uow.patients.profile(patient)
    today = slips.local_today(now, patient.timezone)
    valid_until = today + timedelta(days=valid_days - 1)
    code = await _unique_code(uow)
    content = RxContent(
        code=code,
        patient_name=profile.get("name") or "",
        birth_year=profile.get("birth_year") or "",
        sex=profile.get("sex") or "",
        doctor_name=await uow.doctors.get_field(doctor, "name") or "",
        doctor_title=await uow.doctors.get_field(doctor, "title") or "",
        doctor_licence=await uow.doctors.get_field(doctor, "licence") or "",
        doctor_hospital=await uow.doctors.get_field(doctor, "hospital") or "",
        diagnosis=str(values["diagnosis"]),
        items=items,
        supply_days=supply,
        chronic=values["chronic"] or "",
        issued_on=today,
        valid_until=valid_until,
        locale=patient.locale,
        review_required=rx.review_required or rules.review_required,
    )
    rx.code = code
    rx.review_required = content.review_required
    rx.chronic = values["chronic"] or None
    rx.supply_days = supply
    await uow.prescriptions.set_content(rx, canonical(content).decode("utf-8"))
    rx.content_hash = content_hash(content)
    rx.issued_at = now
    rx.valid_until = slips.expires_at(valid_until, patient.timezone)
    token = sign(signer, rx, content)
    rx.key_id = signer.active_kid
    rx.step = "done"
    await _move(
        uow, rx, "issue", doctor_ref(doctor),
        {"code": code, "items": len(items), "supply_days": supply, "chronic": rx.chronic},
    )  # fmt: skip
    await uow.events.add(EXPIRE, rx.id, rx.patient_id, rx.valid_until, key=f"rxexp:{rx.id}")
    return content, token


def sign(signer: Signer, rx: Prescription, content: RxContent) -> str:
    """The prescription's token (Ed25519 is deterministic: the same while the key is)."""
    return signer.sign(
        {
            "rid": rx.id,
            "iss": content.issued_on.isoformat(),
            "exp": content.valid_until.isoformat(),
            "h": content_hash(content),
            "typ": TYP,
        }
    )


async def content_of(uow: UnitOfWork, rx: Prescription) -> RxContent:
    """The issued content, decrypted (CryptoError when the key is gone)."""
    if rx.content_enc is None or rx.status == State.DRAFT:
        raise RxError("rx.error.not_issued")
    return RxContent.from_dict(await uow.prescriptions.content(rx))


async def token_of(uow: UnitOfWork, rx: Prescription, signer: Signer) -> str:
    """The token again (for sending the PDF again, or after approval)."""
    token = sign(signer, rx, await content_of(uow, rx))
    rx.key_id = signer.active_kid
    return token


async def attach_file(rx: Prescription, pdf: bytes) -> None:
    """Record the SHA-256 of the PDF sent to the patient."""
    rx.file_hash = hashlib.sha256(pdf).hexdigest()


async def by_code(uow: UnitOfWork, code: str) -> Prescription | None:
    """A prescription by its code, typed with mistakes or not."""
    canon = slips.normalize_code(code)
    return await uow.prescriptions.by_code(canon) if canon else None


# --- pharmacist review --------------------------------------------------------------------------


def is_pharmacist(person: Doctor | None, now: datetime) -> bool:
    """A verified pharmacist (verification holds now)."""
    return person is not None and person.role == "pharmacist" and is_verified(person, now)


async def pending(uow: UnitOfWork) -> list[Prescription]:
    """Prescriptions waiting for a pharmacist, oldest first."""
    return await uow.prescriptions.with_status([State.PENDING.value])


async def _reviewable(
    uow: UnitOfWork, pharmacist: Doctor, rx_id: str, now: datetime
) -> Prescription:
    actor = doctor_ref(pharmacist)
    if not is_pharmacist(pharmacist, now):
        await uow.audit.record(
            actor, "rx.refused", "prescription", rx_id, {"reason": "not_pharmacist"}
        )
        raise RxError("rx.review.not_pharmacist")
    rx = await uow.prescriptions.get(rx_id)
    if rx is None or rx.status != State.PENDING:
        await uow.audit.record(
            actor, "rx.refused", "prescription", rx_id,
            {"reason": "not_pending", "status": rx.status if rx else None},
        )  # fmt: skip
        raise RxError("rx.review.not_pending")
    if rx.valid_until is not None and now >= _aware(rx.valid_until):
        await expire(uow, rx, now)
        raise RxError("rx.review.not_pending")
    return rx


async def approve(uow: UnitOfWork, pharmacist: Doctor, rx_id: str, now: datetime) -> Prescription:
    """A verified pharmacist approves a pending prescription: it takes effect."""
    rx = await _reviewable(uow, pharmacist, rx_id, now)
    rx.reviewed_at, rx.reviewer_id = now, pharmacist.id
    await uow.prescriptions.set_review(rx, {"decision": "approved"})
    await _move(uow, rx, "approve", doctor_ref(pharmacist), {"code": rx.code})
    return rx


async def reject(
    uow: UnitOfWork, pharmacist: Doctor, rx_id: str, reason: str, now: datetime
) -> Prescription:
    """A verified pharmacist rejects a pending prescription with a reason (sealed; the doctor
    is told by the caller)."""
    text = _clean(reason or "")
    if not text:
        raise RxError("rx.review.reason_empty")
    if len(text) > REASON_MAX:
        raise RxError("rx.error.too_long", n=REASON_MAX)
    rx = await _reviewable(uow, pharmacist, rx_id, now)
    rx.reviewed_at, rx.reviewer_id = now, pharmacist.id
    await uow.prescriptions.set_review(rx, {"decision": "rejected", "reason": text})
    await _move(uow, rx, "reject", doctor_ref(pharmacist), {"code": rx.code})
    await uow.events.cancel_for(EXPIRE, rx.id)
    return rx


async def review_reason(uow: UnitOfWork, rx: Prescription) -> str:
    """The pharmacist's reason for a rejection ("" when none)."""
    return str((await uow.prescriptions.review(rx)).get("reason") or "")


# --- lifecycle ----------------------------------------------------------------------------------


async def revoke(uow: UnitOfWork, doctor: Doctor, rx_id: str, now: datetime) -> Prescription:
    """The prescribing doctor revokes a pending or active prescription."""
    rx = await uow.prescriptions.get(rx_id)
    if rx is None or rx.doctor_id != doctor.id:
        await uow.audit.record(
            doctor_ref(doctor), "rx.refused", "prescription", rx_id, {"reason": "not_yours"}
        )
        raise RxError("rx.error.not_yours")
    if not await _move(uow, rx, "revoke", doctor_ref(doctor), {"code": rx.code}):
        raise RxError("rx.error.cannot_revoke", status=rx.status)
    rx.revoked_at = now
    await uow.events.cancel_for(EXPIRE, rx.id)
    return rx


async def expire(uow: UnitOfWork, rx: Prescription, now: datetime) -> bool:
    """Expire a pending or active prescription past its last day (actor ``system``)."""
    if rx.valid_until is None or now < _aware(rx.valid_until):
        return False
    return await _move(uow, rx, "expire", "system", {"code": rx.code})


async def on_expire(uow: UnitOfWork, event: ScheduledEvent, now: datetime) -> None:
    """Scheduler handler of :data:`EXPIRE`."""
    rx = await uow.prescriptions.get(event.subject)
    if rx is not None:
        await expire(uow, rx, now)


def scheduled() -> dict[str, Any]:
    """Scheduler handlers of prescriptions, by event kind."""
    return {EXPIRE: on_expire}


def usable(rx: Prescription, now: datetime) -> bool:
    """Active and within its validity (may be dispensed now)."""
    return rx.status == State.ACTIVE and (rx.valid_until is None or now < _aware(rx.valid_until))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- dispensing -------------------------------------------------------------------------------


def parse_quantities(values: list[str], items: tuple[Item, ...]) -> list[float]:
    """The quantities a pharmacy gives, one per item (blank = all prescribed). Raises
    :class:`RxError` for anything that is not a number between 0 and the prescribed amount
    (0 is allowed for one item, not for all)."""
    if len(values) != len(items):
        raise RxError("rx.dispense.quantities")
    out: list[float] = []
    for raw, item in zip(values, items, strict=True):
        text = (raw or "").strip().replace(",", ".")
        if not text:
            out.append(item.amount)
            continue
        if not re.fullmatch(r"\d{1,6}(?:\.\d{1,3})?", text):
            raise RxError("rx.dispense.quantity_bad", name=item.name)
        value = float(text)
        if value > item.amount:
            raise RxError("rx.dispense.quantity_over", name=item.name, max=_num(item.amount))
        out.append(value)
    if not any(out):
        raise RxError("rx.dispense.nothing")
    return out


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


@dataclass(frozen=True)
class Dispensing:
    """What a pharmacy gave: its name, the quantities, when, whether it was partial."""

    pharmacy: str
    quantities: tuple[float, ...]
    at: datetime
    partial: bool


async def dispense(
    uow: UnitOfWork,
    rx: Prescription,
    pharmacy: str,
    quantities: list[str],
    now: datetime,
    *,
    actor: str,
) -> Dispensing:
    """Mark an active prescription dispensed, once: one conditional UPDATE, so of two
    pharmacies at the same moment exactly one succeeds (the other gets ``rx.dispense.already``).
    Raises :class:`RxError` (a refusal is audited ``rx.dispense.refused`` with its reason)."""
    name = _clean(pharmacy or "")

    async def refuse(reason: str, msgid: str, **p: Any) -> None:
        await uow.audit.record(
            actor, "rx.dispense.refused", "prescription", rx.id, {"reason": reason}
        )
        raise RxError(msgid, **p)

    if not name:
        raise RxError("rx.dispense.pharmacy")
    if len(name) > PHARMACY_MAX:
        raise RxError("rx.error.too_long", n=PHARMACY_MAX)
    content = await content_of(uow, rx)
    given = parse_quantities(quantities, content.items)
    if rx.status == State.ACTIVE and rx.valid_until is not None and now >= _aware(rx.valid_until):
        await expire(uow, rx, now)
        await refuse("expired", "rx.dispense.expired")
    if rx.status != State.ACTIVE:
        await refuse(rx.status, f"rx.dispense.{_why_not(rx.status)}")
    if not await uow.prescriptions.mark_once(
        rx.id, status_from=State.ACTIVE.value, status_to=State.DISPENSED.value, at=now
    ):
        await uow.prescriptions.refresh(rx)
        await refuse("already", "rx.dispense.already")
    await uow.prescriptions.refresh(rx)
    partial = any(g < i.amount for g, i in zip(given, content.items, strict=True))
    await uow.prescriptions.set_dispensing(
        rx,
        {"pharmacy": name, "quantities": given, "at": now.isoformat(), "partial": partial},
    )
    await uow.audit.record(
        actor, "rx.dispense", "prescription", rx.id,
        {"code": rx.code, "partial": partial, "quantities": given},
    )  # fmt: skip
    await uow.events.cancel_for(EXPIRE, rx.id)
    return Dispensing(pharmacy=name, quantities=tuple(given), at=now, partial=partial)


def _why_not(status: str) -> str:
    return {
        "pending": "pending",
        "rejected": "rejected",
        "dispensed": "already",
        "expired": "expired",
        "revoked": "revoked",
    }.get(status, "already")


async def dispensing_of(uow: UnitOfWork, rx: Prescription) -> Dispensing | None:
    """The recorded dispensing, if any."""
    raw = await uow.prescriptions.dispensing(rx)
    if not raw:
        return None
    return Dispensing(
        pharmacy=str(raw["pharmacy"]),
        quantities=tuple(float(q) for q in raw["quantities"]),
        at=datetime.fromisoformat(raw["at"]),
        partial=bool(raw["partial"]),
    )


# --- verification -------------------------------------------------------------------------------

VERDICTS = ("valid", "pending", "rejected", "expired", "revoked", "dispensed", "forged", "unknown")


@dataclass(frozen=True)
class Verdict:
    """What a check of a prescription says. Forged and unknown carry nothing; the others carry
    what a pharmacy needs (the handler decides how much of the patient to show)."""

    status: str
    reason: str
    code: str | None = None
    content: RxContent | None = None
    rx_id: str | None = None
    dispensing: Dispensing | None = None

    @property
    def ok(self) -> bool:
        """True only for a prescription that may be dispensed now."""
        return self.status == "valid"


def _nothing(status: str, reason: str) -> Verdict:
    return Verdict(status=status, reason=reason)


async def _judge(
    uow: UnitOfWork, rx: Prescription, now: datetime, payload: dict[str, Any] | None
) -> Verdict:
    if rx.status == State.DRAFT or rx.content_enc is None or rx.content_hash is None:
        return _nothing("unknown", "not_found")
    try:
        content = await content_of(uow, rx)
    except CryptoError:
        return _nothing("unknown", "erased")
    digest = content_hash(content)
    if digest != rx.content_hash or content.code != rx.code:
        return _nothing("forged", "content")
    if payload is not None and (
        payload["h"] != digest
        or payload["exp"] != content.valid_until.isoformat()
        or payload["iss"] != content.issued_on.isoformat()
    ):
        return _nothing("forged", "content")
    status = {
        State.PENDING: "pending",
        State.REJECTED: "rejected",
        State.REVOKED: "revoked",
        State.DISPENSED: "dispensed",
        State.EXPIRED: "expired",
    }.get(State(rx.status), "valid")
    if status in ("valid", "pending") and rx.valid_until and now >= _aware(rx.valid_until):
        status = "expired"
    return Verdict(
        status=status,
        reason=status,
        code=rx.code,
        content=content,
        rx_id=rx.id,
        dispensing=await dispensing_of(uow, rx) if status == "dispensed" else None,
    )


async def _audited(uow: UnitOfWork, verdict: Verdict, actor: str | None, via: str) -> Verdict:
    if actor and verdict.rx_id:
        await uow.audit.record(
            actor, "rx.verify", "prescription", verdict.rx_id,
            {"status": verdict.status, "via": via},
        )  # fmt: skip
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
    """Check a prescription's token: our signature over a prescription payload, the record
    it names, its content hash and dates, then the status. With ``code`` (the page's
    ``/rx/<code>``) the token must be that code's."""
    payload = signer.verify(token, typ=TYP)
    if payload is None:
        return _nothing("forged", "signature")
    rx = await uow.prescriptions.get(payload["rid"])
    if rx is None:
        return _nothing("unknown", "not_found")
    if code is not None and slips.normalize_code(code) != rx.code:
        return _nothing("forged", "mismatch")
    return await _audited(uow, await _judge(uow, rx, now, payload), actor, "token")


async def verify_code(
    uow: UnitOfWork, code: str, now: datetime, *, actor: str | None = None
) -> Verdict:
    """Check a prescription by its typed code (mistakes forgiven as for slips)."""
    if slips.normalize_code(code) is None:
        return _nothing("unknown", "code")
    rx = await by_code(uow, code)
    if rx is None:
        return _nothing("unknown", "not_found")
    return await _audited(uow, await _judge(uow, rx, now, None), actor, "code")


async def verify_file(
    uow: UnitOfWork, data: bytes, signer: Signer, now: datetime, *, actor: str | None = None
) -> Verdict:
    """Check a prescription from its PDF (the QR's token, and the file's SHA-256 against the
    one sent) or a photo of its QR."""
    texts = slips._qr_texts(data)
    if texts is None:
        return _nothing("unknown", "not_a_prescription")
    if not texts:
        return _nothing("unknown", "no_qr")
    verdict = _nothing("forged", "signature")
    for text in texts:
        token = slips.token_from_text(text)
        if token is None:
            continue
        verdict = await verify_token(uow, token, signer, now, code=code_from_text(text))
        if verdict.status != "forged":
            break
    if (
        data[:5] == b"%PDF-"
        and verdict.rx_id is not None
        and (rx := await uow.prescriptions.get(verdict.rx_id)) is not None
        and rx.file_hash is not None
        and hashlib.sha256(data).hexdigest() != rx.file_hash
    ):
        return _nothing("forged", "file")
    return await _audited(uow, verdict, actor, "file")


# --- a medication plan from a prescription ---------------------------------------------------


async def seed_plan(
    uow: UnitOfWork, doctor: Doctor, rx: Prescription, index: int, now: datetime
) -> Any:
    """Open the doctor's medication-plan wizard for the prescription's ``index``-th medicine,
    with its name, strength and dose filled in; the doctor adds the times and sends it, and the
    patient confirms it as any plan (audited ``rx.plan``)."""
    from flows import medication

    content = await content_of(uow, rx)
    if not 0 <= index < len(content.items):
        raise RxError("rx.wiz.stale")
    case = await uow.consultations.get(rx.consultation_id or "")
    if case is None:
        raise RxError("rx.wiz.stale")
    try:
        plan = await medication.begin(uow, doctor, case, now)
    except medication.NotAllowed as no:
        raise RxError("rx.plan.wizard_open") from no
    item = content.items[index]
    await medication.prefill(
        uow, doctor, plan, {"name": f"{item.name} {item.strength}"[:200], "dose": item.dose[:200]}
    )
    rx.plan_id = plan.id
    await uow.audit.record(
        doctor_ref(doctor), "rx.plan", "prescription", rx.id, {"plan": plan.id, "item": index}
    )
    return plan


# --- records ----------------------------------------------------------------------------------


async def for_patient(uow: UnitOfWork, patient_id: str) -> list[Prescription]:
    """A patient's prescriptions past draft, newest first."""
    return await uow.prescriptions.for_patient(patient_id)


async def for_case(uow: UnitOfWork, case_id: str) -> list[Prescription]:
    """A case's prescriptions past draft, newest first."""
    return await uow.prescriptions.for_case(case_id)
