"""A doctor's /export [case number]: the whole record of a patient under their care as a
protected FHIR R4 Bundle (:mod:`flows.export`). Without a number, the replied-to or chosen
case. Refused (and audited) for a patient not under the doctor's care, a case number that does
not exist (the same answer: nothing is revealed) and anyone not verified."""

from __future__ import annotations

import logging

from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from flows import consultation as flow
from flows import export as record
from flows.domain import Doctor, utcnow
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from handlers.doctor.guard import target_case, verified
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.export")
log = logging.getLogger(__name__)


@routes.message(Command("export"))
@verified("export")
async def on_export(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Sends the record of the patient of a case as a protected JSON file (audited)."""
    now = utcnow()
    arg = (command.args or "").strip().lstrip("#")
    if arg:
        if not arg.isdigit() or len(arg) > 9:
            await reply.text(tr("export.doctor.usage"))
            return
        case = await uow.consultations.by_number(int(arg))
        if case is None:
            await uow.audit.record(
                flow.doctor_ref(doctor), "record.export.refused", "case_number", arg, {}
            )
            await reply.text(tr("export.doctor.not_yours", number=arg))
            return
    else:
        case = await target_case(uow, doctor, message, state)
        if case is None:
            await reply.text(tr("export.doctor.usage"))
            return
    patient = await uow.patients.get(case.patient_id)
    if patient is None:
        # Erased: only a kept record under the case's own key remains, not the patient's.
        await uow.audit.record(
            flow.doctor_ref(doctor), "record.export.refused", "consultation", case.id, {}
        )
        await reply.text(tr("export.doctor.gone", number=case.number))
        return
    try:
        data = await record.export_for_doctor(uow, doctor, patient, now=now)
    except record.NotUnderCare:
        await reply.text(tr("export.doctor.not_yours", number=case.number))
        return
    except ValueError:  # a record that does not make valid FHIR: a bug, never a traceback
        log.exception("export of a patient record for a doctor failed")
        await reply.text(tr("export.doctor.failed", number=case.number))
        return
    today = now.date().isoformat()
    await reply.document(
        f"careline-record-case-{case.number}-{today}.json",
        data,
        tr("export.doctor.caption", number=case.number, date=today),
        protect=True,
    )
