"""The operator's view: can every department's cases reach a doctor, and how long do they wait?

Per department of the intake questionnaire (then any other department a doctor or a case still
names) and for the whole clinic: verified doctors, doctors on duty now, cases waiting, the
oldest wait, the time to acceptance (p50 and p90) over the last 24 hours, the breaches of the
waiting limit (``flows.routing``) in that window, and stranded cases: waiting in a department
where no verified doctor works, which routing should never leave.

A breach is a case of the window that waited longer than its disposition's limit before a
doctor took it, a case waiting longer than that now, or one that expired in the window (nobody
took it before the expiry). Waits run from ``requested_at``, when the case entered the queue
(a transfer or a requeue starts it again; a fallback does not). No aiogram; the admins' ``/ops``
and ``python bot.py ops`` render it.

Alerts to admins and the weekly summary run as scheduled events (``handlers/doctor/
ops_alerts.py`` sends them): ``ops.breach`` when a case's wait passes its limit (one per queue
entry, planned by :func:`case_queued`, the hook of ``flows.consultation``); ``ops.staffing``,
a check every 15 minutes while any case waits, for departments with waiting cases and nobody
on duty (one alert per episode); ``ops.weekly``, Mondays 08:00 clinic time, the last seven
days (:func:`week`; the chart is ``flows/ops_chart.py``). Every event and marker has an
occurrence key, so restarts and repeated sweeps never alert twice.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from flows import consultation, routing
from flows.questionnaire import load as load_questionnaire
from storage.consultations import CaseTimes
from storage.models import Consultation, Doctor, ScheduledEvent
from storage.uow import UnitOfWork

WINDOW = timedelta(hours=24)  # acceptance times and breaches: the last day

# Scheduled event kinds (ids only; ``patient_id`` is the case's patient or empty).
BREACH = "ops.breach"  # subject: a case id; due once its wait passes its limit
STAFFING = "ops.staffing"  # subject: the slot of the check before; key: this check's slot
UNSTAFFED = "ops.unstaffed"  # a marker, never run: "department D had nobody at slot S"
WEEKLY = "ops.weekly"  # subject "clinic"; key: the Monday (clinic date)
CHECK_EVERY = timedelta(minutes=15)
WEEKLY_DAY, WEEKLY_AT = 0, time(8, 0)  # Monday 08:00 clinic time
WEEK_DAYS = 7


@dataclass(frozen=True)
class Row:
    """One department's figures (``department`` None: the whole clinic)."""

    department: str | None
    doctors: int  # verified now
    on_duty: int  # verified, on duty, within working hours and reachable now
    waiting: int
    oldest: timedelta | None  # the longest current wait (None: nobody waits)
    accepted: int  # cases accepted in the window: the sample of p50 and p90
    p50: timedelta | None
    p90: timedelta | None
    breaches: int
    stranded: int

    @property
    def idle(self) -> bool:
        """No doctor, nothing waiting, nothing accepted or breached in the window."""
        return not (self.doctors or self.waiting or self.accepted or self.breaches)


@dataclass(frozen=True)
class Overview:
    """The figures at ``at``: a row per department and the clinic's total."""

    at: datetime
    rows: list[Row]
    total: Row
    limits: dict[str, timedelta] = field(default_factory=dict)  # per disposition

    @property
    def stranded(self) -> list[str]:
        """Departments with stranded cases (should be none)."""
        return [r.department for r in self.rows if r.stranded and r.department]


def percentile(values: Sequence[timedelta], p: float) -> timedelta | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _breached(case: CaseTimes, now: datetime, rules: routing.Routing) -> bool:
    waited = (case.ended or now) - case.requested_at
    return waited > rules.limit(consultation.disposition_at(case.priority))


def _row(
    department: str | None,
    doctors: int,
    on_duty: int,
    waiting: Iterable[CaseTimes],
    accepted: Iterable[CaseTimes],
    expired: Iterable[CaseTimes],
    *,
    staffed: bool,
    now: datetime,
    rules: routing.Routing,
) -> Row:
    waiting, accepted, expired = list(waiting), list(accepted), list(expired)
    waits = [c.ended - c.requested_at for c in accepted if c.ended is not None]
    breaches = sum(_breached(c, now, rules) for c in (*waiting, *accepted, *expired))
    return Row(
        department=department,
        doctors=doctors,
        on_duty=on_duty,
        waiting=len(waiting),
        oldest=max((now - c.requested_at for c in waiting), default=None),
        accepted=len(waits),
        p50=percentile(waits, 50),
        p90=percentile(waits, 90),
        breaches=breaches,
        stranded=0 if staffed else len(waiting),
    )


async def overview(
    uow: UnitOfWork,
    now: datetime,
    clinic_tz: str,
    departments: Sequence[str] | None = None,
) -> Overview:
    """The operator's figures at ``now`` (UTC); ``departments`` default to the intake's."""
    rules = routing.current()
    depts = list(departments if departments is not None else load_questionnaire().departments)
    verified: dict[str, set[str]] = {}
    on_duty: dict[str, set[str]] = {}
    for doctor in await uow.doctors.with_status("verified", role="doctor"):
        if not consultation.is_verified(doctor, now):
            continue
        available = consultation.available(doctor, now, clinic_tz) and not doctor.unreachable
        for dept in consultation.departments_of(doctor):
            verified.setdefault(dept, set()).add(doctor.id)
            if available:
                on_duty.setdefault(dept, set()).add(doctor.id)
    waiting = await uow.consultations.waiting_times()
    accepted = await uow.consultations.accepted_times(now - WINDOW, now)
    expired = await uow.consultations.expired_times(now - WINDOW, now)
    seen = {c.department for c in (*waiting, *accepted, *expired)} | set(verified)
    depts += sorted(seen - set(depts))

    def of(dept: str, cases: list[CaseTimes]) -> list[CaseTimes]:
        return [c for c in cases if c.department == dept]

    rows = [
        _row(
            dept,
            len(verified.get(dept, ())),
            len(on_duty.get(dept, ())),
            of(dept, waiting),
            of(dept, accepted),
            of(dept, expired),
            staffed=dept in verified,
            now=now,
            rules=rules,
        )
        for dept in depts
    ]
    total = _row(
        None,
        len(set[str]().union(*verified.values())),
        len(set[str]().union(*on_duty.values())),
        waiting,
        accepted,
        expired,
        staffed=True,
        now=now,
        rules=rules,
    )
    total = replace(total, stranded=sum(r.stranded for r in rows))
    return Overview(now, rows, total, dict(rules.limits))


# -- alerts to admins --------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _stamp(moment: datetime) -> str:
    """A moment in an event key: minutes, UTC (``20261102T1915``)."""
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M}"


def _unstamp(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text or "", "%Y%m%dT%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def next_slot(moment: datetime) -> datetime:
    """The first quarter hour (UTC) strictly after ``moment``: staffing checks run on them."""
    base = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return base - timedelta(minutes=base.minute % 15) + CHECK_EVERY


def breach_key(case: Consultation) -> str:
    """The breach alert's occurrence key: one per case and queue entry (a transfer or a
    requeue starts a new entry; a fallback keeps it, as the waits of :func:`overview` do)."""
    return f"{BREACH}:{case.id}:{_utc(case.requested_at):%Y%m%dT%H%M%S%f}"


def _breach_due(case: Consultation) -> datetime:
    limit = routing.current().limit(consultation.disposition_of(case))
    return _utc(case.requested_at) + limit + timedelta(seconds=1)  # over the limit, not at it


async def _plan_check(uow: UnitOfWork, now: datetime) -> None:
    """A staffing check now, unless one is already planned for the coming quarter hour (its
    key): the check before it is the previous quarter's, if that one ran."""
    slot = next_slot(now)
    key = f"{STAFFING}:{_stamp(slot)}"
    await uow.events.add(STAFFING, _stamp(slot - CHECK_EVERY), "", now, key=key)


async def case_queued(uow: UnitOfWork, case: Consultation, now: datetime) -> None:
    """The hook of ``flows.consultation``: a case entered a queue (or fell back down its
    chain). Its breach alert is planned for when its wait passes its limit, and the staffing
    check runs (now, or at the quarter hour it already has)."""
    await uow.events.add(BREACH, case.id, case.patient_id, _breach_due(case), key=breach_key(case))
    await _plan_check(uow, now)


@dataclass(frozen=True)
class Admin:
    """An admin of ``CARELINE_ADMIN_IDS`` and their doctor-bot account, if they have one."""

    tg_user_id: int
    doctor: Doctor | None  # their row in the doctor bot (language; a doctor of departments?)

    def locale(self, default: str) -> str:
        """Their language in the doctor bot; the clinic's (``default``) for an admin who is
        not a doctor or applicant, for whom the bot keeps no language."""
        return self.doctor.locale if self.doctor is not None else default

    def can_accept(self, case: Consultation, now: datetime) -> bool:
        """Also a verified doctor of the case's department: the alert carries Accept."""
        d = self.doctor
        return (
            d is not None
            and consultation.is_verified(d, now)
            and case.department in consultation.departments_of(d)
        )


async def admins(uow: UnitOfWork, admin_ids: Sequence[int]) -> list[Admin]:
    """The admins to alert: each once, except those who blocked the doctor bot."""
    out = []
    for tg_user_id in dict.fromkeys(admin_ids):
        doctor = await uow.doctors.by_tg_user(tg_user_id)
        if doctor is not None and doctor.unreachable:
            continue
        out.append(Admin(tg_user_id, doctor))
    return out


@dataclass(frozen=True)
class Breach:
    """A case that has waited longer than its limit and still waits."""

    case: Consultation
    waited: timedelta
    limit: timedelta
    on_duty: list[str]  # names of the doctors of its department on duty now


async def breach_due(
    uow: UnitOfWork, event: ScheduledEvent, now: datetime, clinic_tz: str
) -> Breach | None:
    """The ``ops.breach`` event: the case, if it still waits in the queue entry the event was
    planned for and its wait is over its limit (:func:`overview`'s breach). None when it was
    accepted, cancelled, transferred or requeued meanwhile. If the limit was raised since,
    the alert is planned again for the new limit."""
    case = await uow.consultations.get(event.subject)
    if case is None or case.state != consultation.State.WAITING.value:
        return None
    if not (event.key or "").startswith(breach_key(case)):
        return None  # a later queue entry: its own event covers it
    rules = routing.current()
    limit = rules.limit(consultation.disposition_of(case))
    requested = _utc(case.requested_at)
    if not _breached(CaseTimes(case.department, case.priority, requested, None), now, rules):
        key = f"{breach_key(case)}:{int(limit.total_seconds() // 60)}"
        await uow.events.add(BREACH, case.id, case.patient_id, _breach_due(case), key=key)
        return None
    names = [
        await uow.doctors.get_field(d, "name") or "—"
        for d in await consultation.doctors_for(uow, case.department, now, clinic_tz)
    ]
    return Breach(case, now - requested, limit, names)


@dataclass(frozen=True)
class Unstaffed:
    """A department with waiting cases and nobody on duty."""

    department: str
    waiting: int
    oldest: timedelta
    doctors: int  # verified doctors of the department (0: nobody could ever take them)
    next_start: datetime | None  # when the next one's working hours start (UTC), if known


async def staffing_due(
    uow: UnitOfWork, event: ScheduledEvent, now: datetime, clinic_tz: str
) -> list[Unstaffed]:
    """The ``ops.staffing`` check: departments with waiting cases and nobody on duty that
    were not so at the check before (a new episode: alert). Each such department gets a
    marker for this check, so the next one knows the episode goes on; a department staffed or
    emptied in between has no marker, and a recurrence is a new episode. While any case waits,
    the next check is planned a quarter hour on."""
    slot = _unstamp((event.key or "").removeprefix(f"{STAFFING}:")) or next_slot(now)
    previous = event.subject
    waiting = await uow.consultations.waiting_times()
    if not waiting:
        return []  # nothing waits: no more checks until a case enters a queue
    verified = [
        d
        for d in await uow.doctors.with_status("verified", role="doctor")
        if consultation.is_verified(d, now)
    ]
    on_duty = {
        dept
        for d in verified
        if consultation.available(d, now, clinic_tz) and not d.unreachable
        for dept in consultation.departments_of(d)
    }
    by_dept: dict[str, list[CaseTimes]] = {}
    for c in waiting:
        by_dept.setdefault(c.department, []).append(c)
    out = []
    for dept, cases in sorted(by_dept.items()):
        if dept in on_duty:
            continue
        marker = await uow.events.add(
            UNSTAFFED, dept, "", now, key=f"{UNSTAFFED}:{dept}:{_stamp(slot)}"
        )
        if marker is None:
            continue  # this check has run before: its alert went then
        marker.status, marker.done_at = "done", now  # a marker only: nothing to run
        if await uow.events.by_key(f"{UNSTAFFED}:{dept}:{previous}") is not None:
            continue  # the same episode as at the check before
        team = [
            d for d in verified if dept in consultation.departments_of(d) and not d.unreachable
        ]
        starts = [
            t for d in team if d.on_duty and (t := consultation.next_shift(d, now, clinic_tz))
        ]
        out.append(
            Unstaffed(
                dept,
                len(cases),
                max(now - c.requested_at for c in cases),
                len(team),
                min(starts) if starts else None,
            )
        )
    nxt = max(slot + CHECK_EVERY, next_slot(now))
    await uow.events.add(STAFFING, _stamp(slot), "", nxt, key=f"{STAFFING}:{_stamp(nxt)}")
    return out


# -- the weekly summary ------------------------------------------------------------------------


def next_weekly(now: datetime, clinic_tz: str) -> datetime:
    """The first Monday 08:00 clinic time strictly after ``now`` (UTC)."""
    zone = _zone(clinic_tz)
    local = now.astimezone(zone)
    day = local.date() + timedelta(days=(WEEKLY_DAY - local.weekday()) % 7)
    while (at := datetime.combine(day, WEEKLY_AT, tzinfo=zone)) <= now:
        day += timedelta(days=7)
    return at.astimezone(UTC)


async def plan_weekly(uow: UnitOfWork, now: datetime, clinic_tz: str) -> None:
    """The next weekly summary, unless it is planned already (keyed by its Monday)."""
    due = next_weekly(now, clinic_tz)
    monday = due.astimezone(_zone(clinic_tz)).date()
    await uow.events.add(WEEKLY, "clinic", "", due, key=f"{WEEKLY}:{monday.isoformat()}")


@dataclass(frozen=True)
class WeekRow:
    """One department's week (``department`` None: the whole clinic)."""

    department: str | None
    accepted: int  # cases accepted in the week: the sample of p50 and p90
    p50: timedelta | None
    p90: timedelta | None
    breaches: int


@dataclass(frozen=True)
class Week:
    """The seven whole clinic days before ``at``'s day: what the weekly chart shows."""

    at: datetime
    start: datetime  # UTC: the first day's midnight, clinic time
    end: datetime  # UTC: the midnight after the last day
    days: tuple[date, ...]
    cases: dict[str, tuple[int, ...]]  # disposition -> cases that entered a queue, per day
    breaches: dict[str, tuple[int, ...]]  # disposition -> waits over the limit, per day
    rows: list[WeekRow]  # departments with an acceptance or a breach
    total: WeekRow
    stars: tuple[int, ...]  # ratings of cases closed in the week: how many gave 1..5 stars
    limits: dict[str, timedelta] = field(default_factory=dict)

    @property
    def case_count(self) -> int:
        """Cases that entered a queue in the week."""
        return sum(sum(per_day) for per_day in self.cases.values())

    @property
    def ratings(self) -> int:
        """How many ratings."""
        return sum(self.stars)

    @property
    def rating(self) -> float | None:
        """The average rating (None without ratings)."""
        if not self.ratings:
            return None
        return sum(n * (i + 1) for i, n in enumerate(self.stars)) / self.ratings


async def week(
    uow: UnitOfWork,
    now: datetime,
    clinic_tz: str,
    departments: Sequence[str] | None = None,
) -> Week:
    """The last seven whole days (clinic time) before ``now``'s day: cases per day by
    disposition (by when they entered a queue), time to acceptance per department (p50, p90),
    waits over the limit (:func:`overview`'s breaches, counted on the day the wait ended, or
    for a case still waiting, the day it went over), and the ratings of cases closed."""
    rules = routing.current()
    zone = _zone(clinic_tz)
    today = now.astimezone(zone).date()
    days = tuple(today - timedelta(days=WEEK_DAYS - i) for i in range(WEEK_DAYS))
    start = datetime.combine(days[0], time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(today, time(0), tzinfo=zone).astimezone(UTC)

    def day_of(moment: datetime) -> int | None:
        index = (moment.astimezone(zone).date() - days[0]).days
        return index if 0 <= index < WEEK_DAYS else None

    def per_day(moments: Iterable[tuple[str, datetime]]) -> dict[str, tuple[int, ...]]:
        counts = {d: [0] * WEEK_DAYS for d in routing.DISPOSITIONS}
        for disposition, moment in moments:
            index = day_of(moment)
            if index is not None:
                counts.setdefault(disposition, [0] * WEEK_DAYS)[index] += 1
        return {d: tuple(n) for d, n in counts.items()}

    def ended_before_end(rows: list[CaseTimes]) -> list[CaseTimes]:
        return [c for c in rows if c.ended is not None and c.ended < end]

    accepted = ended_before_end(await uow.consultations.accepted_times(start, end))
    expired = ended_before_end(await uow.consultations.expired_times(start, end))
    waiting = [c for c in await uow.consultations.waiting_times() if c.requested_at < end]

    def went_over(c: CaseTimes) -> datetime:
        """The day a breach counts on: the wait's end, or when a waiting case went over."""
        limit = rules.limit(consultation.disposition_at(c.priority))
        return c.ended or max(c.requested_at + limit, start)

    breached = [
        (c, went_over(c)) for c in (*accepted, *expired, *waiting) if _breached(c, end, rules)
    ]
    cases = await uow.consultations.queued_or_closed(start, end)

    def week_row(dept: str | None) -> WeekRow:
        waits = [
            c.ended - c.requested_at for c in accepted if dept in (None, c.department) and c.ended
        ]
        return WeekRow(
            dept,
            len(waits),
            percentile(waits, 50),
            percentile(waits, 90),
            sum(1 for c, _ in breached if dept in (None, c.department)),
        )

    depts = list(departments if departments is not None else load_questionnaire().departments)
    seen = {c.department for c in accepted} | {c.department for c, _ in breached}
    depts = [d for d in depts if d in seen] + sorted(seen - set(depts))
    stars = [0] * 5
    for _, _, closed, rating in cases:
        if (
            closed is not None
            and start <= closed < end
            and rating is not None
            and 1 <= rating <= 5
        ):
            stars[rating - 1] += 1
    return Week(
        at=now,
        start=start,
        end=end,
        days=days,
        cases=per_day(
            (consultation.disposition_at(prio), req)
            for prio, req, _, _ in cases
            if start <= req < end
        ),
        breaches=per_day((consultation.disposition_at(c.priority), when) for c, when in breached),
        rows=[week_row(d) for d in depts],
        total=week_row(None),
        stars=tuple(stars),
        limits=dict(rules.limits),
    )


async def weekly_due(uow: UnitOfWork, now: datetime, clinic_tz: str) -> Week:
    """The week's figures, with the next Monday's summary planned (the ``ops.weekly`` event
    and ``/ops week``: from an admin's first look on, the summary comes every Monday)."""
    await plan_weekly(uow, now, clinic_tz)
    return await week(uow, now, clinic_tz)
