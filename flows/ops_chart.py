"""The weekly summary as a PNG chart, for the admins (``flows.ops.week`` has the figures).

Four panels: cases per day by disposition (stacked bars), waits over the limit per day
(stacked the same way), time to acceptance per department (median and p90, with each
disposition's limit as a dashed line), and the ratings of the cases closed in the week. The
title, axes and legends are in the reader's language: DejaVu Sans (matplotlib's own) draws
Latin and Cyrillic, and for Chinese a CJK font (``flows.slip.find_cjk_font``) is its
fallback; without one, the picture's words are English and the caption carries the language.

Rendering uses matplotlib's object API on the Agg canvas (no pyplot state). Each panel has a
``gid`` (``cases``, ``breaches``, ``waits``, ``ratings``) so tests read the bars' values back
from the figure instead of comparing pixels.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING

from flows.ops import Week
from locales import Translator

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_PX, HEIGHT_PX, DPI = 1200, 900, 100
COLOURS = {"consultation_24": "#d35400", "consultation": "#2471a3"}
OTHER_COLOUR = "#7f8c8d"
P50_COLOUR, P90_COLOUR, STAR_COLOUR = "#27ae60", "#a9dfbf", "#f1c40f"
GREY = "#888888"


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


def disposition(tr: Translator, disp: str) -> str:
    """A disposition's legend label (its id for one the catalogs do not know)."""
    label = tr.plain(f"ops.disp.{disp}")
    return disp if label == f"ops.disp.{disp}" else label


def title(tr: Translator, week: Week) -> str:
    """The chart's title: the week's first and last days."""
    return tr.plain(
        "ops.week.title", start=week.days[0].isoformat(), end=week.days[-1].isoformat()
    )


@cache
def _families() -> tuple[str, ...]:
    """DejaVu Sans, then a CJK font (if the machine has one) for the glyphs DejaVu lacks."""
    from matplotlib import font_manager

    from flows.slip import find_cjk_font

    families = ["DejaVu Sans"]
    path = find_cjk_font()
    if path is not None:
        try:
            font_manager.fontManager.addfont(str(path))
            families.append(font_manager.FontProperties(fname=str(path)).get_name())
        except (OSError, RuntimeError, ValueError):
            pass  # an unreadable font: the chart falls back to English words
    return tuple(families)


def chart_translator(tr: Translator) -> Translator:
    """The translator for the words inside the picture: the reader's, unless their language
    needs a CJK font this machine does not have (then English; the caption stays theirs)."""
    if tr.locale == "zh_Hans" and len(_families()) < 2:
        return Translator("en")
    return tr


def _day_labels(tr: Translator, week: Week) -> list[str]:
    from babel.dates import format_date

    return [f"{format_date(d, 'EEE', locale=tr.locale)}\n{d:%m-%d}" for d in week.days]


def _placeholder(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", color=GREY, fontsize=13,
            transform=ax.transAxes)  # fmt: skip


def _stacked(
    ax: Axes, tr: Translator, week: Week, per_day: dict[str, tuple[int, ...]], heading: str
) -> None:
    """Bars per day, one layer per disposition, with each day's total on top."""
    from matplotlib.ticker import MaxNLocator

    xs = list(range(len(week.days)))
    bottom = [0] * len(xs)
    for disp, counts in per_day.items():
        ax.bar(xs, counts, bottom=bottom, width=0.7, label=disposition(tr, disp),
               color=COLOURS.get(disp, OTHER_COLOUR))  # fmt: skip
        bottom = [b + n for b, n in zip(bottom, counts, strict=True)]
    for x, total in zip(xs, bottom, strict=True):
        if total:
            ax.text(x, total, str(total), ha="center", va="bottom", fontsize=10)
    ax.set_title(heading, fontsize=13, loc="left")
    ax.set_xticks(xs, _day_labels(tr, week))
    ax.set_xlabel(tr.plain("ops.week.chart.day_axis"))
    ax.set_ylabel(tr.plain("ops.week.chart.cases_axis"))
    ax.set_ylim(0, max([1, *bottom]) * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", ncol=2, fontsize=9, frameon=False)
    if not any(bottom):
        _placeholder(ax, tr.plain("ops.week.chart.none"))


def _minutes(span: timedelta | None) -> float:
    return span.total_seconds() / 60 if span is not None else 0.0


def _waits(ax: Axes, tr: Translator, week: Week) -> None:
    """Median and p90 per department (horizontal bars, the first department on top)."""
    ax.set_title(tr.plain("ops.week.chart.waits"), fontsize=13, loc="left")
    ax.set_xlabel(tr.plain("ops.week.chart.minutes_axis"))
    ax.set_ylabel(tr.plain("ops.week.chart.dept_axis"))
    rows = [r for r in week.rows if r.accepted]
    if not rows:
        ax.set_xticks([])
        ax.set_yticks([])
        _placeholder(ax, tr.plain("ops.week.chart.none"))
        return
    ys = list(range(len(rows)))[::-1]
    height = 0.38
    ax.barh([y + height / 2 for y in ys], [_minutes(r.p50) for r in rows], height=height,
            color=P50_COLOUR, label=tr.plain("ops.week.chart.p50"))  # fmt: skip
    ax.barh([y - height / 2 for y in ys], [_minutes(r.p90) for r in rows], height=height,
            color=P90_COLOUR, label=tr.plain("ops.week.chart.p90"))  # fmt: skip
    ax.set_yticks(ys, [f"{department(tr, r.department)} ({r.accepted})" for r in rows])
    # The axis reaches the longest p90 (or the shortest limit); a limit beyond it would
    # squash the bars, so only the limits within it are drawn.
    limits = sorted(week.limits.items(), key=lambda item: item[1])
    right = max([*(_minutes(r.p90) for r in rows), *(_minutes(lim) for _, lim in limits[:1])])
    right = max(right, 1.0) * 1.2
    for disp, limit in limits:
        if _minutes(limit) > right:
            continue
        label = tr.plain("ops.week.chart.limit", cases=disposition(tr, disp),
                         limit=duration(tr, limit))  # fmt: skip
        ax.axvline(_minutes(limit), color=COLOURS.get(disp, OTHER_COLOUR), linestyle="--",
                   linewidth=1.2, label=label)  # fmt: skip
    for y, r in zip(ys, rows, strict=True):
        for offset, span in ((height / 2, r.p50), (-height / 2, r.p90)):
            ax.text(_minutes(span), y + offset, f" {duration(tr, span)}", va="center", fontsize=9)
    ax.set_xlim(0, right)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=9, frameon=False)


def _ratings(ax: Axes, tr: Translator, week: Week) -> None:
    """How many ratings gave 1 to 5 stars, and the average."""
    from matplotlib.ticker import MaxNLocator

    average = week.rating
    heading = (
        tr.plain("ops.week.chart.average", average=f"{average:.1f}")
        if average is not None
        else tr.plain("ops.week.chart.ratings")
    )
    ax.set_title(heading, fontsize=13, loc="left")
    xs = [1, 2, 3, 4, 5]
    ax.bar(xs, week.stars, width=0.6, color=STAR_COLOUR, edgecolor="#b7950b")
    for x, n in zip(xs, week.stars, strict=True):
        if n:
            ax.text(x, n, str(n), ha="center", va="bottom", fontsize=10)
    ax.set_xticks(xs, [f"{x} ★" for x in xs])
    ax.set_xlabel(tr.plain("ops.week.chart.stars_axis"))
    ax.set_ylabel(tr.plain("ops.week.chart.ratings_axis"))
    ax.set_ylim(0, max([1, *week.stars]) * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, axis="y", alpha=0.3)
    if average is None:
        _placeholder(ax, tr.plain("ops.week.chart.none"))


def figure(week: Week, tr: Translator) -> Figure:
    """The chart as a matplotlib figure (:func:`render` draws it); ``tr`` as given is used,
    see :func:`chart_translator`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    axes: Sequence[Sequence[Axes]] = fig.subplots(2, 2)
    (cases, breaches), (waits, ratings) = axes
    fig.suptitle(title(tr, week), fontsize=17)  # regular: CJK fallback fonts have no bold
    _stacked(cases, tr, week, week.cases, tr.plain("ops.week.chart.cases"))
    _stacked(breaches, tr, week, week.breaches, tr.plain("ops.week.chart.breaches"))
    _waits(waits, tr, week)
    _ratings(ratings, tr, week)
    for ax, gid in ((cases, "cases"), (breaches, "breaches"), (waits, "waits"),
                    (ratings, "ratings")):  # fmt: skip
        ax.set_gid(gid)
    return fig


def render(week: Week, tr: Translator) -> bytes:
    """The chart as PNG bytes, WIDTH_PX × HEIGHT_PX, in ``tr``'s language where the fonts
    allow (:func:`chart_translator`)."""
    # matplotlib is imported on the first chart, not at start-up (flows/charts.py says why)
    import matplotlib

    words = chart_translator(tr)
    with matplotlib.rc_context({"font.family": list(_families()), "font.size": 10}):
        fig = figure(week, words)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
