"""Persistence of follow-up plans, check-ins, recalls and referral follow-ups (flows/followup.py,
flows/referral_followup.py).

SQL and field encryption live here; flows call these methods."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.vault import Vault


class FollowUpRepository:
    """Reads and writes follow-up plans, check-ins, recalls and referral follow-ups; seals and
    opens encrypted fields itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault
