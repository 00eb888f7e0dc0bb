"""The one check of the tuned-rule tests (test_redflags_tuned_{en,zh,ru}.py): a wording reads as
its flag (or one of the same or higher urgency), or as nothing."""

from __future__ import annotations

from benchmarks.redflags import is_detected
from flows.redflags import detect, detect_all


def assert_reads(text: str, flag: str | None) -> None:
    hit = detect(text)
    if flag is None:
        assert hit is None, detect_all(text)
    else:
        assert hit is not None and is_detected(flag, hit), detect_all(text)
