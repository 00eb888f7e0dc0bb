"""Persistence of caregivers, care alerts and chart data (flows/caregivers.py, flows/alerts.py,
flows/charts.py).

SQL and field encryption live here; flows call these methods."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.vault import Vault


class CareRepository:
    """Reads and writes caregivers, care alerts and chart data; seals and opens encrypted fields
    itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault
