"""Persistence of doctors' schedules, their slots and bookings (flows/booking.py).

Holding a slot is one conditional UPDATE: of two patients pressing the same slot at once,
exactly one changes the row and the other is told it is gone. Nothing here is sealed: slots
and bookings hold ids, times, modes and prices, never health or identity text."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Booking, DoctorSchedule, Slot, new_id, utcnow

FREE, HELD, BUSY = "free", "busy-tentative", "busy"


class BookingRepository:
    """Reads and writes schedules, slots and bookings."""

    def __init__(self, session: AsyncSession, postgres: bool) -> None:
        self._s = session
        self._pg = postgres

    # --- schedules ----------------------------------------------------------------------------

    async def schedule(self, doctor_id: str) -> str | None:
        """The doctor's availability JSON, or None when they have set none."""
        row = await self._s.get(DoctorSchedule, doctor_id)
        return row.availability if row is not None else None

    async def set_schedule(self, doctor_id: str, availability: str) -> None:
        """Store the doctor's availability JSON."""
        row = await self._s.get(DoctorSchedule, doctor_id)
        if row is None:
            self._s.add(DoctorSchedule(doctor_id=doctor_id, availability=availability))
        else:
            row.availability = availability
            row.updated_at = utcnow()
        await self._s.flush()

    async def scheduled_doctors(self) -> list[str]:
        """Ids of the doctors who have a schedule."""
        return list(await self._s.scalars(select(DoctorSchedule.doctor_id)))

    # --- slots --------------------------------------------------------------------------------

    async def future_slots(self, doctor_id: str, now: datetime) -> list[Slot]:
        """The doctor's slots that have not started yet, by start time."""
        return list(
            await self._s.scalars(
                select(Slot)
                .where(Slot.doctor_id == doctor_id, Slot.start_at > now)
                .order_by(Slot.start_at)
            )
        )

    async def add_slots(self, rows: Sequence[dict[str, object]]) -> None:
        """Insert slots; one whose doctor and start time already exist is left as it is."""
        if not rows:
            return
        values = [{"id": new_id(), "status": FREE, **r} for r in rows]
        insert = pg_insert if self._pg else sqlite_insert
        stmt = insert(Slot).values(values)
        await self._s.execute(
            stmt.on_conflict_do_nothing(index_elements=["doctor_id", "start_at"])
        )

    async def drop_free_slots(self, ids: Sequence[str]) -> None:
        """Delete slots that are still free (never a held or booked one)."""
        if ids:
            await self._s.execute(delete(Slot).where(Slot.id.in_(list(ids)), Slot.status == FREE))

    async def free_slots(
        self, doctor_id: str, mode: str, now: datetime, limit: int = 8
    ) -> list[Slot]:
        """The doctor's next free (or abandoned-hold) slots of a mode."""
        return list(
            await self._s.scalars(
                select(Slot)
                .where(
                    Slot.doctor_id == doctor_id,
                    Slot.mode == mode,
                    Slot.start_at > now,
                    or_(Slot.status == FREE, and_(Slot.status == HELD, Slot.hold_until < now)),
                )
                .order_by(Slot.start_at)
                .limit(limit)
            )
        )

    async def slot(self, slot_id: str) -> Slot | None:
        """A slot by id (read fresh from the database)."""
        return await self._s.get(Slot, slot_id, populate_existing=True)

    async def hold(self, slot_id: str, patient_id: str, now: datetime, until: datetime) -> bool:
        """Hold a free slot for a patient until ``until``; False when someone else holds or
        has booked it, or it has started (one conditional UPDATE: no race can pass both)."""
        done = await self._s.execute(
            update(Slot)
            .where(
                Slot.id == slot_id,
                Slot.start_at > now,
                or_(
                    Slot.status == FREE,
                    and_(Slot.status == HELD, Slot.hold_until < now),
                    and_(Slot.status == HELD, Slot.patient_id == patient_id),
                ),
            )
            .values(status=HELD, patient_id=patient_id, hold_until=until, booking_id=None)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(done, "rowcount", 0) == 1)

    async def occupy(self, slot_id: str, patient_id: str, booking_id: str, now: datetime) -> bool:
        """Book a slot the patient holds (or a free one); False when it is someone else's."""
        done = await self._s.execute(
            update(Slot)
            .where(
                Slot.id == slot_id,
                or_(
                    Slot.status == FREE,
                    and_(Slot.status == HELD, Slot.patient_id == patient_id),
                    and_(Slot.status == HELD, Slot.hold_until < now),
                ),
            )
            .values(status=BUSY, patient_id=patient_id, hold_until=None, booking_id=booking_id)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(done, "rowcount", 0) == 1)

    async def release(self, slot_id: str, patient_id: str) -> bool:
        """Free a slot the patient holds or has booked."""
        done = await self._s.execute(
            update(Slot)
            .where(Slot.id == slot_id, Slot.patient_id == patient_id, Slot.status != FREE)
            .values(status=FREE, patient_id=None, hold_until=None, booking_id=None)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(done, "rowcount", 0) == 1)

    async def expired_holds(self, now: datetime, limit: int = 500) -> list[Slot]:
        """Slots whose hold has run out (the invoice was not paid in time)."""
        return list(
            await self._s.scalars(
                select(Slot).where(Slot.status == HELD, Slot.hold_until < now).limit(limit)
            )
        )

    # --- bookings -----------------------------------------------------------------------------

    async def add_booking(self, booking: Booking) -> Booking:
        """Insert a booking."""
        self._s.add(booking)
        await self._s.flush()
        return booking

    async def booking(self, booking_id: str) -> Booking | None:
        """A booking by id (read fresh)."""
        return await self._s.get(Booking, booking_id, populate_existing=True)

    async def by_charge(self, charge_id: str) -> Booking | None:
        """The booking a Telegram payment paid for."""
        return await self._s.scalar(select(Booking).where(Booking.charge_id == charge_id))

    async def of_patient(self, patient_id: str) -> list[Booking]:
        """A patient's bookings, newest first."""
        return list(
            await self._s.scalars(
                select(Booking)
                .where(Booking.patient_id == patient_id)
                .order_by(Booking.created_at.desc())
            )
        )

    async def booking_for_case(self, consultation_id: str) -> Booking | None:
        """The booking a case was opened for (None for a case from the queue)."""
        return await self._s.scalar(
            select(Booking).where(Booking.consultation_id == consultation_id)
        )

    async def of_doctor(self, doctor_id: str) -> list[Booking]:
        """A doctor's bookings, in no order."""
        return list(await self._s.scalars(select(Booking).where(Booking.doctor_id == doctor_id)))

    async def forget_patient(self, patient_id: str) -> None:
        """Erasure: the patient's bookings go, held times are freed, and booked times keep no
        patient id (they stay busy in the doctor's calendar)."""
        await self._s.execute(
            update(Slot)
            .where(Slot.patient_id == patient_id, Slot.status == HELD)
            .values(status=FREE, patient_id=None, hold_until=None, booking_id=None)
            .execution_options(synchronize_session=False)
        )
        await self._s.execute(
            update(Slot)
            .where(Slot.patient_id == patient_id)
            .values(patient_id=None, booking_id=None)
            .execution_options(synchronize_session=False)
        )
        await self._s.execute(delete(Booking).where(Booking.patient_id == patient_id))

    async def all_bookings(self) -> list[Booking]:
        """Every booking (for the race benchmark and the operator)."""
        return list(await self._s.scalars(select(Booking)))

    async def count_slots(self, doctor_id: str | None = None) -> dict[str, int]:
        """Slots by status (for tests, the benchmark and the operator)."""
        q = select(Slot.status)
        if doctor_id is not None:
            q = q.where(Slot.doctor_id == doctor_id)
        out: dict[str, int] = {}
        for status in await self._s.scalars(q):
            out[status] = out.get(status, 0) + 1
        return out
