"""Many patients racing for a few slots: no time booked twice, no charge without a booking.

    python -m benchmarks.booking_race [--patients 100] [--slots 10] [--db sqlite|postgresql+asyncpg://...]

What runs (in this process, on a fresh migrated database): one verified doctor with phone
hours and a paid phone service (Telegram Stars); ``--patients`` patients start at once, each
in its own transaction per step, exactly as the patient bot's handlers call the flow:

1. tap a time among the doctor's first ``--slots`` free times (``flows.booking.hold``: the
   conditional UPDATE that holds it and opens the booking); a patient whose time was taken
   is offered the free ones again and taps one of those, up to three times;
2. pre-checkout (``flows.booking.pre_checkout``) for a held booking, then the payment
   (``flows.booking.paid``) with its own charge id — delivered twice, as after a webhook
   retry.

Figures: bookings per slot (must be at most one), charges without a booked booking (must be
0, or refunded), duplicate deliveries that changed anything (must be 0), and the latency of
each tap (hold + booking, the database part of "tap -> invoice queued"), p50 / p99. A
baseline beside it: the same number of bare INSERT-or-fail statements on a unique key
(what the database itself costs for the race). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flows import booking, services
from storage.crypto import KeyRing
from storage.models import Doctor, Patient, utcnow
from storage.uow import Database


@dataclass
class Outcome:
    """What one patient ended with."""

    booked: bool
    charged: bool
    refunded: bool
    taps: list[float]


async def _seed(db: Database, patients: int) -> tuple[str, list[str], list[str]]:
    """The doctor, the patients, the first free slot ids (ids only: sessions end here)."""
    now = utcnow()
    async with db.uow() as uow:
        doctor = await uow.doctors.add(
            Doctor(
                tg_user_id=900_000_001,
                locale="en",
                status="verified",
                verified_until=now + timedelta(days=300),
                departments="general",
            )
        )
        await services.add(uow, "admin:bench", "phone", minutes=15, price="150 XTR")
        await booking.add_rule(uow, doctor, "phone mon-sun 00:00-23:45 slot 15", "UTC", now)
        ids = []
        for i in range(patients):
            p = await uow.patients.add(
                Patient(tg_user_id=800_000_000 + i, locale="en", onboarding_state="done")
            )
            ids.append(p.id)
        await uow.commit()
        doctor_id = doctor.id
    async with db.uow() as uow:
        d = await uow.doctors.get(doctor_id)
        assert d is not None
        slots = [s.id for s in await uow.bookings.free_slots(doctor_id, "phone", utcnow(), 200)]
    return doctor_id, ids, slots


async def _patient(
    db: Database, index: int, patient_id: str, slots: list[str], rng: random.Random
) -> Outcome:
    taps: list[float] = []
    choice = rng.choice(slots)
    for _attempt in range(3):
        t0 = time.perf_counter()
        try:
            async with db.uow() as uow:
                p = await uow.patients.get(patient_id)
                assert p is not None
                held = await booking.hold(uow, p, choice, utcnow())
                await uow.commit()
                booking_id = held.booking.id
                price = held.price
        except booking.BookingError:
            taps.append(time.perf_counter() - t0)
            async with db.uow() as uow:
                free = {
                    s.id
                    for s in await uow.bookings.free_slots(
                        (await uow.bookings.slot(choice)).doctor_id,  # type: ignore[union-attr]
                        "phone",
                        utcnow(),
                        200,
                    )
                }
            left = [s for s in slots if s in free]
            if not left:
                return Outcome(False, False, False, taps)
            choice = rng.choice(left)
            continue
        taps.append(time.perf_counter() - t0)
        tg = 800_000_000 + index
        payload = f"bk:{booking_id}"
        async with db.uow() as uow:
            why = await booking.pre_checkout(
                uow, tg, payload, price.currency, price.minor, utcnow()
            )
            await uow.commit()
        if why is not None:
            return Outcome(False, False, False, taps)
        charge = f"stx-bench-{index}"
        results = []
        for _delivery in range(2):  # a webhook retry delivers the payment twice
            async with db.uow() as uow:
                done = await booking.paid(
                    uow, tg, payload, price.currency, price.minor, charge, None, utcnow()
                )
                await uow.commit()
                results.append(done.outcome)
        if results[1] != "duplicate":
            raise AssertionError(f"a second delivery changed something: {results}")
        return Outcome(results[0] == "booked", True, results[0].startswith("refund"), taps)
    return Outcome(False, False, False, taps)


async def _baseline(db: Database, n: int, slots: int) -> list[float]:
    """The database's own cost for the race: INSERT ... a unique key, or fail."""
    from sqlalchemy import text

    async with db.uow() as uow:
        await uow.session.execute(text("CREATE TABLE race_base (k INTEGER PRIMARY KEY)"))
        await uow.commit()
    lat: list[float] = []

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        async with db.uow() as uow:
            try:
                await uow.session.execute(
                    text("INSERT INTO race_base (k) VALUES (:k)"), {"k": i % slots}
                )
                await uow.commit()
            except Exception:  # noqa: BLE001 - the loser of the race: a unique violation
                await uow.rollback()
        lat.append(time.perf_counter() - t0)

    await asyncio.gather(*(one(i) for i in range(n)))
    return lat


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def race(db: Database, patients: int, slots: int, seed: int = 1) -> dict[str, Any]:
    """Run the race on a migrated database; returns the figures."""
    rng = random.Random(seed)
    _doctor, ids, free = await _seed(db, patients)
    target = free[:slots]
    outcomes = await asyncio.gather(
        *(_patient(db, i, pid, target, random.Random(rng.random())) for i, pid in enumerate(ids))
    )
    async with db.uow() as uow:
        rows = await uow.bookings.all_bookings()
        per_slot: dict[str, int] = {}
        for b in rows:
            if b.status == "booked":
                per_slot[b.slot_id] = per_slot.get(b.slot_id, 0) + 1
        charged_not_booked = sum(
            1 for b in rows if b.charge_id and b.status != "booked" and b.refund is None
        )
        busy = (await uow.bookings.count_slots()).get("busy", 0)
    taps = [t for o in outcomes for t in o.taps]
    base = await _baseline(db, patients, slots)
    return {
        "patients": patients,
        "slots": slots,
        "booked": sum(o.booked for o in outcomes),
        "busy_slots": busy,
        "double_bookings": sum(n - 1 for n in per_slot.values() if n > 1),
        "charges": sum(o.charged for o in outcomes),
        "charges_without_booking": charged_not_booked,
        "refunded": sum(o.refunded for o in outcomes),
        "taps": len(taps),
        "tap_p50_ms": round(_pct(taps, 0.50), 2),
        "tap_p99_ms": round(_pct(taps, 0.99), 2),
        "tap_mean_ms": round(statistics.fmean(taps) * 1000, 2) if taps else 0.0,
        "baseline_p50_ms": round(_pct(base, 0.50), 2),
        "baseline_p99_ms": round(_pct(base, 0.99), 2),
    }


async def _main(opts: argparse.Namespace) -> dict[str, Any]:
    from storage.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        ring, _ = KeyRing.load_or_create(Path(tmp) / "keys.json")
        url = f"sqlite+aiosqlite:///{tmp}/race.db" if opts.db == "sqlite" else opts.db
        db = Database(url, ring)
        try:
            await upgrade(db.engine)
            return await race(db, opts.patients, opts.slots, opts.seed)
        finally:
            await db.dispose()


def main(argv: list[str] | None = None) -> int:
    """Run the race and print the figures (the last line is JSON)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.booking_race", description=__doc__)
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--slots", type=int, default=10)
    ap.add_argument("--db", default="sqlite", help="'sqlite' (temp dir) or a PostgreSQL URL")
    ap.add_argument("--seed", type=int, default=1)
    opts = ap.parse_args(argv)
    result = asyncio.run(_main(opts))
    print(
        f"{result['patients']} patients for {result['slots']} slots: {result['booked']} booked, "
        f"{result['double_bookings']} double bookings, {result['charges_without_booking']} "
        f"charges without a booking; tap p50 {result['tap_p50_ms']} ms, p99 "
        f"{result['tap_p99_ms']} ms (bare unique INSERT p50 {result['baseline_p50_ms']} ms, "
        f"p99 {result['baseline_p99_ms']} ms)",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0 if result["double_bookings"] == 0 and result["charges_without_booking"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
