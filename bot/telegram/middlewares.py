"""Outer middleware: gives every handler the actor, the translator and the replier.

The unit of work arrives with the update from :mod:`bot.telegram.processor`, which owns the
transaction; handlers never open or commit one themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject, User

from bot.settings import Settings
from bot.telegram.reply import Replier
from locales import Translator, normalize_locale
from storage.uow import UnitOfWork

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class ActorMiddleware(BaseMiddleware):
    """Resolves who is writing (from the database) and in which language to answer."""

    def __init__(self, role: str, settings: Settings) -> None:
        self.role = role
        self.settings = settings

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        """Fill ``patient`` (patient bot), ``doctor`` and ``is_admin`` (doctor bot), ``tr``,
        ``reply`` and ``settings`` for the handlers."""
        uow: UnitOfWork = data["uow"]
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        patient = None
        doctor = None
        if self.role == "patient" and user is not None:
            patient = await uow.patients.by_tg_user(user.id)
        if self.role == "doctor" and user is not None:
            doctor = await uow.doctors.by_tg_user(user.id)
        known = patient if patient is not None else doctor
        locale = (
            known.locale
            if known is not None
            else normalize_locale(
                user.language_code if user else None, self.settings.default_locale
            )
        )
        data["patient"] = patient
        data["doctor"] = doctor
        data["is_admin"] = (
            self.role == "doctor" and user is not None and user.id in self.settings.admin_ids
        )
        data["tr"] = Translator(locale)
        data["settings"] = self.settings
        reply_to = chat.id if chat is not None else (user.id if user is not None else None)
        data["reply"] = Replier(uow, self.role, reply_to)
        return await handler(event, data)
