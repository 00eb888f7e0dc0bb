"""Readings from home devices and health apps (issue 18, docs/MONITORING.md).

A patient connects a device from /devices: Careline makes a ``pending`` device with a
one-time pairing code (valid :data:`PAIR_MINUTES`; only its SHA-256 is kept) and a personal
upload address. The app sends the code once to ``/d/<device>/pair`` and gets an upload token
(only its hash is kept); from then on it posts FHIR R4 Observations (one, or a Bundle) to
``/d/<device>/fhir`` with ``Authorization: Bearer <token>`` (bot/devices_web.py). The patient
can revoke a device at any time: its token stops working at once.

Every reading records how it was made (``device``) and the device. An upload is idempotent:
the identity the source gives a reading (its FHIR identifier or id) is stored as a hash, and
a reading of the same kind and value within a minute of another is a duplicate; both are
counted, never stored twice.

Device readings are judged by the same thresholds as check-in readings (followups.toml;
devices.toml for SpO2 and weight): a high or low value raises a care alert to the doctor of
each active follow-up plan (one open alert per kind) and tells caregivers whose scope covers
check-ins; a dangerous value runs the emergency path, unless it is a sudden jump after only
normal readings, which asks the patient to measure again first (a second dangerous value
within ``confirm_minutes`` runs it). No aiogram here.
"""

from __future__ import annotations

import hashlib
import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from flows import alerts, caregivers, followup, weekly
from flows.errors import UserError
from flows.fhir_readings import DeviceReading, Parsed, Rejected
from flows.outbox import PRIORITY_REPLY, PRIORITY_URGENT, Replier
from flows.questionnaire import DataFileError
from locales import Translator
from storage.devices import IMPORT_STATUS
from storage.models import Device, HealthImport, Patient, Reading
from storage.uow import UnitOfWork

FILE = Path(__file__).parent / "questionnaires" / "devices.toml"
PAIR_MINUTES = 15
MAX_DEVICES = 10
LABEL_MAX = 64
DUPLICATE_WITHIN = timedelta(minutes=1)
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U


class DeviceError(UserError):
    """A device cannot be connected, paired or revoked as asked (``msgid`` says why)."""


@dataclass(frozen=True)
class Limits:
    """Thresholds of one reading kind (inclusive)."""

    unit: str = ""
    alert_low: float | None = None
    alert_high: float | None = None
    danger_low: float | None = None
    danger_high: float | None = None

    def flag(self, value: float) -> str:
        """none | high | low | danger."""
        if (self.danger_low is not None and value <= self.danger_low) or (
            self.danger_high is not None and value >= self.danger_high
        ):
            return "danger"
        if self.alert_high is not None and value >= self.alert_high:
            return "high"
        if self.alert_low is not None and value <= self.alert_low:
            return "low"
        return "none"


@dataclass(frozen=True)
class Rules:
    """devices.toml."""

    version: str
    confirm_minutes: int
    history_days: int
    kinds: dict[str, Limits] = field(default_factory=dict)


def parse_rules(text: str, file: str = FILE.name) -> Rules:
    """Read and check devices.toml; :class:`DataFileError` names the problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"{file}: not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - {"version", "confirm_minutes", "history_days", "kinds"})
    if unknown:
        raise DataFileError(f"{file}: unknown key(s) {unknown}")
    kinds: dict[str, Limits] = {}
    for kind, raw in (data.get("kinds") or {}).items():
        if not isinstance(raw, dict):
            raise DataFileError(f"{file}: kinds.{kind} must be a table")
        extra = sorted(set(raw) - {"unit", "alert_low", "alert_high", "danger_low", "danger_high"})
        if extra:
            raise DataFileError(f"{file}: kinds.{kind}: unknown key(s) {extra}")
        nums = {k: v for k, v in raw.items() if k != "unit"}
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in nums.values()):
            raise DataFileError(f"{file}: kinds.{kind}: thresholds must be numbers")
        kinds[kind] = Limits(
            unit=str(raw.get("unit", "")), **{k: float(v) for k, v in nums.items()}
        )
    minutes, days = data.get("confirm_minutes"), data.get("history_days")
    if not isinstance(minutes, int) or not isinstance(days, int) or minutes < 1 or days < 1:
        raise DataFileError(f"{file}: confirm_minutes and history_days must be positive integers")
    return Rules(str(data.get("version", "")), minutes, days, kinds)


@cache
def rules() -> Rules:
    """The device rules (read once)."""
    return parse_rules(FILE.read_text(encoding="utf-8"))


@cache
def _questions() -> dict[str, followup.Question]:
    """The check-in question of each reading kind (bp, pulse, glucose, temperature...)."""
    found: dict[str, followup.Question] = {}
    for template in followup.load().templates.values():
        for q in template.questions:
            if q.reading and q.type in ("bp", "number"):
                found.setdefault(q.reading, q)
    return found


def flag_of(reading: DeviceReading) -> str:
    """none | high | low | danger for a device reading, by the check-in thresholds of its
    kind (or devices.toml's)."""
    q = _questions().get(reading.kind)
    if q is not None:
        value: Any = (
            tuple(int(n) for n in reading.numbers) if q.type == "bp" else reading.numbers[0]
        )
        return followup.flag_of(q, value)
    limits = rules().kinds.get(reading.kind)
    return limits.flag(reading.numbers[0]) if limits is not None else "none"


def unit_of(kind: str) -> str:
    """The unit a kind is stored and shown in."""
    q = _questions().get(kind)
    if q is not None:
        return q.unit
    limits = rules().kinds.get(kind)
    return limits.unit if limits is not None else ""


# --- connecting, pairing, revoking --------------------------------------------------------------


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def normal_code(code: str) -> str:
    """A pairing code as typed ("ab12-cd34", "AB12CD34") in its one form."""
    clean = "".join(ch for ch in code.upper() if ch.isalnum())
    return clean.replace("O", "0").replace("I", "1").replace("L", "1")


def actor_of(device: Device) -> str:
    """The audit actor of a device (never the patient's name)."""
    return f"device:{device.id}"


async def connect(
    uow: UnitOfWork, patient: Patient, now: datetime, label: str | None = None
) -> tuple[Device, str]:
    """A new pending device of the patient and its one-time pairing code ("ABCD-EFGH")."""
    mine = await devices_of(uow, patient)
    if len(mine) >= MAX_DEVICES:
        raise DeviceError("device.error.too_many", n=MAX_DEVICES)
    code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    name = " ".join((label or "").split())[:LABEL_MAX] or f"#{len(mine) + 1}"
    device = await uow.devices.add(
        Device(
            patient_id=patient.id,
            label=name,
            status="pending",
            pair_hash=_hash(code),
            pair_expires_at=now + timedelta(minutes=PAIR_MINUTES),
            created_at=now,
        )
    )
    await uow.audit.record(f"patient:{patient.id}", "device.connect", "device", device.id, {})
    return device, f"{code[:4]}-{code[4:]}"


async def pair(uow: UnitOfWork, device_id: str, code: str, now: datetime) -> tuple[Device, str]:
    """The app sends the pairing code once: the device becomes active and gets its upload
    token (returned once; only its hash is kept). A wrong, used or expired code, or another
    device's, is refused (``device.error.code``) and audited."""
    device = await uow.devices.by_pair_hash(_hash(normal_code(code)))
    if device is None or device.id != device_id or device.status != "pending":
        await uow.audit.record(
            "device:unknown", "device.refused", "device", device_id[:32], {"reason": "code"}
        )
        raise DeviceError("device.error.code")
    token = secrets.token_urlsafe(32)
    if not await uow.devices.pair(device.id, _hash(token), now):
        await uow.audit.record(
            actor_of(device), "device.refused", "device", device.id, {"reason": "expired"}
        )
        raise DeviceError("device.error.code")
    await uow.devices.refresh(device)
    await uow.audit.record(actor_of(device), "device.pair", "device", device.id, {})
    return device, token


async def authenticate(uow: UnitOfWork, device_id: str, token: str) -> Device | None:
    """The active device this token belongs to, when it is the one in the address."""
    device = await uow.devices.by_token_hash(_hash(token)) if token else None
    if device is None or device.id != device_id or device.status != "active":
        return None
    return device


async def revoked(uow: UnitOfWork, device_id: str, token: str) -> bool:
    """Is this the token of a device its patient revoked? (the API says so plainly)"""
    device = await uow.devices.by_token_hash(_hash(token)) if token else None
    return device is not None and device.id == device_id and device.status == "revoked"


async def revoke(uow: UnitOfWork, patient: Patient, device_id: str, now: datetime) -> Device:
    """The patient revokes a device: its token (or pairing code) stops working at once."""
    device = await uow.devices.get(device_id)
    if device is None or device.patient_id != patient.id or device.status == IMPORT_STATUS:
        raise DeviceError("device.error.not_found")
    if device.status == "revoked":
        raise DeviceError("device.error.revoked_already")
    device.status, device.revoked_at, device.pair_hash = "revoked", now, None
    await uow.audit.record(f"patient:{patient.id}", "device.revoke", "device", device.id, {})
    return device


async def devices_and_files(
    uow: UnitOfWork, patient: Patient
) -> tuple[list[Device], list[Device]]:
    """The patient's devices that are not revoked, and the sources of their imported files
    ("Apple Health", "CSV"), from one read."""
    rows = await uow.devices.for_patient(patient.id)
    return (
        [d for d in rows if d.status not in ("revoked", IMPORT_STATUS)],
        [d for d in rows if d.status == IMPORT_STATUS],
    )


async def devices_of(uow: UnitOfWork, patient: Patient) -> list[Device]:
    """The patient's devices that are not revoked (not their imported files)."""
    return (await devices_and_files(uow, patient))[0]


# --- uploads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """A device reading that was stored."""

    row: Reading
    reading: DeviceReading
    flag: str


@dataclass
class Ingested:
    """What an upload did."""

    stored: list[Stored] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)


def _key(device: Device, r: DeviceReading) -> str:
    ident = r.source_id or f"{r.kind}|{r.taken_at.isoformat()}|{r.value}"
    return _hash(f"{device.id}|{ident}")


async def ingest(
    uow: UnitOfWork, device: Device, parsed: Parsed, now: datetime, *, audit: bool = True
) -> Ingested:
    """Store a parsed upload's readings once each (idempotent on the source's identity, and a
    reading of the same kind and value within a minute of another is a duplicate); audited
    ``device.upload`` with the counts only. The identities are looked up at once, the
    readings near in time once per kind, and the new ones inserted together."""
    out = Ingested(rejected=list(parsed.rejected))
    keyed = [(_key(device, r), r) for r in parsed.readings]
    stored_keys = await uow.devices.existing_keys(device.patient_id, [k for k, _ in keyed])
    nearby: dict[str, list[tuple[datetime, str]]] = {}
    for kind in {r.kind for _, r in keyed}:
        times = [r.taken_at for _, r in keyed if r.kind == kind]
        span = (max(times) - min(times)) / 2
        middle = min(times) + span
        nearby[kind] = [
            (followup.aware(row.taken_at), value)
            for row, value in await uow.devices.near(
                device.patient_id, kind, middle, span + DUPLICATE_WITHIN
            )
        ]
    fresh: list[tuple[str, DeviceReading, str]] = []
    seen: set[str] = set()
    for key, r in keyed:
        if key in stored_keys or key in seen:
            out.duplicates += 1
            continue
        close = nearby[r.kind]
        if any(v == r.value and abs(at - r.taken_at) <= DUPLICATE_WITHIN for at, v in close):
            out.duplicates += 1
            continue
        seen.add(key)
        close.append((r.taken_at, r.value))  # a repeat later in the same upload
        fresh.append((key, r, flag_of(r)))
    rows = (
        await uow.devices.add_readings(
            device, [(r.kind, r.value, flag, r.taken_at, key) for key, r, flag in fresh]
        )
        if fresh
        else []
    )
    for (_, r, flag), row in zip(fresh, rows, strict=True):
        if row is None:
            out.duplicates += 1
        else:
            out.stored.append(Stored(row, r, flag))
    device.last_seen_at = now
    if out.stored:  # device-only patients get the weekly summary too
        await weekly.ensure_planner(uow, now, once=True)
    if not audit:  # an import's batch: the import is audited once, with its totals
        return out
    await uow.audit.record(
        actor_of(device), "device.upload", "device", device.id,
        {"stored": len(out.stored), "duplicates": out.duplicates, "rejected": len(out.rejected)},
    )  # fmt: skip
    return out


# --- into care ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """What an upload means for care, per kind: ``alert`` (high or low), ``emergency`` or
    ``remeasure`` (a sudden dangerous value, to be measured again first)."""

    kind: str
    value: str
    flag: str
    action: str
    reading_id: str


async def assess(uow: UnitOfWork, device: Device, done: Ingested, now: datetime) -> list[Finding]:
    """The newest flagged reading of each kind in the upload, judged (see the module notes)."""
    newest: dict[str, Stored] = {}
    for s in done.stored:
        if s.flag != "none" and (
            s.reading.kind not in newest
            or s.reading.taken_at > newest[s.reading.kind].reading.taken_at
        ):
            newest[s.reading.kind] = s
    found = []
    cfg = rules()
    for kind, s in newest.items():
        action = "alert"
        if s.flag == "danger":
            history = await uow.devices.near(
                device.patient_id, kind, s.reading.taken_at, timedelta(days=cfg.history_days)
            )
            before = [
                row for row, _ in history
                if row.id != s.row.id and followup.aware(row.taken_at) <= s.reading.taken_at
            ]  # fmt: skip
            recent = s.reading.taken_at - timedelta(minutes=cfg.confirm_minutes)
            confirmed = any(
                row.flag == "danger" and followup.aware(row.taken_at) >= recent for row in before
            )
            sudden = bool(before) and all(row.flag == "none" for row in before)
            action = "remeasure" if sudden and not confirmed else "emergency"
        found.append(Finding(kind, s.reading.value, s.flag, action, s.row.id))
    return found


def _shown(tr: Translator, f: Finding) -> dict[str, str]:
    return {
        "what": tr.plain(f"device.kind.{f.kind}"),
        "value": f"{f.value} {unit_of(f.kind)}".strip(),
        "flag": tr.plain(f"followup.flag.{f.flag}"),
    }


async def tell(
    uow: UnitOfWork,
    device: Device,
    findings: list[Finding],
    now: datetime,
    emergency_number: str,
) -> None:
    """The patient, their follow-up doctors and caregivers in scope hear what the readings
    mean (one open care alert per kind and doctor; the emergency path at once)."""
    if not findings:
        return
    patient = await uow.patients.get(device.patient_id)
    if patient is None:
        return
    ptr = Translator(patient.locale)
    reply = Replier(uow, "patient", patient.tg_user_id) if patient.tg_user_id else None
    plans = await followup.plans_of(uow, patient.id)
    doctors = list(dict.fromkeys(p.doctor_id for p in plans))
    name = await caregivers.patient_label(uow, patient)
    for f in findings:
        if f.action == "remeasure":
            if reply is not None:
                await reply.text(
                    ptr("device.remeasure", emergency_number=emergency_number, **_shown(ptr, f)),
                    priority=PRIORITY_URGENT,
                )
            await uow.audit.record(
                actor_of(device), "device.remeasure", "reading", f.reading_id, {}
            )
            continue
        danger = f.action == "emergency"
        if reply is not None and danger:
            await reply.text(
                ptr("device.emergency", emergency_number=emergency_number, **_shown(ptr, f)),
                priority=PRIORITY_URGENT,
            )
        elif reply is not None and not doctors:
            await reply.text(ptr("device.alert.no_doctor", **_shown(ptr, f)))
        for doctor_id in doctors:
            kind = f"device:{f.kind}"
            open_ = [
                a for a in await uow.care.open_alerts_of_patient(kind, patient.id)
                if a.doctor_id == doctor_id and (a.level == "danger" or not danger)
            ]  # fmt: skip
            if open_:
                continue
            dtr = Translator((await uow.doctors.get(doctor_id) or patient).locale)
            await alerts.raise_alert(
                uow, patient_id=patient.id, doctor_id=doctor_id, kind=kind,
                ref_id=f.reading_id, level="danger" if danger else "alert",
                msgid="device.alert.doctor", params={"device": device.label, **_shown(dtr, f)},
                now=now,
            )  # fmt: skip
        for cg in await caregivers.for_alert(uow, patient.id, "checkins"):
            if cg.tg_user_id is None:
                continue
            ctr = Translator(await caregivers.locale_of(uow, cg))
            if danger:
                text = ctr("device.caregiver.danger", name=name, emergency_number=emergency_number)
            elif cg.details:
                text = ctr("device.caregiver.alert_details", name=name, **_shown(ctr, f))
            else:
                text = ctr("device.caregiver.alert", name=name)
            await Replier(uow, "patient", cg.tg_user_id).text(
                text, protect=True, priority=PRIORITY_URGENT if danger else PRIORITY_REPLY
            )
        if danger:
            await uow.audit.record(
                f"patient:{patient.id}", "redflag.raised", "reading", f.reading_id, {}
            )


# --- imported files -----------------------------------------------------------------------------

IMPORT_WAIT = timedelta(minutes=15)  # after "Import a file", the next file is taken until then
# A bot can download files of at most 20 MB through the Bot API (getFile); an Apple Health
# export.zip of that size holds an export.xml of several hundred MB.
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_IMPORT_ATTEMPTS = 3  # a file whose import was interrupted this often is given up
# Imported readings older than this are history: stored and charted, never alerted on.
IMPORT_ALERT_WITHIN = timedelta(hours=24)
FILE_SOURCES = {"apple_xml": "Apple Health", "apple_zip": "Apple Health", "csv": "CSV"}
_SUFFIX_KIND = {".zip": "apple_zip", ".xml": "apple_xml", ".csv": "csv", ".txt": "csv"}


def import_kind(file_name: str | None, mime_type: str | None) -> str | None:
    """What a sent file claims to be, from its name (or type): ``apple_zip``, ``apple_xml``,
    ``csv``, or None. The runner checks the content itself before reading it."""
    name = (file_name or "").casefold()
    for suffix, kind in _SUFFIX_KIND.items():
        if name.endswith(suffix):
            return kind
    mime = (mime_type or "").casefold()
    if mime in ("text/csv", "text/comma-separated-values"):
        return "csv"
    if mime in ("application/zip", "application/x-zip-compressed"):
        return "apple_zip"
    if mime in ("text/xml", "application/xml"):
        return "apple_xml"
    return None


async def busy_import(uow: UnitOfWork, patient: Patient) -> HealthImport | None:
    """The patient's import that is queued or running, if any."""
    found = await uow.devices.imports_of(patient.id, ("queued", "running"))
    return found[0] if found else None


async def ask_import(uow: UnitOfWork, patient: Patient, now: datetime) -> HealthImport:
    """ "Import a file": the next file the patient sends (within :data:`IMPORT_WAIT`) is read
    as readings. One import at a time (``device.import.busy``)."""
    if await busy_import(uow, patient) is not None:
        raise DeviceError("device.import.busy")
    for old in await uow.devices.imports_of(patient.id, ("waiting",)):
        old.status = "expired"
    job = await uow.devices.add_import(
        HealthImport(
            patient_id=patient.id, status="waiting", expires_at=now + IMPORT_WAIT, created_at=now
        )
    )
    await uow.audit.record(f"patient:{patient.id}", "device.import.ask", "import", job.id, {})
    return job


async def waiting_import(uow: UnitOfWork, patient_id: str, now: datetime) -> HealthImport | None:
    """The patient's "Import a file" that still waits for its file."""
    for job in await uow.devices.imports_of(patient_id, ("waiting",)):
        if followup.aware(job.expires_at) > now:
            return job
    return None


async def queue_import(
    uow: UnitOfWork,
    patient: Patient,
    job: HealthImport,
    *,
    file_id: str,
    file_size: int | None,
    file_name: str | None,
    mime_type: str | None,
) -> HealthImport:
    """The file the patient sent for a waiting import: refused when it is not a file Careline
    reads (``device.import.format``) or over :data:`MAX_IMPORT_BYTES`
    (``device.import.too_big``; the waiting import stays, for a smaller file), else queued
    for the import runner (bot/imports.py)."""
    kind = import_kind(file_name, mime_type)
    if kind is None:
        raise DeviceError("device.import.format")
    if file_size is not None and file_size > MAX_IMPORT_BYTES:
        raise DeviceError(
            "device.import.too_big",
            size_mb=f"{file_size / 1024 / 1024:.0f}",
            max_mb=MAX_IMPORT_BYTES // 1024 // 1024,
        )
    source = await uow.devices.file_source(patient.id, FILE_SOURCES[kind])
    job.status, job.kind, job.device_id = "queued", kind, source.id
    job.file_id, job.file_size = file_id, file_size
    await uow.audit.record(
        f"patient:{patient.id}", "device.import.file", "import", job.id,
        {"kind": kind, "bytes": file_size},
    )  # fmt: skip
    return job


def recent(done: Ingested, now: datetime) -> list[Stored]:
    """The stored readings of an import taken within :data:`IMPORT_ALERT_WITHIN` of now:
    the ones that go into care; older ones are history."""
    return [s for s in done.stored if now - s.reading.taken_at <= IMPORT_ALERT_WITHIN]
