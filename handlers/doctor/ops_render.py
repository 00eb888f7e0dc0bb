"""The operator's view as text: one aligned table, the same for the admins' ``/ops`` (in a
``<pre>`` block, in the admin's language) and ``python bot.py ops`` (plain text)."""

from __future__ import annotations

import html
import unicodedata
import zoneinfo
from datetime import datetime

from flows.consultation import disposition_of
from flows.domain import Consultation
from flows.ops import Breach, Overview, Row, Unstaffed, Week
from flows.ops_chart import department, duration
from locales import Html, Translator

COLUMNS = ("doctors", "on_duty", "waiting", "oldest", "p50", "p90", "breaches", "stranded")


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


# -- alerts and the weekly caption (handlers/doctor/ops_alerts.py) -----------------------------


def level(tr: Translator, case: Consultation) -> str:
    """``urgent`` / ``routine``: the case's disposition in one word."""
    disp = disposition_of(case)
    label = tr.plain(f"ops.level.{disp}")
    return label if label != f"ops.level.{disp}" else tr.plain(f"disposition.{disp}")


def route(tr: Translator, case: Consultation) -> str:
    """Where the case waits; ``Neurology→General practice`` when routing moved it there."""
    here = tr.plain(f"dept.{case.department}")
    preferred = case.preferred_department
    if preferred and preferred != case.department:
        return f"{tr.plain(f'dept.{preferred}')}→{here}"
    return here


def breach_text(tr: Translator, breach: Breach) -> Html:
    """A case over its limit: number, level, route, the wait and the limit, who is on duty."""
    case = breach.case
    if breach.on_duty:
        on_duty = tr("ops.alert.on_duty", names=tr.plain("ops.sep").join(breach.on_duty))
    else:
        on_duty = tr("ops.alert.nobody_on_duty", department=tr.plain(f"dept.{case.department}"))
    return tr(
        "ops.alert.breach",
        number=case.number,
        level=level(tr, case),
        route=route(tr, case),
        waited=duration(tr, breach.waited),
        limit=duration(tr, breach.limit),
        on_duty=on_duty,
    )


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _clock(moment: datetime, now: datetime, clinic_tz: str) -> str:
    """``08:00`` today (clinic time), else ``11-03 08:00``."""
    zone = _zone(clinic_tz)
    local = moment.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return f"{local:%H:%M}"
    return f"{local:%m-%d %H:%M}"


def unstaffed_text(tr: Translator, found: Unstaffed, now: datetime, clinic_tz: str) -> Html:
    """A department with waiting cases and nobody on duty, and what can be done."""
    if not found.doctors:
        hint = tr("ops.alert.no_doctor")
    elif found.next_start is not None:
        hint = tr("ops.alert.next_start", time=_clock(found.next_start, now, clinic_tz))
    else:
        hint = tr("ops.alert.no_next")
    return tr(
        "ops.alert.unstaffed",
        department=tr.plain(f"dept.{found.department}"),
        waiting=found.waiting,
        oldest=duration(tr, found.oldest),
        next=hint,
    )


def week_caption(tr: Translator, week: Week, *, rich: bool = True) -> str:
    """The weekly chart's caption: the key figures (Telegram HTML, or plain text)."""
    say = tr if rich else tr.plain
    rating = (
        tr.plain("ops.week.rating", average=f"{week.rating:.1f}", count=week.ratings)
        if week.rating is not None
        else tr.plain("ops.week.no_rating")
    )
    text = say(
        "ops.week.caption",
        start=week.days[0].isoformat(),
        end=week.days[-1].isoformat(),
        cases=week.case_count,
        urgent=sum(week.cases.get("consultation_24", ())),
        routine=sum(week.cases.get("consultation", ())),
        accepted=week.total.accepted,
        p50=duration(tr, week.total.p50),
        p90=duration(tr, week.total.p90),
        breaches=week.total.breaches,
        rating=rating,
    )
    return Html(text) if rich else text
