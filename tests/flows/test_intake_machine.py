"""The intake machine, table-driven over every (state, trigger) pair and snapshot variant,
plus the pure parsers. No bot and no database."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flows.intake import (
    ACTIVE,
    FINAL,
    TRIGGERS,
    BadAnswer,
    Snapshot,
    StaleButton,
    State,
    next_state,
    parse_free_text,
    parse_severity,
)

S = State
VARIANTS = {
    "plain": Snapshot(),
    "proxy": Snapshot(proxy=True),
    "returning": Snapshot(returning=True),
    "questions@0": Snapshot(question_count=2, question_index=0),
    "questions@1": Snapshot(question_count=2, question_index=1),
    "cn_consult": Snapshot(needs_diagnosis_check=True),
}

Rule = Callable[[Snapshot], State]


def fixed(dest: State) -> Rule:
    return lambda _s: dest


def when_returning(then: State, otherwise: State) -> Rule:
    return lambda s: then if s.returning else otherwise


# The specification, written out independently of the machine's transition list.
EXPECTED: dict[tuple[State, str], Rule] = {
    (S.SUBJECT, "choose_subject"): lambda s: S.AGE_BAND if s.proxy else S.COMPLAINT,
    (S.AGE_BAND, "give_age_band"): fixed(S.SEX),
    (S.SEX, "give_sex"): fixed(S.COMPLAINT),
    (S.COMPLAINT, "choose_complaint"): when_returning(S.RED_FLAGS, S.ONSET),
    (S.ONSET, "give_onset"): when_returning(S.SUMMARY, S.SEVERITY),
    (S.SEVERITY, "give_severity"): when_returning(S.SUMMARY, S.RED_FLAGS),
    (S.RED_FLAGS, "no_red_flags"): lambda s: S.FOLLOW_UP if s.question_count else S.ASSOCIATED,
    (S.FOLLOW_UP, "answer_question"): lambda s: (
        S.FOLLOW_UP if s.question_index + 1 < s.question_count else S.ASSOCIATED
    ),
    (S.ASSOCIATED, "give_associated"): when_returning(S.SUMMARY, S.CONDITIONS),
    (S.CONDITIONS, "give_conditions"): fixed(S.MEDICINES),
    (S.MEDICINES, "give_medicines"): fixed(S.ALLERGIES),
    (S.ALLERGIES, "give_allergies"): when_returning(S.SUMMARY, S.ATTACHMENTS),
    (S.ATTACHMENTS, "finish_attachments"): fixed(S.SUMMARY),
    (S.SUMMARY, "confirm"): lambda s: S.DIAGNOSIS_CHECK if s.needs_diagnosis_check else S.TRIAGED,
    (S.DIAGNOSIS_CHECK, "answer_diagnosis"): fixed(S.TRIAGED),
    (S.SUMMARY, "edit_subject"): fixed(S.SUBJECT),
    (S.SUMMARY, "edit_complaint"): fixed(S.COMPLAINT),
    (S.SUMMARY, "edit_onset"): fixed(S.ONSET),
    (S.SUMMARY, "edit_severity"): fixed(S.SEVERITY),
    (S.SUMMARY, "edit_details"): lambda s: S.FOLLOW_UP if s.question_count else S.ASSOCIATED,
    (S.SUMMARY, "edit_history"): fixed(S.CONDITIONS),
    (S.SUMMARY, "edit_attachments"): fixed(S.ATTACHMENTS),
    (S.AGE_BAND, "back"): fixed(S.SUBJECT),
    (S.SEX, "back"): fixed(S.AGE_BAND),
    (S.COMPLAINT, "back"): lambda s: S.SEX if s.proxy else S.SUBJECT,
    (S.ONSET, "back"): fixed(S.COMPLAINT),
    (S.SEVERITY, "back"): fixed(S.ONSET),
    (S.RED_FLAGS, "back"): fixed(S.SEVERITY),
    (S.FOLLOW_UP, "back"): lambda s: S.FOLLOW_UP if s.question_index > 0 else S.RED_FLAGS,
    (S.ASSOCIATED, "back"): lambda s: S.FOLLOW_UP if s.question_count else S.RED_FLAGS,
    (S.CONDITIONS, "back"): fixed(S.ASSOCIATED),
    (S.MEDICINES, "back"): fixed(S.CONDITIONS),
    (S.ALLERGIES, "back"): fixed(S.MEDICINES),
    (S.ATTACHMENTS, "back"): fixed(S.ALLERGIES),
    (S.SUMMARY, "back"): fixed(S.ATTACHMENTS),
    (S.DIAGNOSIS_CHECK, "back"): fixed(S.SUMMARY),
}
for _state in ACTIVE:
    EXPECTED[(_state, "red_flag")] = fixed(S.EMERGENCY)
    EXPECTED[(_state, "cancel")] = fixed(S.CANCELLED)

CASES = [
    pytest.param(state, trigger, variant, id=f"{state.value}-{trigger}-{variant}")
    for state in State
    for trigger in (*TRIGGERS, "no_such_trigger")
    for variant in VARIANTS
]


@pytest.mark.parametrize(("state", "trigger", "variant"), CASES)
def test_every_state_and_trigger(state: State, trigger: str, variant: str) -> None:
    snap = VARIANTS[variant]
    rule = EXPECTED.get((state, trigger))
    if rule is None:
        with pytest.raises(StaleButton):
            next_state(state, trigger, snap)
    else:
        assert next_state(state, trigger, snap) == rule(snap)


def test_final_states_accept_nothing() -> None:
    for state in FINAL:
        for trigger in TRIGGERS:
            with pytest.raises(StaleButton):
                next_state(state, trigger, Snapshot())


def test_every_active_state_can_go_back_or_is_the_first() -> None:
    no_back = [s for s in ACTIVE if (s, "back") not in EXPECTED]
    assert no_back == [S.SUBJECT]


def test_every_state_is_reachable_from_the_start() -> None:
    seen = {S.SUBJECT}
    frontier = [S.SUBJECT]
    while frontier:
        state = frontier.pop()
        for trigger in TRIGGERS:
            for snap in VARIANTS.values():
                try:
                    dest = next_state(state, trigger, snap)
                except StaleButton:
                    continue
                if dest not in seen:
                    seen.add(dest)
                    frontier.append(dest)
    assert seen == set(State)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("7", 7),
        ("0", 0),
        ("10", 10),
        (" 7/10 ", 7),
        ("７", 7),
        ("8 out of 10", 8),
        ("seven", 7),
        ("Seven", 7),
        ("七", 7),
        ("七分", 7),
        ("5分", 5),
        ("семь", 7),
        ("6 из 10", 6),
        ("3 балла", 3),
    ],
)
def test_severity_accepts_numbers_in_every_language(raw: str, expected: int) -> None:
    assert parse_severity(raw) == expected


@pytest.mark.parametrize(
    "raw", ["11", "-1", "100", "a lot", "😭", "", "7.5", "five or six", "1" * 5000, "7 8"]
)
def test_severity_rejects_anything_else(raw: str) -> None:
    with pytest.raises(BadAnswer) as info:
        parse_severity(raw)
    assert info.value.msgid == "intake.error.severity"


def test_free_text_is_cleaned_and_capped() -> None:
    assert parse_free_text("  high\u200f blood\tpressure ") == "high blood pressure"
    with pytest.raises(BadAnswer) as info:
        parse_free_text("x" * 1001)
    assert info.value.msgid == "error.text_too_long"
    for empty in ("", "   ", "😀😀", "\u202e\u200f"):
        with pytest.raises(BadAnswer):
            parse_free_text(empty)
