"""The one way every flow asks its module-level ``transitions`` machine for a decision.

``transitions`` answers by attaching a model to the machine (which adds a method per trigger
and per ``may_`` check to it) and detaching it again: about 0.3 ms per decision, several per
update. Our machines have no callbacks (no before/after/prepare, no on_enter/on_exit): a
decision is only "which transition from this state, under these conditions". So the first
decision on a machine reads its transitions into a table, and every decision is then a look-up
and the conditions' calls, with ``transitions``' own rules: transitions are tried in the order
they were added, a condition must be true and an ``unless`` false, the first that passes wins.
A machine with callbacks still goes through ``transitions`` itself (``_attach_and_fire``);
tests/flows/test_machines.py checks both give the same answer for every state and trigger of
every machine in flows/."""

from __future__ import annotations

from typing import Any

from transitions import Machine, MachineError

# machine -> {(source name, trigger): [(dest state, ((condition, wanted), ...)), ...]}, or
# None when the machine has callbacks and must be asked the slow way.
_Table = dict[tuple[str, str], list[tuple[Any, tuple[tuple[Any, bool], ...]]]]
_TABLES: dict[Machine, _Table | None] = {}  # the machines are module-level: they stay


def _has_callbacks(machine: Machine) -> bool:
    if any(
        getattr(machine, name, None)
        for name in (
            "before_state_change",
            "after_state_change",
            "prepare_event",
            "finalize_event",
            "on_exception",
            "on_final",
        )
    ):
        return True
    for state in machine.states.values():
        if state.on_enter or state.on_exit or getattr(state, "final", False):
            return True
    for event in machine.events.values():
        for transitions in event.transitions.values():
            for t in transitions:
                if t.before or t.after or t.prepare:
                    return True
    return False


def _table(machine: Machine) -> _Table | None:
    if machine in _TABLES:
        return _TABLES[machine]
    table: _Table | None = None
    if not _has_callbacks(machine):
        table = {}
        for trigger, event in machine.events.items():
            for source, transitions in event.transitions.items():
                table[(source, trigger)] = [
                    (
                        machine.get_state(t.dest).value if t.dest is not None else None,
                        tuple((c.func, bool(c.target)) for c in t.conditions),
                    )
                    for t in transitions
                ]
    _TABLES[machine] = table
    return table


def _holds(model: Any, condition: Any) -> bool:
    value = getattr(model, condition) if isinstance(condition, str) else condition
    return bool(value() if callable(value) else value)


def fire(
    machine: Machine, model: Any, current: Any, trigger: str, triggers: tuple[str, ...]
) -> Any:
    """Fire ``trigger`` from ``current`` with ``model``'s conditions and return the new state,
    or None when the trigger is unknown or not allowed there (conditions included). The
    machine stays shared and stateless."""
    if trigger not in triggers:
        return None
    table = _table(machine)
    if table is None:
        return _attach_and_fire(machine, model, current, trigger)
    source = getattr(current, "name", current)
    for dest, conditions in table.get((source, trigger), ()):
        if all(_holds(model, c) == wanted for c, wanted in conditions):
            return current if dest is None else dest
    return None


def _attach_and_fire(machine: Machine, model: Any, current: Any, trigger: str) -> Any:
    """``transitions``' own way: attach ``model`` at ``current``, fire, detach."""
    machine.add_model(model, initial=current)
    try:
        if not getattr(model, f"may_{trigger}")():
            return None
        getattr(model, trigger)()
        return model.state
    except MachineError:
        return None
    finally:
        machine.remove_model(model)
