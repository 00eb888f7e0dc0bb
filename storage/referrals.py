"""Persistence of referrals, referral slips and the hospital directory (flows/referrals.py,
flows/referral_wizard.py, flows/directory.py).

SQL and field encryption live here; flows call these methods."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Hospital, Referral
from storage.vault import Vault

DRAFT = "draft"


class ReferralRepository:
    """Reads and writes referrals, referral slips and the hospital directory; seals and opens
    encrypted fields itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    # --- referrals ---------------------------------------------------------------------------

    async def add(self, ref: Referral) -> Referral:
        """Insert a new referral (its id is assigned here, before anything is sealed)."""
        self._s.add(ref)
        await self._s.flush()
        return ref

    async def get(self, referral_id: str) -> Referral | None:
        """A referral by id."""
        return await self._s.get(Referral, referral_id)

    async def by_prefix(self, prefix: str) -> Referral | None:
        """The one referral whose id starts with ``prefix`` (a button's short id)."""
        rows = list(
            await self._s.scalars(select(Referral).where(Referral.id.startswith(prefix)).limit(2))
        )
        return rows[0] if len(rows) == 1 else None

    async def delete(self, ref: Referral) -> None:
        """Remove a referral row (a cancelled draft)."""
        await self._s.delete(ref)
        await self._s.flush()

    async def code_taken(self, code: str) -> bool:
        """Whether a referral already has this slip code."""
        return await self._s.scalar(select(Referral.id).where(Referral.code == code)) is not None

    async def by_code(self, code: str) -> Referral | None:
        """The referral with this (canonical) slip code."""
        return await self._s.scalar(select(Referral).where(Referral.code == code))

    async def for_patient(self, patient_id: str) -> list[Referral]:
        """A patient's referrals past draft, newest issue first."""
        rows = await self._s.scalars(
            select(Referral)
            .where(Referral.patient_id == patient_id, Referral.status != DRAFT)
            .order_by(Referral.issued_at.desc())
        )
        return list(rows)

    async def for_doctor(self, doctor_id: str, *, drafts: bool = False) -> list[Referral]:
        """A doctor's referrals (drafts only, or everything else), newest first."""
        cond = Referral.status == DRAFT
        rows = await self._s.scalars(
            select(Referral)
            .where(Referral.doctor_id == doctor_id, cond if drafts else ~cond)
            .order_by(Referral.created_at.desc())
        )
        return list(rows)

    async def open_draft(self, doctor_id: str, done_step: str) -> Referral | None:
        """The doctor's newest draft whose wizard step is not ``done_step``, if any."""
        return await self._s.scalar(
            select(Referral)
            .where(
                Referral.doctor_id == doctor_id,
                Referral.status == DRAFT,
                Referral.step != done_step,
            )
            .order_by(Referral.created_at.desc())
            .limit(1)
        )

    # --- the sealed content (draft answers, then the issued slip) -----------------------------

    async def _open_content(self, ref: Referral) -> str:
        assert ref.content_enc is not None
        return await self._vault.open(
            ref.patient_id, "referrals", "content_enc", ref.id, ref.content_enc
        )

    async def _seal_content(self, ref: Referral, text: str) -> None:
        ref.content_enc = await self._vault.seal(
            ref.patient_id, "referrals", "content_enc", ref.id, text
        )

    async def draft_answers(self, ref: Referral) -> dict[str, Any]:
        """A draft's answers so far, decrypted ({} when none are stored)."""
        if ref.content_enc is None:
            return {}
        data: dict[str, Any] = json.loads(await self._open_content(ref))
        return data

    async def save_draft_answers(self, ref: Referral, answers: dict[str, Any]) -> None:
        """Seal a draft's answers (the whole document) under the patient's key."""
        await self._seal_content(ref, json.dumps(answers))

    async def slip_content(self, ref: Referral) -> dict[str, Any]:
        """An issued slip's content document, decrypted (CryptoError when the key is gone)."""
        data: dict[str, Any] = json.loads(await self._open_content(ref))
        return data

    async def seal_slip_content(self, ref: Referral, canonical_json: str) -> None:
        """Seal an issued slip's canonical content under the patient's key."""
        await self._seal_content(ref, canonical_json)

    # --- the hospital directory ---------------------------------------------------------------

    async def hospitals(self, *, include_disabled: bool = False) -> list[Hospital]:
        """The directory's hospitals (active ones only unless asked), in no order."""
        q = select(Hospital)
        if not include_disabled:
            q = q.where(Hospital.active.is_(True))
        return list(await self._s.scalars(q))

    async def hospital(self, hospital_id: str) -> Hospital | None:
        """A hospital by its exact id."""
        return await self._s.get(Hospital, hospital_id)

    async def hospitals_by_prefix(self, prefix: str, limit: int = 2) -> list[Hospital]:
        """Up to ``limit`` hospitals whose id starts with ``prefix``."""
        return list(
            await self._s.scalars(
                select(Hospital).where(Hospital.id.startswith(prefix)).limit(limit)
            )
        )

    async def add_hospital(self, hospital: Hospital) -> Hospital:
        """Insert a new hospital."""
        self._s.add(hospital)
        await self._s.flush()
        return hospital
