"""The clinic's referral directory: hospitals a doctor can refer a patient to, each with its
departments and the language its desk reads (no patient data here).

Admins manage it from the command line (``python bot.py hospitals ...``) and in the doctor
bot (``/hospitals``); the referral wizard offers the active hospitals as buttons. A disabled
hospital is no longer offered, but old referrals keep pointing at it. Every change is audited
with the admin as the actor.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from locales import LOCALES
from storage.models import Hospital, new_id, utcnow
from storage.uow import UnitOfWork

TABLE = "hospitals"
NAME_MAX = 200
CITY_MAX = 100
DEPARTMENT_MAX = 100
MAX_DEPARTMENTS = 40
PREFIX_MIN = 6
# What an admin may type for "no language" / "no city".
_NONE = {"-", "—", "none", "no", "无", "没有", "нет"}
_LANGS = {
    "en": "en",
    "english": "en",
    "英语": "en",
    "английский": "en",
    "zh": "zh_Hans",
    "zh_hans": "zh_Hans",
    "zh-hans": "zh_Hans",
    "zh-cn": "zh_Hans",
    "chinese": "zh_Hans",
    "中文": "zh_Hans",
    "汉语": "zh_Hans",
    "китайский": "zh_Hans",
    "ru": "ru",
    "russian": "ru",
    "俄语": "ru",
    "русский": "ru",
}


class BadInput(ValueError):
    """A value an admin typed is not usable; ``msgid``/``params`` say why (catalog text)."""

    def __init__(self, msgid: str, **params: object) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params = params


class NotFound(LookupError):
    """No hospital matches the id or prefix (or several do); the text says which."""


@dataclass(frozen=True)
class HospitalView:
    """A hospital as shown in lists and buttons."""

    id: str
    name: str
    city: str | None
    locale: str | None
    departments: tuple[str, ...]
    active: bool


def _clean(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def departments_of(hospital: Hospital) -> list[str]:
    """The hospital's department names (a broken JSON value reads as none)."""
    try:
        loaded = json.loads(hospital.departments or "[]")
    except ValueError:
        return []
    return [str(d) for d in loaded if isinstance(d, str)] if isinstance(loaded, list) else []


def view(hospital: Hospital) -> HospitalView:
    """The hospital's plain view."""
    return HospitalView(
        id=hospital.id,
        name=hospital.name,
        city=hospital.city,
        locale=hospital.locale,
        departments=tuple(departments_of(hospital)),
        active=bool(hospital.active),
    )


def clean_name(raw: str) -> str:
    """A hospital name: 1..200 characters of text."""
    name = _clean(raw)
    if not name:
        raise BadInput("ref.dir.empty")
    if len(name) > NAME_MAX:
        raise BadInput("ref.dir.too_long", max=NAME_MAX)
    return name


def clean_city(raw: str | None) -> str | None:
    """A city, or None for "-" / empty."""
    city = _clean(raw)
    if not city or city.lower() in _NONE:
        return None
    if len(city) > CITY_MAX:
        raise BadInput("ref.dir.too_long", max=CITY_MAX)
    return city


def parse_locale(raw: str | None) -> str | None:
    """The desk's language: en / zh_Hans / ru (also typed as names), None for "-"."""
    text = _clean(raw)
    if not text or text.lower() in _NONE:
        return None
    if text in LOCALES:
        return text
    found = _LANGS.get(text.lower())
    if found is None:
        raise BadInput("ref.dir.bad_locale")
    return found


def clean_department(raw: str) -> str:
    """One department name: 1..100 characters."""
    name = _clean(raw)
    if not name:
        raise BadInput("ref.dir.empty")
    if len(name) > DEPARTMENT_MAX:
        raise BadInput("ref.dir.too_long", max=DEPARTMENT_MAX)
    return name


def parse_departments(raw: str | None) -> list[str]:
    """Departments typed as a comma/semicolon/newline separated list ("-" for none);
    duplicates (ignoring case) are dropped."""
    text = (raw or "").strip()
    if not text or text.lower() in _NONE:
        return []
    out: list[str] = []
    for part in re.split(r"[,;\n，；、]", text):
        if not part.strip():
            continue
        name = clean_department(part)
        if name.casefold() not in {d.casefold() for d in out}:
            out.append(name)
    if len(out) > MAX_DEPARTMENTS:
        raise BadInput("ref.dir.too_many_departments", max=MAX_DEPARTMENTS)
    return out


async def hospitals(uow: UnitOfWork, *, include_disabled: bool = False) -> list[Hospital]:
    """The directory by name (active ones only unless asked)."""
    rows = await uow.referrals.hospitals(include_disabled=include_disabled)
    return sorted(rows, key=lambda h: (not h.active, h.name.casefold(), h.id))


async def get(uow: UnitOfWork, hospital_id: str) -> Hospital | None:
    """A hospital by its exact id (None for an empty or unknown id)."""
    return await uow.referrals.hospital(hospital_id) if hospital_id else None


async def get_active(uow: UnitOfWork, hospital_id: str) -> Hospital | None:
    """An active hospital by id; None when unknown or disabled."""
    found = await get(uow, hospital_id)
    return found if found is not None and found.active else None


async def find(uow: UnitOfWork, ref: str) -> Hospital:
    """A hospital by id or a unique id prefix of at least six characters."""
    ref = (ref or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,32}", ref):
        raise NotFound(f"not a hospital id (at least {PREFIX_MIN} hex characters)")
    rows = await uow.referrals.hospitals_by_prefix(ref, limit=2)
    if not rows:
        raise NotFound("no hospital with this id")
    if len(rows) > 1:
        raise NotFound("several hospitals match this prefix; give more characters")
    return rows[0]


async def add(
    uow: UnitOfWork,
    actor: str,
    name: str,
    *,
    city: str | None = None,
    locale: str | None = None,
    departments: str | list[str] | None = None,
) -> Hospital:
    """Add a hospital (name required; city, desk language and departments optional)."""
    clean = clean_name(name)
    deps = (
        parse_departments(departments)
        if isinstance(departments, str) or departments is None
        else parse_departments("\n".join(departments))
    )
    hospital = Hospital(
        id=new_id(),
        name=clean,
        city=clean_city(city),
        locale=parse_locale(locale),
        departments=json.dumps(deps, ensure_ascii=False),
        active=True,
        created_at=utcnow(),
    )
    await uow.referrals.add_hospital(hospital)
    await uow.audit.record(actor, "hospital.add", TABLE, hospital.id, {"departments": len(deps)})
    return hospital


async def add_department(uow: UnitOfWork, actor: str, hospital: Hospital, name: str) -> bool:
    """Add one department; False when it was already there (ignoring case)."""
    dept = clean_department(name)
    deps = departments_of(hospital)
    if dept.casefold() in {d.casefold() for d in deps}:
        return False
    if len(deps) >= MAX_DEPARTMENTS:
        raise BadInput("ref.dir.too_many_departments", max=MAX_DEPARTMENTS)
    deps.append(dept)
    hospital.departments = json.dumps(deps, ensure_ascii=False)
    await uow.audit.record(actor, "hospital.department.add", TABLE, hospital.id, {})
    return True


async def remove_department(uow: UnitOfWork, actor: str, hospital: Hospital, name: str) -> bool:
    """Remove one department (matched ignoring case); False when it was not there."""
    wanted = _clean(name).casefold()
    deps = departments_of(hospital)
    kept = [d for d in deps if d.casefold() != wanted]
    if len(kept) == len(deps):
        return False
    hospital.departments = json.dumps(kept, ensure_ascii=False)
    await uow.audit.record(actor, "hospital.department.remove", TABLE, hospital.id, {})
    return True


async def set_active(uow: UnitOfWork, actor: str, hospital: Hospital, active: bool) -> bool:
    """Disable (or enable again) a hospital; False when it already was so."""
    if bool(hospital.active) == active:
        return False
    hospital.active = active
    await uow.audit.record(
        actor, "hospital.enable" if active else "hospital.disable", TABLE, hospital.id, {}
    )
    return True
