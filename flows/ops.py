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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from flows import consultation, routing
from flows.questionnaire import load as load_questionnaire
from storage.consultations import CaseTimes
from storage.uow import UnitOfWork

WINDOW = timedelta(hours=24)  # acceptance times and breaches: the last day


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
    for doctor in await uow.doctors.with_status("verified"):
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
