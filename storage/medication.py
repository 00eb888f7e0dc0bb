"""Persistence of medication plans and doses (flows/medication.py, flows/doses.py).

SQL and field encryption live here; flows call these methods."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Dose, MedicationPlan, new_id
from storage.vault import Vault

PENDING = "pending"  # a dose waiting for its answer


class MedicationRepository:
    """Reads and writes medication plans and doses; seals and opens encrypted fields itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    # -- plans ----------------------------------------------------------------------------------

    async def plan(self, plan_id: str) -> MedicationPlan | None:
        """A plan by id."""
        return await self._s.get(MedicationPlan, plan_id)

    async def add_plan(self, plan: MedicationPlan, details: dict[str, Any]) -> MedicationPlan:
        """Insert a new plan with its (sealed) details document."""
        plan.id = plan.id or new_id()  # bound into the ciphertext, so known before insert
        await self.set_details(plan, details)
        self._s.add(plan)
        await self._s.flush()
        return plan

    async def details_text(self, plan: MedicationPlan) -> str | None:
        """The plan's details as stored (decrypted text; None when there are none)."""
        if plan.details_enc is None:
            return None
        return await self._vault.open(
            plan.patient_id, "med_plans", "details_enc", plan.id, plan.details_enc
        )

    async def details(self, plan: MedicationPlan) -> dict[str, Any]:
        """The plan's details document (decrypted; empty when there is none)."""
        raw = await self.details_text(plan)
        if raw is None:
            return {}
        loaded = json.loads(raw)
        return loaded if isinstance(loaded, dict) else {}

    async def set_details(self, plan: MedicationPlan, details: dict[str, Any]) -> None:
        """Seal and store the plan's details document."""
        plan.details_enc = await self._vault.seal(
            plan.patient_id,
            "med_plans",
            "details_enc",
            plan.id,
            json.dumps(details, ensure_ascii=False),
        )

    async def open_wizard(
        self, doctor_id: str, statuses: Sequence[str], done_step: str
    ) -> MedicationPlan | None:
        """The doctor's newest plan in these statuses whose wizard is not at ``done_step``."""
        return await self._s.scalar(
            select(MedicationPlan)
            .where(
                MedicationPlan.doctor_id == doctor_id,
                MedicationPlan.step != done_step,
                MedicationPlan.status.in_(list(statuses)),
            )
            .order_by(MedicationPlan.created_at.desc())
            .limit(1)
        )

    async def plans_of_patient(
        self, patient_id: str, statuses: Sequence[str], doctor_id: str | None = None
    ) -> list[MedicationPlan]:
        """A patient's plans in these statuses (optionally one doctor's), oldest first."""
        q = select(MedicationPlan).where(
            MedicationPlan.patient_id == patient_id,
            MedicationPlan.status.in_(list(statuses)),
        )
        if doctor_id is not None:
            q = q.where(MedicationPlan.doctor_id == doctor_id)
        return list(await self._s.scalars(q.order_by(MedicationPlan.created_at)))

    # -- doses ----------------------------------------------------------------------------------

    async def dose(self, dose_id: str) -> Dose | None:
        """A dose by id."""
        return await self._s.get(Dose, dose_id)

    async def dose_at(self, plan_id: str, local: str) -> Dose | None:
        """The dose of a plan at a local time (``YYYY-MM-DD HH:MM``), if there is one."""
        return await self._s.scalar(
            select(Dose).where(Dose.plan_id == plan_id, Dose.local == local)
        )

    async def add_dose(self, dose: Dose) -> Dose:
        """Insert a new dose."""
        self._s.add(dose)
        await self._s.flush()
        return dose

    async def delete_doses(self, doses: Sequence[Dose]) -> None:
        """Remove doses (never reminded) and write out every change made to doses so far."""
        for dose in doses:
            await self._s.delete(dose)
        await self._s.flush()

    async def pending_doses(self, plan_id: str, due_before: datetime | None = None) -> list[Dose]:
        """The plan's doses waiting for an answer (optionally only those due before a
        moment)."""
        q = select(Dose).where(Dose.plan_id == plan_id, Dose.status == PENDING)
        if due_before is not None:
            q = q.where(Dose.due_at < due_before)
        return list(await self._s.scalars(q))

    async def recent_doses(
        self, patient_id: str, since: datetime, now: datetime, limit: int = 60
    ) -> list[Dose]:
        """The patient's doses due since ``since`` that are due by ``now`` or answered
        already (a dose may be taken early), newest first."""
        rows = await self._s.scalars(
            select(Dose)
            .where(
                Dose.patient_id == patient_id,
                Dose.due_at >= since,
                or_(Dose.due_at <= now, Dose.status != PENDING),
            )
            .order_by(Dose.due_at.desc(), Dose.local.desc())
            .limit(limit)
        )
        return list(rows)

    async def doses_of_patient(self, patient_id: str, statuses: Sequence[str]) -> list[Dose]:
        """The patient's doses in these statuses, oldest first."""
        rows = await self._s.scalars(
            select(Dose)
            .where(Dose.patient_id == patient_id, Dose.status.in_(list(statuses)))
            .order_by(Dose.due_at)
        )
        return list(rows)

    async def note(self, dose: Dose) -> dict[str, Any]:
        """The dose's note (skip reason, side effects; decrypted): empty when there is none
        or it is not a JSON object."""
        if dose.note_enc is None:
            return {}
        raw = await self._vault.open(dose.patient_id, "doses", "note_enc", dose.id, dose.note_enc)
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    async def set_note(self, dose: Dose, note: dict[str, Any]) -> None:
        """Seal and store the dose's note."""
        dose.note_enc = await self._vault.seal(
            dose.patient_id, "doses", "note_enc", dose.id, json.dumps(note, ensure_ascii=False)
        )
