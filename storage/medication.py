"""Persistence of medication plans and doses (flows/medication.py, flows/doses.py).

SQL and field encryption live here; flows call these methods."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.vault import Vault


class MedicationRepository:
    """Reads and writes medication plans and doses; seals and opens encrypted fields itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault
