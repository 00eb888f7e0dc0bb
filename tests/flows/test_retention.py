"""Erasure with consultations (DESIGN.md §6), on SQLite and PostgreSQL with the real vault and
scheduler: a record a doctor took part in outlives the patient under a key of its own, its chat
goes at ``chat_until`` and the rest at ``record_until``; open cases are cancelled first (the
doctor of an active one is told); a case no doctor touched goes at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from flows import consultation as cases
from flows import privacy, retention
from flows.consultation import State
from flows.retention import Policy, add_years, aware
from scheduler.sweeper import Sweeper
from storage.crypto import CryptoError
from storage.models import (
    AuditRecord,
    CaseMessage,
    Consultation,
    DataKey,
    Doctor,
    ScheduledEvent,
)
from storage.records import enc_columns
from storage.uow import Database, UnitOfWork
from tests.flows.test_fhir_communication import (
    ADVICE,
    ANSWERS,
    PHOTO,
    T0,
    active_case,
    waiting_case,
)


@dataclass
class Ids:
    patient: str
    doctor: str
    case: str


async def _erase(
    db: Database, patient_id: str, *, now: datetime = T0, policy: Policy | None = None
) -> tuple[bool, list[tuple[int, str, str]]]:
    told: list[tuple[int, str, str]] = []

    async def notify(case: Consultation, doctor: Doctor, name: str) -> None:
        told.append((case.number, doctor.id, name))

    async with db.uow() as uow:
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        kept = await privacy.erase(
            uow, patient, bot="patient", now=now, policy=policy, notify=notify
        )
        await uow.commit()
    return kept, told


async def _patient_gone(db: Database, patient_id: str, saved: dict[str, bytes]) -> None:
    """The patient's row, intakes, reports and key are gone; nothing opens under the key."""
    async with db.uow() as uow:
        assert await uow.patients.get(patient_id) is None
        assert await uow.intakes.for_patient(patient_id) == []
        assert await uow.reports.for_patient(patient_id) == []
        key = await uow.session.get(DataKey, patient_id)
        assert key is not None and key.wrapped is None and key.destroyed_at is not None
        for what, blob in saved.items():
            table, column, row_id = what.split("|")
            with pytest.raises(CryptoError):
                await uow.vault.open_bytes(patient_id, table, column, row_id, blob)


async def _every_blob_opens_under_case_key(uow: UnitOfWork, case: Consultation) -> int:
    """Every ciphertext of the case and its messages opens under the case's own key (so
    nothing is left under the destroyed patient key); returns how many there were."""
    count = 0
    rows: list[tuple[Any, str, str]] = [(case, "consultations", case.id)]
    rows += [(m, "case_messages", str(m.id)) for m in await uow.consultations.messages(case)]
    for row, table, row_id in rows:
        for column in enc_columns(type(row)):
            blob = getattr(row, column)
            if blob is not None:
                await uow.vault.open_bytes(case.id, table, column, row_id, blob)
                count += 1
    return count


async def _get(uow: UnitOfWork, case_id: str) -> Consultation:
    case = await uow.consultations.get(case_id)
    assert case is not None, "the case is gone"
    return case


async def _purge_events(uow: UnitOfWork, case_id: str) -> list[ScheduledEvent]:
    return list(
        await uow.session.scalars(
            select(ScheduledEvent)
            .where(ScheduledEvent.kind == retention.PURGE, ScheduledEvent.subject == case_id)
            .order_by(ScheduledEvent.due_at)
        )
    )


async def test_closed_case_is_kept_under_its_own_key_then_purged(db: Database) -> None:
    async with db.uow() as uow:
        patient, doctor, case = await active_case(uow)
        closed_at = T0 + timedelta(hours=1)
        await cases.close(uow, doctor, case, ADVICE, now=closed_at, jurisdiction="generic")
        case.rating = 4
        case.rating_comment_enc = await uow.consultations.seal_text(
            case, "rating_comment_enc", "kind and quick"
        )
        ids = Ids(patient.id, doctor.id, case.id)
        saved = {"consultations|summary_enc|" + case.id: case.summary_enc or b""}
        for m in await uow.consultations.messages(case):
            if m.body_enc is not None:
                saved[f"case_messages|body_enc|{m.id}"] = m.body_enc
        await uow.commit()

    kept, told = await _erase(db, ids.patient, now=T0 + timedelta(days=2))
    assert kept is True and told == []  # a closed case has nobody to tell
    await _patient_gone(db, ids.patient, saved)

    chat_until = datetime(2027, 2, 28, 11, 0, tzinfo=UTC)  # closed_at + 3 years
    record_until = datetime(2039, 2, 28, 11, 0, tzinfo=UTC)  # closed_at + 15 years
    async with db.uow() as uow:
        case = await _get(uow, ids.case)
        assert case is not None and case.state == State.CLOSED
        assert case.key_owner == case.id and case.patient_id == ids.patient
        assert aware(case.chat_until or T0) == chat_until
        assert aware(case.record_until or T0) == record_until
        assert await uow.consultations.open_text(case, "summary_enc", case.summary_enc or b"") == (
            ADVICE
        )
        comment = await uow.consultations.open_text(
            case, "rating_comment_enc", case.rating_comment_enc or b""
        )
        assert comment == "kind and quick"
        messages = await uow.consultations.messages(case)
        texts = [await uow.consultations.message_text(case, m) for m in messages]
        assert texts == ["The cough keeps me awake", "the rash", "Any fever?", ADVICE]
        assert await uow.consultations.message_file(case, messages[1]) == PHOTO
        # summary, comment, record; four message texts and the photo
        assert await _every_blob_opens_under_case_key(uow, case) == 8
        record = await retention.open_record(uow, case)
        assert record is not None
        assert record["patient"] == {
            "id": ids.patient,
            "first_name": "Mira",
            "birth_year": "1980",
            "sex": "female",
        }
        assert record["intake"]["questionnaire_version"] == "2"
        assert record["intake"]["answers"] == ANSWERS
        events = await _purge_events(uow, ids.case)
        assert [(aware(e.due_at), e.patient_id, e.status) for e in events] == [
            (chat_until, ids.patient, "pending"),
            (record_until, ids.patient, "pending"),
        ]
        [erasure] = [
            r
            for r in await uow.session.scalars(select(AuditRecord))
            if r.action == "patient.erase"
        ]
        assert erasure.record_id == ids.patient and ids.case in erasure.details
        assert "Mira" not in erasure.details and "cough" not in erasure.details

    # Only the purge is this test's; the clinic-wide checks (ops.staffing) are not a patient's.
    async with db.uow() as uow:
        await uow.session.execute(
            delete(ScheduledEvent).where(ScheduledEvent.kind != retention.PURGE)
        )
        await uow.commit()
    sweeper = Sweeper(db, {retention.PURGE: retention.purge_event})
    assert await sweeper.sweep_once(chat_until - timedelta(days=1)) == 0
    assert await sweeper.sweep_once(chat_until + timedelta(seconds=1)) == 1
    async with db.uow() as uow:
        case = await _get(uow, ids.case)
        assert case is not None
        assert await uow.consultations.messages(case) == []
        assert await uow.consultations.open_text(case, "summary_enc", case.summary_enc or b"") == (
            ADVICE
        )
        assert await retention.open_record(uow, case) is not None
    assert await sweeper.sweep_once(record_until - timedelta(days=1)) == 0
    assert await sweeper.sweep_once(record_until + timedelta(seconds=1)) == 1
    assert sweeper.failed == 0
    async with db.uow() as uow:
        assert await uow.consultations.get(ids.case) is None
        assert (
            list(
                await uow.session.scalars(
                    select(CaseMessage).where(CaseMessage.consultation_id == ids.case)
                )
            )
            == []
        )
        key = await uow.session.get(DataKey, ids.case)
        assert key is not None and key.wrapped is None
        actions = [r.action for r in await uow.session.scalars(select(AuditRecord))]
        assert "retention.purge_chat" in actions and "retention.purge_record" in actions


async def test_active_case_is_cancelled_doctor_told_and_kept(db: Database) -> None:
    async with db.uow() as uow:
        patient, doctor, case = await active_case(uow)
        ids = Ids(patient.id, doctor.id, case.id)
        preview = await privacy.erasure_preview(uow, patient, Policy())
        assert preview == privacy.ErasurePreview(kept=[case.number], cancelled=[case.number])
        number = case.number
        await uow.commit()
    now = T0 + timedelta(hours=3)
    kept, told = await _erase(db, ids.patient, now=now)
    assert kept is True
    assert told == [(number, ids.doctor, "Mira")]
    await _patient_gone(db, ids.patient, {})
    async with db.uow() as uow:
        case = await _get(uow, ids.case)
        assert case is not None and case.state == State.CANCELLED
        assert case.doctor_id == ids.doctor and case.key_owner == case.id
        assert aware(case.closed_at or T0) == now
        assert aware(case.record_until or T0) == add_years(now, 15)
        assert len(await uow.consultations.messages(case)) == 3
        assert await _every_blob_opens_under_case_key(uow, case) == 5  # 3 texts, photo, record
        actions = [
            (r.actor, r.action, r.record_id)
            for r in await uow.session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        ]
        assert (f"patient:{ids.patient}", "consultation.cancel", ids.case) in actions


async def test_only_a_waiting_case_is_deleted_entirely(db: Database) -> None:
    async with db.uow() as uow:
        patient, _, case = await waiting_case(uow)
        ids = Ids(patient.id, "", case.id)
        assert (await privacy.erasure_preview(uow, patient, Policy())).kept == []
        await uow.commit()
    kept, told = await _erase(db, ids.patient)
    assert kept is False and told == []
    await _patient_gone(db, ids.patient, {})
    async with db.uow() as uow:
        assert await uow.consultations.get(ids.case) is None
        assert await uow.consultations.for_patient(ids.patient) == []
        events = await uow.session.scalars(
            select(ScheduledEvent).where(ScheduledEvent.patient_id == ids.patient)
        )
        assert list(events) == []  # the case's expiry and opening notices went too
        key = await uow.session.get(DataKey, ids.case)
        assert key is None  # no record, so no key of its own


async def test_a_transferred_case_keeps_what_its_first_doctor_said(db: Database) -> None:
    """Back in the queue the case has no doctor_id, but a doctor took part: it is kept."""
    async with db.uow() as uow:
        patient, doctor, case = await active_case(uow)
        await cases.transfer(
            uow, doctor, case, "cardiology", ("general", "cardiology"), now=T0, expiry_hours=24
        )
        assert case.doctor_id is None
        ids = Ids(patient.id, doctor.id, case.id)
        await uow.commit()
    kept, told = await _erase(db, ids.patient)
    assert kept is True and told == []  # waiting: no doctor to tell
    async with db.uow() as uow:
        case = await _get(uow, ids.case)
        assert case is not None and case.state == State.CANCELLED and case.key_owner == case.id


async def test_no_retention_keeps_nothing_and_zero_chat_years_drop_the_chat(
    db: Database,
) -> None:
    async with db.uow() as uow:
        a, doctor_a, case_a = await active_case(uow, tg=7101)
        b, doctor_b, case_b = await active_case(uow, tg=7102)
        await cases.close(uow, doctor_b, case_b, ADVICE, now=T0, jurisdiction="generic")
        ids_a, ids_b = Ids(a.id, doctor_a.id, case_a.id), Ids(b.id, doctor_b.id, case_b.id)
        await uow.commit()
    kept, told = await _erase(db, ids_a.patient, policy=Policy(record_years=0, chat_years=3))
    assert kept is False and len(told) == 1  # cancelled and told, then deleted
    kept, _ = await _erase(db, ids_b.patient, policy=Policy(record_years=15, chat_years=0))
    assert kept is True
    async with db.uow() as uow:
        assert await uow.consultations.get(ids_a.case) is None
        case = await _get(uow, ids_b.case)
        assert case is not None and case.key_owner == case.id
        assert await uow.consultations.messages(case) == []
        assert await uow.consultations.open_text(case, "summary_enc", case.summary_enc or b"") == (
            ADVICE
        )
        assert [aware(e.due_at) for e in await _purge_events(uow, ids_b.case)] == [
            add_years(T0, 15)
        ]


def test_add_years_on_a_leap_day() -> None:
    assert add_years(T0, 3) == datetime(2027, 2, 28, 10, 0, tzinfo=UTC)
    assert add_years(T0, 4) == datetime(2028, 2, 29, 10, 0, tzinfo=UTC)
    assert add_years(datetime(2025, 6, 1, tzinfo=UTC), 15) == datetime(2040, 6, 1, tzinfo=UTC)


async def test_erasure_removes_plans_doses_check_ins_readings_and_alerts(db: Database) -> None:
    """Chronic care goes with the patient: medication and follow-up plans, doses, check-ins,
    readings, care alerts and every reminder still scheduled."""
    from flows import doses, timing
    from storage.models import (
        CareAlert,
        CheckIn,
        Dose,
        FollowUpPlan,
        MedicationPlan,
        Reading,
    )

    async with db.uow() as uow:
        patient, doctor, _ = await waiting_case(uow)
        ids = Ids(patient.id, doctor.id, "")
        plan = MedicationPlan(
            patient_id=patient.id,
            doctor_id=doctor.id,
            status="active",
            step="done",
            schedule=timing.Schedule(times=("08:00",), start=T0.date()).to_json(),
        )
        uow.session.add(plan)
        await uow.session.flush()
        await doses.start(uow, plan, patient, T0)
        follow = FollowUpPlan(patient_id=patient.id, doctor_id=doctor.id, template="general")
        uow.session.add(follow)
        await uow.session.flush()
        uow.session.add(
            CheckIn(plan_id=follow.id, patient_id=patient.id, local="2026-01-01 09:00", due_at=T0)
        )
        sealed = await uow.vault.seal(patient.id, "readings", "value_enc", "r1", "185/115")
        uow.session.add(Reading(id="r1", patient_id=patient.id, kind="bp", value_enc=sealed))
        uow.session.add(
            CareAlert(patient_id=patient.id, doctor_id=doctor.id, kind="reading", ref_id="r1")
        )
        await uow.commit()
    async with db.uow() as uow:
        assert len(list(await uow.session.scalars(select(Dose)))) == 1
    await _erase(db, ids.patient)
    await _patient_gone(db, ids.patient, {"readings|value_enc|r1": sealed})
    async with db.uow() as uow:
        for model in (MedicationPlan, Dose, FollowUpPlan, CheckIn, Reading, CareAlert):
            assert list(await uow.session.scalars(select(model))) == [], model.__name__
        events = await uow.session.scalars(
            select(ScheduledEvent).where(ScheduledEvent.patient_id == ids.patient)
        )
        assert list(events) == []
