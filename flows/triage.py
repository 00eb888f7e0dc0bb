"""Triage to the five dispositions and routing to a department, from the questionnaire's rules.

Pure functions over :class:`flows.questionnaire.Facts`: no bot, no database. A red flag (ticked
in a checklist or found in free text) is not a rule: it decides at once (see
:func:`for_red_flag`).
"""

from __future__ import annotations

from dataclasses import dataclass

from flows import redflags
from flows.questionnaire import Facts, Questionnaire, more_urgent


@dataclass(frozen=True)
class Triage:
    """The outcome of an intake: disposition, department and why."""

    disposition: str
    department: str
    reasons: tuple[str, ...]  # rule ids (``triage.reason.<id>``) or ``redflag:<flag>``


def triage(q: Questionnaire, facts: Facts) -> Triage:
    """The most urgent of the category's floor and every matching rule; the first matching
    department rule overrides the category's department."""
    category = q.category(facts.category)
    disposition = category.default_disposition
    matched = [r for r in q.rules if r.when.holds(facts)]
    for rule in matched:
        assert rule.disposition is not None
        disposition = more_urgent(disposition, rule.disposition)
    reasons = tuple(r.id for r in matched if r.disposition == disposition)
    department = category.department
    for rule in q.department_rules:
        if rule.when.holds(facts):
            assert rule.department is not None
            department = rule.department
            break
    return Triage(disposition, department, reasons)


def for_red_flag(q: Questionnaire, flag: str, category: str | None) -> Triage:
    """A red flag decides: its own disposition, the complaint's department if known."""
    info = redflags.registry()[flag]
    known = q.categories.get(category) if category else None
    department = known.department if known is not None else "general"
    return Triage(info.disposition, department, (f"redflag:{flag}",))
