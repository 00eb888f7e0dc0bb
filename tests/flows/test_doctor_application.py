"""Pure tests of the doctor application machine, its validators, the cn rule and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flows import doctors as flow
from flows.doctors import (
    ORDER,
    TRANSITIONS,
    TRIGGERS,
    BadInput,
    InvalidStep,
    NotVerified,
    Step,
    next_step,
    parse_field,
    parse_reason,
    parse_years,
)
from flows.onboarding import InvalidStep as PatientInvalidStep
from storage.models import Doctor

ALLOWED = {
    (Step(src), t["trigger"]): Step(t["dest"])
    for t in TRANSITIONS
    for src in (t["source"] if isinstance(t["source"], list) else [t["source"]])
}
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("step", list(Step))
@pytest.mark.parametrize("trigger", [*TRIGGERS, "to_submitted", "bogus"])
def test_every_step_trigger_pair(step: Step, trigger: str) -> None:
    expected = ALLOWED.get((step, trigger))
    if expected is None:
        with pytest.raises(InvalidStep):
            next_step(step, trigger)
    else:
        assert next_step(step, trigger) == expected


def test_the_questions_come_in_order_and_back_undoes_each() -> None:
    step = Step.NAME
    for expected, trigger in zip(ORDER[1:], flow.ANSWER_TRIGGER.values(), strict=True):
        previous, step = step, next_step(step, trigger)
        assert step is expected
        assert next_step(step, "back") is previous
    assert next_step(step, "confirm") is Step.SUBMITTED
    with pytest.raises(InvalidStep):
        next_step(Step.NAME, "back")
    with pytest.raises(InvalidStep):
        next_step(Step.SUBMITTED, "restart")
    assert next_step(Step.SUBMITTED, "reapply") is Step.NAME


def test_invalid_step_is_also_the_patient_kind() -> None:
    # The dispatcher's generic stale-button handler catches it too.
    assert issubclass(InvalidStep, PatientInvalidStep)


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("name", "  Dr. Test   Example ", "Dr. Test Example"),
        ("name", "王测试", "王测试"),
        ("name", "Тест\u200f Примеров", "Тест Примеров"),
        ("licence", "110-2026/00042", "110-2026/00042"),
        ("licence", "１２３４５６", "１２３４５６"),
        ("authority", "Health Commission of Testland", "Health Commission of Testland"),
        ("hospital", "General Hospital No. 1", "General Hospital No. 1"),
        ("title", "Attending physician", "Attending physician"),
    ],
)
def test_fields_accepted(field: str, raw: str, expected: str) -> None:
    assert parse_field(field, raw) == expected


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("name", ""),
        ("name", "😀😀"),
        ("name", "12345"),
        ("name", "/start"),
        ("name", "N" * 4096),
        ("name", "\u202e\u200f\u200b"),
        ("licence", "🙂"),
        ("licence", "abc<script>"),
        ("licence", "1" * 41),
        ("authority", "!!!"),
        ("hospital", "H" * 151),
        ("title", "😷"),
    ],
)
def test_fields_refused(field: str, raw: str) -> None:
    with pytest.raises(BadInput) as bad:
        parse_field(field, raw)
    assert bad.value.msgid == f"doctor.error.{field}"
    assert bad.value.params == {"max": flow.FIELD_MAX[field]}


@pytest.mark.parametrize(("raw", "years"), [("0", 0), (" 7 ", 7), ("70", 70), ("１２", 12)])
def test_years_accepted(raw: str, years: int) -> None:
    assert parse_years(raw) == years


@pytest.mark.parametrize(
    "raw", ["71", "-1", "seven", "3.5", "", "100", "5 years", "🙂", "9" * 4096]
)
def test_years_refused(raw: str) -> None:
    with pytest.raises(BadInput) as bad:
        parse_years(raw)
    assert bad.value.msgid == "doctor.error.years"


def test_reason_and_photo_size() -> None:
    assert parse_reason("  licence   number unreadable ") == "licence number unreadable"
    for bad in ("", "/cancel", "x" * 501):
        with pytest.raises(BadInput):
            parse_reason(bad)
    flow.check_photo_size(None)
    flow.check_photo_size(flow.PHOTO_MAX_BYTES)
    with pytest.raises(BadInput) as big:
        flow.check_photo_size(flow.PHOTO_MAX_BYTES + 1)
    assert big.value.params == {"max_mb": 10}


@pytest.mark.parametrize(
    ("years", "jurisdiction", "ok"),
    [
        (2, "cn", False),
        (None, "cn", False),
        (3, "cn", True),
        (40, "cn", True),
        (0, "generic", True),
        (2, "generic", True),
    ],
)
def test_cn_rule(years: int | None, jurisdiction: str, ok: bool) -> None:
    assert flow.can_approve(years, jurisdiction) is ok


def _doctor(status: str, until: datetime | None) -> Doctor:
    return Doctor(id="d" * 32, tg_user_id=1, locale="en", status=status, verified_until=until)


def test_verified_until_the_expiry() -> None:
    later = NOW + timedelta(days=1)
    doc = _doctor("verified", later)
    assert flow.is_verified(doc, NOW)
    assert flow.require_verified(doc, NOW) is doc
    assert not flow.is_verified(doc, later)
    assert not flow.is_verified(doc, later + timedelta(seconds=1))
    # SQLite hands datetimes back naive (UTC).
    assert flow.is_verified(_doctor("verified", later.replace(tzinfo=None)), NOW)
    with pytest.raises(NotVerified) as exc:
        flow.require_verified(doc, later + timedelta(days=1))
    assert exc.value.msgid == "doctor.status.expired"


@pytest.mark.parametrize(
    ("status", "msgid"),
    [
        ("applying", "doctor.status.applying"),
        ("pending", "doctor.status.pending"),
        ("rejected", "doctor.status.rejected"),
        ("suspended", "doctor.status.suspended"),
    ],
)
def test_not_verified_says_why(status: str, msgid: str) -> None:
    doc = _doctor(status, NOW + timedelta(days=300))
    assert not flow.is_verified(doc, NOW)
    with pytest.raises(NotVerified) as exc:
        flow.require_verified(doc, NOW)
    assert exc.value.msgid == msgid
    with pytest.raises(NotVerified) as unknown:
        flow.require_verified(None, NOW)
    assert unknown.value.msgid == "doctor.status.unknown"
    assert not flow.is_verified(_doctor("verified", None), NOW)
