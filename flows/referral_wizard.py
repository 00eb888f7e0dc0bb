"""The doctor's referral wizard over a draft :class:`Referral` (the draft's answers are kept
by :func:`flows.referrals.save_draft`, sealed under the patient's key): target hospital,
department, reason, urgency, findings, valid-until, then a review card with Issue / Change a
step / Cancel. Issuing itself (code, signature, sealed content) is
:func:`flows.referrals.issue`.

``step`` is where the doctor is: one of :data:`STEPS`, ``review``, or ``c:<step>`` while one
step is changed from the review card (its old value stays until replaced, and "Keep" goes back
to the review); ``done`` outside the wizard. The findings step starts with what the intake
and the case suggest, which the doctor keeps or replaces.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from flows import directory
from flows import referrals as core
from flows.consultation import doctor_ref, is_verified
from flows.errors import UserError
from flows.medication import local_today
from storage.models import Consultation, Doctor, Hospital, Referral
from storage.uow import UnitOfWork

TABLE = "referral"
URGENCIES = core.URGENCIES
STEPS = ("target", "department", "reason", "urgency", "findings", "valid")
REVIEW = "review"
DONE = "done"
# A step being changed from the review card is stored as "c.<step>". Drafts from before kept
# "c:<step>", and ':' is aiogram's callback-data separator: a button carrying it cannot be
# packed ("Change a step" -> urgency answered "Sorry, something went wrong"). Both are read.
CHANGE = "c."
LEGACY_CHANGE = "c:"
TEXT_MAX = 200  # hospital and department names typed as free text
REASON_MAX = 500
FINDINGS_MAX = 2000
VALID_DAYS = ("7", "14", "30")  # the buttons
VALID_MAX_DAYS = 90
ANY_DEPARTMENT = "-"  # "no particular department"


class NotAllowed(Exception):
    """Not now / not yours / stale (``reason``); ``referral`` is the open draft if any."""

    def __init__(self, reason: str, referral: Referral | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.referral = referral


class BadInput(UserError, ValueError):
    """A typed answer that can't be used; the step stays. ``msgid``/``params``: why."""


def _clean(text: str | None) -> str:
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in (text or "").splitlines()]
    return "\n".join(line for line in lines if line).strip()


def _one_line(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def normal_step(step: str) -> str:
    """The step as buttons carry it (a draft's old ``c:reason`` is ``c.reason``)."""
    return CHANGE + step[len(LEGACY_CHANGE) :] if step.startswith(LEGACY_CHANGE) else step


def base_step(step: str) -> str:
    """The step asked (``c.reason`` -> ``reason``)."""
    step = normal_step(step)
    return step[len(CHANGE) :] if step.startswith(CHANGE) else step


def changing(step: str) -> bool:
    """Whether the step is being changed from the review card (so it can be kept)."""
    return normal_step(step).startswith(CHANGE)


async def values(uow: UnitOfWork, referral: Referral) -> dict[str, Any]:
    """The draft's answers so far."""
    return await core.draft(uow, referral)


async def wizard_of(uow: UnitOfWork, doctor: Doctor) -> Referral | None:
    """The draft this doctor is filling in right now (one at a time), if any."""
    return await uow.referrals.open_draft(doctor.id, DONE)


async def case_of(uow: UnitOfWork, referral: Referral) -> Consultation | None:
    """The consultation the referral was written in."""
    cid = referral.consultation_id
    return await uow.consultations.get(cid) if cid else None


def _check_doctor(doctor: Doctor, now: datetime) -> None:
    if not is_verified(doctor, now):
        raise NotAllowed("unverified")


async def begin(
    uow: UnitOfWork, doctor: Doctor, case: Consultation, prefill: str, now: datetime
) -> Referral:
    """A new draft for the patient of one of the doctor's cases (closed ones too).
    ``prefill`` is the findings suggested from the intake and the case."""
    _check_doctor(doctor, now)
    if case.doctor_id != doctor.id:
        await uow.audit.record(doctor_ref(doctor), "referral.refused", "consultation", case.id, {})
        raise NotAllowed("not_yours")
    open_draft = await wizard_of(uow, doctor)
    if open_draft is not None:
        raise NotAllowed("draft_open", open_draft)
    return await core.start_draft(
        uow, doctor, case.patient_id, consultation_id=case.id, findings=prefill[:FINDINGS_MAX]
    )


def _after(step: str) -> str:
    """Where an answer to ``step`` leads: the next step, or back to the review card when it
    was a change (a new hospital asks its department again)."""
    if changing(step):
        return CHANGE + "department" if base_step(step) == "target" else REVIEW
    index = STEPS.index(step)
    return STEPS[index + 1] if index + 1 < len(STEPS) else REVIEW


def _same(referral: Referral, ref: str) -> bool:
    """A button names its draft by an id prefix (callback data is at most 64 bytes)."""
    return len(ref) >= 8 and referral.id.startswith(ref)


async def _wizard(uow: UnitOfWork, doctor: Doctor, referral_id: str | None) -> Referral:
    referral = await wizard_of(uow, doctor)
    if referral is None or (referral_id is not None and not _same(referral, referral_id)):
        raise NotAllowed("stale")
    return referral


async def _store(
    uow: UnitOfWork, doctor: Doctor, referral: Referral, changes: dict[str, Any]
) -> str:
    step = referral.step
    await core.save_draft(uow, referral, changes)
    referral.step = _after(step)
    await uow.audit.record(
        doctor_ref(doctor), "referral.step", TABLE, referral.id, {"step": base_step(step)}
    )
    return referral.step


def _text(raw: str, limit: int, *, multiline: bool = False) -> str:
    text = _clean(raw) if multiline else _one_line(raw)
    if not text:
        raise BadInput("ref.wiz.empty")
    if len(text) > limit:
        raise BadInput("ref.wiz.too_long", max=limit)
    return text


_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y/%m/%d", "%Y.%m.%d")
_CJK_DATE = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?$")
_DAYS = re.compile(r"^(\d{1,3})\s*(d|day|days|дн|дня|дней|день|天|日)?$", re.IGNORECASE)


def parse_valid_until(raw: str, today: date) -> date:
    """A last valid date typed as a date (2026-12-31, 31.12.2026, 2026年12月31日) or a
    number of days; after today, at most 90 days ahead."""
    text = _one_line(raw).lower()
    found: date | None = None
    days = _DAYS.match(text)
    if days:
        found = today + timedelta(days=int(days.group(1)))
    else:
        cjk = _CJK_DATE.match(text)
        if cjk:
            try:
                found = date(int(cjk.group(1)), int(cjk.group(2)), int(cjk.group(3)))
            except ValueError:
                found = None
        for fmt in _DATE_FORMATS:
            if found is not None:
                break
            try:
                found = datetime.strptime(text, fmt).date()
            except ValueError:
                continue
    if found is None:
        raise BadInput("ref.wiz.bad_date")
    if found <= today:
        raise BadInput("ref.wiz.date_past")
    if found > today + timedelta(days=VALID_MAX_DAYS):
        raise BadInput("ref.wiz.date_far", max=VALID_MAX_DAYS)
    return found


async def today_of(uow: UnitOfWork, referral: Referral, now: datetime) -> date:
    """Today in the patient's time zone."""
    return local_today(await uow.patients.get(referral.patient_id), now)


async def answer(
    uow: UnitOfWork, doctor: Doctor, referral: Referral, raw: str, now: datetime
) -> str:
    """A typed answer to the current step; returns the next step. :class:`BadInput` when
    it can't be used (the step stays)."""
    _check_doctor(doctor, now)
    step = base_step(referral.step)
    new: dict[str, Any]
    if step == "target":
        name = _text(raw, TEXT_MAX)
        match = [h for h in await directory.hospitals(uow) if h.name.casefold() == name.casefold()]
        new = {
            "hospital_id": match[0].id if match else None,
            "target_hospital": match[0].name if match else name,
        }
    elif step == "department":
        new = {"target_department": _text(raw, TEXT_MAX)}
    elif step == "reason":
        new = {"reason": _text(raw, REASON_MAX, multiline=True)}
    elif step == "findings":
        new = {"findings": _text(raw, FINDINGS_MAX, multiline=True)}
    elif step == "valid":
        day = parse_valid_until(raw, await today_of(uow, referral, now))
        new = {"valid_until": day.isoformat()}
    else:  # urgency and the review card are answered with buttons
        raise BadInput("ref.wiz.use_buttons")
    return await _store(uow, doctor, referral, new)


async def choose(
    uow: UnitOfWork, doctor: Doctor, referral_id: str, step: str, value: str, now: datetime
) -> Referral:
    """A button answer of the current step (a directory hospital by id, a department by its
    index, an urgency, keeping the findings shown, 7/14/30 days). A button of another step
    or draft is stale; a hospital no longer in the directory is :class:`BadInput`."""
    _check_doctor(doctor, now)
    referral = await _wizard(uow, doctor, referral_id)
    if normal_step(referral.step) != normal_step(step):
        raise NotAllowed("stale")
    asked = base_step(step)
    new: dict[str, Any]
    if asked == "target":
        try:
            hospital: Hospital | None = await directory.find(uow, value)
        except directory.NotFound:
            hospital = None
        if hospital is None or not hospital.active:
            raise BadInput("ref.wiz.unknown_hospital")
        new = {"hospital_id": hospital.id, "target_hospital": hospital.name}
    elif asked == "department":
        if value == ANY_DEPARTMENT:
            new = {"target_department": ""}
        else:
            hospital = await directory.get(uow, referral.hospital_id or "")
            deps = directory.departments_of(hospital) if hospital is not None else []
            if not value.isdigit() or int(value) >= len(deps):
                raise NotAllowed("stale")
            new = {"target_department": deps[int(value)]}
    elif asked == "urgency" and value in URGENCIES:
        new = {"urgency": value}
    elif asked == "findings" and value == "keep":
        if not str((await values(uow, referral)).get("findings") or "").strip():
            raise NotAllowed("stale")
        new = {}
    elif asked == "valid" and value in VALID_DAYS:
        today = await today_of(uow, referral, now)
        new = {"valid_until": (today + timedelta(days=int(value))).isoformat()}
    else:
        raise NotAllowed("stale")
    await _store(uow, doctor, referral, new)
    return referral


async def goto(
    uow: UnitOfWork, doctor: Doctor, referral_id: str, step: str, now: datetime
) -> Referral:
    """From the review card, "Change a step": that step is asked again (its old value can
    be kept), then back to the review."""
    _check_doctor(doctor, now)
    referral = await _wizard(uow, doctor, referral_id)
    if referral.step != REVIEW or step not in (*STEPS, REVIEW):
        raise NotAllowed("stale")
    referral.step = REVIEW if step == REVIEW else CHANGE + step
    return referral


async def keep(uow: UnitOfWork, doctor: Doctor, referral_id: str, now: datetime) -> Referral:
    """While changing one step from the review card: keep its old value, back to review."""
    _check_doctor(doctor, now)
    referral = await _wizard(uow, doctor, referral_id)
    if not changing(referral.step):
        raise NotAllowed("stale")
    referral.step = REVIEW
    return referral


async def cancel(uow: UnitOfWork, doctor: Doctor, now: datetime) -> Referral | None:
    """/cancel or the Cancel button: the draft is deleted (a draft was never a referral).
    None when no wizard was open."""
    referral = await wizard_of(uow, doctor)
    if referral is None:
        return None
    await uow.audit.record(doctor_ref(doctor), "referral.cancel", TABLE, referral.id, {})
    await uow.referrals.delete(referral)
    return referral


async def ready(uow: UnitOfWork, doctor: Doctor, referral_id: str, now: datetime) -> Referral:
    """The draft on its review card (what Issue needs)."""
    _check_doctor(doctor, now)
    referral = await _wizard(uow, doctor, referral_id)
    if referral.step != REVIEW:
        raise NotAllowed("stale")
    return referral
