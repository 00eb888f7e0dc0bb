"""Structured logs: one JSON object a line, with update id, bot role and a hashed user id.

Never message text, names, phone numbers or tokens: code passes only ids and codes in
``extra={"ctx": {...}}``, and token-looking strings are masked as a last line of defence.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_TOKEN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}")


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
        ctx = getattr(record, "ctx", None)
        if isinstance(ctx, dict):
            out.update(ctx)
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception messages can carry user input.
            out["exc_type"] = record.exc_info[0].__name__
        return _TOKEN.sub("<token>", json.dumps(out, ensure_ascii=False, default=str))


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send all logs through the JSON formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiogram logs every handled update at INFO; ids only, but far too chatty.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)  # one line per state change
    # APScheduler logs every run of the sweep job (once a second) at INFO.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
