"""Smoke test of the tap -> invoice benchmark (benchmarks/booking_tap.py) at ``--quick`` size.

The whole benchmark runs in this event loop: the emulator, the real Careline app on SQLite and
the bare aiogram baseline, 6 taps per phase (bursts of 3) after one warm-up tap per bot. Every
tap must get its invoice from both bots, each Careline tap must hold a slot of its own, and
the JSON line must carry its figures. No timing assertions: performance figures are never
test assertions.
"""

from __future__ import annotations

import json

from benchmarks.booking_tap import parse_args, run


async def test_quick_run_gets_an_invoice_for_every_tap() -> None:
    opts = parse_args(["--quick", "--no-gc-freeze"])  # frozen objects would outlive the test
    result = await run(opts)

    for phase in ("sequential", "concurrent"):
        for prefix in ("", "baseline_"):
            for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
                assert f"{prefix}{phase}_{key}" in result
        assert f"{phase}_p99_ratio" in result
    for key in ("taps", "concurrency", "db", "goal_p99_ms", "goal_met", "phases"):
        assert key in result
    assert result["db"] == "sqlite"
    assert result["missing"] == 0
    assert result["baseline_missing"] == 0
    assert result["unexpected_invoices"] == 0

    phases = {(p["bot"], p["phase"]): p for p in result["phases"]}
    assert set(phases) == {
        (bot, phase) for bot in ("careline", "baseline") for phase in ("sequential", "concurrent")
    }
    for p in phases.values():
        assert p["taps"] == opts.taps
        assert p["invoices"] == opts.taps
        assert p["missing"] == 0 and p["client_missing"] == 0
    assert phases[("careline", "concurrent")]["concurrency"] == opts.concurrency

    # every Careline tap (warm-up included) held a different slot and opened one booking
    taps = opts.warmup + 2 * opts.taps
    assert result["careline_bookings_held"] == taps
    assert result["careline_slots_held"] == taps
    assert result["careline_sender"]["failed"] == 0
    assert result["baseline_handled"]["callbacks"] == taps

    json.dumps(result)  # the last stdout line must be JSON
