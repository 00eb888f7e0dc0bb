"""The weekly summary (flows/ops.py ``week``, flows/ops_chart.py) on SQLite and PostgreSQL: a
clinic's week in Shanghai time with every figure worked out by hand from the cases below,
the chart's bars read back from the figure (numbers, not pixels), a PNG of the documented
size without missing glyphs in each language, and the caption's key figures."""

from __future__ import annotations

import io
import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from matplotlib.container import BarContainer
from PIL import Image

from flows import ops, ops_chart
from flows.consultation import priority_of
from handlers.doctor.ops_render import week_caption
from locales import LOCALES, Translator
from storage.models import Consultation
from storage.uow import Database, UnitOfWork

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 9, 8, 0, tzinfo=SHANGHAI).astimezone(UTC)  # Monday 08:00 there
M = timedelta(minutes=1)
H = timedelta(hours=1)
URGENT, ROUTINE = "consultation_24", "consultation"  # limits 30 min and 4 h


def local(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """A Shanghai wall-clock time in 2026 as UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


async def _case(
    uow: UnitOfWork,
    department: str,
    disposition: str,
    state: str,
    requested: datetime,
    *,
    waited: timedelta | None = None,
    changed: datetime | None = None,
    closed: datetime | None = None,
    rating: int | None = None,
) -> None:
    accepted = requested + waited if waited is not None else None
    values: dict[str, Any] = {
        "patient_id": "p" * 32,
        "department": department,
        "priority": priority_of(disposition),
        "state": state,
        "requested_at": requested,
        "accepted_at": accepted,
        "updated_at": changed or accepted or requested,
        "closed_at": closed,
        "rating": rating,
    }
    await uow.consultations.add(Consultation(**values))


async def _week_of_cases(uow: UnitOfWork) -> None:
    # Monday: a routine GP case taken in 10 minutes, closed and rated 5.
    await _case(uow, "general", ROUTINE, "closed", local(2, 9), waited=10 * M,
                closed=local(2, 10), rating=5)  # fmt: skip
    # Tuesday night: a routine GP case taken 5 hours later (Wednesday): a breach, on Wednesday.
    await _case(uow, "general", ROUTINE, "active", local(3, 23, 30), waited=5 * H)
    # Wednesday: an urgent GP case taken in 20 minutes, rated 4.
    await _case(uow, "general", URGENT, "closed", local(4, 12), waited=20 * M,
                closed=local(4, 13), rating=4)  # fmt: skip
    # Thursday: an urgent cardiology case taken in 45 minutes: a breach.
    await _case(uow, "cardiology", URGENT, "active", local(5, 10), waited=45 * M)
    # Friday: a routine neurology case nobody took; it expired on Saturday: a breach then.
    await _case(uow, "neurology", ROUTINE, "expired", local(6, 8), changed=local(7, 8))
    # Saturday: a routine cardiology case still waiting; over its limit since Saturday 14:00.
    await _case(uow, "cardiology", ROUTINE, "waiting", local(7, 10))
    # Sunday, a minute before midnight: cancelled while waiting (a case, not a breach).
    await _case(uow, "general", ROUTINE, "cancelled", local(8, 23, 59), changed=local(9, 0, 5))
    # Outside the week: the Sunday before, and this Monday morning.
    await _case(uow, "general", ROUTINE, "closed", local(1, 23), waited=30 * M,
                closed=local(1, 23, 50), rating=1)  # fmt: skip
    await _case(uow, "general", ROUTINE, "waiting", local(9, 7))
    # Requested before the week, closed in it with 2 stars: a rating of the week.
    await _case(uow, "general", ROUTINE, "closed", local(30, 9, month=10), waited=5 * M,
                closed=local(3, 9), rating=2)  # fmt: skip


async def _week(db: Database) -> ops.Week:
    async with db.uow() as uow:
        await _week_of_cases(uow)
        await uow.commit()
    async with db.uow() as uow:
        return await ops.week(uow, NOW, "Asia/Shanghai")


async def test_every_figure_of_a_known_week(db: Database) -> None:
    week = await _week(db)
    assert week.days == tuple(date(2026, 11, d) for d in range(2, 9))  # Monday to Sunday
    assert (week.start, week.end) == (local(2, 0), local(9, 0))
    assert week.cases == {URGENT: (0, 0, 1, 1, 0, 0, 0), ROUTINE: (1, 1, 0, 0, 1, 1, 1)}
    assert week.case_count == 7
    assert week.breaches == {URGENT: (0, 0, 0, 1, 0, 0, 0), ROUTINE: (0, 0, 1, 0, 0, 2, 0)}
    assert week.rows == [
        ops.WeekRow("general", accepted=3, p50=20 * M, p90=5 * H, breaches=1),
        ops.WeekRow("cardiology", accepted=1, p50=45 * M, p90=45 * M, breaches=2),
        ops.WeekRow("neurology", accepted=0, p50=None, p90=None, breaches=1),
    ]
    assert week.total == ops.WeekRow(None, accepted=4, p50=20 * M, p90=5 * H, breaches=4)
    assert week.stars == (0, 1, 0, 1, 1)
    assert (week.ratings, round(week.rating or 0, 3)) == (3, 3.667)
    assert week.limits == {URGENT: 30 * M, ROUTINE: 4 * H}


async def test_an_empty_week(db: Database) -> None:
    async with db.uow() as uow:
        week = await ops.week(uow, NOW, "Asia/Shanghai")
    assert (week.case_count, week.rows, week.total.accepted, week.rating) == (0, [], 0, None)
    png = ops_chart.render(week, Translator("en"))
    with Image.open(io.BytesIO(png)) as img:
        assert img.size == (ops_chart.WIDTH_PX, ops_chart.HEIGHT_PX)


def _panel(fig: Any, gid: str) -> Any:
    [ax] = [a for a in fig.axes if a.get_gid() == gid]
    return ax


def _bars(ax: Any, attr: str = "get_height") -> list[list[float]]:
    return [
        [getattr(patch, attr)() for patch in c]
        for c in ax.containers
        if isinstance(c, BarContainer)
    ]


async def test_the_chart_draws_the_weeks_figures(db: Database) -> None:
    week = await _week(db)
    tr = Translator("en")
    fig = ops_chart.figure(week, tr)
    cases = _panel(fig, "cases")
    assert _bars(cases) == [list(week.cases[URGENT]), list(week.cases[ROUTINE])]
    assert [c.get_label() for c in cases.containers] == ["24-hour cases", "Routine cases"]
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert [t.get_text() for t in cases.get_xticklabels()] == [
        f"{name}\n11-{d:02d}" for name, d in zip(days, range(2, 9), strict=True)
    ]
    assert cases.get_title(loc="left") == "Cases per day"
    assert (cases.get_xlabel(), cases.get_ylabel()) == ("Day (clinic time)", "Cases")
    assert _bars(_panel(fig, "breaches")) == [
        list(week.breaches[URGENT]),
        list(week.breaches[ROUTINE]),
    ]
    waits = _panel(fig, "waits")  # departments with acceptances, in minutes, GP on top
    assert _bars(waits, "get_width") == [[20.0, 45.0], [300.0, 45.0]]
    assert [t.get_text() for t in waits.get_yticklabels()] == ["GP (3)", "Cardiology (1)"]
    assert waits.get_xlabel() == "Minutes from the queue to a doctor"
    limits = [ln.get_label() for ln in waits.get_lines()]
    assert limits == ["24-hour cases: limit 30m", "Routine cases: limit 4h00m"]
    ratings = _panel(fig, "ratings")
    assert _bars(ratings) == [[0, 1, 0, 1, 1]]
    assert ratings.get_title(loc="left") == "Ratings of cases closed this week · average 3.7"
    assert fig.get_suptitle() == "Careline · the week 2026-11-02 – 2026-11-08"


@pytest.mark.parametrize("locale", LOCALES)
async def test_the_png_has_every_glyph_in_every_language(db: Database, locale: str) -> None:
    week = await _week(db)
    tr = Translator(locale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a glyph missing from the fonts would warn
        png = ops_chart.render(week, tr)
    with Image.open(io.BytesIO(png)) as img:
        img.load()
        assert (img.format, img.size) == ("PNG", (ops_chart.WIDTH_PX, ops_chart.HEIGHT_PX))
    words = ops_chart.chart_translator(tr)
    if locale == "zh_Hans":  # the CJK font this machine has: the chart speaks Chinese
        assert words.locale == "zh_Hans"
    fig = ops_chart.figure(week, words)
    assert _panel(fig, "cases").get_title(loc="left") == words.plain("ops.week.chart.cases")


@pytest.mark.parametrize("locale", LOCALES)
async def test_the_caption_has_the_key_figures(db: Database, locale: str) -> None:
    week = await _week(db)
    tr = Translator(locale)
    caption = week_caption(tr, week, rich=False)
    assert caption == tr.plain(
        "ops.week.caption", start="2026-11-02", end="2026-11-08", cases=7, urgent=2,
        routine=5, accepted=4, p50=ops_chart.duration(tr, 20 * M),
        p90=ops_chart.duration(tr, 5 * H), breaches=4,
        rating=tr.plain("ops.week.rating", average="3.7", count=3),
    )  # fmt: skip
    assert len(week_caption(tr, week)) <= 1024  # Telegram's caption limit
