"""Doctors' consultation schedules: weekly hours per mode, days off, bookable slots.

Pure: no database, no bot, no clock (every "now" is given). What a doctor types after
``/schedule`` is read by :func:`parse_rule` (day names in English, Russian and Chinese); a
mistake raises :class:`ScheduleError` whose ``code`` names the catalog message
``schedule.error.<code>`` (``locales/*/LC_MESSAGES/schedule.po``) and whose ``params`` fill it
(:func:`error_text` renders one with mode and day names in the doctor's language).

Slots (:func:`generate`) are laid on the doctor's local wall-clock grid in their IANA zone (from
the start of the hours, restarting at the end of each break) and last ``slot_minutes`` of real
time. Around DST changes:

* a grid time that does not exist (clocks spring forward) gives no slot;
* an ambiguous grid time (clocks fall back) gives one slot, the first time (``fold=0``); the
  hours themselves start and end the first time the clock shows them;
* a slot that would overlap the previous one in real time is left out, so no two slots of one
  doctor ever overlap.

FHIR R4 ``Schedule`` / ``Slot`` dicts (:func:`fhir_schedule`, :func:`fhir_slot`) follow
hl7.org/fhir/R4/slot.html: ``schedule``, ``status``, ``start`` and ``end`` are required.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from locales import Html, Translator

MODES = ("text", "phone", "video")  # consultation modes
MIN_SLOT = 5  # minutes
MAX_SLOT = 120
MAX_DAYS = 366  # the longest stretch generate() lays out at once
JSON_VERSION = 1
VALUE_MAX = 40  # how much of the doctor's text an error message repeats
DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
SLOT_STATUSES = ("busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error")
MODE_SYSTEM = "urn:careline:consultation-mode"
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
# How each mode reaches the patient, in HL7 v3 terms, so other systems read it without our URN.
PARTICIPATION: dict[str, tuple[str, str]] = {
    "text": ("ONLINEWRIT", "online written"),
    "phone": ("PHONE", "telephone"),
    "video": ("VIDEOCONF", "videoconferencing"),
}
MODE_DISPLAY = {"text": "Text consultation", "phone": "Phone consultation", "video": "Video call"}
# Every ScheduleError code; each has a message schedule.error.<code> in every locale.
ERROR_CODES = (
    "empty",
    "unknown_mode",
    "bad_days",
    "bad_hours",
    "overlap_hours",
    "no_slot",
    "bad_slot",
    "break_outside",
    "overlap",
    "bad_date",
    "past_day",
)
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class ScheduleError(ValueError):
    """Input that cannot be a schedule; ``code`` names ``schedule.error.<code>``."""

    def __init__(self, code: str, params: Mapping[str, str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.params: dict[str, str] = dict(params or {})

    @property
    def msgid(self) -> str:
        """The catalog id of the message that explains this error."""
        return f"schedule.error.{self.code}"


def _shown(text: str) -> str:
    """The doctor's text, shortened for an error message."""
    text = " ".join(text.split())
    return text if len(text) <= VALUE_MAX else text[: VALUE_MAX - 1] + "…"


def _hhmm(t: time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


# --- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Interval:
    """Local wall-clock time from ``start`` to ``end`` on one day (whole minutes, start < end)."""

    start: time
    end: time

    def __post_init__(self) -> None:
        for t in (self.start, self.end):
            if t.second or t.microsecond or t.tzinfo is not None:
                raise ScheduleError("bad_hours", {"value": str(t)})
        if self.end <= self.start:
            raise ScheduleError("bad_hours", {"value": str(self)})

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"

    @property
    def minutes(self) -> int:
        """Its length on the wall clock."""
        return _minutes(self.end) - _minutes(self.start)

    def overlaps(self, other: Interval) -> bool:
        """True when the two share time (touching ends do not)."""
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        """True when ``other`` lies inside this interval (ends may touch)."""
        return self.start <= other.start and other.end <= self.end


@dataclass(frozen=True)
class WeeklyRule:
    """One mode's hours on some weekdays (0 = Monday), cut into ``slot_minutes`` slots; no
    slot crosses a break. Hours and breaks are kept sorted."""

    mode: str
    weekdays: frozenset[int]
    hours: tuple[Interval, ...]
    slot_minutes: int
    breaks: tuple[Interval, ...] = ()

    def __post_init__(self) -> None:
        """Sorted hours and breaks; ScheduleError for a rule that cannot be laid out."""
        if self.mode not in MODES:
            raise ScheduleError("unknown_mode", {"value": _shown(str(self.mode))})
        days = frozenset(self.weekdays)
        if not days or any(d not in range(7) for d in days):
            raise ScheduleError("bad_days", {"value": _shown(str(sorted(days)))})
        hours = tuple(sorted(self.hours))
        breaks = tuple(sorted(self.breaks))
        if not hours:
            raise ScheduleError("bad_hours", {"value": ""})
        for a, b in pairwise(hours):
            if a.overlaps(b):
                raise ScheduleError("overlap_hours", {"first": str(a), "second": str(b)})
        # bool is an int too; a stored True must not become a 1-minute slot.
        if (
            not isinstance(self.slot_minutes, int)
            or isinstance(self.slot_minutes, bool)
            or not MIN_SLOT <= self.slot_minutes <= MAX_SLOT
            or any(self.slot_minutes > iv.minutes for iv in hours)
        ):
            raise ScheduleError("bad_slot", _slot_params(str(self.slot_minutes)))
        for br in breaks:
            if not any(iv.contains(br) for iv in hours):
                raise ScheduleError("break_outside", {"value": str(br)})
        object.__setattr__(self, "weekdays", days)
        object.__setattr__(self, "hours", hours)
        object.__setattr__(self, "breaks", breaks)

    def clash(self, other: WeeklyRule) -> int | None:
        """The first weekday on which the two rules' hours overlap, or None."""
        for day in sorted(self.weekdays & other.weekdays):
            if any(a.overlaps(b) for a in self.hours for b in other.hours):
                return day
        return None


def _slot_params(value: str) -> dict[str, str]:
    return {"value": _shown(value), "min": str(MIN_SLOT), "max": str(MAX_SLOT)}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"not an IANA time zone: {name!r}") from exc


def _rule_key(rule: WeeklyRule) -> tuple[int, time, int]:
    # Week order reads naturally in describe() and keeps the stored JSON canonical.
    return (min(rule.weekdays), rule.hours[0].start, MODES.index(rule.mode))


@dataclass(frozen=True)
class Availability:
    """A doctor's weekly rules in their IANA zone ``tz``, and the local dates they are off.
    Rules never overlap (a doctor takes one consultation at a time); rules are kept in week
    order."""

    tz: str
    rules: tuple[WeeklyRule, ...] = ()
    days_off: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        _zone(self.tz)
        rules = tuple(sorted(self.rules, key=_rule_key))
        for i, a in enumerate(rules):
            for b in rules[i + 1 :]:
                day = a.clash(b)
                if day is not None:
                    raise ScheduleError("overlap", {"mode": a.mode, "day": DAY_KEYS[day]})
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "days_off", frozenset(self.days_off))


@dataclass(frozen=True)
class SlotSpec:
    """One bookable slot: its mode and its aware UTC start and end."""

    mode: str
    start: datetime
    end: datetime


# --- reading what a doctor types ----------------------------------------------------------------

_MODE_WORDS: dict[str, str] = {
    **dict.fromkeys(("text", "chat", "текст", "чат", "переписка", "文字", "图文"), "text"),
    **dict.fromkeys(("phone", "call", "телефон", "звонок", "电话"), "phone"),
    **dict.fromkeys(("video", "видео", "视频"), "video"),
}
_DAY_WORDS: dict[str, int] = {}
for _n, _words in enumerate(
    (
        "mon monday пн понедельник",
        "tue tues tuesday вт вторник",
        "wed weds wednesday ср среда",
        "thu thur thurs thursday чт четверг",
        "fri friday пт пятница",
        "sat saturday сб суббота",
        "sun sunday вс воскресенье",
    )
):
    for _w in _words.split():
        _DAY_WORDS[_w] = _n
_ZH_NUMS = "一二三四五六"
for _n, _c in enumerate(_ZH_NUMS):
    for _p in ("周", "星期", "礼拜"):
        _DAY_WORDS[_p + _c] = _n
for _p in ("周", "星期", "礼拜"):
    _DAY_WORDS[_p + "日"] = _DAY_WORDS[_p + "天"] = 6
_DAY_SETS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("daily", "everyday", "ежедневно", "每天", "每日"), tuple(range(7))),
    **dict.fromkeys(("weekdays", "будни", "工作日"), tuple(range(5))),
    **dict.fromkeys(("weekends", "weekend", "выходные", "周末"), (5, 6)),
}
_DAY_NAMES = "|".join(
    re.escape(w) for w in sorted([*_DAY_WORDS, *_DAY_SETS], key=len, reverse=True)
)
# One token of a day list: a day (or "weekdays"), a range mark, or a separator.
_DAY_TOKEN = re.compile(
    rf"""\s*(?:
        (?P<day>{_DAY_NAMES})(?![a-zа-яё])
        | (?P<dash>-|~|至|到|to(?![a-z])|по(?![а-яё]))
        | (?P<sep>[,;、/&+]|and(?![a-z])|и(?![а-яё])|和)
    )""",
    re.VERBOSE,
)
_KEYWORD = re.compile(
    r"(?<![a-zа-яё])(?P<kw>slots?|слоты?|时段|breaks?|перерывы?|休息|午休)(?![a-zа-яё])"
)
_RANGE_MARK = re.compile(r"\s*(?:[-~至到]|to(?![a-z])|до(?![а-яё]))\s*")
_TIME = r"(\d{1,2})(?:[:.h](\d{2}))?"
_INTERVAL = re.compile(rf"{_TIME}-{_TIME}")
_SLOT = re.compile(r"(\d{1,4})\s*(?:min|mins|minutes?|m|мин|минут[аы]?|分钟|分)?\.?")


def _normalise(text: str) -> str:
    """NFKC (full-width digits, colons and commas), lower case, dashes as '-', one space."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[‐‑‒–—―−]", "-", text)
    return re.sub(r"\s+", " ", text).strip()


def _parse_mode(word: str) -> str:
    mode = _MODE_WORDS.get(word)
    if mode is None:
        raise ScheduleError("unknown_mode", {"value": _shown(word)})
    return mode


def _parse_days(text: str) -> frozenset[int]:
    """Weekdays from "mon-fri", "mon,wed,fri", "fri-mon" (wraps), "пн-пт", "周一至周五"."""
    bad = ScheduleError("bad_days", {"value": _shown(text) or "—"})
    items: list[tuple[int, ...] | str] = []  # day sets and "-" marks, separators dropped
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _DAY_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise bad
        pos = m.end()
        if m.group("day"):
            word = m.group("day")
            items.append(_DAY_SETS.get(word) or (_DAY_WORDS[word],))
        elif m.group("dash"):
            items.append("-")
    days: set[int] = set()
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, str):
            raise bad  # a dash with no day before it
        if i + 1 < len(items) and items[i + 1] == "-":
            end = items[i + 2] if i + 2 < len(items) else None
            if len(item) != 1 or not isinstance(end, tuple) or len(end) != 1:
                raise bad
            first, last = item[0], end[0]
            days.update((first + k) % 7 for k in range((last - first) % 7 + 1))
            i += 3
        else:
            days.update(item)
            i += 1
    if not days:
        raise bad
    return frozenset(days)


def _parse_time(hour: str, minute: str | None, raw: str) -> time:
    h, m = int(hour), int(minute or 0)
    if h > 23 or m > 59:
        raise ScheduleError("bad_hours", {"value": _shown(raw)})
    return time(h, m)


def _parse_intervals(text: str) -> tuple[Interval, ...]:
    """Intervals from "09:00-12:00, 13:00-17:00" (also "9-12", "09:00 до 12:00")."""
    norm = _RANGE_MARK.sub("-", text)
    parts = [p for p in re.split(r"[\s,;、]+", norm) if p]
    if not parts:
        raise ScheduleError("bad_hours", {"value": _shown(text) or "—"})
    out: list[Interval] = []
    for part in parts:
        m = _INTERVAL.fullmatch(part)
        if not m:
            raise ScheduleError("bad_hours", {"value": _shown(part)})
        start = _parse_time(m.group(1), m.group(2), part)
        end = _parse_time(m.group(3), m.group(4), part)
        if end <= start:
            raise ScheduleError("bad_hours", {"value": _shown(part)})
        out.append(Interval(start, end))
    return tuple(out)


def parse_rule(text: str) -> WeeklyRule:
    """The rule a doctor types after ``/schedule``::

        phone mon-fri 09:00-12:00,13:00-17:00 slot 15 break 10:30-10:45
        video sat 10:00-13:00 slot 20
        text пн,ср,пт 08:00-20:00 slot 60
        video 周一至周五 09:00-12:00 slot 30

    Raises ScheduleError: empty, unknown_mode, bad_days, bad_hours, overlap_hours, no_slot,
    bad_slot, break_outside.
    """
    norm = _normalise(text)
    norm = re.sub(r"^/schedule(?:@\w+)?\s*", "", norm)
    if not norm:
        raise ScheduleError("empty")
    # [head, keyword, body, keyword, body, ...]: the head is "mode days hours".
    pieces = _KEYWORD.split(norm)
    head, sections = pieces[0].strip(), pieces[1:]
    word, _, rest = head.partition(" ")
    mode = _parse_mode(word)
    digit = re.search(r"\d", rest)
    if not rest.strip():
        raise ScheduleError("bad_days", {"value": "—"})
    days = _parse_days(rest[: digit.start()] if digit else rest)
    if not digit:
        raise ScheduleError("bad_hours", {"value": "—"})
    hours = _parse_intervals(rest[digit.start() :])
    slot_texts: list[str] = []
    break_texts: list[str] = []
    for kw, body in zip(sections[0::2], sections[1::2], strict=True):
        is_slot = kw.startswith(("slot", "слот", "时段"))
        (slot_texts if is_slot else break_texts).append(body.strip())
    breaks = tuple(b for t in break_texts for b in _parse_intervals(t))
    if not slot_texts:
        raise ScheduleError("no_slot")
    slot_m = _SLOT.fullmatch(slot_texts[0].replace("=", "").strip())
    if len(slot_texts) > 1 or not slot_m:
        raise ScheduleError("bad_slot", _slot_params(" ".join(slot_texts) or "—"))
    return WeeklyRule(mode, days, hours, int(slot_m.group(1)), breaks)


_ISO_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_DMY = re.compile(r"(\d{1,2})\.(\d{1,2})(?:\.(\d{4}))?")
_MD = re.compile(r"(\d{1,2})-(\d{1,2})")
_ZH_DATE = re.compile(r"(?:(\d{4})年)?(\d{1,2})月(\d{1,2})[日号]?")


def parse_day_off(text: str, today: date) -> date:
    """A day off: "2026-12-24", "24.12.2026", "24.12" / "12-24" / "12月24日" (the next such
    date from ``today``, today included). Raises ScheduleError: empty, bad_date, past_day."""
    norm = _normalise(text).rstrip(".")
    if not norm:
        raise ScheduleError("empty")
    bad = ScheduleError("bad_date", {"value": _shown(text)})
    year: int | None
    if m := _ISO_DATE.fullmatch(norm):
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    elif m := _DMY.fullmatch(norm):
        day, month = int(m.group(1)), int(m.group(2))
        year = int(m.group(3)) if m.group(3) else None
    elif m := _MD.fullmatch(norm):
        month, day, year = int(m.group(1)), int(m.group(2)), None
    elif m := _ZH_DATE.fullmatch(norm):
        year = int(m.group(1)) if m.group(1) else None
        month, day = int(m.group(2)), int(m.group(3))
    else:
        raise bad
    if year is not None:
        try:
            found = date(year, month, day)
        except ValueError:
            raise bad from None
        if found < today:
            raise ScheduleError("past_day", {"value": found.isoformat()})
        return found
    # No year: the next time this date comes round (29 February may be years away).
    for y in range(today.year, today.year + 9):
        try:
            found = date(y, month, day)
        except ValueError:
            continue
        if found >= today:
            return found
    raise bad


# --- changing an availability -------------------------------------------------------------------


def add_rule(av: Availability, rule: WeeklyRule) -> Availability:
    """``av`` with ``rule`` added; ScheduleError("overlap", {mode, day}) names the existing
    rule's mode and the first weekday on which the hours overlap (any mode: a doctor takes
    one consultation at a time)."""
    for old in av.rules:
        day = old.clash(rule)
        if day is not None:
            raise ScheduleError("overlap", {"mode": old.mode, "day": DAY_KEYS[day]})
    return Availability(av.tz, (*av.rules, rule), av.days_off)


def remove_rules(av: Availability, mode: str) -> Availability:
    """``av`` without the rules of ``mode`` (unchanged when it has none)."""
    if mode not in MODES:
        raise ScheduleError("unknown_mode", {"value": _shown(mode)})
    return Availability(av.tz, tuple(r for r in av.rules if r.mode != mode), av.days_off)


def add_day_off(av: Availability, day: date) -> Availability:
    """``av`` with the local date ``day`` off."""
    return Availability(av.tz, av.rules, av.days_off | {day})


def remove_day_off(av: Availability, day: date) -> Availability:
    """``av`` working again on ``day`` (as its rules say)."""
    return Availability(av.tz, av.rules, av.days_off - {day})


# --- slots --------------------------------------------------------------------------------------


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    """True unless ``wall`` (naive local) falls in a spring-forward gap."""
    back = wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)
    return back.replace(tzinfo=None) == wall


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC moment the clock first shows ``wall``; a time in a gap maps to the end of the
    gap (the first existing minute after it), so hours never stretch across the gap."""
    probe = wall
    while not _exists(probe, zone):
        probe += timedelta(minutes=1)  # gaps are whole minutes (an hour, rarely a day)
    return probe.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _segments(hours: Interval, breaks: Iterable[Interval]) -> list[tuple[int, int]]:
    """The working stretches of one block of hours, in wall-clock minutes, breaks cut out."""
    out: list[tuple[int, int]] = []
    pos = _minutes(hours.start)
    for br in sorted(breaks):
        if br.overlaps(hours):
            if _minutes(br.start) > pos:
                out.append((pos, _minutes(br.start)))
            pos = max(pos, _minutes(br.end))
    if pos < _minutes(hours.end):
        out.append((pos, _minutes(hours.end)))
    return out


def _day_slots(av: Availability, day: date, zone: ZoneInfo) -> list[SlotSpec]:
    """Every slot of one local date, in real-time order, none overlapping."""
    found: list[SlotSpec] = []
    for rule in av.rules:
        if day.weekday() not in rule.weekdays:
            continue
        length = timedelta(minutes=rule.slot_minutes)
        for hours in rule.hours:
            for first, last in _segments(hours, rule.breaks):
                lo = _instant(datetime.combine(day, _at(first)), zone)
                hi = _instant(datetime.combine(day, _at(last)), zone)
                # The grid is the doctor's wall clock, restarting after each break (10:45,
                # 11:05, ... after a 10:30-10:45 break), whatever the UTC offset.
                for m in range(first, last - rule.slot_minutes + 1, rule.slot_minutes):
                    wall = datetime.combine(day, _at(m))
                    if not _exists(wall, zone):
                        continue
                    start = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
                    if lo <= start and start + length <= hi:
                        found.append(SlotSpec(rule.mode, start, start + length))
    found.sort(key=lambda s: (s.start, s.end))
    kept: list[SlotSpec] = []
    for slot in found:
        # After a gap a grid slot can start before the previous one ends: drop it.
        if not kept or slot.start >= kept[-1].end:
            kept.append(slot)
    return kept


def _at(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


def generate(av: Availability, start: date, days: int, now: datetime) -> list[SlotSpec]:
    """Slots on the local dates ``start`` .. ``start + days - 1`` in ``av.tz``, days off
    skipped, only those starting after ``now`` (aware); sorted by start."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not 0 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 0..{MAX_DAYS}, not {days}")
    zone = _zone(av.tz)
    out: list[SlotSpec] = []
    for k in range(days):
        day = start + timedelta(days=k)
        if day in av.days_off:
            continue
        out.extend(s for s in _day_slots(av, day, zone) if s.start > now)
    out.sort(key=lambda s: s.start)
    return out


# --- storage ------------------------------------------------------------------------------------


def _intervals_json(intervals: Iterable[Interval]) -> list[list[str]]:
    return [[_hhmm(iv.start), _hhmm(iv.end)] for iv in intervals]


def _intervals_from(raw: Any) -> tuple[Interval, ...]:
    return tuple(Interval(time.fromisoformat(a), time.fromisoformat(b)) for a, b in raw)


def availability_to_json(av: Availability) -> dict[str, Any]:
    """A JSON-ready dict (``version`` 1): rules in week order, weekdays and days off sorted,
    times as "HH:MM", dates as ISO."""
    return {
        "version": JSON_VERSION,
        "tz": av.tz,
        "rules": [
            {
                "mode": r.mode,
                "weekdays": sorted(r.weekdays),
                "hours": _intervals_json(r.hours),
                "slot_minutes": r.slot_minutes,
                "breaks": _intervals_json(r.breaks),
            }
            for r in av.rules
        ],
        "days_off": sorted(d.isoformat() for d in av.days_off),
    }


def availability_from_json(d: Mapping[str, Any]) -> Availability:
    """The availability stored by :func:`availability_to_json`; ValueError when it is not one
    (an unknown version included)."""
    try:
        if d.get("version") != JSON_VERSION:
            raise ValueError(f"unknown version {d.get('version')!r}")
        rules = tuple(
            WeeklyRule(
                mode=str(r["mode"]),
                weekdays=frozenset(int(x) for x in r["weekdays"]),
                hours=_intervals_from(r["hours"]),
                slot_minutes=r["slot_minutes"],
                breaks=_intervals_from(r.get("breaks") or ()),
            )
            for r in d["rules"]
        )
        days_off = frozenset(date.fromisoformat(x) for x in d.get("days_off") or ())
        return Availability(str(d["tz"]), rules, days_off)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ValueError(f"not an availability: {exc}") from exc


# --- FHIR ---------------------------------------------------------------------------------------


def _check_id(value: str, what: str) -> None:
    if not _FHIR_ID.fullmatch(value):
        raise ValueError(f"{what} is not a FHIR id: {value!r}")


def _service_type(mode: str) -> dict[str, Any]:
    code, display = PARTICIPATION[mode]
    return {
        "coding": [
            {"system": MODE_SYSTEM, "code": mode, "display": MODE_DISPLAY[mode]},
            {"system": PARTICIPATION_SYSTEM, "code": code, "display": display},
        ],
        "text": MODE_DISPLAY[mode],
    }


def fhir_schedule(
    av: Availability,
    schedule_id: str,
    practitioner_ref: str,
    horizon: tuple[datetime, datetime] | None = None,
) -> dict[str, Any]:
    """A FHIR R4 ``Schedule``: the practitioner, one serviceType per mode offered, the rules in
    English as ``comment`` and, when given, the aware ``horizon`` as ``planningHorizon``."""
    _check_id(schedule_id, "schedule_id")
    if not practitioner_ref.strip():
        raise ValueError("practitioner_ref is empty")
    modes = [m for m in MODES if any(r.mode == m for r in av.rules)]
    resource: dict[str, Any] = {
        "resourceType": "Schedule",
        "id": schedule_id,
        "active": bool(av.rules),
        "actor": [{"reference": practitioner_ref}],
    }
    if modes:
        resource["serviceType"] = [_service_type(m) for m in modes]
    if horizon is not None:
        begin, finish = horizon
        if begin.tzinfo is None or finish.tzinfo is None or finish < begin:
            raise ValueError("horizon must be aware, start before end")
        resource["planningHorizon"] = {
            "start": begin.isoformat(timespec="seconds"),
            "end": finish.isoformat(timespec="seconds"),
        }
    # Stored records are English whatever the doctor's language; plain text, no HTML.
    resource["comment"] = f"Time zone {av.tz}. " + " ".join(
        line.rstrip(".") + "." for line in describe(av, Translator("en").plain)
    )
    return resource


def fhir_slot(spec: SlotSpec, slot_id: str, schedule_id: str, status: str) -> dict[str, Any]:
    """A FHIR R4 ``Slot`` of ``Schedule/<schedule_id>``; start and end as ISO with offset."""
    _check_id(slot_id, "slot_id")
    _check_id(schedule_id, "schedule_id")
    if status not in SLOT_STATUSES:
        raise ValueError(f"slot status must be one of {SLOT_STATUSES}, not {status!r}")
    if spec.start.tzinfo is None or spec.end.tzinfo is None or spec.end <= spec.start:
        raise ValueError("slot times must be aware, start before end")
    return {
        "resourceType": "Slot",
        "id": slot_id,
        "serviceType": [_service_type(spec.mode)],
        "schedule": {"reference": f"Schedule/{schedule_id}"},
        "status": status,
        "start": spec.start.isoformat(timespec="seconds"),
        "end": spec.end.isoformat(timespec="seconds"),
    }


# --- what a doctor reads ------------------------------------------------------------------------


def _days_text(days: frozenset[int], tr: Callable[..., str]) -> str:
    """ "Mon–Fri", "Mon, Wed, Fri", "Fri–Mon", "Every day" in the doctor's language."""
    if len(days) == 7:
        return tr("schedule.describe.every_day")
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and runs[-1][-1] + 1 == d:
            runs[-1].append(d)
        else:
            runs.append([d])
    # A run over the weekend reads as one, first ("Fri–Mon", "Sun, Mon"), not "Mon, Fri–Sun".
    if len(runs) > 1 and runs[0][0] == 0 and runs[-1][-1] == 6:
        runs = [runs[-1] + runs[0], *runs[1:-1]]
    sep = tr("schedule.describe.list_sep")
    parts: list[str] = []
    for run in runs:
        names = [tr(f"schedule.day.{DAY_KEYS[d]}") for d in run]
        if len(run) >= 3:
            parts.append(tr("schedule.describe.day_range", first=names[0], last=names[-1]))
        else:
            parts.extend(names)
    return sep.join(parts)


def _intervals_text(intervals: Iterable[Interval], tr: Callable[..., str]) -> str:
    sep = tr("schedule.describe.list_sep")
    return sep.join(f"{_hhmm(iv.start)}–{_hhmm(iv.end)}" for iv in intervals)


def describe(av: Availability, tr: Callable[..., str]) -> list[str]:
    """The lines a doctor reads: one per rule ("Phone · Mon–Fri · 09:00–12:00, 13:00–17:00 ·
    15 min slots · break 10:30–10:45"), then the days off; one line saying there are no hours
    yet when there are no rules."""
    lines: list[str] = []
    for rule in av.rules:
        # Html: the pieces are already rendered messages, so the translator must not escape
        # them again.
        params: dict[str, Any] = {
            "mode": Html(tr(f"schedule.mode.{rule.mode}")),
            "days": Html(_days_text(rule.weekdays, tr)),
            "hours": Html(_intervals_text(rule.hours, tr)),
            "slot": str(rule.slot_minutes),
        }
        if rule.breaks:
            params["breaks"] = Html(_intervals_text(rule.breaks, tr))
            lines.append(tr("schedule.describe.rule_breaks", **params))
        else:
            lines.append(tr("schedule.describe.rule", **params))
    if not av.rules:
        lines.append(tr("schedule.describe.empty"))
    if av.days_off:
        dates = tr("schedule.describe.list_sep").join(d.isoformat() for d in sorted(av.days_off))
        lines.append(tr("schedule.describe.days_off", dates=dates))
    return lines


def error_text(err: ScheduleError, tr: Callable[..., str]) -> str:
    """The message for ``err`` with its mode and day named in the doctor's language."""
    params: dict[str, Any] = dict(err.params)
    if params.get("mode") in MODES:
        params["mode"] = Html(tr(f"schedule.mode.{params['mode']}"))
    if params.get("day") in DAY_KEYS:
        params["day"] = Html(tr(f"schedule.day.{params['day']}"))
    return tr(err.msgid, **params)
