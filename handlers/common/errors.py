"""The answer to a :class:`flows.errors.UserError`, the same in both bots: the message in the
person's language, rendered with the error's parameters (and the button's spinner stopped).
Nothing else changes: no state is cleared and no question is asked again, so the
conversation stays where it was. Each bot's root router includes this router first.

A handler that needs more than that (the question again, a keyboard) still catches the
error itself. :func:`pressed` scopes a module's own error handler to its buttons.
"""

from __future__ import annotations

from collections.abc import Callable

from aiogram.filters import ExceptionTypeFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import ErrorEvent

from flows.errors import UserError
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from locales import Translator

routes = RouteTable("user_errors")


@routes.errors(ExceptionTypeFilter(UserError))
async def on_user_error(event: ErrorEvent, **data: object) -> bool:
    """Says what to put right, in the person's language; the conversation stays put."""
    reply, tr, exc = data.get("reply"), data.get("tr"), event.exception
    if isinstance(reply, Replier) and isinstance(tr, Translator) and reply.chat_id:
        if event.update.callback_query is not None:
            await reply.answer_callback(event.update.callback_query.id)
        assert isinstance(exc, UserError)
        await reply.text(tr(exc.msgid, **exc.params))
    return True


def pressed(cb: type[CallbackData]) -> Callable[[ErrorEvent], bool]:
    """Error filter: the update that failed was a press of one of ``cb``'s buttons (its
    callback data starts with ``cb``'s prefix)."""
    head = f"{cb.__prefix__}{cb.__separator__}"

    def check(event: ErrorEvent) -> bool:
        query = event.update.callback_query
        return query is not None and (query.data or "").startswith(head)

    return check
