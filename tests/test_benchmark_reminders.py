"""Smoke test of the reminder benchmark (benchmarks/reminders.py) at a tiny size.

The whole benchmark runs inline (the Careline app and the APScheduler baseline in this event
loop) at ``--quick`` size: 200 patients with a due dose, 2,000 stored events, the emulator at
Telegram's limits. Correctness only, no timing: every due reminder is enqueued exactly once,
delivered once to the right patient, the talkers get their /help answers, and the baseline's
jobs are all accounted for. The seeding is checked against ``flows.doses.start`` on both
databases (the same occurrence keys, so ``start`` finds every seeded occurrence in place).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from benchmarks.reminders import (
    TG_BASE,
    Probe,
    med_name,
    quick_options,
    run_all,
    seed_base,
    seed_due,
)
from storage.models import Dose, MedicationPlan, Patient, ScheduledEvent
from storage.uow import Database


def test_probe_flags_a_reminder_with_another_patients_medicine() -> None:
    probe = Probe(3)
    probe.patient_bot_id = 7
    probe.on_bot_message(7, TG_BASE + 1, f"Time for {med_name(1)}", 1.0)
    assert probe.wrong_count == 0 and probe.count[1] == 1
    probe.on_bot_message(7, TG_BASE + 2, f"Time for {med_name(0)}", 1.1)
    assert probe.wrong_count == 1
    probe.on_bot_message(7, TG_BASE + 5, "to nobody we seeded", 1.2)
    assert probe.unknown == 1


async def test_seeded_occurrences_are_the_ones_doses_start_schedules(db: Database) -> None:
    from flows import doses

    seeded = await seed_base(db, db.ring, 6, 40, [], seed=3)
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    await seed_due(db, db.ring, seeded, t0)

    async def counts() -> tuple[int, int]:
        async with db.uow() as uow:
            events = await uow.session.scalar(select(func.count(ScheduledEvent.id)))
            dose_rows = await uow.session.scalar(select(func.count(Dose.id)))
        return int(events or 0), int(dose_rows or 0)

    before = await counts()
    assert before == (40 + 6, 6)
    async with db.uow() as uow:
        plans = list(await uow.session.scalars(select(MedicationPlan)))
        assert len(plans) == 6
        for plan in plans:
            patient = await uow.session.get(Patient, plan.patient_id)
            assert patient is not None
            await doses.start(uow, plan, patient, t0 - timedelta(minutes=5))
            # The plan's details open under the patient's own key (sealed like the vault).
            doc = await uow.vault.open(
                patient.id, "med_plans", "details_enc", plan.id, plan.details_enc or b""
            )
            assert "Benchmed-" in doc
        await uow.commit()
    assert await counts() == before  # every occurrence was already there, keyed the same


async def test_quick_run_enqueues_and_delivers_every_reminder_once() -> None:
    opts = quick_options()
    report = await run_all(opts, inline=True)
    line, care, base = report["line"], report["careline"], report["baseline"]
    n = opts.patients
    assert line["patients"] == n
    # Enqueued: every due event ran, every due dose has exactly one outbox row.
    assert care["verify"]["events"] == {"done": n}
    assert care["verify"]["dropped"] == 0 and care["verify"]["doubled"] == 0
    assert care["verify"]["outbox_rows"] == n
    assert care["verify"]["next_occurrences"] == n  # each chain goes on to tomorrow
    # Delivered (--quick waits for all of them): once each, to the right patient.
    delivery = care["delivery"]
    assert delivery["delivered"] == n
    assert delivery["patients_reached"] == n
    assert delivery["twice"] == 0
    assert delivery["wrong_patient"] == 0
    assert delivery["unknown_chats"] == 0
    assert care["verify"]["sent_in_db"] == n
    # The talkers were answered with the help text, not an error.
    replies = care["replies"]
    assert replies["asked"] > 0 and replies["answered"] == replies["asked"]
    assert replies["wrong"] == 0
    # The baseline's jobs are all counted, ran or missed.
    assert base is not None and base["jobs"] == n
    assert base["ran"] + base["missed"] == n
    assert line["baseline_ran"] == base["ran"]
    assert line["dropped"] == 0 and line["wrong_patient"] == 0
