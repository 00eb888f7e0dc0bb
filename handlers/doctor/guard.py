"""Who may use a doctor feature, and which case a command is about: said once, here.

A handler for working doctors only is marked ``@verified("what")``. The :class:`VerifiedOnly`
middleware (on the doctor bot's root router, so on every doctor handler) lets a verified
doctor through — the handler's ``doctor`` is then a :class:`Doctor`, never None — and refuses
anyone else before the handler runs: a button's spinner is stopped, the refusal is audited
(``consultation.refused``, with ``what`` naming the command or button) and the person is told
in their language. Typed texts of an open wizard or a case are not refusals: their filters ask
:func:`can_work` and let the text go on to the next router.

:func:`case_from_command` and :func:`target_case` find the case a command or message is about.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar, cast

from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import Flag, FlagDecorator, get_flag
from aiogram.filters import CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, TelegramObject

from flows import consultation as flow
from flows.domain import Consultation, Doctor, utcnow
from flows.outbox import Replier
from handlers.common.cases import tag_of
from locales import Translator
from storage.uow import UnitOfWork

H = TypeVar("H", bound=Callable[..., Any])
FLAG = "verified"


@dataclass(frozen=True)
class Guard:
    """What a refusal of this handler is audited as, and whether it also ends the typed-answer
    state (a text typed into a step that a doctor who may no longer work cannot finish)."""

    what: str
    end_typing: bool = False
    role: str = "doctor"  # or "pharmacist": who the handler is for


def verified(what: str, *, end_typing: bool = False, role: str = "doctor") -> Callable[[H], H]:
    """Mark a handler as for verified doctors only (``role="pharmacist"``: for verified
    pharmacists only); others are refused as ``what``."""

    def mark(handler: H) -> H:
        return cast(H, FlagDecorator(Flag(FLAG, Guard(what, end_typing, role)))(handler))

    return mark


def can_work(doctor: Doctor | None) -> TypeGuard[Doctor]:
    """A known doctor (not a pharmacist) whose verification holds now."""
    return doctor is not None and doctor.role == "doctor" and flow.is_verified(doctor, utcnow())


def can_desk(person: Doctor | None) -> TypeGuard[Doctor]:
    """A hospital desk account (made by an admin for one hospital)."""
    return (
        person is not None
        and person.role == "desk"
        and person.status == "verified"
        and person.hospital_id is not None
    )


def can_review(person: Doctor | None) -> TypeGuard[Doctor]:
    """A known pharmacist whose verification holds now."""
    return (
        person is not None and person.role == "pharmacist" and flow.is_verified(person, utcnow())
    )


def working_doctor(event: TelegramObject, doctor: Doctor | None) -> bool:
    """Filter: only a verified doctor's message (anyone else's goes on to later routers)."""
    return can_work(doctor)


async def refuse(
    uow: UnitOfWork,
    doctor: Doctor | None,
    what: str,
    tr: Translator,
    reply: Replier,
    *,
    role: str = "doctor",
) -> None:
    """Someone who is not a verified doctor asked for cases (or not a verified pharmacist
    for a pharmacist's work): refused and audited."""
    actor = flow.doctor_ref(doctor) if doctor is not None else f"tg:{reply.chat_id}"
    await uow.audit.record(actor, "consultation.refused", "command", what, {"role": role})
    if role == "pharmacist":
        await reply.text(tr("rx.review.not_pharmacist"))
    elif role == "desk":
        await reply.text(tr("appt.desk.not_desk"))
    elif doctor is not None and doctor.role == "desk":
        await reply.text(tr("appt.desk.doctors_only"))
    elif doctor is not None and doctor.role == "pharmacist" and flow.is_verified(doctor, utcnow()):
        await reply.text(tr("rx.pharmacist.doctors_only"))
    else:
        await reply.text(tr("consult.doctor.not_verified"))


class VerifiedOnly(BaseMiddleware):
    """Runs a ``@verified`` handler for a verified doctor only; refuses anyone else."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Passes the event on, or answers with the refusal instead of the handler."""
        guard = get_flag(data, FLAG)
        doctor = data.get("doctor")
        if not isinstance(guard, Guard):
            return await handler(event, data)
        allowed = {"pharmacist": can_review, "desk": can_desk}.get(guard.role, can_work)
        if allowed(doctor):
            return await handler(event, data)
        reply: Replier = data["reply"]
        if isinstance(event, CallbackQuery):
            await reply.answer_callback(event.id)
        state = data.get("state")
        if guard.end_typing and isinstance(state, FSMContext):
            await state.set_state(None)
        await refuse(data["uow"], doctor, guard.what, data["tr"], reply, role=guard.role)
        return None


# -- which case ----------------------------------------------------------------------------------


async def target_case(
    uow: UnitOfWork, doctor: Doctor, message: Message, state: FSMContext
) -> Consultation | None:
    """The case a message is meant for: the tag of the replied-to bot message wins, then
    the chosen case; None when neither says."""
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.is_bot:
        number = tag_of(replied.text or replied.caption)
        if number is not None:
            case = await uow.consultations.by_number(number)
            if case is not None and case.doctor_id == doctor.id:
                return case
            await uow.audit.record(
                flow.doctor_ref(doctor), "consultation.refused", "case_number", str(number), {}
            )
            return None
    chosen = (await state.get_data()).get("case")
    case = await uow.consultations.get(chosen) if chosen else None
    return case if case is not None and case.doctor_id == doctor.id else None


async def case_from_command(
    uow: UnitOfWork,
    doctor: Doctor,
    message: Message,
    command: CommandObject,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
    *,
    refused: str,
    not_yours: str,
    which: str,
    bad_number: str | None = None,
) -> Consultation | None:
    """The case a command like ``/plan 12`` is about: the number given (one of the doctor's
    own cases, in any state; anything else is audited as ``refused`` and answered with
    ``not_yours``, or ``bad_number`` for a non-number), else the replied-to tagged message or
    the chosen case (``which`` when neither says)."""
    arg = (command.args or "").strip().lstrip("#")
    if arg:
        case = await uow.consultations.by_number(int(arg)) if arg.isdigit() else None
        if case is None or case.doctor_id != doctor.id:
            await uow.audit.record(flow.doctor_ref(doctor), refused, "case_number", arg[:32], {})
            if bad_number is not None and not arg.isdigit():
                await reply.text(tr(bad_number))
            else:
                await reply.text(tr(not_yours, number=arg[:12]))
            return None
        return case
    case = await target_case(uow, doctor, message, state)
    if case is None:
        await reply.text(tr(which))
    return case
