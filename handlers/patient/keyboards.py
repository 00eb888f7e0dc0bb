"""Keyboards and callback data of the patient bot."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from flows.onboarding import SEX_VALUES, SUGGESTED_ZONES
from flows.zones import label
from locales import LOCALES, Translator


class LangCB(CallbackData, prefix="lang"):
    """Pick a language."""

    code: str


class StepCB(CallbackData, prefix="ob"):
    """A button answering an onboarding or profile question."""

    action: str
    value: str = ""


class ProfileCB(CallbackData, prefix="pf"):
    """Change one profile field."""

    field: str


class DeleteCB(CallbackData, prefix="del"):
    """Confirm or cancel erasure."""

    confirm: bool


def _rows(buttons: list[InlineKeyboardButton], width: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


def languages() -> InlineKeyboardMarkup:
    """Each language in its own name."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=Translator(code).plain("language.name"),
                    callback_data=LangCB(code=code).pack(),
                )
                for code in LOCALES
            ]
        ]
    )


def single(tr: Translator, msgid: str, cb: CallbackData) -> InlineKeyboardMarkup:
    """One button."""
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=tr.plain(msgid), callback_data=cb.pack())]]
    )


def consent(tr: Translator) -> InlineKeyboardMarkup:
    """Agree / do not agree."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain("onboarding.consent.accept"),
                    callback_data=StepCB(action="consent", value="yes").pack(),
                ),
                InlineKeyboardButton(
                    text=tr.plain("onboarding.consent.decline"),
                    callback_data=StepCB(action="consent", value="no").pack(),
                ),
            ]
        ]
    )


def sexes(tr: Translator) -> InlineKeyboardMarkup:
    """The sex options."""
    buttons = [
        InlineKeyboardButton(
            text=tr.plain(f"sex.{v}"), callback_data=StepCB(action="sex", value=v).pack()
        )
        for v in SEX_VALUES
    ]
    return InlineKeyboardMarkup(inline_keyboard=_rows(buttons, 2))


def _zone_button(text: str, zone: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=StepCB(action="tz", value=zone).pack())


def timezones(tr: Translator, clinic_zone: str) -> InlineKeyboardMarkup:
    """Likely zones for the patient's language, and the clinic's own, by city name."""
    zones = [z for z in SUGGESTED_ZONES.get(tr.locale, SUGGESTED_ZONES["en"]) if z != clinic_zone]
    clinic = tr.plain("button.clinic_timezone", timezone=label(tr.locale, clinic_zone))
    buttons = [_zone_button(clinic, clinic_zone)]
    buttons += [_zone_button(label(tr.locale, z), z) for z in zones]
    return InlineKeyboardMarkup(inline_keyboard=_rows(buttons, 2))


def zone_choices(
    tr: Translator, zones: tuple[str, ...], *, cancel: bool = False
) -> InlineKeyboardMarkup:
    """The zones of a country that has several, by city name, west to east (and Cancel when
    a profile edit can be abandoned)."""
    rows = _rows([_zone_button(label(tr.locale, z), z) for z in zones], 2)
    if cancel:
        rows.append(
            [
                InlineKeyboardButton(
                    text=tr.plain("button.cancel"),
                    callback_data=StepCB(action="cancel").pack(),
                )
            ]
        )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def share_phone(tr: Translator) -> ReplyKeyboardMarkup:
    """The contact button (Telegram sends the user's own, verified number)."""
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=tr.plain("button.share_phone"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def profile(tr: Translator) -> InlineKeyboardMarkup:
    """One button per editable field."""
    fields = ("name", "birth_year", "sex", "phone", "timezone", "language")
    buttons = [
        InlineKeyboardButton(
            text=tr.plain(f"profile.field.{f}"), callback_data=ProfileCB(field=f).pack()
        )
        for f in fields
    ]
    return InlineKeyboardMarkup(inline_keyboard=_rows(buttons, 2))


def cancel(tr: Translator) -> InlineKeyboardMarkup:
    """Abandon an edit."""
    return single(tr, "button.cancel", StepCB(action="cancel"))


def delete_confirm(tr: Translator) -> InlineKeyboardMarkup:
    """Yes, delete / no, keep."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain("delete.confirm.yes"),
                    callback_data=DeleteCB(confirm=True).pack(),
                )
            ],
            [
                InlineKeyboardButton(
                    text=tr.plain("delete.confirm.no"),
                    callback_data=DeleteCB(confirm=False).pack(),
                )
            ],
        ]
    )
