"""Readings from a home device end to end: the patient connects it with /devices (a one-time
code and a personal upload address), the app pairs over HTTP and posts FHIR Observations; a
reading over the follow-up thresholds reaches the doctor's chat as a care alert, in the
doctor's language; retries are not stored twice; bad uploads get a clear answer and change
nothing; a revoked device is refused."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.devices_web import MAX_BODY, DeviceApi
from storage.models import FollowUpPlan, Patient, Reading, utcnow
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import add_doctor
from tests.e2e.test_intake import has_button, new_patient
from tests.flows.test_devices import bundle, obs


@pytest.fixture
async def dclinic(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    c, schema = await start_clinic(tmp_path, "sqlite", log_capture)
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


@pytest.fixture
async def api(dclinic: Clinic) -> AsyncIterator[TestClient]:
    app = web.Application()
    DeviceApi(
        dclinic.app.db, emergency_number="112", public_url="https://clinic.example",
        on_commit=dclinic.app.sender.poke,
    ).mount(app)  # fmt: skip
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def _connected(text: str) -> tuple[str, str]:
    """(device id, pairing code) from the /devices message."""
    address = text.split("/d/", 1)[1].split("/fhir", 1)[0]
    code = text.split("code: ", 1)[1].split()[0] if "code: " in text else ""
    return address, code


@pytest.mark.parametrize("locale", ["en", "zh_Hans"])
async def test_a_device_reading_reaches_the_doctor(
    dclinic: Clinic, api: TestClient, locale: str
) -> None:
    clinic = dclinic
    doc = await add_doctor(clinic, "Dr Mira Holt", locale=locale)
    p = await new_patient(clinic, "en")
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(p.uid)
        assert isinstance(patient, Patient)
        doctor = await uow.doctors.by_tg_user(doc.uid)
        assert doctor is not None
        uow.session.add(FollowUpPlan(patient_id=patient.id, doctor_id=doctor.id,
                                     template="hypertension", status="active"))  # fmt: skip
        await uow.commit()
    await p.say("/devices", has_button(p.t("device.button.connect")))
    shown = await p.press(p.t("device.button.connect"), lambda m: "/d/" in (m.get("text") or ""))
    assert shown.get("protect_content") is True
    device_id, code = _connected(shown["text"])
    assert len(code) == 9

    # Pairing: a wrong code, then the right one (typed loosely), then the right one again.
    r = await api.post(f"/d/{device_id}/pair", json={"code": "ZZZZ-ZZZZ"})
    assert r.status == 403 and (await r.json())["resourceType"] == "OperationOutcome"
    r = await api.post(f"/d/{device_id}/pair", json={"code": code.lower()})
    assert r.status == 200
    token = (await r.json())["token"]
    assert (await api.post(f"/d/{device_id}/pair", json={"code": code})).status == 403
    auth = {"Authorization": f"Bearer {token}"}

    # A high blood pressure: the doctor's chat gets the alert with its Acknowledge button.
    now = utcnow()
    since = await clinic.seq(doc.uid, DOCTOR_BOT)
    body = bundle(obs("bp", (188, 114), now, "cuff-1"), obs("pulse", 88, now, "cuff-2"))
    r = await api.post(f"/d/{device_id}/fhir", json=body, headers=auth)
    assert r.status == 200 and await r.json() == {"stored": 2, "duplicates": 0, "rejected": []}
    alert = await clinic.client.wait_for(
        doc.uid, DOCTOR_BOT, lambda m: "188/114" in (m.get("text") or ""), since=since
    )
    assert alert.get("reply_markup") and alert.get("protect_content") is True
    assert doc.t("device.kind.bp").casefold() in alert["text"].casefold()
    # The app retries the same upload: nothing new, no second alert.
    r = await api.post(f"/d/{device_id}/fhir", json=body, headers=auth)
    assert await r.json() == {"stored": 0, "duplicates": 2, "rejected": []}
    async with clinic.app.db.uow() as uow:
        n = await uow.session.scalar(select(func.count()).select_from(Reading))
        assert n == 2

    # The patient's /readings lists them, marked as from a device.
    listed = await p.say("/readings", lambda m: "188/114" in (m.get("text") or ""))
    assert "188/114 mmHg ⚠️ 📟" in listed["text"] and "88 bpm 📟" in listed["text"]

    # Bad uploads get a reason each and store nothing.
    junk: list[dict[str, Any]] = [
        {**obs("pulse", 70, now, "x1"), "code": {"coding": [{"system": "http://loinc.org",
                                                           "code": "1234-5"}]}},
        {**obs("glucose", 7, now, "x2"), "valueQuantity": {"value": 7, "unit": "g/L"}},
        obs("pulse", 900, now, "x3"),
        obs("pulse", 70, now.replace(year=now.year + 1), "x4"),
    ]  # fmt: skip
    r = await api.post(f"/d/{device_id}/fhir", json=bundle(*junk), headers=auth)
    assert r.status == 422
    reasons = [x["reason"] for x in (await r.json())["rejected"]]
    assert reasons == ["unknown_code", "unit", "range", "future"]
    r = await api.post(f"/d/{device_id}/fhir", data=b"not json", headers=auth)
    assert r.status == 400
    r = await api.post(f"/d/{device_id}/fhir", data=b"x" * (MAX_BODY + 1), headers=auth)
    assert r.status == 413
    r = await api.post(f"/d/{device_id}/fhir", json=body, headers={"Authorization": "Bearer x"})
    assert r.status == 401
    async with clinic.app.db.uow() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(Reading)) == 2

    # The patient revokes it: the token stops working, and says why.
    await p.say("/devices", has_button(p.t("device.button.revoke", label="#1")))
    await p.press(p.t("device.button.revoke", label="#1"), lambda m: True)
    r = await api.post(f"/d/{device_id}/fhir", json=body, headers=auth)
    assert r.status == 401 and "revoked" in json.dumps(await r.json())
    await clinic.client.wait_for(p.uid, PATIENT_BOT, has_button(p.t("device.button.connect")))
