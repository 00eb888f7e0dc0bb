"""Hospital appointments behind referrals (flows/appointments.py) on SQLite and PostgreSQL:
the machine, services and slots, booking under capacity (also many patients at once for the
last places, and one referral booked twice at once), "I can't come", the desk's marks
(another hospital's desk refused, two desks at once: one wins), moving a booking, the files a
desk attaches, admins' desk invitations, the outcome back to the referral, the reminder time,
erasure and export."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from flows import appointments as apf
from flows import referrals as rf
from flows.signing import Signer
from storage.crypto import KeyRing
from storage.models import (
    AuditRecord,
    Consultation,
    Doctor,
    Hospital,
    HospitalAppointment,
    Patient,
    ScheduledEvent,
)
from storage.uow import Database

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = date(2026, 3, 5)


@pytest.fixture
def signer(keyring: KeyRing) -> Signer:
    return Signer(keyring)


async def setup(db: Database, signer: Signer, *, patients: int = 1, capacity: int = 2) -> dict:
    """A hospital with one service and a 09:00 slot, a doctor, patients with issued referrals
    to it, and a desk of the hospital (and one of another)."""
    async with db.uow() as uow:
        hospital = Hospital(name="Riverside General Hospital", city="Maplebrook", departments="[]")
        other = Hospital(name="Hillcrest Hospital", city="Maplebrook", departments="[]")
        uow.session.add_all([hospital, other])
        await uow.session.flush()
        doctor = await uow.doctors.add(
            Doctor(tg_user_id=9000, locale="en", status="verified",
                   verified_until=T0 + timedelta(days=300), departments="general")
        )  # fmt: skip
        service = await apf.add_service(
            uow, "admin:test", hospital.id, "Cardiology", "examination", "Holter monitoring",
            "previous ECGs",
        )  # fmt: skip
        assert (
            await apf.add_slots(uow, "admin:test", service.id, [DAY], ["09:00"], capacity, "UTC")
            == 1
        )
        assert (
            await apf.add_slots(uow, "admin:test", service.id, [DAY], ["09:00"], capacity, "UTC")
            == 0
        )
        refs = []
        for n in range(patients):
            patient = await uow.patients.add(
                Patient(tg_user_id=9100 + n, locale="en", onboarding_state="done",
                        consent_version="1", timezone="UTC")
            )  # fmt: skip
            await uow.patients.set_field(patient, "name", f"Test Patient {n}")
            case = await uow.consultations.add(
                Consultation(patient_id=patient.id, department="general", state="active",
                             doctor_id=doctor.id, requested_at=T0, accepted_at=T0)
            )  # fmt: skip
            ref = await rf.start_draft(uow, doctor, patient.id, consultation_id=case.id)
            await rf.save_draft(uow, ref, {"hospital_id": hospital.id, "target_department":
                                           "Cardiology", "reason": "Palpitations"})  # fmt: skip
            await rf.issue(uow, doctor, ref.id, T0, signer)
            refs.append(ref.id)
        desk = await apf.make_desk(uow, "admin:test", hospital.id, 9500, "Front desk", "en")
        desk2 = await apf.make_desk(uow, "admin:test", other.id, 9501, "Other desk", "en")
        await uow.commit()
        [slot] = await uow.appointments.free_slots([service.id], T0, T0 + timedelta(days=10))
        return {"refs": refs, "slot": slot.id, "desk": desk.id, "desk2": desk2.id,
                "hospital": hospital.id, "doctor": doctor.id}  # fmt: skip


async def _book(db: Database, ref_id: str, slot_id: str) -> str:
    async with db.uow() as uow:
        ref = await uow.referrals.get(ref_id)
        assert ref is not None
        try:
            appt = await apf.book(uow, ref, slot_id, T0, by="patient", actor="patient:t", tz="UTC")
        except apf.AppointmentError as exc:
            await uow.rollback()
            return exc.msgid
        await uow.commit()
        return appt.id


def test_machine_follows_fhir_appointment_statuses() -> None:
    assert apf.next_state("booked", "arrive") is apf.State.ARRIVED
    assert apf.next_state("arrived", "fulfil") is apf.State.FULFILLED
    assert apf.next_state("booked", "noshow") is apf.State.NOSHOW
    assert apf.next_state("booked", "cancel") is apf.State.CANCELLED
    for bad in (("arrived", "noshow"), ("noshow", "arrive"), ("fulfilled", "cancel"),
                ("cancelled", "arrive"), ("booked", "fulfil")):  # fmt: skip
        assert apf.next_state(*bad) is None


async def test_capacity_holds_under_many_patients_at_once(db: Database, signer: Signer) -> None:
    s = await setup(db, signer, patients=6, capacity=2)
    results = await asyncio.gather(*(_book(db, r, s["slot"]) for r in s["refs"]))
    booked = [r for r in results if not r.startswith("appt.")]
    assert len(booked) == 2 and results.count("appt.error.full") == 4, results
    async with db.uow() as uow:
        slot = await uow.appointments.slot(s["slot"])
        assert slot is not None and slot.booked == 2


async def test_one_appointment_per_referral_and_cancel_releases(
    db: Database, signer: Signer
) -> None:
    s = await setup(db, signer, patients=1, capacity=1)
    first = await _book(db, s["refs"][0], s["slot"])
    assert await _book(db, s["refs"][0], s["slot"]) == "appt.error.already_booked"
    async with db.uow() as uow:
        appt = await uow.appointments.get(first)
        assert appt is not None
        with pytest.raises(apf.AppointmentError):
            await apf.cancel(uow, appt.id, "someone-else", T0)
        await apf.cancel(uow, appt.id, appt.patient_id, T0)
        await uow.commit()
    async with db.uow() as uow:
        slot = await uow.appointments.slot(s["slot"])
        assert slot is not None and slot.booked == 0
    assert not (await _book(db, s["refs"][0], s["slot"])).startswith("appt.")  # again


async def test_desks_mark_once_and_only_their_hospital(db: Database, signer: Signer) -> None:
    s = await setup(db, signer)
    appt_id = await _book(db, s["refs"][0], s["slot"])
    async with db.uow() as uow:
        other = await uow.doctors.get(s["desk2"])
        assert other is not None
        with pytest.raises(apf.AppointmentError) as exc:
            await apf.mark(uow, other, appt_id, "arrive", 1, T0)
        assert exc.value.msgid == "appt.desk.not_yours"
        desk = await uow.doctors.get(s["desk"])
        assert desk is not None
        rows = await apf.day_list(uow, desk, DAY, "UTC")
        assert [a.id for a, _ in rows] == [appt_id]
        await uow.commit()

    async def mark(trigger: str) -> str:
        async with db.uow() as uow:
            desk = await uow.doctors.get(s["desk"])
            assert desk is not None
            try:
                await apf.mark(uow, desk, appt_id, trigger, 1, T0)
            except apf.AppointmentError as exc:
                await uow.commit()
                return exc.msgid
            await uow.commit()
            return trigger

    if db.sqlite:
        results = [await mark("arrive"), await mark("noshow")]
    else:
        results = list(await asyncio.gather(mark("arrive"), mark("noshow")))
    assert sorted(results).count("appt.desk.already") == 1, results
    async with db.uow() as uow:
        refused = await uow.session.scalars(
            select(AuditRecord).where(AuditRecord.action == "appt.refused")
        )
        assert len(list(refused)) == 2


async def test_outcome_goes_back_and_uses_the_slip(db: Database, signer: Signer) -> None:
    s = await setup(db, signer)
    appt_id = await _book(db, s["refs"][0], s["slot"])
    async with db.uow() as uow:
        desk = await uow.doctors.get(s["desk"])
        assert desk is not None
        with pytest.raises(apf.AppointmentError):  # not arrived yet
            await apf.record_outcome(uow, desk, appt_id, "Sinus rhythm", T0)
        await apf.mark(uow, desk, appt_id, "arrive", 1, T0)
        with pytest.raises(apf.AppointmentError):
            await apf.record_outcome(uow, desk, appt_id, "   ", T0)
        appt = await apf.record_outcome(uow, desk, appt_id, "Holter: sinus rhythm, 3 PVCs", T0)
        assert appt.status == "fulfilled"
        assert await uow.appointments.outcome(appt) == "Holter: sinus rhythm, 3 PVCs"
        ref = await uow.referrals.get(s["refs"][0])
        assert ref is not None and ref.status == "used" and ref.used_by == "desk"
        await uow.commit()


def test_the_reminder_is_the_evening_before_in_the_patients_zone() -> None:
    from storage.models import HospitalSlot

    slot = HospitalSlot(starts_at=datetime(2026, 3, 5, 1, 30, tzinfo=UTC), all_day=False)
    # 09:30 in Shanghai on the 5th: reminded at 18:00 Shanghai time on the 4th
    assert apf.reminder_time(slot, "Asia/Shanghai") == datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


async def test_export_and_erasure(db: Database, signer: Signer) -> None:
    from flows import privacy, retention
    from flows.export import record_bundle

    s = await setup(db, signer)
    appt_id = await _book(db, s["refs"][0], s["slot"])
    async with db.uow() as uow:
        appt = await uow.appointments.get(appt_id)
        assert appt is not None
        patient = await uow.patients.get(appt.patient_id)
        assert patient is not None
        bundle = await record_bundle(uow, patient, now=T0)
        [resource] = [
            e["resource"] for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Appointment"
        ]  # fmt: skip
        assert resource["status"] == "booked" and resource["start"].startswith("2026-03-05T09:00")
        assert resource["basedOn"][0]["reference"].startswith("urn:uuid:")
        await privacy.erase(uow, patient, bot="patient", policy=retention.Policy(), now=T0)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.appointments.get(appt_id) is None
        slot = await uow.appointments.slot(s["slot"])
        assert slot is not None and slot.booked == 0


async def test_ask_to_move_releases_the_place_once(db: Database, signer: Signer) -> None:
    s = await setup(db, signer, capacity=1)
    appt_id = await _book(db, s["refs"][0], s["slot"])
    async with db.uow() as uow:
        other = await uow.doctors.get(s["desk2"])
        desk = await uow.doctors.get(s["desk"])
        assert other is not None and desk is not None
        with pytest.raises(apf.AppointmentError) as exc:
            await apf.ask_to_move(uow, other, appt_id, 1)
        assert exc.value.msgid == "appt.desk.not_yours"
        appt = await apf.ask_to_move(uow, desk, appt_id, 1)
        assert appt.status == "cancelled"
        with pytest.raises(apf.AppointmentError) as exc:  # the same button again: stale
            await apf.ask_to_move(uow, desk, appt_id, 1)
        assert exc.value.msgid == "appt.desk.already"
        slot = await uow.appointments.slot(s["slot"])
        assert slot is not None and slot.booked == 0
        await uow.commit()


async def _actions(db: Database, action: str) -> int:
    async with db.uow() as uow:
        rows = await uow.session.scalars(select(AuditRecord).where(AuditRecord.action == action))
        return len(list(rows))


async def test_one_referral_booked_twice_at_once_lands_once(db: Database, signer: Signer) -> None:
    """The doctor and the patient book the same referral at the same moment: one booking, one
    place taken (the database's partial unique index decides on PostgreSQL)."""
    s = await setup(db, signer, capacity=5)
    results = await asyncio.gather(*(_book(db, s["refs"][0], s["slot"]) for _ in range(4)))
    assert sum(not r.startswith("appt.") for r in results) == 1, results
    assert results.count("appt.error.already_booked") == 3, results
    async with db.uow() as uow:
        slot = await uow.appointments.slot(s["slot"])
        assert slot is not None and slot.booked == 1
        # Past the flow's own check, the database refuses a second open appointment.
        [appt] = await uow.appointments.for_referral(s["refs"][0])
        twin = HospitalAppointment(
            referral_id=appt.referral_id, patient_id=appt.patient_id,
            hospital_id=appt.hospital_id, service_id=appt.service_id, slot_id=appt.slot_id,
            status="booked", booked_by="doctor", version=1, created_at=T0, updated_at=T0,
        )  # fmt: skip
        assert await uow.appointments.add_open(twin) is False
        assert len(await uow.appointments.for_referral(s["refs"][0])) == 1
        await uow.commit()


async def _second_slot(db: Database, s: dict, hour: str = "11:00", capacity: int = 1) -> str:
    async with db.uow() as uow:
        slot = await uow.appointments.slot(s["slot"])
        assert slot is not None
        await apf.add_slots(uow, "admin:test", slot.service_id, [DAY], [hour], capacity, "UTC")
        await uow.commit()
        free = await uow.appointments.free_slots([slot.service_id], T0, T0 + timedelta(days=10))
        return next(f.id for f in free if f.id != s["slot"])


async def test_the_desk_moves_a_booking_to_another_time(db: Database, signer: Signer) -> None:
    s = await setup(db, signer, capacity=1)
    appt_id = await _book(db, s["refs"][0], s["slot"])
    later = await _second_slot(db, s)
    async with db.uow() as uow:
        desk = await uow.doctors.get(s["desk"])
        other = await uow.doctors.get(s["desk2"])
        assert desk is not None and other is not None
        _, offers = await apf.move_offers(uow, desk, appt_id, T0)
        assert [o.slot.id for o in offers] == [later]  # its own time is not offered
        with pytest.raises(apf.AppointmentError) as exc:
            await apf.reschedule(uow, other, appt_id, 1, later, T0)
        assert exc.value.msgid == "appt.desk.not_yours"
        with pytest.raises(apf.AppointmentError) as exc:  # a slot of no service of it
            await apf.reschedule(uow, desk, appt_id, 1, "0" * 32, T0)
        assert exc.value.msgid == "appt.error.slot_gone"
        moved = await apf.reschedule(uow, desk, appt_id, 1, later, T0, tz="Asia/Shanghai")
        assert moved.slot_id == later and moved.version == 2 and moved.status == "booked"
        with pytest.raises(apf.AppointmentError) as exc:  # the same list pressed again
            await apf.reschedule(uow, desk, appt_id, 1, s["slot"], T0)
        assert exc.value.msgid == "appt.desk.already"
        old = await uow.appointments.slot(s["slot"])
        new = await uow.appointments.slot(later)
        assert old is not None and new is not None
        for row in (old, new):
            await uow.session.refresh(row)  # changed by conditional UPDATEs
        assert (old.booked, new.booked) == (0, 1)
        events = list(
            await uow.session.scalars(
                select(ScheduledEvent).where(
                    ScheduledEvent.kind == apf.REMIND, ScheduledEvent.subject == appt_id
                )
            )
        )
        pending = [e for e in events if e.status == "pending"]
        assert len(pending) == 1 and len(events) == 2
        assert apf._aware(pending[0].due_at) == apf.reminder_time(new, "Asia/Shanghai")
        await uow.commit()
    assert await _actions(db, "appt.reschedule") == 1
    assert await _actions(db, "appt.refused") == 3


async def test_a_full_time_is_not_moved_into(db: Database, signer: Signer) -> None:
    s = await setup(db, signer, patients=2, capacity=1)
    first = await _book(db, s["refs"][0], s["slot"])
    later = await _second_slot(db, s)
    await _book(db, s["refs"][1], later)
    async with db.uow() as uow:
        desk = await uow.doctors.get(s["desk"])
        assert desk is not None
        with pytest.raises(apf.AppointmentError) as exc:
            await apf.reschedule(uow, desk, first, 1, later, T0)
        assert exc.value.msgid == "appt.error.full"
        appt = await uow.appointments.get(first)
        assert appt is not None and appt.slot_id == s["slot"]


async def test_desk_files_are_kept_in_the_case_sealed(db: Database, signer: Signer) -> None:
    s = await setup(db, signer)
    appt_id = await _book(db, s["refs"][0], s["slot"])
    async with db.uow() as uow:
        desk = await uow.doctors.get(s["desk"])
        other = await uow.doctors.get(s["desk2"])
        assert desk is not None and other is not None
        with pytest.raises(apf.AppointmentError) as exc:  # booked: not seen yet
            await apf.attach(uow, desk, appt_id, "document", "letter.pdf", None, T0)
        assert exc.value.msgid == "appt.desk.attach_state"
        await apf.mark(uow, desk, appt_id, "arrive", 1, T0)
        with pytest.raises(apf.AppointmentError) as exc:
            await apf.attach(uow, other, appt_id, "document", "letter.pdf", None, T0)
        assert exc.value.msgid == "appt.desk.not_yours"
        with pytest.raises(apf.AppointmentError) as exc:
            await apf.attach(uow, desk, appt_id, "voice", None, None, T0)
        assert exc.value.msgid == "appt.desk.attach_kind"
        appt, case, row = await apf.attach(
            uow, desk, appt_id, "document", "discharge.pdf", "Discharge letter", T0
        )
        assert row.sender == "hospital" and row.consultation_id == case.id
        assert uow.appointments.attachment_ids(appt) == [row.id]
        [(kept, data)] = await apf.attachments(uow, appt)
        assert kept.id == row.id and data is None  # not delivered yet: no copy
        await uow.consultations.set_message_file(case, row, b"%PDF-1.4 letter")
        await uow.commit()
    async with db.uow() as uow:
        appt2 = await uow.appointments.get(appt_id)
        assert appt2 is not None
        [(_, data)] = await apf.attachments(uow, appt2)
        assert data == b"%PDF-1.4 letter"
        raw = await uow.session.get(type(row), row.id)
        assert raw is not None and raw.file_enc is not None
        assert b"letter" not in raw.file_enc and b"Discharge" not in (raw.body_enc or b"")
        # the outcome still works after files came first, and files after it
        desk = await uow.doctors.get(s["desk"])
        assert desk is not None
        await apf.record_outcome(uow, desk, appt_id, "Discharged home", T0)
        await apf.attach(uow, desk, appt_id, "photo", None, None, T0)
        await uow.commit()
    assert await _actions(db, "appt.attach") == 2


async def test_admins_invite_desks_once(db: Database, signer: Signer) -> None:
    s = await setup(db, signer)
    async with db.uow() as uow:
        payload = await apf.invite_desk(uow, "admin:77", s["hospital"], T0)
        assert payload.startswith(apf.INVITE_PREFIX) and len(payload) <= 64
        expired = await apf.invite_desk(uow, "admin:77", s["hospital"], T0 - timedelta(days=4))
        with pytest.raises(apf.AppointmentError):
            await apf.invite_desk(uow, "admin:77", "no-such-hospital", T0)
        await uow.commit()
    async with db.uow() as uow:
        for bad in (payload + "x", "desk_", expired):
            with pytest.raises(apf.AppointmentError) as exc:
                await apf.join_desk(uow, bad, 9700, "Dana Frontdesk", "en", T0)
            assert exc.value.msgid == "appt.desk.invite_bad"
        with pytest.raises(apf.AppointmentError) as exc:  # a doctor cannot become a desk
            await apf.join_desk(uow, payload, 9000, "Dr Test", "en", T0)
        assert exc.value.msgid == "appt.error.desk_taken"
        await uow.commit()
    async with db.uow() as uow:
        desk = await apf.join_desk(uow, payload, 9700, "Dana Frontdesk", "ru", T0)
        assert apf.is_desk(desk) and desk.hospital_id == s["hospital"] and desk.locale == "ru"
        await uow.commit()
    async with db.uow() as uow:
        with pytest.raises(apf.AppointmentError):  # used once
            await apf.join_desk(uow, payload, 9701, "Someone Else", "en", T0)
        assert [d.tg_user_id for d in await apf.desks(uow, s["hospital"])] == [9500, 9700]
        gone = await apf.remove_desk(uow, "admin:77", desk.id)
        assert not apf.is_desk(gone)
        with pytest.raises(apf.AppointmentError):
            await apf.remove_desk(uow, "admin:77", s["doctor"])
        await uow.commit()
    assert await _actions(db, "desk.refused") == 5
    assert await _actions(db, "desk.create") == 3  # the two of the setup and this one
    assert await _actions(db, "desk.remove") == 1
