"""Patient onboarding: language -> what Careline is -> versioned consent -> profile.

The clinical state lives in ``patients.onboarding_state``; one module-level ``transitions``
machine (Enum states, no auto transitions) is attached to a light model per request.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from transitions import Machine

from flows import timing
from flows.errors import UserError
from flows.machines import fire
from storage.models import Patient, utcnow
from storage.uow import UnitOfWork

CONSENT_KIND = "health_data"
CONSENT_VERSION = "2026-11-01"
NAME_MAX = 100
SEX_VALUES = ("female", "male", "other", "undisclosed")


class Step(StrEnum):
    """Where a patient is in onboarding."""

    NEW = "new"
    LANGUAGE = "language"
    INTRO = "intro"
    CONSENT = "consent"
    DECLINED = "declined"
    NAME = "name"
    BIRTH_YEAR = "birth_year"
    SEX = "sex"
    PHONE = "phone"
    TIMEZONE = "timezone"
    DONE = "done"


TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": [Step.NEW, Step.DECLINED], "dest": Step.LANGUAGE},
    {"trigger": "choose_language", "source": Step.LANGUAGE, "dest": Step.INTRO},
    {"trigger": "acknowledge", "source": Step.INTRO, "dest": Step.CONSENT},
    {"trigger": "accept", "source": Step.CONSENT, "dest": Step.NAME},
    {"trigger": "decline", "source": Step.CONSENT, "dest": Step.DECLINED},
    {"trigger": "give_name", "source": Step.NAME, "dest": Step.BIRTH_YEAR},
    {"trigger": "give_birth_year", "source": Step.BIRTH_YEAR, "dest": Step.SEX},
    {"trigger": "give_sex", "source": Step.SEX, "dest": Step.PHONE},
    {"trigger": "give_phone", "source": Step.PHONE, "dest": Step.TIMEZONE},
    {"trigger": "give_timezone", "source": Step.TIMEZONE, "dest": Step.DONE},
]
TRIGGERS = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))


class _Model:
    state: Step

    def __init__(self) -> None:
        self.state = Step.NEW


_MACHINE = Machine(
    model=None,
    states=Step,
    transitions=TRANSITIONS,
    initial=Step.NEW,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)


class InvalidStep(Exception):
    """A trigger that is not allowed in the patient's current step (a stale button)."""


def next_step(current: Step, trigger: str) -> Step:
    """The step after ``trigger`` from ``current``; :class:`InvalidStep` if not allowed."""
    new = fire(_MACHINE, _Model(), current, trigger, TRIGGERS)
    if new is None:
        raise InvalidStep(f"{trigger} is not allowed in {current.value}")
    return Step(new)


class BadInput(UserError):
    """The patient's answer is not acceptable; ``msgid`` and ``params`` say why, politely."""


# -- pure validators ------------------------------------------------------------------------


_ZWJ = "\u200d"


def _emoji_part(ch: str) -> bool:
    """Format characters that build emoji: the zero-width joiner (👨‍👩‍👧) and tag characters
    (the flags of England or Scotland)."""
    return ch == _ZWJ or "\U000e0020" <= ch <= "\U000e007f"


def clean_text(text: str) -> str:
    """Drop control and formatting characters (incl. RTL marks), fold whitespace. The joiner
    and tags inside emoji sequences stay, so a family or a flag arrives whole."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch)[0] != "C" or _emoji_part(ch)
    )
    return re.sub(r"\s+", " ", kept).strip()


def parse_name(text: str) -> str:
    """A person's name: letters required, control characters removed, length capped."""
    name = clean_text(text)
    if not name or len(name) > NAME_MAX or not any(ch.isalpha() for ch in name):
        raise BadInput("error.name_invalid", max=NAME_MAX)
    if name.startswith("/"):
        raise BadInput("error.name_invalid", max=NAME_MAX)
    return name


def parse_birth_year(text: str, today: datetime | None = None) -> int:
    """A four-digit year, no older than 120 years and not in the future."""
    now = today or utcnow()
    low, high = now.year - 120, now.year
    digits = unicodedata.normalize("NFKC", clean_text(text))
    if not re.fullmatch(r"\d{4}", digits) or not low <= int(digits) <= high:
        raise BadInput("error.birth_year_invalid", min=low, max=high)
    return int(digits)


def normalize_phone(raw: str) -> str:
    """E.164-like: ASCII digits with a leading + (other scripts' digits are converted)."""
    digits = "".join(str(unicodedata.decimal(ch)) for ch in re.sub(r"\D", "", raw))
    if not 6 <= len(digits) <= 15:
        raise BadInput("error.phone_use_button")
    return "+" + digits


class ZoneChoice(BadInput):
    """A country with several time zones was typed: ``zones`` are the ones to offer."""

    def __init__(self, value: str, zones: tuple[str, ...]) -> None:
        super().__init__("error.timezone_country", value=value)
        self.zones = zones


def parse_timezone(text: str) -> str:
    """A time zone from what the patient typed or pressed: an IANA name, a city or country in
    any of our languages, or a UTC offset (:func:`flows.timing.parse_zone`, the same lookup
    as /meds). A country with several zones raises :class:`ZoneChoice`."""
    value = clean_text(text)
    if not value or len(value) > 64:
        raise BadInput("error.timezone_invalid")
    try:
        return timing.parse_zone(value)
    except timing.ZoneChoice as choice:
        raise ZoneChoice(str(choice.params["value"]), choice.zones) from None
    except timing.TimingError:
        raise BadInput("error.timezone_invalid") from None


SUGGESTED_ZONES = {
    "en": ("Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Singapore"),
    "zh_Hans": ("Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Singapore"),
    "ru": ("Europe/Moscow", "Asia/Yekaterinburg", "Asia/Novosibirsk", "Asia/Vladivostok"),
}


# -- use cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who is acting, as recorded in the audit log (never a name)."""

    patient_id: str

    @property
    def ref(self) -> str:
        """The audit actor string."""
        return f"patient:{self.patient_id}"


def step_of(patient: Patient | None) -> Step:
    """The onboarding step of a (possibly unknown) patient."""
    return Step(patient.onboarding_state) if patient else Step.NEW


async def start(uow: UnitOfWork, tg_user_id: int, locale: str) -> tuple[Patient, bool]:
    """/start: create the patient record if needed; returns (patient, restarted_flow)."""
    patient = await uow.patients.by_tg_user(tg_user_id)
    if patient is None:
        patient = await uow.patients.add(
            Patient(tg_user_id=tg_user_id, locale=locale, onboarding_state=Step.NEW.value)
        )
    current = step_of(patient)
    if current in (Step.NEW, Step.DECLINED):
        patient.onboarding_state = next_step(current, "start").value
        return patient, True
    return patient, False


async def _advance(patient: Patient, trigger: str) -> Step:
    step = next_step(step_of(patient), trigger)
    patient.onboarding_state = step.value
    return step


async def choose_language(uow: UnitOfWork, patient: Patient, locale: str) -> Step:
    """Set the language; during onboarding this moves on to the introduction."""
    patient.locale = locale
    if step_of(patient) is Step.LANGUAGE:
        return await _advance(patient, "choose_language")
    await uow.audit.record(
        Actor(patient.id).ref, "profile.update", "patient", patient.id, {"field": "language"}
    )
    return step_of(patient)


async def acknowledge_intro(uow: UnitOfWork, patient: Patient) -> Step:
    """The patient read what Careline is and is not."""
    return await _advance(patient, "acknowledge")


async def decide_consent(uow: UnitOfWork, patient: Patient, accepted: bool) -> Step:
    """Record the consent decision with its version; declining stores nothing else."""
    step = await _advance(patient, "accept" if accepted else "decline")
    decision = "granted" if accepted else "declined"
    await uow.consents.record(patient.id, CONSENT_KIND, CONSENT_VERSION, decision)
    patient.consent_version = CONSENT_VERSION if accepted else None
    await uow.audit.record(
        Actor(patient.id).ref,
        f"consent.{decision}",
        "patient",
        patient.id,
        {"kind": CONSENT_KIND, "version": CONSENT_VERSION},
    )
    return step


async def set_profile_field(
    uow: UnitOfWork, patient: Patient, field: str, raw: str, *, trigger: str | None
) -> Step:
    """Validate and store one profile answer (``trigger`` moves onboarding on)."""
    value: str
    if field == "name":
        value = parse_name(raw)
    elif field == "birth_year":
        value = str(parse_birth_year(raw))
    elif field == "sex":
        if raw not in SEX_VALUES:
            raise BadInput("error.use_buttons")
        value = raw
    elif field == "phone":
        value = normalize_phone(raw)
    elif field == "timezone":
        value = parse_timezone(raw)
    else:
        raise ValueError(f"unknown field {field!r}")
    if trigger is not None:
        next_step(step_of(patient), trigger)  # validate before writing anything
    if field == "timezone":
        patient.timezone = value
    else:
        await uow.patients.set_field(patient, field, value)
    await uow.audit.record(
        Actor(patient.id).ref, "profile.update", "patient", patient.id, {"field": field}
    )
    if trigger is not None:
        return await _advance(patient, trigger)
    return step_of(patient)


ONBOARDING_FIELDS = {
    Step.NAME: ("name", "give_name"),
    Step.BIRTH_YEAR: ("birth_year", "give_birth_year"),
    Step.SEX: ("sex", "give_sex"),
    Step.PHONE: ("phone", "give_phone"),
    Step.TIMEZONE: ("timezone", "give_timezone"),
}


async def answer_step(uow: UnitOfWork, patient: Patient, raw: str) -> Step:
    """The patient answered the current profile question."""
    step = step_of(patient)
    if step not in ONBOARDING_FIELDS:
        raise InvalidStep(f"no question is open in {step.value}")
    field, trigger = ONBOARDING_FIELDS[step]
    return await set_profile_field(uow, patient, field, raw, trigger=trigger)
