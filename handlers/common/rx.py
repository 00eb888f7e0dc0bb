"""How a prescription's medicines and its chronic-disease rule read in a chat (both bots)."""

from __future__ import annotations

from flows import prescriptions as rxf
from locales import Translator


def chronic_label(tr: Translator, rule_id: str | None, jurisdiction: str) -> str:
    """The chronic-disease rule's name in the reader's language ("" when none)."""
    rule = rxf.rules_for(jurisdiction).chronic_rule(rule_id)
    if rule is None:
        return ""
    return rule.labels.get(tr.locale) or rule.labels.get("en") or rule.id


def items_text(tr: Translator, items: list[rxf.Item] | tuple[rxf.Item, ...]) -> str:
    """The medicines, numbered, one per line (plain text; rendered escaped)."""
    if not items:
        return tr.plain("rx.wiz.no_items")
    return "\n".join(
        tr.plain(
            "rx.item_line",
            n=i,
            name=it.name,
            strength=it.strength,
            dose=it.dose,
            quantity=it.quantity,
            days=it.days,
        )
        for i, it in enumerate(items, 1)
    )
