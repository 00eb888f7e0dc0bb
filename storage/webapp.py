"""Mini App launch data used once (bot/bodymap_web.py): the replay guard's table.

Only the SHA-256 of Telegram's ``hash`` of an ``initData`` is kept, with its ``auth_date``;
rows whose ``auth_date`` is older than the freshness window go, because such data is refused
as expired before it is looked up here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import WebAppUse


class WebAppRepository:
    """Records each Mini App launch's signed data as used, once."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def take(self, digest: str, auth_date: datetime, now: datetime) -> bool:
        """Mark ``digest`` used; False when it was used before (the database decides, so two
        requests with the same data at once take it once). Commits with the caller's
        transaction, so a refused request leaves it unused."""
        try:
            async with self._s.begin_nested():
                self._s.add(WebAppUse(hash=digest, auth_date=auth_date, used_at=now))
                await self._s.flush()
        except IntegrityError:
            return False
        return True

    async def forget_older(self, before: datetime) -> int:
        """Drop the rows of launch data signed before ``before`` (too old to be taken)."""
        result = await self._s.execute(delete(WebAppUse).where(WebAppUse.auth_date < before))
        return int(getattr(result, "rowcount", 0) or 0)
