"""Persistence of hospital services, slots and appointments (flows/appointments.py).

SQL and the sealing of the visit's outcome live here; flows call these methods."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import DeskInvite, HospitalAppointment, HospitalService, HospitalSlot, utcnow
from storage.vault import Vault

TABLE = "hospital_appointments"
OPEN = ("booked", "arrived")


class AppointmentRepository:
    """Reads and writes hospital services, slots and appointments."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    # --- services and slots (clinic data) -----------------------------------------------------

    async def add_service(self, service: HospitalService) -> HospitalService:
        """Insert a service."""
        self._s.add(service)
        await self._s.flush()
        return service

    async def service(self, service_id: str) -> HospitalService | None:
        """A service by id."""
        return await self._s.get(HospitalService, service_id)

    async def services(self, hospital_id: str) -> list[HospitalService]:
        """A hospital's active services."""
        rows = await self._s.scalars(
            select(HospitalService)
            .where(HospitalService.hospital_id == hospital_id, HospitalService.active.is_(True))
            .order_by(HospitalService.department, HospitalService.kind)
        )
        return list(rows)

    async def add_slot(self, slot: HospitalSlot) -> bool:
        """Insert a slot unless the service has one at that start already (False then)."""
        found = await self._s.scalar(
            select(HospitalSlot.id).where(
                HospitalSlot.service_id == slot.service_id,
                HospitalSlot.starts_at == slot.starts_at,
            )
        )
        if found is not None:
            return False
        self._s.add(slot)
        await self._s.flush()
        return True

    async def slot(self, slot_id: str) -> HospitalSlot | None:
        """A slot by id."""
        return await self._s.get(HospitalSlot, slot_id)

    async def free_slots(
        self, service_ids: list[str], after: datetime, before: datetime, limit: int = 40
    ) -> list[HospitalSlot]:
        """Slots of these services starting in [after, before) with room left, soonest first."""
        if not service_ids:
            return []
        rows = await self._s.scalars(
            select(HospitalSlot)
            .where(
                HospitalSlot.service_id.in_(service_ids),
                HospitalSlot.starts_at >= after,
                HospitalSlot.starts_at < before,
                HospitalSlot.booked < HospitalSlot.capacity,
            )
            .order_by(HospitalSlot.starts_at)
            .limit(limit)
        )
        return list(rows)

    async def take(self, slot_id: str) -> bool:
        """One conditional UPDATE: one more booked, only while there is room (of two patients
        for the last place exactly one gets it, on SQLite and PostgreSQL alike)."""
        result = await self._s.execute(
            update(HospitalSlot)
            .where(HospitalSlot.id == slot_id, HospitalSlot.booked < HospitalSlot.capacity)
            .values(booked=HospitalSlot.booked + 1)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def release(self, slot_id: str) -> None:
        """One place back (a cancellation)."""
        await self._s.execute(
            update(HospitalSlot)
            .where(HospitalSlot.id == slot_id, HospitalSlot.booked > 0)
            .values(booked=HospitalSlot.booked - 1)
            .execution_options(synchronize_session=False)
        )

    # --- appointments -----------------------------------------------------------------------

    async def add(self, appt: HospitalAppointment) -> HospitalAppointment:
        """Insert an appointment."""
        self._s.add(appt)
        await self._s.flush()
        return appt

    async def add_open(self, appt: HospitalAppointment) -> bool:
        """Insert a booked appointment unless its referral has an open one already (the
        database's partial unique index decides, so two bookings racing on PostgreSQL cannot
        both land); False then, with nothing written."""
        try:
            async with self._s.begin_nested():
                self._s.add(appt)
                await self._s.flush()
        except IntegrityError:
            return False
        return True

    async def reslot(self, appt_id: str, version: int, slot_id: str) -> bool:
        """One conditional UPDATE: a booked appointment moves to another slot, only from the
        version the caller saw."""
        result = await self._s.execute(
            update(HospitalAppointment)
            .where(
                HospitalAppointment.id == appt_id,
                HospitalAppointment.version == version,
                HospitalAppointment.status == "booked",
            )
            .values(slot_id=slot_id, version=version + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def moved_from(self, appt: HospitalAppointment) -> list[str]:
        """The slots the appointment was moved away from, oldest first."""
        return [x for x in (appt.moved_from or "").split(",") if x]

    async def note_moved(self, appt: HospitalAppointment, old_slot_id: str) -> None:
        """Remember a slot the appointment was moved away from."""
        appt.moved_from = ",".join([*self.moved_from(appt), old_slot_id][-20:])
        await self._s.flush()

    def attachment_ids(self, appt: HospitalAppointment) -> list[int]:
        """The case messages holding the desk's files for this appointment, oldest first."""
        return [int(x) for x in (appt.attachments or "").split(",") if x.strip().isdigit()]

    async def add_attachment(self, appt: HospitalAppointment, message_id: int) -> None:
        """Note one more file (kept, sealed, as a message of the referral's case)."""
        appt.attachments = ",".join(str(i) for i in [*self.attachment_ids(appt), message_id])
        await self._s.flush()

    async def get(self, appt_id: str) -> HospitalAppointment | None:
        """An appointment by id."""
        return await self._s.get(HospitalAppointment, appt_id)

    async def by_prefix(self, prefix: str) -> HospitalAppointment | None:
        """The one appointment whose id starts with ``prefix`` (a button's short id)."""
        rows = list(
            await self._s.scalars(
                select(HospitalAppointment)
                .where(HospitalAppointment.id.startswith(prefix))
                .limit(2)
            )
        )
        return rows[0] if len(rows) == 1 else None

    async def open_for_referral(self, referral_id: str) -> HospitalAppointment | None:
        """The referral's appointment that is still booked or arrived, if any."""
        return await self._s.scalar(
            select(HospitalAppointment).where(
                HospitalAppointment.referral_id == referral_id,
                HospitalAppointment.status.in_(OPEN),
            )
        )

    async def for_referral(self, referral_id: str) -> list[HospitalAppointment]:
        """Every appointment of a referral, newest first."""
        rows = await self._s.scalars(
            select(HospitalAppointment)
            .where(HospitalAppointment.referral_id == referral_id)
            .order_by(HospitalAppointment.created_at.desc())
        )
        return list(rows)

    async def for_patient(self, patient_id: str) -> list[HospitalAppointment]:
        """A patient's appointments, oldest first."""
        rows = await self._s.scalars(
            select(HospitalAppointment)
            .where(HospitalAppointment.patient_id == patient_id)
            .order_by(HospitalAppointment.created_at)
        )
        return list(rows)

    async def of_day(
        self, hospital_id: str, start: datetime, end: datetime
    ) -> list[tuple[HospitalAppointment, HospitalSlot]]:
        """A hospital's appointments whose slot starts in [start, end), by time."""
        rows = await self._s.execute(
            select(HospitalAppointment, HospitalSlot)
            .join(HospitalSlot, HospitalSlot.id == HospitalAppointment.slot_id)
            .where(
                HospitalAppointment.hospital_id == hospital_id,
                HospitalSlot.starts_at >= start,
                HospitalSlot.starts_at < end,
            )
            .order_by(HospitalSlot.starts_at, HospitalAppointment.created_at)
        )
        return [(a, s) for a, s in rows]

    async def move(
        self, appt_id: str, version: int, status_from: tuple[str, ...], status_to: str
    ) -> bool:
        """One conditional UPDATE: the status changes only from the version the caller saw
        (two desks marking at once: exactly one wins)."""
        result = await self._s.execute(
            update(HospitalAppointment)
            .where(
                HospitalAppointment.id == appt_id,
                HospitalAppointment.version == version,
                HospitalAppointment.status.in_(status_from),
            )
            .values(status=status_to, version=version + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def refresh(self, appt: HospitalAppointment) -> None:
        """Read the row again (after a conditional UPDATE)."""
        await self._s.refresh(appt)

    async def delete_for_patient(self, patient_id: str) -> list[HospitalAppointment]:
        """Remove a patient's appointments (erasure); returns the open ones first removed."""
        rows = await self.for_patient(patient_id)
        for appt in rows:
            if appt.status == "booked":
                await self.release(appt.slot_id)
            await self._s.delete(appt)
        await self._s.flush()
        return rows

    async def outcome(self, appt: HospitalAppointment) -> str | None:
        """The desk's note of the visit's outcome (None when none)."""
        if appt.outcome_enc is None:
            return None
        return await self._vault.open(
            appt.patient_id, TABLE, "outcome_enc", appt.id, appt.outcome_enc
        )

    async def set_outcome(self, appt: HospitalAppointment, text: str) -> None:
        """Seal the desk's note of the visit's outcome under the patient's key."""
        appt.outcome_enc = await self._vault.seal(
            appt.patient_id, TABLE, "outcome_enc", appt.id, text
        )

    # --- desk invitations ---------------------------------------------------------------------

    async def add_invite(self, invite: DeskInvite) -> DeskInvite:
        """Insert an admin's invitation (only its token's hash)."""
        self._s.add(invite)
        await self._s.flush()
        return invite

    async def invite(self, token_hash: str) -> DeskInvite | None:
        """An invitation by its token's hash."""
        return await self._s.scalar(select(DeskInvite).where(DeskInvite.token_hash == token_hash))

    async def use_invite(self, invite_id: str, desk_id: str, now: datetime) -> bool:
        """One conditional UPDATE: an unused, unexpired invitation is used once."""
        result = await self._s.execute(
            update(DeskInvite)
            .where(
                DeskInvite.id == invite_id,
                DeskInvite.used_at.is_(None),
                DeskInvite.expires_at > now,
            )
            .values(used_at=now, used_by=desk_id)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)
