"""The doctor's referral slips: ``/referral [case number]`` (a wizard: hospital, department,
reason, urgency, findings, valid-until, then a review card with Issue / Change a step /
Cancel), ``/referrals [case number]`` (the slips of the case's patient, each issued one with
Revoke) and ``/cancel`` of the open wizard; also offered after /terminate. Admins manage the
hospital directory with ``/hospitals``.

The case is found like ``/plan`` finds it: ``/referral 12`` names it, else the tagged message
replied to, else the chosen case (closed cases of the doctor's own count). While a wizard is
open the doctor's plain texts are its answers, so this router goes before the case router.
"""

from __future__ import annotations

import html
import re
from typing import Any

from aiogram import F
from aiogram.filters import Command, CommandObject, ExceptionTypeFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    ErrorEvent,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

import handlers.patient.referrals as patient_side
from bot.settings import Settings
from flows import appointments, directory
from flows import consultation as cases
from flows import referral_followup as followup
from flows import referral_wizard as wiz
from flows import referrals as core
from flows.domain import Consultation, Doctor, Hospital, Referral, utcnow
from flows.outbox import Replier
from flows.questionnaire import load
from flows.referral_wizard import REVIEW, STEPS, BadInput, NotAllowed
from handlers.common import appointments as appointment_view
from handlers.common import slips
from handlers.common.errors import pressed
from handlers.common.routes import RouteTable
from handlers.doctor import desk
from handlers.doctor.guard import can_work, case_from_command, verified
from handlers.patient import appointments as desk_side
from handlers.patient.intake_render import summary_text
from locales import LOCALES, Html, Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.referrals")
MSG_ASK = {
    "target": "ref.wiz.ask_target",
    "department": "ref.wiz.ask_department",
    "reason": "ref.wiz.ask_reason",
    "urgency": "ref.wiz.ask_urgency",
    "findings": "ref.wiz.ask_findings",
    "valid": "ref.wiz.ask_valid",
}
HOSPITAL_BUTTONS = 20  # at most this many directory buttons (typing the name always works)
ADD_STEPS = ("name", "city", "locale", "departments")
ADDING = "hosp_add"  # FSM data key while an admin adds a hospital


class RefCB(CallbackData, prefix="drf"):
    """A wizard or /referrals button (``ref``: the referral id or its prefix)."""

    action: str  # new | pick | keep | steps | goto | cancel | issue | rev | revok
    ref: str
    step: str = ""
    value: str = ""


class HospCB(CallbackData, prefix="dhs"):
    """An admin's /hospitals button (``value``: hospital id, or a language code)."""

    action: str  # add | dis | disok | lang
    value: str = ""


def _b(tr: Translator, msgid: str, cb: CallbackData, **params: Any) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=tr.plain(msgid, **params)[:64], callback_data=cb.pack())


def referral_button(tr: Translator, case: Consultation) -> InlineKeyboardButton:
    """ "Issue a referral" for a case (after /terminate, on a cn first visit)."""
    return _b(tr, "ref.wiz.offer_button", RefCB(action="new", ref=case.id))


async def offer_referral(tr: Translator, reply: Replier, case: Consultation) -> None:
    """After /terminate (not suitable online): offer the referral wizard for the case."""
    await reply.text(
        tr("ref.wiz.offer", number=case.number),
        InlineKeyboardMarkup(inline_keyboard=[[referral_button(tr, case)]]),
    )


def _plain(text: str) -> str:
    """Chat HTML to plain text (the findings suggestion)."""
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


async def _prefill(uow: UnitOfWork, case: Consultation) -> str:
    """Findings suggested from the case's intake summary (in the patient's language)."""
    intake = await uow.intakes.get(case.intake_id) if case.intake_id else None
    if intake is None:
        return ""
    answers = await uow.intakes.answers(intake)
    patient = await uow.patients.get(case.patient_id)
    ptr = Translator(patient.locale if patient else "en")
    try:
        body = _plain(summary_text(ptr, load(), answers))
    except (KeyError, ValueError, TypeError):  # an old intake the summary can't show
        body = ""
    day = (case.accepted_at or case.requested_at or utcnow()).date().isoformat()
    head = ptr.plain("ref.wiz.prefill_case", number=case.number, date=day)
    return f"{head}\n{body}".strip()[: wiz.FINDINGS_MAX]


async def _header(uow: UnitOfWork, referral: Referral) -> tuple[int, str]:
    case = await wiz.case_of(uow, referral)
    if case is None:
        return 0, "—"
    return case.number, await cases.patient_first_name(uow, case)


def _urgency(tr: Translator, urgency: str | None) -> str:
    return tr.plain(f"ref.urgency.{urgency}") if urgency in core.URGENCIES else "—"


def card(tr: Translator, v: dict[str, Any]) -> Html:
    """The draft (or a slip's content) as a card."""
    return tr(
        "ref.card",
        hospital=v.get("target_hospital") or "—",
        department=v.get("target_department") or "—",
        reason=v.get("reason") or "—",
        urgency=_urgency(tr, v.get("urgency")),
        findings=v.get("findings") or "—",
        valid_until=v.get("valid_until") or "—",
    )


async def show_step(uow: UnitOfWork, tr: Translator, reply: Replier, referral: Referral) -> None:
    """Ask the wizard's current question (or show the review card)."""
    number, name = await _header(uow, referral)
    v = await wiz.values(uow, referral)
    rid = referral.id[:12]
    cancel = _b(tr, "ref.wiz.cancel", RefCB(action="cancel", ref=rid))
    rows: list[list[InlineKeyboardButton]] = []
    if referral.step == REVIEW:
        rows = [
            [_b(tr, "ref.wiz.issue", RefCB(action="issue", ref=rid))],
            [_b(tr, "ref.wiz.change_step", RefCB(action="steps", ref=rid))],
            [cancel],
        ]
        await reply.text(
            tr("ref.wiz.review", number=number, name=name, card=card(tr, v)),
            InlineKeyboardMarkup(inline_keyboard=rows),
            protect=True,
        )
        return
    step = wiz.base_step(referral.step)
    pick = {"ref": rid, "step": wiz.normal_step(referral.step)}
    params: dict[str, Any] = {"number": number, "name": name}
    if step == "target":
        for h in (await directory.hospitals(uow))[:HOSPITAL_BUTTONS]:
            label = f"{h.name} · {h.city}" if h.city else h.name
            rows.append(
                [
                    InlineKeyboardButton(
                        text=label[:64],
                        callback_data=RefCB(action="pick", value=h.id[:16], **pick).pack(),
                    )
                ]
            )
    elif step == "department":
        hospital = await directory.get(uow, referral.hospital_id or "")
        deps = directory.departments_of(hospital) if hospital is not None else []
        buttons = [
            InlineKeyboardButton(
                text=dep[:64], callback_data=RefCB(action="pick", value=str(i), **pick).pack()
            )
            for i, dep in enumerate(deps[:30])
        ]
        rows.extend(buttons[i : i + 2] for i in range(0, len(buttons), 2))
        rows.append([_b(tr, "ref.wiz.any_department", RefCB(action="pick", value="-", **pick))])
        params["hospital"] = v.get("target_hospital") or "—"
    elif step == "urgency":
        rows.extend(
            [_b(tr, f"ref.urgency.{u}", RefCB(action="pick", value=u, **pick))]
            for u in core.URGENCIES
        )
    elif step == "findings":
        params["findings"] = v.get("findings") or "—"
        if (v.get("findings") or "").strip() and not wiz.changing(referral.step):
            rows.append(
                [_b(tr, "ref.wiz.keep_findings", RefCB(action="pick", value="keep", **pick))]
            )
    elif step == "valid":
        rows.append(
            [
                _b(tr, "ref.wiz.days", RefCB(action="pick", value=d, **pick), n=int(d))
                for d in wiz.VALID_DAYS
            ]
        )
        params["max"] = wiz.VALID_MAX_DAYS
    if wiz.changing(referral.step):
        rows.append([_b(tr, "ref.wiz.keep", RefCB(action="keep", ref=rid))])
    rows.append([cancel])
    await reply.text(tr(MSG_ASK[step], **params), InlineKeyboardMarkup(inline_keyboard=rows))


async def _case_for(
    uow: UnitOfWork,
    doctor: Doctor,
    message: Message,
    command: CommandObject,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> Consultation | None:
    """The case named by ``/referral 12``, else the replied-to or chosen case (any state)."""
    return await case_from_command(
        uow, doctor, message, command, state, tr, reply,
        refused="referral.refused", not_yours="ref.not_your_case", which="ref.which_case",
    )  # fmt: skip


async def start_wizard(
    uow: UnitOfWork, doctor: Doctor, case: Consultation, tr: Translator, reply: Replier
) -> None:
    """A new draft for the case's patient (or the open wizard's question again)."""
    try:
        referral = await wiz.begin(uow, doctor, case, await _prefill(uow, case), utcnow())
    except NotAllowed as no:
        if no.reason == "draft_open" and no.referral is not None:
            await reply.text(tr("ref.wiz.already_open"))
            await show_step(uow, tr, reply, no.referral)
            return
        await reply.text(tr("ref.which_case"))
        return
    await show_step(uow, tr, reply, referral)


@routes.message(Command("referral"))
@verified("referral")
async def on_referral(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Starts a referral for the case's patient (or shows the open wizard's question)."""
    open_draft = await wiz.wizard_of(uow, doctor)
    if open_draft is not None:
        await reply.text(tr("ref.wiz.already_open"))
        await show_step(uow, tr, reply, open_draft)
        return
    case = await _case_for(uow, doctor, message, command, state, tr, reply)
    if case is None:
        return
    await state.update_data(case=case.id)
    await start_wizard(uow, doctor, case, tr, reply)


def _status_line(tr: Translator, referral: Referral) -> str:
    return tr.plain(f"ref.status.{referral.status}")


@routes.message(Command("referrals"))
@verified("referrals")
async def on_referrals(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """The doctor's slips for the case's patient, each issued one with Revoke."""
    case = await _case_for(uow, doctor, message, command, state, tr, reply)
    if case is None:
        return
    name = await cases.patient_first_name(uow, case)
    mine = [r for r in await core.for_patient(uow, case.patient_id) if r.doctor_id == doctor.id]
    if not mine:
        await reply.text(tr("ref.doc.none", number=case.number, name=name))
        return
    await uow.audit.record(cases.doctor_ref(doctor), "referral.list", "consultation", case.id, {})
    for referral in mine[:20]:
        content = await core.content_of(uow, referral)
        said = await followup.outcome(uow, referral)
        outcome = ""
        if said.get("answer") in followup.ANSWERS:
            answer = tr.plain(f"ref.answer.{said['answer']}")
            outcome = tr("ref.doc.outcome", answer=answer, text=said.get("text") or "—")
        files = []
        for appt in await uow.appointments.for_referral(referral.id):
            if appt.status in ("cancelled",):
                continue
            n = len(uow.appointments.attachment_ids(appt))
            if n:
                files.append([desk.files_button(tr, appt, n)])
            params = await appointment_view.card(uow, tr, appt, doctor.timezone)
            text = await uow.appointments.outcome(appt)
            outcome += str(
                tr(
                    "appt.doc.in_list",
                    status=tr.plain(f"appt.status.{appt.status}"),
                    outcome=text or "—",
                    **params,
                )
            )
        rows = list(files)
        if referral.status == "issued":
            rows.append([_b(tr, "ref.doc.revoke", RefCB(action="rev", ref=referral.id))])
        await reply.text(
            tr(
                "ref.doc.item",
                number=case.number,
                name=name,
                code=referral.code or "—",
                status=_status_line(tr, referral),
                card=card(tr, content.to_dict()),
                outcome=Html(outcome),
            ),
            InlineKeyboardMarkup(inline_keyboard=rows) if rows else None,
            protect=True,
        )


async def _open(message: Message, uow: UnitOfWork, doctor: Doctor | None) -> bool | dict[str, Any]:
    """Only while this (verified) doctor has a referral wizard open."""
    if not can_work(doctor):
        return False
    referral = await wiz.wizard_of(uow, doctor)
    return {"referral": referral} if referral is not None else False


@routes.message(Command("cancel"), _open)
async def on_cancel(
    message: Message, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """Drops the draft referral."""
    await wiz.cancel(uow, doctor, utcnow())
    await reply.text(tr("ref.wiz.cancelled"))


@routes.message(F.text, ~F.text.startswith("/"), _open)
async def on_answer(
    message: Message,
    referral: Referral,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """A typed answer to the wizard's step; a bad one says why and the step stays."""
    assert message.text is not None
    try:
        await wiz.answer(uow, doctor, referral, message.text, utcnow())
    except BadInput as bad:
        await reply.text(tr(bad.msgid, **bad.params))
    await show_step(uow, tr, reply, referral)


@routes.message(~F.text, _open)
async def on_not_text(
    message: Message, referral: Referral, uow: UnitOfWork, tr: Translator, reply: Replier
) -> None:
    """A photo, sticker or file while the wizard waits for an answer: it says what it needs
    (nothing is sent to the patient)."""
    await reply.text(tr("ref.wiz.text_only"))
    await show_step(uow, tr, reply, referral)


async def _issue(
    uow: UnitOfWork,
    doctor: Doctor,
    referral: Referral,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    now = utcnow()
    draft = await wiz.values(uow, referral)
    hospital = await directory.get(uow, referral.hospital_id or "")
    texts = [str(v) for v in draft.values() if isinstance(v, str)]
    if await patient_side.font_problem(uow, referral, texts, hospital):
        await reply.text(tr("ref.slip.no_font"))
        return
    try:
        issued, content, token = await core.issue(
            uow, doctor, referral.id, now, slips.signer(uow), tz=None
        )
    except core.ReferralError as exc:
        await reply.text(tr("ref.wiz.cannot_issue", why=tr.plain(_why(exc.msgid))))
        await show_step(uow, tr, reply, referral)
        return
    sent = await slips.send_slip(uow, issued, settings, content=content, token=token)
    due = await followup.schedule(uow, issued, now)
    number, name = await _header(uow, issued)
    await reply.text(
        tr(
            "ref.wiz.issued",
            number=number,
            name=name,
            code=issued.code or "—",
            valid_until=content.valid_until.isoformat(),
        )
    )
    if sent == "no_font":
        await reply.text(tr("ref.slip.no_font_after"))
    elif sent == "no_patient":
        await reply.text(tr("ref.wiz.no_patient"))
    if due is not None:
        await reply.text(tr("ref.wiz.followup_planned", days=followup.DELAY_DAYS[issued.urgency]))
    await desk.offer_times(uow, tr, reply, issued, doctor)


_WHY = {
    "referral.error.no_target": "target",
    "referral.error.no_reason": "reason",
    "referral.error.urgency": "urgency",
    "referral.error.valid_past": "valid",
    "referral.error.valid_far": "valid",
}


def _why(msgid: str) -> str:
    step = _WHY.get(msgid)
    return f"ref.step.{step}" if step else "ref.wiz.why_other"


# -- buttons: one handler per action. A verified doctor only (others are refused as
# ``referral_button``); a bad value is answered as a UserError; a button of another step,
# draft or doctor (NotAllowed) by :func:`on_refused_button`. -----------------------------------


async def _no_buttons(query: CallbackQuery, reply: Replier) -> None:
    """The pressed message's buttons go (the step they belonged to is over)."""
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)


@routes.callback_query(RefCB.filter(F.action == "new"))
@verified("referral_button")
async def on_new(
    query: CallbackQuery,
    callback_data: RefCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """ "Issue a referral" under a case (after /terminate, a cn first visit): the wizard."""
    case = await uow.consultations.get(callback_data.ref)
    if case is None or case.doctor_id != doctor.id:
        await uow.audit.record(
            cases.doctor_ref(doctor), "referral.refused", "consultation",
            callback_data.ref[:32], {},
        )  # fmt: skip
        raise NotAllowed("stale")
    await reply.answer_callback(query.id)
    await start_wizard(uow, doctor, case, tr, reply)


@routes.callback_query(RefCB.filter(F.action == "pick"))
@verified("referral_button")
async def on_pick(
    query: CallbackQuery,
    callback_data: RefCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """A choice of the current step (hospital, department, urgency, findings, validity)."""
    cb = callback_data
    referral = await wiz.choose(uow, doctor, cb.ref, cb.step, cb.value, utcnow())
    await reply.answer_callback(query.id)
    await show_step(uow, tr, reply, referral)


@routes.callback_query(RefCB.filter(F.action == "keep"))
@verified("referral_button")
async def on_keep(
    query: CallbackQuery,
    callback_data: RefCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Keep the step's value (changing a step) and go back to the review."""
    referral = await wiz.keep(uow, doctor, callback_data.ref, utcnow())
    await reply.answer_callback(query.id)
    await show_step(uow, tr, reply, referral)


@routes.callback_query(RefCB.filter(F.action == "steps"))
@verified("referral_button")
async def on_steps(
    query: CallbackQuery,
    callback_data: RefCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """ "Change a step": the steps to go back to, and Back to the review."""
    ref = callback_data.ref
    await wiz.ready(uow, doctor, ref, utcnow())
    rows = [[_b(tr, f"ref.step.{s}", RefCB(action="goto", ref=ref, step=s))] for s in STEPS]
    rows.append([_b(tr, "ref.wiz.back", RefCB(action="goto", ref=ref, step=REVIEW))])
    await reply.answer_callback(query.id)
    await reply.text(tr("ref.wiz.which_step"), InlineKeyboardMarkup(inline_keyboard=rows))


@routes.callback_query(RefCB.filter(F.action == "goto"))
@verified("referral_button")
async def on_goto(
    query: CallbackQuery,
    callback_data: RefCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Back to one step (or to the review)."""
    cb = callback_data
    referral = await wiz.goto(uow, doctor, cb.ref, cb.step, utcnow())
    await reply.answer_callback(query.id)
    await show_step(uow, tr, reply, referral)


@routes.callback_query(RefCB.filter(F.action == "cancel"))
@verified("referral_button")
async def on_cancel_button(
    query: CallbackQuery,
    callback_data: RefCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """The wizard's Cancel: the draft is dropped."""
    open_draft = await wiz.wizard_of(uow, doctor)
    if open_draft is None or not open_draft.id.startswith(callback_data.ref):
        raise NotAllowed("stale")
    await wiz.cancel(uow, doctor, utcnow())
    await reply.answer_callback(query.id)
    await _no_buttons(query, reply)
    await reply.text(tr("ref.wiz.cancelled"))


@routes.callback_query(RefCB.filter(F.action == "issue"))
@verified("referral_button")
async def on_issue(
    query: CallbackQuery,
    callback_data: RefCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Issue: the slip is signed and sent to the patient."""
    referral = await wiz.ready(uow, doctor, callback_data.ref, utcnow())
    await reply.answer_callback(query.id)
    await _no_buttons(query, reply)
    await _issue(uow, doctor, referral, tr, reply, settings)


@routes.callback_query(RefCB.filter(F.action == "rev"))
@verified("referral_button")
async def on_revoke(
    query: CallbackQuery,
    callback_data: RefCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Revoke an issued slip: asks to confirm."""
    found = await uow.referrals.get(callback_data.ref)
    if found is None or found.doctor_id != doctor.id or found.status != "issued":
        raise NotAllowed("stale")
    await reply.answer_callback(query.id)
    yes = _b(tr, "ref.doc.revoke_yes", RefCB(action="revok", ref=found.id))
    await reply.text(
        tr("ref.doc.revoke_ask", code=found.code or "—"),
        InlineKeyboardMarkup(inline_keyboard=[[yes]]),
    )


@routes.callback_query(RefCB.filter(F.action == "revok"))
@verified("referral_button")
async def on_revoke_confirmed(
    query: CallbackQuery,
    callback_data: RefCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Yes, revoke: the slip stops being valid, its follow-up is dropped, the patient told."""
    revoked = await core.revoke(uow, doctor, callback_data.ref, utcnow())
    if revoked is None:
        raise NotAllowed("stale")
    await uow.events.cancel_for(followup.KIND, revoked.id)
    await reply.answer_callback(query.id)
    await _no_buttons(query, reply)
    await reply.text(tr("ref.doc.revoked", code=revoked.code or "—"))
    await patient_side.tell_revoked(uow, revoked)
    released = await appointments.release_for_referral(uow, revoked.id, f"doctor:{doctor.id}")
    if released is not None:  # the hospital's desk hears the place is free again
        await desk_side.tell_desks(uow, released, "appt.desk.cancelled")


async def _stale_button(
    query: CallbackQuery, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """A button of another step, draft or doctor, or of no action: audited, then stale."""
    cb = RefCB.unpack(query.data or "")
    await uow.audit.record(
        cases.doctor_ref(doctor), "referral.stale_button", "referral", cb.ref[:32],
        {"action": cb.action[:8]},
    )  # fmt: skip
    await reply.answer_callback(query.id, tr.plain("error.stale_button"))


@routes.callback_query(RefCB.filter())
@verified("referral_button")
async def on_unknown_button(
    query: CallbackQuery, uow: UnitOfWork, doctor: Doctor, tr: Translator, reply: Replier
) -> None:
    """A button of an action this bot does not have (forged, or from an older version)."""
    await _stale_button(query, uow, doctor, tr, reply)


@routes.errors(ExceptionTypeFilter(NotAllowed), pressed(RefCB))
async def on_refused_button(event: ErrorEvent, **data: Any) -> bool:
    """A referral button that does not fit: audited, then answered as stale."""
    query = event.update.callback_query
    assert query is not None
    await _stale_button(query, data["uow"], data["doctor"], data["tr"], data["reply"])
    return True


# -- the hospital directory (admins) ------------------------------------------------------------


def _hospital_line(tr: Translator, h: Hospital) -> Html:
    v = directory.view(h)
    return tr(
        "ref.dir.item",
        name=v.name,
        city=v.city or "—",
        language=tr.plain(f"ref.lang.{v.locale}") if v.locale in LOCALES else "—",
        departments=", ".join(v.departments) or "—",
    )


@routes.message(Command("hospitals"))
async def on_hospitals(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor | None,
    is_admin: bool,
    tr: Translator,
    reply: Replier,
) -> None:
    """Admins: the directory, each hospital with Disable, and "Add a hospital"."""
    assert message.from_user is not None
    if not is_admin:
        actor = cases.doctor_ref(doctor) if doctor else f"tg:{message.from_user.id}"
        await uow.audit.record(actor, "hospital.refused", "command", "hospitals", {})
        await reply.text(tr("ref.dir.not_admin"))
        return
    await state.update_data({ADDING: None})
    found = await directory.hospitals(uow)
    add = [[_b(tr, "ref.dir.add", HospCB(action="add"))]]
    if not found:
        await reply.text(tr("ref.dir.empty_list"), InlineKeyboardMarkup(inline_keyboard=add))
        return
    for h in found[:40]:
        await reply.text(
            _hospital_line(tr, h),
            InlineKeyboardMarkup(
                inline_keyboard=[[_b(tr, "ref.dir.disable", HospCB(action="dis", value=h.id))]]
            ),
        )
    await reply.text(tr("ref.dir.count", n=len(found)), InlineKeyboardMarkup(inline_keyboard=add))


async def _adding(message: Message, state: FSMContext, is_admin: bool) -> bool | dict[str, Any]:
    """Only while an admin is adding a hospital."""
    data = (await state.get_data()).get(ADDING)
    return {"adding": data} if is_admin and isinstance(data, dict) else False


async def _ask_add(tr: Translator, reply: Replier, step: str) -> None:
    markup = None
    if step == "locale":
        markup = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    _b(tr, f"ref.lang.{code}", HospCB(action="lang", value=code))
                    for code in LOCALES
                ],
                [_b(tr, "ref.dir.no_language", HospCB(action="lang", value="-"))],
            ]
        )
    await reply.text(tr(f"ref.dir.ask.{step}"), markup)


@routes.message(Command("cancel"), _adding)
async def on_add_cancel(
    message: Message, state: FSMContext, tr: Translator, reply: Replier
) -> None:
    """Stops adding a hospital."""
    await state.update_data({ADDING: None})
    await reply.text(tr("ref.dir.add_cancelled"))


async def _add_step(
    uow: UnitOfWork,
    state: FSMContext,
    adding: dict[str, Any],
    value: str,
    actor: str,
    tr: Translator,
    reply: Replier,
) -> None:
    step = str(adding.get("step") or "name")
    try:
        if step == "name":
            adding["name"] = directory.clean_name(value)
        elif step == "city":
            adding["city"] = directory.clean_city(value)
        elif step == "locale":
            adding["locale"] = directory.parse_locale(value)
        elif step == "departments":
            adding["departments"] = directory.parse_departments(value)
    except directory.BadInput as bad:
        await reply.text(tr(bad.msgid, **bad.params))
        await _ask_add(tr, reply, step)
        return
    index = ADD_STEPS.index(step) + 1 if step in ADD_STEPS else len(ADD_STEPS)
    if index < len(ADD_STEPS):
        adding["step"] = ADD_STEPS[index]
        await state.update_data({ADDING: adding})
        await _ask_add(tr, reply, ADD_STEPS[index])
        return
    hospital = await directory.add(
        uow, actor, adding["name"], city=adding.get("city"), locale=adding.get("locale"),
        departments=adding.get("departments") or [],
    )  # fmt: skip
    await state.update_data({ADDING: None})
    await reply.text(tr("ref.dir.added", item=_hospital_line(tr, hospital)))


@routes.message(F.text, ~F.text.startswith("/"), _adding)
async def on_add_text(
    message: Message,
    adding: dict[str, Any],
    uow: UnitOfWork,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> None:
    """An admin's typed answer while adding a hospital; a bad one says why and is asked
    again."""
    assert message.text is not None and message.from_user is not None
    actor = f"admin:{message.from_user.id}"
    await _add_step(uow, state, adding, message.text, actor, tr, reply)


@routes.callback_query(HospCB.filter())
async def on_hospital_button(
    query: CallbackQuery,
    callback_data: HospCB,
    uow: UnitOfWork,
    state: FSMContext,
    doctor: Doctor | None,
    is_admin: bool,
    tr: Translator,
    reply: Replier,
) -> None:
    """Add, disable (confirm) and the language buttons of /hospitals; admins only."""
    cb = callback_data
    actor = f"admin:{query.from_user.id}"
    if not is_admin:
        who = cases.doctor_ref(doctor) if doctor else f"tg:{query.from_user.id}"
        await uow.audit.record(who, "hospital.refused", "button", cb.action[:8], {})
        await reply.answer_callback(query.id, tr.plain("ref.dir.not_admin"), alert=True)
        return
    if cb.action == "add":
        await reply.answer_callback(query.id)
        await state.update_data({ADDING: {"step": "name"}})
        await _ask_add(tr, reply, "name")
        return
    if cb.action == "lang":
        adding = (await state.get_data()).get(ADDING)
        if not isinstance(adding, dict) or adding.get("step") != "locale":
            await reply.answer_callback(query.id, tr.plain("error.stale_button"))
            return
        await reply.answer_callback(query.id)
        await _add_step(uow, state, adding, cb.value, actor, tr, reply)
        return
    hospital = await directory.get(uow, cb.value)
    if hospital is None or not hospital.active or cb.action not in ("dis", "disok"):
        await reply.answer_callback(query.id, tr.plain("error.stale_button"))
        return
    await reply.answer_callback(query.id)
    if cb.action == "dis":
        await reply.text(
            tr("ref.dir.disable_ask", name=hospital.name),
            InlineKeyboardMarkup(
                inline_keyboard=[
                    [_b(tr, "ref.dir.disable_yes", HospCB(action="disok", value=hospital.id))]
                ]
            ),
        )
        return
    await directory.set_active(uow, actor, hospital, False)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    await reply.text(tr("ref.dir.disabled", name=hospital.name))
