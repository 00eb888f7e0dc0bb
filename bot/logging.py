"""Structured logs: one JSON object a line, with update id, bot role and a hashed user id;
every line written while an update is processed carries its correlation id (``update``).

Never message text, names, phone numbers or tokens: code passes only ids and codes in
``extra={"ctx": {...}}``, and token-looking strings are masked as a last line of defence.
Third-party loggers that can carry content (the PDF font subsetter, the SQL driver, HTTP access
lines) are held at WARNING at every log level: :data:`CAPPED`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_TOKEN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}")

# The correlation id of the update being processed ("<bot>:<update_id>"), set by the processor
# around each update: every line logged meanwhile (handlers' and flows' own included) carries
# it as ``update`` without passing it along.
CURRENT_UPDATE: ContextVar[str | None] = ContextVar("careline_update", default=None)

# Third-party loggers that can carry what a person wrote, or are chatty for nothing: held at
# WARNING whatever ``log_level`` says (DEBUG included), and their records below WARNING are
# dropped by our handler even if a library turns a child logger up again.
CAPPED = (
    "fontTools",  # the font subsetter lists every glyph of a referral slip at INFO
    "fpdf",  # the PDF writer: text it lays out or encrypts, at DEBUG
    "PIL",  # image plugins (photos, QR codes, slips), at DEBUG
    "matplotlib",  # fonts and settings (the ops chart and the slips' DejaVu), at DEBUG
    "aiohttp.access",  # one line per request, with its path (verify codes, tokens)
    "aiohttp.client",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "aiosqlite",  # every SQL statement with its parameters, at DEBUG
    "sqlalchemy.engine",  # statements and their parameters, when turned up to INFO
    "sqlalchemy.pool",
    "redis",  # commands of the FSM storage, at DEBUG
    "asyncio",  # debug mode's slow-callback reports: reprs of callbacks and their arguments
    "aiogram.event",  # every handled update, at INFO: ids only, but far too chatty
    "aiogram.scene",  # scene data, at DEBUG
    "transitions",  # one line per state change
    "apscheduler",  # every run of the sweep job (once a second), at INFO
)


def _capped(name: str) -> bool:
    return any(name == c or name.startswith(c + ".") for c in CAPPED)


class _ThirdPartyCap(logging.Filter):
    """Drops records below WARNING from the loggers in :data:`CAPPED` and their children."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not _capped(record.name)


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``; exceptions are reduced to their type."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        update = CURRENT_UPDATE.get()
        if update is not None:
            out["update"] = update
        ctx = getattr(record, "ctx", None)
        if isinstance(ctx, dict):
            out.update(ctx)
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception messages can carry user input.
            out["exc_type"] = record.exc_info[0].__name__
        return _TOKEN.sub("<token>", json.dumps(out, ensure_ascii=False, default=str))


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send all logs through the JSON formatter; third-party loggers in :data:`CAPPED` stay at
    WARNING at any ``level``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_ThirdPartyCap())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in CAPPED:
        logging.getLogger(name).setLevel(logging.WARNING)
