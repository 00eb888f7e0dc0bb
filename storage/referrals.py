"""Persistence of referrals, referral slips and the hospital directory (flows/referrals.py,
flows/referral_wizard.py, flows/directory.py).

SQL and field encryption live here; flows call these methods."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.vault import Vault


class ReferralRepository:
    """Reads and writes referrals, referral slips and the hospital directory; seals and opens
    encrypted fields itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault
