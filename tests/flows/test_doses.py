"""Dose reminders (flows/doses.py with the patient bot's scheduler handlers) on SQLite and
PostgreSQL, driven by a fake clock through the real sweeper: the chain of occurrences across
a DST change and a time-zone move, 24 h of downtime (late within the window, missed beyond,
one message), snooze, skip with a reason, side effects (mild -> alert, severe -> red-flag
path), the escalation ladder (silence -> again -> caregiver -> doctor), an acknowledgement
at each step stopping the rest, stale escalation steps, stale and changed-plan buttons,
quiet hours, /doses lines and the FHIR MedicationAdministration."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from sqlalchemy import select

from bot.settings import Settings
from flows import alerts, timing
from flows import doses as flow
from flows.doses import DoseError
from handlers.doctor import ops_alerts
from handlers.patient.doses import scheduled
from scheduler.sweeper import Sweeper
from storage.audit import verify_chain
from storage.models import (
    AuditRecord,
    CareAlert,
    Caregiver,
    Doctor,
    Dose,
    MedicationPlan,
    OutboxMessage,
    Patient,
    ScheduledEvent,
)
from storage.uow import Database, UnitOfWork

PATIENT_TG = 820001
DOCTOR_TG = 820002
CARER_TG = 820003
OTHER_TG = 820004
MEDICINE = "Examplol 5 mg"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# -- setup ---------------------------------------------------------------------------------------


async def _patient(
    uow: UnitOfWork, tg: int = PATIENT_TG, tz: str = "UTC", locale: str = "en"
) -> Patient:
    patient = await uow.patients.add(
        Patient(
            tg_user_id=tg, locale=locale, onboarding_state="done", consent_version="1", timezone=tz
        )
    )
    await uow.patients.set_field(patient, "name", "Nora Testperson")
    return patient


async def _doctor(uow: UnitOfWork) -> Doctor:
    return await uow.doctors.add(
        Doctor(
            tg_user_id=DOCTOR_TG,
            locale="en",
            status="verified",
            verified_until=utc(2030, 1, 1),
            departments="general",
        )
    )


async def _plan(
    uow: UnitOfWork,
    patient: Patient,
    doctor: Doctor,
    times: tuple[str, ...] = ("08:00",),
    start: date = date(2026, 12, 1),
    **fields: Any,
) -> MedicationPlan:
    plan = MedicationPlan(
        patient_id=patient.id,
        doctor_id=doctor.id,
        status="active",
        step="done",
        version=1,
        schedule=timing.Schedule(times=times, start=start).to_json(),
        shift_minutes=0,
        again_after_min=30,
        caregiver_after_min=60,
        doctor_after_min=120,
        **fields,
    )
    plan.id = plan.id or __import__("uuid").uuid4().hex
    plan.details_enc = await uow.vault.seal(
        patient.id,
        "med_plans",
        "details_enc",
        plan.id,
        json.dumps({"name": MEDICINE, "dose": "1 tablet", "food": "with"}),
    )
    uow.session.add(plan)
    await uow.session.flush()
    return plan


async def _caregiver(
    uow: UnitOfWork, patient: Patient, scope: str = "missed", details: bool = False
) -> Caregiver:
    row = Caregiver(
        patient_id=patient.id,
        tg_user_id=CARER_TG,
        scope=scope,
        details=details,
        status="active",
        expires_at=utc(2026, 12, 30),
        accepted_at=utc(2026, 11, 30),
    )
    uow.session.add(row)
    await uow.session.flush()
    return row


async def _setup(
    db: Database,
    tz: str = "UTC",
    times: tuple[str, ...] = ("08:00",),
    now: datetime | None = None,
    **plan_fields: Any,
) -> tuple[str, str, str]:
    """A patient, a doctor and an active plan whose first occurrence is scheduled."""
    async with db.uow() as uow:
        patient = await _patient(uow, tz=tz)
        doctor = await _doctor(uow)
        plan = await _plan(uow, patient, doctor, times, **plan_fields)
        await flow.start(uow, plan, patient, now or utc(2026, 12, 3, 6, 0))
        await uow.commit()
        return patient.id, doctor.id, plan.id


def _sweeper(db: Database) -> Sweeper:
    return Sweeper(db, {**scheduled(Settings()), **ops_alerts.scheduled(Settings())})


async def _sweep(sweeper: Sweeper, now: datetime) -> None:
    while await sweeper.sweep_once(now):
        pass
    assert sweeper.failed == 0, "a scheduled handler raised"


async def _doses(db: Database, plan_id: str) -> list[Dose]:
    async with db.uow() as uow:
        rows = list(
            await uow.session.scalars(
                select(Dose).where(Dose.plan_id == plan_id).order_by(Dose.local)
            )
        )
        uow.session.expunge_all()
        return rows


async def _pending_events(db: Database, kind: str | None = None) -> list[ScheduledEvent]:
    async with db.uow() as uow:
        q = select(ScheduledEvent).where(ScheduledEvent.status == "pending")
        if kind is not None:
            q = q.where(ScheduledEvent.kind == kind)
        rows = list(await uow.session.scalars(q.order_by(ScheduledEvent.due_at)))
        uow.session.expunge_all()
        return rows


async def _sent(db: Database, chat_id: int, bot: str = "patient") -> list[dict[str, Any]]:
    """Every message queued to a chat, in order (decrypted)."""
    async with db.uow() as uow:
        rows = await uow.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.chat_id == chat_id,
                OutboxMessage.bot == bot,
                OutboxMessage.method == "sendMessage",
            )
            .order_by(OutboxMessage.id)
        )
        return [{**(await uow.outbox.params(r)), "priority": r.priority} for r in rows]


async def _actions(db: Database) -> list[str]:
    async with db.uow() as uow:
        return list(
            await uow.session.scalars(select(AuditRecord.action).order_by(AuditRecord.seq))
        )


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


async def _patient_row(db: Database, patient_id: str) -> Patient:
    async with db.uow() as uow:
        p = await uow.patients.get(patient_id)
        assert p is not None
        uow.session.expunge_all()
        return p


# -- the chain -----------------------------------------------------------------------------------


async def test_start_is_idempotent_and_stop_cancels(db: Database) -> None:
    patient_id, _, plan_id = await _setup(db)
    async with db.uow() as uow:
        plan = await uow.session.get(MedicationPlan, plan_id)
        patient = await uow.patients.get(patient_id)
        assert plan is not None and patient is not None
        await flow.start(uow, plan, patient, utc(2026, 12, 3, 6, 0))
        await flow.start(uow, plan, patient, utc(2026, 12, 3, 7, 0))
        await uow.commit()
    [event] = await _pending_events(db)
    [dose] = await _doses(db, plan_id)
    assert event.kind == "dose" and event.key == f"dose:{plan_id}:2026-12-03 08:00"
    jitter = timing.jitter_seconds(event.key)
    assert _aware(event.due_at) == utc(2026, 12, 3, 8, 0) + timedelta(seconds=jitter)
    assert dose.local == "2026-12-03 08:00" and event.subject == dose.id
    async with db.uow() as uow:
        plan = await uow.session.get(MedicationPlan, plan_id)
        assert plan is not None
        plan.status = "paused"
        await flow.stop(uow, plan, utc(2026, 12, 3, 7, 0))
        await uow.commit()
    assert await _pending_events(db) == []
    assert await _doses(db, plan_id) == []  # the future dose is gone
    # Resume: the same occurrence comes back (its cancelled key is revived, not lost).
    async with db.uow() as uow:
        plan = await uow.session.get(MedicationPlan, plan_id)
        patient = await uow.patients.get(patient_id)
        assert plan is not None and patient is not None
        plan.status = "active"
        await flow.start(uow, plan, patient, utc(2026, 12, 3, 7, 30))
        await uow.commit()
    [event] = await _pending_events(db)
    [dose] = await _doses(db, plan_id)
    assert event.key == f"dose:{plan_id}:2026-12-03 08:00" and event.subject == dose.id


async def test_chain_across_the_dst_change_in_london(db: Database) -> None:
    # Clocks go forward in the UK on 2027-03-28 at 01:00 UTC: 08:00 local is 08:00 UTC
    # before and 07:00 UTC after.
    _, _, plan_id = await _setup(
        db, tz="Europe/London", start=date(2027, 3, 25), now=utc(2027, 3, 26, 0, 0)
    )
    sweeper = _sweeper(db)
    for _ in range(4):
        [event] = await _pending_events(db, "dose")
        await _sweep(sweeper, _aware(event.due_at))
        [nxt] = await _pending_events(db, "dose")  # the chain never breaks
        assert nxt.id != event.id
    doses = await _doses(db, plan_id)
    assert [d.local for d in doses] == [
        "2027-03-26 08:00",
        "2027-03-27 08:00",
        "2027-03-28 08:00",
        "2027-03-29 08:00",
        "2027-03-30 08:00",
    ]
    assert [_aware(d.due_at).hour for d in doses] == [8, 8, 7, 7, 7]
    reminders = await _sent(db, PATIENT_TG)
    assert len(reminders) == 4 and all(MEDICINE in m["text"] for m in reminders)
    assert all("disable_notification" not in m for m in reminders)


async def test_time_zone_move_replans_the_next_occurrence(db: Database) -> None:
    patient_id, _, plan_id = await _setup(db, tz="Asia/Shanghai", now=utc(2026, 12, 2, 12, 0))
    [event] = await _pending_events(db, "dose")
    assert _aware(event.due_at).replace(second=0) == utc(2026, 12, 3, 0, 0)  # 08:00 in Shanghai
    async with db.uow() as uow:  # what flows.medication does on a zone change
        patient = await uow.patients.get(patient_id)
        plan = await uow.session.get(MedicationPlan, plan_id)
        assert patient is not None and plan is not None
        patient.timezone = "Europe/Moscow"
        await flow.stop(uow, plan, utc(2026, 12, 2, 12, 0))
        await flow.start(uow, plan, patient, utc(2026, 12, 2, 12, 0))
        await uow.commit()
    [moved] = await _pending_events(db, "dose")
    assert _aware(moved.due_at).replace(second=0) == utc(2026, 12, 3, 5, 0)  # 08:00 in Moscow
    sweeper = _sweeper(db)
    await _sweep(sweeper, utc(2026, 12, 3, 0, 5))  # the old Shanghai time: nothing
    assert await _sent(db, PATIENT_TG) == []
    await _sweep(sweeper, utc(2026, 12, 3, 5, 1))
    [reminder] = await _sent(db, PATIENT_TG)
    assert "08:00" in reminder["text"]


async def test_a_move_west_does_not_bring_a_taken_dose_round_again(db: Database) -> None:
    """08:00 taken in Shanghai (00:00 UTC); at 02:00 UTC the patient is in Moscow, where it
    is 05:00 on the same date: that date's 08:00 was already taken, so the next reminder is
    the following day's 08:00 in Moscow, and the chain is not broken."""
    patient_id, _, plan_id = await _setup(db, tz="Asia/Shanghai", now=utc(2026, 12, 2, 12, 0))
    sweeper = _sweeper(db)
    await _sweep(sweeper, utc(2026, 12, 3, 0, 1))
    [dose, _next] = await _doses(db, plan_id)
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        await flow.take(uow, patient, dose.id, dose.plan_version, utc(2026, 12, 3, 0, 5))
        await uow.commit()
    async with db.uow() as uow:  # what flows.medication does on a zone change
        patient = await uow.patients.get(patient_id)
        plan = await uow.session.get(MedicationPlan, plan_id)
        assert patient is not None and plan is not None
        patient.timezone = "Europe/Moscow"
        await flow.stop(uow, plan, utc(2026, 12, 3, 2, 0))
        await flow.start(uow, plan, patient, utc(2026, 12, 3, 2, 0))
        await uow.commit()
    [moved] = await _pending_events(db, "dose")
    assert _aware(moved.due_at).replace(second=0) == utc(2026, 12, 4, 5, 0)  # 08:00 Moscow
    statuses = {d.local: d.status for d in await _doses(db, plan_id)}
    assert statuses == {"2026-12-03 08:00": "taken", "2026-12-04 08:00": "pending"}


# -- catch-up after downtime ---------------------------------------------------------------------


async def test_24h_downtime_late_within_window_missed_beyond_one_message(db: Database) -> None:
    _patient_id, _, plan_id = await _setup(db, times=("08:00", "20:00"))
    # Down from before the 08:00 dose on the 3rd until 09:00 on the 4th.
    sweeper = _sweeper(db)
    await _sweep(sweeper, utc(2026, 12, 4, 9, 0))
    doses = await _doses(db, plan_id)
    by_local = {d.local: d for d in doses}
    assert by_local["2026-12-03 08:00"].status == "missed"
    assert by_local["2026-12-03 20:00"].status == "missed"
    late = by_local["2026-12-04 08:00"]
    assert late.status == "pending" and late.late
    assert by_local["2026-12-04 20:00"].status == "pending"  # the next, in the future
    sent = await _sent(db, PATIENT_TG)
    assert len(sent) == 2, "one message listing the missed doses, one late reminder"
    missed_msg, reminder = sent
    assert "2026-12-03 08:00" in missed_msg["text"] and "2026-12-03 20:00" in missed_msg["text"]
    assert "reply_markup" not in missed_msg
    assert "late" in reminder["text"] and "reply_markup" in reminder
    [nxt] = await _pending_events(db, "dose")
    assert _aware(nxt.due_at).replace(second=0) == utc(2026, 12, 4, 20, 0)
    # The chain goes on from there: no burst, nothing stale comes later.
    await _sweep(sweeper, utc(2026, 12, 4, 9, 1))
    assert len(await _sent(db, PATIENT_TG)) == 2


async def test_downtime_beyond_every_window_records_missed_and_tells_once(db: Database) -> None:
    _, _, plan_id = await _setup(db, times=("08:00", "20:00"))
    sweeper = _sweeper(db)
    await _sweep(sweeper, utc(2026, 12, 4, 14, 0))
    statuses = {d.local: d.status for d in await _doses(db, plan_id)}
    assert statuses == {
        "2026-12-03 08:00": "missed",
        "2026-12-03 20:00": "missed",
        "2026-12-04 08:00": "missed",
        "2026-12-04 20:00": "pending",
    }
    [msg] = await _sent(db, PATIENT_TG)
    assert msg["text"].count("•") == 3
    assert await _pending_events(db, "dose.again") == []  # no ladder for missed doses


# -- answers -------------------------------------------------------------------------------------


async def _reminded(db: Database, **kw: Any) -> tuple[str, str, str, Sweeper]:
    """Setup + the 08:00 reminder sent on time; returns the dose id too."""
    patient_id, _doctor_id, plan_id = await _setup(db, **kw)
    sweeper = _sweeper(db)
    await _sweep(sweeper, utc(2026, 12, 3, 8, 1))
    [dose, _next] = await _doses(db, plan_id)
    return patient_id, plan_id, dose.id, sweeper


async def _answer(db: Database, patient_id: str, fn: Any, *args: Any, **kw: Any) -> Any:
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        out = await fn(uow, patient, *args, **kw)
        await uow.commit()
        return out


async def test_taken_stops_the_ladder_and_second_press_is_already_recorded(db: Database) -> None:
    patient_id, plan_id, dose_id, sweeper = await _reminded(db)
    assert {e.kind for e in await _pending_events(db)} == {
        "dose", "dose.again", "dose.caregiver", "dose.doctor"
    }  # fmt: skip
    now = utc(2026, 12, 3, 8, 5)
    await _answer(db, patient_id, flow.take, dose_id, 1, now)
    assert {e.kind for e in await _pending_events(db)} == {"dose"}
    [dose, _] = await _doses(db, plan_id)
    assert dose.status == "taken" and dose.acked_by == f"patient:{patient_id}"
    with pytest.raises(DoseError) as err:
        await _answer(db, patient_id, flow.take, dose_id, 1, now)
    assert err.value.reason == "answered"
    await _sweep(sweeper, utc(2026, 12, 3, 12, 0))
    assert len(await _sent(db, PATIENT_TG)) == 1  # nothing more
    assert "dose.taken" in await _actions(db)


async def test_snooze_reminds_again_and_pushes_the_ladder_back(db: Database) -> None:
    patient_id, _plan_id, dose_id, sweeper = await _reminded(db)
    now = utc(2026, 12, 3, 8, 5)
    when = await _answer(db, patient_id, flow.snooze, dose_id, 1, 30, now)
    assert when == now + timedelta(minutes=30)
    kinds = {e.kind for e in await _pending_events(db)}
    assert kinds == {"dose", "dose.snooze"}
    [snz] = await _pending_events(db, "dose.snooze")
    assert snz.key == f"dose.snooze:{dose_id}:1"
    with pytest.raises(DoseError):
        await _answer(db, patient_id, flow.snooze, dose_id, 1, 45, now)  # not a choice
    await _sweep(sweeper, utc(2026, 12, 3, 8, 36))
    sent = await _sent(db, PATIENT_TG)
    assert len(sent) == 2 and "reply_markup" in sent[1]
    [again] = await _pending_events(db, "dose.again")
    assert _aware(again.due_at) == utc(2026, 12, 3, 9, 6)  # 30 min after the snoozed reminder
    [cg] = await _pending_events(db, "dose.caregiver")
    assert _aware(cg.due_at) == utc(2026, 12, 3, 9, 36)


async def test_skip_with_a_reason_sealed_on_the_dose(db: Database) -> None:
    patient_id, plan_id, dose_id, _ = await _reminded(db)
    now = utc(2026, 12, 3, 8, 5)
    await _answer(db, patient_id, flow.skip, dose_id, 1, now)
    await _answer(db, patient_id, flow.skip_reason, dose_id, "other", "The pharmacy was shut", now)
    with pytest.raises(DoseError) as err:
        await _answer(db, patient_id, flow.skip_reason, dose_id, "forgot", None, now)
    assert err.value.reason == "answered"
    [dose, _] = await _doses(db, plan_id)
    assert dose.status == "skipped" and dose.note_enc is not None
    assert b"pharmacy" not in dose.note_enc
    async with db.uow() as uow:
        row = await uow.session.get(Dose, dose_id)
        assert row is not None
        note = json.loads(
            await uow.vault.open(row.patient_id, "doses", "note_enc", row.id, row.note_enc or b"")
        )
    assert note["skip"]["reason"] == "other" and note["skip"]["text"] == "The pharmacy was shut"
    assert {e.kind for e in await _pending_events(db)} == {"dose"}


async def test_stale_and_changed_plan_buttons(db: Database) -> None:
    patient_id, plan_id, dose_id, _ = await _reminded(db)
    now = utc(2026, 12, 3, 8, 5)
    async with db.uow() as uow:
        other = await _patient(uow, OTHER_TG)
        await uow.commit()
    with pytest.raises(DoseError) as err:
        await _answer(db, other.id, flow.take, dose_id, 1, now)
    assert err.value.reason == "unknown"
    with pytest.raises(DoseError) as err:
        await _answer(db, patient_id, flow.take, "f" * 32, 1, now)
    assert err.value.reason == "unknown"
    # The doctor changed the plan: version 2; the old reminder's buttons are stale.
    async with db.uow() as uow:
        plan = await uow.session.get(MedicationPlan, plan_id)
        assert plan is not None
        plan.version = 2
        await uow.commit()
    with pytest.raises(DoseError) as err:
        await _answer(db, patient_id, flow.take, dose_id, 1, now)
    assert err.value.reason == "changed" and err.value.plan is not None
    async with db.uow() as uow:
        plan = await uow.session.get(MedicationPlan, plan_id)
        assert plan is not None
        plan.status = "paused"
        await flow.stop(uow, plan, now)
        await uow.commit()
    with pytest.raises(DoseError) as err:
        await _answer(db, patient_id, flow.snooze, dose_id, 2, 10, now)
    assert err.value.reason == "changed"
    [dose] = await _doses(db, plan_id)  # the future one was deleted, this one cancelled
    assert dose.status == "cancelled"
    assert await _pending_events(db) == []


# -- side effects --------------------------------------------------------------------------------


async def _alerts(db: Database) -> list[CareAlert]:
    async with db.uow() as uow:
        rows = list(await uow.session.scalars(select(CareAlert).order_by(CareAlert.created_at)))
        uow.session.expunge_all()
        return rows


async def test_side_effect_mild_goes_to_the_doctor_as_an_alert(db: Database) -> None:
    patient_id, plan_id, dose_id, _ = await _reminded(db)
    now = utc(2026, 12, 3, 8, 10)
    step = await _answer(db, patient_id, flow.effect_start, dose_id, 1, now)
    assert step.state is flow.Effect.WHAT
    step = await _answer(db, patient_id, flow.effect_answer, dose_id, 1, "nausea", now)
    assert step.state is flow.Effect.SEVERITY
    with pytest.raises(DoseError):  # a severity is expected now, not an effect
        await _answer(db, patient_id, flow.effect_answer, dose_id, 1, "rash", now)
    step = await _answer(db, patient_id, flow.effect_answer, dose_id, 1, "mild", now)
    assert step.state is flow.Effect.DONE and not step.red
    [alert] = await _alerts(db)
    assert (alert.kind, alert.level, alert.ref_id) == ("side_effect", "alert", dose_id)
    [doc_msg] = await _sent(db, DOCTOR_TG, "doctor")
    assert "Nausea" in doc_msg["text"] and "Mild" in doc_msg["text"]
    assert doc_msg["priority"] > 0
    [dose, _] = await _doses(db, plan_id)
    assert dose.acked_by == f"patient:{patient_id}" and b"nausea" not in (dose.note_enc or b"")
    assert {e.kind for e in await _pending_events(db)} == {"dose"}  # the ladder stopped
    assert "dose.side_effect" in await _actions(db)


async def test_side_effect_severe_runs_the_red_flag_path(db: Database) -> None:
    patient_id, _, dose_id, _ = await _reminded(db)
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        await _caregiver(uow, patient, "missed")
        await uow.commit()
    now = utc(2026, 12, 3, 8, 10)
    await _answer(db, patient_id, flow.effect_start, dose_id, 1, now)
    step = await _answer(db, patient_id, flow.effect_answer, dose_id, 1, "other", now)
    assert step.state is flow.Effect.OTHER
    with pytest.raises(DoseError) as err:
        await _answer(db, patient_id, flow.effect_answer, dose_id, 1, "typed", now, text="x" * 600)
    assert err.value.reason == "too_long"
    await _answer(db, patient_id, flow.effect_answer, dose_id, 1, "typed", now, text="Hives")
    step = await _answer(db, patient_id, flow.effect_answer, dose_id, 1, "severe", now)
    assert step.red and [c.tg_user_id for c in step.caregivers] == [CARER_TG]
    [alert] = await _alerts(db)
    assert alert.level == "danger"
    [doc_msg] = await _sent(db, DOCTOR_TG, "doctor")
    assert doc_msg["priority"] == 0 and "Hives" in doc_msg["text"]
    actions = await _actions(db)
    assert "dose.side_effect.red_flag" in actions and "redflag.raised" in actions


async def test_trouble_breathing_is_a_red_flag_at_once(db: Database) -> None:
    patient_id, _, dose_id, _ = await _reminded(db)
    now = utc(2026, 12, 3, 8, 10)
    await _answer(db, patient_id, flow.effect_start, dose_id, 1, now)
    step = await _answer(db, patient_id, flow.effect_answer, dose_id, 1, "breathing", now)
    assert step.state is flow.Effect.DONE and step.red and step.severity == "severe"
    [alert] = await _alerts(db)
    assert alert.level == "danger"


# -- the escalation ladder -----------------------------------------------------------------------


async def _ladder_setup(db: Database, details: bool = False) -> tuple[str, str, str, Sweeper]:
    patient_id, plan_id, dose_id, sweeper = await _reminded(db)
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        await _caregiver(uow, patient, "missed", details)
        await uow.commit()
    return patient_id, plan_id, dose_id, sweeper


@pytest.mark.parametrize("details", [False, True])
async def test_silence_escalates_again_caregiver_doctor(db: Database, details: bool) -> None:
    _patient_id, plan_id, dose_id, sweeper = await _ladder_setup(db, details)
    await _sweep(sweeper, utc(2026, 12, 3, 8, 32))  # again after 30 min
    sent = await _sent(db, PATIENT_TG)
    assert len(sent) == 2 and "again" in sent[1]["text"].lower()
    assert (await _doses(db, plan_id))[0].step == 1
    assert await _sent(db, CARER_TG) == []
    await _sweep(sweeper, utc(2026, 12, 3, 9, 2))  # caregivers after 60 min
    [carer] = await _sent(db, CARER_TG)
    assert "Nora" in carer["text"] and "Testperson" not in carer["text"]
    assert (MEDICINE in carer["text"]) is details  # medicine names only when allowed
    assert carer["priority"] == 0 and "reply_markup" in carer
    assert (await _doses(db, plan_id))[0].step == 2
    assert await _alerts(db) == []
    await _sweep(sweeper, utc(2026, 12, 3, 10, 2))  # the doctor after 120 min
    [alert] = await _alerts(db)
    assert (alert.kind, alert.ref_id) == ("dose", dose_id)
    [doc_msg] = await _sent(db, DOCTOR_TG, "doctor")
    assert MEDICINE in doc_msg["text"]
    assert (await _doses(db, plan_id))[0].step == 3
    # The doctor acknowledges: recorded on the dose.
    async with db.uow() as uow:
        doctor = await uow.doctors.get(alert.doctor_id)
        assert doctor is not None
        await alerts.ack(uow, doctor, alert.id, utc(2026, 12, 3, 10, 10))
        await uow.commit()
    dose = (await _doses(db, plan_id))[0]
    assert dose.acked_by == f"doctor:{alert.doctor_id}" and dose.status == "pending"
    async with db.uow() as uow:
        assert (await verify_chain(uow.session)).ok


@pytest.mark.parametrize("ack_at", ["patient_after_again", "caregiver_checked", "caregiver_took"])
async def test_an_acknowledgement_at_each_step_stops_the_rest(db: Database, ack_at: str) -> None:
    patient_id, plan_id, dose_id, sweeper = await _ladder_setup(db)
    await _sweep(sweeper, utc(2026, 12, 3, 8, 32))
    if ack_at == "patient_after_again":
        await _answer(db, patient_id, flow.take, dose_id, 1, utc(2026, 12, 3, 8, 40))
    else:
        await _sweep(sweeper, utc(2026, 12, 3, 9, 2))
        action = ack_at.split("_")[1]
        async with db.uow() as uow:
            await flow.caregiver_answer(uow, CARER_TG, dose_id, action, utc(2026, 12, 3, 9, 10))
            await uow.commit()
        with pytest.raises(DoseError) as err:  # a second press
            async with db.uow() as uow:
                await flow.caregiver_answer(
                    uow, CARER_TG, dose_id, action, utc(2026, 12, 3, 9, 11)
                )
        assert err.value.reason == "answered"
    await _sweep(sweeper, utc(2026, 12, 3, 12, 0))
    assert await _alerts(db) == []  # the doctor step never came
    dose = (await _doses(db, plan_id))[0]
    if ack_at == "patient_after_again":
        assert await _sent(db, CARER_TG) == []
        assert dose.status == "taken"
    else:
        assert dose.acked_by is not None and dose.acked_by.startswith("caregiver:")
        assert dose.status == ("taken" if ack_at == "caregiver_took" else "pending")
        assert f"dose.ack.{ack_at.split('_')[1]}" in await _actions(db)


async def test_revoked_caregiver_button_is_refused(db: Database) -> None:
    _, _, dose_id, sweeper = await _ladder_setup(db)
    await _sweep(sweeper, utc(2026, 12, 3, 9, 2))
    async with db.uow() as uow:
        [row] = list(await uow.session.scalars(select(Caregiver)))
        row.status = "revoked"
        await uow.commit()
    with pytest.raises(DoseError) as err:
        async with db.uow() as uow:
            await flow.caregiver_answer(uow, CARER_TG, dose_id, "took", utc(2026, 12, 3, 9, 10))
    assert err.value.reason == "not_caregiver"


async def test_stale_escalation_steps_are_recorded_and_skipped(db: Database) -> None:
    _, _plan_id, _, sweeper = await _ladder_setup(db)
    # Down from 08:02 to 13:00: the re-remind (1 h window) and the caregiver step (2 h) are
    # stale; the doctor's (12 h) still goes.
    await _sweep(sweeper, utc(2026, 12, 3, 13, 0))
    assert len(await _sent(db, PATIENT_TG)) == 1
    assert await _sent(db, CARER_TG) == []
    [alert] = await _alerts(db)
    assert alert.kind == "dose"
    assert (await _actions(db)).count("dose.step_skipped") == 2


# -- quiet hours, /doses and FHIR ----------------------------------------------------------------


async def test_quiet_hours_silent_reminder_and_re_remind_waits(db: Database) -> None:
    patient_id, _, plan_id = await _setup(db, times=("23:00",))
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        patient.quiet_start, patient.quiet_end = "22:00", "07:00"
        await uow.commit()
    sweeper = _sweeper(db)
    await _sweep(sweeper, utc(2026, 12, 3, 23, 1))
    [reminder] = await _sent(db, PATIENT_TG)
    assert reminder["disable_notification"] is True
    [again] = await _pending_events(db, "dose.again")
    assert _aware(again.due_at) == utc(2026, 12, 4, 7, 0)
    await _sweep(sweeper, utc(2026, 12, 4, 6, 59))
    # The caregiver/doctor steps are not held back by the patient's quiet hours, but the
    # re-remind is: only one message to the patient so far.
    assert len(await _sent(db, PATIENT_TG)) == 1
    assert len(await _doses(db, plan_id)) == 2


async def test_recent_doses_and_fhir_administrations(db: Database) -> None:
    patient_id, plan_id, dose_id, sweeper = await _reminded(db)
    await _answer(db, patient_id, flow.take, dose_id, 1, utc(2026, 12, 3, 8, 5))
    await _sweep(sweeper, utc(2026, 12, 4, 12, 0))  # the 4th's dose: missed
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        lines = await flow.recent(uow, patient, utc(2026, 12, 4, 12, 0))
        resources = await flow.administrations(uow, patient)
        seen = [(ln.dose.local, ln.status, ln.name) for ln in lines]
    assert seen == [
        ("2026-12-04 08:00", "missed", MEDICINE),
        ("2026-12-03 08:00", "taken", MEDICINE),
    ]
    assert [r["status"] for r in resources] == ["completed", "not-done"]
    for r in resources:
        parsed = MedicationAdministration.model_validate(r)
        assert parsed.subject.reference == f"Patient/{patient_id}"
        assert parsed.request is not None
        assert parsed.request.reference == f"MedicationRequest/{plan_id}"
    assert resources[0]["medicationCodeableConcept"]["text"] == MEDICINE
    assert resources[1]["statusReason"][0]["coding"][0]["code"] == "missed"


async def test_reminders_scope_caregiver_gets_copies_but_no_escalation(db: Database) -> None:
    patient_id, _, plan_id = await _setup(db)
    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        await _caregiver(uow, patient, "reminders")
        await uow.commit()
    sweeper = _sweeper(db)
    await _sweep(sweeper, utc(2026, 12, 3, 8, 1))
    [copy] = await _sent(db, CARER_TG)
    assert "Nora" in copy["text"] and MEDICINE not in copy["text"]
    assert "reply_markup" not in copy
    await _sweep(sweeper, utc(2026, 12, 3, 10, 30))  # the whole ladder ran
    assert len(await _sent(db, CARER_TG)) == 1  # no missed-dose alert for this scope
    assert [a.kind for a in await _alerts(db)] == ["dose"]
    assert (await _doses(db, plan_id))[0].step == 3


async def test_an_unanswered_dose_becomes_missed_and_a_late_answer_still_counts(
    db: Database,
) -> None:
    patient_id, plan_id, dose_id, sweeper = await _reminded(db)
    await _sweep(sweeper, utc(2026, 12, 3, 10, 30))  # again, caregivers, doctor: silence
    await _sweep(sweeper, utc(2026, 12, 4, 8, 1))  # the next day's reminder
    first, second, _third = await _doses(db, plan_id)
    assert first.id == dose_id and first.status == "missed"
    assert second.status == "pending"
    with pytest.raises(DoseError) as err:
        await _answer(db, patient_id, flow.snooze, dose_id, 1, 10, utc(2026, 12, 4, 8, 5))
    assert err.value.reason == "missed"
    dose = await _answer(db, patient_id, flow.take, dose_id, 1, utc(2026, 12, 4, 8, 5))
    assert dose.status == "taken"
