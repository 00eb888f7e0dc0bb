"""Medication plans (flows/medication.py) on SQLite and PostgreSQL: the doctor's wizard step
by step with every kind of bad input, one draft per doctor, sending, the patient's confirm /
decline / pause / resume, a change (new version; old buttons stale), ending, time zone and
shift re-planning through flows.doses, quiet hours, audit, encryption, and the FHIR
MedicationRequest export validated with fhir.resources."""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest
from sqlalchemy import select

from flows import doses
from flows import medication as med
from flows.medication import BadInput, NotAllowed, Status
from storage.models import (
    AuditRecord,
    Consultation,
    Doctor,
    Dose,
    MedicationPlan,
    Patient,
    ScheduledEvent,
)
from storage.uow import Database, UnitOfWork

# Monday 2 March 2026, 06:00 UTC = 07:00 in Berlin (before the first 08:00 dose).
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
MEDICINE = "Examplomycin 250 mg"
DOSE = "2 capsules"


async def people(uow: UnitOfWork, tg: int = 9100) -> tuple[Patient, Doctor, Consultation]:
    """An onboarded patient in Berlin, a verified doctor and their active case."""
    patient = await uow.patients.add(
        Patient(
            tg_user_id=tg,
            locale="en",
            onboarding_state="done",
            consent_version="1",
            timezone="Europe/Berlin",
        )
    )
    await uow.patients.set_field(patient, "name", "Nora Testpatient")
    doctor = await uow.doctors.add(
        Doctor(
            tg_user_id=tg + 1000,
            locale="en",
            status="verified",
            verified_until=T0 + timedelta(days=300),
            departments="general",
        )
    )
    await uow.doctors.set_field(doctor, "name", "Dr Ivo Sample")
    case = await uow.consultations.add(
        Consultation(
            patient_id=patient.id,
            department="general",
            state="active",
            doctor_id=doctor.id,
            requested_at=T0,
            accepted_at=T0,
        )
    )
    return patient, doctor, case


async def through_wizard(
    uow: UnitOfWork,
    doctor: Doctor,
    case: Consultation,
    times: str = "08:00, 20:00",
    days: str = "every",
    period: str = "30",
    food: str = "with",
) -> MedicationPlan:
    """Every step answered (typed or with the buttons' values); the plan at review."""
    plan = await med.begin(uow, doctor, case, T0)
    assert plan.step == "name" and plan.status == Status.DRAFT
    assert await med.answer(uow, doctor, plan, MEDICINE, T0) == "dose"
    assert await med.answer(uow, doctor, plan, DOSE, T0) == "times"
    assert await med.answer(uow, doctor, plan, times, T0) == "days"
    if days in ("every", "weekdays"):
        plan, step = await med.choose(uow, doctor, plan.id, "days", days, T0)
    else:
        step = await med.answer(uow, doctor, plan, days, T0)
    assert step == "period"
    if period in med.PERIODS:
        plan, step = await med.choose(uow, doctor, plan.id, "period", period, T0)
    else:
        step = await med.answer(uow, doctor, plan, period, T0)
    assert step == "food"
    plan, step = await med.choose(uow, doctor, plan.id, "food", food, T0)
    assert step == med.REVIEW
    return plan


async def sent_plan(uow: UnitOfWork, **kw: Any) -> tuple[Patient, Doctor, MedicationPlan]:
    patient, doctor, case = await people(uow)
    plan = await through_wizard(uow, doctor, case, **kw)
    plan, changed = await med.send(uow, doctor, plan.id, T0)
    assert not changed
    return patient, doctor, plan


async def pending_dose_events(uow: UnitOfWork, plan: MedicationPlan) -> list[ScheduledEvent]:
    rows = await uow.session.scalars(
        select(ScheduledEvent)
        .where(ScheduledEvent.key.like(f"dose:{plan.id}:%"), ScheduledEvent.status == "pending")
        .order_by(ScheduledEvent.due_at)
    )
    return list(rows)


async def pending_doses(uow: UnitOfWork, plan: MedicationPlan) -> list[Dose]:
    rows = await uow.session.scalars(
        select(Dose).where(Dose.plan_id == plan.id, Dose.status == "pending").order_by(Dose.local)
    )
    return list(rows)


def aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def local(at: datetime, zone: str) -> str:
    return aware(at).astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


async def actions(uow: UnitOfWork) -> list[tuple[str, str]]:
    rows = await uow.session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
    return [(r.actor, r.action) for r in rows]


# -- the machine ------------------------------------------------------------------------------


def test_status_machine_table() -> None:
    allowed = {
        (Status.DRAFT, "propose"): Status.PROPOSED,
        (Status.DRAFT, "cancel"): Status.CANCELLED,
        (Status.PROPOSED, "confirm"): Status.ACTIVE,
        (Status.PROPOSED, "decline"): Status.DECLINED,
        (Status.ACTIVE, "pause"): Status.PAUSED,
        (Status.PAUSED, "resume"): Status.ACTIVE,
        **{(s, "change"): Status.PROPOSED for s in med.LIVE},
        **{(s, "end"): Status.ENDED for s in med.LIVE},
    }
    for state in Status:
        for trigger in med.TRIGGERS:
            want = allowed.get((state, trigger))
            if want is None:
                with pytest.raises(NotAllowed):
                    med.next_status(state, trigger)
            else:
                assert med.next_status(state, trigger) is want, (state, trigger)


def test_parse_shift_and_quiet() -> None:
    assert med.parse_shift("+30") == 30
    assert med.parse_shift("-90") == -90
    assert med.parse_shift("+2 h") == 120
    assert med.parse_shift("45 min") == 45
    assert med.parse_shift("-12h") == -720
    for bad in ("+13 h", "800", "soon", "", "+1 day"):
        with pytest.raises(BadInput):
            med.parse_shift(bad)
    assert med.parse_quiet("22:00-07:00") == ("22:00", "07:00")
    assert med.parse_quiet("10 pm to 7 am") == ("22:00", "07:00")
    assert med.parse_quiet("Off") is None
    for bad in ("25:00-07:00", "22:00", "22:00-22:00", "later"):
        with pytest.raises(BadInput):
            med.parse_quiet(bad)


def test_shifted_wraps_midnight() -> None:
    assert med.shifted(("08:00", "23:30"), 60) == ("00:30", "09:00")
    assert med.shifted(("00:15",), -30) == ("23:45",)


# -- the wizard -------------------------------------------------------------------------------


async def test_wizard_send_confirm_schedules_the_first_dose(db: Database) -> None:
    async with db.uow() as uow:
        patient, doctor, plan = await sent_plan(uow)
        assert plan.status == Status.PROPOSED and plan.step == med.DONE and plan.version == 1
        sched = json.loads(plan.schedule)
        assert sched["times"] == ["08:00", "20:00"] and sched["every_hours"] is None
        assert sched["days"] == [1, 2, 3, 4, 5, 6, 7]
        assert sched["start"] == "2026-03-02" and sched["end"] == "2026-03-31"
        # What the medicine is stays ciphertext; the timing is plain for the scheduler.
        assert plan.details_enc is not None and MEDICINE.encode() not in plan.details_enc
        assert b"capsules" not in plan.details_enc
        assert (await med.details(uow, plan)) == {"name": MEDICINE, "dose": DOSE, "food": "with"}
        assert await pending_dose_events(uow, plan) == []  # nothing before the patient confirms
        await med.confirm(uow, patient, plan.id, 1, T0)
        assert plan.status == Status.ACTIVE and plan.confirmed_at == T0
        [event] = await pending_dose_events(uow, plan)
        [dose] = await pending_doses(uow, plan)
        assert dose.local == "2026-03-02 08:00"
        assert local(dose.due_at, "Europe/Berlin") == "2026-03-02 08:00"
        assert timedelta(0) <= aware(event.due_at) - aware(dose.due_at) < timedelta(minutes=1)
        assert event.kind == doses.KIND and event.subject == dose.id
        # Confirming twice is stale, nothing is scheduled twice.
        with pytest.raises(NotAllowed):
            await med.confirm(uow, patient, plan.id, 1, T0)
        assert len(await pending_dose_events(uow, plan)) == 1
        log = await actions(uow)
        dref, pref = f"doctor:{doctor.id}", f"patient:{patient.id}"
        for entry in (
            (dref, "medplan.draft"),
            (dref, "medplan.step"),
            (dref, "medplan.propose"),
            (pref, "medplan.confirm"),
        ):
            assert entry in log, entry
        details = [
            r.details
            for r in await uow.session.scalars(select(AuditRecord))
            if r.action.startswith("medplan")
        ]
        assert MEDICINE not in json.dumps(details)
        await uow.commit()


async def test_every_bad_input_keeps_the_step(db: Database) -> None:
    async with db.uow() as uow:
        _, doctor, case = await people(uow)
        plan = await med.begin(uow, doctor, case, T0)
        for bad, msgid in (("   ", "meds.plan.empty"), ("x" * 201, "meds.plan.too_long")):
            with pytest.raises(BadInput) as err:
                await med.answer(uow, doctor, plan, bad, T0)
            assert err.value.msgid == msgid and plan.step == "name"
        await med.answer(uow, doctor, plan, MEDICINE, T0)
        await med.answer(uow, doctor, plan, DOSE, T0)
        for bad, msgid in (
            ("25:00", "timing.error.bad_time"),
            ("50 times a day", "timing.error.too_many"),
            ("whenever", "timing.error.bad_time"),
            ("every 5 hours", "timing.error.bad_interval"),
        ):
            with pytest.raises(BadInput) as err:
                await med.answer(uow, doctor, plan, bad, T0)
            assert err.value.msgid == msgid, bad
            assert plan.step == "times"
        assert await med.answer(uow, doctor, plan, "8 pm", T0) == "days"
        assert (await med.draft_values(uow, plan))["times"] == ["20:00"]
        with pytest.raises(BadInput) as err:
            await med.answer(uow, doctor, plan, "someday", T0)
        assert err.value.msgid == "timing.error.bad_days" and plan.step == "days"
        # A button of another step is stale and changes nothing.
        with pytest.raises(NotAllowed):
            await med.choose(uow, doctor, plan.id, "food", "with", T0)
        assert await med.answer(uow, doctor, plan, "Mon, Wed, Fri", T0) == "period"
        for bad, msgid in (
            ("until 2020-01-01", "timing.error.end_before_start"),
            ("from 2026-04-10 to 2026-04-01", "timing.error.end_before_start"),
            ("for a while", "timing.error.bad_period"),
        ):
            with pytest.raises(BadInput) as err:
                await med.answer(uow, doctor, plan, bad, T0)
            assert err.value.msgid == msgid, bad
            assert plan.step == "period"
        assert await med.answer(uow, doctor, plan, "until 2026-12-31", T0) == "food"
        with pytest.raises(BadInput) as err:
            await med.answer(uow, doctor, plan, "with dinner", T0)
        assert err.value.msgid == "meds.plan.use_buttons" and plan.step == "food"
        with pytest.raises(NotAllowed):
            await med.choose(uow, doctor, plan.id, "food", "with wine", T0)
        plan, step = await med.choose(uow, doctor, plan.id, "food", "none", T0)
        assert step == med.REVIEW
        draft = await med.draft_values(uow, plan)
        assert draft["days"] == [1, 3, 5] and draft["end"] == "2026-12-31"
        # At review, typing is not an answer either.
        with pytest.raises(BadInput):
            await med.answer(uow, doctor, plan, "send it", T0)
        await uow.commit()


async def test_chinese_times_and_every_n_hours(db: Database) -> None:
    async with db.uow() as uow:
        _, doctor, case = await people(uow)
        plan = await through_wizard(uow, doctor, case, times="早上八点", period="ongoing")
        draft = await med.draft_values(uow, plan)
        assert draft["times"] == ["08:00"] and draft["end"] is None
        await med.cancel_wizard(uow, doctor, T0)
        plan = await through_wizard(uow, doctor, case, times="every 8 hours", days="weekdays")
        draft = await med.draft_values(uow, plan)
        assert draft["every_hours"] == 8 and draft["days"] == [1, 2, 3, 4, 5]
        await uow.commit()


async def test_one_draft_per_doctor_cancel_and_refusals(db: Database) -> None:
    async with db.uow() as uow:
        patient, doctor, case = await people(uow)
        plan = await med.begin(uow, doctor, case, T0)
        with pytest.raises(NotAllowed) as no:
            await med.begin(uow, doctor, case, T0)
        assert no.value.reason == "draft_open" and no.value.plan is plan
        assert await med.wizard_of(uow, doctor) is plan
        dropped = await med.cancel_wizard(uow, doctor, T0)
        assert dropped is plan and plan.status == Status.CANCELLED and plan.step == med.DONE
        assert await med.wizard_of(uow, doctor) is None
        assert await med.cancel_wizard(uow, doctor, T0) is None
        # Buttons of the dropped draft are stale.
        with pytest.raises(NotAllowed):
            await med.choose(uow, doctor, plan.id, "name", "x", T0)
        # Another doctor's case: refused and audited.
        other = await uow.doctors.add(
            Doctor(
                tg_user_id=7777,
                locale="en",
                status="verified",
                verified_until=T0 + timedelta(days=30),
                departments="general",
            )
        )
        with pytest.raises(NotAllowed) as no:
            await med.begin(uow, other, case, T0)
        assert no.value.reason == "not_yours"
        assert (f"doctor:{other.id}", "medplan.refused") in await actions(uow)
        # Nor may they end or change this doctor's plans.
        _, _, sent = await _send_again(uow, doctor, case)
        for act in (med.end, med.begin_change):
            with pytest.raises(NotAllowed):
                await act(uow, other, sent.id, T0)
        # An unverified (suspended) doctor cannot start one.
        doctor.status = "suspended"
        with pytest.raises(NotAllowed) as no:
            await med.begin(uow, doctor, case, T0)
        assert no.value.reason == "unverified"
        # A closed case of their own is fine (the patient is under their care).
        doctor.status = "verified"
        case.state = "closed"
        assert (await med.begin(uow, doctor, case, T0)).patient_id == patient.id
        await uow.commit()


async def _send_again(
    uow: UnitOfWork, doctor: Doctor, case: Consultation
) -> tuple[None, None, MedicationPlan]:
    plan = await through_wizard(uow, doctor, case)
    plan, _ = await med.send(uow, doctor, plan.id, T0)
    return None, None, plan


# -- the patient ------------------------------------------------------------------------------


async def test_decline_with_reason_and_stale_versions(db: Database) -> None:
    async with db.uow() as uow:
        patient, _, plan = await sent_plan(uow)
        with pytest.raises(NotAllowed):
            await med.decline(uow, patient, plan.id, 2, None, T0)  # no such version
        with pytest.raises(BadInput):
            await med.decline(uow, patient, plan.id, 1, "x" * 501, T0)
        assert plan.status == Status.PROPOSED
        stranger = await uow.patients.add(
            Patient(tg_user_id=4242, locale="en", onboarding_state="done", consent_version="1")
        )
        with pytest.raises(NotAllowed):
            await med.decline(uow, stranger, plan.id, 1, None, T0)
        await med.decline(uow, patient, plan.id, 1, "I already take something similar", T0)
        assert plan.status == Status.DECLINED
        assert b"similar" not in (plan.details_enc or b"")
        assert (await med.details(uow, plan))["decline_reason"].endswith("similar")
        with pytest.raises(NotAllowed):
            await med.confirm(uow, patient, plan.id, 1, T0)
        assert await pending_dose_events(uow, plan) == []
        assert (f"patient:{patient.id}", "medplan.decline") in await actions(uow)
        await uow.commit()


async def test_pause_and_resume(db: Database) -> None:
    async with db.uow() as uow:
        patient, _, plan = await sent_plan(uow)
        await med.confirm(uow, patient, plan.id, 1, T0)
        assert len(await pending_dose_events(uow, plan)) == 1
        await med.pause(uow, patient, plan.id, 1, T0 + timedelta(minutes=5))
        assert plan.status == Status.PAUSED and plan.paused_at is not None
        assert await pending_dose_events(uow, plan) == []
        with pytest.raises(NotAllowed):
            await med.pause(uow, patient, plan.id, 1, T0)
        # Resumed at 10:00 Berlin: the next reminder is 20:00 (08:00 is not made up).
        later = T0 + timedelta(hours=3)
        await med.resume(uow, patient, plan.id, 1, later)
        assert plan.status == Status.ACTIVE and plan.paused_at is None
        [dose] = await pending_doses(uow, plan)
        assert dose.local == "2026-03-02 20:00"
        assert len(await pending_dose_events(uow, plan)) == 1
        log = await actions(uow)
        assert (f"patient:{patient.id}", "medplan.pause") in log
        assert (f"patient:{patient.id}", "medplan.resume") in log
        await uow.commit()


async def test_confirm_after_the_plan_ended_is_refused(db: Database) -> None:
    async with db.uow() as uow:
        patient, _, plan = await sent_plan(uow, period="7")
        with pytest.raises(NotAllowed) as no:
            await med.confirm(uow, patient, plan.id, 1, T0 + timedelta(days=10))
        assert no.value.reason == "over" and plan.status == Status.PROPOSED
        await uow.commit()


# -- change and end ---------------------------------------------------------------------------


async def test_change_makes_a_new_version_and_old_buttons_stale(db: Database) -> None:
    async with db.uow() as uow:
        patient, doctor, plan = await sent_plan(uow)
        await med.confirm(uow, patient, plan.id, 1, T0)
        [old_dose] = await pending_doses(uow, plan)
        # Change: prefilled, straight to review; the plan keeps working meanwhile.
        await med.begin_change(uow, doctor, plan.id, T0)
        assert plan.step == med.REVIEW and plan.status == Status.ACTIVE
        draft = await med.draft_values(uow, plan)
        assert draft["name"] == MEDICINE and draft["times"] == ["08:00", "20:00"]
        assert len(await pending_dose_events(uow, plan)) == 1
        with pytest.raises(NotAllowed):  # one wizard at a time
            await med.begin_change(uow, doctor, plan.id, T0)
        await med.goto(uow, doctor, plan.id, "times", T0)
        assert plan.step == "times"
        assert await med.answer(uow, doctor, plan, "09:00", T0) == med.REVIEW
        await med.goto(uow, doctor, plan.id, "dose", T0)
        await med.keep(uow, doctor, plan.id, T0)  # the dose stays as it was
        assert plan.step == med.REVIEW
        plan, changed = await med.send(uow, doctor, plan.id, T0)
        assert changed and plan.version == 2 and plan.status == Status.PROPOSED
        assert json.loads(plan.schedule)["times"] == ["09:00"]
        assert (await med.details(uow, plan))["dose"] == DOSE
        # The old reminder is gone; the old card's Confirm is stale.
        assert await pending_dose_events(uow, plan) == []
        assert await uow.session.get(Dose, old_dose.id) is None or old_dose.status != "pending"
        with pytest.raises(NotAllowed):
            await med.confirm(uow, patient, plan.id, 1, T0)
        await med.confirm(uow, patient, plan.id, 2, T0)
        [dose] = await pending_doses(uow, plan)
        assert dose.local == "2026-03-02 09:00" and dose.plan_version == 2
        assert (f"doctor:{doctor.id}", "medplan.change") in await actions(uow)
        await uow.commit()


async def test_abandoned_change_leaves_the_plan(db: Database) -> None:
    async with db.uow() as uow:
        patient, doctor, plan = await sent_plan(uow)
        await med.confirm(uow, patient, plan.id, 1, T0)
        await med.begin_change(uow, doctor, plan.id, T0)
        await med.goto(uow, doctor, plan.id, "name", T0)
        await med.answer(uow, doctor, plan, "Something else 1 mg", T0)
        back = await med.cancel_wizard(uow, doctor, T0)
        assert back is plan and plan.status == Status.ACTIVE and plan.version == 1
        assert plan.step == med.DONE
        assert (await med.details(uow, plan))["name"] == MEDICINE
        assert "draft" not in await med.details(uow, plan)
        assert len(await pending_dose_events(uow, plan)) == 1
        await uow.commit()


async def test_end_stops_reminders(db: Database) -> None:
    async with db.uow() as uow:
        patient, doctor, plan = await sent_plan(uow)
        await med.confirm(uow, patient, plan.id, 1, T0)
        assert [p.id for p in await med.doctor_plans(uow, doctor, patient.id, T0)] == [plan.id]
        await med.end(uow, doctor, plan.id, T0)
        assert plan.status == Status.ENDED and plan.ended_at == T0
        assert await pending_dose_events(uow, plan) == []
        assert await med.doctor_plans(uow, doctor, patient.id, T0) == []
        with pytest.raises(NotAllowed):
            await med.end(uow, doctor, plan.id, T0)
        with pytest.raises(NotAllowed):
            await med.resume(uow, patient, plan.id, 1, T0)
        await uow.commit()


# -- time zone, shift, quiet hours ------------------------------------------------------------


async def test_zone_and_shift_replan_through_doses(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real_start, real_stop = doses.start, doses.stop

    async def spy_start(uow: UnitOfWork, plan: MedicationPlan, patient: Patient, now: Any) -> None:
        calls.append(("start", plan.id))
        await real_start(uow, plan, patient, now)

    async def spy_stop(uow: UnitOfWork, plan: MedicationPlan, now: Any) -> None:
        calls.append(("stop", plan.id))
        await real_stop(uow, plan, now)

    monkeypatch.setattr(doses, "start", spy_start)
    monkeypatch.setattr(doses, "stop", spy_stop)
    async with db.uow() as uow:
        patient, doctor, plan = await sent_plan(uow)
        await med.confirm(uow, patient, plan.id, 1, T0)
        # A paused plan is not re-planned, but it is shifted too.
        _, _, second = await _send_again(uow, doctor, await med.case_of(uow, plan))  # type: ignore[arg-type]
        await med.confirm(uow, patient, second.id, 1, T0)
        await med.pause(uow, patient, second.id, 1, T0)
        calls.clear()
        zone = await med.set_zone(uow, patient, "Asia/Shanghai", T0)
        assert zone == "Asia/Shanghai" and patient.timezone == "Asia/Shanghai"
        assert calls == [("stop", plan.id), ("start", plan.id)]
        [dose] = await pending_doses(uow, plan)
        # 06:00 UTC is 14:00 in Shanghai: the next dose is 20:00 there.
        assert dose.local == "2026-03-02 20:00"
        assert local(dose.due_at, "Asia/Shanghai") == "2026-03-02 20:00"
        with pytest.raises(BadInput) as err:
            await med.set_zone(uow, patient, "Mars/Olympus", T0)
        assert err.value.msgid == "timing.error.bad_zone" and patient.timezone == "Asia/Shanghai"
        calls.clear()
        assert await med.shift(uow, patient, 60, T0) == 60
        assert plan.shift_minutes == 60 and second.shift_minutes == 60
        assert calls == [("stop", plan.id), ("start", plan.id)]
        [dose] = await pending_doses(uow, plan)
        # The label stays the prescribed time; the reminder comes an hour later.
        assert dose.local == "2026-03-02 20:00"
        assert local(dose.due_at, "Asia/Shanghai") == "2026-03-02 21:00"
        assert await med.shift(uow, patient, -120, T0) == -60
        with pytest.raises(BadInput):
            await med.shift(uow, patient, -700, T0)  # -60 - 700 is over 12 h
        assert plan.shift_minutes == -60
        [dose] = await pending_doses(uow, plan)
        assert local(dose.due_at, "Asia/Shanghai") == "2026-03-02 19:00"
        assert await med.shift(uow, patient, 0, T0, by=False) == 0
        [dose] = await pending_doses(uow, plan)
        assert local(dose.due_at, "Asia/Shanghai") == "2026-03-02 20:00"
        view = await med.view(uow, plan)
        assert view.times == ("08:00", "20:00")
        log = await actions(uow)
        assert (f"patient:{patient.id}", "medplan.zone") in log
        assert (f"patient:{patient.id}", "medplan.shift") in log
        await uow.commit()


async def test_quiet_hours(db: Database) -> None:
    async with db.uow() as uow:
        patient, _, _ = await people(uow)
        assert await med.set_quiet(uow, patient, "22:00-07:00") == ("22:00", "07:00")
        assert (patient.quiet_start, patient.quiet_end) == ("22:00", "07:00")
        with pytest.raises(BadInput):
            await med.set_quiet(uow, patient, "25:00-07:00")
        assert patient.quiet_start == "22:00"
        assert await med.set_quiet(uow, patient, "off") is None
        assert patient.quiet_start is None and patient.quiet_end is None
        await uow.commit()


# -- FHIR -------------------------------------------------------------------------------------


async def test_fhir_export_validates(db: Database) -> None:
    async with db.uow() as uow:
        patient, doctor, plan = await sent_plan(uow, days="Mon, Wed, Fri", period="30")
        await med.confirm(uow, patient, plan.id, 1, T0)
        _, data = await med.export(uow, patient, plan.id, T0)
        bundle = json.loads(data)
        Bundle.model_validate(bundle)
        [entry] = bundle["entry"]
        request = entry["resource"]
        MedicationRequest.model_validate(request)
        assert request["status"] == "active" and request["intent"] == "order"
        assert request["medicationCodeableConcept"]["text"] == MEDICINE
        assert request["requester"]["reference"] == f"Practitioner/{doctor.id}"
        assert request["subject"]["reference"] == f"Patient/{patient.id}"
        [dosage] = request["dosageInstruction"]
        assert dosage["text"] == DOSE
        repeat = dosage["timing"]["repeat"]
        assert repeat["timeOfDay"] == ["08:00:00", "20:00:00"]
        assert repeat["dayOfWeek"] == ["mon", "wed", "fri"]
        assert repeat["boundsPeriod"] == {"start": "2026-03-02", "end": "2026-03-31"}
        assert dosage["additionalInstruction"][0]["coding"][0]["code"] == "with"
        assert (f"patient:{patient.id}", "medplan.export") in await actions(uow)
        # Every 8 hours: frequency/period/periodUnit, no timeOfDay, no dayOfWeek (every day).
        case = await med.case_of(uow, plan)
        assert case is not None
        every = await through_wizard(uow, doctor, case, times="every 8 hours", period="ongoing")
        every, _ = await med.send(uow, doctor, every.id, T0)
        _, data = await med.export(uow, patient, every.id, T0)
        request = json.loads(data)["entry"][0]["resource"]
        MedicationRequest.model_validate(request)
        repeat = request["dosageInstruction"][0]["timing"]["repeat"]
        assert repeat["frequency"] == 1 and repeat["period"] == 8 and repeat["periodUnit"] == "h"
        assert "timeOfDay" not in repeat and "dayOfWeek" not in repeat
        assert repeat["boundsPeriod"] == {"start": "2026-03-02"}
        assert request["status"] == "draft"
        # Someone else's plan cannot be exported.
        stranger = await uow.patients.add(
            Patient(tg_user_id=4343, locale="en", onboarding_state="done", consent_version="1")
        )
        with pytest.raises(NotAllowed):
            await med.export(uow, stranger, plan.id, T0)
        await uow.commit()


def test_local_today_uses_the_patient_zone() -> None:
    late = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    assert med.local_today(Patient(timezone="Asia/Shanghai"), late) == date(2026, 3, 3)
    assert med.local_today(Patient(timezone="Bad/Zone"), late) == date(2026, 3, 2)
    assert med.local_today(None, late) == date(2026, 3, 2)


async def test_a_new_plan_takes_the_clinics_escalation_ladder(db: Database) -> None:
    async with db.uow() as uow:
        _, doctor, case = await people(uow)
        default = await med.begin(uow, doctor, case, T0)
        assert (
            default.again_after_min,
            default.caregiver_after_min,
            default.doctor_after_min,
        ) == (30, 60, 120)
        await med.cancel_wizard(uow, doctor, T0)
        custom = await med.begin(uow, doctor, case, T0, (10, 45, 90))
        assert (custom.again_after_min, custom.caregiver_after_min, custom.doctor_after_min) == (
            10,
            45,
            90,
        )
