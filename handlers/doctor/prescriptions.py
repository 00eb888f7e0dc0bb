"""E-prescriptions in the doctor bot.

Doctors: ``/rx [case number]`` (a wizard: medicines typed one per line as ``name; strength;
dose; quantity; days``, then the diagnosis, the validity and whether a chronic-disease rule
applies, then a review card with Issue / Cancel), ``/prescriptions [case number]`` (the
case's prescriptions, each pending or active one with Revoke), ``/cancel`` of the open
wizard. After issuing, each medicine can seed a medication plan (the plan wizard, prefilled;
the patient confirms the plan as any other).

Pharmacists: ``/review`` (the prescriptions waiting for review, oldest first, each with
Approve / Reject; a rejection asks for the reason, which goes back to the doctor).

The case is found like ``/plan`` finds it. While the wizard is open the doctor's plain texts
are its answers, so this router goes before the case router.
"""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import consultation as cases
from flows import prescriptions as rxf
from flows.domain import Consultation, Doctor, utcnow
from flows.errors import UserError
from flows.outbox import Replier
from handlers.common.routes import RouteTable
from handlers.common.rx import chronic_label, items_text
from handlers.doctor.guard import can_review, can_work, case_from_command, verified
from handlers.patient import prescriptions as patient_side
from locales import Html, Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.prescriptions")
REJECTING = "rx_reject"  # FSM data key: the prescription whose rejection reason is typed
VALID_BUTTONS = (1, 2, 3, 5, 7)
REVIEW_LIST = 10


class RxCB(CallbackData, prefix="drx"):
    """A prescription button (``ref``: the prescription id or its first 12 characters)."""

    action: str  # done | undo | valid | chronic | issue | cancel | rev | plan | ok | no
    ref: str
    value: str = ""


def _b(tr: Translator, msgid: str, cb: CallbackData, **params: Any) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=tr.plain(msgid, **params)[:64], callback_data=cb.pack())


def _jurisdiction(settings: Settings) -> str:
    return settings.jurisdiction.value


async def _header(uow: UnitOfWork, rx: Any) -> tuple[int, str]:
    case = await uow.consultations.get(rx.consultation_id or "")
    if case is None:
        return 0, "—"
    return case.number, await cases.patient_first_name(uow, case)


async def show_step(
    uow: UnitOfWork, tr: Translator, reply: Replier, rx: Any, settings: Settings
) -> None:
    """Ask the wizard's current question (or show the review card)."""
    values = await rxf.answers(uow, rx)
    step = rxf.next_step(values)
    rx.step = step
    number, name = await _header(uow, rx)
    rid = rx.id[:12]
    items = [rxf.item_from_dict(i) for i in values["items"]]
    rules = rxf.rules_for(_jurisdiction(settings))
    cancel = _b(tr, "rx.wiz.cancel", RxCB(action="cancel", ref=rid))
    rows: list[list[InlineKeyboardButton]] = []
    if step == "items":
        if items:
            rows.append(
                [
                    _b(tr, "rx.wiz.done_items", RxCB(action="done", ref=rid)),
                    _b(tr, "rx.wiz.undo", RxCB(action="undo", ref=rid)),
                ]
            )
        rows.append([cancel])
        await reply.text(
            tr("rx.wiz.ask_items", number=number, name=name, items=items_text(tr, items),
               max=rules.max_supply_days),
            InlineKeyboardMarkup(inline_keyboard=rows),
            protect=True,
        )  # fmt: skip
        return
    if step == "diagnosis":
        rows.append([cancel])
        await reply.text(tr("rx.wiz.ask_diagnosis"), InlineKeyboardMarkup(inline_keyboard=rows))
        return
    if step == "validity":
        rows.append(
            [
                _b(tr, "rx.wiz.days", RxCB(action="valid", ref=rid, value=str(d)), n=d)
                for d in VALID_BUTTONS
                if d <= rules.max_valid_days
            ]
        )
        rows.append([cancel])
        await reply.text(
            tr("rx.wiz.ask_validity", default=rules.default_valid_days, max=rules.max_valid_days),
            InlineKeyboardMarkup(inline_keyboard=rows),
        )
        return
    if step == "chronic":
        supply = max(i.days for i in items)
        rows.append([_b(tr, "rx.wiz.not_chronic", RxCB(action="chronic", ref=rid, value="-"))])
        for rule in rules.chronic:
            label = rule.labels.get(tr.locale) or rule.labels.get("en") or rule.id
            rows.append(
                [
                    InlineKeyboardButton(
                        text=tr.plain("rx.wiz.chronic_button", name=label,
                                      days=rule.max_supply_days)[:64],
                        callback_data=RxCB(action="chronic", ref=rid, value=rule.id).pack(),
                    )
                ]
            )  # fmt: skip
        rows.append([cancel])
        await reply.text(
            tr("rx.wiz.ask_chronic", supply=supply, max=rules.max_supply_days),
            InlineKeyboardMarkup(inline_keyboard=rows),
        )
        return
    rows = [[_b(tr, "rx.wiz.issue", RxCB(action="issue", ref=rid))], [cancel]]
    await reply.text(
        tr(
            "rx.wiz.review",
            number=number,
            name=name,
            items=items_text(tr, items),
            diagnosis=values.get("diagnosis") or "—",
            valid=values.get("valid_days") or "—",
            chronic=chronic_label(tr, values.get("chronic"), _jurisdiction(settings)) or "—",
            review=tr.plain("rx.wiz.review_needed" if rx.review_required else "rx.wiz.no_review"),
        ),
        InlineKeyboardMarkup(inline_keyboard=rows),
        protect=True,
    )


async def _case_for(
    uow: UnitOfWork,
    doctor: Doctor,
    message: Message,
    command: CommandObject,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> Consultation | None:
    return await case_from_command(
        uow, doctor, message, command, state, tr, reply,
        refused="rx.refused", not_yours="rx.not_your_case", which="rx.which_case",
    )  # fmt: skip


@routes.message(Command("rx"))
@verified("rx")
async def on_rx(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Starts a prescription for the case's patient (or shows the open wizard's question)."""
    open_rx = await rxf.draft_of(uow, doctor)
    if open_rx is not None:
        await reply.text(tr("rx.wiz.already_open"))
        await show_step(uow, tr, reply, open_rx, settings)
        return
    case = await _case_for(uow, doctor, message, command, state, tr, reply)
    if case is None:
        return
    await state.update_data(case=case.id)
    rx = await rxf.begin(
        uow, doctor, case, utcnow(), _jurisdiction(settings), review=settings.rx_review
    )
    await show_step(uow, tr, reply, rx, settings)


async def _open(message: Message, uow: UnitOfWork, doctor: Doctor | None) -> bool | dict[str, Any]:
    """Only while this (verified) doctor has a prescription wizard open."""
    if not can_work(doctor):
        return False
    rx = await rxf.draft_of(uow, doctor)
    return {"rx": rx} if rx is not None else False


@routes.message(Command("cancel"), _open)
async def on_cancel(
    message: Message, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """Drops the draft prescription."""
    await rxf.cancel(uow, doctor)
    await reply.text(tr("rx.wiz.cancelled"))


@routes.message(F.text, ~F.text.startswith("/"), _open)
async def on_answer(
    message: Message,
    rx: Any,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A typed medicine line (or the diagnosis, or the validity in days); a bad one says
    why and the step stays."""
    assert message.text is not None
    values = await rxf.answers(uow, rx)
    step = rxf.next_step(values)
    jurisdiction = _jurisdiction(settings)
    try:
        if step == "items":
            await rxf.add_item(uow, doctor, rx, message.text, jurisdiction)
        elif step in ("diagnosis", "validity"):
            await rxf.set_answer(uow, doctor, rx, step, message.text, jurisdiction)
        else:
            await reply.text(tr("rx.wiz.use_buttons"))
    except rxf.RxError as bad:
        await reply.text(tr(bad.msgid, **_params(tr, bad.params, jurisdiction)))
    await show_step(uow, tr, reply, rx, settings)


def _params(tr: Translator, params: dict[str, Any], jurisdiction: str) -> dict[str, Any]:
    out = dict(params)
    if "cls" in out:
        cls = next((c for c in rxf.rules_for(jurisdiction).classes if c.id == out["cls"]), None)
        out["cls"] = (cls.labels.get(tr.locale) or cls.labels.get("en") or cls.id) if cls else ""
    return out


@routes.message(~F.text, _open)
async def on_not_text(
    message: Message, rx: Any, uow: UnitOfWork, tr: Translator, reply: Replier, settings: Settings
) -> None:
    """A photo, sticker or file while the wizard waits: it says what it needs."""
    await reply.text(tr("rx.wiz.text_only"))
    await show_step(uow, tr, reply, rx, settings)


async def _draft(uow: UnitOfWork, doctor: Doctor, ref: str) -> Any:
    rx = await rxf.draft_of(uow, doctor)
    if rx is None or not rx.id.startswith(ref):
        raise UserError("rx.wiz.stale")
    return rx


@routes.callback_query(RxCB.filter(F.action.in_({"done", "undo", "valid", "chronic"})))
@verified("rx_button")
async def on_wizard_button(
    query: CallbackQuery,
    callback_data: RxCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Done adding medicines, take the last one off, a validity, a chronic rule (or none)."""
    rx = await _draft(uow, doctor, callback_data.ref)
    await reply.answer_callback(query.id)
    jurisdiction = _jurisdiction(settings)
    values = await rxf.answers(uow, rx)
    try:
        if callback_data.action == "done":
            if values["items"]:
                await rxf.set_adding(uow, rx, adding=False)
        elif callback_data.action == "undo":
            await rxf.remove_last(uow, rx)
        elif callback_data.action == "valid":
            await rxf.set_answer(uow, doctor, rx, "validity", callback_data.value, jurisdiction)
        else:
            await rxf.set_answer(uow, doctor, rx, "chronic", callback_data.value, jurisdiction)
    except rxf.RxError as bad:
        await reply.text(tr(bad.msgid, **_params(tr, bad.params, jurisdiction)))
    await show_step(uow, tr, reply, rx, settings)


@routes.callback_query(RxCB.filter(F.action == "cancel"))
@verified("rx_button")
async def on_cancel_button(
    query: CallbackQuery, callback_data: RxCB, uow: UnitOfWork, doctor: Doctor,
    tr: Translator, reply: Replier,
) -> None:  # fmt: skip
    """The wizard's Cancel: the draft is dropped."""
    await _draft(uow, doctor, callback_data.ref)
    await rxf.cancel(uow, doctor)
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    await reply.text(tr("rx.wiz.cancelled"))


@routes.callback_query(RxCB.filter(F.action == "issue"))
@verified("rx_button")
async def on_issue(
    query: CallbackQuery,
    callback_data: RxCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Issue: signed; sent to the patient now, or to the pharmacists for review first."""
    rx = await _draft(uow, doctor, callback_data.ref)
    await reply.answer_callback(query.id)
    jurisdiction = _jurisdiction(settings)
    content = await rxf.answers(uow, rx)
    texts = [str(i.get("name", "")) + str(i.get("dose", "")) for i in content["items"]]
    if patient_side.font_problem(await uow.patients.get(rx.patient_id), texts):
        await reply.text(tr("rx.no_font"))
        return
    try:
        issued, token = await rxf.issue(
            uow, doctor, rx, utcnow(), patient_side.signer(uow), jurisdiction
        )
    except rxf.RxError as bad:
        await reply.text(tr(bad.msgid, **_params(tr, bad.params, jurisdiction)))
        await show_step(uow, tr, reply, rx, settings)
        return
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    number, name = await _header(uow, rx)
    if rx.status == rxf.State.PENDING:
        await patient_side.tell_pending(uow, rx, issued)
        await notify_pharmacists(uow, rx, issued)
        await reply.text(tr("rx.issued_pending", number=number, name=name, code=issued.code))
    else:
        await patient_side.send_rx(uow, rx, settings, content=issued, token=token)
        await reply.text(
            tr("rx.issued", number=number, name=name, code=issued.code,
               valid_until=issued.valid_until.isoformat()),
        )  # fmt: skip
    rows = [
        [_b(tr, "rx.plan_button", RxCB(action="plan", ref=rx.id[:12], value=str(i)), n=i + 1,
            name=it.name[:30])]
        for i, it in enumerate(issued.items)
    ]  # fmt: skip
    await reply.text(tr("rx.plan_offer"), InlineKeyboardMarkup(inline_keyboard=rows))


async def notify_pharmacists(uow: UnitOfWork, rx: Any, content: rxf.RxContent) -> None:
    """Every verified pharmacist hears that a prescription waits for review (no patient data
    in the notice: /review shows it, audited)."""
    now = utcnow()
    for person in await uow.doctors.with_status("verified", role="pharmacist"):
        if rxf.is_pharmacist(person, now) and person.tg_user_id is not None:
            ptr = Translator(person.locale)
            await Replier(uow, "doctor", person.tg_user_id).text(
                ptr("rx.review.new", code=content.code)
            )


@routes.callback_query(RxCB.filter(F.action == "plan"))
@verified("rx_button")
async def on_plan(
    query: CallbackQuery,
    callback_data: RxCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """A medicine of an issued prescription seeds a medication plan: the plan wizard opens
    with its name, strength and dose filled in (the doctor adds the times; the patient
    confirms the plan as any other)."""
    from handlers.doctor import plans

    rx = await uow.prescriptions.by_prefix(callback_data.ref)
    if rx is None or rx.doctor_id != doctor.id or rx.status == rxf.State.DRAFT:
        raise UserError("rx.wiz.stale")
    plan = await rxf.seed_plan(uow, doctor, rx, int(callback_data.value or 0), utcnow())
    await reply.answer_callback(query.id)
    await plans.show_step(uow, tr, reply, plan)


@routes.message(Command("prescriptions"))
@verified("prescriptions")
async def on_list(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The case's prescriptions by this doctor, each pending or active one with Revoke."""
    case = await _case_for(uow, doctor, message, command, state, tr, reply)
    if case is None:
        return
    name = await cases.patient_first_name(uow, case)
    mine = [r for r in await rxf.for_case(uow, case.id) if r.doctor_id == doctor.id]
    if not mine:
        await reply.text(tr("rx.doc.none", number=case.number, name=name))
        return
    await uow.audit.record(cases.doctor_ref(doctor), "rx.list", "consultation", case.id, {})
    for rx in mine[:20]:
        content = await rxf.content_of(uow, rx)
        extra = await _status_extra(uow, tr, rx)
        rows = []
        if rx.status in (rxf.State.PENDING, rxf.State.ACTIVE):
            rows = [[_b(tr, "rx.doc.revoke", RxCB(action="rev", ref=rx.id[:12]))]]
        await reply.text(
            tr(
                "rx.doc.item",
                number=case.number,
                name=name,
                code=rx.code or "—",
                status=tr.plain(f"rx.status.{rx.status}"),
                items=items_text(tr, content.items),
                valid_until=content.valid_until.isoformat(),
                extra=Html(extra),
            ),
            InlineKeyboardMarkup(inline_keyboard=rows) if rows else None,
            protect=True,
        )


async def _status_extra(uow: UnitOfWork, tr: Translator, rx: Any) -> str:
    if rx.status == rxf.State.REJECTED:
        return str(tr("rx.doc.rejected_because", reason=await rxf.review_reason(uow, rx)))
    if rx.status == rxf.State.DISPENSED:
        given = await rxf.dispensing_of(uow, rx)
        if given is not None:
            return str(
                tr(
                    "rx.doc.dispensed_at",
                    pharmacy=given.pharmacy,
                    date=given.at.date().isoformat(),
                    partial=tr.plain("rx.partial") if given.partial else "",
                )
            )
    return ""


@routes.callback_query(RxCB.filter(F.action == "rev"))
@verified("rx_button")
async def on_revoke(
    query: CallbackQuery,
    callback_data: RxCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Revoke a pending or active prescription; the patient is told."""
    rx = await uow.prescriptions.by_prefix(callback_data.ref)
    if rx is None:
        raise UserError("rx.wiz.stale")
    await rxf.revoke(uow, doctor, rx.id, utcnow())
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    await patient_side.tell(uow, rx, "rx.pat.revoked")
    await reply.text(tr("rx.doc.revoked", code=rx.code or "—"))


# -- pharmacists -------------------------------------------------------------------------------


async def review_card(uow: UnitOfWork, tr: Translator, rx: Any, settings: Settings) -> Html:
    """What a pharmacist reviews: the patient (name, year of birth, sex), the diagnosis,
    the medicines, the prescriber, the course and validity."""
    content = await rxf.content_of(uow, rx)
    return tr(
        "rx.review.card",
        code=content.code,
        patient=content.patient_name or "—",
        birth_year=content.birth_year or "—",
        sex=tr.plain(f"sex.{content.sex}") if content.sex else "—",
        doctor=content.doctor_name or "—",
        licence=content.doctor_licence or "—",
        diagnosis=content.diagnosis,
        items=items_text(tr, content.items),
        supply=content.supply_days,
        chronic=chronic_label(tr, content.chronic, _jurisdiction(settings)) or "—",
        valid_until=content.valid_until.isoformat(),
    )


@routes.message(Command("review"))
@verified("rx_review", role="pharmacist")
async def on_review(
    message: Message,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The prescriptions waiting for review, oldest first (each view audited)."""
    waiting = await rxf.pending(uow)
    if not waiting:
        await reply.text(tr("rx.review.none"))
        return
    await reply.text(tr("rx.review.head", n=len(waiting)))
    for rx in waiting[:REVIEW_LIST]:
        await uow.audit.record(
            cases.doctor_ref(doctor), "rx.review.view", "prescription", rx.id, {}
        )
        rows = [
            [
                _b(tr, "rx.review.approve", RxCB(action="ok", ref=rx.id[:12])),
                _b(tr, "rx.review.reject", RxCB(action="no", ref=rx.id[:12])),
            ]
        ]
        await reply.text(
            await review_card(uow, tr, rx, settings),
            InlineKeyboardMarkup(inline_keyboard=rows),
            protect=True,
        )


async def _pending_rx(uow: UnitOfWork, doctor: Doctor, ref: str) -> Any:
    rx = await uow.prescriptions.by_prefix(ref)
    if rx is None:
        await uow.audit.record(
            cases.doctor_ref(doctor), "rx.refused", "prescription", ref[:32], {"reason": "unknown"}
        )
        raise UserError("rx.review.not_pending")
    return rx


@routes.callback_query(RxCB.filter(F.action == "ok"))
@verified("rx_review_button", role="pharmacist")
async def on_approve(
    query: CallbackQuery,
    callback_data: RxCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Approve: the prescription takes effect; the patient gets it, the doctor is told."""
    rx = await _pending_rx(uow, doctor, callback_data.ref)
    await rxf.approve(uow, doctor, rx.id, utcnow())
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    await patient_side.send_rx(uow, rx, settings)
    await tell_doctor(uow, rx, "rx.doc.approved")
    await reply.text(tr("rx.review.approved", code=rx.code or "—"))


@routes.callback_query(RxCB.filter(F.action == "no"))
@verified("rx_review_button", role="pharmacist")
async def on_reject(
    query: CallbackQuery,
    callback_data: RxCB,
    uow: UnitOfWork,
    doctor: Doctor,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> None:
    """Reject: the reason is asked for (typed next)."""
    rx = await _pending_rx(uow, doctor, callback_data.ref)
    if rx.status != rxf.State.PENDING:
        raise UserError("rx.review.not_pending")
    await reply.answer_callback(query.id)
    await state.update_data({REJECTING: rx.id})
    await reply.text(tr("rx.review.ask_reason", code=rx.code or "—"))


async def _rejecting(
    message: Message, state: FSMContext, doctor: Doctor | None
) -> bool | dict[str, Any]:
    """Only while a verified pharmacist is typing a rejection reason."""
    if not can_review(doctor):
        return False
    rx_id = (await state.get_data()).get(REJECTING)
    return {"rx_id": rx_id} if rx_id else False


@routes.message(Command("cancel"), _rejecting)
async def on_reject_cancel(
    message: Message, state: FSMContext, tr: Translator, reply: Replier
) -> None:
    """No rejection after all: the prescription stays waiting."""
    await state.update_data({REJECTING: None})
    await reply.text(tr("rx.review.reject_cancelled"))


@routes.message(F.text, ~F.text.startswith("/"), _rejecting)
async def on_reason(
    message: Message,
    rx_id: str,
    uow: UnitOfWork,
    doctor: Doctor,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> None:
    """The typed reason: the prescription is rejected, the doctor gets the reason."""
    assert message.text is not None
    rx = await rxf.reject(uow, doctor, rx_id, message.text, utcnow())
    await state.update_data({REJECTING: None})
    await tell_doctor(uow, rx, "rx.doc.rejected", reason=await rxf.review_reason(uow, rx))
    await patient_side.tell(uow, rx, "rx.pat.rejected")
    await reply.text(tr("rx.review.rejected", code=rx.code or "—"))


async def tell_doctor(uow: UnitOfWork, rx: Any, msgid: str, **params: Any) -> None:
    """The prescribing doctor hears of a review."""
    doctor = await uow.doctors.get(rx.doctor_id)
    if doctor is None or doctor.tg_user_id is None:
        return
    dtr = Translator(doctor.locale)
    number, name = await _header(uow, rx)
    await Replier(uow, "doctor", doctor.tg_user_id).text(
        dtr(msgid, code=rx.code or "—", number=number, name=name, **params)
    )
