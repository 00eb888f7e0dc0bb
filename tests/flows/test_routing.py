"""Routing data and rules: every chain ends at general practice, unstaffed departments are
skipped at once, urgent cases go where someone is on duty, and a broken file is named."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flows import routing
from flows.questionnaire import DataFileError
from flows.questionnaire import load as load_questionnaire

DEPTS = load_questionnaire().departments


def test_the_bundled_file_chains_every_department_to_general_practice() -> None:
    rules = routing.load()
    for dept in DEPTS:
        chain = rules.chain(dept)
        assert chain[0] == dept and chain[-1] == "general"
        assert len(chain) == len(set(chain))
    assert rules.limit("consultation_24") == timedelta(minutes=30)
    assert rules.limit("consultation") == timedelta(hours=4)
    assert rules.limit(None) == rules.limit("consultation")


def test_an_unstaffed_department_is_skipped_at_submit_time() -> None:
    rules = routing.load()
    staffed = {"general", "cardiology"}.__contains__
    nobody = set[str]().__contains__
    assert rules.place("neurology", "consultation", staffed, nobody) == "general"
    assert rules.place("cardiology", "consultation", staffed, nobody) == "cardiology"
    # urology -> surgery -> general: the first staffed one
    assert rules.place("urology", "consultation", {"surgery", "general"}.__contains__, nobody) == (
        "surgery"
    )
    # no one anywhere: the end of the chain, where an admin can see it
    assert rules.place("urology", "consultation", nobody, nobody) == "general"


def test_a_case_goes_where_someone_is_on_duty_or_starts_within_its_limit() -> None:
    rules = routing.load()
    staffed = {"general", "cardiology"}.__contains__
    soon = {"general"}.__contains__  # reachable within the disposition's limit
    assert rules.place("cardiology", "consultation_24", staffed, soon) == "general"
    # a routine case too: its own department's doctor is not back within 4 hours
    assert rules.place("cardiology", "consultation", staffed, soon) == "general"
    # ... and waits for them when they are (the caller's reachable set says so)
    both = {"general", "cardiology"}.__contains__
    assert rules.place("cardiology", "consultation", staffed, both) == "cardiology"
    # nobody reachable anywhere: the first staffed department
    assert rules.place("cardiology", "consultation_24", staffed, set().__contains__) == (
        "cardiology"
    )


def test_falling_back_goes_to_the_next_staffed_department() -> None:
    rules = routing.load()
    assert rules.fall_back("urology", {"general"}.__contains__) == "general"
    assert rules.fall_back("urology", {"surgery", "general"}.__contains__) == "surgery"
    assert rules.fall_back("general", {"general"}.__contains__) is None
    assert rules.fall_back("neurology", set().__contains__) == "general"
    # a department with someone on duty (or starting soon) beats one only staffed
    on = {"general"}.__contains__
    assert rules.fall_back("urology", {"surgery", "general"}.__contains__, on) == "general"


def _data(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": "x",
        "last": "general",
        "fallback": {"neurology": "general"},
        "limit_minutes": {"consultation_24": 30, "consultation": 240},
    }
    data.update(over)
    return data


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"last": "nowhere"}, "last: 'nowhere' is not a department"),
        ({"fallback": {"nowhere": "general"}}, r"\[fallback\] nowhere: not a department"),
        ({"fallback": {"neurology": "mars"}}, "'mars' is not a department"),
        ({"fallback": {"general": "neurology"}}, "the last department has no fallback"),
        (
            {"fallback": {"neurology": "cardiology", "cardiology": "neurology"}},
            "the chain loops",
        ),
        ({"limit_minutes": {"consultation": 240}}, r"\[limit_minutes\]: expected exactly"),
        (
            {"limit_minutes": {"consultation_24": 0, "consultation": 240}},
            "expected whole minutes",
        ),
        ({"colour": "blue"}, "unknown keys"),
    ],
)
def test_mistakes_are_named(over: dict[str, Any], message: str) -> None:
    with pytest.raises(DataFileError, match=message):
        routing.parse(_data(**over), "routing.toml", DEPTS)


def _right(told: float, waits: list[float]) -> int:
    return sum(1 for w in waits if abs(told - w) <= 0.5 * w)


def test_the_estimate_is_the_wait_most_often_right() -> None:
    from flows.consultation import best_estimate

    # Waits spread evenly over 1-8 minutes: about 4 minutes is right (within ±50%) for three
    # in four patients; the median (4.5) for fewer.
    waits = sorted(60.0 + 420.0 * i / 999 for i in range(1000))
    told = best_estimate(waits)
    assert 3.9 * 60 <= told <= 4.1 * 60
    assert _right(told, waits) >= 0.75 * len(waits)
    assert _right(told, waits) > _right(waits[len(waits) // 2], waits)
    # No other told wait would have been right for more of them.
    assert all(_right(t * 6.0, waits) <= _right(told, waits) for t in range(5, 200))
    # One wait: that wait (right for it); two far apart: the shorter.
    assert best_estimate([300.0]) == 300.0
    assert _right(best_estimate([300.0]), [300.0]) == 1
    assert best_estimate([60.0, 3600.0]) == 60.0
