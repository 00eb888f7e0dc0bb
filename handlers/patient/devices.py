"""/devices in the patient bot: the patient's connected devices and apps, "Connect a device or
app" (a one-time pairing code and the personal upload address), Revoke, and "Import a file"
(the next Apple Health export or CSV the patient sends is queued for bot/imports.py)."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import devices as flow
from flows.domain import Patient, utcnow
from flows.onboarding import Step, step_of
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from handlers.patient.refusals import refused_button
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.devices")


class DevCB(CallbackData, prefix="dev"):
    """A /devices button: ``new``, ``imp`` or ``rev`` (``id``: the device)."""

    action: str
    id: str = ""


def upload_address(settings: Settings, device_id: str) -> str:
    """Where a device posts its readings (its pairing goes to ``…/pair`` beside it)."""
    return f"{settings.public_url.rstrip('/')}/d/{device_id}/fhir"


async def _list(uow: UnitOfWork, patient: Patient, tr: Translator, reply: Replier) -> None:
    mine, files = await flow.devices_and_files(uow, patient)
    lines = [str(tr("device.list.title"))]
    rows = []
    for d in mine:
        seen = (
            tr.plain("device.list.seen", at=d.last_seen_at.strftime("%Y-%m-%d %H:%M"))
            if d.last_seen_at
            else ""
        )
        status = tr.plain(f"device.status.{d.status}")
        lines.append(str(tr("device.list.item", label=d.label, status=status, seen=seen)))
        rows.append(
            [
                InlineKeyboardButton(
                    text=tr.plain("device.button.revoke", label=d.label)[:64],
                    callback_data=DevCB(action="rev", id=d.id).pack(),
                )
            ]
        )
    if not mine:
        lines.append(str(tr("device.list.empty")))
    for src in files:
        at = src.last_seen_at or src.created_at
        lines.append(str(tr("device.list.imported", label=src.label, at=f"{at:%Y-%m-%d %H:%M}")))
    rows.append(
        [
            InlineKeyboardButton(
                text=tr.plain("device.button.connect")[:64],
                callback_data=DevCB(action="new").pack(),
            )
        ]
    )
    rows.append(
        [
            InlineKeyboardButton(
                text=tr.plain("device.button.import")[:64],
                callback_data=DevCB(action="imp").pack(),
            )
        ]
    )
    await reply.text("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


@routes.message(Command("devices"))
async def on_devices(
    message: Message, uow: UnitOfWork, patient: Patient | None, tr: Translator, reply: Replier
) -> None:
    """The patient's devices with Revoke, and "Connect a device or app"."""
    if patient is None or step_of(patient) is not Step.DONE:
        await reply.text(tr("device.start_first"))
        return
    await _list(uow, patient, tr, reply)


@routes.callback_query(DevCB.filter(F.action.in_({"new", "imp", "rev"})))
async def on_button(
    query: CallbackQuery,
    callback_data: DevCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Connect: a pending device with its one-time code. Revoke: its token stops working."""
    if patient is None or step_of(patient) is not Step.DONE:
        await refused_button(uow, query, patient, "not_onboarded")
        await reply.answer_callback(query.id, tr.plain("device.start_first"), alert=True)
        return
    if callback_data.action == "imp":
        await flow.ask_import(uow, patient, utcnow())
        await reply.answer_callback(query.id)
        await reply.text(
            tr(
                "device.import.ask",
                minutes=int(flow.IMPORT_WAIT.total_seconds() // 60),
                max_mb=flow.MAX_IMPORT_BYTES // 1024 // 1024,
            )
        )
        return
    if callback_data.action == "new":
        device, code = await flow.connect(uow, patient, utcnow())
        await reply.answer_callback(query.id)
        await reply.text(
            tr(
                "device.connected",
                address=upload_address(settings, device.id),
                code=code,
                minutes=flow.PAIR_MINUTES,
            ),
            protect=True,
        )
        return
    try:
        device = await flow.revoke(uow, patient, callback_data.id, utcnow())
    except flow.DeviceError:
        await refused_button(uow, query, patient, "not_yours")
        raise
    await reply.answer_callback(query.id)
    await reply.text(tr("device.revoked", label=device.label))
    await _list(uow, patient, tr, reply)


async def _importing(message: Message, uow: UnitOfWork, patient: Patient | None) -> bool:
    """A file sent after "Import a file" (and before that ran out)."""
    return (
        patient is not None
        and message.document is not None
        and await flow.waiting_import(uow, patient.id, utcnow()) is not None
    )


@routes.message(F.document, _importing)
async def on_import_file(
    message: Message, uow: UnitOfWork, patient: Patient, tr: Translator, reply: Replier
) -> None:
    """The file to import: refused with what to send instead, or queued with a progress
    message that the import runner edits as it reads the file."""
    job = await flow.waiting_import(uow, patient.id, utcnow())
    doc = message.document
    assert job is not None and doc is not None
    await flow.queue_import(
        uow, patient, job, file_id=doc.file_id, file_size=doc.file_size,
        file_name=doc.file_name, mime_type=doc.mime_type,
    )  # fmt: skip
    job.progress_row = await reply.text(tr("device.import.queued"))
