"""Persistence of e-prescriptions (flows/prescriptions.py).

SQL and field encryption live here; flows call these methods. Every sealed field is under the
patient's key, or under the case's own key once a kept record moved there (``key_owner``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Prescription
from storage.vault import Vault

DRAFT = "draft"
TABLE = "prescriptions"


def owner(rx: Prescription) -> str:
    """Whose key seals the prescription's fields."""
    return rx.key_owner or rx.patient_id


class PrescriptionRepository:
    """Reads and writes prescriptions; seals and opens their encrypted fields itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    async def add(self, rx: Prescription) -> Prescription:
        """Insert a new prescription (its id is assigned here, before anything is sealed)."""
        self._s.add(rx)
        await self._s.flush()
        return rx

    async def get(self, rx_id: str) -> Prescription | None:
        """A prescription by id."""
        return await self._s.get(Prescription, rx_id)

    async def locked(self, rx_id: str) -> Prescription | None:
        """A prescription by id, read again from the database and locked for this transaction
        on PostgreSQL (two pharmacies dispensing at once: the second sees the first's mark)."""
        return await self._s.scalar(
            select(Prescription)
            .where(Prescription.id == rx_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def by_prefix(self, prefix: str) -> Prescription | None:
        """The one prescription whose id starts with ``prefix`` (a button's short id)."""
        rows = list(
            await self._s.scalars(
                select(Prescription).where(Prescription.id.startswith(prefix)).limit(2)
            )
        )
        return rows[0] if len(rows) == 1 else None

    async def delete(self, rx: Prescription) -> None:
        """Remove a prescription row (a cancelled draft)."""
        await self._s.delete(rx)
        await self._s.flush()

    async def code_taken(self, code: str) -> bool:
        """Whether a prescription already has this code."""
        found = await self._s.scalar(select(Prescription.id).where(Prescription.code == code))
        return found is not None

    async def by_code(self, code: str) -> Prescription | None:
        """The prescription with this (canonical) code."""
        return await self._s.scalar(select(Prescription).where(Prescription.code == code))

    async def open_draft(self, doctor_id: str) -> Prescription | None:
        """The doctor's open draft, if any (newest)."""
        return await self._s.scalar(
            select(Prescription)
            .where(Prescription.doctor_id == doctor_id, Prescription.status == DRAFT)
            .order_by(Prescription.created_at.desc())
            .limit(1)
        )

    async def for_patient(self, patient_id: str) -> list[Prescription]:
        """A patient's prescriptions past draft, newest first."""
        rows = await self._s.scalars(
            select(Prescription)
            .where(Prescription.patient_id == patient_id, Prescription.status != DRAFT)
            .order_by(Prescription.issued_at.desc())
        )
        return list(rows)

    async def for_case(self, consultation_id: str) -> list[Prescription]:
        """A case's prescriptions past draft, newest first."""
        rows = await self._s.scalars(
            select(Prescription)
            .where(Prescription.consultation_id == consultation_id, Prescription.status != DRAFT)
            .order_by(Prescription.issued_at.desc())
        )
        return list(rows)

    async def with_status(self, statuses: Sequence[str], limit: int = 50) -> list[Prescription]:
        """Prescriptions in these states, oldest issue first (a pharmacist's review list)."""
        rows = await self._s.scalars(
            select(Prescription)
            .where(Prescription.status.in_(list(statuses)))
            .order_by(Prescription.issued_at)
            .limit(limit)
        )
        return list(rows)

    async def delete_for_patient(self, patient_id: str) -> None:
        """Remove the prescriptions still under the patient's own key (an erasure)."""
        for rx in list(
            await self._s.scalars(
                select(Prescription).where(
                    Prescription.patient_id == patient_id, Prescription.key_owner.is_(None)
                )
            )
        ):
            await self._s.delete(rx)
        await self._s.flush()

    async def delete_for_case(self, consultation_id: str) -> None:
        """Remove a purged record's prescriptions."""
        for rx in await self.for_case_any(consultation_id):
            await self._s.delete(rx)
        await self._s.flush()

    async def for_case_any(self, consultation_id: str) -> list[Prescription]:
        """Every prescription of a case, drafts included."""
        return list(
            await self._s.scalars(
                select(Prescription).where(Prescription.consultation_id == consultation_id)
            )
        )

    async def mark_once(
        self, rx_id: str, *, status_from: str, status_to: str, at: datetime
    ) -> bool:
        """One conditional UPDATE: ``status_from`` → ``status_to`` (dispensing), True only for
        the one transaction that made the change (a second pharmacy at the same moment gets
        False, on SQLite and on PostgreSQL alike)."""
        result = await self._s.execute(
            update(Prescription)
            .where(Prescription.id == rx_id, Prescription.status == status_from)
            .values(status=status_to, dispensed_at=at)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def refresh(self, rx: Prescription) -> None:
        """Read the row again (after a conditional UPDATE)."""
        await self._s.refresh(rx)

    # --- sealed fields -----------------------------------------------------------------------

    async def _open(self, rx: Prescription, column: str, blob: bytes) -> str:
        return await self._vault.open(owner(rx), TABLE, column, rx.id, blob)

    async def _seal(self, rx: Prescription, column: str, text: str) -> bytes:
        return await self._vault.seal(owner(rx), TABLE, column, rx.id, text)

    async def content(self, rx: Prescription) -> dict[str, Any]:
        """The draft's answers or the issued canonical content ({} when none)."""
        if rx.content_enc is None:
            return {}
        data: dict[str, Any] = json.loads(await self._open(rx, "content_enc", rx.content_enc))
        return data

    async def set_content(self, rx: Prescription, text: str) -> None:
        """Seal the draft's answers (JSON) or the issued canonical content."""
        rx.content_enc = await self._seal(rx, "content_enc", text)

    async def review(self, rx: Prescription) -> dict[str, Any]:
        """The pharmacist's review note ({} when none)."""
        if rx.review_enc is None:
            return {}
        data: dict[str, Any] = json.loads(await self._open(rx, "review_enc", rx.review_enc))
        return data

    async def set_review(self, rx: Prescription, review: dict[str, Any]) -> None:
        """Seal the pharmacist's review note."""
        rx.review_enc = await self._seal(rx, "review_enc", json.dumps(review, ensure_ascii=False))

    async def dispensing(self, rx: Prescription) -> dict[str, Any]:
        """What was dispensed, where ({} when not yet)."""
        if rx.dispense_enc is None:
            return {}
        data: dict[str, Any] = json.loads(await self._open(rx, "dispense_enc", rx.dispense_enc))
        return data

    async def set_dispensing(self, rx: Prescription, record: dict[str, Any]) -> None:
        """Seal the dispensing record (pharmacy, quantities)."""
        rx.dispense_enc = await self._seal(
            rx, "dispense_enc", json.dumps(record, ensure_ascii=False)
        )

    async def reseal(self, rx: Prescription, new_owner: str) -> None:
        """Move every sealed field under ``new_owner``'s key (a kept record after erasure)."""
        values = {
            column: await self._open(rx, column, blob)
            for column in ("content_enc", "review_enc", "dispense_enc")
            if (blob := getattr(rx, column)) is not None
        }
        rx.key_owner = new_owner
        for column, text in values.items():
            setattr(rx, column, await self._seal(rx, column, text))
