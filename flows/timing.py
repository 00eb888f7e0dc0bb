"""Pure time handling for plans and reminders: parse what people type, compute occurrences.

No database, no bot, no clock: every function takes the moment it works from. Parsers accept
English, Chinese and Russian (full-width digits and punctuation too) and raise
:class:`TimingError` with a catalog id (``locales/*/LC_MESSAGES/timing.po``) and its named
parameters, so a handler can answer in the person's language and keep the conversation where
it was.

Occurrences are computed in the patient's IANA zone. Rules (see :func:`next_occurrence`):

* a :class:`Schedule` lists local wall times (or one anchor time and ``every_hours``), the ISO
  weekdays it runs on and its first and last local date (inclusive);
* the **label** of an occurrence is the intended local wall time ``"YYYY-MM-DD HH:MM"`` from
  the schedule (before ``shift_minutes``), so occurrence keys stay stable when the patient
  moves a plan's reminders or moves to another time zone;
* ``shift_minutes`` moves the moment a reminder fires, not which day it belongs to;
* a local time that does not exist (clocks spring forward) fires once, at the wall time
  zoneinfo gives with ``fold=0`` normalisation: the time is read with the offset in force
  before the gap, so 02:30 on a 02:00→03:00 night fires at 03:30 (the same instant as "02:30
  by the old clock");
* an ambiguous local time (clocks fall back) fires once, the first time (``fold=0``).
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flows.zones import find as find_zone
from storage.models import utcnow

MAX_PER_DAY = 12  # reminders a day a plan may have
MIN_EVERY_HOURS = 2
MAX_EVERY_HOURS = 72
# Intervals that keep a regular pattern: divisors of a day, and whole or half days beyond it.
ALLOWED_EVERY_HOURS = (2, 3, 4, 6, 8, 12, 24, 36, 48, 72)
DEFAULT_ANCHOR = "08:00"
MAX_YEARS = 5  # the longest plan period
PAST_GRACE = timedelta(days=1)  # a period may start at most this far in the past
ON_TIME = timedelta(minutes=2)
# How late a reminder of each kind may still be sent after downtime ("late"); later than this
# it is "missed" (recorded, not sent). Kinds not listed use DEFAULT_CATCH_UP.
CATCH_UP: dict[str, timedelta] = {
    "dose": timedelta(hours=2),
    "dose.again": timedelta(hours=1),
    "dose.snooze": timedelta(hours=1),
    "dose.caregiver": timedelta(hours=2),
    "dose.doctor": timedelta(hours=12),
    "checkin": timedelta(hours=12),
    "checkin.recall": timedelta(hours=24),
    "followup": timedelta(hours=24),
}
DEFAULT_CATCH_UP = timedelta(hours=1)
VALUE_MAX = 40  # how much of the person's text an error message repeats
ALL_DAYS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
WEEKDAYS: tuple[int, ...] = (1, 2, 3, 4, 5)
WEEKEND: tuple[int, ...] = (6, 7)

CatchUp = Literal["on_time", "late", "missed"]


class TimingError(ValueError):
    """Input that cannot be a time, day list, period or zone; ``msgid`` says why."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params: dict[str, Any] = params


def _shown(text: str) -> str:
    """The person's text, shortened for an error message."""
    text = " ".join(text.split())
    return text if len(text) <= VALUE_MAX else text[: VALUE_MAX - 1] + "…"


# --- the schedule -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """When a plan runs: local ``times`` ("HH:MM", sorted) or one anchor time with
    ``every_hours``; ISO weekdays ``days``; local dates ``start``..``end`` (inclusive, ``None``
    for ongoing). Stored as JSON in ``med_plans.schedule`` / ``followup_plans``."""

    times: tuple[str, ...]
    every_hours: int | None = None
    days: tuple[int, ...] = ALL_DAYS
    start: date = field(default_factory=lambda: utcnow().date())
    end: date | None = None

    def __post_init__(self) -> None:
        """Times sorted and unique, days sorted and unique; ValueError for an impossible
        schedule (a handler never shows this: the parsers refuse such input first). An end
        before the start is allowed and simply has no occurrences."""
        times = tuple(sorted({_check_hhmm(t) for t in self.times}))
        days = tuple(sorted(set(self.days)))
        if not times:
            raise ValueError("a schedule needs at least one time")
        if not days or any(d not in ALL_DAYS for d in days):
            raise ValueError(f"bad ISO weekdays {self.days!r}")
        if self.every_hours is not None:
            if not MIN_EVERY_HOURS <= self.every_hours <= MAX_EVERY_HOURS:
                raise ValueError(f"every_hours out of range: {self.every_hours}")
            if len(times) != 1:
                raise ValueError("an interval schedule has exactly one anchor time")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "days", days)

    def to_json(self) -> str:
        """Compact JSON with ISO dates."""
        return json.dumps(
            {
                "times": list(self.times),
                "every_hours": self.every_hours,
                "days": list(self.days),
                "start": self.start.isoformat(),
                "end": self.end.isoformat() if self.end else None,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        """The schedule stored by :meth:`to_json`; ValueError when it is not one."""
        try:
            raw = json.loads(text)
            times = tuple(_check_hhmm(str(t)) for t in raw["times"])
            every = raw.get("every_hours")
            days = tuple(sorted({int(d) for d in raw.get("days") or ALL_DAYS}))
            start = date.fromisoformat(raw["start"])
            end = date.fromisoformat(raw["end"]) if raw.get("end") else None
            return cls(
                times=times,
                every_hours=int(every) if every is not None else None,
                days=days,
                start=start,
                end=end,
            )
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a schedule: {exc}") from exc

    def per_day(self) -> int:
        """How many reminders a full day has (at most)."""
        if self.every_hours:
            return max(1, -(-24 // self.every_hours))
        return len(self.times)


def _check_hhmm(text: str) -> str:
    m = re.fullmatch(r"(\d{2}):(\d{2})", text)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"not a HH:MM time: {text!r}")
    return text


def _hm(text: str) -> tuple[int, int]:
    return int(text[:2]), int(text[3:5])


# --- normalising what people type ---------------------------------------------------------------

_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5}
_ZH_DIGITS |= {"六": 6, "七": 7, "八": 8, "九": 9}
_ZH_NUM = re.compile(r"[零〇一二两兩三四五六七八九十]+")


def _zh_number(run: str) -> int | None:
    """十二 -> 12, 二十三 -> 23, 八 -> 8, 十 -> 10, 三十 -> 30; None for anything else."""
    if "十" not in run:
        if len(run) == 1:
            return _ZH_DIGITS[run]
        return int("".join(str(_ZH_DIGITS[c]) for c in run))  # 二〇二六 -> 2026
    tens, _, ones = run.partition("十")
    if "十" in ones or len(tens) > 1 or len(ones) > 1:
        return None
    return (_ZH_DIGITS[tens] if tens else 1) * 10 + (_ZH_DIGITS[ones] if ones else 0)


def _normalise(text: str) -> str:
    """NFKC (full-width digits and colons), lower case, Chinese numerals as digits, one
    space between words."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(
        " " if ch.isspace() or unicodedata.category(ch)[0] == "C" else ch for ch in text
    )

    def number(m: re.Match[str]) -> str:
        value = _zh_number(m.group(0))
        return m.group(0) if value is None else str(value)

    # 一刻 / 三刻 (quarter hours) and 星期一..六 / 周一 stay words; other numerals become digits.
    text = re.sub(r"(?<![周期拜])[零〇一二两兩三四五六七八九十]+(?!刻)", number, text)
    return re.sub(r"\s+", " ", text).strip()


# --- times --------------------------------------------------------------------------------------

_ZH_PM = ("下午", "傍晚", "晚上", "晚")
_ZH_PERIODS = "早上|早晨|清早|上午|中午|下午|傍晚|晚上|夜里|夜间|半夜|凌晨|早|晚"
_TIME = re.compile(
    rf"""
    (?P<pre>{_ZH_PERIODS}|в\s)?\s*
    (?<!\d)(?P<h>\d{{1,2}})
    (?:\s*(?:[:.]|h(?=\d))\s*(?P<m>\d{{2}}))?
    (?:\s*(?P<zh>[点點时時])\s*(?P<zhm>半|一刻|三刻|整|\d{{1,2}}\s*分?)?)?
    (?:\s*(?P<unit>o'?clock|hrs?\b|h\b|часов|часа|час\b|ч\b\.?))?
    (?:\s*(?P<suf>a\.?\s?m\b\.?|p\.?\s?m\b\.?|утра|дня|вечера|ночи
        |in\sthe\smorning|in\sthe\safternoon|in\sthe\sevening|at\snight))?
    (?!\d)(?![:.]\d)
    """,
    re.VERBOSE,
)
# Words that stand for a time of day on their own ("morning and evening", "早晚", "вечером").
# A word right after a number ("8 in the morning", "早上8点") is an am/pm marker instead.
WORD_TIMES: dict[str, str] = {
    "noon": "12:00",
    "midday": "12:00",
    "midnight": "00:00",
    "in the morning": "08:00",
    "morning": "08:00",
    "in the afternoon": "14:00",
    "afternoon": "14:00",
    "in the evening": "20:00",
    "evening": "20:00",
    "at bedtime": "22:00",
    "bedtime": "22:00",
    "before bed": "22:00",
    "at night": "22:00",
    "полдень": "12:00",
    "в полдень": "12:00",
    "полночь": "00:00",
    "в полночь": "00:00",
    "утром": "08:00",
    "днём": "14:00",
    "днем": "14:00",
    "вечером": "20:00",
    "перед сном": "22:00",
    "на ночь": "22:00",
    "午夜": "00:00",
    "早晚": "08:00 20:00",
    "早上": "08:00",
    "早晨": "08:00",
    "上午": "08:00",
    "中午": "12:00",
    "下午": "14:00",
    "傍晚": "18:00",
    "晚上": "20:00",
    "睡前": "22:00",
    "夜里": "22:00",
}
_WORD_TIME = re.compile(
    r"(?P<num>\d\s*(?:[:.]\s*\d{1,2}\s*)?(?:o'?clock\s*)?)?(?<![a-zа-яё])(?P<word>"
    + "|".join(re.escape(w) for w in sorted(WORD_TIMES, key=len, reverse=True))
    + r")(?![a-zа-яё])(?!\s*\d)"
)
_INTERVAL = re.compile(
    r"""
    (?<![a-z])(?:every|each|q)\s*(?P<a>\d{1,3})\s*(?:h\b|hrs?\b|hours?\b)
    | (?:每隔|每)\s*(?P<b>\d{1,3})\s*(?:个|個)?\s*(?:小时|小時|钟头|鐘頭)
    | (?P<d>\d{1,3})\s*(?:个|個)?\s*(?:小时|小時)\s*(?:1次|一次)
    | (?:кажды[еx]|каждые|каждый|раз\sв)\s*(?P<c>\d{1,3})\s*(?:часов|часа|час|ч\b)
    """,
    re.VERBOSE,
)
_TIMES_PER_DAY = re.compile(
    r"""
    (?P<a>\d{1,3})\s*(?:x|times?)\s*(?:a|per|each)?\s*day
    | (?:每天|每日|一天|1天)\s*(?P<b>\d{1,3})\s*次
    | (?P<c>\d{1,3})\s*(?:раза?|раз)\s*(?:в|за)\s*(?:день|сутки)
    """,
    re.VERBOSE,
)
# What may sit between times: separators in three languages and a little filler.
_FILLER = re.compile(
    r"""^(?:[\s,;、，；/&+]|and|at|then|also|starting|from|first|dose|и|в|с|а\sтакже|затем
         |和|及|与|跟|还有|以及|从|开始|起|各\s*1\s*次)*$""",
    re.VERBOSE,
)
_SPREAD = {
    1: ("08:00",),
    2: ("08:00", "20:00"),
    3: ("08:00", "14:00", "20:00"),
    4: ("08:00", "12:00", "16:00", "20:00"),
}


def _one_time(m: re.Match[str], raw: str) -> str:
    """HH:MM of one matched time expression, with am/pm and 上午/下午/утра/вечера applied."""
    hour = int(m.group("h"))
    minute = int(m.group("m")) if m.group("m") else 0
    zhm = m.group("zhm")
    if zhm:
        if m.group("m"):
            raise TimingError("timing.error.bad_time", value=_shown(raw))
        if zhm == "半":
            minute = 30
        elif zhm == "一刻":
            minute = 15
        elif zhm == "三刻":
            minute = 45
        elif zhm != "整":
            minute = int(re.sub(r"\D", "", zhm))
    pre = (m.group("pre") or "").strip()
    suf = (m.group("suf") or "").replace(".", "").replace(" ", "")
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        raise TimingError("timing.error.bad_time", value=_shown(raw))
    if hour == 24:
        hour = 0
    if (
        suf in ("am", "inthemorning")
        or suf == "утра"
        or pre in ("早上", "早晨", "清早", "上午", "早")
    ):
        if hour > 12:
            raise TimingError("timing.error.bad_time", value=_shown(raw))
        hour = 0 if hour == 12 else hour
    elif suf in ("pm", "intheevening", "intheafternoon", "вечера") or pre in _ZH_PM:
        if hour > 12 or hour == 0:
            if hour < 12 or hour > 23:
                raise TimingError("timing.error.bad_time", value=_shown(raw))
        elif hour != 12:
            hour += 12
        elif suf != "pm":
            hour = 0 if pre in ("晚上", "晚") or suf == "вечера" else 12
    elif suf == "дня" or pre == "中午":
        if hour > 23:
            raise TimingError("timing.error.bad_time", value=_shown(raw))
        if hour < 6:
            hour += 12  # "2 дня", "中午1点": early afternoon
    elif suf in ("atnight", "ночи") or pre in ("夜里", "夜间", "半夜", "凌晨"):
        if hour == 12:
            hour = 0
        elif 6 <= hour < 12 and pre != "凌晨":
            hour += 12  # "11 at night", "夜里11点"
    if hour > 23:
        raise TimingError("timing.error.bad_time", value=_shown(raw))
    return f"{hour:02d}:{minute:02d}"


def _scan_times(text: str, original: str) -> list[str]:
    """Every time in ``text`` (normalised); anything between them must be a separator.
    Unreadable text is reported as the person's whole ``original`` message (shortened)."""
    found: list[str] = []
    pos = 0
    for m in _TIME.finditer(text):
        if not m.group(0).strip():
            continue
        gap = text[pos : m.start()]
        if not _FILLER.match(gap):
            raise TimingError("timing.error.bad_time", value=_shown(original))
        found.append(_one_time(m, m.group(0)))
        pos = m.end()
    if not _FILLER.match(text[pos:]):
        raise TimingError("timing.error.bad_time", value=_shown(original))
    return found


# Prescription Latin: bis / ter / quater in die, quaque die.
_LATIN = re.compile(r"(?<![a-zа-я])(?:b\.?i\.?d|t\.?i\.?d|q\.?i\.?d|q\.?d)\.?(?![a-z])")
_LATIN_COUNTS = {"bid": 2, "tid": 3, "qid": 4, "qd": 1}


def _word_time(m: re.Match[str]) -> str:
    if m.group("num"):
        return m.group(0)  # "8 in the morning": an am/pm marker, read by _TIME
    return " " + WORD_TIMES[m.group("word")] + " "


def _prepare_times(text: str) -> str:
    """Normalised text with time words, counts and Latin abbreviations spelled as numbers;
    TimingError(timing.error.empty) when nothing is left."""
    norm = _normalise(text)
    norm = _WORD_TIME.sub(_word_time, norm)
    norm = re.sub(r"各\s*1\s*次", " ", norm)  # 早晚各一次: once each
    norm = re.sub(r"(?<![a-zа-я])(once|twice|thrice)\s*(a|per|each)?\s*day", _word_count, norm)
    norm = norm.replace("дважды", "2 раза").replace("трижды", "3 раза")
    norm = re.sub(r"(?<![a-z])every\s+hour\b|каждый\s+час\b|每\s*小时", "every 1 hours", norm)
    norm = _LATIN.sub(lambda m: f"{_LATIN_COUNTS[m.group(0).replace('.', '')]} times a day", norm)
    norm = re.sub(r"\s+", " ", norm).strip()
    if not norm.strip(" ,;、，；."):
        raise TimingError("timing.error.empty")
    return norm


def _check_interval(hours: int) -> int:
    if hours not in ALLOWED_EVERY_HOURS:
        raise TimingError("timing.error.bad_interval", value=hours)
    return hours


def parse_times(text: str) -> tuple[tuple[str, ...], int | None]:
    """Local times of day from what a person types, sorted, duplicates merged.

    "08:00, 20:00", "8:00 и 20:00", "8am and 8 pm", "20h", "8.30", "早上八点、晚上8点",
    "8点半", "в 8 утра", "noon" -> (("08:00", "20:00"), None). An interval — "every 8 hours",
    "q8h", "每8小时", "каждые 8 часов", optionally with a first time ("every 8 hours from
    6am") — gives ((anchor,), 8) with anchor 08:00 when none is given. "3 times a day",
    "每天3次", "3 раза в день" give the usual spread (08:00, 14:00, 20:00).
    Raises TimingError: timing.error.empty, .bad_time {value}, .too_many {max},
    .bad_interval {value}.
    """
    norm = _prepare_times(text)
    interval = _INTERVAL.search(norm)
    if interval:
        hours = int(next(g for g in interval.group("a", "b", "c", "d") if g))
        _check_interval(hours)
        rest = (norm[: interval.start()] + " " + norm[interval.end() :]).strip()
        anchors = _scan_times(rest, text) if rest else []
        if len(set(anchors)) > 1:
            raise TimingError("timing.error.bad_time", value=_shown(text))
        return ((anchors[0] if anchors else DEFAULT_ANCHOR),), hours
    per_day = _TIMES_PER_DAY.search(norm)
    if per_day:
        count = int(per_day.group("a") or per_day.group("b") or per_day.group("c"))
        rest = (norm[: per_day.start()] + " " + norm[per_day.end() :]).strip()
        if count > MAX_PER_DAY:
            raise TimingError("timing.error.too_many", max=MAX_PER_DAY)
        if count < 1:
            raise TimingError("timing.error.bad_time", value=_shown(text))
        if rest:
            explicit = tuple(sorted(set(_scan_times(rest, text))))
            if explicit and len(explicit) != count:
                raise TimingError("timing.error.bad_time", value=_shown(text))
            if explicit:
                return explicit, None
        if count in _SPREAD:
            return _SPREAD[count], None
        if 24 % count == 0:
            return (DEFAULT_ANCHOR,), 24 // count
        step = 14 * 60 / (count - 1)  # spread over the waking day, 08:00..22:00
        minutes = [8 * 60 + round(i * step / 30) * 30 for i in range(count)]
        return tuple(f"{m // 60:02d}:{m % 60:02d}" for m in minutes), None
    times = _scan_times(norm, text)
    if not times:
        raise TimingError("timing.error.empty")
    unique = tuple(sorted(set(times)))
    if len(unique) > MAX_PER_DAY:
        raise TimingError("timing.error.too_many", max=MAX_PER_DAY)
    return unique, None


def _word_count(m: re.Match[str]) -> str:
    return {"once": "1", "twice": "2", "thrice": "3"}[m.group(1)] + " times a day"


def parse_clock(text: str) -> str:
    """Exactly one local time ("22:00", "10 pm", "晚上十点", "в 22:00") as "HH:MM".
    Raises TimingError: timing.error.empty, .bad_time {value}, .one_time."""
    norm = _prepare_times(text)
    if _INTERVAL.search(norm):
        raise TimingError("timing.error.one_time")
    times = _scan_times(norm, text)
    if not times:
        raise TimingError("timing.error.empty")
    if len(set(times)) != 1:
        raise TimingError("timing.error.one_time")
    return times[0]


# --- days ---------------------------------------------------------------------------------------

_DAY_WORDS: dict[str, int] = {}
for _n, _names in enumerate(
    (
        "mon monday mo пн понедельник понедельникам",
        "tue tues tuesday tu вт вторник вторникам",
        "wed weds wednesday we ср среда среду средам",
        "thu thur thurs thursday th чт четверг четвергам",
        "fri friday fr пт пятница пятницу пятницам",
        "sat saturday sa сб суббота субботу субботам",
        "sun sunday su вс воскресенье воскресеньям",
    ),
    start=1,
):
    for _w in _names.split():
        _DAY_WORDS[_w] = _n
_ZH_DAY = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "日": 7, "天": 7, "七": 7}
_EVERY_DAY = (
    "every day|daily|everyday|each day|all days|all week|7 days a week|every day of the week"
    "|每天|每日|天天|每一天|一周七天|ежедневно|каждый день|все дни|всю неделю|every"
)
_ON_WEEKDAYS = (
    "weekdays|workdays|working days|work days|business days|on weekdays|monday to friday"
    "|工作日|周一至周五|周一到周五|будни|по будням|будние дни|рабочие дни|в будни"
)
_ON_WEEKEND = "weekends|weekend|on weekends|周末|双休日|выходные|по выходным|в выходные"
_DAY_PHRASES: dict[str, tuple[int, ...]] = {
    phrase: days
    for phrases, days in ((_EVERY_DAY, ALL_DAYS), (_ON_WEEKDAYS, WEEKDAYS), (_ON_WEEKEND, WEEKEND))
    for phrase in phrases.split("|")
}
_DAY_TOKEN = re.compile(
    r"(?P<zh>(?:周|星期|礼拜|禮拜|週)?(?P<zhd>[一二三四五六七日天]))"
    r"|(?P<word>[a-zа-яё]+)|(?P<num>\d+)|(?P<range>[-–—~]|至|到)|(?P<sep>[,;、，；/&+.])|(?P<other>\S)"
)
_DAY_RANGE_WORDS = {"to", "through", "thru", "till", "until", "по", "до"}
_DAY_FILLER = {
    "and", "on", "every", "each", "и", "с", "со", "по", "в", "во", "каждый", "каждую",
    "каждое", "only", "的", "和", "每", "每周", "每星期",
}  # fmt: skip


def parse_days(text: str) -> tuple[int, ...]:
    """ISO weekdays (1 = Monday) from what a person types, sorted.

    "every day" / "daily" / "每天" / "ежедневно" -> 1..7; "weekdays" / "工作日" / "будни" ->
    1..5; "weekends" -> 6, 7; lists and ranges: "mon-fri", "mon, wed, fri", "пн, ср, пт",
    "с пн по пт", "周一至周五", "周一、三、五", "1,3,5". A range may wrap ("fri-mon").
    Raises TimingError: timing.error.empty, timing.error.bad_days {value}.
    """
    norm = unicodedata.normalize("NFKC", text).lower()
    norm = re.sub(r"\s+", " ", norm).strip(" .!")
    if not norm:
        raise TimingError("timing.error.empty")
    if norm in _DAY_PHRASES:
        return _DAY_PHRASES[norm]
    items: list[int | str] = []  # day numbers and "-" for a range
    for m in _DAY_TOKEN.finditer(norm):
        if m.group("zh"):
            items.append(_ZH_DAY[m.group("zhd")])
        elif m.group("word"):
            word = m.group("word")
            if word not in _DAY_WORDS and word.endswith("s") and word[:-1] in _DAY_WORDS:
                word = word[:-1]  # "mondays"
            if word in _DAY_WORDS:
                items.append(_DAY_WORDS[word])
            elif word in _DAY_RANGE_WORDS and items and isinstance(items[-1], int):
                items.append("-")
            elif word not in _DAY_FILLER:
                raise TimingError("timing.error.bad_days", value=_shown(text))
        elif m.group("num"):
            value = int(m.group("num"))
            if not 1 <= value <= 7:
                raise TimingError("timing.error.bad_days", value=_shown(text))
            items.append(value)
        elif m.group("range"):
            items.append("-")
        elif m.group("other") and m.group("other") not in "每周":
            raise TimingError("timing.error.bad_days", value=_shown(text))
    days: set[int] = set()
    i = 0
    while i < len(items):
        item = items[i]
        if item == "-" or not isinstance(item, int):
            raise TimingError("timing.error.bad_days", value=_shown(text))
        if i + 2 < len(items) + 0 and items[i + 1] == "-":
            last = items[i + 2]
            if not isinstance(last, int):
                raise TimingError("timing.error.bad_days", value=_shown(text))
            d = item
            days.add(d)
            while d != last:
                d = d % 7 + 1
                days.add(d)
            i += 3
        else:
            if i + 1 < len(items) and items[i + 1] == "-":
                raise TimingError("timing.error.bad_days", value=_shown(text))
            days.add(item)
            i += 1
    if not days:
        raise TimingError("timing.error.bad_days", value=_shown(text))
    return tuple(sorted(days))


# --- periods ------------------------------------------------------------------------------------

_ONGOING_WORDS = (
    "ongoing|indefinitely|indefinite|no end|no end date|forever|permanent|permanently"
    "|long term|long-term|until further notice|continuous|continuously|lifelong|for life"
    "|长期|一直|长期服用|持续服用|不停|终身"
    "|постоянно|бессрочно|всегда|без срока|длительно|пожизненно|без окончания"
)
_ONGOING = re.compile(
    r"(?<![a-zа-яё])(?:"
    + "|".join(re.escape(w) for w in sorted(_ONGOING_WORDS.split("|"), key=len, reverse=True))
    + r")(?![a-zа-яё])"
)
_MONTHS: dict[str, int] = {}
for _n, _names in enumerate(
    (
        "jan january января январь",
        "feb february февраля февраль",
        "mar march марта март",
        "apr april апреля апрель",
        "may мая май",
        "jun june июня июнь",
        "jul july июля июль",
        "aug august августа август",
        "sep sept september сентября сентябрь",
        "oct october октября октябрь",
        "nov november ноября ноябрь",
        "dec december декабря декабрь",
    ),
    start=1,
):
    for _w in _names.split():
        _MONTHS[_w] = _n
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE = re.compile(
    rf"""
    (?<!\d)(?P<y>\d{{4}})\s*[-/.年]\s*(?P<m>\d{{1,2}})\s*[-/.月]\s*(?P<d>\d{{1,2}})(?!\d)\s*[日号]?
    | (?<![\d.])(?P<d2>\d{{1,2}})\.(?P<m2>\d{{1,2}})(?:\.(?P<y2>\d{{4}}))?(?![\d.])
    | (?<!\d)(?P<m3>\d{{1,2}})\s*月\s*(?P<d3>\d{{1,2}})\s*[日号]
    | (?<!\d)(?P<d4>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mn4>{_MONTH})\.?
        (?:,?\s*(?P<y4>\d{{4}}))?(?![a-zа-яё])
    | (?<![a-zа-яё])(?P<mn5>{_MONTH})\.?\s+(?P<d5>\d{{1,2}})(?:st|nd|rd|th)?
        (?:,?\s*(?P<y5>\d{{4}}))?(?!\d)
    """,
    re.VERBOSE,
)
_WORD_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "один": 1, "одна": 1, "одну": 1, "два": 2, "две": 2, "три": 3, "четыре": 4, "пять": 5,
    "шесть": 6, "семь": 7, "восемь": 8, "девять": 9, "десять": 10,
}  # fmt: skip
_UNITS = (
    r"(?P<day>days?|d|天|日|дней|дня|день|сутки|суток)"
    r"|(?P<week>weeks?|wks?|w|个星期|個星期|星期|周|недел[ьяиюе]|недель)"
    r"|(?P<month>months?|mos?|个月|個月|месяц|месяца|месяцев)"
    r"|(?P<year>years?|yrs?|年|год|года|лет)"
)
_DURATION = re.compile(rf"(?<![\d.])(?P<n>\d{{1,4}})\s*(?:{_UNITS})(?![a-zа-яё])")
# "неделю", "a month", "one year": a unit with a number word or none (Russian).
_WORD_DURATION = re.compile(
    r"(?<![a-zа-яё\d])(?:(?P<word>"
    + "|".join(_WORD_NUMBERS)
    + r")\s+)?(?P<unit>days?|weeks?|months?|years?|неделю|месяц|год)(?![a-zа-яё])"
)
_PERIOD_WORDS = {
    "for", "from", "starting", "start", "starts", "beginning", "on", "until", "till", "til",
    "to", "through", "thru", "and", "then", "within", "next", "the", "of", "total", "in",
    "after", "up", "over", "ending", "end", "ends",
    "с", "со", "по", "до", "на", "в", "течение", "от", "начиная", "и", "всего", "ближайшие",
    "следующие", "включительно",
}  # fmt: skip
_PERIOD_ZH = re.compile(
    r"(?:从|自|到|至|直到|截止|截至|开始|起|为期|共|持续|连续|服用|吃|用|之后|以后|的|止|内|期间)+"
)
_PERIOD_PUNCT = frozenset(",;:.-–—~、，；/")
_FROM_WORDS = {"from", "starting", "start", "starts", "beginning", "с", "со", "от", "начиная"}
_FROM_ZH = re.compile(r"从|自|开始|起(?!止)")


_RELATIVE_DAY = re.compile(
    r"(?<![a-zа-яё])(?:today|сегодня|сегодняшнего дня|(?:tomorrow|завтра"
    r"|завтрашнего дня))(?![a-zа-яё])|今天|明天"
)
_TODAY = {"today", "сегодня", "сегодняшнего дня", "今天"}
_AT = re.compile(r"@([01])")


def _add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _add_years(day: date, years: int) -> date:
    return _add_months(day, 12 * years)


def _match_date(m: re.Match[str], today: date) -> date:
    """The date of one _DATE match; a date without a year is the next one from yesterday."""
    groups = m.groupdict()
    if groups["y"]:
        return date(int(groups["y"]), int(groups["m"]), int(groups["d"]))
    if groups["d2"]:
        day, month, year = int(groups["d2"]), int(groups["m2"]), groups["y2"]
    elif groups["m3"]:
        day, month, year = int(groups["d3"]), int(groups["m3"]), None
    elif groups["d4"]:
        day, month, year = int(groups["d4"]), _MONTHS[groups["mn4"]], groups["y4"]
    else:
        day, month, year = int(groups["d5"]), _MONTHS[groups["mn5"]], groups["y5"]
    if year:
        return date(int(year), month, day)
    guess = date(today.year, month, day) if (month, day) != (2, 29) else None
    if guess is None or guess < today - PAST_GRACE:
        for ahead in range(1, 9):  # the next year that has this day (29 February)
            try:
                guess = date(today.year + ahead, month, day)
                break
            except ValueError:
                continue
        else:
            raise ValueError("no such day")
    return guess


def _leftover_ok(rest: str) -> bool:
    """Whether what is left after dates and durations is only filler words."""
    for word in re.findall(r"[a-zа-яё]+|[\u3400-\u9fff]+|[^\s]", rest):
        if re.fullmatch(r"[a-zа-яё]+", word):
            if word not in _PERIOD_WORDS:
                return False
        elif re.fullmatch(r"[\u3400-\u9fff]+", word):
            if not _PERIOD_ZH.fullmatch(word):
                return False
        elif word not in _PERIOD_PUNCT:
            return False
    return True


def parse_period(text: str, today: date) -> tuple[date, date | None]:
    """First and last local date (inclusive; None = ongoing) from what a person types.

    "30 days", "2 weeks", "3 months", "a year", "30天", "2周", "30 дней", "неделю" ->
    (today, last day); "until 2026-12-31" / "到2026年12月31日" / "до 31.12.2026" /
    "until 31 December" -> (today, that day); "2026-12-03 to 2026-12-31";
    "from 2026-12-05 for 10 days"; "from 2026-12-05" or "starting tomorrow" (ongoing);
    "ongoing" / "长期" / "постоянно" -> (today, None). A date without a year is its next
    occurrence (from yesterday on).
    Raises TimingError: timing.error.empty, .bad_period {value}, .end_before_start,
    .start_past, .too_long {years}.
    """
    norm = _normalise(text).strip(" .!")
    if not norm:
        raise TimingError("timing.error.empty")
    bad = TimingError("timing.error.bad_period", value=_shown(text))
    norm = _RELATIVE_DAY.sub(lambda m: " @0 " if m.group(0) in _TODAY else " @1 ", norm)
    found: list[tuple[int, date]] = []  # (position, date): the earlier one is the start
    for m in _DATE.finditer(norm):
        try:
            found.append((m.start(), _match_date(m, today)))
        except ValueError:
            raise bad from None
    found += [(m.start(), today + timedelta(days=int(m.group(1)))) for m in _AT.finditer(norm)]
    dates = [day for _, day in sorted(found)]
    rest = _AT.sub(" ", _DATE.sub(" ", norm))
    ongoing = bool(_ONGOING.search(rest))
    rest = _ONGOING.sub(" ", rest)
    lengths: list[tuple[int, str]] = []
    for m in list(_DURATION.finditer(rest)):
        unit = next(u for u in ("day", "week", "month", "year") if m.group(u))
        lengths.append((int(m.group("n")), unit))
        rest = rest.replace(m.group(0), " ", 1)
    for m in list(_WORD_DURATION.finditer(rest)):
        unit = m.group("unit")
        unit = {"неделю": "week", "месяц": "month", "год": "year"}.get(unit, unit.rstrip("s"))
        lengths.append((_WORD_NUMBERS[m.group("word")] if m.group("word") else 1, unit))
        rest = rest.replace(m.group(0), " ", 1)
    starts_from = bool(_FROM_ZH.search(rest) or _FROM_WORDS & set(re.findall(r"[a-zа-яё]+", rest)))
    if not _leftover_ok(rest) or len(lengths) > 1 or len(dates) > 2:
        raise bad
    end: date | None
    try:
        start, end = _resolve_period(dates, lengths, ongoing, starts_from, today)
    except TimingError:
        raise
    except ValueError:
        raise bad from None
    if end is not None and end < start:
        raise TimingError("timing.error.end_before_start")
    if start < today - PAST_GRACE:
        raise TimingError("timing.error.start_past")
    if start > _add_years(today, MAX_YEARS) or (
        end is not None and end > _add_years(start, MAX_YEARS)
    ):
        raise TimingError("timing.error.too_long", years=MAX_YEARS)
    return start, end


def _resolve_period(
    dates: list[date],
    lengths: list[tuple[int, str]],
    ongoing: bool,
    starts_from: bool,
    today: date,
) -> tuple[date, date | None]:
    """(start, end) from what was found; ValueError for a combination that means nothing."""
    if len(dates) == 2:
        if lengths or ongoing:
            raise ValueError("two dates and a length")
        return dates[0], dates[1]
    if len(dates) == 1:
        if lengths:
            return dates[0], _span_end(dates[0], *lengths[0])
        if starts_from or ongoing:
            return dates[0], None
        return today, dates[0]
    if lengths:
        if ongoing:
            raise ValueError("a length and ongoing")
        return today, _span_end(today, *lengths[0])
    if ongoing:
        return today, None
    raise ValueError("nothing found")


def _span_end(start: date, n: int, unit: str) -> date:
    """Last day of ``n`` days / weeks / months / years starting on ``start`` (inclusive);
    a span too long for the calendar is refused as too long."""
    if n < 1:
        raise ValueError("an empty span")
    if n > 400 * MAX_YEARS:
        raise TimingError("timing.error.too_long", years=MAX_YEARS)
    try:
        if unit == "day":
            return start + timedelta(days=n - 1)
        if unit == "week":
            return start + timedelta(days=7 * n - 1)
        months = n if unit == "month" else 12 * n
        return _add_months(start, months) - timedelta(days=1)
    except (OverflowError, ValueError):
        raise TimingError("timing.error.too_long", years=MAX_YEARS) from None


# --- zones --------------------------------------------------------------------------------------

# Offsets with minutes have no Etc/ zone; these zones keep them all year round.
_HALF_HOUR_ZONES = {
    (3, 30): "Asia/Tehran",
    (4, 30): "Asia/Kabul",
    (5, 30): "Asia/Kolkata",
    (5, 45): "Asia/Kathmandu",
    (6, 30): "Asia/Yangon",
    (8, 45): "Australia/Eucla",
    (9, 30): "Australia/Darwin",
    (-3, -30): "America/St_Johns",
    (-9, -30): "Pacific/Marquesas",
}
# Names of UTC itself (cities and countries are looked up in flows.zones).
_UTC_WORDS = frozenset({"utc", "gmt", "ut", "z", "zulu"})
_OFFSET = re.compile(
    r"^(?:utc|gmt|ut|z|utc時間|utc时间)?\s*(?P<sign>[+-])\s*(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?$"
)


_NOT_ZONES = ("posix/", "right/", "SystemV/")
_NOT_ZONE_NAMES = frozenset({"localtime", "posixrules", "Factory", "leapseconds", "tzdata.zi"})


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Every IANA name by its lower-case form and by its city (``moscow`` -> Europe/Moscow)."""
    usable = sorted(
        name
        for name in available_timezones()
        if not name.startswith(_NOT_ZONES) and name not in _NOT_ZONE_NAMES
    )
    names = {name.lower(): name for name in usable}
    for name in usable:
        if "/" in name and not name.startswith("Etc/"):
            city = name.rsplit("/", 1)[1].lower()
            names.setdefault(city, name)
            names.setdefault(city.replace("_", " "), name)
    return names


class ZoneChoice(TimingError):
    """A country with several time zones was named: ``zones`` are its zones (west to east),
    for the person to choose from; the message asks for the nearest city."""

    def __init__(self, value: str, zones: tuple[str, ...]) -> None:
        super().__init__("timing.error.zone_country", value=value)
        self.zones = zones


def parse_zone(text: str) -> str:
    """An IANA time zone name from what a person types.

    "Europe/Moscow", "asia/shanghai", "UTC" -> as named; a city or a country in English,
    Chinese or Russian ("Moscow", "Москва", "上海", "New York", "Germany") -> its zone
    (:func:`flows.zones.find`); "UTC+3", "GMT-5", "+08:00" -> "Etc/GMT-3", "Etc/GMT+5",
    "Etc/GMT-8" (POSIX signs: Etc/GMT-3 is three hours ahead of UTC); "+05:30" -> a zone with
    that fixed offset (Asia/Kolkata).
    Raises TimingError: timing.error.empty, timing.error.bad_zone {value}, and
    :class:`ZoneChoice` (timing.error.zone_country {value}) for a country with several zones.
    """
    norm = unicodedata.normalize("NFKC", text).strip().lower()
    norm = re.sub(r"\s+", " ", norm).replace("−", "-")
    if not norm:
        raise TimingError("timing.error.empty")
    if norm in _UTC_WORDS:
        return "UTC"
    m = _OFFSET.match(norm)
    if m:
        sign = 1 if m.group("sign") == "+" else -1
        hours, minutes = int(m.group("h")), int(m.group("m") or 0)
        if minutes:
            zone = _HALF_HOUR_ZONES.get((sign * hours, sign * minutes))
            if zone is None:
                raise TimingError("timing.error.bad_zone", value=_shown(text))
            return zone
        if hours == 0:
            return "UTC"
        if sign * hours < -12 or sign * hours > 14:
            raise TimingError("timing.error.bad_zone", value=_shown(text))
        # POSIX: Etc/GMT-3 is UTC+3.
        return f"Etc/GMT{'-' if sign > 0 else '+'}{hours}"
    key = norm.replace(" / ", "/")
    zones = _zones()
    name = zones.get(key) if "/" in key else None
    if name is None:
        named = find_zone(text)
        if len(named) > 1:
            raise ZoneChoice(_shown(text), named)
        name = named[0] if named else zones.get(key) or zones.get(key.replace(" ", "_"))
    if name is None:
        raise TimingError("timing.error.bad_zone", value=_shown(text))
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimingError("timing.error.bad_zone", value=_shown(text)) from None
    return name


# --- occurrences --------------------------------------------------------------------------------

HORIZON_DAYS = 60  # how far next_occurrence looks (any schedule repeats within 21 days)


def _to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """The instant of a local wall time: fold=0 for both gaps and repeated hours."""
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _day_walls(schedule: Schedule, day: date) -> list[datetime]:
    """Naive local wall times of the schedule on ``day`` (ignoring days and bounds)."""
    if schedule.every_hours:
        anchor_h, anchor_m = _hm(schedule.times[0])
        base = datetime.combine(schedule.start, time(anchor_h, anchor_m))
        step = timedelta(hours=schedule.every_hours)
        day_start = datetime.combine(day, time(0, 0))
        k = 0 if day_start <= base else -(-(day_start - base) // step)
        out = []
        wall = base + k * step
        while wall.date() == day:
            out.append(wall)
            wall += step
        return out if day >= schedule.start else []
    return [datetime.combine(day, time(*_hm(t))) for t in schedule.times]


def _on(schedule: Schedule, day: date) -> bool:
    return (
        day >= schedule.start
        and (schedule.end is None or day <= schedule.end)
        and day.isoweekday() in schedule.days
    )


def _day_occurrences(
    schedule: Schedule, zone: ZoneInfo, shift: timedelta, day: date
) -> list[tuple[str, datetime]]:
    if not _on(schedule, day):
        return []
    return sorted(
        (
            (wall.strftime("%Y-%m-%d %H:%M"), _to_utc(wall, zone) + shift)
            for wall in _day_walls(schedule, day)
        ),
        key=lambda item: (item[1], item[0]),
    )


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def _first_day(schedule: Schedule, zone: ZoneInfo, shift_minutes: int, after: datetime) -> date:
    margin = 2 + abs(shift_minutes) // 1440
    return max(schedule.start, after.astimezone(zone).date() - timedelta(days=margin))


def next_occurrence(
    schedule: Schedule, tz: str, shift_minutes: int, after: datetime
) -> tuple[str, datetime] | None:
    """The first occurrence strictly after ``after`` (aware): (local label, aware UTC
    instant), or None when the schedule has ended. See the module docstring for the label,
    ``shift_minutes`` and DST rules."""
    zone = _zone(tz)
    shift = timedelta(minutes=shift_minutes)
    margin = 2 + abs(shift_minutes) // 1440
    day = _first_day(schedule, zone, shift_minutes, after)
    last = day + timedelta(days=HORIZON_DAYS + 2 * margin)
    if schedule.end is not None:
        last = min(last, schedule.end)
    best: tuple[str, datetime] | None = None
    best_day: date | None = None
    while day <= last:
        for label, at in _day_occurrences(schedule, zone, shift, day):
            if at > after and (best is None or at < best[1]):
                best, best_day = (label, at), day
        if best_day is not None and day >= best_day + timedelta(days=margin):
            break
        day += timedelta(days=1)
    return best


def occurrences_between(
    schedule: Schedule, tz: str, shift_minutes: int, after: datetime, until: datetime
) -> list[tuple[str, datetime]]:
    """Every occurrence with ``after < instant <= until``, in time order (e.g. the doses a
    downtime skipped). Same rules as :func:`next_occurrence`."""
    zone = _zone(tz)
    shift = timedelta(minutes=shift_minutes)
    margin = 2 + abs(shift_minutes) // 1440
    day = _first_day(schedule, zone, shift_minutes, after)
    last = until.astimezone(zone).date() + timedelta(days=margin)
    if schedule.end is not None:
        last = min(last, schedule.end)
    out: list[tuple[str, datetime]] = []
    while day <= last:
        out.extend(
            item
            for item in _day_occurrences(schedule, zone, shift, day)
            if after < item[1] <= until
        )
        day += timedelta(days=1)
    return sorted(out, key=lambda item: (item[1], item[0]))


def jitter_seconds(key: str) -> int:
    """A stable 0..59 second offset for an occurrence key, so reminders sharing a minute do
    not all leave at :00 (stable across processes: hashlib, not ``hash()``)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big") % 60


# --- quiet hours --------------------------------------------------------------------------------


def in_quiet(local_hhmm: str, start: str | None, end: str | None) -> bool:
    """Whether a local "HH:MM" is inside quiet hours ``start``..``end`` (start included, end
    not). They may cross midnight ("22:00".."07:00"); none or start == end: no quiet hours."""
    if not start or not end or start == end:
        return False
    if start < end:
        return start <= local_hhmm < end
    return local_hhmm >= start or local_hhmm < end


def quiet_end_utc(utc: datetime, tz: str, start: str | None, end: str | None) -> datetime:
    """``utc`` itself when it is outside quiet hours in ``tz``; otherwise the instant quiet
    hours end (the next local ``end`` wall time, fold=0 across DST changes)."""
    zone = _zone(tz)
    local = utc.astimezone(zone)
    if not in_quiet(local.strftime("%H:%M"), start, end):
        return utc
    assert end is not None  # in_quiet is False without an end
    end_h, end_m = _hm(end)
    wall = datetime.combine(local.date(), time(end_h, end_m))
    if wall <= local.replace(tzinfo=None):
        wall += timedelta(days=1)
    at = _to_utc(wall, zone)
    return at if at > utc else utc


# --- catching up after downtime -----------------------------------------------------------------


def catch_up(kind: str, due: datetime, now: datetime) -> CatchUp:
    """How to treat an event of ``kind`` that was due at ``due`` and runs at ``now``.

    ``"on_time"`` when it runs at most 2 minutes late (or early); ``"late"`` when it is later
    but within the kind's window in :data:`CATCH_UP` (``dose`` 2 h, ``dose.again`` 1 h,
    ``checkin`` 12 h, ``checkin.recall`` 24 h, others :data:`DEFAULT_CATCH_UP` = 1 h) — send it,
    perhaps saying it is late; ``"missed"`` beyond the window — record it, do not send it.
    """
    late = now - due
    if late <= ON_TIME:
        return "on_time"
    if late <= CATCH_UP.get(kind, DEFAULT_CATCH_UP):
        return "late"
    return "missed"
