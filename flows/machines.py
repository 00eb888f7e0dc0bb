"""The one way every flow asks its module-level ``transitions`` machine for a decision."""

from __future__ import annotations

from typing import Any

from transitions import Machine, MachineError


def fire(
    machine: Machine, model: Any, current: Any, trigger: str, triggers: tuple[str, ...]
) -> Any:
    """Attach ``model`` at ``current``, fire ``trigger`` and return the new state, or None when
    the trigger is unknown or not allowed there (conditions included). The model is detached
    again either way, so the machine stays shared and stateless."""
    machine.add_model(model, initial=current)
    try:
        if trigger not in triggers or not getattr(model, f"may_{trigger}")():
            return None
        getattr(model, trigger)()
        return model.state
    except MachineError:
        return None
    finally:
        machine.remove_model(model)
