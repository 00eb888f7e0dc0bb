"""Persistence of a patient's whole record for export, erasure and retention (flows/export.py,
flows/privacy.py, flows/retention.py).

SQL and field encryption live here; flows call these methods."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    CareAlert,
    Caregiver,
    CaseMessage,
    CheckIn,
    Consultation,
    Dose,
    FollowUpPlan,
    MedicationPlan,
    Reading,
    Referral,
)
from storage.vault import Vault

# What an erasure deletes of the patient's chronic care (their scheduled events go first).
CHRONIC_CARE = (Dose, MedicationPlan, CheckIn, Reading, FollowUpPlan, CareAlert)


def enc_columns(model: Any, *, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The model's ciphertext columns, so a column added later is re-sealed too."""
    return tuple(
        c.key for c in model.__table__.columns if c.key.endswith("_enc") and c.key not in skip
    )


class RecordsRepository:
    """Reads and writes a patient's whole record for export, erasure and retention; seals and opens
    encrypted fields itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    # -- the export's reads ----------------------------------------------------------------------

    async def referrals(self, patient_id: str, *, excluding: str) -> list[Referral]:
        """The patient's referrals but those in status ``excluding`` (drafts), oldest first."""
        rows = await self._s.scalars(
            select(Referral)
            .where(Referral.patient_id == patient_id, Referral.status != excluding)
            .order_by(Referral.created_at)
        )
        return list(rows)

    async def followup_plans(self, patient_id: str) -> list[FollowUpPlan]:
        """The patient's follow-up plans (any status), oldest first."""
        rows = await self._s.scalars(
            select(FollowUpPlan)
            .where(FollowUpPlan.patient_id == patient_id)
            .order_by(FollowUpPlan.created_at)
        )
        return list(rows)

    async def readings(self, patient_id: str) -> list[Reading]:
        """The patient's readings in the order they were taken."""
        rows = await self._s.scalars(
            select(Reading)
            .where(Reading.patient_id == patient_id)
            .order_by(Reading.taken_at, Reading.id)
        )
        return list(rows)

    async def reading_value(self, reading: Reading) -> str:
        """A reading's value, decrypted under its patient's key."""
        return await self._vault.open(
            reading.patient_id, "readings", "value_enc", reading.id, reading.value_enc
        )

    async def checkins(self, patient_id: str) -> list[CheckIn]:
        """The patient's check-ins (any status) by when they were due."""
        rows = await self._s.scalars(
            select(CheckIn).where(CheckIn.patient_id == patient_id).order_by(CheckIn.due_at)
        )
        return list(rows)

    async def caregivers(self, patient_id: str) -> list[Caregiver]:
        """The patient's caregivers (any status), oldest invitation first."""
        rows = await self._s.scalars(
            select(Caregiver)
            .where(Caregiver.patient_id == patient_id)
            .order_by(Caregiver.created_at)
        )
        return list(rows)

    async def caregiver_name(self, caregiver: Caregiver) -> str:
        """The name the patient gave a caregiver ("" when none), decrypted under the patient's
        key."""
        if caregiver.name_enc is None:
            return ""
        return await self._vault.open(
            caregiver.patient_id, "caregivers", "name_enc", caregiver.id, caregiver.name_enc
        )

    # -- erasure ---------------------------------------------------------------------------------

    async def delete_chronic_care(self, patient_id: str) -> None:
        """Delete the patient's medication plans and doses, follow-up plans, check-ins,
        readings and care alerts."""
        for model in CHRONIC_CARE:
            await self._s.execute(delete(model).where(model.patient_id == patient_id))

    async def delete_caregivers(self, patient_id: str) -> None:
        """Delete every caregiver row of the patient (nobody is told)."""
        await self._s.execute(delete(Caregiver).where(Caregiver.patient_id == patient_id))

    async def destroy_key(self, owner: str) -> None:
        """Crypto-shred an owner (a patient, or a kept case): destroy their data key; once the
        unit of work commits, the key share outside the database goes too."""
        await self._vault.destroy(owner)

    # -- retention of consultation records -------------------------------------------------------

    async def reseal(self, row: Any, table: str, row_id: str, old: str, new: str) -> None:
        """Move every ciphertext field of one row (but the case's ``record_enc``) from
        ``old``'s data key to ``new``'s."""
        for column in enc_columns(type(row), skip=("record_enc",)):
            blob = getattr(row, column)
            if blob is None:
                continue
            plain = await self._vault.open_bytes(old, table, column, row_id, blob)
            setattr(row, column, await self._vault.seal_bytes(new, table, column, row_id, plain))

    async def delete_messages(self, case: Consultation) -> int:
        """Delete every message of a case; returns how many."""
        res = await self._s.execute(
            delete(CaseMessage).where(CaseMessage.consultation_id == case.id)
        )
        return int(getattr(res, "rowcount", 0) or 0)

    async def delete_case(self, case: Consultation) -> None:
        """Delete the case row (its messages first: :meth:`delete_messages`)."""
        await self._s.delete(case)
