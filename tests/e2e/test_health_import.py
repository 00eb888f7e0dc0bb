"""Importing a file of readings end to end: the patient asks to import from /devices, sends an
Apple Health export.zip as a document; the import runner downloads it through the Bot API
emulator, reads it in the background and stores the readings (source ``imported``); a high
reading of the last day reaches the doctor as a care alert, older history does not; the
patient is told what was saved, refused and skipped. Sending the same file again stores
nothing twice. Bad files get a clear answer and the waiting import stays. An import whose
worker dies halfway is taken over once its lease runs out and finishes with every reading
stored exactly once."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.imports import ImportRunner
from flows import devices as flow
from storage.models import FollowUpPlan, HealthImport, Patient, Reading, utcnow
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_consultation import add_doctor
from tests.e2e.test_intake import has_button, new_patient
from tests.flows.test_health_import import export, pressure, record


def _apple(at: str) -> str:
    """Apple's time format from an ISO time."""
    return at.replace("T", " ").split(".")[0][:19] + " +0000"


def export_zip() -> tuple[bytes, int]:
    """An export.zip: a week of normal blood pressure, a high reading an hour ago (to alert),
    a high one three weeks ago (history: stored, not alerted), a two-year-old reading
    (refused: too old), steps (skipped). Returns the zip and the readings it should store."""
    now = utcnow()
    rows = [
        pressure(("Systolic", "128"), ("Diastolic", "82"),
                 start=_apple((now - timedelta(days=d)).isoformat()))
        for d in range(2, 9)
    ]  # fmt: skip
    rows.append(pressure(("Systolic", "188"), ("Diastolic", "114"),
                         start=_apple((now - timedelta(hours=1)).isoformat())))  # fmt: skip
    rows.append(pressure(("Systolic", "192"), ("Diastolic", "118"),
                         start=_apple((now - timedelta(days=21)).isoformat())))  # fmt: skip
    rows.append(
        record("HeartRate", "71", "count/min", _apple((now - timedelta(days=2)).isoformat()))
    )
    rows.append(
        record("HeartRate", "70", "count/min", _apple((now - timedelta(days=800)).isoformat()))
    )
    rows.append(
        record("StepCount", "5231", "count", _apple((now - timedelta(days=1)).isoformat()))
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("apple_health_export/export.xml", export(*rows))
    return buf.getvalue(), 10


def _text(m: dict[str, Any]) -> str:
    return str(m.get("text") or m.get("caption") or "")


async def _readings(clinic: Clinic) -> list[tuple[str, str | None]]:
    """(source, source_key) of every stored reading."""
    async with clinic.app.db.uow() as uow:
        rows = await uow.session.execute(select(Reading.source, Reading.source_key))
        return [(a, b) for a, b in rows]


@pytest.mark.parametrize("locale", ["en", "ru"])
async def test_an_apple_health_export_is_imported_and_the_recent_high_reaches_the_doctor(
    sqlite_clinic: Clinic, locale: str
) -> None:
    clinic = sqlite_clinic
    doc = await add_doctor(clinic, "Dr Ines Calder", locale="en")
    p = await new_patient(clinic, locale)
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(p.uid)
        doctor = await uow.doctors.by_tg_user(doc.uid)
        assert isinstance(patient, Patient) and doctor is not None
        uow.session.add(FollowUpPlan(patient_id=patient.id, doctor_id=doctor.id,
                                     template="hypertension", status="active"))  # fmt: skip
        await uow.commit()

    data, expected = export_zip()
    await p.say("/devices", has_button(p.t("device.button.import")))
    asked = await p.press(p.t("device.button.import"), lambda m: "export.zip" in _text(m))
    assert "20" in asked["text"]

    # Not a file Careline reads: refused, and the import still waits for the right one.
    since = await clinic.seq(p.uid)
    await clinic.client.send_document(p.uid, PATIENT_BOT, b"%PDF-1.4 notes", "notes.pdf")
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: "export.xml" in _text(m) and "CSV" in _text(m), since=since
    )
    doctor_since = await clinic.seq(doc.uid, DOCTOR_BOT)
    since = await clinic.seq(p.uid)
    await clinic.client.send_document(p.uid, PATIENT_BOT, data, "export.zip")
    done = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: "/readings" in _text(m) and "✅" in _text(m), since=since
    )
    too_old = p.t("device.import.reason", why=p.t("device.reject.too_old"), n=1)
    summary = {"rejected": 1, "skipped": 1, "reasons": too_old}
    assert done["text"] == p.t("device.import.done", stored=expected, duplicates=0, **summary)

    stored = await _readings(clinic)
    assert len(stored) == expected
    assert {source for source, _ in stored} == {"imported"}
    async with clinic.app.db.uow() as uow:
        job = await uow.session.scalar(select(HealthImport))
        assert job is not None and job.status == "done"
        assert (job.stored, job.duplicates, job.rejected) == (expected, 0, 1)
        assert job.file_id and not hasattr(job, "file_name")

    # The doctor hears of the high reading of the last hour, not of the one weeks ago.
    alert = await clinic.client.wait_for(
        doc.uid, DOCTOR_BOT, lambda m: "188/114" in _text(m), since=doctor_since
    )
    assert alert.get("protect_content") is True
    await clinic.settled()
    texts = await clinic.bot_texts(doc.uid, DOCTOR_BOT)
    assert not any("192/118" in t for t in texts)

    # /devices lists the file source; /readings shows the imported values.
    await p.say("/devices", lambda m: "Apple Health" in _text(m))
    await p.say("/readings", lambda m: "188/114" in _text(m))

    # The same file again: nothing stored twice, no second alert.
    before = len(await clinic.bot_texts(doc.uid, DOCTOR_BOT))
    await p.press(p.t("device.button.import"), lambda m: "export.zip" in _text(m))
    since = await clinic.seq(p.uid)
    await clinic.client.send_document(p.uid, PATIENT_BOT, data, "export.zip")
    again = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: "/readings" in _text(m) and "✅" in _text(m), since=since
    )
    assert again["text"] == p.t("device.import.done", stored=0, duplicates=expected, **summary)
    assert len(await _readings(clinic)) == expected
    await clinic.settled()
    assert len(await clinic.bot_texts(doc.uid, DOCTOR_BOT)) == before
    assert clinic.app.processor.failed == 0


async def test_bad_files_get_a_clear_answer_and_store_nothing(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    p = await new_patient(clinic, "en")
    await p.say("/devices", has_button(p.t("device.button.import")))
    await p.press(p.t("device.button.import"), lambda m: "export.zip" in _text(m))

    # Over Telegram's 20 MB download limit: refused at once, with the size.
    since = await clinic.seq(p.uid)
    big = b"time,pulse\n" + b"2026-01-01T08:00:00Z,70\n" * (21 * 1024 * 1024 // 24)
    await clinic.client.send_document(p.uid, PATIENT_BOT, big, "readings.csv")
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: "21 MB" in _text(m) and "20 MB" in _text(m), since=since
    )
    # The import still waits: a damaged zip is taken, then refused as damaged.
    since = await clinic.seq(p.uid)
    await clinic.client.send_document(p.uid, PATIENT_BOT, b"PK\x03\x04broken", "export.zip")
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: p.t("device.import.failed.bad_zip") == _text(m), since=since
    )
    # An XML bomb: refused as unsafe.
    await p.press(p.t("device.button.import"), lambda m: "export.zip" in _text(m))
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE HealthData [<!ENTITY a "aaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;">]><HealthData>&b;</HealthData>'
    )
    since = await clinic.seq(p.uid)
    await clinic.client.send_document(p.uid, PATIENT_BOT, bomb, "export.xml")
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: p.t("device.import.failed.unsafe_xml") == _text(m),
        since=since,
    )  # fmt: skip
    # A CSV without a time column.
    await p.press(p.t("device.button.import"), lambda m: "export.zip" in _text(m))
    since = await clinic.seq(p.uid)
    await clinic.client.send_document(p.uid, PATIENT_BOT, b"pulse\n70\n", "readings.csv")
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: p.t("device.import.failed.bad_csv") == _text(m), since=since
    )
    assert await _readings(clinic) == []
    assert clinic.app.processor.failed == 0


async def test_an_import_whose_worker_dies_is_finished_by_another_once(
    sqlite_clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack on "nothing lost, nothing twice": the worker dies after its first batch."""
    clinic = sqlite_clinic
    await clinic.app.imports.stop()  # this test drives its own runners
    p = await new_patient(clinic, "en")
    now = utcnow()
    lines = ["time,systolic,diastolic,pulse"]
    for i in range(2500):
        at = (now - timedelta(days=20) + timedelta(minutes=10 * i)).isoformat()
        lines.append(f"{at},{120 + i % 7},{80 + i % 5},{60 + i % 9}")
    data = ("\n".join(lines) + "\n").encode()
    await p.say("/devices", has_button(p.t("device.button.import")))
    await p.press(p.t("device.button.import"), lambda m: "export.zip" in _text(m))
    await clinic.client.send_document(p.uid, PATIENT_BOT, data, "readings.csv")
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, lambda m: p.t("device.import.queued") == _text(m)
    )

    bot = clinic.app.bots["patient"]
    first = ImportRunner(clinic.app.db, bot, worker="first", batch=1000)
    real = flow.ingest
    calls = 0

    async def dies_after_one(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the worker's machine went away")
        return await real(*args, **kwargs)

    monkeypatch.setattr(flow, "ingest", dies_after_one)
    with pytest.raises(RuntimeError):
        await first.run_once()
    monkeypatch.setattr(flow, "ingest", real)
    assert len(await _readings(clinic)) == 1000  # the first batch committed, then it died

    # Another worker cannot take it while the lease holds; it can once the lease ran out.
    second = ImportRunner(clinic.app.db, bot, worker="second", batch=1000,
                          on_commit=clinic.app.sender.poke)  # fmt: skip
    assert await second.run_once() is False
    second.clock = lambda: utcnow() + timedelta(minutes=5)
    monkeypatch.setattr("bot.imports.PROGRESS_SECONDS", 0.0)  # every batch edits the progress
    assert await second.run_once() is True
    readings = await _readings(clinic)
    assert len(readings) == 5000
    async with clinic.app.db.uow() as uow:
        n = await uow.session.scalar(
            select(func.count(func.distinct(Reading.source_key))).select_from(Reading)
        )
        assert n == 5000
        job = await uow.session.scalar(select(HealthImport))
        assert job is not None and job.status == "done" and job.leased_by == "second"
        assert (job.stored, job.duplicates, job.attempts) == (4000, 1000, 2)
    done = await clinic.client.wait_for(p.uid, PATIENT_BOT, lambda m: "✅" in _text(m))
    assert done["text"] == p.t(
        "device.import.done", stored=4000, duplicates=1000, rejected=0, skipped=0, reasons="—"
    )
    # The progress message was edited as the file was stored.
    await clinic.settled()
    texts = await clinic.bot_texts(p.uid)
    assert p.t("device.import.queued") not in texts
    assert p.t("device.import.progress.storing", done="5,000", total="5,000") in texts
