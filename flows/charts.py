"""Reading charts: a PNG of a patient's readings over the last 7, 30 or 90 days, for the
patient (/readings), their doctors (/chart) and the weekly summary (flows/weekly.py).

One picture, one titled panel per kind of reading the patient has (a media group cannot carry
the 7 / 30 / 90 buttons, and one tall image reads top to bottom on a phone), then the
adherence strip (doses taken and missed per local day). Each panel shades its target band
(:func:`targets_for`: the band of the patient's follow-up plan template, else the default in
``questionnaires/charts.toml``), draws blood pressure as two labelled lines (systolic,
diastolic), rings flagged readings, draws device-made readings as squares (typed ones as
dots) and marks the doctor's plan changes (medication plans proposed, changed or ended;
follow-up plans started or ended: :func:`plan_changes`, from the audit log) as vertical
dotted lines across every panel.

Words in the picture are in the reader's language: DejaVu Sans (matplotlib's own) draws Latin
and Cyrillic, and for Chinese a CJK font (``flows.slip.find_cjk_font``) is its fallback
(``flows.ops_chart``'s font list); without one the picture's words are English and the
photo's caption carries the language. Times are the patient's local ones.

Rendering uses matplotlib's object API on the Agg canvas (no pyplot state); each panel has a
``gid`` (the reading's kind, ``adherence``) so tests read lines and bands back from the
figure instead of comparing pixels.
"""

from __future__ import annotations

import io
import tomllib
import zoneinfo
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows import followup
from flows.outbox import PRIORITY_REPLY, Markup, Replier
from flows.questionnaire import DataFileError
from locales import Translator
from storage.uow import UnitOfWork

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FILE = Path(__file__).parent / "questionnaires" / "charts.toml"
WIDTH_PX = 900
TITLE_PX = 150  # the figure's title and the shared legend
PANEL_PX = 330
STRIP_PX = 200
DPI = 100
DAYS = 30
DAY_CHOICES = (7, 30, 90)
FONT_PT = 15  # ~21 px: a 900 px chart is shown about a phone's width, so text must be large

TAKEN, MISSED = "#27ae60", "#c0392b"
LINE, SYSTOLIC, DIASTOLIC = "#1a5276", "#1a5276", "#d35400"
BAND = "#27ae60"
FLAG = "#e74c3c"
CHANGE = "#7d3c98"
GREY = "#888888"
KINDS = ("bp", "glucose", "pulse", "spo2", "weight", "temperature", "pain")  # panel order
UNITS = {**followup.READING_UNITS, "pain": "0–10"}
# Alert thresholds drawn as thin dashed lines where they fall inside a panel's range
# (followups.toml and devices.toml decide the flags; these only show where they are).
THRESHOLDS: dict[str, tuple[float, ...]] = {
    "bp": (180.0, 110.0),
    "pulse": (40.0, 130.0),
    "glucose": (3.9, 16.7),
    "temperature": (38.0, 40.0),
    "pain": (8.0,),
    "spo2": (93.0, 91.0),
}
# Audit actions that are a doctor's change of a patient's plan, and the marker kind of each.
CHANGE_ACTIONS = {
    "medplan.propose": "med",
    "medplan.change": "med",
    "medplan.end": "med",
    "followup.enrol": "followup",
    "followup.end": "followup",
}


@dataclass(frozen=True)
class Point:
    """One reading: when, its value(s) (two for blood pressure), whether it was flagged and
    whether a device made it."""

    at: datetime
    values: tuple[float, ...]
    flagged: bool
    device: bool = False


@dataclass(frozen=True)
class DayAdherence:
    """Doses of one local day: taken and missed (skipped counts as missed here)."""

    day: date
    taken: int
    missed: int


@dataclass(frozen=True)
class Band:
    """A target band ``[low, high]`` of one line of a panel (``line``: ``value``, or
    ``systolic`` / ``diastolic``); ``source``: ``default`` or ``plan:<template>``."""

    line: str
    low: float
    high: float
    source: str


@dataclass(frozen=True)
class PlanChange:
    """A doctor's change of the patient's plans: when, and ``med`` or ``followup``."""

    at: datetime
    kind: str


@dataclass(frozen=True)
class TrendRule:
    """How the weekly summary judges one kind (charts.toml ``[trends.<kind>]``)."""

    min_readings: int
    change: float
    change_diastolic: float | None = None


@dataclass(frozen=True)
class Rules:
    """charts.toml, checked."""

    targets: dict[str, dict[str, tuple[Band, ...]]]  # template (or "default") -> kind -> bands
    trends: dict[str, TrendRule]
    weekday: int
    at: time
    late: timedelta


# --- the data file ----------------------------------------------------------------------------


def _pair(file: str, where: str, raw: Any) -> tuple[float, float]:
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw)
        or raw[0] >= raw[1]
    ):
        raise DataFileError(f"{file}: {where} must be [low, high] numbers with low < high")
    return float(raw[0]), float(raw[1])


def parse(text: str, file: str = FILE.name) -> Rules:
    """Read and check charts.toml; :class:`DataFileError` names the problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"{file}: not valid TOML ({exc})") from exc
    unknown = set(data) - {"version", "weekly", "targets", "trends"}
    if unknown:
        raise DataFileError(f"{file}: unknown key(s) {sorted(unknown)}")
    targets: dict[str, dict[str, tuple[Band, ...]]] = {}
    for template, kinds in (data.get("targets") or {}).items():
        if not isinstance(kinds, dict):
            raise DataFileError(f"{file}: targets.{template} must be a table")
        source = "default" if template == "default" else f"plan:{template}"
        targets[template] = {}
        for kind, spec in kinds.items():
            where = f"targets.{template}.{kind}"
            if kind not in KINDS or not isinstance(spec, dict):
                raise DataFileError(f"{file}: {where}: unknown kind or not a table")
            keys = {"systolic", "diastolic"} if kind == "bp" else {"range"}
            if set(spec) != keys:
                raise DataFileError(f"{file}: {where} must have exactly {sorted(keys)}")
            targets[template][kind] = tuple(
                Band(
                    "value" if line == "range" else line,
                    *_pair(file, f"{where}.{line}", spec[line]),
                    source,
                )
                for line in sorted(keys, reverse=True)
            )
    if "default" not in targets:
        raise DataFileError(f"{file}: targets.default is missing")
    trends: dict[str, TrendRule] = {}
    for kind, spec in (data.get("trends") or {}).items():
        where = f"trends.{kind}"
        if kind not in KINDS or not isinstance(spec, dict):
            raise DataFileError(f"{file}: {where}: unknown kind or not a table")
        extra = set(spec) - {"min_readings", "change", "change_diastolic"}
        n, change = spec.get("min_readings"), spec.get("change")
        if extra or not isinstance(n, int) or n < 1 or not isinstance(change, int | float):
            raise DataFileError(f"{file}: {where}: needs min_readings >= 1 and change")
        dia = spec.get("change_diastolic")
        if (dia is not None) != (kind == "bp") or (change <= 0) or (dia is not None and dia <= 0):
            raise DataFileError(f"{file}: {where}: positive changes (change_diastolic: bp only)")
        trends[kind] = TrendRule(n, float(change), None if dia is None else float(dia))
    weekly = data.get("weekly") or {}
    try:
        weekday = int(weekly["weekday"])
        at = time.fromisoformat(str(weekly["time"]))
        late = timedelta(hours=int(weekly["late_hours"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFileError(f"{file}: weekly needs weekday, time HH:MM, late_hours") from exc
    if not 0 <= weekday <= 6 or set(weekly) != {"weekday", "time", "late_hours"}:
        raise DataFileError(f"{file}: weekly.weekday is 0 (Monday) to 6 (Sunday)")
    return Rules(targets, trends, weekday, at, late)


@cache
def rules() -> Rules:
    """charts.toml, read once."""
    return parse(FILE.read_text(encoding="utf-8"))


def targets_for(
    templates: Sequence[str], rules_: Rules | None = None
) -> dict[str, tuple[Band, ...]]:
    """The target bands by kind: the default ones, replaced kind by kind by the bands of the
    patient's running follow-up plan templates (the first plan with a band for a kind wins)."""
    r = rules_ or rules()
    out = dict(r.targets["default"])
    taken: set[str] = set()
    for template in templates:
        for kind, bands in r.targets.get(template, {}).items():
            if kind not in taken:
                out[kind] = bands
                taken.add(kind)
    return out


# --- the data a chart is drawn from -----------------------------------------------------------


def points_of(readings: Sequence[followup.ReadingView]) -> dict[str, list[Point]]:
    """Readings as plottable points by kind (a value that is not a number is left out)."""
    out: dict[str, list[Point]] = defaultdict(list)
    for r in readings:
        try:
            values = tuple(float(v) for v in r.value.split("/"))
        except ValueError:
            continue
        out[r.kind].append(Point(r.taken_at, values, r.flag != "none", r.source == "device"))
    return out


def zone(name: str | None) -> tzinfo:
    """A time zone by name (UTC for none or an unknown one)."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


async def adherence_of(
    uow: UnitOfWork, patient_id: str, now: datetime, days: int = DAYS, tz: tzinfo = UTC
) -> list[DayAdherence]:
    """Doses per local day (``tz``) of the last ``days`` days: taken, and missed or
    skipped."""
    rows = await uow.care.dose_statuses(patient_id, now - timedelta(days=days), now)
    taken: dict[date, int] = defaultdict(int)
    missed: dict[date, int] = defaultdict(int)
    for due_at, status in rows:
        day = followup.aware(due_at).astimezone(tz).date()
        if status == "taken":
            taken[day] += 1
        elif status in ("missed", "skipped"):
            missed[day] += 1
    return [DayAdherence(d, taken[d], missed[d]) for d in sorted(set(taken) | set(missed))]


async def plan_changes(
    uow: UnitOfWork, patient_id: str, now: datetime, days: int = DAYS
) -> list[PlanChange]:
    """The doctor's changes of the patient's plans in the last ``days`` days, oldest first."""
    rows = await uow.care.plan_changes(
        patient_id, tuple(CHANGE_ACTIONS), now - timedelta(days=days), now
    )
    return [PlanChange(followup.aware(at), CHANGE_ACTIONS[action]) for at, action in rows]


async def plan_templates(uow: UnitOfWork, patient_id: str) -> list[str]:
    """Templates of the patient's running follow-up plans, oldest plan first."""
    return [p.template for p in await followup.plans_of(uow, patient_id)]


@dataclass(frozen=True)
class ChartData:
    """Everything one chart shows."""

    readings: list[followup.ReadingView]
    adherence: list[DayAdherence]
    targets: dict[str, tuple[Band, ...]]
    changes: list[PlanChange]


async def data_for(
    uow: UnitOfWork, patient_id: str, now: datetime, days: int = DAYS, tz: tzinfo = UTC
) -> ChartData:
    """The readings, doses, target bands and plan changes of the last ``days`` days."""
    readings = [
        r for r in await followup.recent_readings(uow, patient_id, now, days) if r.taken_at <= now
    ]
    return ChartData(
        readings,
        await adherence_of(uow, patient_id, now, days, tz),
        targets_for(await plan_templates(uow, patient_id)),
        await plan_changes(uow, patient_id, now, days),
    )


async def chart_for(
    uow: UnitOfWork,
    patient_id: str,
    now: datetime,
    days: int = DAYS,
    tr: Translator | None = None,
    tz: tzinfo = UTC,
) -> bytes:
    """The patient's chart of the last ``days`` days (PNG), in ``tr``'s language."""
    data = await data_for(uow, patient_id, now, days, tz)
    return render(data.readings, data.adherence, now, days, tr=tr, targets=data.targets,
                  changes=data.changes, tz=tz)  # fmt: skip


# --- drawing ----------------------------------------------------------------------------------


def height_for(panels: int) -> int:
    """The chart's height in pixels with ``panels`` reading panels (at least one)."""
    return TITLE_PX + max(1, panels) * PANEL_PX + STRIP_PX


def kinds_of(points: dict[str, list[Point]]) -> list[str]:
    """The panels' kinds, in the fixed order, then any other kind by name."""
    return [k for k in KINDS if points.get(k)] + sorted(k for k in points if k not in KINDS)


def _date_formatter(tr: Translator, tz: tzinfo, skeleton: str = "MMMd") -> Any:
    from babel.dates import format_skeleton
    from matplotlib import dates as mdates
    from matplotlib.ticker import FuncFormatter

    locale = {"zh_Hans": "zh_Hans_CN"}.get(tr.locale, tr.locale)

    def fmt(x: float, _pos: int | None = None) -> str:
        return format_skeleton(skeleton, mdates.num2date(x, tz=tz).date(), locale=locale)

    return FuncFormatter(fmt)


def _limits(values: list[float], bands: Sequence[Band]) -> tuple[float, float]:
    lows = [*values, *(b.low for b in bands)]
    highs = [*values, *(b.high for b in bands)]
    low, high = min(lows), max(highs)
    pad = max((high - low) * 0.12, 1.0 if high > 20 else 0.3)
    return low - pad, high + pad


def _panel(
    ax: Any,  # Axes: matplotlib's stubs take no datetimes, which it plots fine
    tr: Translator,
    kind: str,
    series: list[Point],
    bands: Sequence[Band],
    tz: tzinfo,
) -> None:
    """One kind's panel: title, band(s), line(s), flagged rings, device squares."""
    unit = UNITS.get(kind, "")
    name = tr.plain(f"followup.reading.{kind}")
    if name == f"followup.reading.{kind}":
        name = kind
    title = tr.plain("charts.panel.title", name=name, unit=unit) if unit else name
    ax.set_title(title, loc="left", fontsize=FONT_PT + 3, pad=8)
    width = max(len(p.values) for p in series)
    lines = ("systolic", "diastolic") if kind == "bp" and width == 2 else ("value",)
    colours = {"systolic": SYSTOLIC, "diastolic": DIASTOLIC, "value": LINE}
    for band in bands:
        ax.axhspan(band.low, band.high, color=BAND, alpha=0.13, linewidth=0, zorder=0)
    xs = [p.at.astimezone(tz) for p in series]
    for i, line in enumerate(lines):
        ys = [p.values[i] if i < len(p.values) else float("nan") for p in series]
        label = tr.plain(f"charts.line.{line}") if line != "value" else None
        ax.plot(xs, ys, color=colours[line], linewidth=2.2, label=label, zorder=2,
                linestyle="-" if line != "diastolic" else (0, (5, 2)))  # fmt: skip
        for device in (False, True):
            pts = [(x, y) for x, y, p in zip(xs, ys, series, strict=True) if p.device is device]
            if pts:  # smaller marks when there are many, so the line stays readable
                size = (48 if device else 40) if len(series) <= 60 else 16
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=size,
                           marker="s" if device else "o", color=colours[line],
                           edgecolors="white", linewidths=0.8 if size > 20 else 0,
                           zorder=3)  # fmt: skip
        flagged = [(x, y) for x, y, p in zip(xs, ys, series, strict=True) if p.flagged]
        if flagged:
            ax.scatter([f[0] for f in flagged], [f[1] for f in flagged], s=220,
                       facecolors="none", edgecolors=FLAG, linewidths=2.2, zorder=4)  # fmt: skip
    values = [v for p in series for v in p.values]
    low, high = _limits(values, bands)
    for value in THRESHOLDS.get(kind, ()):
        # one inside a band (blood pressure's diastolic 110 in the systolic band) would read
        # as the band's edge: only those outside the bands are drawn
        if low < value < high and not any(b.low < value < b.high for b in bands):
            ax.axhline(value, color=FLAG, linestyle="--", linewidth=1, alpha=0.6, zorder=1)
    ax.set_ylim(low, high)
    ax.grid(True, alpha=0.3)
    if len(lines) == 2:  # on the title's line, right: never over the readings
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=FONT_PT - 1,
                  frameon=False, borderaxespad=0.2, handlelength=1.8)  # fmt: skip


def _strip(
    ax: Any,  # Axes (see _panel)
    tr: Translator,
    adherence: Sequence[DayAdherence],
    start: date,
    end: date,
    tz: tzinfo,
) -> None:
    """Doses taken (green) and missed (red) per local day, side by side."""
    from matplotlib.ticker import MaxNLocator

    ax.set_title(tr.plain("charts.panel.doses"), loc="left", fontsize=FONT_PT + 3, pad=8)
    xs_t, ys_t, xs_m, ys_m = [], [], [], []
    for a in adherence:
        if not start <= a.day <= end:
            continue
        mid = datetime.combine(a.day, time(12), tzinfo=tz)
        if a.taken:
            xs_t.append(mid)
            ys_t.append(a.taken)
        if a.missed:
            xs_m.append(mid)
            ys_m.append(a.missed)
    # one bar per day: taken at the bottom, missed stacked on it (reads at 90 days too)
    width = timedelta(hours=17)
    ax.bar(xs_t, ys_t, width=width, color=TAKEN, label=tr.plain("charts.doses.taken"))
    bottoms = [ys_t[xs_t.index(x)] if x in xs_t else 0 for x in xs_m]
    ax.bar(xs_m, ys_m, width=width, bottom=bottoms, color=MISSED,
           label=tr.plain("charts.doses.missed"))  # fmt: skip
    totals = [*ys_t, *(b + m for b, m in zip(bottoms, ys_m, strict=True))]
    ax.set_ylim(0, max([1, *totals]) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    ax.grid(True, axis="y", alpha=0.3)
    if xs_t or xs_m:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=FONT_PT - 1,
                  frameon=False, borderaxespad=0.2)  # fmt: skip
    else:
        ax.text(0.5, 0.45, tr.plain("charts.doses.none"), ha="center", va="center",
                color=GREY, fontsize=FONT_PT, transform=ax.transAxes)  # fmt: skip


def _legend(fig: Figure, tr: Translator, has: dict[str, bool]) -> None:
    """The shared key under the title: only what the chart shows."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    if has["band"]:
        handles.append(Patch(color=BAND, alpha=0.3, label=tr.plain("charts.key.target")))
    if has["flag"]:
        handles.append(Line2D([], [], marker="o", markersize=13, markerfacecolor="none",
                              markeredgecolor=FLAG, markeredgewidth=2, linestyle="none",
                              label=tr.plain("charts.key.flagged")))  # fmt: skip
    if has["device"]:
        handles.append(Line2D([], [], marker="s", markersize=8, color=LINE, linestyle="none",
                              label=tr.plain("charts.key.device")))  # fmt: skip
    if has["change"]:
        handles.append(Line2D([], [], color=CHANGE, linestyle=":", linewidth=2.5,
                              label=tr.plain("charts.key.plan_change")))  # fmt: skip
    if handles:
        below_title = 1 - 56 / fig.bbox.height
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, below_title),
                   ncol=min(4, len(handles)), fontsize=FONT_PT - 1, frameon=False,
                   handlelength=1.6, columnspacing=1.2)  # fmt: skip


def figure(
    readings: Sequence[followup.ReadingView],
    adherence: Sequence[DayAdherence],
    now: datetime,
    days: int,
    tr: Translator,
    targets: dict[str, tuple[Band, ...]],
    changes: Sequence[PlanChange],
    tz: tzinfo,
) -> Figure:
    """The chart as a matplotlib figure (:func:`render` draws it), words from ``tr``."""
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    points = points_of(readings)
    kinds = kinds_of(points)
    panels = max(1, len(kinds))
    height = height_for(len(kinds))
    fig = Figure(figsize=(WIDTH_PX / DPI, height / DPI), dpi=DPI)
    ratios = [PANEL_PX] * panels + [STRIP_PX]
    top = 1 - TITLE_PX / height
    axes = fig.subplots(panels + 1, 1, sharex=True, gridspec_kw={
        "height_ratios": ratios, "hspace": 0.42, "top": top, "bottom": 60 / height,
        "left": 0.1, "right": 0.97})  # fmt: skip
    local_now = now.astimezone(tz)
    start = local_now - timedelta(days=days)
    fig.suptitle(tr.plain("charts.title", days=days), x=0.03, y=1 - 14 / height, ha="left",
                 va="top", fontsize=FONT_PT + 7)  # fmt: skip
    has = {"band": False, "flag": False, "device": False, "change": bool(changes)}
    if not kinds:
        ax = axes[0]
        ax.set_title(tr.plain("charts.panel.readings"), loc="left", fontsize=FONT_PT + 3)
        ax.text(0.5, 0.5, tr.plain("charts.none", days=days), ha="center", va="center",
                fontsize=FONT_PT + 2, color=GREY, transform=ax.transAxes)  # fmt: skip
        ax.set_yticks([])
        ax.set_gid("empty")
    for ax, kind in zip(axes, kinds, strict=False):
        bands = targets.get(kind, ())
        _panel(ax, tr, kind, points[kind], bands, tz)
        ax.set_gid(kind)
        has["band"] |= bool(bands)
        has["flag"] |= any(p.flagged for p in points[kind])
        has["device"] |= any(p.device for p in points[kind])
    strip = axes[-1]
    _strip(strip, tr, adherence, start.date() + timedelta(days=1), local_now.date(), tz)
    strip.set_gid("adherence")
    for ax in axes:
        for change in changes:
            ax.axvline(change.at.astimezone(tz), color=CHANGE, linestyle=":", linewidth=2.5,
                       zorder=1, gid=f"change:{change.kind}")  # fmt: skip
    first = datetime.combine(start.date() + timedelta(days=1), time(0), tzinfo=tz)
    margin = timedelta(days=days) * 0.02
    strip.set_xlim(first - margin, local_now + margin)
    # 7 days: a tick under each day's bar (noon); longer: every week or two, at midnight
    locator = (
        mdates.HourLocator(byhour=12, tz=tz)
        if days <= 7
        else mdates.DayLocator(interval=7 if days <= 30 else 14, tz=tz)
    )
    strip.xaxis.set_major_locator(locator)
    # a tick a day at 7 days: the short numeric date, so eight of them fit side by side
    strip.xaxis.set_major_formatter(_date_formatter(tr, tz, "Md" if days <= 7 else "MMMd"))
    _legend(fig, tr, has)
    return fig


def render(
    readings: Sequence[followup.ReadingView],
    adherence: Sequence[DayAdherence],
    now: datetime,
    days: int = DAYS,
    *,
    tr: Translator | None = None,
    targets: dict[str, tuple[Band, ...]] | None = None,
    changes: Sequence[PlanChange] = (),
    tz: tzinfo = UTC,
) -> bytes:
    """The chart as PNG bytes, WIDTH_PX × :func:`height_for` (panels), with words in
    ``tr``'s language where the fonts allow (English by default); ``targets`` default to
    charts.toml's default bands."""
    # matplotlib is imported on the first chart, not at start-up (~50-90 MB of the bot's
    # memory that most processes never need; benchmarks/reminders.py)
    import matplotlib

    from flows.ops_chart import _families, chart_translator

    words = chart_translator(tr or Translator("en"))
    bands = targets if targets is not None else targets_for(())
    with matplotlib.rc_context({"font.family": list(_families()), "font.size": FONT_PT}):
        fig = figure(readings, adherence, now, days, words, bands, changes, tz)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


async def send(
    uow: UnitOfWork,
    bot: str,
    chat_id: int,
    png: bytes,
    caption: str,
    *,
    priority: int = PRIORITY_REPLY,
    markup: Markup | None = None,
) -> None:
    """Queue the chart as a protected photo (one outbox row; the sender uploads it), with
    ``markup`` (the 7 / 30 / 90 days buttons) under it."""
    await Replier(uow, bot, chat_id).photo("chart.png", png, caption, priority=priority,
                                           markup=markup)  # fmt: skip
