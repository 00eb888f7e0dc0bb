"""The clinic's consultation services: what it sells, for whom, for how long and at what price.

A service is one consultation mode (text with a response window, a phone call or a video call
of a set length) offered by the whole clinic, by one department or by one doctor, with a price
in a currency's smallest unit (0 = free) or in Telegram Stars (``XTR``). For a doctor and a
mode the most specific active service applies: the doctor's own, else one of their
departments' (the cheapest when several), else the clinic's.

Admins manage services from the command line (``python bot.py services ...``) and in the
doctor bot (``/services``). Every change is audited with the admin as the actor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency

from flows.consultation import departments_of
from flows.questionnaire import load as load_questionnaire
from storage.models import ConsultationService, Doctor, new_id, utcnow
from storage.uow import UnitOfWork

TABLE = "consultation_services"
MODES = ("text", "phone", "video")
STARS = "XTR"
PREFIX_MIN = 6
#: A call's length in minutes (the clinic's usual 10/15/20 sit inside it).
MINUTES_MIN, MINUTES_MAX, MINUTES_DEFAULT = 5, 120, 15
#: A text consultation's response window in hours.
HOURS_MIN, HOURS_MAX, HOURS_DEFAULT = 1, 168, 24
#: Stars per invoice (Telegram's own upper bound for one Stars invoice is higher; a clinic
#: asking more than this for one consultation has most likely mistyped).
STARS_MAX = 10_000
#: The largest price in a currency's main unit (e.g. 100,000.00 EUR): a guard against typos.
MAIN_UNITS_MAX = 100_000

# Currencies Telegram Payments accepts that clinics here are likely to use, with the number
# of decimals of their smallest unit (core.telegram.org/bots/payments#supported-currencies).
EXPONENTS: dict[str, int] = {
    "XTR": 0,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CNY": 2,
    "HKD": 2,
    "SGD": 2,
    "RUB": 2,
    "KZT": 2,
    "UZS": 2,
    "UAH": 2,
    "TRY": 2,
    "INR": 2,
    "AED": 2,
    "CAD": 2,
    "AUD": 2,
    "BRL": 2,
    "JPY": 0,
    "KRW": 0,
}

_MODE_WORDS = {
    "text": "text",
    "chat": "text",
    "文字": "text",
    "图文": "text",
    "текст": "text",
    "переписка": "text",
    "phone": "phone",
    "call": "phone",
    "电话": "phone",
    "телефон": "phone",
    "звонок": "phone",
    "video": "video",
    "视频": "video",
    "видео": "video",
}
_FREE = {"free", "0", "免费", "бесплатно"}
_STAR_WORDS = {"xtr", "star", "stars", "⭐", "звёзд", "звезд", "звёзды", "звезды", "星"}


class BadInput(ValueError):
    """A value an admin typed is not usable; ``msgid``/``params`` say why (catalog text)."""

    def __init__(self, msgid: str, **params: object) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params = params


class NotFound(LookupError):
    """No service matches the id or prefix (or several do); the text says which."""


@dataclass(frozen=True)
class Price:
    """An amount in the currency's smallest unit (``XTR``: whole Stars)."""

    minor: int
    currency: str

    @property
    def free(self) -> bool:
        """True for a free consultation."""
        return self.minor == 0


@dataclass(frozen=True)
class ServiceView:
    """A service as shown in lists, buttons and invoices."""

    id: str
    mode: str
    department: str | None
    doctor_id: str | None
    minutes: int | None
    response_hours: int | None
    price: Price
    active: bool


def view(service: ConsultationService) -> ServiceView:
    """The service's plain view."""
    return ServiceView(
        id=service.id,
        mode=service.mode,
        department=service.department,
        doctor_id=service.doctor_id,
        minutes=service.minutes,
        response_hours=service.response_hours,
        price=Price(service.price_minor, service.currency),
        active=bool(service.active),
    )


# --- parsing what an admin types ------------------------------------------------------------


def parse_mode(raw: str) -> str:
    """text | phone | video (also typed in Chinese or Russian)."""
    mode = _MODE_WORDS.get((raw or "").strip().casefold())
    if mode is None:
        raise BadInput("svc.bad_mode")
    return mode


def parse_price(raw: str) -> Price:
    """ "free", "150 XTR" / "150 stars" / "⭐150", "300 CNY", "25.50 EUR", "EUR 25,50"."""
    text = re.sub(r"\s+", " ", (raw or "").strip())
    if text.casefold() in _FREE:
        return Price(0, STARS)
    m = re.fullmatch(r"(?:([^\d\s.,]+)\s?)?(\d+(?:[.,]\d+)?)(?:\s?([^\d\s.,]+))?", text)
    if m is None or (m.group(1) and m.group(3)) or not (m.group(1) or m.group(3)):
        raise BadInput("svc.bad_price")
    word = (m.group(1) or m.group(3) or "").casefold()
    currency = STARS if word in _STAR_WORDS else word.upper()
    if currency not in EXPONENTS:
        raise BadInput("svc.bad_currency", currency=word.upper()[:8])
    try:
        amount = Decimal(m.group(2).replace(",", "."))
    except InvalidOperation as exc:  # pragma: no cover - the pattern only lets numbers through
        raise BadInput("svc.bad_price") from exc
    exponent = EXPONENTS[currency]
    minor = amount * (10**exponent)
    if minor != minor.to_integral_value():
        raise BadInput("svc.too_many_decimals", currency=currency, decimals=exponent)
    value = int(minor)
    if value == 0:
        return Price(0, currency)
    if currency == STARS and value > STARS_MAX:
        raise BadInput("svc.too_expensive", max=f"{STARS_MAX} XTR")
    if currency != STARS and amount > MAIN_UNITS_MAX:
        raise BadInput("svc.too_expensive", max=f"{MAIN_UNITS_MAX} {currency}")
    return Price(value, currency)


def parse_department(raw: str) -> str:
    """A department id of the intake questionnaire (``cardiology``), matched ignoring case."""
    wanted = (raw or "").strip().casefold()
    for dept in load_questionnaire().departments:
        if dept.casefold() == wanted:
            return dept
    raise BadInput("svc.bad_department", departments=", ".join(load_questionnaire().departments))


def check_minutes(mode: str, minutes: int | None) -> int | None:
    """A call's length (phone and video only; default 15)."""
    if mode == "text":
        if minutes is not None:
            raise BadInput("svc.minutes_for_calls")
        return None
    value = MINUTES_DEFAULT if minutes is None else minutes
    if not MINUTES_MIN <= value <= MINUTES_MAX:
        raise BadInput("svc.bad_minutes", min=MINUTES_MIN, max=MINUTES_MAX)
    return value


def check_hours(mode: str, hours: int | None) -> int | None:
    """A text consultation's response window (text only; default 24 h)."""
    if mode != "text":
        if hours is not None:
            raise BadInput("svc.hours_for_text")
        return None
    value = HOURS_DEFAULT if hours is None else hours
    if not HOURS_MIN <= value <= HOURS_MAX:
        raise BadInput("svc.bad_hours", min=HOURS_MIN, max=HOURS_MAX)
    return value


@dataclass(frozen=True)
class AddRequest:
    """What ``/services add ...`` asked for, parsed."""

    mode: str
    department: str | None = None
    doctor: str | None = None
    minutes: int | None = None
    response_hours: int | None = None
    price: str = "free"


# Longest words first, and a word must end there: "15 min" is 15 minutes, not "15 m" + "in".
_MINUTES = re.compile(
    r"(?<!\S)(\d{1,4})\s?(?:minutes|minute|mins|min|m|минут|мин|分钟|分)(?![^\s\d])",
    re.IGNORECASE,
)
_HOURS = re.compile(
    r"(?<!\S)(\d{1,4})\s?(?:hours|hour|hrs|hr|h|часов|часа|час|ч|小时)(?![^\s\d])",
    re.IGNORECASE,
)


def parse_add(text: str) -> AddRequest:
    """``<mode> [15 min | 24 h] [price] [department] [@doctor-id]``, in any order after the
    mode, e.g. ``phone 15 min 300 CNY cardiology`` or ``text 24h free`` or ``video 20 min
    150 XTR @3fa9c2``."""
    rest = re.sub(r"\s+", " ", (text or "").strip())
    if not rest:
        raise BadInput("svc.add_usage")
    head, _, rest = rest.partition(" ")
    mode = parse_mode(head)
    minutes = hours = None
    if m := _MINUTES.search(rest):
        minutes = int(m.group(1))
        rest = (rest[: m.start()] + rest[m.end() :]).strip()
    if m := _HOURS.search(rest):
        hours = int(m.group(1))
        rest = (rest[: m.start()] + rest[m.end() :]).strip()
    doctor = None
    if m := re.search(r"@([0-9a-fA-F]{6,32})", rest):
        doctor = m.group(1).lower()
        rest = (rest[: m.start()] + rest[m.end() :]).strip()
    price = "free"
    for pattern in (
        r"(?<!\S)(?:free|бесплатно|免费)(?!\S)",
        r"(?<!\S)\d+(?:[.,]\d+)?\s?(?:[A-Za-z]{3}|⭐|stars?|звёзд\w*|звезд\w*|星)(?!\S)",
        r"(?<!\S)(?:[A-Za-z]{3}|⭐)\s?\d+(?:[.,]\d+)?(?!\S)",
    ):
        if m := re.search(pattern, rest, re.IGNORECASE):
            price = m.group(0)
            rest = (rest[: m.start()] + rest[m.end() :]).strip()
            break
    if re.search(r"\d", rest):
        # a number left over is a price without its currency ("300": CNY? RUB? Stars?)
        raise BadInput("svc.bad_price")
    department = rest.strip() or None
    return AddRequest(mode, department, doctor, minutes, hours, price)


# --- use cases ------------------------------------------------------------------------------


async def services(uow: UnitOfWork, *, include_disabled: bool = False) -> list[ServiceView]:
    """The clinic's services: by mode, then clinic-wide, department, doctor."""
    rows = [view(s) for s in await uow.services.all(include_disabled=include_disabled)]
    return sorted(
        rows,
        key=lambda v: (
            not v.active,
            MODES.index(v.mode) if v.mode in MODES else len(MODES),
            v.doctor_id is not None,
            v.department or "",
            v.id,
        ),
    )


async def find(uow: UnitOfWork, ref: str) -> ConsultationService:
    """A service by id or a unique id prefix of at least six characters."""
    ref = (ref or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,32}", ref):
        raise NotFound(f"not a service id (at least {PREFIX_MIN} hex characters)")
    rows = await uow.services.by_prefix(ref, limit=2)
    if not rows:
        raise NotFound("no service with this id")
    if len(rows) > 1:
        raise NotFound("several services match this prefix; give more characters")
    return rows[0]


async def add(
    uow: UnitOfWork,
    actor: str,
    mode: str,
    *,
    department: str | None = None,
    doctor: str | None = None,
    minutes: int | None = None,
    response_hours: int | None = None,
    price: str = "free",
) -> ConsultationService:
    """Add a service: for the clinic, one department or one doctor (not both)."""
    clean_mode = parse_mode(mode)
    if department and doctor:
        raise BadInput("svc.department_or_doctor")
    dept = parse_department(department) if department else None
    doctor_id = None
    if doctor:
        found = await uow.doctors.by_id_prefix(doctor.strip().lower(), limit=2)
        if len(found) != 1:
            raise BadInput("svc.bad_doctor")
        doctor_id = found[0].id
    amount = parse_price(price)
    service = ConsultationService(
        id=new_id(),
        mode=clean_mode,
        department=dept,
        doctor_id=doctor_id,
        minutes=check_minutes(clean_mode, minutes),
        response_hours=check_hours(clean_mode, response_hours),
        price_minor=amount.minor,
        currency=amount.currency,
        active=True,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    await uow.services.add(service)
    await uow.audit.record(
        actor,
        "service.add",
        TABLE,
        service.id,
        {"mode": clean_mode, "price": amount.minor, "currency": amount.currency},
    )
    return service


async def set_price(uow: UnitOfWork, actor: str, service: ConsultationService, raw: str) -> Price:
    """Change a service's price; bookings already made keep the price they were sold at."""
    amount = parse_price(raw)
    service.price_minor = amount.minor
    service.currency = amount.currency
    service.updated_at = utcnow()
    await uow.audit.record(
        actor,
        "service.price",
        TABLE,
        service.id,
        {"price": amount.minor, "currency": amount.currency},
    )
    return amount


async def set_active(
    uow: UnitOfWork, actor: str, service: ConsultationService, active: bool
) -> bool:
    """Disable (or enable again) a service; False when it already was so."""
    if bool(service.active) == active:
        return False
    service.active = active
    service.updated_at = utcnow()
    await uow.audit.record(
        actor, "service.enable" if active else "service.disable", TABLE, service.id, {}
    )
    return True


def pick(
    candidates: Iterable[ServiceView], doctor_id: str, departments: list[str]
) -> ServiceView | None:
    """The service that applies to a doctor among one mode's active services: the doctor's
    own, else the cheapest of their departments', else the clinic's."""
    own: list[ServiceView] = []
    dept: list[ServiceView] = []
    clinic: list[ServiceView] = []
    for s in candidates:
        if not s.active:
            continue
        if s.doctor_id is not None:
            if s.doctor_id == doctor_id:
                own.append(s)
        elif s.department is not None:
            if s.department in departments:
                dept.append(s)
        else:
            clinic.append(s)
    for group in (own, dept, clinic):
        if group:
            return min(group, key=lambda v: (v.price.currency, v.price.minor, v.id))
    return None


async def offer(uow: UnitOfWork, doctor: Doctor, mode: str) -> ServiceView | None:
    """The service a doctor offers in one mode, or None when the clinic sells none."""
    rows = [view(s) for s in await uow.services.for_mode(mode)]
    return pick(rows, doctor.id, departments_of(doctor))


# --- what people read ------------------------------------------------------------------------


def format_price(price: Price, locale: str, tr: Callable[..., str]) -> str:
    """ "free", "⭐ 150" or the amount in the locale's currency format ("¥300.00")."""
    if price.free:
        return tr("svc.free")
    if price.currency == STARS:
        return f"⭐ {price.minor}"
    amount = Decimal(price.minor) / (10 ** EXPONENTS.get(price.currency, 2))
    babel_locale = {"zh_Hans": "zh_Hans_CN", "ru": "ru_RU"}.get(locale, "en_US")
    return format_currency(amount, price.currency, locale=babel_locale)


def describe(service: ServiceView, locale: str, tr: Callable[..., str]) -> str:
    """One line: mode, length or window, who offers it, price (and "disabled")."""
    if service.mode == "text":
        length = tr("svc.window", hours=service.response_hours or HOURS_DEFAULT)
    else:
        length = tr("svc.length", minutes=service.minutes or MINUTES_DEFAULT)
    if service.doctor_id:
        scope = tr("svc.scope.doctor", id=service.doctor_id[:8])
    elif service.department:
        scope = tr(f"dept.{service.department}")
    else:
        scope = tr("svc.scope.clinic")
    line = tr(
        "svc.line",
        mode=tr(f"svc.mode.{service.mode}"),
        length=length,
        scope=scope,
        price=format_price(service.price, locale, tr),
    )
    if not service.active:
        line += " " + tr("svc.disabled")
    return line
