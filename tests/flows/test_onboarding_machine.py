"""Pure tests of the onboarding machine and its validators: no bot, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.onboarding import (
    TRANSITIONS,
    TRIGGERS,
    BadInput,
    InvalidStep,
    Step,
    clean_text,
    next_step,
    normalize_phone,
    parse_birth_year,
    parse_name,
    parse_timezone,
)

ALLOWED = {
    (Step(src), t["trigger"]): Step(t["dest"])
    for t in TRANSITIONS
    for src in (t["source"] if isinstance(t["source"], list) else [t["source"]])
}


@pytest.mark.parametrize("state", list(Step))
@pytest.mark.parametrize("trigger", [*TRIGGERS, "to_done", "bogus"])
def test_every_state_trigger_pair(state: Step, trigger: str) -> None:
    expected = ALLOWED.get((state, trigger))
    if expected is None:
        with pytest.raises(InvalidStep):
            next_step(state, trigger)
    else:
        assert next_step(state, trigger) == expected


def test_happy_path_reaches_done() -> None:
    step = Step.NEW
    for trig in (
        "start",
        "choose_language",
        "acknowledge",
        "accept",
        "give_name",
        "give_birth_year",
        "give_sex",
        "give_phone",
        "give_timezone",
    ):
        step = next_step(step, trig)
    assert step is Step.DONE


def test_declined_patient_can_start_again() -> None:
    assert next_step(next_step(Step.CONSENT, "decline"), "start") is Step.LANGUAGE


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Alice   Testpatient ", "Alice Testpatient"),
        ("\u200fAlice\u202e Test\x00patient", "Alice Testpatient"),
        ("王小明", "王小明"),
        ("Анна Тестова", "Анна Тестова"),
        ("<b>Bob</b>", "<b>Bob</b>"),  # kept as typed; escaped when shown
    ],
)
def test_names_are_cleaned(raw: str, expected: str) -> None:
    assert parse_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "12345", "\u200f\u200e", "x" * 101, "/start"])
def test_bad_names_are_refused(raw: str) -> None:
    with pytest.raises(BadInput) as err:
        parse_name(raw)
    assert err.value.msgid == "error.name_invalid"


def test_birth_year_bounds() -> None:
    today = datetime(2026, 11, 21, tzinfo=UTC)
    assert parse_birth_year("1968", today) == 1968
    assert parse_birth_year("１９６８", today) == 1968  # full-width digits
    for bad in ("1905", "2027", "68", "nineteen", "1968.5", ""):
        with pytest.raises(BadInput) as err:
            parse_birth_year(bad, today)
        assert err.value.params == {"min": 1906, "max": 2026}


@pytest.mark.parametrize(
    ("raw", "zone"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("asia/shanghai", "Asia/Shanghai"),
        ("+3", "Etc/GMT-3"),
        ("UTC-5", "Etc/GMT+5"),
        ("GMT+05:30", "Asia/Kolkata"),
        ("utc", "UTC"),
        ("+0", "UTC"),
    ],
)
def test_timezones(raw: str, zone: str) -> None:
    assert parse_timezone(raw) == zone


@pytest.mark.parametrize("raw", ["Mars/Base", "+15", "+3:17", "", "x" * 80, "../../etc"])
def test_bad_timezones(raw: str) -> None:
    with pytest.raises(BadInput):
        parse_timezone(raw)


def test_phone_normalisation() -> None:
    assert normalize_phone("+1 (555) 010-0123") == "+15550100123"
    assert normalize_phone("8613800000000") == "+8613800000000"
    with pytest.raises(BadInput):
        normalize_phone("12")


def test_clean_text_folds_whitespace_and_controls() -> None:
    assert clean_text("a\tb\n\nc\x07") == "a b c"


def test_clean_text_keeps_emoji_sequences_and_drops_direction_marks() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    scotland = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    assert clean_text(f"my {family} and {scotland}") == f"my {family} and {scotland}"
    assert clean_text("a\u202eb\u200fc\u2066d") == "abcd"
