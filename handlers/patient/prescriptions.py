"""The patient's e-prescriptions: the PDF (protected) when it takes effect, a notice while a
pharmacist reviews it, when it is rejected, revoked or dispensed, and ``/prescriptions``
(each one with its status; a valid one can be sent again)."""

from __future__ import annotations

import re
from typing import Any

from aiogram import F
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import prescriptions as rxf
from flows.domain import Patient, utcnow
from flows.errors import UserError
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from handlers.common.rx import chronic_label, items_text
from handlers.common.slips import signer  # the same keys as referral slips
from handlers.patient.refusals import refused_button
from locales import Translator
from storage.crypto import CryptoError
from storage.uow import UnitOfWork

routes = RouteTable("patient.prescriptions")
_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")


class PRxCB(CallbackData, prefix="prx"):
    """A patient's prescription button (``ref``: the prescription id's first 12)."""

    action: str  # again
    ref: str


def font_problem(patient: Patient | None, texts: list[str]) -> bool:
    """True when the prescription needs Chinese glyphs and this server has no CJK font
    (checked before issuing: a prescription is never issued that can't be printed)."""
    from flows import slip

    if slip.find_cjk_font() is not None:
        return False
    return (patient is not None and patient.locale == "zh_Hans") or any(
        _CJK.search(t) for t in texts
    )


def check_url(settings: Settings, code: str) -> str:
    """The pharmacy's check page of a prescription (its QR adds the token)."""
    return f"{settings.public_url.rstrip('/')}/rx/{code}"


async def _chat(uow: UnitOfWork, rx: Any) -> tuple[Patient, Translator] | None:
    patient = await uow.patients.get(rx.patient_id)
    if patient is None or patient.tg_user_id is None:
        return None
    return patient, Translator(patient.locale)


async def send_rx(
    uow: UnitOfWork,
    rx: Any,
    settings: Settings,
    *,
    content: rxf.RxContent | None = None,
    token: str | None = None,
) -> str:
    """Render the prescription and queue it to the patient as a protected document; records
    the file's hash. Returns "sent", "no_patient" or "no_font"."""
    found = await _chat(uow, rx)
    if found is None:
        return "no_patient"
    patient, ptr = found
    if content is None or token is None:
        content = await rxf.content_of(uow, rx)
        token = await rxf.token_of(uow, rx, signer(uow))
    from flows import rx_pdf, slip  # the PDF stack is loaded on the first document

    label = chronic_label(ptr, content.chronic, settings.jurisdiction.value)
    url = check_url(settings, content.code)
    try:
        pdf = rx_pdf.render_rx(content, token, url, chronic_label=label)
    except slip.SlipError:
        return "no_font"
    await rxf.attach_file(rx, pdf)
    caption = ptr(
        "rx.pat.caption",
        code=content.code,
        valid_until=content.valid_until.isoformat(),
        n=len(content.items),
    )
    await Replier(uow, "patient", patient.tg_user_id).document(
        f"prescription-{content.code}.pdf", pdf, caption, protect=True
    )
    return "sent"


async def tell_pending(uow: UnitOfWork, rx: Any, content: rxf.RxContent) -> None:
    """The patient hears that a prescription was written and is being reviewed."""
    found = await _chat(uow, rx)
    if found is not None:
        patient, ptr = found
        await Replier(uow, "patient", patient.tg_user_id).text(
            ptr("rx.pat.pending", code=content.code, doctor=content.doctor_name or "—")
        )


async def tell(uow: UnitOfWork, rx: Any, msgid: str, **params: Any) -> None:
    """The patient hears of a change to a prescription (rejected, revoked, dispensed)."""
    found = await _chat(uow, rx)
    if found is not None:
        patient, ptr = found
        await Replier(uow, "patient", patient.tg_user_id).text(
            ptr(msgid, code=rx.code or "—", **params)
        )


@routes.message(Command("prescriptions"))
async def on_list(
    message: Message, uow: UnitOfWork, patient: Patient | None, tr: Translator, reply: Replier
) -> None:
    """The patient's prescriptions, newest first; a valid one can be sent again."""
    if patient is None:
        await reply.text(tr("rx.pat.none"))
        return
    mine = await rxf.for_patient(uow, patient.id)
    if not mine:
        await reply.text(tr("rx.pat.none"))
        return
    for rx in mine[:20]:
        try:
            content = await rxf.content_of(uow, rx)
        except CryptoError:  # the key is gone (a purged record): nothing to show
            continue
        rows = []
        if rx.status == rxf.State.ACTIVE:
            rows = [
                [
                    InlineKeyboardButton(
                        text=tr.plain("rx.pat.again")[:64],
                        callback_data=PRxCB(action="again", ref=rx.id[:12]).pack(),
                    )
                ]
            ]
        await reply.text(
            tr(
                "rx.pat.item",
                code=rx.code or "—",
                status=tr.plain(f"rx.status.{rx.status}"),
                items=items_text(tr, content.items),
                valid_until=content.valid_until.isoformat(),
                doctor=content.doctor_name or "—",
            ),
            InlineKeyboardMarkup(inline_keyboard=rows) if rows else None,
            protect=True,
        )


@routes.callback_query(PRxCB.filter(F.action == "again"))
async def on_again(
    query: CallbackQuery,
    callback_data: PRxCB,
    uow: UnitOfWork,
    patient: Patient | None,
    reply: Replier,
    settings: Settings,
) -> None:
    """The same prescription again (only the patient's own, only while it can be used)."""
    rx = await uow.prescriptions.by_prefix(callback_data.ref)
    if patient is None or rx is None or rx.patient_id != patient.id:
        await refused_button(uow, query, patient, "not_yours")
        raise UserError("rx.pat.not_found")
    if not rxf.usable(rx, utcnow()):
        raise UserError("rx.pat.not_valid")
    await reply.answer_callback(query.id)
    await send_rx(uow, rx, settings)
