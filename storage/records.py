"""Persistence of a patient's whole record for export, erasure and retention (flows/export.py,
flows/privacy.py, flows/retention.py).

SQL and field encryption live here; flows call these methods."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.vault import Vault


class RecordsRepository:
    """Reads and writes a patient's whole record for export, erasure and retention; seals and opens
    encrypted fields itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault
