"""The operator's view as text: one aligned table, the same for the admins' ``/ops`` (in a
``<pre>`` block, in the admin's language) and ``python bot.py ops`` (plain text)."""

from __future__ import annotations

import html
import unicodedata
import zoneinfo
from datetime import timedelta

from flows.ops import Overview, Row
from locales import Html, Translator

COLUMNS = ("doctors", "on_duty", "waiting", "oldest", "p50", "p90", "breaches", "stranded")


def duration(tr: Translator, span: timedelta | None) -> str:
    """A wait in a few characters: ``45m``, ``3h05m``, ``2d04h`` (minutes rounded down);
    ``-`` for none (ASCII: a dash of ambiguous width would shift CJK columns)."""
    if span is None:
        return "-"
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes < 60:
        return tr.plain("ops.dur.minutes", n=minutes)
    hours, mins = divmod(minutes, 60)
    if hours < 48:
        return tr.plain("ops.dur.hours", h=hours, m=f"{mins:02d}")
    days, hours = divmod(hours, 24)
    return tr.plain("ops.dur.days", d=days, h=f"{hours:02d}")


def department(tr: Translator, dept: str | None) -> str:
    """A department's short name (the total's label for None); a department the catalogs do
    not know (a clinic's own questionnaire) shows its full name, else its id."""
    if dept is None:
        return tr.plain("ops.total")
    for msgid in (f"ops.dept.{dept}", f"dept.{dept}"):
        label = tr.plain(msgid)
        if label != msgid:
            return label
    return dept


def _width(text: str) -> int:
    """Columns a monospace font gives ``text`` (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, *, right: bool) -> str:
    gap = " " * max(0, width - _width(text))
    return gap + text if right else text + gap


def _cells(tr: Translator, row: Row) -> list[str]:
    return [
        department(tr, row.department),
        str(row.doctors),
        str(row.on_duty),
        str(row.waiting),
        duration(tr, row.oldest),
        duration(tr, row.p50),
        duration(tr, row.p90),
        str(row.breaches),
        str(row.stranded),
    ]


def table(tr: Translator, view: Overview) -> list[str]:
    """The table's lines: a header, the departments with anything to show, the total."""
    lines = [
        [tr.plain("ops.col.department"), *(tr.plain(f"ops.col.{c}") for c in COLUMNS)],
        *(_cells(tr, r) for r in view.rows if not r.idle),
        _cells(tr, view.total),
    ]
    widths = [max(_width(line[i]) for line in lines) for i in range(len(lines[0]))]
    return [
        "  ".join(_pad(cell, widths[i], right=i > 0) for i, cell in enumerate(line)).rstrip()
        for line in lines
    ]


def _local(view: Overview, clinic_tz: str) -> str:
    try:
        zone = zoneinfo.ZoneInfo(clinic_tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone, clinic_tz = zoneinfo.ZoneInfo("UTC"), "UTC"
    return f"{view.at.astimezone(zone):%Y-%m-%d %H:%M:%S} {clinic_tz}"


def report(tr: Translator, view: Overview, clinic_tz: str, *, rich: bool) -> str:
    """Title, table, legend and notes: Telegram HTML when ``rich``, else plain text."""
    say = tr if rich else tr.plain
    body = "\n".join(table(tr, view))
    parts = [
        say("ops.title", time=_local(view, clinic_tz)),
        f"<pre>{html.escape(body, quote=False)}</pre>" if rich else body,
        say(
            "ops.legend",
            limit_24=duration(tr, view.limits.get("consultation_24")),
            limit=duration(tr, view.limits.get("consultation")),
        ),
    ]
    if view.total.stranded:
        names = tr.plain("ops.sep").join(department(tr, d) for d in view.stranded)
        parts.append(say("ops.stranded", n=view.total.stranded, departments=names))
    idle = [department(tr, r.department) for r in view.rows if r.idle]
    if idle:
        parts.append(say("ops.idle", departments=tr.plain("ops.sep").join(idle)))
    text = "\n".join(parts)
    return Html(text) if rich else text
