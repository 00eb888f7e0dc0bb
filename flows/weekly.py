"""The weekly summary: once a week, at a local time of the patient's (charts.toml
``[weekly]``: Sundays 18:00 in the patient's time zone), the patient gets the chart of the
last 7 days with one sentence of trend per measure in their language, and so do the
caregivers whose scope covers check-ins (readings): with ``details``, the same chart and
sentences with the averages; without, the sentences without values and no chart. A patient
with no reading in the week gets nothing.

Scheduling follows the rest of ``scheduled_events``:

- ``charts.weekly.plan`` (subject ``clinic``, key ``charts.weekly.plan:<UTC hour>``): every
  hour, each patient with a reading in the last 7 days and no pending summary gets one
  planned, then the next hour's planner. The first is planned at start-up
  (:func:`ensure_planner`); keys make every planner run once, whoever planned it.
- ``charts.weekly`` (subject the patient id, key ``charts.weekly:<patient>:<local date>``):
  the summary of the 7 days before its due time (so a summary that runs late still sums up
  the same week), compared with the 7 days before those. It plans the next week's summary
  when the week had readings. One running more than ``late_hours`` late (downtime) sends
  nothing: a stale summary helps nobody.

The messages are outbox rows written in the sweeper's transaction with the event's ``done``
mark, so a crash repeats the whole event or none of it (never half a summary or two), and the
key stops a second summary for the same week after a restart.

The trend sentence (:func:`trend`) is a pure function of the two weeks' values and the
``[trends.<kind>]`` rules of charts.toml.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flows import caregivers, charts, followup
from flows.onboarding import Step, step_of
from flows.outbox import PRIORITY_ROUTINE, Replier
from locales import Html, Translator
from storage.models import Patient
from storage.models import ScheduledEvent as Event
from storage.uow import UnitOfWork

KIND = "charts.weekly"
PLAN = "charts.weekly.plan"
WEEK = timedelta(days=7)
PLAN_EVERY = timedelta(hours=1)
PLAN_BATCH, PLAN_BATCHES = 500, 40  # up to 20,000 patients planned an hour
CAPTION_MAX = 1024  # Telegram's caption limit (characters)
DECIMALS = {"glucose": 1, "weight": 1, "temperature": 1, "pain": 1}
WORDS = ("lower", "higher", "stable", "mixed", "first", "few")


@dataclass(frozen=True)
class Trend:
    """One measure's week: ``word`` is one of :data:`WORDS`; averages are per component
    (systolic, diastolic for blood pressure); ``last`` is None without enough readings."""

    kind: str
    word: str
    this: tuple[float, ...]
    last: tuple[float, ...] | None
    n: int


def _mean(values: Sequence[tuple[float, ...]]) -> tuple[float, ...]:
    width = min(len(v) for v in values)
    return tuple(sum(v[i] for v in values) / len(values) for i in range(width))


def trend(
    kind: str,
    this_week: Sequence[tuple[float, ...]],
    last_week: Sequence[tuple[float, ...]],
    rule: charts.TrendRule,
) -> Trend | None:
    """The trend of one measure; None when it has no reading this week. Fewer than
    ``min_readings`` this week: ``few``; the week before too: ``first``; else the averages'
    change against ``change`` (systolic) and ``change_diastolic``: every component that moved
    at least that much moved the same way -> ``lower`` / ``higher``, in opposite ways ->
    ``mixed``, none -> ``stable``."""
    if not this_week:
        return None
    n = len(this_week)
    if n < rule.min_readings:
        return Trend(kind, "few", _mean(this_week), None, n)
    this = _mean(this_week)
    if len(last_week) < rule.min_readings:
        return Trend(kind, "first", this, None, n)
    last = _mean(last_week)
    limits = (rule.change, rule.change_diastolic or rule.change)
    moved = {
        (1 if a > b else -1)
        for a, b, limit in zip(this, last, limits, strict=False)
        if abs(a - b) >= limit - 1e-9
    }
    word = "stable" if not moved else "mixed" if len(moved) > 1 else (
        "higher" if moved == {1} else "lower"
    )  # fmt: skip
    return Trend(kind, word, this, last, n)


def trends(
    this_week: Sequence[followup.ReadingView],
    last_week: Sequence[followup.ReadingView],
    rules: charts.Rules | None = None,
) -> list[Trend]:
    """One trend per measure read this week, in the charts' panel order (kinds without a
    rule in charts.toml are left out)."""
    r = rules or charts.rules()
    now_pts, before_pts = charts.points_of(this_week), charts.points_of(last_week)
    out = []
    for kind in charts.kinds_of(now_pts):
        rule = r.trends.get(kind)
        if rule is None:
            continue
        found = trend(kind, [p.values for p in now_pts[kind]],
                      [p.values for p in before_pts.get(kind, [])], rule)  # fmt: skip
        if found is not None:
            out.append(found)
    return out


def shown(kind: str, values: tuple[float, ...]) -> str:
    """An average as the readings show it: ``138/86 mmHg``, ``6.4 mmol/L``, ``72 bpm``."""
    decimals = DECIMALS.get(kind, 0)
    text = "/".join(f"{v:.{decimals}f}" for v in values)
    unit = followup.READING_UNITS.get(kind, "")
    return f"{text} {unit}".strip() if kind != "pain" else f"{text}{unit}"


def sentence(tr: Translator, t: Trend, *, values: bool = True) -> Html:
    """One sentence about one measure's week, in ``tr``'s language (``values``: with the
    averages; caregivers without ``details`` get it without)."""
    measure = tr.plain(f"followup.reading.{t.kind}")
    if not values:
        return tr(f"charts.trend_plain.{t.word}", measure=measure)
    return tr(
        f"charts.trend.{t.word}", measure=measure, this=shown(t.kind, t.this),
        last=shown(t.kind, t.last) if t.last is not None else "", n=t.n,
    )  # fmt: skip


# --- scheduling ---------------------------------------------------------------------------------


def next_send(tz_name: str | None, now: datetime, rules: charts.Rules | None = None) -> datetime:
    """The first weekly send time (charts.toml ``[weekly]``, in the zone) after ``now``, UTC.
    Wall-clock: a DST change keeps 18:00 at 18:00."""
    r = rules or charts.rules()
    tz = charts.zone(tz_name)
    local = now.astimezone(tz)
    day = local.date() + timedelta(days=(r.weekday - local.weekday()) % 7)
    while (at := datetime.combine(day, r.at, tzinfo=tz)) <= now:
        day += WEEK
    return at.astimezone(UTC)


def key_of(patient_id: str, local_day: date) -> str:
    """The occurrence key of one patient's summary of one week (its local send date)."""
    return f"{KIND}:{patient_id}:{local_day.isoformat()}"


async def plan_patient(uow: UnitOfWork, patient: Patient, now: datetime) -> datetime:
    """Plan the patient's next summary (nothing when that week's is planned already)."""
    due = next_send(patient.timezone, now)
    local_day = due.astimezone(charts.zone(patient.timezone)).date()
    await uow.events.add(KIND, patient.id, patient.id, due, key=key_of(patient.id, local_day))
    return due


def _hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def ensure_planner(uow: UnitOfWork, now: datetime, *, once: bool = False) -> None:
    """The planner of this hour, unless it ran or is planned. ``once``: asked by many
    transactions (every device upload), so asked of the database once an hour per process
    (an insert per upload cost about a fifth of the upload rate)."""
    hour = _hour(now)
    key = f"{PLAN}:{hour:%Y-%m-%dT%H}"
    if once:
        await uow.events.add_known(PLAN, "clinic", "", now, key=key)
    else:
        await uow.events.add(PLAN, "clinic", "", now, key=key)


async def plan_event(uow: UnitOfWork, event: Event, now: datetime) -> None:
    """``charts.weekly.plan``: a summary for every patient who read something this week and
    has none planned; then the next hour's planner."""
    for _ in range(PLAN_BATCHES):  # each batch is planned, so the next query skips it
        found = await uow.care.patients_with_readings(now - WEEK, KIND, PLAN_BATCH)
        for patient_id in found:
            patient = await uow.patients.get(patient_id)
            if patient is not None:
                await plan_patient(uow, patient, now)
        if len(found) < PLAN_BATCH:
            break
    nxt = _hour(now) + PLAN_EVERY
    await uow.events.add(PLAN, "clinic", "", nxt, key=f"{PLAN}:{nxt:%Y-%m-%dT%H}")


# --- the summary ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """One patient's week: what the messages say and the chart is drawn from."""

    patient: Patient
    end: datetime  # the summary's due time: the week is the 7 days before it
    trends: list[Trend]
    data: charts.ChartData


async def summary_due(uow: UnitOfWork, event: Event, now: datetime) -> Summary | None:
    """The summary of a ``charts.weekly`` event, with the next week's planned; None when
    there is nothing to send (no patient, no readings, or too late)."""
    patient = await uow.patients.get(event.subject)
    if patient is None or step_of(patient) is not Step.DONE:
        return None
    end = followup.aware(event.due_at)
    readings = await followup.recent_readings(uow, patient.id, end, 14)
    this_week = [r for r in readings if end - WEEK <= r.taken_at < end]
    if not this_week:
        return None  # the planner plans again once readings come
    await plan_patient(uow, patient, max(now, end))
    if now - end > charts.rules().late:
        await uow.audit.record("system", "charts.weekly.skipped", "patient", patient.id,
                               {"reason": "late"})  # fmt: skip
        return None
    last_week = [r for r in readings if end - 2 * WEEK <= r.taken_at < end - WEEK]
    tz = charts.zone(patient.timezone)
    data = charts.ChartData(
        this_week,
        await charts.adherence_of(uow, patient.id, end, 7, tz),
        charts.targets_for(await charts.plan_templates(uow, patient.id)),
        await charts.plan_changes(uow, patient.id, end, 7),
    )
    return Summary(patient, end, trends(this_week, last_week), data)


def period(s: Summary, tr: Translator) -> tuple[str, str]:
    """The week's first and last local days, as ``tr``'s language writes a short date."""
    from babel.dates import format_skeleton

    tz = charts.zone(s.patient.timezone)
    last = (s.end - timedelta(seconds=1)).astimezone(tz).date()
    locale = {"zh_Hans": "zh_Hans_CN"}.get(tr.locale, tr.locale)
    first = last - timedelta(days=6)
    return format_skeleton("MMMd", first, locale=locale), format_skeleton(
        "MMMd", last, locale=locale
    )


def caption(tr: Translator, s: Summary, heading: Html, *, values: bool = True) -> str:
    """The heading and one sentence per measure (the pointer to /readings when it fits)."""
    lines = [str(heading), *(str(sentence(tr, t, values=values)) for t in s.trends)]
    more = str(tr("charts.weekly.more"))
    text = "\n".join(lines)
    return f"{text}\n\n{more}" if len(text) + len(more) + 2 <= CAPTION_MAX else text


async def send_summary(uow: UnitOfWork, s: Summary) -> int:
    """Queue the summary to the patient and the caregivers in scope; how many got it."""
    pngs: dict[str, bytes] = {}
    tz = charts.zone(s.patient.timezone)

    def png(tr: Translator) -> bytes:
        if tr.locale not in pngs:
            d = s.data
            pngs[tr.locale] = charts.render(
                d.readings, d.adherence, s.end, 7, tr=tr, targets=d.targets,
                changes=d.changes, tz=tz,
            )  # fmt: skip
        return pngs[tr.locale]

    sent = 0
    if not s.patient.unreachable:
        tr = Translator(s.patient.locale)
        start, end = period(s, tr)
        text = caption(tr, s, tr("charts.weekly.patient", start=start, end=end))
        await charts.send(uow, "patient", s.patient.tg_user_id, png(tr), text,
                          priority=PRIORITY_ROUTINE)  # fmt: skip
        sent += 1
    name = await caregivers.patient_label(uow, s.patient)
    for cg in await caregivers.for_alert(uow, s.patient.id, "checkins"):
        if cg.tg_user_id is None:
            continue
        ctr = Translator(await caregivers.locale_of(uow, cg))
        start, end = period(s, ctr)
        heading = ctr("charts.weekly.caregiver", name=name, start=start, end=end)
        if cg.details:
            await charts.send(uow, "patient", cg.tg_user_id, png(ctr), caption(ctr, s, heading),
                              priority=PRIORITY_ROUTINE)  # fmt: skip
        else:
            await Replier(uow, "patient", cg.tg_user_id).text(
                Html("\n".join([str(heading), *(str(sentence(ctr, t, values=False))
                                                for t in s.trends)])),
                protect=True, priority=PRIORITY_ROUTINE,
            )  # fmt: skip
        sent += 1
    await uow.audit.record("system", "charts.weekly", "patient", s.patient.id,
                           {"recipients": sent, "measures": len(s.trends)})  # fmt: skip
    return sent


async def weekly_event(uow: UnitOfWork, event: Event, now: datetime) -> None:
    """``charts.weekly``: one patient's summary (or nothing, see :func:`summary_due`)."""
    s = await summary_due(uow, event, now)
    if s is not None:
        await send_summary(uow, s)


def scheduled() -> dict[str, object]:
    """Scheduler handlers of the weekly summary, by event kind."""
    return {KIND: weekly_event, PLAN: plan_event}
