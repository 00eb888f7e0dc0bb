"""Follow-up plans, check-ins, readings and care alerts (flows/followup.py, flows/alerts.py),
on SQLite and PostgreSQL with the real vault, outbox and audit chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from flows import alerts
from flows import consultation as cases
from storage.models import (
    AuditRecord,
    CareAlert,
    Consultation,
    Doctor,
    FollowUpPlan,
    Intake,
    OutboxMessage,
    Patient,
)
from storage.uow import Database, UnitOfWork

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ANSWERS = {"subject": "self", "category": "cough_cold", "complaint_text": "cough"}


async def _patient(uow: UnitOfWork, tg: int, tz: str = "Europe/Berlin") -> Patient:
    patient = await uow.patients.add(
        Patient(
            tg_user_id=tg, locale="en", onboarding_state="done", consent_version="1", timezone=tz
        )
    )
    await uow.patients.set_field(patient, "name", "Mira Example")
    await uow.patients.set_field(patient, "birth_year", "1960")
    return patient


async def _doctor(uow: UnitOfWork, tg: int) -> Doctor:
    return await uow.doctors.add(
        Doctor(
            tg_user_id=tg,
            locale="en",
            status="verified",
            verified_until=T0 + timedelta(days=400),
            departments="general",
        )
    )


async def _case(uow: UnitOfWork, patient: Patient, doctor: Doctor) -> Consultation:
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
    await cases.accept(uow, doctor, case.id, now=T0, jurisdiction="generic")
    return case


async def _sent(uow: UnitOfWork, bot: str, chat_id: int) -> list[tuple[dict, int]]:
    rows = await uow.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.bot == bot, OutboxMessage.chat_id == chat_id)
        .order_by(OutboxMessage.id)
    )
    out = []
    for row in rows:
        assert row.payload_enc is not None
        params = await uow.outbox.params(row)
        out.append((params, row.priority))
    return out


async def _actions(uow: UnitOfWork) -> list[tuple[str, str]]:
    rows = await uow.session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
    return [(r.actor, r.action) for r in rows]


# --- care alerts --------------------------------------------------------------------------------


async def test_alert_goes_to_the_doctor_with_tag_and_button_and_is_acknowledged(
    db: Database,
) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor, other = await _doctor(uow, 100), await _doctor(uow, 101)
        case = await _case(uow, patient, doctor)
        alert = await alerts.raise_alert(
            uow,
            patient_id=patient.id,
            doctor_id=doctor.id,
            kind="reading",
            ref_id="r1",
            level="alert",
            msgid="care.kind.reading",
            params={},
            now=T0,
        )
        danger = await alerts.raise_alert(
            uow,
            patient_id=patient.id,
            doctor_id=doctor.id,
            kind="reading",
            ref_id="r2",
            level="danger",
            msgid="care.kind.reading",
            params={},
            now=T0 + timedelta(minutes=1),
        )
        sent = await _sent(uow, "doctor", 100)
        assert len(sent) == 2
        (first, prio1), (second, prio2) = sent
        assert first["text"].startswith(f"<b>#{case.number} · Mira · ")
        assert "Example" not in first["text"]  # first name only
        assert prio1 > prio2 == alerts.PRIORITY_URGENT
        button = first["reply_markup"]["inline_keyboard"][0][0]
        assert button["callback_data"] == f"ca:ack:{alert.id}"
        assert "URGENT" in second["text"]
        # danger first in the open list
        assert [a.id for a in await alerts.open_for(uow, doctor.id)] == [danger.id, alert.id]
        assert await alerts.open_for(uow, other.id) == []
        with pytest.raises(alerts.NotAllowed) as no:
            await alerts.ack(uow, other, alert.id, T0)
        assert no.value.reason == "not_yours"
        await alerts.ack(uow, doctor, alert.id, T0 + timedelta(hours=1))
        with pytest.raises(alerts.NotAllowed) as no:
            await alerts.ack(uow, doctor, alert.id, T0 + timedelta(hours=1))
        assert no.value.reason == "acked"
        assert [a.id for a in await alerts.open_for(uow, doctor.id)] == [danger.id]
        log = await _actions(uow)
        assert ("system", "care.alert") in log
        assert (f"doctor:{doctor.id}", "care.alert.ack") in log
        assert (f"doctor:{other.id}", "care.alert.refused") in log
        await uow.commit()


async def test_under_care_by_case_or_plan(db: Database) -> None:
    async with db.uow() as uow:
        patient, stranger = await _patient(uow, 1), await _patient(uow, 2)
        doctor, planner, nobody = (
            await _doctor(uow, 100),
            await _doctor(uow, 101),
            await _doctor(uow, 102),
        )
        await _case(uow, patient, doctor)
        uow.session.add(
            FollowUpPlan(patient_id=stranger.id, doctor_id=planner.id, template="general")
        )
        await uow.session.flush()
        assert await alerts.under_care(uow, doctor.id, patient.id)
        assert not await alerts.under_care(uow, doctor.id, stranger.id)
        assert await alerts.under_care(uow, planner.id, stranger.id)
        assert not await alerts.under_care(uow, nobody.id, patient.id)
        await uow.commit()


async def test_ack_hook_runs_for_its_kind(db: Database) -> None:
    seen: list[str] = []

    @alerts.on_ack("test_kind")
    async def _hook(uow: UnitOfWork, alert: CareAlert, doctor: Doctor, now: datetime) -> None:
        seen.append(alert.ref_id)

    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor = await _doctor(uow, 100)
        alert = await alerts.raise_alert(
            uow, patient_id=patient.id, doctor_id=doctor.id, kind="test_kind", ref_id="x9",
            level="alert", msgid="care.kind.other", params={}, now=T0,
        )  # fmt: skip
        await alerts.ack(uow, doctor, alert.id, T0)
        assert seen == ["x9"]
        # without a case the tag is the first name and age band
        sent = await _sent(uow, "doctor", 100)
        assert sent[0][0]["text"].startswith("<b>Mira · ")
        await uow.commit()
