"""Reading charts: a PNG of a patient's readings over time with threshold lines, and an
adherence strip (doses taken / missed per day), for the patient (/readings) and their doctors
(/chart).

Rendering uses matplotlib's Agg backend (no GUI) with its bundled DejaVu Sans. The chart's
text is language-neutral on purpose — units ("mmHg", "mmol/L", "°C"), dates as MM-DD and
✓ / ✗ — because DejaVu has no CJK glyphs and a Chinese label would render as boxes; the
caption of the photo carries the words, in the reader's language.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from flows import followup
from flows.outbox import PRIORITY_REPLY, Replier
from storage.uow import UnitOfWork

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH_PX = 900
PANEL_PX = 260
STRIP_PX = 140
DPI = 100
DAYS = 30
TAKEN, MISSED = "#27ae60", "#c0392b"

# Panels in this order; each: label (units only), threshold lines (value, colour).
PANELS: dict[str, tuple[str, tuple[tuple[float, str], ...]]] = {
    "bp": ("BP, mmHg", ((180.0, "#c0392b"), (110.0, "#e67e22"))),
    "pulse": ("♥ bpm", ((40.0, "#c0392b"), (130.0, "#c0392b"))),
    "glucose": ("mmol/L", ((3.0, "#7b241c"), (3.9, "#c0392b"), (16.7, "#c0392b"))),
    "temperature": ("°C", ((38.0, "#e67e22"), (40.0, "#7b241c"))),
    "pain": ("0–10", ((8.0, "#c0392b"),)),
    "spo2": ("SpO₂ %", ((93.0, "#e67e22"), (91.0, "#7b241c"))),  # devices.toml
    "weight": ("kg", ()),
}


@dataclass(frozen=True)
class Point:
    """One reading: when, its value(s) (two for blood pressure) and whether it was flagged."""

    at: datetime
    values: tuple[float, ...]
    flagged: bool


@dataclass(frozen=True)
class DayAdherence:
    """Doses of one local day: taken and missed (skipped counts as missed here)."""

    day: date
    taken: int
    missed: int


def _points(readings: list[followup.ReadingView]) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = defaultdict(list)
    for r in readings:
        try:
            values = tuple(float(v) for v in r.value.split("/"))
        except ValueError:
            continue
        out[r.kind].append(Point(r.taken_at, values, r.flag != "none"))
    return out


def render(
    readings: list[followup.ReadingView],
    adherence: list[DayAdherence],
    now: datetime,
    days: int = DAYS,
) -> bytes:
    """The chart as PNG bytes: one panel per kind of reading (an empty placeholder panel when
    there are none) and the adherence strip. Always WIDTH_PX wide."""
    # matplotlib is imported on the first chart, not at start-up (~50-90 MB of the bot's
    # memory that most processes never need; benchmarks/reminders.py)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    points = _points(readings)
    kinds = [k for k in PANELS if points.get(k)] + sorted(k for k in points if k not in PANELS)
    panels = max(1, len(kinds))
    height = panels * PANEL_PX + STRIP_PX
    fig: Figure = plt.figure(figsize=(WIDTH_PX / DPI, height / DPI), dpi=DPI)
    try:
        ratios = [PANEL_PX] * panels + [STRIP_PX]
        axes = fig.subplots(panels + 1, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
        start = now - timedelta(days=days)
        if not kinds:
            ax = axes[0]
            ax.text(0.5, 0.5, "—", ha="center", va="center", fontsize=28, color="#999999",
                    transform=ax.transAxes)  # fmt: skip
            ax.set_yticks([])
        for ax, kind in zip(axes, kinds, strict=False):
            label, lines = PANELS.get(kind, (kind, ()))
            series = points[kind]
            xs = [p.at for p in series]
            width = max(len(p.values) for p in series)
            for i in range(width):
                ys = [p.values[i] if i < len(p.values) else float("nan") for p in series]
                ax.plot(xs, ys, marker="o", markersize=4, linewidth=1.5,
                        color=("#2c3e50", "#2980b9")[i % 2])  # fmt: skip
            flagged = [(p.at, max(p.values)) for p in series if p.flagged]
            if flagged:
                ax.scatter(
                    [f[0] for f in flagged], [f[1] for f in flagged], s=70,
                    facecolors="none", edgecolors="#c0392b", linewidths=1.5, zorder=3,
                )  # fmt: skip
            for value, colour in lines:
                ax.axhline(value, color=colour, linestyle="--", linewidth=1)
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
        strip = axes[-1]
        by_day = {a.day: a for a in adherence}
        xs_t, ys_t, xs_m, ys_m = [], [], [], []
        for offset in range(days + 1):
            day = (start + timedelta(days=offset)).date()
            a = by_day.get(day)
            if a is None:
                continue
            mid = datetime.combine(day, datetime.min.time(), tzinfo=now.tzinfo) + timedelta(
                hours=12
            )
            if a.taken:
                xs_t.append(mid)
                ys_t.append(a.taken)
            if a.missed:
                xs_m.append(mid)
                ys_m.append(a.missed)
        bar = timedelta(hours=8)
        strip.bar([x - bar / 2 for x in xs_t], ys_t, width=bar, color=TAKEN)
        strip.bar([x + bar / 2 for x in xs_m], ys_m, width=bar, color=MISSED)
        strip.set_ylabel("✓ / ✗")
        strip.set_ylim(0, max([1, *ys_t, *ys_m]) + 0.5)
        strip.legend(
            handles=[Patch(color=TAKEN, label="✓"), Patch(color=MISSED, label="✗")],
            loc="upper left", fontsize=8,
        )  # fmt: skip
        strip.grid(True, alpha=0.3)
        strip.set_xlim(start, now)
        strip.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()
    finally:
        plt.close(fig)


async def adherence_of(
    uow: UnitOfWork, patient_id: str, now: datetime, days: int = DAYS
) -> list[DayAdherence]:
    """Doses per (UTC) day of the last ``days`` days: taken, and missed or skipped."""
    rows = await uow.care.dose_statuses(patient_id, now - timedelta(days=days), now)
    taken: dict[date, int] = defaultdict(int)
    missed: dict[date, int] = defaultdict(int)
    for due_at, status in rows:
        day = followup.aware(due_at).date()
        if status == "taken":
            taken[day] += 1
        elif status in ("missed", "skipped"):
            missed[day] += 1
    return [DayAdherence(d, taken[d], missed[d]) for d in sorted(set(taken) | set(missed))]


async def chart_for(uow: UnitOfWork, patient_id: str, now: datetime, days: int = DAYS) -> bytes:
    """The patient's chart of the last ``days`` days (PNG)."""
    readings = await followup.recent_readings(uow, patient_id, now, days)
    adherence = await adherence_of(uow, patient_id, now, days)
    return render(readings, adherence, now, days)


async def send(
    uow: UnitOfWork,
    bot: str,
    chat_id: int,
    png: bytes,
    caption: str,
    *,
    priority: int = PRIORITY_REPLY,
) -> None:
    """Queue the chart as a protected photo (one outbox row; the sender uploads it)."""
    await Replier(uow, bot, chat_id).photo("chart.png", png, caption, priority=priority)
