"""The sandbox's simulated home device (issue 18): ``POST /sandbox/device`` posts one reading
for a simulated patient the way a paired app would, so the device path runs offline.

``{"user_id": <Telegram id>, "kind": "bp" | "pulse" | "glucose" | "spo2" | "temperature" |
"weight", "value": "150/95" | "72" | "6.1" | ...}``. The patient's simulated device (labelled
:data:`LABEL`) is connected and paired through flows/devices.py once; its upload token is kept
in memory per patient. After a restart (the token is gone), or when the patient revoked it in
/devices (the API answers 401), the patient's older simulated devices are revoked and a new
one is made. The reading, taken at sandbox now, is then posted
as a FHIR R4 Observation over HTTP to the real device API (bot/devices_web.py) on this same
server, so it is parsed, stored, judged and told exactly as a real device's.

Answers ``{"ok": true, "status": <the API's status>, "result": <the API's answer>}``; a
request that cannot be sent is ``{"ok": false, "error": ...}`` with 400 (not JSON, no such
patient, onboarding not finished, unknown kind, unreadable value), and a reading the API
refused is ``{"ok": false, "error": <its reason>, "status", "result"}`` with 422. Never a
traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

import aiohttp
from aiohttp import web

from flows import devices as flow
from flows.onboarding import Step, step_of
from locales import Translator
from storage.models import Patient, utcnow
from storage.uow import Database, UnitOfWork

log = logging.getLogger("careline.sandbox")

LABEL = "Simulated device"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
# kind -> (LOINC code, UCUM unit, name, what to type): the codes and units the device API
# reads (flows/fhir_readings.py); blood pressure is a panel of systolic and diastolic parts.
KINDS: dict[str, tuple[str, str, str, str]] = {
    "bp": ("85354-9", "mm[Hg]", "a blood pressure", 'systolic/diastolic in mmHg, e.g. "150/95"'),
    "pulse": ("8867-4", "/min", "a pulse", 'whole beats a minute, e.g. "72"'),
    "glucose": ("15074-8", "mmol/L", "a blood sugar", 'mmol/L, e.g. "6.1"'),
    "spo2": ("2708-6", "%", "an SpO2", 'a whole percent, e.g. "97"'),
    "temperature": ("8310-5", "Cel", "a temperature", '°C, e.g. "37.2"'),
    "weight": ("29463-7", "kg", "a weight", 'kg, e.g. "70.5"'),
}
WHOLE = frozenset({"pulse", "spo2"})  # whole numbers only, as a device sends them
_BP = re.compile(r"^(\d{1,3})\s*/\s*(\d{1,3})$")
_NUMBER = re.compile(r"^\d{1,4}(?:[.,]\d{1,2})?$")
TIMEOUT = aiohttp.ClientTimeout(total=20)


class Refused(ValueError):
    """A request the simulated device cannot send; the message is for the person who asked."""


def parse_value(kind: str, text: Any) -> tuple[float, ...]:
    """The number(s) of a typed value ("150/95" -> (150, 95); "36,6" -> (36.6,)). Shape only:
    the device API checks the range, as it would a real device's."""
    if kind not in KINDS:
        raise Refused(f'"kind" must be one of {", ".join(KINDS)}')
    _, _, name, hint = KINDS[kind]
    if not isinstance(text, str | int | float) or isinstance(text, bool):
        raise Refused(f'"value" must be text: {hint}')
    clean = str(text).strip()
    if kind == "bp":
        m = _BP.match(clean)
        if not m:
            raise Refused(f"cannot read {clean[:20]!r} as {name}: {hint}")
        return float(m.group(1)), float(m.group(2))
    if not _NUMBER.match(clean) or (kind in WHOLE and not clean.isdigit()):
        raise Refused(f"cannot read {clean[:20]!r} as {name}: {hint}")
    return (float(clean.replace(",", ".")),)


def _quantity(number: float, unit: str) -> dict[str, Any]:
    value: int | float = int(number) if number.is_integer() else number
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def observation(kind: str, numbers: tuple[float, ...], at: datetime) -> dict[str, Any]:
    """One FHIR R4 vital-signs Observation, as a home device sends it (a fresh identifier
    each time: every press is a new measurement)."""
    code, unit, _, _ = KINDS[kind]
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:careline:sandbox-device", "value": uuid4().hex}],
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "effectiveDateTime": at.isoformat(),
    }
    if kind == "bp":
        body["component"] = [
            {"code": {"coding": [{"system": LOINC, "code": part}]},
             "valueQuantity": _quantity(n, unit)}
            for part, n in zip(("8480-6", "8462-4"), numbers, strict=True)
        ]  # fmt: skip
    else:
        body["valueQuantity"] = _quantity(numbers[0], unit)
    return body


def refusal(status: int, answer: Any) -> str:
    """What the device API's refusal says: the rejected entry's detail and reason, or an
    OperationOutcome's diagnostics."""
    if isinstance(answer, dict):
        rejected = answer.get("rejected")
        if isinstance(rejected, list) and rejected and isinstance(rejected[0], dict):
            first = rejected[0]
            return f"{first.get('detail') or 'refused'} ({first.get('reason') or status})"
        issues = answer.get("issue")
        if isinstance(issues, list) and issues and isinstance(issues[0], dict):
            return str(issues[0].get("diagnostics") or f"refused ({status})")
    return f"the device API answered {status}"


@dataclass(frozen=True)
class Paired:
    """A simulated device and its upload token (only in memory)."""

    device_id: str
    token: str


class SimulatedDevices:
    """``POST /sandbox/device`` on the sandbox server (``db`` and ``base_url``, the server's
    own internal address, are set once the sandbox has started)."""

    def __init__(self) -> None:
        self.db: Database | None = None
        self.base_url: str | None = None
        self.paired: dict[str, Paired] = {}  # patient id -> its simulated device
        self._lock = asyncio.Lock()  # one new device per patient, even on double presses

    def mount(self, app: web.Application) -> None:
        """Add the route (before the server starts)."""
        app.router.add_post("/sandbox/device", self.post_reading)

    @staticmethod
    def _error(message: str, code: int = 400, **extra: Any) -> web.Response:
        return web.json_response({"ok": False, "error": message, **extra}, status=code)

    @staticmethod
    async def _patient(uow: UnitOfWork, user_id: int) -> Patient:
        """The patient record of this Telegram user, once onboarding is finished."""
        patient = await uow.patients.by_tg_user(user_id)
        if patient is None:
            raise Refused(
                f"user {user_id} is not a patient yet: open the patient bot as them and send "
                "/start first"
            )
        if step_of(patient) is not Step.DONE:
            raise Refused(
                f"user {user_id} has not finished onboarding in the patient bot yet; a "
                "device can be connected after that"
            )
        return patient

    async def _device(self, db: Database, user_id: int) -> Paired:
        """The patient's simulated device: the one paired earlier in this run, or a new one
        (connected and paired through the flows; older simulated devices revoked)."""
        async with self._lock, db.uow() as uow:
            patient = await self._patient(uow, user_id)
            known = self.paired.get(patient.id)
            if known is not None:
                return known
            now = utcnow()
            for old in await flow.devices_of(uow, patient):
                if old.label == LABEL:
                    await flow.revoke(uow, patient, old.id, now)
            device, code = await flow.connect(uow, patient, now, LABEL)
            device, token = await flow.pair(uow, device.id, code, now)
            await uow.commit()
            paired = self.paired[patient.id] = Paired(device.id, token)
            return paired

    def _forget(self, paired: Paired) -> None:
        """Drop a device whose token no longer works (its patient revoked it)."""
        for patient_id, known in list(self.paired.items()):
            if known == paired:
                del self.paired[patient_id]

    async def _upload(self, paired: Paired, body: dict[str, Any]) -> tuple[int, Any]:
        """POST the Observation to the device API, as the device would."""
        assert self.base_url is not None
        url = f"{self.base_url.rstrip('/')}/d/{paired.device_id}/fhir"
        headers = {
            "Authorization": f"Bearer {paired.token}",
            "Content-Type": "application/fhir+json",
        }
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as http,
            http.post(url, data=json.dumps(body), headers=headers) as resp,
        ):
            try:
                answer = await resp.json(content_type=None)
            except ValueError:
                answer = None
            return resp.status, answer

    async def post_reading(self, request: web.Request) -> web.Response:
        """POST /sandbox/device ``{"user_id", "kind", "value"}``: one reading from the
        patient's simulated device, through the real device API."""
        db, base_url = self.db, self.base_url
        if db is None or base_url is None:
            return self._error("the sandbox is still starting; try again in a moment", 503)
        try:
            return await self._post(db, request)
        except Exception:
            log.exception("the simulated device failed")
            return self._error("the simulated device failed (see the log)", 500)

    async def _post(self, db: Database, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return self._error("request body is not valid JSON")
        try:
            if not isinstance(body, dict):
                raise Refused("request body must be a JSON object")
            unknown = sorted(set(body) - {"user_id", "kind", "value"})
            if unknown:
                raise Refused(f"unknown field: {str(unknown[0])[:40]}")
            user_id, kind = body.get("user_id"), body.get("kind")
            if not isinstance(user_id, int) or isinstance(user_id, bool):
                raise Refused('"user_id" must be the simulated person\'s id (a number)')
            if not isinstance(kind, str) or kind not in KINDS:
                raise Refused(f'"kind" must be one of {", ".join(KINDS)}')
            numbers = parse_value(kind, body.get("value"))
            for attempt in range(2):
                paired = await self._device(db, user_id)
                status, answer = await self._upload(paired, observation(kind, numbers, utcnow()))
                if status != 401 or attempt:
                    break
                self._forget(paired)  # revoked in /devices: pair a new one, once
        except Refused as exc:
            return self._error(str(exc))
        except flow.DeviceError as exc:  # e.g. ten devices connected already
            said = Translator("en").plain(exc.msgid, **exc.params)
            return self._error(f"no device could be connected: {said}")
        if status == 200:
            return web.json_response({"ok": True, "status": status, "result": answer})
        return self._error(refusal(status, answer), 422, status=status, result=answer)
