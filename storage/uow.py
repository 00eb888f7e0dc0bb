"""Unit of work: one transaction per use case. Repositories never commit; this does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.appointments import AppointmentRepository
from storage.audit import RING_INFO, AuditLog
from storage.bookings import BookingRepository
from storage.care import CareRepository
from storage.consultations import ConsultationRepository
from storage.crypto import KeyRing
from storage.db import WriterGate, is_sqlite, make_engine
from storage.devices import DeviceRepository
from storage.doctors import DoctorRepository
from storage.followups import FollowUpRepository
from storage.keystore import KeyStore, beside
from storage.medication import MedicationRepository
from storage.prescriptions import PrescriptionRepository
from storage.records import RecordsRepository
from storage.referrals import ReferralRepository
from storage.reports import ReportRepository
from storage.repositories import (
    ConsentRepository,
    EventRepository,
    InboxRepository,
    IntakeRepository,
    OutboxRepository,
    PatientRepository,
)
from storage.services import ServiceRepository
from storage.vault import KEYSTORE_INFO, KeyCache, Vault
from storage.webapp import WebAppRepository


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
        self._ring = ring
        # audit verify and the checkpoint writer find the key ring on the session
        session.info.setdefault(RING_INFO, ring)
        self._postgres = postgres
        self._committed = False

    @property
    def ring(self) -> KeyRing:
        """The clinic's key ring (slip signing keys, blind indexes), the vault's own ring:
        callers above storage reach it here, never through the vault."""
        return self._ring

    # Repositories are made on first use: most transactions touch two or three of them.
    @cached_property
    def patients(self) -> PatientRepository:
        return PatientRepository(self.session, self.vault)

    @cached_property
    def consents(self) -> ConsentRepository:
        return ConsentRepository(self.session)

    @cached_property
    def intakes(self) -> IntakeRepository:
        return IntakeRepository(self.session, self.vault)

    @cached_property
    def events(self) -> EventRepository:
        return EventRepository(self.session, self._postgres)

    @cached_property
    def doctors(self) -> DoctorRepository:
        return DoctorRepository(self.session, self.vault)

    @cached_property
    def consultations(self) -> ConsultationRepository:
        return ConsultationRepository(self.session, self.vault)

    @cached_property
    def reports(self) -> ReportRepository:
        return ReportRepository(self.session, self.vault)

    @cached_property
    def inbox(self) -> InboxRepository:
        return InboxRepository(self.session, self.vault)

    @cached_property
    def outbox(self) -> OutboxRepository:
        return OutboxRepository(self.session, self.vault)

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.session, self._ring)

    @cached_property
    def followups(self) -> FollowUpRepository:
        return FollowUpRepository(self.session, self.vault)

    @cached_property
    def devices(self) -> DeviceRepository:
        return DeviceRepository(self.session, self.vault)

    @cached_property
    def medication(self) -> MedicationRepository:
        return MedicationRepository(self.session, self.vault)

    @cached_property
    def referrals(self) -> ReferralRepository:
        return ReferralRepository(self.session, self.vault)

    @cached_property
    def appointments(self) -> AppointmentRepository:
        return AppointmentRepository(self.session, self.vault)

    @cached_property
    def prescriptions(self) -> PrescriptionRepository:
        return PrescriptionRepository(self.session, self.vault)

    @cached_property
    def care(self) -> CareRepository:
        return CareRepository(self.session, self.vault)

    @cached_property
    def records(self) -> RecordsRepository:
        return RecordsRepository(self.session, self.vault)

    @cached_property
    def webapp(self) -> WebAppRepository:
        return WebAppRepository(self.session)

    @cached_property
    def services(self) -> ServiceRepository:
        return ServiceRepository(self.session)

    @cached_property
    def bookings(self) -> BookingRepository:
        return BookingRepository(self.session, self._postgres)

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
