"""flows/timing.py: parsing times, days, periods and zones; occurrences; quiet hours."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from flows.timing import (
    Schedule,
    TimingError,
    next_occurrence,
    occurrences_between,
    parse_days,
    parse_period,
    parse_times,
    parse_zone,
)

TODAY = date(2026, 12, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08:00, 20:00", (("08:00", "20:00"), None)),
        ("8:00 и 20:00", (("08:00", "20:00"), None)),
        ("早上八点", (("08:00",), None)),
        ("every 8 hours", (("08:00",), 8)),
    ],
)
def test_parse_times_smoke(text: str, expected: tuple[tuple[str, ...], int | None]) -> None:
    assert parse_times(text) == expected


def test_parse_times_refuses_bad_hour() -> None:
    with pytest.raises(TimingError) as err:
        parse_times("25:00")
    assert err.value.msgid == "timing.error.bad_time"


def test_days_period_zone_smoke() -> None:
    assert parse_days("mon-fri") == (1, 2, 3, 4, 5)
    assert parse_period("30 days", TODAY) == (TODAY, date(2026, 12, 30))
    assert parse_zone("UTC+3") == "Etc/GMT-3"


def test_next_occurrence_smoke() -> None:
    schedule = Schedule(times=("08:00",), start=TODAY)
    after = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    assert next_occurrence(schedule, "Asia/Shanghai", 0, after) == (
        "2026-12-02 08:00",
        datetime(2026, 12, 2, 0, 0, tzinfo=UTC),
    )
    until = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
    assert len(occurrences_between(schedule, "Asia/Shanghai", 0, after, until)) == 2
