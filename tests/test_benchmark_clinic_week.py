"""Smoke test of the clinic-week simulation's machinery (benchmarks/clinic_week.py) at a tiny
size: a day with a few dozen cases runs through Careline's routing, sweeper and queue; every
case is accounted for (accepted, expired or waiting), none is stranded, and the report's
numbers add up. No timing assertions; the week's figures are the benchmark's job."""

from __future__ import annotations

import random
from datetime import timedelta

from benchmarks.clinic_week import START, arrivals, percentile, simulate, table


def test_arrivals_are_exactly_n_and_busier_by_day() -> None:
    times = arrivals(700, 7, random.Random(1))
    assert len(times) == 700 and times == sorted(times)
    assert all(START <= t < START + timedelta(days=7) for t in times)
    day = sum(1 for t in times if 8 <= t.hour < 20)
    assert 0.55 < day / len(times) < 0.78  # 2/3 expected: twice as busy 08-20
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile([], 90) is None


async def test_a_small_day_accounts_for_every_case() -> None:
    result = await simulate(cases=24, seed=5, days=1)
    assert len(result.cases) == 24
    assert result.stranded == 0
    for case in result.cases:
        assert case.final in ("active", "closed", "expired", "waiting", "cancelled")
        if case.accepted is not None:
            assert case.accepted >= case.arrived
    text, rows = table(result)
    counted = rows["consultation_24"]["cases"] + rows["consultation"]["cases"]
    assert counted == 24 and "p90" in text
    assert rows["estimate"]["told_an_estimate"] <= rows["estimate"]["accepted"] + 24
