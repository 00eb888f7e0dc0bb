"""Readings from home devices (flows/devices.py) on SQLite and PostgreSQL: pairing once (a
wrong, used or expired code refused), revoking, idempotent uploads (the source's identity, and
the same value within a minute), the check-in thresholds applied to device values (one open
alert per kind and doctor), the emergency path and the "measure again" ask for a sudden
dangerous value, caregivers in scope, and erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from flows import devices as dev
from flows import fhir_readings
from storage.models import (
    AuditRecord,
    CareAlert,
    Caregiver,
    Doctor,
    FollowUpPlan,
    OutboxMessage,
    Patient,
    Reading,
)
from storage.uow import Database, UnitOfWork

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LOINC = "http://loinc.org"


def obs(kind: str, value: Any, at: datetime, ident: str | None = None) -> dict[str, Any]:
    """A FHIR Observation as a device would send it."""
    codes = {"pulse": ("8867-4", "/min"), "glucose": ("15074-8", "mmol/L"),
             "spo2": ("2708-6", "%"), "temperature": ("8310-5", "Cel")}  # fmt: skip
    r: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "effectiveDateTime": at.isoformat(),
    }
    if ident:
        r["identifier"] = [{"system": "urn:example:meter", "value": ident}]
    if kind == "bp":
        r["code"] = {"coding": [{"system": LOINC, "code": "85354-9"}]}
        r["component"] = [
            {"code": {"coding": [{"system": LOINC, "code": c}]},
             "valueQuantity": {"value": v, "unit": "mmHg", "code": "mm[Hg]"}}
            for c, v in (("8480-6", value[0]), ("8462-4", value[1]))
        ]  # fmt: skip
    else:
        code, unit = codes[kind]
        r["code"] = {"coding": [{"system": LOINC, "code": code}]}
        r["valueQuantity"] = {"value": value, "unit": unit, "code": unit}
    return r


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": r} for r in resources]}  # fmt: skip


async def _setup(uow: UnitOfWork, *, plan: bool = True) -> tuple[Patient, Doctor]:
    patient = await uow.patients.add(
        Patient(tg_user_id=5100, locale="en", onboarding_state="done", consent_version="1",
                timezone="UTC")
    )  # fmt: skip
    await uow.patients.set_field(patient, "name", "Mira Example")
    doctor = await uow.doctors.add(
        Doctor(tg_user_id=5200, locale="en", status="verified",
               verified_until=T0 + timedelta(days=400), departments="general")
    )  # fmt: skip
    if plan:
        uow.session.add(
            FollowUpPlan(patient_id=patient.id, doctor_id=doctor.id, template="hypertension",
                         status="active")
        )  # fmt: skip
        await uow.session.flush()
    return patient, doctor


async def _paired(uow: UnitOfWork, patient: Patient) -> tuple[Any, str]:
    device, code = await dev.connect(uow, patient, T0, "Arm cuff")
    return await dev.pair(uow, device.id, code, T0)


async def _upload(uow: UnitOfWork, device: Any, body: Any, now: datetime) -> dev.Ingested:
    done = await dev.ingest(uow, device, fhir_readings.parse(body, now), now)
    found = await dev.assess(uow, device, done, now)
    await dev.tell(uow, device, found, now, "112")
    return done


async def _texts(uow: UnitOfWork, chat: int) -> list[tuple[str, int]]:
    rows = await uow.session.scalars(
        select(OutboxMessage).where(OutboxMessage.chat_id == chat).order_by(OutboxMessage.id)
    )
    return [((await uow.outbox.params(r)).get("text", ""), r.priority) for r in rows]


async def test_pairing_works_once_and_revoking_stops_the_token(db: Database) -> None:
    async with db.uow() as uow:
        patient, _ = await _setup(uow)
        device, code = await dev.connect(uow, patient, T0, "Arm cuff")
        assert len(code) == 9 and code[4] == "-"
        other, other_code = await dev.connect(uow, patient, T0)
        for bad_id, bad_code in ((device.id, "AAAA-AAAA"), (other.id, code), (device.id, "")):
            with pytest.raises(dev.DeviceError):
                await dev.pair(uow, bad_id, bad_code, T0)
        # typed in lower case without the dash, O for 0: still the code
        paired, token = await dev.pair(uow, device.id, code.lower().replace("-", ""), T0)
        assert paired.status == "active" and paired.token_hash != token
        with pytest.raises(dev.DeviceError):  # used
            await dev.pair(uow, device.id, code, T0)
        with pytest.raises(dev.DeviceError):  # expired
            await dev.pair(uow, other.id, other_code, T0 + timedelta(minutes=dev.PAIR_MINUTES))
        assert await dev.authenticate(uow, device.id, token) is not None
        assert await dev.authenticate(uow, other.id, token) is None  # another address
        await dev.revoke(uow, patient, device.id, T0)
        assert await dev.authenticate(uow, device.id, token) is None
        assert await dev.revoked(uow, device.id, token)
        with pytest.raises(dev.DeviceError):
            await dev.revoke(uow, patient, device.id, T0)
        await uow.commit()
        refused = await uow.session.scalars(
            select(AuditRecord).where(AuditRecord.action == "device.refused")
        )
        assert len(list(refused)) == 5


async def test_uploads_are_stored_once(db: Database) -> None:
    async with db.uow() as uow:
        patient, _ = await _setup(uow)
        device, _ = await _paired(uow, patient)
        body = bundle(obs("bp", (128, 82), T0, "m-1"), obs("pulse", 64, T0, "m-2"))
        done = await _upload(uow, device, body, T0)
        assert len(done.stored) == 2 and done.duplicates == 0
        again = await _upload(uow, device, body, T0)  # the app retried
        assert not again.stored and again.duplicates == 2
        # no identity, the same value 30 s later from a second app: a duplicate too
        near = await _upload(uow, device, obs("pulse", 64, T0 + timedelta(seconds=30)), T0)
        assert near.duplicates == 1
        # a new value a minute later is a new reading
        later = await _upload(uow, device, obs("pulse", 66, T0 + timedelta(minutes=2)), T0)
        assert len(later.stored) == 1
        rows = list(await uow.session.scalars(select(Reading).order_by(Reading.taken_at)))
        assert [(r.kind, r.source, r.device_id) for r in rows] == [
            ("bp", "device", device.id), ("pulse", "device", device.id),
            ("pulse", "device", device.id),
        ]  # fmt: skip
        assert all(b"128" not in r.value_enc for r in rows)  # sealed
        await uow.commit()


async def test_high_values_alert_the_plans_doctor_once(db: Database) -> None:
    async with db.uow() as uow:
        patient, doctor = await _setup(uow)
        uow.session.add(
            Caregiver(patient_id=patient.id, tg_user_id=5300, status="active",
                      scope="checkins", details=True, expires_at=T0 + timedelta(days=1))
        )  # fmt: skip
        await uow.session.flush()
        device, _ = await _paired(uow, patient)
        await _upload(uow, device, obs("bp", (186, 112), T0, "a"), T0)
        await _upload(uow, device, obs("bp", (184, 111), T0 + timedelta(minutes=5), "b"), T0)
        alerts_ = list(await uow.session.scalars(select(CareAlert)))
        assert [(a.kind, a.level, a.doctor_id) for a in alerts_] == [
            ("device:bp", "alert", doctor.id)
        ]
        [(text, _)] = await _texts(uow, 5200)
        assert "186/112 mmHg" in text and "Arm cuff" in text
        caregiver = await _texts(uow, 5300)
        assert len(caregiver) == 2 and "186/112" in caregiver[0][0]
        assert await _texts(uow, 5100) == []  # the doctor follows; the patient isn't alarmed
        await uow.commit()


async def test_a_sudden_danger_is_measured_again_then_runs_the_emergency_path(
    db: Database,
) -> None:
    async with db.uow() as uow:
        patient, _ = await _setup(uow)
        device, _ = await _paired(uow, patient)
        await _upload(uow, device, obs("glucose", 6.1, T0 - timedelta(days=1), "g0"), T0)
        await _upload(uow, device, obs("glucose", 2.6, T0, "g1"), T0)
        [(ask, prio)] = await _texts(uow, 5100)
        assert "measure again" in ask and "112" in ask and prio == 0
        assert list(await uow.session.scalars(select(CareAlert))) == []
        later = T0 + timedelta(minutes=10)
        await _upload(uow, device, obs("glucose", 2.7, later, "g2"), later)
        texts = await _texts(uow, 5100)
        assert len(texts) == 2 and texts[1][0].startswith("🚨") and "call 112" in texts[1][0]
        [alert] = list(await uow.session.scalars(select(CareAlert)))
        assert (alert.kind, alert.level) == ("device:glucose", "danger")
        raised = await uow.session.scalars(
            select(AuditRecord).where(AuditRecord.action == "redflag.raised")
        )
        assert len(list(raised)) == 1
        await uow.commit()


async def test_danger_after_high_readings_is_an_emergency_at_once(db: Database) -> None:
    async with db.uow() as uow:
        patient, _ = await _setup(uow)
        device, _ = await _paired(uow, patient)
        await _upload(uow, device, obs("temperature", 38.6, T0 - timedelta(hours=3), "t0"), T0)
        await _upload(uow, device, obs("spo2", 97, T0, "s0"), T0)
        await _upload(uow, device, obs("temperature", 40.4, T0, "t1"), T0)
        texts = [t for t, _ in await _texts(uow, 5100)]
        assert texts and texts[-1].startswith("🚨")
        await uow.commit()


async def test_without_a_following_doctor_the_patient_is_told(db: Database) -> None:
    async with db.uow() as uow:
        patient, _ = await _setup(uow, plan=False)
        device, _ = await _paired(uow, patient)
        await _upload(uow, device, obs("spo2", 93, T0, "s1"), T0)
        [(text, _)] = await _texts(uow, 5100)
        assert "No doctor follows your readings" in text and "93 %" in text
        await uow.commit()


def test_device_rules_load_and_refuse_bad_data() -> None:
    rules = dev.rules()
    assert rules.kinds["spo2"].flag(91) == "danger" and rules.kinds["spo2"].flag(93) == "low"
    assert rules.kinds["spo2"].flag(96) == "none"
    for bad in ('version = "1"\nconfirm_minutes = 0\nhistory_days = 7',
                'version = "1"\nconfirm_minutes = 5\nhistory_days = 7\n[kinds.x]\nalert_low = "a"',
                'version = "1"\nconfirm_minutes = 5\nhistory_days = 7\nsurprise = 1'):  # fmt: skip
        with pytest.raises(ValueError, match=r"devices\.toml"):
            dev.parse_rules(bad)


async def test_erasure_removes_devices_and_their_readings(db: Database) -> None:
    from flows import privacy, retention

    async with db.uow() as uow:
        patient, _ = await _setup(uow)
        device, token = await _paired(uow, patient)
        await _upload(uow, device, obs("pulse", 70, T0, "p"), T0)
        await privacy.erase(uow, patient, bot="patient", policy=retention.Policy(), now=T0)
        await uow.commit()
    async with db.uow() as uow:
        assert await dev.authenticate(uow, device.id, token) is None
        assert list(await uow.session.scalars(select(Reading))) == []


async def test_a_checkin_a_device_answered_today_asks_only_the_rest(db: Database) -> None:
    """Hypertension at 20:00 (Berlin): blood pressure and pulse came from the cuff today, so
    the check-in asks only about symptoms, and a high device reading with a symptom is still
    danger; diabetes with today's glucose from the meter asks only when it was measured."""
    from flows import followup
    from tests.flows.test_followup import _doctor, _enrol, _events, _patient

    async with db.uow() as uow:
        patient = await _patient(uow, 5400)
        doctor = await _doctor(uow, 5500)
        plan = await _enrol(uow, patient, doctor, "hypertension")
        [event] = await _events(uow, followup.KIND)
        due = event.due_at if event.due_at.tzinfo else event.due_at.replace(tzinfo=UTC)
        device, _ = await _paired(uow, patient)
        morning = due - timedelta(hours=10)
        await _upload(uow, device, bundle(obs("bp", (186, 100), morning, "b1"),
                                          obs("pulse", 70, morning, "p1")), morning)  # fmt: skip
        event.status = "done"
        prompt = await followup.fire_checkin(uow, event, due)
        assert prompt is not None and prompt.question is not None
        assert prompt.question.id == "bp_symptoms" and prompt.checkin.state == "q3"
        answers = await followup.answers_of(uow, prompt.checkin)
        assert answers == {"bp": [186, 100], "pulse": 70.0}
        await followup.press(uow, patient, prompt.checkin.id, 2, "tick", "chest_pain", due)
        out = await followup.press(uow, patient, prompt.checkin.id, 2, "done", "", due)
        assert out.level == "danger" and out.checkin.status == "done"
        assert plan.template == "hypertension"
        await uow.commit()


async def test_only_todays_device_readings_answer_a_checkin(db: Database) -> None:
    from flows import followup
    from tests.flows.test_followup import _doctor, _enrol, _events, _patient

    async with db.uow() as uow:
        patient = await _patient(uow, 5600)
        doctor = await _doctor(uow, 5700)
        await _enrol(uow, patient, doctor, "diabetes")
        [event] = await _events(uow, followup.KIND)
        due = event.due_at if event.due_at.tzinfo else event.due_at.replace(tzinfo=UTC)
        device, _ = await _paired(uow, patient)
        yesterday = due - timedelta(days=1)
        await _upload(uow, device, obs("glucose", 6.2, yesterday, "g-1"), yesterday)
        event.status = "done"
        prompt = await followup.fire_checkin(uow, event, due)
        assert prompt is not None and prompt.question is not None
        assert prompt.question.id == "glucose_when"
        out = await followup.press(uow, patient, prompt.checkin.id, 0, "opt", "fasting", due)
        assert out.question is not None and out.question.id == "glucose"  # asked: not today's
        await uow.commit()
    async with db.uow() as uow:  # another patient whose meter sent today's glucose
        patient = await _patient(uow, 5800)
        doctor = await _doctor(uow, 5900)
        await _enrol(uow, patient, doctor, "diabetes")
        [event] = [e for e in await _events(uow, followup.KIND) if e.patient_id == patient.id]
        device, _ = await _paired(uow, patient)
        await _upload(uow, device, obs("glucose", 6.4, due - timedelta(hours=1), "g-2"), due)
        event.status = "done"
        prompt = await followup.fire_checkin(uow, event, due)
        assert prompt is not None and prompt.question is not None
        assert prompt.question.id == "glucose_when"
        out = await followup.press(uow, patient, prompt.checkin.id, 0, "opt", "fasting", due)
        assert out.question is None and out.checkin.status == "done"  # glucose passed over
        assert await followup.answers_of(uow, out.checkin) == {
            "glucose_when": "fasting", "glucose": 6.4,
        }  # fmt: skip
        await uow.commit()


# --- imported files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mime", "kind"),
    [
        ("export.zip", None, "apple_zip"),
        ("EXPORT.XML", None, "apple_xml"),
        ("bp log.csv", None, "csv"),
        (None, "text/csv", "csv"),
        ("scan.pdf", "application/pdf", None),
        (None, None, None),
    ],
)
def test_import_kind_from_name_or_type(
    name: str | None, mime: str | None, kind: str | None
) -> None:
    assert dev.import_kind(name, mime) == kind


async def test_an_import_waits_is_queued_once_and_is_leased_to_one_worker(db: Database) -> None:
    async with db.uow() as uow:
        patient, _ = await _setup(uow)
        job = await dev.ask_import(uow, patient, T0)
        # Not a readings file, or over the download limit: refused, the import still waits.
        with pytest.raises(dev.DeviceError) as bad:
            await dev.queue_import(uow, patient, job, file_id="f", file_size=10,
                                   file_name="scan.pdf", mime_type=None)  # fmt: skip
        assert bad.value.msgid == "device.import.format"
        with pytest.raises(dev.DeviceError) as big:
            await dev.queue_import(uow, patient, job, file_id="f", file_size=200 * 1024 * 1024,
                                   file_name="export.zip", mime_type=None)  # fmt: skip
        assert big.value.msgid == "device.import.too_big" and big.value.params["size_mb"] == "200"
        assert await dev.waiting_import(uow, patient.id, T0) is job
        assert await dev.waiting_import(uow, patient.id, T0 + dev.IMPORT_WAIT) is None
        await dev.queue_import(uow, patient, job, file_id="f", file_size=1000,
                               file_name="export.zip", mime_type=None)  # fmt: skip
        assert job.status == "queued" and job.kind == "apple_zip"
        assert await dev.waiting_import(uow, patient.id, T0) is None
        # One import at a time.
        with pytest.raises(dev.DeviceError) as busy:
            await dev.ask_import(uow, patient, T0)
        assert busy.value.msgid == "device.import.busy"
        # The file source is not a device: not listed, not counted, not revocable.
        assert await dev.devices_of(uow, patient) == []
        [source] = (await dev.devices_and_files(uow, patient))[1]
        assert source.label == "Apple Health"
        with pytest.raises(dev.DeviceError):
            await dev.revoke(uow, patient, source.id, T0)
        await uow.commit()
    lease = timedelta(minutes=2)
    async with db.uow() as uow:
        got = await uow.devices.claim_import("a", T0, lease)
        assert got is not None and got.id == job.id and got.attempts == 1
        assert await uow.devices.claim_import("b", T0, lease) is None  # leased to "a"
        assert await uow.devices.renew_import(job.id, "b", T0, lease) is False
        again = await uow.devices.claim_import("b", T0 + lease * 2, lease)  # "a" died
        assert again is not None and again.leased_by == "b" and again.attempts == 2
        assert await uow.devices.renew_import(job.id, "a", T0, lease) is False
        await uow.commit()


async def test_erasure_removes_import_jobs(db: Database) -> None:
    from flows import privacy, retention
    from storage.models import HealthImport

    async with db.uow() as uow:
        patient, _ = await _setup(uow)
        await dev.ask_import(uow, patient, T0)
        await privacy.erase(uow, patient, bot="patient", policy=retention.Policy(), now=T0)
        await uow.commit()
    async with db.uow() as uow:
        assert list(await uow.session.scalars(select(HealthImport))) == []


async def test_a_device_reading_starts_the_weekly_summary_planner(db: Database) -> None:
    """A patient who only uses a device (no check-ins, no /readings) still gets the weekly
    summary: storing a device reading makes sure the hourly planner runs."""
    from flows import weekly
    from storage.models import ScheduledEvent

    async with db.uow() as uow:
        patient, _ = await _setup(uow, plan=False)
        device, _ = await _paired(uow, patient)
        await _upload(uow, device, obs("pulse", 70, T0, "p"), T0)
        await _upload(uow, device, obs("pulse", 71, T0, "q"), T0)
        await uow.commit()
    async with db.uow() as uow:
        kinds = list(await uow.session.scalars(select(ScheduledEvent.kind)))
        assert kinds.count(weekly.PLAN) == 1


async def test_a_high_device_reading_is_not_alerted_again_by_the_checkin(db: Database) -> None:
    """Diabetes: today's high glucose from the meter alerted the doctor when it came; the
    check-in it answered asks only when it was measured and, finished, raises no second alert.
    A flagged answer the patient gives alerts as before."""
    from flows import followup
    from tests.flows.test_followup import _doctor, _enrol, _events, _patient

    async with db.uow() as uow:
        patient = await _patient(uow, 6000)
        doctor = await _doctor(uow, 6100)
        await _enrol(uow, patient, doctor, "diabetes")
        [event] = await _events(uow, followup.KIND)
        due = event.due_at if event.due_at.tzinfo else event.due_at.replace(tzinfo=UTC)
        device, _ = await _paired(uow, patient)
        await _upload(uow, device, obs("glucose", 18.2, due - timedelta(hours=1), "g-h"), due)
        before = list(await uow.session.scalars(select(CareAlert)))
        assert [a.kind for a in before] == ["device:glucose"]
        event.status = "done"
        prompt = await followup.fire_checkin(uow, event, due)
        assert prompt is not None and prompt.question is not None
        out = await followup.press(uow, patient, prompt.checkin.id, 0, "opt", "fasting", due)
        assert out.question is None and out.checkin.status == "done"
        assert out.level != "none" and out.told_by_device
        await followup.notify(uow, out, patient, due, "112")
        after = list(await uow.session.scalars(select(CareAlert)))
        assert [a.kind for a in after] == ["device:glucose"]  # not a second, "reading" alert
        await uow.commit()
