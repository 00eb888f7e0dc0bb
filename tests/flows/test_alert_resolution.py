"""A care alert is resolved when its cause is (flows/alerts.py with flows/doses.py and
flows/followup.py), on SQLite and PostgreSQL through the real sweeper on a fake clock: a dose
nobody answered and then taken late (by the patient, or a caregiver's "They took it") closes
the doctor's alert with the resolution audited and the doctor told once; alerts of other
causes stay open; resolving twice changes nothing; a check-in answered after a run of missed
ones closes that alert; /alerts shows each open alert with what happened and since when."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from flows import alerts, followup
from flows import doses as flow
from locales import Translator
from storage.audit import verify_chain
from storage.models import AuditRecord, CareAlert, Dose
from storage.uow import Database
from tests.flows.test_doses import (
    CARER_TG,
    DOCTOR_TG,
    MEDICINE,
    _alerts,
    _answer,
    _ladder_setup,
    _sent,
    _sweep,
    utc,
)
from tests.flows.test_followup import T0, _checkins, _doctor, _enrol, _patient, _Sim

EN = Translator("en")
ALERT_AT = utc(2026, 12, 3, 10, 2)  # the 08:00 dose, unanswered for two hours


async def _unanswered(db: Database) -> tuple[str, str, str]:
    """The 08:00 dose went up the whole ladder: the doctor has an open "not answered" alert.
    Returns (patient id, plan id, dose id)."""
    patient_id, plan_id, dose_id, sweeper = await _ladder_setup(db)
    await _sweep(sweeper, ALERT_AT)
    [alert] = await _alerts(db)
    assert (alert.kind, alert.ref_id, alert.acked_at) == ("dose", dose_id, None)
    return patient_id, plan_id, dose_id


async def _resolutions(db: Database) -> list[AuditRecord]:
    async with db.uow() as uow:
        rows = list(
            await uow.session.scalars(
                select(AuditRecord)
                .where(AuditRecord.action == "care.alert.resolved")
                .order_by(AuditRecord.seq)
            )
        )
        uow.session.expunge_all()
        return rows


async def _open(db: Database) -> list[CareAlert]:
    async with db.uow() as uow:
        doctor = await uow.doctors.by_tg_user(DOCTOR_TG)
        assert doctor is not None
        rows = await alerts.open_for(uow, doctor.id)
        uow.session.expunge_all()
        return rows


def _resolved_texts(sent: list[dict[str, object]]) -> list[str]:
    return [str(m["text"]) for m in sent if str(m["text"]).startswith("✅")]


async def test_dose_taken_late_by_the_patient_resolves_the_alert(db: Database) -> None:
    patient_id, _, dose_id = await _unanswered(db)
    taken_at = utc(2026, 12, 3, 10, 40)
    await _answer(db, patient_id, flow.take, dose_id, 1, taken_at)
    assert await _open(db) == []  # gone from /alerts and /queue
    [alert] = await _alerts(db)
    assert alert.acked_at is not None and flow.aware(alert.acked_at) == taken_at
    [link] = await _resolutions(db)
    assert (link.actor, link.record_id) == (f"patient:{patient_id}", alert.id)
    assert json.loads(link.details) == {"kind": "dose", "by": "patient", "cause": "dose.taken"}
    to_doctor = await _sent(db, DOCTOR_TG, "doctor")
    assert len(to_doctor) == 2  # the alert, then one notice
    [notice] = _resolved_texts(to_doctor)
    assert notice == EN(
        "doses.doctor.resolved.patient", name="Nora", medicine=MEDICINE, time="10:40", due="08:00"
    )
    assert "Testperson" not in notice  # first name only
    assert "reply_markup" not in to_doctor[1]  # nothing to press
    async with db.uow() as uow:
        assert (await verify_chain(uow.session)).ok


async def test_a_dose_recorded_missed_and_taken_later_resolves_too(db: Database) -> None:
    patient_id, _, dose_id = await _unanswered(db)
    async with db.uow() as uow:
        dose = await uow.session.get(Dose, dose_id)
        assert dose is not None
        dose.status = flow.MISSED  # as the next occurrence records it
        await uow.commit()
    await _answer(db, patient_id, flow.take, dose_id, 1, utc(2026, 12, 3, 13, 15))
    assert await _open(db) == []
    [notice] = _resolved_texts(await _sent(db, DOCTOR_TG, "doctor"))
    assert "13:15" in notice and "08:00" in notice


async def test_they_took_it_from_a_caregiver_resolves_it_and_the_doctor_is_told_once(
    db: Database,
) -> None:
    _, _, dose_id = await _unanswered(db)
    [first] = await _alerts(db)
    async with db.uow() as uow:
        # the same dose alerted twice (a snooze round): still one notice
        await alerts.raise_alert(
            uow, patient_id=first.patient_id, doctor_id=first.doctor_id, kind="dose",
            ref_id=dose_id, level="alert", msgid="doses.doctor.unanswered",
            params={"medicine": "-", "dose": "-", "time": "-", "minutes": 1},
            now=ALERT_AT + timedelta(minutes=5),
        )  # fmt: skip
        await uow.commit()
    now = utc(2026, 12, 3, 10, 45)
    async with db.uow() as uow:
        dose, cg, _ = await flow.caregiver_answer(uow, CARER_TG, dose_id, "took", now)
        await uow.commit()
    assert dose.status == flow.TAKEN
    assert await _open(db) == []
    links = await _resolutions(db)
    assert len(links) == 2
    assert {link.actor for link in links} == {f"caregiver:{cg.id}"}
    assert {json.loads(link.details)["by"] for link in links} == {"caregiver"}
    [notice] = _resolved_texts(await _sent(db, DOCTOR_TG, "doctor"))
    assert notice == EN(
        "doses.doctor.resolved.caregiver",
        name="Nora",
        medicine=MEDICINE,
        time="10:45",
        due="08:00",
    )
    assert "marked by their caregiver" in notice
    # The patient's own late press is refused as already recorded: nothing more for the doctor.
    async with db.uow() as uow:
        patient = await uow.patients.by_tg_user(820001)
        assert patient is not None
        with pytest.raises(flow.DoseError) as err:
            await flow.take(uow, patient, dose_id, 1, now + timedelta(minutes=1))
        assert err.value.reason == "answered"
    assert len(_resolved_texts(await _sent(db, DOCTOR_TG, "doctor"))) == 1


async def test_checked_on_them_does_not_resolve(db: Database) -> None:
    _, _, dose_id = await _unanswered(db)
    async with db.uow() as uow:
        await flow.caregiver_answer(uow, CARER_TG, dose_id, "checked", utc(2026, 12, 3, 10, 30))
        await uow.commit()
    [alert] = await _open(db)
    assert alert.ref_id == dose_id
    assert _resolved_texts(await _sent(db, DOCTOR_TG, "doctor")) == []


async def test_alerts_of_other_causes_stay_open_and_resolving_twice_is_a_no_op(
    db: Database,
) -> None:
    patient_id, _, dose_id = await _unanswered(db)
    [dose_alert] = await _alerts(db)
    async with db.uow() as uow:
        common = {"patient_id": patient_id, "doctor_id": dose_alert.doctor_id, "now": ALERT_AT}
        # same record, another kind; another record of the same kind
        other_kind = await alerts.raise_alert(
            uow, kind="side_effect", ref_id=dose_id, level="alert",
            msgid="care.kind.side_effect", **common,  # type: ignore[arg-type]
        )  # fmt: skip
        other_dose = await alerts.raise_alert(
            uow, kind="dose", ref_id="another-dose", level="alert",
            msgid="care.kind.dose", **common,  # type: ignore[arg-type]
        )  # fmt: skip
        await uow.commit()
    await _answer(db, patient_id, flow.take, dose_id, 1, utc(2026, 12, 3, 10, 40))
    assert {a.id for a in await _open(db)} == {other_kind.id, other_dose.id}
    sent_before = await _sent(db, DOCTOR_TG, "doctor")
    links_before = await _resolutions(db)
    assert len(links_before) == 1
    # The same resolution again: nothing closes, nothing is sent, nothing audited.
    async with db.uow() as uow:
        again = await alerts.resolve(
            uow,
            patient_id=patient_id,
            kind="dose",
            ref_ids=[dose_id],
            resolution=alerts.Resolution(
                actor=f"patient:{patient_id}", by="patient", cause="dose.taken",
                msgid="doses.doctor.resolved.patient", at=utc(2026, 12, 3, 10, 41),
                params={"medicine": MEDICINE, "due": "08:00"},
            ),
        )  # fmt: skip
        assert again == []
        await uow.commit()
    assert await _sent(db, DOCTOR_TG, "doctor") == sent_before
    assert len(await _resolutions(db)) == 1
    # The doctor's Acknowledge on the resolved alert: refused as resolved, not "acked".
    async with db.uow() as uow:
        doctor = await uow.doctors.by_tg_user(DOCTOR_TG)
        assert doctor is not None
        with pytest.raises(alerts.NotAllowed) as no:
            await alerts.ack(uow, doctor, dose_alert.id, utc(2026, 12, 3, 11, 0))
        assert no.value.reason == "resolved"
        await alerts.ack(uow, doctor, other_dose.id, utc(2026, 12, 3, 11, 0))
        with pytest.raises(alerts.NotAllowed) as no:
            await alerts.ack(uow, doctor, other_dose.id, utc(2026, 12, 3, 11, 1))
        assert no.value.reason == "acked"
        await uow.commit()


async def test_alerts_card_shows_what_happened_who_and_since_when(db: Database) -> None:
    patient_id, _, dose_id = await _unanswered(db)
    # A side effect reported on the same (still untaken) dose: a second alert, its own card.
    at = utc(2026, 12, 3, 10, 5)
    await _answer(db, patient_id, flow.effect_start, dose_id, 1, at)
    await _answer(db, patient_id, flow.effect_answer, dose_id, 1, "nausea", at)
    await _answer(db, patient_id, flow.effect_answer, dose_id, 1, "mild", at)
    now = utc(2026, 12, 3, 12, 30)
    async with db.uow() as uow:
        doctor = await uow.doctors.by_tg_user(DOCTOR_TG)
        assert doctor is not None
        cards = {
            a.kind: await alerts.card(uow, EN, a, now, "Europe/Berlin")
            for a in await alerts.open_for(uow, doctor.id)
        }
        unknown = await alerts.raise_alert(
            uow, patient_id=patient_id, doctor_id=doctor.id, kind="test_kind", ref_id="x",
            level="danger", msgid="care.kind.other", now=now,
        )  # fmt: skip
        bare = await alerts.card(uow, EN, unknown, now + timedelta(days=3), "UTC")
        await uow.rollback()
    unanswered = cards["dose"]
    assert "Nora" in unanswered and "Testperson" not in unanswered
    assert EN.plain("care.kind.dose") in unanswered
    assert MEDICINE in unanswered and "1 tablet" in unanswered
    assert "2026-12-03 08:00" in unanswered and "122 min" in unanswered
    # since 10:02 UTC = 11:02 in Berlin, 2 h 28 min before "now"
    assert EN("care.alert.since", since="11:02", ago=EN.plain("care.hours_ago", n=2)) in (
        unanswered
    )
    effect = cards["side_effect"]
    assert "Nausea" in effect and "Mild" in effect and MEDICINE in effect
    # no describer: the header and since-line only; another day shows the date
    assert bare.startswith("🚨") and "URGENT" in bare
    assert "Open since 2026-12-03 12:30" in bare and "3 days ago" in bare


async def test_a_checkin_answered_after_a_missed_run_resolves_that_alert(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1, tz="UTC")
        doctor = await _doctor(uow, 100)
        plan = await _enrol(uow, patient, doctor, "general", freq="daily")
        await uow.commit()
    sim = _Sim(db)
    await sim.run_until(T0 + timedelta(days=8), answer={0})
    async with db.uow() as uow:
        [alert] = await alerts.open_for(uow, doctor.id)
        assert alert.kind == followup.ALERT_MISSED
        card = await alerts.card(uow, EN, alert, sim.now, "UTC")
        assert "without an answer" in card and EN.plain("followup.template.general") in card
        # another patient's open missed-run alert is not this plan's
        other = await _patient(uow, 2, tz="UTC")
        foreign = await alerts.raise_alert(
            uow, patient_id=other.id, doctor_id=doctor.id, kind=followup.ALERT_MISSED,
            ref_id=alert.ref_id, level="alert", msgid="care.kind.checkin_missed", now=sim.now,
        )  # fmt: skip
        asked = len(await _checkins(uow, plan.id))
        await uow.commit()
    assert not sim.texts("doctor", 100, "Resolved")
    await sim.run_until(T0 + timedelta(days=10), answer={0, asked})
    async with db.uow() as uow:
        assert [a.id for a in await alerts.open_for(uow, doctor.id)] == [foreign.id]
        rows = await _checkins(uow, plan.id)
        assert rows[asked].status == "done"
        answered_at = followup.aware(rows[asked].completed_at or sim.now)
        case = await alerts.case_of(uow, doctor.id, plan.patient_id)
        assert case is not None
        number = case.number
    [when] = sim.texts("doctor", 100, "Resolved")
    [notice] = [t for w, b, c, t in sim.sent if (b, c, w) == ("doctor", 100, when) and "✅" in t]
    template = EN.plain("followup.template.general")
    time = f"{answered_at:%H:%M}"
    assert notice == EN(
        "followup.alert.resolved", name=f"Mira (#{number})", template=template, time=time
    )
    [link] = await _resolutions(db)
    assert json.loads(link.details)["cause"] == "checkin.answered"
