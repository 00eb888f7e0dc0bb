"""The patient's own data: see it, export it, erase it (crypto-shredding, keeping the
consultation records the law keeps: see :mod:`flows.retention`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from flows import booking, caregivers, retention
from flows import consultation as cases
from flows.export import case_resources, export_for_patient
from flows.fhir import InlineBudget, case_bundle
from flows.onboarding import CONSENT_KIND, CONSENT_VERSION, Actor
from storage.models import Consent, Consultation, Patient, utcnow
from storage.uow import UnitOfWork


@dataclass(frozen=True)
class DataSummary:
    """What Careline stores about a patient (for /mydata)."""

    profile: dict[str, str | None]
    timezone: str | None
    locale: str
    consents: list[Consent]
    audit_count: int
    created: datetime


async def view_profile(uow: UnitOfWork, patient: Patient) -> dict[str, str | None]:
    """Decrypt the profile for the patient themself; the access is audited."""
    await uow.audit.record(Actor(patient.id).ref, "profile.view", "patient", patient.id)
    return await uow.patients.profile(patient)


async def summary(uow: UnitOfWork, patient: Patient) -> DataSummary:
    """Everything stored about the patient, described."""
    await uow.audit.record(Actor(patient.id).ref, "record.view", "patient", patient.id)
    links = await uow.audit.for_record("patient", patient.id)
    return DataSummary(
        profile=await uow.patients.profile(patient),
        timezone=patient.timezone,
        locale=patient.locale,
        consents=await uow.consents.for_patient(patient.id),
        audit_count=len(links),
        created=patient.created_at,
    )


@dataclass(frozen=True)
class CaseEntry:
    """One consultation as the patient's /history shows it."""

    case: Consultation
    doctor: dict[str, str] | None  # name and title, once a doctor accepted
    summary: str | None  # the advice, once closed
    rating: int | None


async def consultations(uow: UnitOfWork, patient: Patient) -> list[CaseEntry]:
    """The patient's consultations, newest first, decrypted for them; the access is audited."""
    await uow.audit.record(Actor(patient.id).ref, "consultation.history", "patient", patient.id)
    out = []
    for case in await uow.consultations.for_patient(patient.id):
        doctor = await uow.doctors.get(case.doctor_id) if case.doctor_id else None
        card = await cases.doctor_card(uow, doctor) if doctor is not None else None
        summary = (
            await uow.consultations.open_text(case, "summary_enc", case.summary_enc)
            if case.summary_enc is not None
            else None
        )
        out.append(
            CaseEntry(
                case=case,
                doctor={"name": card["name"], "title": card["title"]} if card else None,
                summary=summary,
                rating=case.rating,
            )
        )
    return out


async def export_case(
    uow: UnitOfWork, patient: Patient, case_id: str
) -> tuple[Consultation, bytes] | None:
    """One of the patient's consultations as a FHIR Bundle (JSON) of Communication
    resources, or None when it is not theirs; the export is audited."""
    case = await uow.consultations.get(case_id)
    if case is None or case.patient_id != patient.id:
        return None
    await uow.audit.record(Actor(patient.id).ref, "consultation.export", "consultation", case.id)
    bundle = case_bundle(case, await case_resources(uow, case, InlineBudget()), now=utcnow())
    return case, json.dumps(bundle, ensure_ascii=False, indent=2).encode("utf-8")


async def export(uow: UnitOfWork, patient: Patient, now: datetime | None = None) -> bytes:
    """The patient's whole record as a FHIR R4 Bundle (JSON, :mod:`flows.export`): profile,
    intakes, consultations, medication plans and doses, follow-ups and readings, referrals,
    consents and caregivers, and the access log; the export itself is audited."""
    return await export_for_patient(uow, patient, now=now)


@dataclass(frozen=True)
class ErasurePreview:
    """What an erasure would do to the patient's consultations (case numbers)."""

    kept: list[int]  # records a doctor took part in, kept as the law requires
    cancelled: list[int]  # open cases that are cancelled first


async def erasure_preview(
    uow: UnitOfWork, patient: Patient, policy: retention.Policy
) -> ErasurePreview:
    """For the /delete confirmation and its done message: what is kept and cancelled."""
    kept = await retention.kept_cases(uow, patient, policy)
    open_cases = await cases.patient_cases(uow, patient, cases.CANCELLABLE)
    return ErasurePreview(
        kept=sorted(c.number for c in kept), cancelled=sorted(c.number for c in open_cases)
    )


async def erase(
    uow: UnitOfWork,
    patient: Patient,
    *,
    bot: str,
    policy: retention.Policy | None = None,
    now: datetime | None = None,
    notify: retention.Notify | None = None,
) -> bool:
    """Crypto-shred the patient: destroy their data key, delete their row and unsent messages.

    Open consultations are cancelled first (``notify`` tells the doctor of an active one).
    Consultations a doctor took part in are kept as the law requires (``policy``, default 15
    years for the record and 3 for the chat), moved under a key of their own before the
    patient's key is destroyed (:mod:`flows.retention`); other cases are deleted. Also kept:
    consent decisions (proof, by random id only) and the audit chain. Intakes and abuse
    reports, medication and follow-up plans, doses, check-ins, readings and care alerts are
    deleted (their texts were under the destroyed key anyway). Returns whether
    any medical record was kept; the audit record lists the kept case ids.
    """
    policy = policy or retention.Policy()
    now = now or utcnow()
    actor = Actor(patient.id).ref
    await retention.cancel_open(uow, patient, now=now, notify=notify)
    if patient.consent_version:
        await uow.consents.record(patient.id, CONSENT_KIND, CONSENT_VERSION, "withdrawn")
    await uow.outbox.drop_pending_for_chat(bot, patient.tg_user_id)
    # Bookings ahead cancelled (a Stars refund queued after the drop above), their ids gone.
    await booking.erase_for_patient(uow, patient, now)
    # Before the kept records' purge events are scheduled under the same (random) id.
    await uow.events.delete_for_patient(patient.id)
    kept = await retention.settle_cases(uow, patient, now=now, policy=policy)
    # Hospital appointments: places released, rows gone (their outcome was under this key).
    await uow.appointments.delete_for_patient(patient.id)
    # Prescriptions of kept records moved under the case's key; the rest go.
    await uow.prescriptions.delete_for_patient(patient.id)
    await uow.reports.delete_for_patient(patient.id)
    await uow.intakes.delete_for_patient(patient.id)
    # Their contents were under the key about to be destroyed; their events are gone already.
    await uow.records.delete_chronic_care(patient.id)
    await uow.devices.delete_for_patient(patient.id)  # their tokens stop working at once
    await caregivers.erase_for_patient(uow, patient, bot=bot)  # each active one is told
    # The data key, and once this unit commits the key share outside the database
    # (storage/keystore.py): database backups taken before now cannot open the patient.
    await uow.records.destroy_key(patient.id)
    await uow.patients.delete(patient)
    await uow.audit.record(
        actor, "patient.erase", "patient", patient.id, {"kept": [c.id for c in kept]}
    )
    return bool(kept)


async def reapply_erasure(uow: UnitOfWork, owner_id: str, *, actor: str = "admin:cli") -> str:
    """``restore``: the restored database still holds an owner the key store's erasure ledger
    says was erased after the backup was taken. Their key share is gone, so nothing of theirs
    can be read; this destroys their data key again and deletes what :func:`erase` deletes
    (nothing is decrypted, nobody is told: that happened at the erasure). Returns what the
    owner was: ``patient``, ``case`` (a kept record purged since) or ``key``."""
    kind = "key"
    patient = await uow.patients.get(owner_id)
    if patient is not None:
        kind = "patient"
        await uow.outbox.drop_pending_for_chat("patient", patient.tg_user_id)
        await uow.events.delete_for_patient(owner_id)
        for case in await uow.consultations.for_patient(owner_id):
            if case.key_owner in (None, owner_id):  # a record kept under its own key stays
                await retention.drop_case(uow, case)
        await uow.prescriptions.delete_for_patient(owner_id)
        await uow.appointments.delete_for_patient(owner_id)
        await uow.reports.delete_for_patient(owner_id)
        await uow.intakes.delete_for_patient(owner_id)
        await uow.records.delete_chronic_care(owner_id)
        await uow.records.delete_caregivers(owner_id)
        await uow.patients.delete(patient)
    else:
        record = await uow.consultations.get(owner_id)
        if record is not None and record.key_owner == owner_id:
            kind = "case"
            await retention.drop_case(uow, record)
    await uow.records.destroy_key(owner_id)
    await uow.audit.record(actor, "erasure.reapply", kind, owner_id, {})
    return kind
