"""Unit of work: one transaction per use case. Repositories never commit; this does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.audit import AuditLog
from storage.consultations import ConsultationRepository
from storage.crypto import KeyRing
from storage.db import WriterGate, is_sqlite, make_engine
from storage.doctors import DoctorRepository
from storage.keystore import KeyStore, beside
from storage.reports import ReportRepository
from storage.repositories import (
    ConsentRepository,
    EventRepository,
    InboxRepository,
    IntakeRepository,
    OutboxRepository,
    PatientRepository,
)
from storage.vault import KEYSTORE_INFO, KeyCache, Vault


class UnitOfWork:
    """Repositories sharing one session and one transaction."""

    def __init__(
        self,
        session: AsyncSession,
        ring: KeyRing,
        cache: KeyCache,
        *,
        postgres: bool = False,
        keystore: KeyStore | None = None,
    ) -> None:
        self.session = session
        if keystore is not None:
            session.info[KEYSTORE_INFO] = keystore
        self.vault = Vault(session, ring, cache, keystore)
        self.patients = PatientRepository(session, self.vault)
        self.consents = ConsentRepository(session)
        self.intakes = IntakeRepository(session, self.vault)
        self.events = EventRepository(session, postgres)
        self.doctors = DoctorRepository(session, self.vault)
        self.consultations = ConsultationRepository(session, self.vault)
        self.reports = ReportRepository(session, self.vault)
        self.inbox = InboxRepository(session, self.vault)
        self.outbox = OutboxRepository(session, self.vault)
        self.audit = AuditLog(session, ring)
        self._committed = False

    async def commit(self) -> None:
        """Commit everything done in this unit; then the key shares of the data keys it
        destroyed are deleted from the key store (never before: a failed commit keeps them)."""
        await self.session.commit()
        self._committed = True
        await self.vault.forget_destroyed()

    async def rollback(self) -> None:
        """Throw away everything done in this unit."""
        await self.session.rollback()


class Database:
    """The engine, the key ring, the key store and the writer gate; hands out units of work.

    ``keystore``: the key store (:mod:`storage.keystore`); by default the one beside the keys
    file, as the bot opens it."""

    def __init__(
        self,
        url: str,
        ring: KeyRing,
        *,
        echo: bool = False,
        keystore: KeyStore | None = None,
        **options: Any,
    ) -> None:
        self.url = url
        self.options = options
        self.keystore = keystore or KeyStore.open(beside(ring.path))
        self.engine: AsyncEngine = make_engine(url, echo=echo, **options)
        self.sqlite = is_sqlite(url)
        self.ring = ring
        self.cache = KeyCache()
        self.gate = WriterGate(self.sqlite)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def uow(self) -> AsyncIterator[UnitOfWork]:
        """One transaction; rolled back unless the caller commits."""
        async with self.gate, self._sessions() as session:
            unit = UnitOfWork(
                session, self.ring, self.cache, postgres=not self.sqlite, keystore=self.keystore
            )
            try:
                yield unit
            except BaseException:
                await session.rollback()
                raise
            if not unit._committed:
                await session.rollback()

    async def dispose(self) -> None:
        """Close all connections and the key store."""
        await self.engine.dispose()
        self.keystore.close()
