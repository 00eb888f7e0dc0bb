"""Doctors and their encrypted identity fields (owner of the data key: the doctor's id)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Doctor, new_id, utcnow
from storage.vault import Vault

IDENTITY_FIELDS = ("name", "licence", "authority", "hospital", "title", "phone", "decision_reason")


class DoctorRepository:
    """Doctors; repositories never commit."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    async def by_tg_user(self, tg_user_id: int) -> Doctor | None:
        """The doctor using this Telegram account, if any."""
        return await self._s.scalar(select(Doctor).where(Doctor.tg_user_id == tg_user_id))

    async def get(self, doctor_id: str) -> Doctor | None:
        """A doctor by id."""
        return await self._s.get(Doctor, doctor_id)

    async def by_id_prefix(self, prefix: str, limit: int = 2) -> list[Doctor]:
        """Doctors whose id starts with ``prefix`` (at most ``limit``: enough to tell a unique
        match from an ambiguous one)."""
        rows = await self._s.scalars(
            select(Doctor).where(Doctor.id.startswith(prefix)).limit(limit)
        )
        return list(rows)

    async def locked(self, doctor_id: str) -> Doctor | None:
        """A doctor by id, locked for this transaction (PostgreSQL) and re-read from the
        database (a decision by another admin is seen)."""
        return await self._s.get(Doctor, doctor_id, with_for_update=True, populate_existing=True)

    async def add(self, doctor: Doctor) -> Doctor:
        """Insert a new doctor (id assigned in Python, bound into ciphertexts)."""
        doctor.id = doctor.id or new_id()
        self._s.add(doctor)
        await self._s.flush()
        return doctor

    async def set_field(self, doctor: Doctor, field: str, value: str | None) -> None:
        """Encrypt and store one identity field (``None`` clears it)."""
        if field not in IDENTITY_FIELDS:
            raise ValueError(f"unknown doctor field {field!r}")
        column = f"{field}_enc"
        blob = (
            None
            if value is None
            else await self._vault.seal(doctor.id, "doctors", column, doctor.id, value)
        )
        setattr(doctor, column, blob)
        doctor.updated_at = utcnow()

    async def get_field(self, doctor: Doctor, field: str) -> str | None:
        """Decrypt one identity field."""
        blob = getattr(doctor, f"{field}_enc")
        if blob is None:
            return None
        return await self._vault.open(doctor.id, "doctors", f"{field}_enc", doctor.id, blob)

    async def set_licence_photo(self, doctor: Doctor, data: bytes | None) -> None:
        """Encrypt and store the licence photo's bytes."""
        doctor.licence_photo_enc = (
            None
            if data is None
            else await self._vault.seal_bytes(
                doctor.id, "doctors", "licence_photo_enc", doctor.id, data
            )
        )

    async def licence_photo(self, doctor: Doctor) -> bytes | None:
        """The decrypted licence photo."""
        if doctor.licence_photo_enc is None:
            return None
        return await self._vault.open_bytes(
            doctor.id, "doctors", "licence_photo_enc", doctor.id, doctor.licence_photo_enc
        )

    async def with_status(self, *statuses: str, role: str | None = None) -> list[Doctor]:
        """Doctors (and pharmacists) in any of these statuses, oldest application first;
        ``role`` keeps only doctors or only pharmacists."""
        q = select(Doctor).where(Doctor.status.in_(statuses))
        if role is not None:
            q = q.where(Doctor.role == role)
        rows = await self._s.scalars(q.order_by(Doctor.created_at))
        return list(rows)
