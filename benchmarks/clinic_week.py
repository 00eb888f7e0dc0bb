"""A week of a small clinic on a simulated clock: is any patient left waiting?

Usage::

    python -m benchmarks.clinic_week                  # 500 cases, 3 doctors, 7 days
    python -m benchmarks.clinic_week --cases 2000 --seed 3 --chart week.png

Careline's own code runs the week: cases are opened by ``flows.consultation.request_for_intake``
(routing, fallbacks at submit), the scheduler's events (the opened message with its wait
estimate, fallbacks down the chain, place updates, expiry, the admins' alerts) run through the
real sweeper at simulated time, and doctors accept from the same queue ``/queue`` shows
(``flows.consultation.queue_for`` + ``accept``). Careline's one clock (storage/clock.py) is
taken over as the sandbox does, so everything that asks for "now" sees the simulated minute.
Messages are written to the outbox (nothing is sent: no Bot API is involved).

The clinic (fictional): three doctors in shifts that cover the day and night with one doctor
at a time most of the day (``DOCTORS``): a GP with cardiology 07-15, a GP with neurology,
dermatology and paediatrics 14-22, a GP on nights 22-07. The other departments of the intake
have no doctor: their cases go down the fallback chain (routing.toml) at submit time.
Cases arrive as a Poisson process, twice as often from 08:00 to 20:00 as at night, each with a
complaint category drawn uniformly from the intake's categories (its department) and a
disposition (30% 24-hour, 70% routine). The doctor model: a doctor on shift with fewer than
``CAPACITY`` open cases notices a waiting case after a reaction time drawn uniformly from 1 to
8 minutes (the Accept notice), takes the most urgent one first, at most one a minute, and
closes it 15 to 40 minutes later.

Printed: per disposition, cases, accepted, redirected at submit (routed away from the triage's
department) or later (fell back), expired, still waiting, stranded (waiting in a department
with no verified doctor), and the time to acceptance (p50, p90) against its limit; then how
often the estimate told at submit ("about N min", or the next shift's start) was within ±50%
of the actual wait. ``--chart`` writes a PNG of the waits per disposition and estimate vs
actual.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

LIMIT_FACTOR = 0.5  # an estimate is "right" within ±50% of the actual wait
CAPACITY = 3  # open text consultations a doctor handles at once
START = datetime(2027, 1, 4, tzinfo=UTC)  # a Monday
DOCTORS = (
    ("Dr Ana Fictus", "general,cardiology", "07:00-15:00"),
    ("Dr Ben Placebo", "general,neurology,dermatology,pediatrics", "14:00-22:00"),
    ("Dr Cai Nocturne", "general", "22:00-07:00"),
)
SHARE_24 = 0.3  # of cases triaged "see a doctor within 24 hours"


@dataclass
class Case:
    """One simulated case, as measured."""

    id: str
    number: int
    disposition: str
    preferred: str
    arrived: datetime
    department: str = ""
    estimate: timedelta | None = None  # told at submit (None: only the place was told)
    accepted: datetime | None = None
    fell_back: bool = False
    final: str = "waiting"


@dataclass
class Result:
    """What the week measured."""

    cases: list[Case] = field(default_factory=list)
    limits: dict[str, timedelta] = field(default_factory=dict)
    stranded: int = 0
    wall_s: float = 0.0
    events_run: int = 0


def arrivals(n: int, days: int, rng: random.Random) -> list[datetime]:
    """``n`` arrival times over ``days``, independent and uniform within the hour, the hour
    drawn twice as often from 08:00 to 20:00 as at night (a Poisson process conditioned on
    its count)."""
    hours = [(day, hour) for day in range(days) for hour in range(24)]
    weights = [2.0 if 8 <= hour < 20 else 1.0 for _, hour in hours]
    out = []
    for day, hour in rng.choices(hours, weights, k=n):
        out.append(START + timedelta(days=day, hours=hour, seconds=rng.uniform(0, 3600)))
    out.sort()
    return out


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class SimClock:
    """The simulated minute, handed to storage.clock as the sandbox hands its clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def simulate(cases: int, seed: int, days: int = 7) -> Result:
    """Run the week; returns what it measured."""
    from pydantic import SecretStr

    from bot.app import Careline
    from bot.settings import Settings
    from flows import consultation as flow
    from flows import routing
    from flows.questionnaire import load as load_questionnaire
    from storage import clock
    from storage.crypto import KeyRing
    from storage.migrate import upgrade
    from storage.models import Doctor, Intake, Patient
    from storage.uow import Database

    rng = random.Random(seed)
    sim = SimClock(START - timedelta(minutes=1))
    restore = clock.use(sim)
    result = Result()
    with tempfile.TemporaryDirectory(prefix="careline-week-") as tmp:
        work = Path(tmp)
        ring, _ = KeyRing.load_or_create(work / "keys.json")
        url = f"sqlite+aiosqlite:///{work / 'careline.db'}"
        db = Database(url, ring)
        await upgrade(db.engine)
        settings = Settings(
            _env_file=None,  # pydantic-settings: ignore any .env in the working directory
            patient_bot_token=SecretStr("100001:SIMULATED-PATIENT-BOT-TOKEN-0000000000"),
            doctor_bot_token=SecretStr("100002:SIMULATED-DOCTOR-BOT-TOKEN-00000000000"),
            telegram_api_url="http://127.0.0.1:9",  # never called: nothing is sent
            data_dir=work,
            database_url=url,
            keys_file=work / "keys.json",
            redis_url=None,
            webhook_url=None,
            timezone="UTC",
            default_locale="en",
            log_level="WARNING",
        )
        app = await Careline.build(settings, db)
        sweeper = app.sweeper
        q = load_questionnaire()
        rules = routing.current()
        result.limits = {d: rules.limit(d) for d in routing.DISPOSITIONS}
        categories = sorted(q.categories)
        try:
            doctor_ids = []
            async with db.uow() as uow:
                for i, (name, depts, hours) in enumerate(DOCTORS):
                    doc = await uow.doctors.add(
                        Doctor(
                            tg_user_id=900_000 + i, locale="en", status="verified",
                            verified_until=START + timedelta(days=365), departments=depts,
                            work_hours=hours, timezone="UTC", on_duty=True,
                        )
                    )  # fmt: skip
                    await uow.doctors.set_field(doc, "name", name)
                    doctor_ids.append(doc.id)
                await uow.commit()
            pending = arrivals(cases, days, rng)
            react: dict[tuple[str, str], timedelta] = {}
            closes: dict[str, tuple[datetime, str]] = {}  # case id -> (close at, doctor id)
            by_id: dict[str, Case] = {}
            end = START + timedelta(days=days)
            drain_until = end + timedelta(days=1)
            t0 = time.monotonic()
            minute = START
            while minute < drain_until:
                sim.now = minute
                async with db.uow() as uow:
                    while pending and pending[0] < minute + timedelta(minutes=1):
                        arrived = pending.pop(0)
                        made = await _open_case(
                            uow, q, rng, categories, arrived, len(by_id), flow,
                            Intake, Patient, settings,
                        )  # fmt: skip
                        by_id[made.id] = made
                        result.cases.append(made)
                    await uow.commit()
                while (n := await sweeper.sweep_once(minute)) > 0:
                    result.events_run += n
                async with db.uow() as uow:
                    for case_id, (at, doctor_id) in list(closes.items()):
                        if at <= minute:
                            doctor = await uow.doctors.get(doctor_id)
                            live = await uow.consultations.get(case_id)
                            assert doctor is not None and live is not None
                            if live.state == "active":
                                await flow.close(
                                    uow, doctor, live, "Advice given in the chat.",
                                    now=minute, jurisdiction="generic",
                                )  # fmt: skip
                            del closes[case_id]
                    for doctor_id in doctor_ids:
                        doctor = await uow.doctors.get(doctor_id)
                        assert doctor is not None
                        if not flow.available(doctor, minute, "UTC"):
                            continue
                        if sum(1 for _, d in closes.values() if d == doctor_id) >= CAPACITY:
                            continue
                        for live in await flow.queue_for(uow, doctor, minute):
                            key = (doctor_id, live.id)
                            if key not in react:
                                react[key] = timedelta(minutes=rng.uniform(1, 8))
                            queued = live.queued_at or live.requested_at
                            if queued.tzinfo is None:
                                queued = queued.replace(tzinfo=UTC)
                            if minute - queued < react[key]:
                                continue
                            taken = await flow.accept(
                                uow, doctor, live.id, now=minute, jurisdiction="generic"
                            )
                            sim_case = by_id[taken.id]
                            sim_case.accepted = minute
                            closes[taken.id] = (
                                minute + timedelta(minutes=rng.uniform(15, 40)),
                                doctor_id,
                            )
                            break
                    await uow.commit()
                waiting = not await _none_waiting(db)
                if minute >= end and not pending and not closes and not waiting:
                    break
                minute += timedelta(minutes=1)
                if not waiting:  # nothing for a doctor to take: on to the next thing to happen
                    minute = max(minute, await _next_moment(db, pending, closes, drain_until))
            result.wall_s = time.monotonic() - t0
            await _finish(db, result, by_id)
        finally:
            restore()
            await db.dispose()
    return result


async def _open_case(
    uow: Any,
    q: Any,
    rng: random.Random,
    categories: list[str],
    arrived: datetime,
    n: int,
    flow: Any,
    intake_cls: Any,
    patient_cls: Any,
    settings: Any,
) -> Case:
    category = q.categories[rng.choice(categories)]
    disposition = "consultation_24" if rng.random() < SHARE_24 else "consultation"
    patient = await uow.patients.add(
        patient_cls(tg_user_id=1_000_000 + n, locale="en", onboarding_state="done")
    )
    await uow.patients.set_field(patient, "name", f"Patient{n} Fictive")
    intake = await uow.intakes.add(
        intake_cls(
            patient_id=patient.id, state="done", questionnaire_version=q.version,
            disposition=disposition, department=category.department,
        ),
        {},
    )  # fmt: skip
    case = await flow.request_for_intake(
        uow, patient, intake, {}, now=arrived, expiry_hours=settings.case_expiry_hours,
        clinic_tz="UTC",
    )  # fmt: skip
    assert case is not None
    await uow.session.flush()
    wait = await flow.wait_of(uow, case, arrived, "UTC")
    estimate = wait.estimate if wait.on_duty else None
    if not wait.on_duty and wait.next_start is not None:
        estimate = wait.next_start - arrived
    return Case(
        case.id, case.number, disposition, category.department, arrived,
        department=case.department, estimate=estimate,
    )  # fmt: skip


async def _next_moment(
    db: Any, pending: list[datetime], closes: dict[str, tuple[datetime, str]], cap: datetime
) -> datetime:
    """The next minute anything happens: an arrival, a scheduled event, a close."""
    async with db.uow() as uow:
        due = await uow.events.next_due()
    if due is not None and due.tzinfo is None:  # SQLite hands back naive UTC
        due = due.replace(tzinfo=UTC)
    moments = [m for m in (pending[:1] + [at for at, _ in closes.values()]) if m is not None]
    if due is not None:
        moments.append(due)
    nxt = min(moments, default=cap)
    return nxt.replace(second=0, microsecond=0)


async def _none_waiting(db: Any) -> bool:
    async with db.uow() as uow:
        return not await uow.consultations.waiting_times()


async def _finish(db: Any, result: Result, by_id: dict[str, Case]) -> None:
    from sqlalchemy import select

    from flows import consultation as flow
    from storage.models import AuditRecord

    async with db.uow() as uow:
        staffed, _ = await flow.staffing(uow, START, "UTC")
        fell = set(
            await uow.session.scalars(
                select(AuditRecord.record_id).where(AuditRecord.action == "consultation.fall_back")
            )
        )
        for sim_case in by_id.values():
            live = await uow.consultations.get(sim_case.id)
            assert live is not None
            sim_case.final = live.state
            sim_case.fell_back = sim_case.id in fell
            if live.state == "waiting" and live.department not in staffed:
                result.stranded += 1


def table(result: Result) -> tuple[str, dict[str, Any]]:
    """The printed table and the same figures as a dict."""
    rows: dict[str, Any] = {}
    lines = [
        "disposition        cases accepted routed fell-back expired waiting   p50      p90"
        "     limit   p90 within"
    ]
    by_disp: dict[str, list[Case]] = defaultdict(list)
    for c in result.cases:
        by_disp[c.disposition].append(c)
    for disp in ("consultation_24", "consultation"):
        cs = by_disp.get(disp, [])
        waits = [(c.accepted - c.arrived).total_seconds() / 60 for c in cs if c.accepted]
        p50, p90 = percentile(waits, 50), percentile(waits, 90)
        limit = result.limits[disp].total_seconds() / 60
        row = {
            "cases": len(cs),
            "accepted": sum(1 for c in cs if c.accepted),
            "routed_at_submit": sum(1 for c in cs if c.department != c.preferred),
            "fell_back": sum(1 for c in cs if c.fell_back),
            "expired": sum(1 for c in cs if c.final == "expired"),
            "waiting": sum(1 for c in cs if c.final == "waiting"),
            "p50_min": p50,
            "p90_min": p90,
            "limit_min": limit,
            "p90_within": p90 is not None and p90 <= limit,
        }
        rows[disp] = row
        lines.append(
            f"{disp:<18}{row['cases']:6}{row['accepted']:9}{row['routed_at_submit']:7}"
            f"{row['fell_back']:10}{row['expired']:8}{row['waiting']:8}"
            f"{_m(p50):>8}{_m(p90):>9}{_m(limit):>9}   {'yes' if row['p90_within'] else 'NO'}"
        )
    told = [c for c in result.cases if c.accepted and c.estimate is not None]
    right = [c for c in told if abs(_min(c.estimate) - _waited(c)) <= LIMIT_FACTOR * _waited(c)]
    accepted = [c for c in result.cases if c.accepted]
    rows["estimate"] = {
        "accepted": len(accepted),
        "told_an_estimate": len(told),
        "within_50pct": len(right),
        "share_of_told": round(len(right) / len(told), 4) if told else None,
        "share_of_accepted": round(len(right) / len(accepted), 4) if accepted else None,
    }
    rows["stranded"] = result.stranded
    est = rows["estimate"]
    lines.append(
        f"estimate told at submit within ±50% of the actual wait: {est['within_50pct']} of "
        f"{est['told_an_estimate']} told ({_pct(est['share_of_told'])}); "
        f"{_pct(est['share_of_accepted'])} of all {est['accepted']} accepted cases "
        f"(the rest were told their place only: too few recent acceptances to estimate)"
    )
    lines.append(f"stranded (waiting where no doctor is verified): {result.stranded}")
    return "\n".join(lines), rows


def _waited(c: Case) -> float:
    """Minutes from arrival to acceptance (at least one)."""
    return _min(c.accepted - c.arrived) if c.accepted is not None else 0.0


def _min(d: timedelta | None) -> float:
    return 0.0 if d is None else max(d.total_seconds() / 60, 1.0)


def _m(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}m" if v < 120 else f"{v / 60:.1f}h"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def chart(result: Result, out: Path) -> None:
    """Waits per disposition (with the limits) and estimate vs actual, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    for disp, colour in (("consultation_24", "#c0392b"), ("consultation", "#2471a3")):
        waits = sorted(_waited(c) for c in result.cases if c.accepted and c.disposition == disp)
        if waits:
            ys = [(i + 1) / len(waits) for i in range(len(waits))]
            left.step(waits, ys, where="post", color=colour, label=_label(disp))
            limit = result.limits[disp].total_seconds() / 60
            left.axvline(limit, color=colour, linestyle="--", linewidth=1)
    left.set_xscale("log")
    left.set_xlabel("time to acceptance (minutes, log scale); dashed: the limit")
    left.set_ylabel("share of cases accepted by then")
    left.set_title("Time to acceptance per disposition")
    left.axhline(0.9, color="#888", linewidth=0.6)
    left.legend(loc="lower right")
    told = [c for c in result.cases if c.accepted and c.estimate is not None]
    xs = [_waited(c) for c in told]
    ys = [_min(c.estimate) for c in told]
    right.scatter(xs, ys, s=10, alpha=0.6, color="#117a65")
    top = max([*xs, *ys, 10.0])
    grid = [1.0, top]
    right.plot(grid, grid, color="#444", linewidth=0.8, label="estimate = actual")
    right.fill_between(grid, [g * 0.5 for g in grid], [g * 1.5 for g in grid], color="#ccc",
                       alpha=0.4, label="within ±50%")  # fmt: skip
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("actual wait (minutes)")
    right.set_ylabel("estimate told at submit (minutes)")
    right.set_title("Estimate told vs actual wait")
    right.legend(loc="upper left")
    fig.suptitle(f"A simulated week: {len(result.cases)} cases, {len(DOCTORS)} doctors in shifts")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _label(disp: str) -> str:
    return {"consultation_24": "see a doctor within 24 h", "consultation": "routine"}[disp]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=500, help="cases in the week (default 500)")
    ap.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    ap.add_argument("--days", type=int, default=7, help="days simulated (default 7)")
    ap.add_argument("--chart", type=Path, help="write the PNG chart here")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)
    if args.cases < 1 or args.days < 1:
        ap.error("--cases and --days must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(simulate(args.cases, args.seed, args.days))
    text, rows = table(result)
    print(
        f"clinic week: {len(result.cases)} cases over {args.days} days, seed {args.seed}, "
        f"{result.events_run} scheduled events run, {result.wall_s:.1f} s wall"
    )
    print(text)
    if args.chart:
        chart(result, args.chart)
        print(f"chart: {args.chart}")
    if args.json:
        print(json.dumps(rows, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
