"""Smoke test of the relay benchmark's machinery (benchmarks/relay.py) at a tiny size.

Both bots run inline (in this event loop) against the benchmark's timed emulator: three
seeded active cases, two doctors, a few seconds of messages. Every patient message must reach
the right doctor under the right case tag, exactly once, for Careline and for the baseline.
No timing assertions.
"""

from __future__ import annotations

from benchmarks.relay import Options, Probe, make_plan, run_levels, token_of


def test_plan_keeps_under_the_outbox_limits() -> None:
    opts = Options(cases=[20, 100, 500])
    for cases in opts.cases:
        plan = make_plan(cases, opts)
        assert plan.rate <= opts.max_rate < 30
        assert plan.per_doctor_rate <= opts.doctor_rate + 1e-9
        assert plan.cases / plan.doctors <= opts.cases_per_doctor


def test_probe_counts_a_copy_in_the_wrong_chat_as_misrouted() -> None:
    from benchmarks.relay import Route

    probe = Probe()
    probe.patient_bot_id, probe.doctor_bot_id = 1, 2
    probe.routes = [Route(patient_uid=10, number=1, doctor_uid=20)]
    probe.expect("000001abc", 0)
    probe.on_user_message(1, "bench-000001abc hello", 1.0)
    assert token_of("#1 · Ann\nbench-000001abc hello") == "000001abc"
    probe.on_bot_message(2, 21, "#1 · Ann\nbench-000001abc hello", 1.1)
    assert probe.sent["000001abc"].misrouted


async def test_tiny_run_delivers_every_message_to_the_right_doctor() -> None:
    opts = Options(cases=[3], duration=2.0, warmup=0.3, drain=10.0, interval=1.5, doctors=2)
    report = await run_levels(opts, inline=True)
    [level] = report["line"]["levels"]
    assert level["cases"] == 3 and level["doctors"] == 2
    for phase in report["phases"]:
        assert phase["messages"] > 0, phase["label"]
        assert phase["delivered"] == phase["messages"], phase["label"]
        assert phase["missing"] == 0
        assert phase["misroutes"] == 0
        assert phase["duplicates"] == 0
        assert phase["unknown_copies"] == 0
        assert phase["send_errors"] == 0
        assert phase["patient_replies"] == 0  # Careline relays; it does not answer the patient
    assert {p["kind"] for p in report["phases"]} == {"careline", "echo"}
    assert report["line"]["misroutes"] == 0
