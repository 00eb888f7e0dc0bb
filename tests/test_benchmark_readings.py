"""Smoke test of the device-readings benchmark (benchmarks/readings.py) at a tiny size: both
servers start in their own processes, the simulated devices post for a moment, and every
reading Careline acknowledged is in its database exactly once, and every re-sent Bundle came
back as duplicates. No timing assertions."""

from __future__ import annotations

import asyncio

from benchmarks.readings import observation, orchestrate, parse_args
from flows import fhir_readings
from storage.models import utcnow


def test_the_benchmark_observations_parse_as_normal_readings() -> None:
    now = utcnow()
    body = {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": observation(k, n, now, f"x{n}")}
                      for n, k in enumerate(("pulse", "bp", "glucose", "spo2"))]}  # fmt: skip
    parsed = fhir_readings.parse(body, now)
    assert not parsed.rejected and [r.kind for r in parsed.readings] == [
        "pulse", "bp", "glucose", "spo2",
    ]  # fmt: skip


def test_a_quick_run_stores_every_reading_once() -> None:
    opts = parse_args(["--quick", "--duration", "0.6"])
    result = asyncio.run(orchestrate(opts))
    assert result["readings"] > 0 and result["baseline_readings_per_s"] > 0
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["refused"] == 0
    assert result["retries"] > 0
    assert result["retries_answered_duplicate"] == result["retries"]
