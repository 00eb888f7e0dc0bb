"""The pure parts of the workers' load test (benchmarks/scale.py): its options, and the order,
loss and duplicate accounting on made-up records. The benchmark itself (workers, PostgreSQL,
the emulator) is never run by a test."""

from __future__ import annotations

import pytest

from benchmarks.scale import (
    duplicate_answers,
    efficiencies,
    parse_args,
    parse_relay,
    project,
    relay_accounting,
    relay_text,
)


def test_defaults_are_the_machine_sized_run_and_quick_is_smaller() -> None:
    full = parse_args([])
    assert full.levels == (1, 2, 4)
    assert full.patients == 500
    assert full.chaos is False
    assert full.chaos_interval == 30.0
    quick = parse_args(["--quick"])
    assert quick.levels == (1, 2)
    assert quick.patients < full.patients
    assert quick.wave < full.wave


def test_quick_keeps_what_is_given() -> None:
    opts = parse_args(["--quick", "--levels=2,4", "--patients", "80", "--chaos"])
    assert opts.levels == (2, 4)
    assert opts.patients == 80
    assert opts.chaos is True


@pytest.mark.parametrize(
    "argv", [["--levels", "0"], ["--levels", "a,b"], ["--relay-share", "2"], ["--burst", "0"]]
)
def test_wrong_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_a_relay_text_carries_its_patient_and_place() -> None:
    assert parse_relay(relay_text(12, 3)) == (12, 3)
    assert parse_relay("#4 · Relay Patient 12: " + relay_text(12, 3)) == (12, 3)
    assert parse_relay("the cough is about the same") is None


def test_copies_in_order_once_each_are_clean() -> None:
    sent = {0: 3, 1: 2}
    copies = [(0, 1), (1, 1), (0, 2), (1, 2), (0, 3)]
    assert relay_accounting(sent, copies) == {
        "order_violations": 0,
        "lost": 0,
        "duplicated": 0,
        "unknown": 0,
        "received": 5,
    }


def test_a_copy_overtaking_an_earlier_one_is_one_violation() -> None:
    got = relay_accounting({0: 3}, [(0, 2), (0, 1), (0, 3)])
    assert got["order_violations"] == 1
    assert got["lost"] == 0


def test_a_repeat_is_a_duplicate_not_a_violation_and_a_gap_is_a_loss() -> None:
    got = relay_accounting({0: 3, 1: 1}, [(0, 1), (0, 2), (0, 1), (0, 2)])
    assert got["duplicated"] == 2
    assert got["order_violations"] == 0
    assert got["lost"] == 2  # (0, 3) and (1, 1)


def test_copies_nobody_sent_are_unknown() -> None:
    got = relay_accounting({0: 1}, [(0, 1), (0, 2), (5, 1)])
    assert got["unknown"] == 2
    assert got["received"] == 1


def test_an_answer_stored_twice_is_one_duplicate() -> None:
    chats = {1: ["language?", "intro", "intro", "consent"], 2: ["a", "b", "a", "a"]}
    assert duplicate_answers(chats) == 3


def test_efficiency_is_against_one_worker_and_against_the_cores() -> None:
    got = efficiencies({1: 40.0, 2: 64.0, 4: 60.0}, cores=2)
    assert got[1] == {"efficiency": 1.0, "efficiency_per_core": 1.0}
    assert got[2] == {"efficiency": 0.8, "efficiency_per_core": 0.8}
    assert got[4] == {"efficiency": 0.375, "efficiency_per_core": 0.75}
    assert efficiencies({2: 50.0}, cores=2)[2]["efficiency"] is None


def test_the_projection_divides_cores_by_the_cpu_of_one_update() -> None:
    assert project(15.0, 5.0, (2, 8)) == [
        {"cores": 2, "updates_per_s": 100.0},
        {"cores": 8, "updates_per_s": 400.0},
    ]
    assert project(0.0, 0.0, (2,)) == []
