"""flows/schedule.py: doctors' weekly hours typed in three languages, overlaps, breaks, days
off, slots across DST changes (London, New York, Shanghai, Lord Howe), JSON storage, FHIR R4
Schedule/Slot and the lines a doctor reads. Pure: no database, no clock."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.schedule import Schedule as FhirSchedule
from fhir.resources.R4B.slot import Slot as FhirSlot

from flows.schedule import (
    DAY_KEYS,
    ERROR_CODES,
    MODES,
    SLOT_STATUSES,
    Availability,
    Interval,
    ScheduleError,
    SlotSpec,
    WeeklyRule,
    add_day_off,
    add_rule,
    availability_from_json,
    availability_to_json,
    describe,
    error_text,
    fhir_schedule,
    fhir_slot,
    generate,
    parse_day_off,
    parse_rule,
    remove_day_off,
    remove_rules,
)
from locales import LOCALES, Translator, catalog, placeholders

TODAY = date(2026, 12, 1)  # a Tuesday
WEEK = frozenset(range(7))
WORKWEEK = frozenset(range(5))
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # a "now" before every test date
SLOT_RANGE = {"min": "5", "max": "120"}  # the params every bad_slot error carries


def t(text: str) -> time:
    return time.fromisoformat(text)


def iv(text: str) -> Interval:
    start, end = text.split("-")
    return Interval(t(start), t(end))


def ivs(*texts: str) -> tuple[Interval, ...]:
    return tuple(iv(x) for x in texts)


def refused(func: object, *args: object) -> ScheduleError:
    assert callable(func)
    with pytest.raises(ScheduleError) as err:
        func(*args)
    return err.value


def av_of(tz: str, *rules: str) -> Availability:
    av = Availability(tz)
    for text in rules:
        av = add_rule(av, parse_rule(text))
    return av


def local(slots: list[SlotSpec], tz: str) -> list[str]:
    """Slot starts as local "HH:MM" (for readable expectations)."""
    zone = ZoneInfo(tz)
    return [s.start.astimezone(zone).strftime("%H:%M") for s in slots]


def assert_well_formed(slots: list[SlotSpec]) -> None:
    """Sorted, aware UTC, each as long as its rule says, none overlapping in real time."""
    for s in slots:
        assert s.start.tzinfo is UTC and s.end.tzinfo is UTC
        assert s.end > s.start
    for a, b in pairwise(slots):
        assert a.end <= b.start, f"{a} overlaps {b}"


# --- parse_rule: good input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode", "days", "hours", "slot", "breaks"),
    [
        # English, the brief's examples
        ("phone mon-fri 09:00-12:00,13:00-17:00 slot 15 break 10:30-10:45", "phone", WORKWEEK,
         ("09:00-12:00", "13:00-17:00"), 15, ("10:30-10:45",)),
        ("video sat 10:00-13:00 slot 20", "video", {5}, ("10:00-13:00",), 20, ()),
        ("text mon,wed,fri 08:00-20:00 slot 60", "text", {0, 2, 4}, ("08:00-20:00",), 60, ()),
        # full names, spaces, en dashes, capitals, "/schedule" left in, "min"
        ("/schedule Phone Monday – Friday 9:00 – 12:00 slot 15 min", "phone", WORKWEEK,
         ("09:00-12:00",), 15, ()),
        ("video tuesday, thursday 9-12 slot 30", "video", {1, 3}, ("09:00-12:00",), 30, ()),
        ("video thurs and sat 09:00-11:00 slot 30", "video", {3, 5}, ("09:00-11:00",), 30, ()),
        # ranges wrap over the weekend
        ("phone fri-mon 18:00-20:00 slot 30", "phone", {4, 5, 6, 0}, ("18:00-20:00",), 30, ()),
        ("phone sun-tue 18:00-20:00 slot 30", "phone", {6, 0, 1}, ("18:00-20:00",), 30, ()),
        ("phone mon-mon 18:00-20:00 slot 30", "phone", {0}, ("18:00-20:00",), 30, ()),
        ("phone mon-wed,sat 18:00-20:00 slot 30", "phone", {0, 1, 2, 5}, ("18:00-20:00",), 30,
         ()),
        ("text daily 08:00-09:00 slot 5", "text", WEEK, ("08:00-09:00",), 5, ()),
        ("text weekdays 08:00-10:00 slot 120", "text", WORKWEEK, ("08:00-10:00",), 120, ()),
        # hours out of order are sorted; several breaks
        ("phone mon 13:00-17:00,09:00-12:00 slot 15 break 15:00-15:15,10:00-10:15", "phone",
         {0}, ("09:00-12:00", "13:00-17:00"), 15, ("10:00-10:15", "15:00-15:15")),
        ("phone mon 09:00-12:00,12:00-13:00 slot 15", "phone", {0},
         ("09:00-12:00", "12:00-13:00"), 15, ()),  # touching blocks do not overlap
        ("phone mon 09:00-12:00 break 10:00-10:15 slot 15", "phone", {0}, ("09:00-12:00",), 15,
         ("10:00-10:15",)),  # break before slot
        # Russian
        ("phone пн-пт 09:00-12:00 slot 15", "phone", WORKWEEK, ("09:00-12:00",), 15, ()),
        ("video пн,ср,пт 09:00-12:00 slot 15", "video", {0, 2, 4}, ("09:00-12:00",), 15, ()),
        ("phone пт-пн 09:00-12:00 slot 15", "phone", {4, 5, 6, 0}, ("09:00-12:00",), 15, ()),
        ("телефон пн по пт 09:00 до 12:00 слот 15 минут перерыв 10:30-10:45", "phone",
         WORKWEEK, ("09:00-12:00",), 15, ("10:30-10:45",)),
        ("видео сб и вс 10:00-13:00 слот 20", "video", {5, 6}, ("10:00-13:00",), 20, ()),
        ("text понедельник, среда 08:00-10:00 slot 30", "text", {0, 2}, ("08:00-10:00",), 30,
         ()),
        # Chinese (full-width digits and punctuation too)
        ("phone 周一至周五 09:00-12:00 slot 15", "phone", WORKWEEK, ("09:00-12:00",), 15, ()),
        ("video 周一、周三、周五 09:00-12:00 slot 15", "video", {0, 2, 4}, ("09:00-12:00",), 15,
         ()),
        ("video 周六周日 10:00-13:00 slot 20", "video", {5, 6}, ("10:00-13:00",), 20, ()),
        ("phone 星期一到星期五 ０９：００－１２：００ slot 15", "phone", WORKWEEK,
         ("09:00-12:00",), 15, ()),
        ("电话 周五至周一 18:00-20:00 slot 30 休息 19:00-19:15", "phone", {4, 5, 6, 0},
         ("18:00-20:00",), 30, ("19:00-19:15",)),
        ("视频 星期日 10:00-11:00 slot 20分钟", "video", {6}, ("10:00-11:00",), 20, ()),
    ],
)  # fmt: skip
def test_parse_rule(
    text: str,
    mode: str,
    days: set[int],
    hours: tuple[str, ...],
    slot: int,
    breaks: tuple[str, ...],
) -> None:
    rule = parse_rule(text)
    assert rule == WeeklyRule(mode, frozenset(days), ivs(*hours), slot, ivs(*breaks))


# --- parse_rule: bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "params"),
    [
        ("", "empty", {}),
        ("   /schedule  ", "empty", {}),
        ("audio mon-fri 09:00-12:00 slot 15", "unknown_mode", {"value": "audio"}),
        ("mon-fri 09:00-12:00 slot 15", "unknown_mode", {"value": "mon-fri"}),
        ("phone 09:00-12:00 slot 15", "bad_days", {"value": "—"}),
        ("phone", "bad_days", {"value": "—"}),
        ("phone mox 09:00-12:00 slot 15", "bad_days", {"value": "mox"}),
        ("phone monfri 09:00-12:00 slot 15", "bad_days", {"value": "monfri"}),
        ("phone mon- 09:00-12:00 slot 15", "bad_days", {"value": "mon-"}),
        ("phone -fri 09:00-12:00 slot 15", "bad_days", {"value": "-fri"}),
        ("phone weekdays-sun 09:00-12:00 slot 15", "bad_days", {"value": "weekdays-sun"}),
        ("phone пн-пь 09:00-12:00 slot 15", "bad_days", {"value": "пн-пь"}),
        ("phone 周八 09:00-12:00 slot 15", "bad_days", {"value": "周八"}),
        ("phone mon-fri slot 15", "bad_hours", {"value": "—"}),
        ("phone mon-fri 09:00 slot 15", "bad_hours", {"value": "09:00"}),
        ("phone mon-fri 12:00-09:00 slot 15", "bad_hours", {"value": "12:00-09:00"}),
        ("phone mon-fri 09:00-09:00 slot 15", "bad_hours", {"value": "09:00-09:00"}),
        ("phone mon-fri 09:00-24:00 slot 15", "bad_hours", {"value": "09:00-24:00"}),
        ("phone mon-fri 09:61-12:00 slot 15", "bad_hours", {"value": "09:61-12:00"}),
        ("phone mon-fri 09:00-12:00 slot 15 break 11:00", "bad_hours", {"value": "11:00"}),
        ("phone mon-fri 09:00-12:00,11:00-13:00 slot 15", "overlap_hours",
         {"first": "09:00-12:00", "second": "11:00-13:00"}),
        ("phone mon-fri 09:00-17:00,10:00-11:00 slot 15", "overlap_hours",
         {"first": "09:00-17:00", "second": "10:00-11:00"}),
        ("phone mon-fri 09:00-12:00", "no_slot", {}),
        ("phone mon-fri 09:00-12:00 break 10:00-10:15", "no_slot", {}),
        ("phone mon-fri 09:00-12:00 slot 4", "bad_slot", {"value": "4", **SLOT_RANGE}),
        ("phone mon-fri 09:00-12:00 slot 121", "bad_slot", {"value": "121", **SLOT_RANGE}),
        ("phone mon-fri 09:00-12:00 slot 0", "bad_slot", {"value": "0", **SLOT_RANGE}),
        ("phone mon-fri 09:00-12:00 slot ten", "bad_slot", {"value": "ten", **SLOT_RANGE}),
        ("phone mon-fri 09:00-12:00 slot", "bad_slot", {"value": "—", **SLOT_RANGE}),
        ("phone mon-fri 09:00-12:00 slot 15 slot 20", "bad_slot",
         {"value": "15 20", **SLOT_RANGE}),
        ("phone mon-fri 09:00-12:00,13:00-13:20 slot 30", "bad_slot",
         {"value": "30", **SLOT_RANGE}),
        ("phone mon-fri 09:00-12:00 slot 15 break 12:00-12:30", "break_outside",
         {"value": "12:00-12:30"}),
        ("phone mon-fri 09:00-12:00 slot 15 break 08:45-09:15", "break_outside",
         {"value": "08:45-09:15"}),
        ("phone mon-fri 09:00-12:00,13:00-17:00 slot 15 break 11:45-13:15", "break_outside",
         {"value": "11:45-13:15"}),
    ],
)  # fmt: skip
def test_parse_rule_refuses(text: str, code: str, params: dict[str, str]) -> None:
    err = refused(parse_rule, text)
    assert (err.code, err.params) == (code, params)
    assert err.msgid == f"schedule.error.{code}"


def test_long_input_is_shortened_in_the_message() -> None:
    err = refused(parse_rule, "phone " + "x" * 100 + " 09:00-12:00 slot 15")
    assert err.code == "bad_days" and len(err.params["value"]) == 40
    assert err.params["value"].endswith("…")


# --- the model refuses what the parser would ----------------------------------------------------


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: Interval(t("10:00"), t("09:00")), "bad_hours"),
        (lambda: Interval(t("10:00:30"), t("11:00")), "bad_hours"),
        (lambda: WeeklyRule("fax", WEEK, ivs("09:00-10:00"), 15), "unknown_mode"),
        (lambda: WeeklyRule("text", frozenset(), ivs("09:00-10:00"), 15), "bad_days"),
        (lambda: WeeklyRule("text", frozenset({7}), ivs("09:00-10:00"), 15), "bad_days"),
        (lambda: WeeklyRule("text", WEEK, (), 15), "bad_hours"),
        (lambda: WeeklyRule("text", WEEK, ivs("09:00-10:00"), 61 * 2), "bad_slot"),
        (lambda: WeeklyRule("text", WEEK, ivs("09:00-10:00"), True), "bad_slot"),
        (lambda: WeeklyRule("text", WEEK, ivs("09:00-10:00", "09:30-11:00"), 15),
         "overlap_hours"),
        (lambda: WeeklyRule("text", WEEK, ivs("09:00-10:00"), 15, ivs("10:00-10:15")),
         "break_outside"),
    ],
)  # fmt: skip
def test_model_refuses(build: object, code: str) -> None:
    assert refused(build).code == code


def test_availability_needs_a_real_zone() -> None:
    with pytest.raises(ValueError, match="IANA"):
        Availability("Mars/Olympus_Mons")


# --- days off -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-24", date(2026, 12, 24)),
        ("2027-01-05", date(2027, 1, 5)),
        ("2026/12/24", date(2026, 12, 24)),
        ("24.12.2026", date(2026, 12, 24)),
        ("24.12", date(2026, 12, 24)),
        ("12-24", date(2026, 12, 24)),
        ("1.12", TODAY),  # today is not past
        ("30.11", date(2027, 11, 30)),  # gone this year: next year
        ("01-05", date(2027, 1, 5)),
        ("29.02", date(2028, 2, 29)),  # the next 29 February
        ("12月24日", date(2026, 12, 24)),
        ("2027年1月5日", date(2027, 1, 5)),
        ("２４．１２", date(2026, 12, 24)),
        (" 24.12. ", date(2026, 12, 24)),
    ],
)
def test_parse_day_off(text: str, expected: date) -> None:
    assert parse_day_off(text, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "code", "params"),
    [
        ("2026-11-30", "past_day", {"value": "2026-11-30"}),
        ("30.11.2026", "past_day", {"value": "2026-11-30"}),
        ("2025年12月24日", "past_day", {"value": "2025-12-24"}),
        ("", "empty", {}),
        ("tomorrow", "bad_date", {"value": "tomorrow"}),
        ("31.02", "bad_date", {"value": "31.02"}),
        ("2026-02-30", "bad_date", {"value": "2026-02-30"}),
        ("13-01", "bad_date", {"value": "13-01"}),
        ("24.12.26", "bad_date", {"value": "24.12.26"}),
    ],
)
def test_parse_day_off_refuses(text: str, code: str, params: dict[str, str]) -> None:
    err = refused(parse_day_off, text, TODAY)
    assert (err.code, err.params) == (code, params)


def test_days_off_are_added_and_removed() -> None:
    av = add_day_off(Availability("Europe/London"), date(2026, 12, 24))
    assert av.days_off == {date(2026, 12, 24)}
    assert remove_day_off(av, date(2026, 12, 24)).days_off == frozenset()


# --- overlaps between rules ---------------------------------------------------------------------

PHONE = "phone mon-fri 09:00-12:00,13:00-17:00 slot 15"


@pytest.mark.parametrize(
    ("existing", "new", "params"),
    [
        # same mode
        (PHONE, "phone wed 11:00-11:30 slot 15", {"mode": "phone", "day": "wed"}),
        # across modes: one consultation at a time
        (PHONE, "video mon 16:00-18:00 slot 20", {"mode": "phone", "day": "mon"}),
        (PHONE, "text daily 08:00-09:30 slot 30", {"mode": "phone", "day": "mon"}),
        (PHONE, "text fri-mon 12:30-13:30 slot 30", {"mode": "phone", "day": "mon"}),
        ("video sat 10:00-13:00 slot 20", "text пт-вс 12:00-14:00 slot 30",
         {"mode": "video", "day": "sat"}),
        ("video 周日 10:00-13:00 slot 20", "phone fri-mon 09:00-10:30 slot 30",
         {"mode": "video", "day": "sun"}),
    ],
)  # fmt: skip
def test_overlapping_rules_are_refused(existing: str, new: str, params: dict[str, str]) -> None:
    av = av_of("Europe/London", existing)
    err = refused(add_rule, av, parse_rule(new))
    assert (err.code, err.params) == ("overlap", params)


@pytest.mark.parametrize(
    "new",
    [
        "video mon-fri 12:00-13:00 slot 20",  # the lunch gap, touching both blocks
        "video mon-fri 17:00-19:00 slot 20",  # right after
        "phone sat,sun 09:00-12:00 slot 15",  # other days, same mode
        "text sat-sun 00:00-23:59 slot 60",
    ],
)
def test_rules_that_do_not_overlap_are_added(new: str) -> None:
    av = add_rule(av_of("Europe/London", PHONE), parse_rule(new))
    assert len(av.rules) == 2


def test_a_hand_built_availability_is_checked_too() -> None:
    a, b = parse_rule(PHONE), parse_rule("video wed 10:00-11:00 slot 20")
    err = refused(Availability, "Europe/London", (a, b))
    assert (err.code, err.params) == ("overlap", {"mode": "phone", "day": "wed"})


def test_remove_rules_removes_one_mode() -> None:
    av = av_of(
        "Europe/London", PHONE, "phone sat 10:00-12:00 slot 15", "video sun 10:00-12:00 slot 20"
    )
    left = remove_rules(av, "phone")
    assert [r.mode for r in left.rules] == ["video"]
    assert remove_rules(left, "phone") == left
    # With phone gone, video may take its hours.
    assert add_rule(left, parse_rule("video mon 09:00-10:00 slot 20"))
    assert refused(remove_rules, av, "fax").code == "unknown_mode"


def test_rules_are_kept_in_week_order() -> None:
    av = av_of("Europe/London", "video sat 10:00-13:00 slot 20", "text mon 14:00-15:00 slot 30",
               "phone mon 09:00-12:00 slot 15")  # fmt: skip
    assert [(r.mode, min(r.weekdays)) for r in av.rules] == [
        ("phone", 0), ("text", 0), ("video", 5)
    ]  # fmt: skip


# --- generating slots ---------------------------------------------------------------------------

LONDON, NEW_YORK, SHANGHAI = "Europe/London", "America/New_York", "Asia/Shanghai"


def test_a_plain_week_in_shanghai() -> None:
    av = av_of(SHANGHAI, "phone mon-fri 09:00-12:00,13:00-17:00 slot 15 break 10:30-10:45",
               "video sat 10:00-13:00 slot 20")  # fmt: skip
    slots = generate(av, date(2027, 3, 8), 7, EPOCH)  # Monday .. Sunday
    assert_well_formed(slots)
    # 12 + 16 quarter hours, less the break, five days; 9 video slots on Saturday; none Sunday.
    assert len(slots) == 5 * (12 + 16 - 1) + 9
    monday = [s for s in slots if s.start.astimezone(ZoneInfo(SHANGHAI)).day == 8]
    assert local(monday, SHANGHAI)[:8] == [
        "09:00", "09:15", "09:30", "09:45", "10:00", "10:15", "10:45", "11:00",
    ]  # fmt: skip
    assert monday[0].start == datetime(2027, 3, 8, 1, 0, tzinfo=UTC)  # UTC+8, no DST
    assert {s.mode for s in slots} == {"phone", "video"}
    assert all(s.end - s.start == timedelta(minutes=20) for s in slots if s.mode == "video")


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # a slot never crosses a break: 10:20 + 20 would end inside 10:30-10:45
        ("phone mon 10:00-11:30 slot 20 break 10:30-10:45", ["10:00", "10:45", "11:05"]),
        ("phone mon 10:00-11:00 slot 30 break 10:00-10:30", ["10:30"]),
        ("phone mon 10:00-11:00 slot 30 break 10:00-11:00", []),
        # the last slot must end by the end of the hours
        ("phone mon 10:00-11:10 slot 30", ["10:00", "10:30"]),
    ],
)
def test_breaks_and_ends(rule: str, expected: list[str]) -> None:
    slots = generate(av_of(SHANGHAI, rule), date(2027, 3, 8), 1, EPOCH)
    assert local(slots, SHANGHAI) == expected


def test_days_off_are_skipped() -> None:
    av = add_day_off(av_of(LONDON, "text daily 09:00-10:00 slot 30"), date(2027, 1, 2))
    slots = generate(av, date(2027, 1, 1), 3, EPOCH)
    assert [s.start.date() for s in slots] == [date(2027, 1, 1)] * 2 + [date(2027, 1, 3)] * 2


def test_only_slots_after_now() -> None:
    av = av_of(LONDON, "text daily 09:00-11:00 slot 30")
    now = datetime(2027, 1, 1, 9, 30, tzinfo=UTC)  # a slot starts right now: it is gone
    assert local(generate(av, date(2027, 1, 1), 1, now), LONDON) == ["10:00", "10:30"]
    other_zone_now = now.astimezone(ZoneInfo("Asia/Tokyo"))  # any aware "now" works
    assert generate(av, date(2027, 1, 1), 1, other_zone_now) == generate(
        av, date(2027, 1, 1), 1, now
    )
    assert generate(av, date(2026, 12, 1), 5, now) == []
    assert generate(av, date(2027, 1, 1), 0, EPOCH) == []
    with pytest.raises(ValueError, match="aware"):
        generate(av, date(2027, 1, 1), 1, datetime(2027, 1, 1))  # naive


@pytest.mark.parametrize(
    ("tz", "day", "rule", "expected_local", "expected_utc"),
    [
        # London springs forward at 01:00 GMT to 02:00 BST: 01:00 and 01:30 do not exist.
        (LONDON, date(2027, 3, 28), "text sun 00:00-04:00 slot 30",
         ["00:00", "00:30", "02:00", "02:30", "03:00", "03:30"],
         ["00:00", "00:30", "01:00", "01:30", "02:00", "02:30"]),
        # the brief's case: hours 01:00-03:00 on the spring-forward night
        (LONDON, date(2027, 3, 28), "text sun 01:00-03:00 slot 30", ["02:00", "02:30"],
         ["01:00", "01:30"]),
        (LONDON, date(2027, 3, 28), "text sun 01:00-03:00 slot 60", ["02:00"], ["01:00"]),
        (LONDON, date(2027, 3, 28), "text sun 01:00-02:00 slot 30", [], []),
        # 45-minute slots: 00:45 GMT runs to 02:30 BST, so 02:15 BST would overlap it
        (LONDON, date(2027, 3, 28), "text sun 00:00-04:00 slot 45", ["00:00", "00:45", "03:00"],
         ["00:00", "00:45", "02:00"]),
        # London falls back at 02:00 BST to 01:00 GMT: 01:00 and 01:30 happen twice, slot once.
        (LONDON, date(2027, 10, 31), "text sun 00:00-04:00 slot 30",
         ["00:00", "00:30", "01:00", "01:30", "02:00", "02:30", "03:00", "03:30"],
         ["23:00", "23:30", "00:00", "00:30", "02:00", "02:30", "03:00", "03:30"]),
        (LONDON, date(2027, 10, 31), "text sun 01:00-02:00 slot 30", ["01:00", "01:30"],
         ["00:00", "00:30"]),
        # New York springs forward at 02:00 EST to 03:00 EDT.
        (NEW_YORK, date(2027, 3, 14), "video sun 01:00-04:00 slot 30",
         ["01:00", "01:30", "03:00", "03:30"], ["06:00", "06:30", "07:00", "07:30"]),
        (NEW_YORK, date(2027, 3, 14), "video sun 02:00-03:00 slot 15", [], []),
        # New York falls back at 02:00 EDT to 01:00 EST.
        (NEW_YORK, date(2027, 11, 7), "video sun 00:00-03:00 slot 60", ["00:00", "01:00", "02:00"],
         ["04:00", "05:00", "07:00"]),
        # Shanghai has no DST: the same dates are ordinary.
        (SHANGHAI, date(2027, 3, 14), "video sun 01:00-04:00 slot 30",
         ["01:00", "01:30", "02:00", "02:30", "03:00", "03:30"],
         ["17:00", "17:30", "18:00", "18:30", "19:00", "19:30"]),
        (SHANGHAI, date(2027, 10, 31), "text sun 00:00-04:00 slot 60",
         ["00:00", "01:00", "02:00", "03:00"], ["16:00", "17:00", "18:00", "19:00"]),
    ],
)  # fmt: skip
def test_dst_nights(
    tz: str, day: date, rule: str, expected_local: list[str], expected_utc: list[str]
) -> None:
    slots = generate(av_of(tz, rule), day, 1, EPOCH)
    assert_well_formed(slots)
    assert local(slots, tz) == expected_local
    assert [s.start.strftime("%H:%M") for s in slots] == expected_utc
    minutes = parse_rule(rule).slot_minutes
    assert all(s.end - s.start == timedelta(minutes=minutes) for s in slots)  # real time
    # fall back: every slot is the first of its wall time (fold=0), so labels never repeat
    assert len(set(expected_local)) == len(expected_local)


@pytest.mark.parametrize(
    ("tz", "first_day"),
    [
        (LONDON, date(2027, 3, 22)),
        (LONDON, date(2027, 10, 25)),
        (NEW_YORK, date(2027, 3, 8)),
        (NEW_YORK, date(2027, 11, 1)),
        (SHANGHAI, date(2027, 3, 8)),
    ],
)
def test_a_week_across_a_dst_change_keeps_office_hours(tz: str, first_day: date) -> None:
    """Daytime hours are untouched by a night-time change: 16 half hours a day, at 09:00 ..
    16:30 local every day, whatever the UTC offset."""
    av = av_of(tz, "phone daily 09:00-17:00 slot 30")
    slots = generate(av, first_day, 7, EPOCH)
    assert_well_formed(slots)
    assert len(slots) == 7 * 16
    zone = ZoneInfo(tz)
    by_day: dict[date, list[str]] = {}
    for s in slots:
        by_day.setdefault(s.start.astimezone(zone).date(), []).append(
            s.start.astimezone(zone).strftime("%H:%M")
        )
    expected = [f"{h:02d}:{m:02d}" for h in range(9, 17) for m in (0, 30)]
    assert by_day == {first_day + timedelta(days=k): expected for k in range(7)}
    offsets = {s.start.astimezone(zone).utcoffset() for s in slots}
    assert len(offsets) == (1 if tz == SHANGHAI else 2)


@pytest.mark.parametrize("tz", [LONDON, NEW_YORK, SHANGHAI, "Australia/Lord_Howe"])
@pytest.mark.parametrize("slot", [25, 45, 60])
def test_no_overlap_in_real_time_all_year(tz: str, slot: int) -> None:
    """Round-the-clock hours for a whole year, in zones with one-hour and (Lord Howe)
    half-hour DST changes: slots never overlap and each lasts exactly its length."""
    av = av_of(tz, f"text daily 00:00-11:59 slot {slot}", f"video daily 11:59-23:59 slot {slot}")
    slots = generate(av, date(2027, 1, 1), 365, EPOCH)
    assert_well_formed(slots)
    assert all(s.end - s.start == timedelta(minutes=slot) for s in slots)
    assert len({s.start for s in slots}) == len(slots)


# --- JSON ---------------------------------------------------------------------------------------


def _full() -> Availability:
    av = av_of(NEW_YORK, "phone mon-fri 09:00-12:00,13:00-17:00 slot 15 break 10:30-10:45",
               "video sat 10:00-13:00 slot 20", "text sun-mon 18:00-20:00 slot 60")  # fmt: skip
    return add_day_off(add_day_off(av, date(2027, 1, 1)), date(2026, 12, 24))


@pytest.mark.parametrize("av", [_full(), Availability(SHANGHAI)], ids=["full", "empty"])
def test_json_round_trip(av: Availability) -> None:
    stored = json.dumps(availability_to_json(av), sort_keys=True)
    back = availability_from_json(json.loads(stored))
    assert back == av
    assert json.dumps(availability_to_json(back), sort_keys=True) == stored  # stable


def test_json_shape() -> None:
    data = availability_to_json(_full())
    assert data["version"] == 1 and data["tz"] == NEW_YORK
    assert data["days_off"] == ["2026-12-24", "2027-01-01"]
    assert data["rules"][0] == {
        "mode": "phone",
        "weekdays": [0, 1, 2, 3, 4],
        "hours": [["09:00", "12:00"], ["13:00", "17:00"]],
        "slot_minutes": 15,
        "breaks": [["10:30", "10:45"]],
    }


def _broken(change: str) -> dict[str, object]:
    data = availability_to_json(_full())
    rule = data["rules"][0]
    match change:
        case "version":
            data["version"] = 2
        case "no_tz":
            del data["tz"]
        case "bad_tz":
            data["tz"] = "Nowhere/City"
        case "slot_text":
            rule["slot_minutes"] = "15"
        case "bad_time":
            rule["hours"] = [["9am", "12:00"]]
        case "overlap":
            data["rules"].append({**rule, "mode": "video"})
        case "bad_date":
            data["days_off"] = ["2027-02-30"]
    return data


@pytest.mark.parametrize(
    "change", ["version", "no_tz", "bad_tz", "slot_text", "bad_time", "overlap", "bad_date"]
)
def test_json_refuses_what_is_not_an_availability(change: str) -> None:
    with pytest.raises(ValueError, match="not an availability"):
        availability_from_json(_broken(change))


# --- FHIR ---------------------------------------------------------------------------------------


def test_fhir_schedule_validates() -> None:
    horizon = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
    res = fhir_schedule(_full(), "sched-1", "Practitioner/42", horizon)
    FhirSchedule.model_validate(res)
    assert res["resourceType"] == "Schedule" and res["active"] is True
    assert res["actor"] == [{"reference": "Practitioner/42"}]
    assert [st["coding"][0]["code"] for st in res["serviceType"]] == list(MODES)
    assert res["planningHorizon"] == {
        "start": "2027-01-01T00:00:00+00:00", "end": "2027-02-01T00:00:00+00:00"
    }  # fmt: skip
    assert "Phone · Mon–Fri · 09:00–12:00, 13:00–17:00" in res["comment"]
    assert "America/New_York" in res["comment"]

    empty = fhir_schedule(Availability(SHANGHAI), "sched-2", "Practitioner/42")
    FhirSchedule.model_validate(empty)
    assert empty["active"] is False and "serviceType" not in empty
    assert "planningHorizon" not in empty
    assert "<code>" not in empty["comment"]  # plain text


@pytest.mark.parametrize("status", SLOT_STATUSES)
def test_fhir_slot_validates(status: str) -> None:
    slots = generate(av_of(NEW_YORK, "video sun 01:00-04:00 slot 30"), date(2027, 3, 14), 1, EPOCH)
    res = fhir_slot(slots[0], "slot-1", "sched-1", status)
    FhirSlot.model_validate(res)
    assert res["schedule"] == {"reference": "Schedule/sched-1"}
    assert res["status"] == status
    assert res["start"] == "2027-03-14T06:00:00+00:00"
    assert res["end"] == "2027-03-14T06:30:00+00:00"
    assert res["serviceType"][0]["coding"][1]["code"] == "VIDEOCONF"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: fhir_slot(s, "slot-1", "sched-1", "booked"), "status"),
        (lambda s: fhir_slot(s, "slot 1", "sched-1", "free"), "slot_id"),
        (lambda s: fhir_slot(s, "slot-1", "x" * 65, "free"), "schedule_id"),
        (lambda s: fhir_slot(SlotSpec("text", s.end, s.start), "a", "b", "free"), "start"),
        (lambda s: fhir_schedule(Availability(LONDON), "s", " "), "practitioner_ref"),
    ],
)
def test_fhir_refuses(call: object, match: str) -> None:
    spec = SlotSpec(
        "text", datetime(2027, 1, 1, 9, tzinfo=UTC), datetime(2027, 1, 1, 10, tzinfo=UTC)
    )
    assert callable(call)
    with pytest.raises(ValueError, match=match):
        call(spec)


# --- what the doctor reads ----------------------------------------------------------------------


def test_describe_in_english() -> None:
    assert describe(_full(), Translator("en")) == [
        "Phone · Mon–Fri · 09:00–12:00, 13:00–17:00 · 15 min slots · break 10:30–10:45",
        "Text · Sun, Mon · 18:00–20:00 · 60 min slots",
        "Video · Sat · 10:00–13:00 · 20 min slots",
        "Days off: 2026-12-24, 2027-01-01",
    ]


@pytest.mark.parametrize(
    ("locale", "first_line"),
    [
        ("zh_Hans",
         "电话 · 周一至周五 · 09:00–12:00、13:00–17:00 · 每号 15 分钟 · 休息 10:30–10:45"),
        ("ru",
         "Телефон · Пн–Пт · 09:00–12:00, 13:00–17:00 · слоты по 15 мин · перерыв 10:30–10:45"),
    ],
)  # fmt: skip
def test_describe_in_other_languages(locale: str, first_line: str) -> None:
    assert describe(_full(), Translator(locale))[0] == first_line


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("daily", "Every day"),
        ("mon,wed,fri", "Mon, Wed, Fri"),
        ("sat,sun", "Sat, Sun"),
        ("fri-mon", "Fri–Mon"),
        ("mon-wed,fri", "Mon–Wed, Fri"),
        ("sun,tue-thu", "Tue–Thu, Sun"),
        ("sun,mon", "Sun, Mon"),
        ("sun,mon,wed", "Sun, Mon, Wed"),
        ("fri-mon,wed", "Fri–Mon, Wed"),
        ("mon-sat", "Mon–Sat"),
    ],
)
def test_describe_days(days: str, expected: str) -> None:
    (line,) = describe(av_of(LONDON, f"text {days} 09:00-10:00 slot 30"), Translator("en"))
    assert line == f"Text · {expected} · 09:00–10:00 · 30 min slots"


def test_describe_nothing_yet() -> None:
    lines = describe(Availability(LONDON), Translator("en").plain)
    assert lines == ["No consultation hours yet. Add them like this: /schedule phone mon-fri "
                     "09:00-12:00 slot 15"]  # fmt: skip


# --- the catalog --------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_every_error_code_has_a_message(locale: str) -> None:
    messages = catalog(locale)
    ids = [f"schedule.error.{code}" for code in ERROR_CODES]
    ids += [f"schedule.mode.{mode}" for mode in MODES]
    ids += [f"schedule.day.{day}" for day in DAY_KEYS]
    assert [i for i in ids if i not in messages] == []


# One example of every code, to check its params fill its message exactly.
_EXAMPLES: list[tuple[object, tuple[object, ...]]] = [
    (parse_rule, ("",)),
    (parse_rule, ("fax mon 09:00-10:00 slot 15",)),
    (parse_rule, ("phone xyz 09:00-10:00 slot 15",)),
    (parse_rule, ("phone mon 10:00-09:00 slot 15",)),
    (parse_rule, ("phone mon 09:00-10:00,09:30-11:00 slot 15",)),
    (parse_rule, ("phone mon 09:00-10:00",)),
    (parse_rule, ("phone mon 09:00-10:00 slot 200",)),
    (parse_rule, ("phone mon 09:00-10:00 slot 15 break 11:00-11:15",)),
    (add_rule, (av_of(LONDON, PHONE), parse_rule("video mon 09:00-10:00 slot 20"))),
    (parse_day_off, ("someday", TODAY)),
    (parse_day_off, ("2020-01-01", TODAY)),
]


def test_error_examples_cover_every_code() -> None:
    assert sorted(refused(f, *a).code for f, a in _EXAMPLES) == sorted(ERROR_CODES)


@pytest.mark.parametrize(("func", "args"), _EXAMPLES)
@pytest.mark.parametrize("locale", LOCALES)
def test_error_params_fill_the_message(
    locale: str, func: object, args: tuple[object, ...]
) -> None:
    err = refused(func, *args)
    assert set(err.params) == placeholders(catalog(locale)[err.msgid])
    text = error_text(err, Translator(locale))
    assert "{" not in text and text != err.msgid


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", "overlap your Phone hours on Mon"),
        ("zh_Hans", "与您周一的电话接诊时间重叠"),
        ("ru", "с вашими часами «Телефон» (Пн)"),
    ],
)
def test_overlap_message_names_mode_and_day(locale: str, expected: str) -> None:
    err = refused(add_rule, av_of(LONDON, PHONE), parse_rule("video mon 09:00-10:00 slot 20"))
    assert expected in error_text(err, Translator(locale))


def _code_spans(locale: str) -> list[tuple[str, str]]:
    return [
        (msgid, span)
        for msgid, text in catalog(locale).items()
        if msgid.startswith("schedule.")
        for span in re.findall(r"<code>(.*?)</code>", text)
    ]


@pytest.mark.parametrize("locale", LOCALES)
def test_examples_in_the_messages_work(locale: str) -> None:
    """What a message tells the doctor to type is accepted as typed."""
    spans = _code_spans(locale)
    assert len(spans) > 10
    for msgid, span in spans:
        if span.startswith("/schedule"):
            parse_rule(span)
        elif span.startswith("slot "):
            parse_rule(f"phone mon 09:00-12:00 {span}")
        elif msgid in ("schedule.error.bad_date", "schedule.error.past_day"):
            parse_day_off(span, TODAY)
        else:
            parse_rule(f"phone mon {span} slot 15")
