"""The consultation machine, table-driven over every (state, trigger) pair and snapshot
variant, plus working hours. No bot and no database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from flows.consultation import (
    TRIGGERS,
    NotAllowed,
    Snapshot,
    State,
    available,
    is_verified,
    next_state,
    parse_hours,
    within_hours,
)
from storage.models import Doctor

S = State
VARIANTS = {
    "generic": Snapshot(),
    "cn": Snapshot(cn=True),
    "cn_followup": Snapshot(cn=True, followup_visit=True),
}
Rule = Callable[[Snapshot], State | None]


def fixed(dest: State) -> Rule:
    return lambda _s: dest


def advise(dest: State) -> Rule:
    return lambda s: dest if (not s.cn or s.followup_visit) else None


# The specification, written out independently of the machine's transition list;
# a missing pair (or None) means the trigger is refused in that state.
EXPECTED: dict[tuple[State, str], Rule] = {
    (S.REQUESTED, "submit"): lambda s: S.AWAITING_RECORD if s.cn else S.WAITING,
    (S.AWAITING_RECORD, "attach_record"): fixed(S.WAITING),
    (S.WAITING, "accept"): fixed(S.ACTIVE),
    (S.ACTIVE, "confirm_followup"): lambda s: S.ACTIVE if s.cn and not s.followup_visit else None,
    (S.ACTIVE, "patient_message"): fixed(S.ACTIVE),
    (S.ACTIVE, "doctor_message"): advise(S.ACTIVE),
    (S.ACTIVE, "close"): advise(S.CLOSED),
    (S.ACTIVE, "terminate"): fixed(S.TERMINATED),
    (S.ACTIVE, "transfer"): fixed(S.WAITING),
    (S.ACTIVE, "requeue"): fixed(S.WAITING),
    (S.WAITING, "fall_back"): fixed(S.WAITING),
    (S.WAITING, "expire"): fixed(S.EXPIRED),
    (S.EXPIRED, "keep_waiting"): fixed(S.WAITING),
    (S.AWAITING_RECORD, "cancel"): fixed(S.CANCELLED),
    (S.WAITING, "cancel"): fixed(S.CANCELLED),
    (S.ACTIVE, "cancel"): fixed(S.CANCELLED),
    (S.EXPIRED, "cancel"): fixed(S.CANCELLED),
}
ALL_TRIGGERS = (*TRIGGERS, "no_such_trigger")
CASES = [
    (state, trigger, variant)
    for state in State
    for trigger in ALL_TRIGGERS
    for variant in VARIANTS
]


@pytest.mark.parametrize(("state", "trigger", "variant"), CASES)
def test_every_state_and_trigger(state: State, trigger: str, variant: str) -> None:
    snap = VARIANTS[variant]
    rule = EXPECTED.get((state, trigger))
    expected = rule(snap) if rule else None
    if expected is None:
        with pytest.raises(NotAllowed):
            next_state(state, trigger, snap)
    else:
        assert next_state(state, trigger, snap) is expected


def test_the_specification_names_only_real_triggers() -> None:
    assert {t for _, t in EXPECTED} == set(TRIGGERS)


def test_final_states_accept_nothing() -> None:
    for state in (S.CLOSED, S.TERMINATED, S.CANCELLED):
        for trigger in TRIGGERS:
            for snap in VARIANTS.values():
                with pytest.raises(NotAllowed):
                    next_state(state, trigger, snap)


NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)


def doctor(**kw: object) -> Doctor:
    values: dict[str, object] = {
        "status": "verified",
        "verified_until": NOW + timedelta(days=30),
        "on_duty": True,
        "work_hours": None,
        "timezone": None,
        "departments": "general",
    }
    values.update(kw)
    return Doctor(**values)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("09:00-18:00", "09:00-18:00"),
        ("22:00 - 06:00", "22:00-06:00"),
        ("00:00-24:00", "00:00-24:00"),
    ],
)
def test_parse_hours(raw: str, expected: str) -> None:
    assert parse_hours(raw) == expected


@pytest.mark.parametrize("raw", ["9-18", "09:00-09:00", "25:00-26:00", "", "09:00-24:30", "nine"])
def test_parse_hours_refuses(raw: str) -> None:
    with pytest.raises(ValueError, match="working hours"):
        parse_hours(raw)


def test_working_hours_in_the_doctors_time_zone() -> None:
    assert within_hours(doctor(work_hours="09:00-18:00"), NOW, "UTC")
    assert not within_hours(doctor(work_hours="13:00-18:00"), NOW, "UTC")
    # 12:30 UTC is 20:30 in Shanghai.
    assert not within_hours(doctor(work_hours="09:00-18:00", timezone="Asia/Shanghai"), NOW, "UTC")
    assert within_hours(doctor(work_hours="20:00-02:00", timezone="Asia/Shanghai"), NOW, "UTC")
    assert within_hours(doctor(work_hours="09:00-18:00"), NOW, "Europe/London")
    assert within_hours(doctor(), NOW, "UTC")  # no hours set: always


def test_availability_and_verification() -> None:
    assert available(doctor(), NOW, "UTC")
    assert not available(doctor(on_duty=False), NOW, "UTC")
    assert not is_verified(doctor(status="suspended"), NOW)
    assert not is_verified(doctor(verified_until=NOW - timedelta(seconds=1)), NOW)
    assert not is_verified(doctor(verified_until=None), NOW)
    assert not is_verified(None, NOW)
