"""Persistence of the clinic's consultation services (flows/services.py). Clinic data only:
nothing here is sealed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ConsultationService


class ServiceRepository:
    """Reads and writes consultation services."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def all(self, *, include_disabled: bool = False) -> list[ConsultationService]:
        """Every service (active ones only unless asked), in no order."""
        q = select(ConsultationService)
        if not include_disabled:
            q = q.where(ConsultationService.active.is_(True))
        return list(await self._s.scalars(q))

    async def get(self, service_id: str) -> ConsultationService | None:
        """A service by its exact id."""
        return await self._s.get(ConsultationService, service_id)

    async def by_prefix(self, prefix: str, limit: int = 2) -> list[ConsultationService]:
        """Up to ``limit`` services whose id starts with ``prefix``."""
        return list(
            await self._s.scalars(
                select(ConsultationService)
                .where(ConsultationService.id.startswith(prefix))
                .limit(limit)
            )
        )

    async def add(self, service: ConsultationService) -> ConsultationService:
        """Insert a new service."""
        self._s.add(service)
        await self._s.flush()
        return service

    async def for_mode(self, mode: str) -> list[ConsultationService]:
        """The active services of one mode (clinic-wide, per department and per doctor)."""
        return list(
            await self._s.scalars(
                select(ConsultationService).where(
                    ConsultationService.mode == mode, ConsultationService.active.is_(True)
                )
            )
        )
