"""Outgoing calls of the bots: the outbox module lives in :mod:`flows.outbox` (neutral, so flows
use it too); this name stays for the bot's own modules (processor, sender, middlewares)."""

from __future__ import annotations

from flows.outbox import (
    PRIORITY_REPLY,
    PRIORITY_ROUTINE,
    PRIORITY_URGENT,
    RELAY_KINDS,
    RELAY_METHOD,
    Markup,
    Replier,
    markup_json,
)

__all__ = [
    "PRIORITY_REPLY",
    "PRIORITY_ROUTINE",
    "PRIORITY_URGENT",
    "RELAY_KINDS",
    "RELAY_METHOD",
    "Markup",
    "Replier",
    "markup_json",
]
