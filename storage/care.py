"""Persistence of caregivers, care alerts and chart data (flows/caregivers.py, flows/alerts.py,
flows/charts.py).

SQL and field encryption live here; flows call these methods."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    AuditRecord,
    CareAlert,
    Caregiver,
    Consultation,
    Dose,
    FollowUpPlan,
    MedicationPlan,
    Reading,
    ScheduledEvent,
)
from storage.vault import Vault

# Caregiver statuses these queries select on (the flow's machine owns every move).
ACTIVE = "active"
INVITED = "invited"


class CareRepository:
    """Reads and writes caregivers, care alerts and chart data; seals and opens encrypted fields
    itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    # --- caregivers ---------------------------------------------------------------------------

    async def caregiver(self, caregiver_id: str) -> Caregiver | None:
        """A caregiver row by id (any status)."""
        return await self._s.get(Caregiver, caregiver_id)

    async def add_caregiver(self, caregiver: Caregiver, name: str | None = None) -> Caregiver:
        """Insert a new caregiver (its id set by the caller, bound into the sealed name), with
        the name sealed under the patient's key when given."""
        if name is not None:
            await self.set_caregiver_name(caregiver, name)
        self._s.add(caregiver)
        await self._s.flush()
        return caregiver

    async def set_caregiver_name(self, caregiver: Caregiver, name: str) -> None:
        """Seal the caregiver's name under the patient's data key."""
        caregiver.name_enc = await self._vault.seal(
            caregiver.patient_id, "caregivers", "name_enc", caregiver.id, name
        )

    async def caregiver_name(self, caregiver: Caregiver) -> str | None:
        """The caregiver's name, decrypted; None when nobody has named them yet."""
        if caregiver.name_enc is None:
            return None
        return await self._vault.open(
            caregiver.patient_id, "caregivers", "name_enc", caregiver.id, caregiver.name_enc
        )

    async def active_caregivers(self, patient_id: str) -> list[Caregiver]:
        """A patient's active caregivers, in the order they accepted."""
        rows = await self._s.scalars(
            select(Caregiver)
            .where(Caregiver.patient_id == patient_id, Caregiver.status == ACTIVE)
            .order_by(Caregiver.accepted_at, Caregiver.id)
        )
        return list(rows)

    async def caregiving_of_user(self, tg_user_id: int) -> list[Caregiver]:
        """The active caregiver rows of one Telegram user, in the order they accepted."""
        rows = await self._s.scalars(
            select(Caregiver)
            .where(Caregiver.tg_user_id == tg_user_id, Caregiver.status == ACTIVE)
            .order_by(Caregiver.accepted_at, Caregiver.id)
        )
        return list(rows)

    async def current_caregivers(self, patient_id: str) -> list[Caregiver]:
        """A patient's active caregivers and open invitations, oldest first."""
        rows = await self._s.scalars(
            select(Caregiver)
            .where(
                Caregiver.patient_id == patient_id,
                Caregiver.status.in_((ACTIVE, INVITED)),
            )
            .order_by(Caregiver.created_at, Caregiver.id)
        )
        return list(rows)

    async def active_caregiver_count(self, patient_id: str) -> int:
        """How many active caregivers a patient has."""
        return int(
            await self._s.scalar(
                select(func.count())
                .select_from(Caregiver)
                .where(Caregiver.patient_id == patient_id, Caregiver.status == ACTIVE)
            )
            or 0
        )

    async def caregiver_by_token_hash(self, token_hash: str) -> Caregiver | None:
        """The caregiver whose open invitation has this token hash."""
        return await self._s.scalar(select(Caregiver).where(Caregiver.token_hash == token_hash))

    async def delete_caregivers_of(self, patient_id: str) -> None:
        """Remove every caregiver row of a patient (erasure)."""
        await self._s.execute(delete(Caregiver).where(Caregiver.patient_id == patient_id))

    # --- care alerts: the open ones (``acked_at`` unset) by doctor and by cause ---------------

    async def add_alert(self, alert: CareAlert) -> CareAlert:
        """Insert a new care alert."""
        self._s.add(alert)
        await self._s.flush()
        return alert

    async def alert(self, alert_id: str) -> CareAlert | None:
        """An alert by id."""
        return await self._s.get(CareAlert, alert_id)

    async def open_alerts_for_doctor(self, doctor_id: str, limit: int = 200) -> list[CareAlert]:
        """A doctor's open alerts, oldest first."""
        rows = await self._s.scalars(
            select(CareAlert)
            .where(CareAlert.doctor_id == doctor_id, CareAlert.acked_at.is_(None))
            .order_by(CareAlert.created_at, CareAlert.id)
            .limit(limit)
        )
        return list(rows)

    async def open_alerts_by_cause(
        self, patient_id: str, kind: str, ref_ids: Sequence[str]
    ) -> list[CareAlert]:
        """A patient's open alerts of one kind about these records, oldest first, locked for
        this transaction (on PostgreSQL a second resolver waits, then finds them closed)."""
        if not ref_ids:
            return []
        rows = await self._s.scalars(
            select(CareAlert)
            .where(
                CareAlert.patient_id == patient_id,
                CareAlert.kind == kind,
                CareAlert.ref_id.in_(list(ref_ids)),
                CareAlert.acked_at.is_(None),
            )
            .order_by(CareAlert.created_at, CareAlert.id)
            .with_for_update()
        )
        return list(rows)

    async def open_alerts_of_patient(self, kind: str, patient_id: str) -> list[CareAlert]:
        """A patient's open alerts of one kind (any doctor), oldest first."""
        rows = await self._s.scalars(
            select(CareAlert)
            .where(
                CareAlert.kind == kind,
                CareAlert.patient_id == patient_id,
                CareAlert.acked_at.is_(None),
            )
            .order_by(CareAlert.created_at, CareAlert.id)
        )
        return list(rows)

    # --- who cares for whom -------------------------------------------------------------------

    async def latest_case(self, doctor_id: str, patient_id: str) -> Consultation | None:
        """The patient's most recent case with this doctor (any state), if any."""
        return await self._s.scalar(
            select(Consultation)
            .where(Consultation.patient_id == patient_id, Consultation.doctor_id == doctor_id)
            .order_by(Consultation.requested_at.desc())
            .limit(1)
        )

    async def owns_plan(self, doctor_id: str, patient_id: str) -> bool:
        """Whether the doctor owns a follow-up or medication plan of this patient (any
        status)."""
        for model in (FollowUpPlan, MedicationPlan):
            found = await self._s.scalar(
                select(model.id)
                .where(model.doctor_id == doctor_id, model.patient_id == patient_id)
                .limit(1)
            )
            if found is not None:
                return True
        return False

    # --- chart data ---------------------------------------------------------------------------

    async def dose_statuses(
        self, patient_id: str, since: datetime, until: datetime
    ) -> list[tuple[datetime, str]]:
        """(due time, status) of the patient's doses due from ``since`` to ``until``
        (inclusive), in no order."""
        rows = await self._s.execute(
            select(Dose.due_at, Dose.status).where(
                Dose.patient_id == patient_id,
                Dose.due_at >= since,
                Dose.due_at <= until,
            )
        )
        return [(due_at, status) for due_at, status in rows]

    async def plan_changes(
        self, patient_id: str, actions: Sequence[str], since: datetime, until: datetime
    ) -> list[tuple[datetime, str]]:
        """(time, action) of the audit records of these actions about the patient's
        medication and follow-up plans from ``since`` to ``until``, oldest first (the audit log
        is where a plan's history is kept; its (record type, record id) index serves this)."""
        med = select(MedicationPlan.id).where(MedicationPlan.patient_id == patient_id)
        follow = select(FollowUpPlan.id).where(FollowUpPlan.patient_id == patient_id)
        rows = await self._s.execute(
            select(AuditRecord.at, AuditRecord.action)
            .where(
                AuditRecord.action.in_(list(actions)),
                AuditRecord.at >= since,
                AuditRecord.at <= until,
                ((AuditRecord.record_type == "med_plans") & AuditRecord.record_id.in_(med))
                | (
                    (AuditRecord.record_type == "followup_plan")
                    & AuditRecord.record_id.in_(follow)
                ),
            )
            .order_by(AuditRecord.seq)
        )
        return [(at, action) for at, action in rows]

    async def patients_with_readings(
        self, since: datetime, without_pending: str, limit: int = 1000
    ) -> list[str]:
        """Ids of patients with a reading taken since ``since`` and no pending scheduled
        event of kind ``without_pending`` (the weekly summary's planner), at most ``limit``."""
        pending = select(ScheduledEvent.subject).where(
            ScheduledEvent.kind == without_pending, ScheduledEvent.status == "pending"
        )
        rows = await self._s.scalars(
            select(Reading.patient_id)
            .where(Reading.taken_at >= since, Reading.patient_id.not_in(pending))
            .distinct()
            .limit(limit)
        )
        return list(rows)
