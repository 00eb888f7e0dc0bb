"""flows/timing.py: reading times, days, periods and zones in three languages; occurrences
across time zones and DST changes; jitter; quiet hours; catching up after downtime. Pure: no
database, no clock (every "now" is given)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows import timing
from flows.timing import (
    CATCH_UP,
    MAX_PER_DAY,
    Schedule,
    TimingError,
    catch_up,
    in_quiet,
    jitter_seconds,
    next_occurrence,
    occurrences_between,
    parse_clock,
    parse_days,
    parse_period,
    parse_times,
    parse_zone,
    quiet_end_utc,
)
from locales import LOCALES, Translator, catalog, placeholders

TODAY = date(2026, 12, 1)  # a Tuesday


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def refused(func: object, *args: object) -> TimingError:
    assert callable(func)
    with pytest.raises(TimingError) as err:
        func(*args)
    return err.value


# --- parse_times --------------------------------------------------------------------------------

TWICE = (("08:00", "20:00"), None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # English
        ("08:00, 20:00", TWICE),
        ("08:00 and 20:00", TWICE),
        ("8am, 8pm", TWICE),
        ("8 am and 8 pm", TWICE),
        ("8 a.m.; 8 p.m.", TWICE),
        ("20:00, 08:00, 8:00", TWICE),  # sorted, duplicates merged
        ("20h", (("20:00",), None)),
        ("8.30", (("08:30",), None)),
        ("8:30 pm", (("20:30",), None)),
        ("12 pm", (("12:00",), None)),
        ("12 am", (("00:00",), None)),
        ("noon and midnight", (("00:00", "12:00"), None)),
        ("8 in the morning", (("08:00",), None)),
        ("11 at night", (("23:00",), None)),
        ("morning and evening", TWICE),
        ("at bedtime", (("22:00",), None)),
        ("twice a day", TWICE),
        ("3 times a day", (("08:00", "14:00", "20:00"), None)),
        ("tid", (("08:00", "14:00", "20:00"), None)),
        ("b.i.d.", TWICE),
        ("every 8 hours", (("08:00",), 8)),
        ("every 8h", (("08:00",), 8)),
        ("q8h", (("08:00",), 8)),
        ("q12h", (("08:00",), 12)),
        ("every 8 hours from 6am", (("06:00",), 8)),
        ("every 6 hours starting at 00:00", (("00:00",), 6)),
        ("every 36 hours", (("08:00",), 36)),
        ("6 times a day", (("08:00",), 4)),
        # Chinese
        ("早上八点", (("08:00",), None)),
        ("晚上8点", (("20:00",), None)),
        ("中午12点", (("12:00",), None)),
        ("8点半", (("08:30",), None)),
        ("下午三点", (("15:00",), None)),
        ("20点", (("20:00",), None)),
        ("早上八点、晚上八点", TWICE),
        ("早上8点和晚上8点", TWICE),
        ("八点一刻", (("08:15",), None)),
        ("晚上十点三刻", (("22:45",), None)),
        ("凌晨2点", (("02:00",), None)),
        ("夜里11点", (("23:00",), None)),
        ("中午1点", (("13:00",), None)),
        ("十二点", (("12:00",), None)),
        ("早晚各一次", TWICE),
        ("每天3次", (("08:00", "14:00", "20:00"), None)),
        ("一天两次", TWICE),
        ("每8小时", (("08:00",), 8)),
        ("每隔八小时", (("08:00",), 8)),
        ("8小时一次", (("08:00",), 8)),
        ("每8小时，从早上6点开始", (("06:00",), 8)),
        # full-width digits, colons and commas
        ("０８：００，２０：００", TWICE),
        ("０８：００、２０：００", TWICE),
        # Russian
        ("8:00 и 20:00", TWICE),
        ("в 8 утра", (("08:00",), None)),
        ("8 вечера", (("20:00",), None)),
        ("в 8 утра и в 8 вечера", TWICE),
        ("в 8 часов утра", (("08:00",), None)),
        ("в 2 часа дня", (("14:00",), None)),
        ("12 ночи", (("00:00",), None)),
        ("утром и вечером", TWICE),
        ("2 раза в день", TWICE),
        ("дважды в день", TWICE),
        ("каждые 8 часов", (("08:00",), 8)),
        ("каждые 12 часов с 9 утра", (("09:00",), 12)),
        ("8:00; 14:00; 20:00", (("08:00", "14:00", "20:00"), None)),
    ],
)
def test_parse_times_accepts(text: str, expected: tuple[tuple[str, ...], int | None]) -> None:
    assert parse_times(text) == expected


@pytest.mark.parametrize(
    ("text", "msgid"),
    [
        ("25:00", "timing.error.bad_time"),
        ("8:75", "timing.error.bad_time"),
        ("08:00, 25:00", "timing.error.bad_time"),
        ("8:7", "timing.error.bad_time"),
        ("123", "timing.error.bad_time"),
        ("13 am", "timing.error.bad_time"),
        ("after lunch", "timing.error.bad_time"),
        ("两片", "timing.error.bad_time"),
        ("после еды", "timing.error.bad_time"),
        ("", "timing.error.empty"),
        ("   ", "timing.error.empty"),
        (" , ; ", "timing.error.empty"),
        ("50 times a day", "timing.error.too_many"),
        ("每天20次", "timing.error.too_many"),
        ("13 раз в день", "timing.error.too_many"),
        (", ".join(f"{h:02d}:00" for h in range(13)), "timing.error.too_many"),
        ("every 1 hours", "timing.error.bad_interval"),
        ("every hour", "timing.error.bad_interval"),
        ("每小时", "timing.error.bad_interval"),
        ("каждый час", "timing.error.bad_interval"),
        ("every 5 hours", "timing.error.bad_interval"),
        ("q7h", "timing.error.bad_interval"),
        ("every 96 hours", "timing.error.bad_interval"),
        ("every 8 hours at 6am and 9am", "timing.error.bad_time"),
    ],
)
def test_parse_times_refuses(text: str, msgid: str) -> None:
    assert refused(parse_times, text).msgid == msgid


def test_parse_times_error_params() -> None:
    assert refused(parse_times, "08:00, 25:00").params == {"value": "25:00"}
    assert refused(parse_times, "take it at lunch").params == {"value": "take it at lunch"}
    assert refused(parse_times, "x" * 200).params["value"].endswith("…")
    assert refused(parse_times, "50 times a day").params == {"max": MAX_PER_DAY}
    assert refused(parse_times, "every 5 hours").params == {"value": 5}


def test_twelve_times_is_the_limit() -> None:
    times, every = parse_times(", ".join(f"{h:02d}:00" for h in range(0, 24, 2)))
    assert len(times) == MAX_PER_DAY and every is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22:00", "22:00"),
        ("10 pm", "22:00"),
        ("晚上十点", "22:00"),
        ("в 22:00", "22:00"),
        ("7 утра", "07:00"),
        ("midnight", "00:00"),
        ("０７：３０", "07:30"),
    ],
)
def test_parse_clock(text: str, expected: str) -> None:
    assert parse_clock(text) == expected


@pytest.mark.parametrize(
    ("text", "msgid"),
    [
        ("7 and 8", "timing.error.one_time"),
        ("every 8 hours", "timing.error.one_time"),
        ("", "timing.error.empty"),
        ("late", "timing.error.bad_time"),
        ("24:30", "timing.error.bad_time"),
    ],
)
def test_parse_clock_refuses(text: str, msgid: str) -> None:
    assert refused(parse_clock, text).msgid == msgid


# --- parse_days ---------------------------------------------------------------------------------

EVERY = (1, 2, 3, 4, 5, 6, 7)
MON_FRI = (1, 2, 3, 4, 5)
MWF = (1, 3, 5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("every day", EVERY),
        ("Daily", EVERY),
        ("每天", EVERY),
        ("ежедневно", EVERY),
        ("каждый день", EVERY),
        ("weekdays", MON_FRI),
        ("工作日", MON_FRI),
        ("будни", MON_FRI),
        ("по будням", MON_FRI),
        ("weekends", (6, 7)),
        ("周末", (6, 7)),
        ("выходные", (6, 7)),
        ("mon-fri", MON_FRI),
        ("Mon–Fri", MON_FRI),
        ("monday to friday", MON_FRI),
        ("mon, wed, fri", MWF),
        ("Mondays and Fridays", (1, 5)),
        ("fri-mon", (1, 5, 6, 7)),  # wraps over the weekend
        ("пн, ср, пт", MWF),
        ("пн-пт", MON_FRI),
        ("с пн по пт", MON_FRI),
        ("по понедельникам", (1,)),
        ("周一至周五", MON_FRI),
        ("周一到周五", MON_FRI),
        ("星期一至星期五", MON_FRI),
        ("周一、三、五", MWF),
        ("每周一、三、五", MWF),
        ("周六、周日", (6, 7)),
        ("星期天", (7,)),
        ("1,3,5", MWF),
        ("1-5", MON_FRI),
        ("１，３，５", MWF),
        ("5, 1, 3, 3", MWF),
    ],
)
def test_parse_days_accepts(text: str, expected: tuple[int, ...]) -> None:
    assert parse_days(text) == expected


@pytest.mark.parametrize(
    ("text", "msgid"),
    [
        ("someday", "timing.error.bad_days"),
        ("0,8", "timing.error.bad_days"),
        ("mon-", "timing.error.bad_days"),
        ("-fri", "timing.error.bad_days"),
        ("когда-нибудь", "timing.error.bad_days"),
        ("有时候", "timing.error.bad_days"),
        ("", "timing.error.empty"),
    ],
)
def test_parse_days_refuses(text: str, msgid: str) -> None:
    error = refused(parse_days, text)
    assert error.msgid == msgid
    if msgid == "timing.error.bad_days":
        assert error.params == {"value": text}


# --- parse_period -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30 days", (TODAY, date(2026, 12, 30))),
        ("for 30 days", (TODAY, date(2026, 12, 30))),
        ("2 weeks", (TODAY, date(2026, 12, 14))),
        ("a week", (TODAY, date(2026, 12, 7))),
        ("3 months", (TODAY, date(2027, 2, 28))),
        ("1 year", (TODAY, date(2027, 11, 30))),
        ("5 years", (TODAY, date(2031, 11, 30))),
        ("30天", (TODAY, date(2026, 12, 30))),
        ("2周", (TODAY, date(2026, 12, 14))),
        ("两周", (TODAY, date(2026, 12, 14))),
        ("一个月", (TODAY, date(2026, 12, 31))),
        ("30 дней", (TODAY, date(2026, 12, 30))),
        ("на 10 дней", (TODAY, date(2026, 12, 10))),
        ("в течение 2 недель", (TODAY, date(2026, 12, 14))),
        ("неделю", (TODAY, date(2026, 12, 7))),
        ("until 2026-12-31", (TODAY, date(2026, 12, 31))),
        ("until 31 December", (TODAY, date(2026, 12, 31))),
        ("до 31.12.2026", (TODAY, date(2026, 12, 31))),
        ("до 31 декабря", (TODAY, date(2026, 12, 31))),
        ("到2026年12月31日", (TODAY, date(2026, 12, 31))),
        ("到1月15日", (TODAY, date(2027, 1, 15))),  # no year: the next 15 January
        ("2026-12-03 to 2026-12-31", (date(2026, 12, 3), date(2026, 12, 31))),
        ("2026-12-03 – 2026-12-31", (date(2026, 12, 3), date(2026, 12, 31))),
        ("с 5 декабря по 20 декабря", (date(2026, 12, 5), date(2026, 12, 20))),
        ("from 2026-12-05 for 10 days", (date(2026, 12, 5), date(2026, 12, 14))),
        ("从2026年12月5日开始10天", (date(2026, 12, 5), date(2026, 12, 14))),
        ("from tomorrow for 2 weeks", (date(2026, 12, 2), date(2026, 12, 15))),
        ("from tomorrow until 31.12", (date(2026, 12, 2), date(2026, 12, 31))),
        ("from 2026-12-05", (date(2026, 12, 5), None)),
        ("ongoing", (TODAY, None)),
        ("Ongoing.", (TODAY, None)),
        ("长期", (TODAY, None)),
        ("постоянно", (TODAY, None)),
        ("2026-11-30 to 2026-12-10", (date(2026, 11, 30), date(2026, 12, 10))),  # yesterday
        ("until 2031-12-01", (TODAY, date(2031, 12, 1))),
    ],
)
def test_parse_period_accepts(text: str, expected: tuple[date, date | None]) -> None:
    assert parse_period(text, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "msgid"),
    [
        ("2026-12-31 to 2026-12-01", "timing.error.end_before_start"),
        ("until 2026-11-20", "timing.error.end_before_start"),
        ("2026-11-01 to 2026-11-05", "timing.error.start_past"),
        ("from 2026-11-29", "timing.error.start_past"),
        ("10 years", "timing.error.too_long"),
        ("6 лет", "timing.error.too_long"),
        ("until 2031-12-02", "timing.error.too_long"),
        ("from 2032-01-01", "timing.error.too_long"),
        ("9999 years", "timing.error.too_long"),
        ("for 0 days", "timing.error.bad_period"),
        ("until my next check-up", "timing.error.bad_period"),
        ("30 days ongoing", "timing.error.bad_period"),
        ("2026-12-03 to 2026-12-05 for 3 days", "timing.error.bad_period"),
        ("until 2026-02-30", "timing.error.bad_period"),
        ("30", "timing.error.bad_period"),
        ("直到病好", "timing.error.bad_period"),
        ("пока не пройдёт", "timing.error.bad_period"),
        ("", "timing.error.empty"),
    ],
)
def test_parse_period_refuses(text: str, msgid: str) -> None:
    assert refused(parse_period, text, TODAY).msgid == msgid


def test_parse_period_params() -> None:
    assert refused(parse_period, "10 years", TODAY).params == {"years": 5}
    assert refused(parse_period, "someday", TODAY).params == {"value": "someday"}


# --- parse_zone ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Europe/Moscow", "Europe/Moscow"),
        ("asia/shanghai", "Asia/Shanghai"),
        ("Asia/Shanghai ", "Asia/Shanghai"),
        ("UTC", "UTC"),
        ("GMT", "UTC"),
        ("UTC+0", "UTC"),
        ("UTC+3", "Etc/GMT-3"),
        ("UTC +3", "Etc/GMT-3"),
        ("GMT-5", "Etc/GMT+5"),
        ("+08:00", "Etc/GMT-8"),
        ("UTC＋８", "Etc/GMT-8"),
        ("+0800", "Etc/GMT-8"),
        ("UTC+14", "Etc/GMT-14"),
        ("UTC-12", "Etc/GMT+12"),
        ("+05:30", "Asia/Kolkata"),
        ("Moscow", "Europe/Moscow"),
        ("new york", "America/New_York"),
        ("北京时间", "Asia/Shanghai"),
        ("Москва", "Europe/Moscow"),
        ("мск", "Europe/Moscow"),
    ],
)
def test_parse_zone_accepts(text: str, expected: str) -> None:
    assert parse_zone(text) == expected


def test_parse_zone_offsets_mean_what_people_mean() -> None:
    """Etc/GMT signs are POSIX (inverted): UTC+3 must be three hours ahead of UTC."""
    noon = utc(2026, 12, 1, 12)
    from zoneinfo import ZoneInfo

    assert noon.astimezone(ZoneInfo(parse_zone("UTC+3"))).hour == 15
    assert noon.astimezone(ZoneInfo(parse_zone("GMT-5"))).hour == 7


@pytest.mark.parametrize(
    ("text", "msgid"),
    [
        ("Mars/Base", "timing.error.bad_zone"),
        ("UTC+15", "timing.error.bad_zone"),
        ("UTC-13", "timing.error.bad_zone"),
        ("+05:15", "timing.error.bad_zone"),
        ("localtime", "timing.error.bad_zone"),
        ("posix/Europe/Moscow", "timing.error.bad_zone"),
        ("somewhere warm", "timing.error.bad_zone"),
        ("", "timing.error.empty"),
    ],
)
def test_parse_zone_refuses(text: str, msgid: str) -> None:
    assert refused(parse_zone, text).msgid == msgid


# --- Schedule -----------------------------------------------------------------------------------


def test_schedule_json_round_trip() -> None:
    schedule = Schedule(
        times=("20:00", "08:00"), days=(5, 1, 3), start=TODAY, end=date(2026, 12, 31)
    )
    assert schedule.times == ("08:00", "20:00") and schedule.days == MWF
    assert Schedule.from_json(schedule.to_json()) == schedule
    ongoing = Schedule(times=("06:00",), every_hours=8, start=TODAY)
    assert Schedule.from_json(ongoing.to_json()) == ongoing


@pytest.mark.parametrize(
    "text", ["{}", "not json", '{"times": ["25:00"], "start": "2026-12-01"}', "[]"]
)
def test_schedule_from_json_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a schedule"):
        Schedule.from_json(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"times": ()},
        {"times": ("8:00",)},
        {"times": ("08:00",), "days": (0,)},
        {"times": ("08:00",), "every_hours": 1},
        {"times": ("08:00", "09:00"), "every_hours": 8},
    ],
)
def test_schedule_refuses_impossible(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"schedule|weekdays|every_hours|HH:MM"):
        Schedule(start=TODAY, **kwargs)  # type: ignore[arg-type]


# --- occurrences --------------------------------------------------------------------------------


def labels(items: list[tuple[str, datetime]]) -> list[str]:
    return [label for label, _ in items]


def test_next_occurrence_in_shanghai_is_strictly_after() -> None:
    schedule = Schedule(times=("08:00", "20:00"), start=TODAY)
    # 08:00 in Shanghai (UTC+8, no DST) is 00:00 UTC.
    at_eight = utc(2026, 12, 1, 0)
    assert next_occurrence(schedule, "Asia/Shanghai", 0, at_eight - timedelta(seconds=1)) == (
        "2026-12-01 08:00",
        at_eight,
    )
    assert next_occurrence(schedule, "Asia/Shanghai", 0, at_eight) == (
        "2026-12-01 20:00",
        utc(2026, 12, 1, 12),
    )
    summer = Schedule(times=("08:00",), start=date(2026, 7, 1))
    assert next_occurrence(summer, "Asia/Shanghai", 0, utc(2026, 7, 1)) == (
        "2026-07-02 08:00",
        utc(2026, 7, 2, 0),
    )


def test_time_zone_move_keeps_labels_and_moves_instants() -> None:
    """The same schedule after a move from Moscow (UTC+3) to Shanghai (UTC+8): the wall time
    and the labels stay, the instant changes."""
    schedule = Schedule(times=("08:00",), start=TODAY)
    after = utc(2026, 12, 1, 3)  # 06:00 in Moscow, 11:00 in Shanghai
    assert next_occurrence(schedule, "Europe/Moscow", 0, after) == (
        "2026-12-01 08:00",
        utc(2026, 12, 1, 5),
    )
    assert next_occurrence(schedule, "Asia/Shanghai", 0, after) == (
        "2026-12-02 08:00",
        utc(2026, 12, 2, 0),
    )
    until = utc(2026, 12, 3, 12)
    moscow = occurrences_between(schedule, "Europe/Moscow", 0, after, until)
    shanghai = occurrences_between(schedule, "Asia/Shanghai", 0, after, until)
    assert labels(moscow) == ["2026-12-01 08:00", "2026-12-02 08:00", "2026-12-03 08:00"]
    assert labels(moscow)[1:] == labels(shanghai)
    assert all(
        m[1] - s[1] == timedelta(hours=5) for m, s in zip(moscow[1:], shanghai, strict=True)
    )


def test_shift_minutes_moves_the_instant_not_the_label() -> None:
    schedule = Schedule(times=("08:00",), start=TODAY)
    assert next_occurrence(schedule, "UTC", 30, utc(2026, 12, 1)) == (
        "2026-12-01 08:00",
        utc(2026, 12, 1, 8, 30),
    )
    assert next_occurrence(schedule, "UTC", -90, utc(2026, 12, 1)) == (
        "2026-12-01 08:00",
        utc(2026, 12, 1, 6, 30),
    )
    # The shift may cross midnight; the day filter and bounds stay with the intended day.
    late = Schedule(times=("23:45",), days=(2,), start=TODAY, end=TODAY)
    assert occurrences_between(late, "Asia/Shanghai", 30, utc(2026, 11, 30), utc(2026, 12, 9)) == [
        ("2026-12-01 23:45", utc(2026, 12, 1, 16, 15))  # 00:15 on Wednesday in Shanghai
    ]


def test_days_filter() -> None:
    schedule = Schedule(times=("09:00",), days=MWF, start=TODAY)  # TODAY is a Tuesday
    got = occurrences_between(schedule, "UTC", 0, utc(2026, 12, 1), utc(2026, 12, 8, 23))
    assert labels(got) == ["2026-12-02 09:00", "2026-12-04 09:00", "2026-12-07 09:00"]
    assert all(at.isoweekday() in MWF for _, at in got)


def test_start_and_end_bounds() -> None:
    schedule = Schedule(times=("08:00", "20:00"), start=date(2026, 12, 3), end=date(2026, 12, 4))
    assert next_occurrence(schedule, "UTC", 0, utc(2026, 12, 1)) == (
        "2026-12-03 08:00",
        utc(2026, 12, 3, 8),
    )
    assert labels(occurrences_between(schedule, "UTC", 0, utc(2026, 11, 1), utc(2027, 1, 1))) == [
        "2026-12-03 08:00",
        "2026-12-03 20:00",
        "2026-12-04 08:00",
        "2026-12-04 20:00",
    ]
    assert next_occurrence(schedule, "UTC", 0, utc(2026, 12, 4, 20)) is None
    # End dates are local: 20:00 on the last day in Shanghai is 12:00 UTC.
    assert next_occurrence(schedule, "Asia/Shanghai", 0, utc(2026, 12, 4, 11, 59)) == (
        "2026-12-04 20:00",
        utc(2026, 12, 4, 12),
    )


def test_every_hours_counts_from_the_anchor_across_midnight() -> None:
    schedule = Schedule(times=("08:00",), every_hours=8, start=TODAY)
    got = occurrences_between(schedule, "UTC", 0, utc(2026, 11, 30), utc(2026, 12, 2, 23))
    assert labels(got) == [
        "2026-12-01 08:00",
        "2026-12-01 16:00",
        "2026-12-02 00:00",
        "2026-12-02 08:00",
        "2026-12-02 16:00",
    ]
    assert [at.hour for _, at in got] == [8, 16, 0, 8, 16]


def test_every_36_hours_alternates_morning_and_evening() -> None:
    schedule = Schedule(times=("08:00",), every_hours=36, start=TODAY)
    got = occurrences_between(schedule, "Europe/Moscow", 0, utc(2026, 11, 30), utc(2026, 12, 6))
    assert labels(got) == [
        "2026-12-01 08:00",
        "2026-12-02 20:00",
        "2026-12-04 08:00",
        "2026-12-05 20:00",
    ]


def test_every_hours_with_days_filter() -> None:
    schedule = Schedule(times=("08:00",), every_hours=12, days=(3,), start=TODAY)
    got = occurrences_between(schedule, "UTC", 0, utc(2026, 12, 1), utc(2026, 12, 10))
    assert labels(got) == [
        "2026-12-02 08:00",
        "2026-12-02 20:00",
        "2026-12-09 08:00",
        "2026-12-09 20:00",
    ]


def test_london_spring_forward_gap_fires_once_after_the_gap() -> None:
    """29 March 2026: 01:00 GMT jumps to 02:00 BST. 01:30 does not exist; with fold=0 it is
    read with the old offset (GMT): 01:30 UTC, which is 02:30 BST."""
    schedule = Schedule(times=("01:30", "08:00"), start=date(2026, 3, 28))
    got = occurrences_between(schedule, "Europe/London", 0, utc(2026, 3, 28), utc(2026, 3, 30, 12))
    assert got == [
        ("2026-03-28 01:30", utc(2026, 3, 28, 1, 30)),
        ("2026-03-28 08:00", utc(2026, 3, 28, 8)),
        ("2026-03-29 01:30", utc(2026, 3, 29, 1, 30)),  # 02:30 BST
        ("2026-03-29 08:00", utc(2026, 3, 29, 7)),  # 08:00 BST
        ("2026-03-30 01:30", utc(2026, 3, 30, 0, 30)),
        ("2026-03-30 08:00", utc(2026, 3, 30, 7)),
    ]


def test_london_fall_back_ambiguous_fires_once_the_first_time() -> None:
    """25 October 2026: 02:00 BST falls back to 01:00 GMT; 01:30 happens twice."""
    schedule = Schedule(times=("01:30",), start=date(2026, 10, 24))
    got = occurrences_between(schedule, "Europe/London", 0, utc(2026, 10, 24), utc(2026, 10, 27))
    assert got == [
        ("2026-10-24 01:30", utc(2026, 10, 24, 0, 30)),
        ("2026-10-25 01:30", utc(2026, 10, 25, 0, 30)),  # the first 01:30 (BST)
        ("2026-10-26 01:30", utc(2026, 10, 26, 1, 30)),
    ]
    # Asking again after the first 01:30 does not give the second one.
    assert next_occurrence(schedule, "Europe/London", 0, utc(2026, 10, 25, 0, 30)) == (
        "2026-10-26 01:30",
        utc(2026, 10, 26, 1, 30),
    )


def test_new_york_spring_forward_and_fall_back() -> None:
    spring = Schedule(times=("02:30", "09:00"), start=date(2026, 3, 8))
    got = occurrences_between(spring, "America/New_York", 0, utc(2026, 3, 8), utc(2026, 3, 9))
    # 02:30 does not exist on 8 March: read as EST (-5) it is 07:30 UTC = 03:30 EDT.
    assert got == [
        ("2026-03-08 02:30", utc(2026, 3, 8, 7, 30)),
        ("2026-03-08 09:00", utc(2026, 3, 8, 13)),
    ]
    fall = Schedule(times=("01:30",), start=date(2026, 11, 1), end=date(2026, 11, 1))
    got = occurrences_between(fall, "America/New_York", 0, utc(2026, 10, 31), utc(2026, 11, 3))
    assert got == [("2026-11-01 01:30", utc(2026, 11, 1, 5, 30))]  # EDT, once


def test_every_hours_keeps_wall_times_over_dst() -> None:
    """Intervals are counted on the wall clock: 00:00 every 2 hours in New York on the
    spring-forward night still gives 12 reminders, the 02:00 one at 03:00 EDT."""
    schedule = Schedule(times=("00:00",), every_hours=2, start=date(2026, 3, 7))
    got = occurrences_between(
        schedule, "America/New_York", 0, utc(2026, 3, 8, 4), utc(2026, 3, 9, 3, 59)
    )
    assert len(got) == 12
    assert got[0] == ("2026-03-08 00:00", utc(2026, 3, 8, 5))
    assert got[1] == ("2026-03-08 02:00", utc(2026, 3, 8, 7))  # 03:00 EDT
    assert got[2] == ("2026-03-08 04:00", utc(2026, 3, 8, 8))
    assert len({at for _, at in got}) == 12


def test_downtime_of_a_day_lists_every_missed_occurrence() -> None:
    schedule = Schedule(times=("08:00", "14:00", "20:00"), start=TODAY)
    down, back = utc(2026, 12, 2, 1), utc(2026, 12, 3, 1)  # 24 h, Shanghai 09:00 .. 09:00
    got = occurrences_between(schedule, "Asia/Shanghai", 0, down, back)
    assert got == [
        ("2026-12-02 14:00", utc(2026, 12, 2, 6)),
        ("2026-12-02 20:00", utc(2026, 12, 2, 12)),
        ("2026-12-03 08:00", utc(2026, 12, 3, 0)),
    ]
    # after < instant <= until: the bounds themselves
    assert occurrences_between(schedule, "Asia/Shanghai", 0, utc(2026, 12, 2, 6), back)[0][0] == (
        "2026-12-02 20:00"
    )
    assert labels(
        occurrences_between(schedule, "Asia/Shanghai", 0, down, utc(2026, 12, 2, 6))
    ) == ["2026-12-02 14:00"]


def test_next_occurrence_agrees_with_occurrences_between() -> None:
    schedule = Schedule(times=("07:15", "19:45"), days=(1, 2, 6), start=TODAY)
    for tz in ("Europe/London", "America/New_York", "Asia/Shanghai", "Europe/Moscow"):
        after = utc(2026, 12, 1)
        walked = []
        for _ in range(20):
            item = next_occurrence(schedule, tz, 15, after)
            assert item is not None
            walked.append(item)
            after = item[1]
        assert walked == occurrences_between(schedule, tz, 15, utc(2026, 12, 1), walked[-1][1])


def test_end_before_start_has_no_occurrences() -> None:
    schedule = Schedule(times=("08:00",), start=TODAY, end=date(2026, 11, 30))
    assert next_occurrence(schedule, "UTC", 0, utc(2026, 11, 1)) is None
    assert occurrences_between(schedule, "UTC", 0, utc(2026, 11, 1), utc(2027, 1, 1)) == []


def test_unknown_zone_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        next_occurrence(Schedule(times=("08:00",), start=TODAY), "Mars/Base", 0, utc(2026, 12, 1))


# --- jitter -------------------------------------------------------------------------------------


def test_jitter_is_stable_and_spread() -> None:
    # Fixed values: the same key gives the same second in every process (hashlib, not hash()).
    assert jitter_seconds("dose:p1:2026-12-01 08:00") == 14
    assert jitter_seconds("checkin:c7:2026-12-01 09:00") == 1
    values = [jitter_seconds(f"dose:plan{i}:2026-12-01 08:00") for i in range(600)]
    assert all(0 <= v <= 59 for v in values)
    counts = Counter(values)
    assert len(counts) == 60
    assert max(counts.values()) < 30  # roughly even: 10 a second expected


# --- quiet hours --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "start", "end", "expected"),
    [
        ("23:00", "22:00", "07:00", True),
        ("22:00", "22:00", "07:00", True),
        ("00:30", "22:00", "07:00", True),
        ("06:59", "22:00", "07:00", True),
        ("07:00", "22:00", "07:00", False),
        ("21:59", "22:00", "07:00", False),
        ("12:00", "22:00", "07:00", False),
        ("13:30", "13:00", "15:00", True),
        ("15:00", "13:00", "15:00", False),
        ("12:59", "13:00", "15:00", False),
        ("03:00", None, None, False),
        ("03:00", "22:00", None, False),
        ("03:00", "07:00", "07:00", False),
    ],
)
def test_in_quiet(local: str, start: str | None, end: str | None, expected: bool) -> None:
    assert in_quiet(local, start, end) is expected


def test_quiet_end_utc() -> None:
    # Shanghai 23:00 (15:00 UTC) with quiet hours 22:00-07:00: wait until 07:00 next morning.
    assert quiet_end_utc(utc(2026, 12, 1, 15), "Asia/Shanghai", "22:00", "07:00") == utc(
        2026, 12, 1, 23
    )
    # 03:00 local: the same morning.
    assert quiet_end_utc(utc(2026, 12, 1, 19), "Asia/Shanghai", "22:00", "07:00") == utc(
        2026, 12, 1, 23
    )
    # Outside quiet hours, or none: unchanged.
    assert quiet_end_utc(utc(2026, 12, 1, 4), "Asia/Shanghai", "22:00", "07:00") == utc(
        2026, 12, 1, 4
    )
    assert quiet_end_utc(utc(2026, 12, 1, 15), "Asia/Shanghai", None, None) == utc(2026, 12, 1, 15)
    # The night clocks go forward in London: 07:00 is BST that morning.
    assert quiet_end_utc(utc(2026, 3, 29, 0, 30), "Europe/London", "22:00", "07:00") == utc(
        2026, 3, 29, 6
    )


# --- catching up --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "late", "expected"),
    [
        ("dose", timedelta(seconds=-30), "on_time"),
        ("dose", timedelta(0), "on_time"),
        ("dose", timedelta(minutes=2), "on_time"),
        ("dose", timedelta(minutes=2, seconds=1), "late"),
        ("dose", timedelta(hours=2), "late"),
        ("dose", timedelta(hours=2, seconds=1), "missed"),
        ("dose.again", timedelta(minutes=59), "late"),
        ("dose.again", timedelta(minutes=61), "missed"),
        ("checkin", timedelta(hours=12), "late"),
        ("checkin", timedelta(hours=13), "missed"),
        ("checkin.recall", timedelta(hours=23), "late"),
        ("checkin.recall", timedelta(hours=25), "missed"),
        ("something.else", timedelta(minutes=59), "late"),
        ("something.else", timedelta(minutes=61), "missed"),
    ],
)
def test_catch_up(kind: str, late: timedelta, expected: str) -> None:
    due = utc(2026, 12, 1, 8)
    assert catch_up(kind, due, due + late) == expected


def test_catch_up_windows_are_at_least_the_on_time_margin() -> None:
    assert all(window > timedelta(minutes=2) for window in CATCH_UP.values())


# --- messages -----------------------------------------------------------------------------------

ERROR_SAMPLES = [
    (parse_times, ("25:00",)),
    (parse_times, ("",)),
    (parse_times, ("50 times a day",)),
    (parse_times, ("every 5 hours",)),
    (parse_clock, ("7 and 8",)),
    (parse_days, ("someday",)),
    (parse_period, ("someday", TODAY)),
    (parse_period, ("2026-12-31 to 2026-12-01", TODAY)),
    (parse_period, ("2026-11-01 to 2026-11-05", TODAY)),
    (parse_period, ("10 years", TODAY)),
    (parse_zone, ("Mars/Base",)),
    (parse_zone, ("Россия",)),
]


def test_every_error_id_in_the_code_is_sampled() -> None:
    source = Path(timing.__file__).read_text(encoding="utf-8")
    in_code = set(re.findall(r'"(timing\.error\.[a-z_]+)"', source))
    sampled = {refused(func, *args).msgid for func, args in ERROR_SAMPLES}
    assert in_code == sampled


@pytest.mark.parametrize("locale", LOCALES)
def test_errors_render_in_every_language(locale: str) -> None:
    translate = Translator(locale)
    for func, args in ERROR_SAMPLES:
        error = refused(func, *args)
        text = catalog(locale).get(error.msgid)
        assert text, f"[{locale}] {error.msgid} missing"
        assert placeholders(text) == set(error.params), f"[{locale}] {error.msgid} placeholders"
        rendered = translate.plain(error.msgid, **error.params)
        assert error.msgid not in rendered
        for value in error.params.values():
            assert str(value) in rendered


# --- anything a person can type -----------------------------------------------------------------

PIECES = [
    *"0123456789:.,;、 -–+/amphAMPH点半刻早晚上下午中十一二两每小时次天周日月年至到：０\u200f",
    *("утра", "вечера", "каждые", "пн", "days", "until", "ongoing", "UTC", "every", "weeks"),
]
TYPED = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(TYPED)
def test_parsers_answer_anything_with_a_timing_error_or_a_value(text: str) -> None:
    """No input makes a parser fail with anything but TimingError (which a handler turns
    into a friendly message); whatever is accepted is well formed."""
    msgids = []
    for parse in (parse_times, parse_clock, parse_days, parse_zone):
        try:
            parse(text)
        except TimingError as error:
            msgids.append(error.msgid)
    assert all(m.startswith("timing.error.") for m in msgids)
    try:
        times, every = parse_times(text)
    except TimingError:
        pass
    else:
        assert times == tuple(sorted(set(times))) and 1 <= len(times) <= MAX_PER_DAY
        assert all(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", t) for t in times)
        assert every is None or (len(times) == 1 and every in timing.ALLOWED_EVERY_HOURS)
        Schedule(times=times, every_hours=every, start=TODAY)  # always a valid schedule
    try:
        start, end = parse_period(text, TODAY)
    except TimingError:
        pass
    else:
        assert start >= TODAY - timedelta(days=1) and (end is None or end >= start)
