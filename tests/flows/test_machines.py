"""flows.machines.fire answers from a table; ``transitions`` itself must agree with it for
every state, trigger and combination of condition values of every machine in flows/."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from transitions import Machine

from flows import (
    appointments,
    caregivers,
    consultation,
    doctors,
    doses,
    followup,
    intake,
    medication,
    onboarding,
    prescriptions,
    referrals,
)
from flows.machines import _attach_and_fire, _table, fire

MACHINES: dict[str, tuple[Machine, tuple[str, ...]]] = {
    "caregivers": (caregivers._MACHINE, caregivers.TRIGGERS),
    "consultation": (consultation._MACHINE, consultation.TRIGGERS),
    "doctors": (doctors._MACHINE, doctors.TRIGGERS),
    "doses": (doses._EFFECT_MACHINE, doses.EFFECT_TRIGGERS),
    "followup": (followup._MACHINE, followup.TRIGGERS),
    "intake": (intake._MACHINE, intake.TRIGGERS),
    "medication": (medication._MACHINE, medication.TRIGGERS),
    "onboarding": (onboarding._MACHINE, onboarding.TRIGGERS),
    "referrals": (referrals.MACHINE, referrals.TRIGGERS),
    "prescriptions": (prescriptions.MACHINE, prescriptions.TRIGGERS),
    "appointments": (appointments.MACHINE, appointments.TRIGGERS),
}


def _conditions(machine: Machine) -> list[str]:
    names = {
        c.func
        for event in machine.events.values()
        for transitions in event.transitions.values()
        for t in transitions
        for c in t.conditions
    }
    strings = {n for n in names if isinstance(n, str)}
    assert strings == names, "conditions are names of the model's methods"
    return sorted(strings)


def _model(values: dict[str, bool]) -> Any:
    class Model:
        pass

    model = Model()
    for name, value in values.items():
        setattr(model, name, (lambda v: lambda: v)(value))
    return model


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_the_table_agrees_with_transitions(name: str) -> None:
    machine, triggers = MACHINES[name]
    assert _table(machine) is not None, "no callbacks: the fast path must be taken"
    conditions = _conditions(machine)
    decisions = allowed = 0
    for values in itertools.product((False, True), repeat=len(conditions)):
        given = dict(zip(conditions, values, strict=True))
        for state in machine.states.values():
            for trigger in (*triggers, "no_such_trigger"):
                fast = fire(machine, _model(given), state.value, trigger, triggers)
                slow = (
                    _attach_and_fire(machine, _model(given), state.value, trigger)
                    if trigger in triggers
                    else None
                )
                assert fast == slow, (name, state.name, trigger, given, fast, slow)
                decisions += 1
                allowed += fast is not None
    assert allowed and allowed < decisions  # the comparison saw both answers


def test_a_machine_with_callbacks_is_asked_the_slow_way() -> None:
    seen: list[str] = []

    class Model:
        def note(self) -> None:
            seen.append("after")

    machine = Machine(
        model=None,
        states=["a", "b"],
        transitions=[{"trigger": "go", "source": "a", "dest": "b", "after": "note"}],
        initial="a",
        auto_transitions=False,
    )
    assert _table(machine) is None
    assert fire(machine, Model(), "a", "go", ("go",)) == "b"
    assert seen == ["after"]
    assert fire(machine, Model(), "b", "go", ("go",)) is None
