"""Ratings, abuse reports, blocks and appeals, and the patients' limits (flows/trust.py), on
SQLite and PostgreSQL with the real vault and audit chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from flows import consultation as cases
from flows import intake as intake_flow
from flows import trust
from flows.consultation import NotAllowed, State
from storage.models import AbuseReport, AuditRecord, Consultation, Doctor, Intake, Patient
from storage.uow import Database, UnitOfWork

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ADMIN = "admin:42"
ANSWERS = {"subject": "self", "category": "cough_cold", "complaint_text": "cough"}


async def _patient(uow: UnitOfWork, tg: int) -> Patient:
    patient = await uow.patients.add(
        Patient(tg_user_id=tg, locale="en", onboarding_state="done", consent_version="1")
    )
    await uow.patients.set_field(patient, "name", "Lio Testperson")
    return patient


async def _doctor(uow: UnitOfWork, tg: int, status: str = "verified") -> Doctor:
    return await uow.doctors.add(
        Doctor(
            tg_user_id=tg,
            locale="en",
            status=status,
            verified_until=T0 + timedelta(days=30),
            departments="general",
        )
    )


async def _case(uow: UnitOfWork, patient: Patient) -> Consultation:
    intake = await uow.intakes.add(
        Intake(
            patient_id=patient.id,
            state="triaged",
            questionnaire_version="2",
            disposition="consultation",
            department="general",
        ),
        ANSWERS,
    )
    case = await cases.request_for_intake(uow, patient, intake, ANSWERS, now=T0)
    assert case is not None
    return case


async def _active(uow: UnitOfWork, patient: Patient, doctor: Doctor) -> Consultation:
    case = await _case(uow, patient)
    await cases.accept(uow, doctor, case.id, now=T0, jurisdiction="generic")
    return case


async def _closed(uow: UnitOfWork, patient: Patient, doctor: Doctor) -> Consultation:
    case = await _active(uow, patient, doctor)
    await cases.close(uow, doctor, case, "Rest and fluids", now=T0, jurisdiction="generic")
    return case


async def _actions(uow: UnitOfWork) -> list[tuple[str, str]]:
    rows = await uow.session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
    return [(r.actor, r.action) for r in rows]


async def test_rating_once_per_ended_case_updates_the_average(db: Database) -> None:
    async with db.uow() as uow:
        patient, other = await _patient(uow, 1), await _patient(uow, 2)
        doctor = await _doctor(uow, 100)
        active = await _active(uow, patient, doctor)
        with pytest.raises(NotAllowed) as no:
            await trust.rate(uow, patient, active, 5, now=T0)
        assert no.value.reason == "state"  # not ended yet
        first = await _closed(uow, patient, doctor)
        with pytest.raises(NotAllowed) as no:
            await trust.rate(uow, other, first, 5, now=T0)
        assert no.value.reason == "not_yours"
        for bad in (0, 6, -1):
            with pytest.raises(NotAllowed):
                await trust.rate(uow, patient, first, bad, now=T0)
        await trust.rate(uow, patient, first, 5, now=T0)
        with pytest.raises(NotAllowed) as no:
            await trust.rate(uow, patient, first, 1, now=T0)
        assert no.value.reason == "rated"
        second = await _active(uow, patient, doctor)
        await cases.terminate(uow, doctor, second, now=T0)
        await trust.rate(uow, patient, second, 2, now=T0)
        assert trust.rating_of(doctor) == trust.Rating(3.5, 2)
        assert trust.rating_of(await _doctor(uow, 101)) == trust.Rating(None, 0)
        # the comment: once, kept encrypted, length-checked
        with pytest.raises(NotAllowed) as no:
            await trust.comment(uow, patient, first, "x" * (trust.COMMENT_MAX + 1), now=T0)
        assert no.value.reason == "too_long"
        with pytest.raises(NotAllowed):
            await trust.comment(uow, patient, first, "   ", now=T0)
        await trust.comment(uow, patient, first, "Very kind and clear", now=T0)
        assert first.rating_comment_enc is not None
        assert b"Very kind" not in first.rating_comment_enc
        assert await uow.consultations.open_text(
            first, "rating_comment_enc", first.rating_comment_enc
        ) == ("Very kind and clear")
        with pytest.raises(NotAllowed):
            await trust.comment(uow, patient, first, "again", now=T0)
        log = await _actions(uow)
        assert log.count((f"patient:{patient.id}", "consultation.rate")) == 2
        assert (f"patient:{patient.id}", "consultation.comment") in log
        await uow.commit()


async def test_report_uphold_blocks_and_cancels_open_cases_then_appeal_lifts(
    db: Database,
) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor, other = await _doctor(uow, 100), await _doctor(uow, 101)
        reported = await _active(uow, patient, doctor)
        waiting = await _case(uow, patient)
        # only the case's own doctor may report, with a reason of sensible length
        with pytest.raises(NotAllowed) as no:
            await trust.report(uow, other, reported, "rude", now=T0)
        assert no.value.reason == "not_yours"
        for bad in ("", "  ", "x" * (trust.REASON_MAX + 1)):
            with pytest.raises(NotAllowed):
                await trust.report(uow, doctor, reported, bad, now=T0)
        suspended = await _doctor(uow, 102, status="suspended")
        with pytest.raises(NotAllowed) as no:
            await trust.report(uow, suspended, reported, "rude", now=T0)
        assert no.value.reason == "unverified"
        report = await trust.report(uow, doctor, reported, "Insults in every message", now=T0)
        assert report.reason_enc is not None and b"Insults" not in report.reason_enc
        assert await uow.reports.text(report, "reason_enc") == "Insults in every message"
        with pytest.raises(NotAllowed) as no:
            await trust.report(uow, doctor, reported, "again", now=T0)
        assert no.value.reason == "already"
        # not blocked yet: nothing to appeal
        with pytest.raises(NotAllowed) as no:
            await trust.appeal(uow, patient, "why?", now=T0)
        assert no.value.reason == "not_blocked"

        # an intake in progress when the block lands is cancelled, so it cannot open a case
        midway = await uow.intakes.add(
            Intake(patient_id=patient.id, state="severity", questionnaire_version="2"), {}
        )
        decision = await trust.uphold(uow, report.id, ADMIN, now=T0)
        assert trust.is_blocked(patient) and patient.blocked_at == T0
        assert midway.state == "cancelled" and midway.completed_at is not None
        assert await intake_flow.open_intake(uow, patient) is None
        assert {c.id for c, _ in decision.cancelled} == {reported.id, waiting.id}
        assert reported.state == waiting.state == State.CANCELLED
        assert {c.id: d.id if d else None for c, d in decision.cancelled} == {
            reported.id: doctor.id,
            waiting.id: None,
        }
        with pytest.raises(NotAllowed) as no:
            await trust.uphold(uow, report.id, ADMIN, now=T0)
        assert no.value.reason == "decided"
        # a blocked patient's intake opens no case
        intake = await uow.intakes.add(
            Intake(
                patient_id=patient.id,
                state="triaged",
                questionnaire_version="2",
                disposition="consultation",
                department="general",
            ),
            ANSWERS,
        )
        assert await cases.request_for_intake(uow, patient, intake, ANSWERS, now=T0) is None

        with pytest.raises(NotAllowed):
            await trust.appeal(uow, patient, "  ", now=T0)
        appealed = await trust.appeal(uow, patient, "I was frightened, I am sorry", now=T0)
        assert appealed.id == report.id and appealed.status == trust.APPEALED
        assert await uow.reports.text(appealed, "appeal_enc") == "I was frightened, I am sorry"
        with pytest.raises(NotAllowed) as no:
            await trust.appeal(uow, patient, "once more", now=T0)
        assert no.value.reason == "already"
        await trust.lift(uow, report.id, ADMIN, now=T0)
        assert not trust.is_blocked(patient)
        with pytest.raises(NotAllowed):
            await trust.keep_blocked(uow, report.id, ADMIN, now=T0)
        log = await _actions(uow)
        for entry in (
            (ADMIN, "intake.cancel"),
            (f"doctor:{doctor.id}", "report.file"),
            (f"doctor:{other.id}", "report.refused"),
            (ADMIN, "report.uphold"),
            (ADMIN, "patient.block"),
            (ADMIN, "consultation.cancel"),
            (f"patient:{patient.id}", "report.appeal"),
            (ADMIN, "patient.unblock"),
            (ADMIN, "report.lift"),
        ):
            assert entry in log, entry
        await uow.commit()


async def test_dismiss_and_refused_appeal_keep_things_as_they_are(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor = await _doctor(uow, 100)
        case = await _active(uow, patient, doctor)
        first = await trust.report(uow, doctor, case, "Spam", now=T0)
        decision = await trust.dismiss(uow, first.id, ADMIN, now=T0)
        assert decision.cancelled == [] and first.status == trust.DISMISSED
        assert not trust.is_blocked(patient) and case.state == State.ACTIVE
        # a dismissed report cannot be upheld later, nor appealed
        with pytest.raises(NotAllowed):
            await trust.uphold(uow, first.id, ADMIN, now=T0)
        second = await trust.report(uow, doctor, case, "Threats", now=T0)
        await trust.uphold(uow, second.id, ADMIN, now=T0)
        await trust.appeal(uow, patient, "Please reconsider", now=T0)
        await trust.keep_blocked(uow, second.id, ADMIN, now=T0)
        assert second.status == trust.UPHELD and trust.is_blocked(patient)
        with pytest.raises(NotAllowed) as no:
            await trust.appeal(uow, patient, "And again", now=T0)
        assert no.value.reason == "already"  # one appeal per block
        with pytest.raises(NotAllowed):
            await trust.lift(uow, "f" * 32, ADMIN, now=T0)  # unknown report
        await uow.commit()


async def test_lifting_one_appeal_leaves_another_upheld_block_in_place(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        one, two = await _doctor(uow, 100), await _doctor(uow, 101)
        case_one = await _active(uow, patient, one)
        case_two = await _case(uow, patient)
        await cases.accept(uow, two, case_two.id, now=T0, jurisdiction="generic")
        r1 = await trust.report(uow, one, case_one, "Abuse", now=T0)
        r2 = await trust.report(uow, two, case_two, "Abuse too", now=T0)
        await trust.uphold(uow, r1.id, ADMIN, now=T0)
        await trust.uphold(uow, r2.id, ADMIN, now=T0)
        appealed = await trust.appeal(uow, patient, "Sorry", now=T0)
        await trust.lift(uow, appealed.id, ADMIN, now=T0)
        assert trust.is_blocked(patient)  # the other upheld report still stands
        await uow.commit()


async def test_limits_count_open_cases_and_messages_of_the_last_minute(db: Database) -> None:
    async with db.uow() as uow:
        patient, other = await _patient(uow, 1), await _patient(uow, 2)
        doctor = await _doctor(uow, 100)
        assert await trust.may_open_case(uow, patient, 1)
        case = await _active(uow, patient, doctor)
        assert not await trust.may_open_case(uow, patient, 1)
        assert await trust.may_open_case(uow, patient, 2)
        assert await trust.may_open_case(uow, other, 1)
        now = datetime.now(UTC)  # message rows are stamped with the real clock
        for i in range(3):
            await cases.patient_says(uow, patient, case, f"message {i}", now=now)
        await cases.doctor_says(uow, doctor, case, "noted", now=now, jurisdiction="generic")
        assert await trust.over_message_rate(uow, patient, 3, now)
        assert not await trust.over_message_rate(uow, patient, 4, now)
        assert not await trust.over_message_rate(uow, other, 1, now)
        # a minute later the window is empty again
        assert not await trust.over_message_rate(uow, patient, 3, now + timedelta(seconds=61))
        await cases.close(uow, doctor, case, "Done", now=now, jurisdiction="generic")
        assert await trust.may_open_case(uow, patient, 1)
        await uow.commit()


async def test_reports_are_erased_with_the_patient_key(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor = await _doctor(uow, 100)
        case = await _active(uow, patient, doctor)
        await trust.report(uow, doctor, case, "Abuse", now=T0)
        await uow.reports.delete_for_patient(patient.id)
        await uow.session.flush()
        assert not list(await uow.session.scalars(select(AbuseReport)))
        await uow.commit()
