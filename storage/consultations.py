"""Consultations and their messages (text and file copies encrypted under the patient's key)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import CaseMessage, Consultation, new_id, utcnow
from storage.vault import Vault


class CaseTimes(NamedTuple):
    """When a case entered its queue and when it left it (the operator's view): ``ended`` is
    the acceptance or the expiry, None while it waits. Datetimes are aware (UTC)."""

    department: str
    priority: int
    requested_at: datetime
    ended: datetime | None


class CaseWeek(NamedTuple):
    """A case seen by the weekly summary: its queue priority, when it entered the queue, when
    it was closed and its rating (datetimes aware, UTC)."""

    priority: int
    requested_at: datetime
    closed_at: datetime | None
    rating: int | None


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ended(rows: Iterable[Sequence[Any]]) -> list[CaseTimes]:
    """Rows of (department, priority, requested_at, ended) as :class:`CaseTimes`."""
    return [
        CaseTimes(dept, int(prio), _utc(req), _utc(end))
        for dept, prio, req, end in rows
        if end is not None
    ]


def owner(case: Consultation) -> str:
    """Whose data key a case's texts are sealed under: the patient's, or after the patient's
    erasure the case's own retention key."""
    return case.key_owner or case.patient_id


class ConsultationRepository:
    """Consultations; repositories never commit."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    async def add(self, case: Consultation) -> Consultation:
        """Insert a new case with the next case number."""
        case.id = case.id or new_id()
        if not case.number:
            case.number = int(await self._s.scalar(select(func.max(Consultation.number))) or 0) + 1
        self._s.add(case)
        await self._s.flush()
        return case

    async def get(self, case_id: str) -> Consultation | None:
        """A case by id."""
        return await self._s.get(Consultation, case_id)

    async def by_number(self, number: int) -> Consultation | None:
        """A case by its number (the #N tag)."""
        return await self._s.scalar(select(Consultation).where(Consultation.number == number))

    async def for_patient(
        self, patient_id: str, states: Sequence[str] | None = None
    ) -> list[Consultation]:
        """A patient's cases, newest first (optionally only in these states)."""
        q = select(Consultation).where(Consultation.patient_id == patient_id)
        if states is not None:
            q = q.where(Consultation.state.in_(list(states)))
        return list(await self._s.scalars(q.order_by(Consultation.requested_at.desc())))

    async def claim(self, case: Consultation, doctor_id: str, now: datetime) -> bool:
        """Atomically take a waiting case for a doctor (a conditional UPDATE): False when
        another doctor got there first."""
        res = await self._s.execute(
            update(Consultation)
            .where(Consultation.id == case.id, Consultation.state == "waiting")
            .values(state="active", doctor_id=doctor_id, accepted_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(res, "rowcount", 0) or 0) != 1:
            await self._s.refresh(case)
            return False
        await self._s.refresh(case)
        return True

    async def waiting(self, departments: Sequence[str]) -> list[Consultation]:
        """Waiting cases of these departments: most urgent first, then the longest waiting."""
        rows = await self._s.scalars(
            select(Consultation)
            .where(Consultation.state == "waiting", Consultation.department.in_(list(departments)))
            .order_by(Consultation.priority, Consultation.requested_at, Consultation.number)
            .limit(50)
        )
        return list(rows)

    async def ahead_of(self, case: Consultation) -> int:
        """Waiting cases of the same department that come before this one in the queue."""
        earlier = (Consultation.priority < case.priority) | (
            (Consultation.priority == case.priority)
            & (
                (Consultation.requested_at < case.requested_at)
                | (
                    (Consultation.requested_at == case.requested_at)
                    & (Consultation.number < case.number)
                )
            )
        )
        count = await self._s.scalar(
            select(func.count())
            .select_from(Consultation)
            .where(
                Consultation.state == "waiting",
                Consultation.department == case.department,
                Consultation.id != case.id,
                earlier,
            )
        )
        return int(count or 0)

    async def recent_waits(
        self, since: datetime, department: str | None = None, limit: int = 50
    ) -> list[tuple[datetime, datetime]]:
        """(requested_at, accepted_at) of the latest cases accepted since ``since``, of one
        department or of all; newest first."""
        query = select(Consultation.requested_at, Consultation.accepted_at).where(
            Consultation.accepted_at.is_not(None), Consultation.accepted_at >= since
        )
        if department is not None:
            query = query.where(Consultation.department == department)
        rows = await self._s.execute(query.order_by(Consultation.accepted_at.desc()).limit(limit))
        return [(r[0], r[1]) for r in rows if r[1] is not None]

    async def waiting_times(self) -> list[CaseTimes]:
        """Every waiting case's department, priority and queue entry time (``ended`` None)."""
        c = Consultation
        rows = await self._s.execute(
            select(c.department, c.priority, c.requested_at).where(c.state == "waiting")
        )
        return [CaseTimes(dept, int(prio), _utc(req), None) for dept, prio, req in rows]

    async def accepted_times(self, since: datetime, until: datetime) -> list[CaseTimes]:
        """Cases accepted in ``[since, until]`` (in any state since), ``ended`` = accepted."""
        c = Consultation
        rows = await self._s.execute(
            select(c.department, c.priority, c.requested_at, c.accepted_at).where(
                c.accepted_at.is_not(None), c.accepted_at >= since, c.accepted_at <= until
            )
        )
        return _ended(rows)

    async def expired_times(self, since: datetime, until: datetime) -> list[CaseTimes]:
        """Cases still expired that expired in ``[since, until]`` (nobody took them in time),
        ``ended`` = the expiry (the case's last change)."""
        c = Consultation
        rows = await self._s.execute(
            select(c.department, c.priority, c.requested_at, c.updated_at).where(
                c.state == "expired", c.updated_at >= since, c.updated_at <= until
            )
        )
        return _ended(rows)

    async def queued_or_closed(self, since: datetime, until: datetime) -> list[CaseWeek]:
        """Cases that entered a queue or were closed in ``[since, until)`` (never a case still
        being requested)."""
        c = Consultation
        rows = await self._s.execute(
            select(c.priority, c.requested_at, c.closed_at, c.rating).where(
                or_(
                    (c.requested_at >= since) & (c.requested_at < until),
                    (c.closed_at >= since) & (c.closed_at < until),
                ),
                c.state != "requested",
            )
        )
        return [
            CaseWeek(int(prio), _utc(req), _utc(closed) if closed else None, rating)
            for prio, req, closed, rating in rows
        ]

    async def active_for_doctor(self, doctor_id: str) -> list[Consultation]:
        """A doctor's active cases, oldest first."""
        rows = await self._s.scalars(
            select(Consultation)
            .where(Consultation.doctor_id == doctor_id, Consultation.state == "active")
            .order_by(Consultation.accepted_at, Consultation.number)
        )
        return list(rows)

    async def patient_messages_since(self, patient_id: str, since: datetime) -> int:
        """How many case messages this patient sent since ``since`` (the per-minute limit)."""
        count = await self._s.scalar(
            select(func.count(CaseMessage.id))
            .join(Consultation, Consultation.id == CaseMessage.consultation_id)
            .where(
                Consultation.patient_id == patient_id,
                CaseMessage.sender == "patient",
                CaseMessage.created_at >= since,
            )
        )
        return int(count or 0)

    async def seal_text(self, case: Consultation, column: str, text: str) -> bytes:
        """Encrypt a text of this case under the patient's key (bound to the case row)."""
        return await self._vault.seal(owner(case), "consultations", column, case.id, text)

    async def open_text(self, case: Consultation, column: str, blob: bytes) -> str:
        """Decrypt a text sealed by :meth:`seal_text`."""
        return await self._vault.open(owner(case), "consultations", column, case.id, blob)

    async def add_message(
        self,
        case: Consultation,
        sender: str,
        kind: str,
        text: str | None,
        *,
        file_name: str | None = None,
        at: datetime | None = None,
    ) -> CaseMessage:
        """Record one message of the case; its text is encrypted under the patient's key.
        ``at``: when it was written (the case's ``updated_at``; default now)."""
        # Touched before the flush, so that the case's change goes out with this flush (one
        # UPDATE, none when the caller's transition already set the same time).
        case.updated_at = at or utcnow()
        row = CaseMessage(consultation_id=case.id, sender=sender, kind=kind, file_name=file_name)
        self._s.add(row)
        await self._s.flush()  # the row id is bound into the ciphertext
        if text is not None:
            row.body_enc = await self._vault.seal(
                owner(case), "case_messages", "body_enc", str(row.id), text
            )
        return row

    async def message_text(self, case: Consultation, row: CaseMessage) -> str | None:
        """The decrypted text of a case message."""
        if row.body_enc is None:
            return None
        return await self._vault.open(
            owner(case), "case_messages", "body_enc", str(row.id), row.body_enc
        )

    async def set_message_file(self, case: Consultation, row: CaseMessage, data: bytes) -> None:
        """Keep an encrypted copy of a relayed file as part of the record."""
        row.file_enc = await self._vault.seal_bytes(
            owner(case), "case_messages", "file_enc", str(row.id), data
        )

    async def set_source_file(self, case: Consultation, row: CaseMessage, file_id: str) -> None:
        """Keep the sending bot's file id of a file to relay later (sealed)."""
        row.source_file_enc = await self._vault.seal(
            owner(case), "case_messages", "source_file_enc", str(row.id), file_id
        )

    async def source_file(self, case: Consultation, row: CaseMessage) -> str | None:
        """The file id kept by :meth:`set_source_file`."""
        if row.source_file_enc is None:
            return None
        return await self._vault.open(
            owner(case), "case_messages", "source_file_enc", str(row.id), row.source_file_enc
        )

    async def message_file(self, case: Consultation, row: CaseMessage) -> bytes | None:
        """The decrypted copy of a relayed file."""
        if row.file_enc is None:
            return None
        return await self._vault.open_bytes(
            owner(case), "case_messages", "file_enc", str(row.id), row.file_enc
        )

    async def messages(self, case: Consultation) -> list[CaseMessage]:
        """The case's messages in order."""
        rows = await self._s.scalars(
            select(CaseMessage)
            .where(CaseMessage.consultation_id == case.id)
            .order_by(CaseMessage.id)
        )
        return list(rows)
