"""The one shape of a mistake a person can fix: a message id and its parameters.

A flow raises a :class:`UserError` (or a subclass) when what the person asked for cannot be
done as asked — a typed answer that does not parse, a button of a plan that changed. The bots
answer it in the person's language with the message rendered with its parameters, and the
conversation stays where it was. Nothing here knows about Telegram.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """Something the person can put right; ``msgid`` and ``params`` say what, politely."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params: dict[str, Any] = params
