"""Gettext catalogs (``<locale>/LC_MESSAGES/*.po``, one file per feature) and the translator.

Catalogs are read from the .po files at start-up (through Babel), so there is no manual compile
step. Message ids are symbolic (``onboarding.ask_name``); placeholders are ``{named}``.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LOCALES = ("en", "zh_Hans", "ru")
DEFAULT = "en"
_DIR = Path(__file__).parent


class CatalogError(Exception):
    """A catalog file is missing or broken; names the file."""


def catalog_files(locale: str) -> list[Path]:
    """The catalog files of one locale: ``messages.po`` plus one file per feature."""
    return sorted((_DIR / locale / "LC_MESSAGES").glob("*.po"))


@cache
def catalog(locale: str) -> Mapping[str, str]:
    """All translated messages of one locale (empty translations are left out)."""
    files = catalog_files(locale)
    if not files:
        raise CatalogError(f"no catalog files for {locale}")
    out: dict[str, str] = {}
    for path in files:
        try:
            with path.open("rb") as fh:
                cat = read_po(fh, locale=None)
        except (OSError, ValueError) as exc:
            raise CatalogError(f"cannot read {locale}/{path.name}: {type(exc).__name__}") from None
        for msg in cat:
            if msg.id and isinstance(msg.id, str) and isinstance(msg.string, str) and msg.string:
                if msg.id in out:
                    raise CatalogError(f"{locale}/{path.name}: {msg.id} is defined twice")
                out[msg.id] = msg.string
    return out


def placeholders(text: str) -> set[str]:
    """The ``{named}`` placeholders of a message."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def normalize_locale(code: str | None, default: str = DEFAULT) -> str:
    """Map a Telegram ``language_code`` (``zh-hans``, ``ru``, ``en-GB``) to a catalog."""
    if not code:
        return default
    c = code.replace("_", "-").lower()
    if c.startswith("zh"):
        return "zh_Hans"
    if c.startswith("ru"):
        return "ru"
    if c.startswith("en"):
        return "en"
    return default


_TAG = re.compile(r"<[^>]+>")


class Html(str):
    """Text that is already safe Telegram HTML (a rendered message): not escaped again when it
    is passed as a placeholder value."""

    __slots__ = ()


class Translator:
    """Renders message ids in one locale; placeholder values are HTML-escaped."""

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in LOCALES else DEFAULT

    def __call__(self, msgid: str, /, **params: Any) -> Html:
        """The message in this locale (English, then the id itself, as fallbacks). Values are
        escaped unless they are :class:`Html` (e.g. another rendered message)."""
        text = catalog(self.locale).get(msgid) or catalog(DEFAULT).get(msgid) or msgid
        if not params:
            return Html(text)
        safe = {
            k: v if isinstance(v, Html) else html.escape(str(v), quote=False)
            for k, v in params.items()
        }
        return Html(text.format(**safe))

    def plain(self, msgid: str, /, **params: Any) -> str:
        """The message without HTML tags (for buttons and documents)."""
        return html.unescape(_TAG.sub("", self(msgid, **params)))


def validate_catalogs() -> None:
    """Load every catalog now so a broken file stops start-up with its name."""
    for loc in LOCALES:
        catalog(loc)
