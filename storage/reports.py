"""Abuse reports (their reason and any appeal encrypted under the patient's data key)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AbuseReport, new_id
from storage.vault import Vault


class ReportRepository:
    """Abuse reports; repositories never commit."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    async def add(self, report: AbuseReport, reason: str) -> AbuseReport:
        """Insert a report with its reason sealed under the patient's key."""
        report.id = report.id or new_id()
        report.reason_enc = await self._vault.seal(
            report.patient_id, "abuse_reports", "reason_enc", report.id, reason
        )
        self._s.add(report)
        await self._s.flush()
        return report

    async def get(self, report_id: str) -> AbuseReport | None:
        """A report by id."""
        return await self._s.get(AbuseReport, report_id)

    async def text(self, report: AbuseReport, column: str) -> str | None:
        """The decrypted reason (``reason_enc``) or appeal (``appeal_enc``)."""
        blob = getattr(report, column)
        if blob is None:
            return None
        return await self._vault.open(report.patient_id, "abuse_reports", column, report.id, blob)

    async def set_appeal(self, report: AbuseReport, text: str) -> None:
        """Seal the patient's appeal."""
        report.appeal_enc = await self._vault.seal(
            report.patient_id, "abuse_reports", "appeal_enc", report.id, text
        )

    async def for_patient(
        self, patient_id: str, statuses: Sequence[str] | None = None
    ) -> list[AbuseReport]:
        """A patient's reports, newest first (optionally only in these statuses)."""
        q = select(AbuseReport).where(AbuseReport.patient_id == patient_id)
        if statuses is not None:
            q = q.where(AbuseReport.status.in_(list(statuses)))
        return list(await self._s.scalars(q.order_by(AbuseReport.created_at.desc())))

    async def with_status(self, *statuses: str) -> list[AbuseReport]:
        """Reports in these statuses, oldest first (the admins' review list)."""
        rows = await self._s.scalars(
            select(AbuseReport)
            .where(AbuseReport.status.in_(statuses))
            .order_by(AbuseReport.created_at)
            .limit(50)
        )
        return list(rows)

    async def delete_for_patient(self, patient_id: str) -> None:
        """Erasure: the patient's reports go (their texts were under the destroyed key)."""
        for report in await self.for_patient(patient_id):
            await self._s.delete(report)
