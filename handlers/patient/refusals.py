"""Refusals in the patient bot, audited like the doctor bot's: who tried which action and why
it was refused — never what they typed or the callback data they sent.

Each refusal point calls :func:`refused`; a button from another onboarding step (the
``InvalidStep`` that the dispatcher's error router answers) is audited here too, by an error
handler that then lets that router answer as before.
"""

from __future__ import annotations

import re

from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import ExceptionTypeFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, ErrorEvent, Message

from flows import caregivers, trust
from flows.domain import Patient
from flows.onboarding import InvalidStep
from handlers.common.routes import RouteTable
from storage.uow import UnitOfWork

ACTION = "patient.refused"
routes = RouteTable("patient.refusals")
_REASON = re.compile(r"[a-z_]{1,24}")


def _prefixes() -> set[str]:
    """Every callback prefix the bots define (the only button names an audit record names)."""
    found: set[str] = set()
    todo = list(CallbackData.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        prefix = getattr(cls, "__prefix__", None)
        if isinstance(prefix, str):
            found.add(prefix)
    return found


def button_of(query: CallbackQuery) -> str:
    """The button's callback prefix when it is one of ours, else ``unknown``."""
    prefix = (query.data or "").split(":", 1)[0]
    return prefix if prefix in _prefixes() else "unknown"


async def actor_of(uow: UnitOfWork, patient: Patient | None, user_id: int | None) -> str:
    """The audit actor: the patient, else a caregiver, else a keyed hash of the Telegram id
    (someone with no record here; the audit log keeps no raw Telegram ids of patients)."""
    if patient is None and user_id is not None:
        patient = await uow.patients.by_tg_user(user_id)
    if patient is not None:
        return f"patient:{patient.id}"
    if user_id is None:
        return "patient:unknown"
    cared = await caregivers.by_user(uow, user_id)
    if cared:
        return caregivers.actor_ref(cared[0])
    return trust.stranger_ref(uow, user_id)


async def refused(
    uow: UnitOfWork,
    event: CallbackQuery | Message,
    patient: Patient | None,
    what: str,
    reason: str = "stale",
) -> None:
    """Audit one refused action: ``what`` is the command (``/intake``) or the button's prefix
    (``pc``), ``reason`` a short id (``stale``, ``not_yours``, ``blocked`` ...)."""
    user = event.from_user
    actor = await actor_of(uow, patient, user.id if user is not None else None)
    kind = "button" if isinstance(event, CallbackQuery) else "command"
    why = reason if _REASON.fullmatch(reason) else "other"
    await uow.audit.record(actor, ACTION, kind, what[:32], {"reason": why})


async def refused_button(
    uow: UnitOfWork, query: CallbackQuery, patient: Patient | None, reason: str = "stale"
) -> None:
    """:func:`refused` for a button, named by its prefix."""
    await refused(uow, query, patient, button_of(query), reason)


@routes.errors(ExceptionTypeFilter(InvalidStep))
async def on_invalid_step(
    event: ErrorEvent, uow: UnitOfWork, patient: Patient | None = None
) -> None:
    """A button or answer of another onboarding step: audited, then answered by the
    dispatcher's error router (the current question again)."""
    update = event.update
    if update.callback_query is not None:
        await refused_button(uow, update.callback_query, patient, "other_step")
    elif update.message is not None:
        await refused(uow, update.message, patient, "message", "other_step")
    raise SkipHandler
