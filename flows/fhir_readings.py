"""Readings from home devices and health apps, posted as FHIR R4 JSON: :func:`parse` turns one
``Observation``, or a ``Bundle`` of them, into normalised :class:`DeviceReading` objects and a
:class:`Rejected` with a stable reason for every entry it refuses. A body it cannot use at all
raises :class:`PayloadError`; nothing else escapes, whatever shape the JSON has.

The readings are vital signs known by their LOINC code (the FHIR vital-signs value set,
hl7.org/fhir/R4B/valueset-observation-vitalsignresult.html, plus the glucose and SpO₂ codes
HealthKitOnFHIR sends). Each is converted to one unit per kind, checked against a physiological
range and stamped in UTC. An entry is checked in this order and refused for the first problem:
status, code, identifier, value (``no_value``, ``unit``, ``range``), time (``no_time``,
``future``, ``too_old``); a field of the wrong JSON type is ``bad_json`` where it is met.

Pure parsing: no database and no bot. The caller binds the readings to the patient who posted
them, drops repeats by ``source_id`` and caps the body size."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NoReturn, TypeVar

KINDS = ("bp", "pulse", "glucose", "weight", "spo2", "temperature")
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MAX_ENTRIES = 1000
BUNDLE_TYPES = ("transaction", "batch", "collection")
STATUSES = ("final", "amended", "corrected")
# A device clock a little ahead of ours is not a reading from the future.
FUTURE_SLACK = timedelta(minutes=5)
MAX_AGE = timedelta(days=366)

SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"
# LOINC code -> kind. 2339-0, 41653-7 and 2345-7 are mass/volume, 15074-8 and 14749-6
# moles/volume, but the unit sent decides the conversion, not the code.
CODES: dict[str, str] = {
    "85354-9": "bp",
    "55284-4": "bp",
    "8867-4": "pulse",
    "2339-0": "glucose",
    "41653-7": "glucose",
    "2345-7": "glucose",
    "15074-8": "glucose",
    "14749-6": "glucose",
    "29463-7": "weight",
    "2708-6": "spo2",
    "59408-5": "spo2",
    "8310-5": "temperature",
}
_NAMES = {
    "bp": "blood pressure",
    "pulse": "heart rate",
    "glucose": "glucose",
    "weight": "body weight",
    "spo2": "SpO2",
    "temperature": "body temperature",
}

_Convert = Callable[[Decimal], Decimal]


def _same(value: Decimal) -> Decimal:
    return value


def _pounds(value: Decimal) -> Decimal:
    return value * Decimal("0.45359237")


def _fahrenheit(value: Decimal) -> Decimal:
    return (value - 32) * 5 / 9


# kind -> unit as spelt in UCUM (or the common spelling devices use) -> conversion to the
# kind's one unit. Units are matched without regard to case (UCUM has a case-insensitive form).
UNITS: dict[str, dict[str, _Convert]] = {
    "bp": {"mm[Hg]": _same, "mmHg": _same},
    "pulse": {"/min": _same, "{beats}/min": _same, "bpm": _same},
    "glucose": {"mmol/L": _same, "mg/dL": lambda v: v / 18},
    "weight": {
        "kg": _same,
        "[lb_av]": _pounds,
        "lb": _pounds,
        "lbs": _pounds,
        "g": lambda v: v / 1000,
    },
    "spo2": {"%": _same},
    "temperature": {"Cel": _same, "°C": _same, "[degF]": _fahrenheit, "°F": _fahrenheit},
}
_UNIT_KEYS = {kind: {unit.casefold(): unit for unit in units} for kind, units in UNITS.items()}
UNIT_TEXT = {
    "bp": "mmHg",
    "pulse": "/min",
    "glucose": "mmol/L",
    "weight": "kg",
    "spo2": "%",
    "temperature": "°C",
}
# kind -> (low, high), inclusive, in the kind's unit, checked before rounding.
RANGES: dict[str, tuple[Decimal, Decimal]] = {
    "systolic": (Decimal(50), Decimal(300)),
    "diastolic": (Decimal(20), Decimal(200)),
    "pulse": (Decimal(20), Decimal(300)),
    "glucose": (Decimal("0.5"), Decimal(50)),
    "weight": (Decimal(1), Decimal(400)),
    "spo2": (Decimal(50), Decimal(100)),
    "temperature": (Decimal(30), Decimal(45)),
}
_WHOLE = frozenset({"bp", "pulse", "spo2"})


class PayloadError(ValueError):
    """The whole body is unusable; ``reason`` is a stable code like :attr:`Rejected.reason`
    (bad_json, not_observation, bundle_type, too_many)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DeviceReading:
    """One accepted reading, in the kind's unit (see :data:`UNIT_TEXT`)."""

    kind: str
    value: str
    numbers: tuple[float, ...]
    taken_at: datetime
    source_id: str
    index: int


@dataclass(frozen=True)
class Rejected:
    """One refused entry of the batch, with a stable reason and a short English detail."""

    index: int
    reason: str
    detail: str


@dataclass(frozen=True)
class Parsed:
    """What a body held: the readings accepted and the entries refused, each by batch index."""

    readings: list[DeviceReading]
    rejected: list[Rejected]


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_T = TypeVar("_T")
_TYPE_NAMES: dict[type, str] = {str: "a string", dict: "an object", list: "an array"}


def _refuse(reason: str, detail: str) -> NoReturn:
    raise _Refused(reason, detail)


def _field(obj: Mapping[Any, Any], key: str, kind: type[_T], where: str) -> _T | None:
    """``obj[key]`` when present and of the JSON type expected; None when absent or null."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind):
        _refuse("bad_json", f"{where}{key} must be {_TYPE_NAMES.get(kind, kind.__name__)}")
    return value


def _shown(text: str) -> str:
    """A received string echoed back in a detail, cut short."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _accepted_codes() -> str:
    by_kind: dict[str, list[str]] = {}
    for code, kind in CODES.items():
        by_kind.setdefault(kind, []).append(code)
    return "; ".join(f"{_NAMES[kind]} {', '.join(codes)}" for kind, codes in by_kind.items())


def _loinc_codes(concept: Mapping[Any, Any], where: str) -> list[str]:
    """The LOINC codes of a CodeableConcept, in order."""
    codes = []
    for coding in _field(concept, "coding", list, where) or []:
        if not isinstance(coding, dict):
            _refuse("bad_json", f"{where}coding entries must be objects")
        system = _field(coding, "system", str, f"{where}coding.")
        code = _field(coding, "code", str, f"{where}coding.")
        if system == LOINC and code:
            codes.append(code)
    return codes


def _kind(resource: Mapping[Any, Any]) -> str:
    concept = _field(resource, "code", dict, "")
    codes = _loinc_codes(concept, "code.") if concept is not None else []
    for code in codes:
        if code in CODES:
            return CODES[code]
    if SYSTOLIC in codes or DIASTOLIC in codes:
        _refuse(
            "no_value",
            "a lone systolic or diastolic reading; send the panel 85354-9 with both components",
        )
    got = f"LOINC {_shown(codes[0])} is not accepted" if codes else "no LOINC code"
    _refuse("unknown_code", f"{got}; accepted LOINC codes: {_accepted_codes()}")


def _source_id(resource: Mapping[Any, Any]) -> str:
    for identifier in _field(resource, "identifier", list, "") or []:
        if not isinstance(identifier, dict):
            _refuse("bad_json", "identifier entries must be objects")
        value = _field(identifier, "value", str, "identifier.")
        if value:
            system = _field(identifier, "system", str, "identifier.") or ""
            return f"{system}|{value}"
    resource_id = _field(resource, "id", str, "")
    return f"id:{resource_id}" if resource_id else ""


def _number(quantity: Mapping[Any, Any], where: str) -> Decimal:
    value = quantity.get("value")
    if value is None:
        _refuse("no_value", f"{where}valueQuantity has no value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        _refuse("bad_json", f"{where}valueQuantity.value must be a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            _refuse("bad_json", f"{where}valueQuantity.value must be a finite number")
        # str() keeps the digits the device wrote (7.85 stays 7.85 and rounds half up).
        return Decimal(str(value))
    return Decimal(value)


def _unit(quantity: Mapping[Any, Any], kind: str, where: str) -> _Convert:
    """The conversion for the quantity's unit: its UCUM code decides when it has one (a code
    from another system, such as ISO/IEEE 11073, leaves the decision to the unit text)."""
    system = _field(quantity, "system", str, f"{where}valueQuantity.")
    code = _field(quantity, "code", str, f"{where}valueQuantity.")
    unit = _field(quantity, "unit", str, f"{where}valueQuantity.")
    sent = code if code and system in (None, UCUM) else unit
    accepted = ", ".join(UNITS[kind])
    if not sent:
        _refuse("unit", f"{where}no unit given; accepted for {_NAMES[kind]}: {accepted}")
    key = _UNIT_KEYS[kind].get(sent.strip().casefold())
    if key is None:
        _refuse(
            "unit",
            f"{where}unit {_shown(sent)} is not accepted for {_NAMES[kind]}; accepted: {accepted}",
        )
    return UNITS[kind][key]


def _measure(holder: Mapping[Any, Any], kind: str, limits: str, where: str = "") -> Decimal:
    """The holder's valueQuantity in the kind's unit, within the range of ``limits``."""
    quantity = _field(holder, "valueQuantity", dict, where)
    if quantity is None:
        _refuse("no_value", f"{where}no valueQuantity")
    number = _number(quantity, where)
    value = _unit(quantity, kind, where)(number)
    low, high = RANGES[limits]
    if not low <= value <= high:
        shown = f"{value:.6g}" if abs(value) < Decimal("1e9") else "a huge value"
        _refuse(
            "range",
            f"{where}{shown} {UNIT_TEXT[kind]} is outside the accepted range "
            f"{low} to {high} {UNIT_TEXT[kind]}",
        )
    return value


def _round(value: Decimal, kind: str) -> Decimal:
    step = Decimal(1) if kind in _WHOLE else Decimal("0.1")
    return value.quantize(step, rounding=ROUND_HALF_UP)


def _blood_pressure(resource: Mapping[Any, Any]) -> tuple[Decimal, Decimal]:
    found: dict[str, Mapping[Any, Any]] = {}
    for component in _field(resource, "component", list, "") or []:
        if not isinstance(component, dict):
            _refuse("bad_json", "component entries must be objects")
        concept = _field(component, "code", dict, "component.")
        codes = _loinc_codes(concept, "component.code.") if concept is not None else []
        for code, name in ((SYSTOLIC, "systolic"), (DIASTOLIC, "diastolic")):
            if code in codes:
                if name in found:
                    _refuse("bad_json", f"more than one {name} component")
                found[name] = component
    missing = [name for name in ("systolic", "diastolic") if name not in found]
    if missing:
        _refuse(
            "no_value",
            f"blood pressure needs both components ({SYSTOLIC} systolic, {DIASTOLIC} "
            f"diastolic); missing: {', '.join(missing)}",
        )
    systolic = _round(_measure(found["systolic"], "bp", "systolic", "systolic "), "bp")
    diastolic = _round(_measure(found["diastolic"], "bp", "diastolic", "diastolic "), "bp")
    if systolic <= diastolic:
        _refuse("range", f"systolic {systolic} is not above diastolic {diastolic}")
    return systolic, diastolic


def _time(resource: Mapping[Any, Any], now: datetime) -> datetime:
    name, text = "effectiveDateTime", _field(resource, "effectiveDateTime", str, "")
    if text is None:
        name, text = "effectiveInstant", _field(resource, "effectiveInstant", str, "")
    if text is None:
        period = _field(resource, "effectivePeriod", dict, "")
        if period is not None:
            name, text = "effectivePeriod.start", _field(period, "start", str, "effectivePeriod.")
    if text is None:
        name, text = "issued", _field(resource, "issued", str, "")
    if text is None:
        _refuse("no_time", "no effectiveDateTime, effectivePeriod.start or issued")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        _refuse("no_time", f"{name} is not an ISO 8601 date and time")
    if at.tzinfo is None:
        _refuse("no_time", f"{name} has no time zone; add 'Z' or an offset such as +02:00")
    try:
        taken_at = at.astimezone(UTC)
    except OverflowError:
        _refuse("no_time", f"{name} is out of range")
    if taken_at > now + FUTURE_SLACK:
        _refuse("future", f"{name} is more than 5 minutes in the future")
    if taken_at < now - MAX_AGE:
        _refuse("too_old", f"{name} is more than 366 days ago")
    return taken_at


def _reading(resource: Mapping[Any, Any], index: int, now: datetime) -> DeviceReading:
    status = _field(resource, "status", str, "")
    if status not in STATUSES:
        got = f"status {_shown(status)}" if status else "no status"
        _refuse("status", f"{got}; accepted: {', '.join(STATUSES)}")
    kind = _kind(resource)
    source_id = _source_id(resource)
    numbers: tuple[float, ...]
    if kind == "bp":
        systolic, diastolic = _blood_pressure(resource)
        value, numbers = f"{systolic}/{diastolic}", (float(systolic), float(diastolic))
    else:
        rounded = _round(_measure(resource, kind, kind), kind)
        value, numbers = str(rounded), (float(rounded),)
    taken_at = _time(resource, now)
    return DeviceReading(kind, value, numbers, taken_at, source_id, index)


_NOT_AN_OBJECT = object()


def _no_constant(name: str) -> NoReturn:
    """NaN and Infinity are not JSON, whatever Python's json module reads."""
    raise ValueError(name)


def _decode(body: bytes | str | dict[str, Any]) -> dict[Any, Any]:
    if isinstance(body, dict):
        return body
    if not isinstance(body, bytes | bytearray | str):
        raise PayloadError("bad_json", "the body must be a JSON object")
    try:
        loaded = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8, NaN/Infinity and numbers too long to read.
        raise PayloadError("bad_json", "the body is not valid JSON") from None
    if not isinstance(loaded, dict):
        raise PayloadError("bad_json", "the body must be a JSON object")
    return loaded


def _resources(top: Mapping[Any, Any]) -> list[Any]:
    """The resources to read, one per batch index (an Observation alone is index 0); an entry
    that is not an object stands as :data:`_NOT_AN_OBJECT`."""
    resource_type = top.get("resourceType")
    if resource_type == "Observation":
        return [top]
    if resource_type != "Bundle":
        raise PayloadError("not_observation", "the body must be an Observation or a Bundle")
    bundle_type = top.get("type")
    if bundle_type not in BUNDLE_TYPES:
        raise PayloadError("bundle_type", f"Bundle.type must be one of {', '.join(BUNDLE_TYPES)}")
    entries = top.get("entry")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise PayloadError("bad_json", "Bundle.entry must be an array")
    if len(entries) > MAX_ENTRIES:
        raise PayloadError("too_many", f"more than {MAX_ENTRIES} entries in one Bundle")
    return [
        entry.get("resource") if isinstance(entry, dict) else _NOT_AN_OBJECT for entry in entries
    ]


def parse(body: bytes | str | dict[str, Any], now: datetime) -> Parsed:
    """The readings in a posted Observation or Bundle, and the entries refused, with reasons.

    Raises :class:`PayloadError` (and nothing else) when the body as a whole is unusable. A
    naive ``now`` is taken as UTC."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    readings: list[DeviceReading] = []
    rejected: list[Rejected] = []
    for index, resource in enumerate(_resources(_decode(body))):
        try:
            if resource is _NOT_AN_OBJECT:
                _refuse("bad_json", "the entry must be an object")
            if resource is None:
                _refuse("not_observation", "the entry has no resource")
            if not isinstance(resource, dict):
                _refuse("bad_json", "the entry's resource must be an object")
            if resource.get("resourceType") != "Observation":
                _refuse("not_observation", "only Observation resources are read")
            readings.append(_reading(resource, index, now))
        except _Refused as refused:
            rejected.append(Rejected(index, refused.reason, refused.detail))
    return Parsed(readings, rejected)
