"""Persistence of follow-up plans, check-ins, recalls and referral follow-ups (flows/followup.py,
flows/referral_followup.py).

SQL and field encryption live here; flows call these methods."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import CheckIn, FollowUpPlan, Reading, Referral, new_id
from storage.vault import Vault

# A check-in still waiting for its answers; the ones of a run of missed check-ins.
PENDING = "pending"
UNANSWERED = ("pending", "missed")


class FollowUpRepository:
    """Reads and writes follow-up plans, check-ins, recalls and referral follow-ups; seals and
    opens encrypted fields itself."""

    def __init__(self, session: AsyncSession, vault: Vault) -> None:
        self._s = session
        self._vault = vault

    # -- plans ----------------------------------------------------------------------------------

    async def plan(self, plan_id: str) -> FollowUpPlan | None:
        """A plan by id."""
        return await self._s.get(FollowUpPlan, plan_id)

    async def add_plan(self, plan: FollowUpPlan) -> FollowUpPlan:
        """Insert a new plan."""
        self._s.add(plan)
        await self._s.flush()
        return plan

    async def delete_plan(self, plan: FollowUpPlan) -> None:
        """Remove a plan (a dropped draft)."""
        await self._s.delete(plan)

    async def plans(
        self,
        patient_id: str,
        statuses: Sequence[str],
        *,
        doctor_id: str | None = None,
        template: str | None = None,
        exclude_id: str | None = None,
    ) -> list[FollowUpPlan]:
        """A patient's plans in these statuses, oldest first; optionally only one doctor's,
        only of one template, or all but one plan."""
        q = select(FollowUpPlan).where(
            FollowUpPlan.patient_id == patient_id, FollowUpPlan.status.in_(list(statuses))
        )
        if doctor_id is not None:
            q = q.where(FollowUpPlan.doctor_id == doctor_id)
        if template is not None:
            q = q.where(FollowUpPlan.template == template)
        if exclude_id is not None:
            q = q.where(FollowUpPlan.id != exclude_id)
        return list(await self._s.scalars(q.order_by(FollowUpPlan.created_at, FollowUpPlan.id)))

    # -- check-ins ------------------------------------------------------------------------------

    async def checkin(self, checkin_id: str) -> CheckIn | None:
        """A check-in by id."""
        return await self._s.get(CheckIn, checkin_id)

    async def add_checkin(self, checkin: CheckIn) -> CheckIn:
        """Insert a new check-in."""
        self._s.add(checkin)
        await self._s.flush()
        return checkin

    async def checkin_at(self, plan_id: str, local: str) -> CheckIn | None:
        """The plan's check-in at a local time (``YYYY-MM-DD HH:MM``), if there is one."""
        return await self._s.scalar(
            select(CheckIn).where(CheckIn.plan_id == plan_id, CheckIn.local == local)
        )

    async def pending_checkins(self, plan_id: str) -> list[CheckIn]:
        """The plan's check-ins still waiting for answers."""
        rows = await self._s.scalars(
            select(CheckIn).where(CheckIn.plan_id == plan_id, CheckIn.status == PENDING)
        )
        return list(rows)

    async def open_checkin_of_plan(self, plan_id: str, since: datetime) -> CheckIn | None:
        """The plan's most recent check-in waiting for answers and due at or after ``since``."""
        return await self._s.scalar(
            select(CheckIn)
            .where(
                CheckIn.plan_id == plan_id,
                CheckIn.status == PENDING,
                CheckIn.due_at >= since,
            )
            .order_by(CheckIn.due_at.desc())
            .limit(1)
        )

    async def open_checkin_of_patient(self, patient_id: str, since: datetime) -> CheckIn | None:
        """The patient's most recent check-in waiting for answers and due at or after
        ``since``."""
        return await self._s.scalar(
            select(CheckIn)
            .where(
                CheckIn.patient_id == patient_id,
                CheckIn.status == PENDING,
                CheckIn.due_at >= since,
            )
            .order_by(CheckIn.due_at.desc())
            .limit(1)
        )

    async def streak_anchor(self, plan_id: str, closed_state: str) -> CheckIn | None:
        """The first check-in of the plan's current run of missed ones: unanswered, not in
        ``closed_state`` (never asked), and due after the last answered one."""
        last_done = (
            select(func.max(CheckIn.due_at))
            .where(CheckIn.plan_id == plan_id, CheckIn.status == "done")
            .scalar_subquery()
        )
        return await self._s.scalar(
            select(CheckIn)
            .where(
                CheckIn.plan_id == plan_id,
                CheckIn.status.in_(UNANSWERED),
                CheckIn.state != closed_state,
                or_(last_done.is_(None), CheckIn.due_at > last_done),
            )
            .order_by(CheckIn.due_at, CheckIn.id)
            .limit(1)
        )

    async def run_checkins(
        self, plan_id: str, since: datetime, closed_state: str
    ) -> list[CheckIn]:
        """The plan's unanswered check-ins due at or after ``since``, but for those in
        ``closed_state`` (never asked)."""
        rows = await self._s.scalars(
            select(CheckIn).where(
                CheckIn.plan_id == plan_id,
                CheckIn.due_at >= since,
                CheckIn.status.in_(UNANSWERED),
                CheckIn.state != closed_state,
            )
        )
        return list(rows)

    async def count_run(
        self, plan_id: str, since: datetime, until: datetime, closed_state: str
    ) -> int:
        """How many of :meth:`run_checkins` were due by ``until``."""
        n = await self._s.scalar(
            select(func.count())
            .select_from(CheckIn)
            .where(
                CheckIn.plan_id == plan_id,
                CheckIn.due_at >= since,
                CheckIn.due_at <= until,
                CheckIn.status.in_(UNANSWERED),
                CheckIn.state != closed_state,
            )
        )
        return int(n or 0)

    async def answers(self, checkin: CheckIn) -> dict[str, Any]:
        """The check-in's answers so far (decrypted; empty when none)."""
        if checkin.answers_enc is None:
            return {}
        raw = await self._vault.open(
            checkin.patient_id, "checkins", "answers_enc", checkin.id, checkin.answers_enc
        )
        data = json.loads(raw)
        return data if isinstance(data, dict) else {}

    async def set_answers(self, checkin: CheckIn, answers: dict[str, Any]) -> None:
        """Seal and store the check-in's answers document."""
        checkin.answers_enc = await self._vault.seal(
            checkin.patient_id, "checkins", "answers_enc", checkin.id, json.dumps(answers)
        )

    # -- readings -------------------------------------------------------------------------------

    async def add_reading(
        self, checkin: CheckIn, kind: str, value: str, flag: str, taken_at: datetime
    ) -> Reading:
        """Insert one measured value of a check-in (the value sealed)."""
        row = Reading(
            patient_id=checkin.patient_id, checkin_id=checkin.id, kind=kind,
            flag=flag, taken_at=taken_at, value_enc=b"",
        )  # fmt: skip
        row.id = new_id()  # bound into the ciphertext, so known before insert
        row.value_enc = await self._vault.seal(
            checkin.patient_id, "readings", "value_enc", row.id, value
        )
        self._s.add(row)
        await self._s.flush()
        return row

    async def readings_since(
        self, patient_id: str, since: datetime, limit: int = 2000
    ) -> list[tuple[Reading, str]]:
        """The patient's readings taken at or after ``since``, oldest first, each with its
        decrypted value."""
        rows = await self._s.scalars(
            select(Reading)
            .where(Reading.patient_id == patient_id, Reading.taken_at >= since)
            .order_by(Reading.taken_at, Reading.id)
            .limit(limit)
        )
        out = []
        for row in rows:
            value = await self._vault.open(
                patient_id, "readings", "value_enc", row.id, row.value_enc
            )
            out.append((row, value))
        return out

    # -- referral follow-ups ----------------------------------------------------------------------

    async def referral(self, referral_id: str) -> Referral | None:
        """A referral by id."""
        return await self._s.get(Referral, referral_id)

    async def referral_outcome(self, referral: Referral) -> dict[str, Any]:
        """The patient's answer to a referral's follow-up so far (decrypted; empty when none)."""
        if referral.outcome_enc is None:
            return {}
        raw = await self._vault.open(
            referral.patient_id, "referrals", "outcome_enc", referral.id, referral.outcome_enc
        )
        loaded = json.loads(raw)
        return loaded if isinstance(loaded, dict) else {}

    async def set_referral_outcome(self, referral: Referral, doc: dict[str, Any]) -> None:
        """Seal and store the patient's answer to a referral's follow-up."""
        referral.outcome_enc = await self._vault.seal(
            referral.patient_id,
            "referrals",
            "outcome_enc",
            referral.id,
            json.dumps(doc, ensure_ascii=False),
        )
