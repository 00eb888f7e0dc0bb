"""Hospital appointments in the doctor bot.

Doctors: after issuing a referral to a hospital that takes bookings, the free times come as
buttons ("book a time for the patient"); the patient gets the same offer.

A hospital's desk (role ``desk``, made by an admin: ``/desks`` here gives a one-time
invitation link, or ``python bot.py hospitals desk``): ``/desk [YYYY-MM-DD]`` lists the day's
appointments (time, the patient's name and year of birth to match them, the service, the
slip's code, the status) with Arrived / No-show / Move to another time / Ask the patient to
move for a booked one, "Record the outcome" and "Attach a letter or results" for an arrived
one (and attach for a fulfilled one). The outcome is typed next; files (a PDF or a photo) are
sent next until /done. Both go back to the referring doctor and the patient, who can book a
follow-up online consultation from the outcome message.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiogram import Bot, F
from aiogram.filters import Command, CommandObject, MagicData
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.settings import Settings
from flows import appointments as apf
from flows import directory, relay
from flows.doctors import admin_ref, refused_attempt
from flows.domain import Doctor, Referral, utcnow
from flows.errors import UserError
from flows.outbox import Replier
from handlers.common import appointments as view
from handlers.common.cases import file_of
from handlers.common.routes import RouteTable
from handlers.doctor.guard import verified
from handlers.patient import appointments as patient_side
from locales import Translator
from storage.uow import UnitOfWork

routes = RouteTable("doctor.desk")
OUTCOME = "appt_outcome"  # FSM data key: the appointment whose outcome the desk types
ATTACH = "appt_attach"  # FSM data key: the appointment the desk is sending files for
ADMIN = MagicData(F.is_admin)


class DApCB(CallbackData, prefix="dap"):
    """A doctor's time for a referral (``ref``: the referral id's first 16, ``value``: the
    slot id; callback data is at most 64 bytes)."""

    ref: str
    value: str


class DeskCB(CallbackData, prefix="dsk"):
    """A desk's button on an appointment (``v``: the version the desk saw)."""

    action: str  # arrive | noshow | move | resched | to | outcome | attach
    appt: str
    v: int = 0
    s: str = ""  # the new slot's id (to)


class HFileCB(CallbackData, prefix="hfl"):
    """The referring doctor's "hospital files" button (``appt``: the appointment id)."""

    appt: str


class AdminDeskCB(CallbackData, prefix="adk"):
    """An admin's /desks button: ``invite`` (a hospital id) or ``remove`` (a desk's id)."""

    action: str
    id: str


async def offer_times(
    uow: UnitOfWork, tr: Translator, reply: Replier, referral: Referral, doctor: Doctor
) -> None:
    """After issuing: the hospital's free times for the doctor, and the offer to the patient."""
    found = await apf.offers(uow, referral, utcnow())
    if not found:
        return
    rows = view.offer_buttons(
        tr, found, doctor.timezone, lambda sid: DApCB(ref=referral.id[:16], value=sid)
    )
    await reply.text(tr("appt.doc.choose"), InlineKeyboardMarkup(inline_keyboard=rows))
    patient = await uow.patients.get(referral.patient_id)
    if patient is not None and patient.tg_user_id is not None:
        ptr = Translator(patient.locale)
        await Replier(uow, "patient", patient.tg_user_id).text(
            ptr("appt.pat.offer"),
            InlineKeyboardMarkup(inline_keyboard=[[patient_side.book_button(ptr, referral.id)]]),
        )


@routes.callback_query(DApCB.filter())
@verified("appt_button")
async def on_doctor_pick(
    query: CallbackQuery,
    callback_data: DApCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The doctor books a time for their referral; the patient gets the booking."""
    ref = callback_data.ref
    referral = await uow.referrals.by_prefix(ref) if len(ref) >= 12 else None
    if referral is None or referral.doctor_id != doctor.id:
        await uow.audit.record(
            f"doctor:{doctor.id}", "appt.refused", "referral", callback_data.ref[:32],
            {"reason": "not_yours"},
        )  # fmt: skip
        raise UserError("appt.error.not_found")
    patient = await uow.patients.get(referral.patient_id)
    await reply.answer_callback(query.id)
    appt = await apf.book(
        uow, referral, callback_data.value, utcnow(), by="doctor",
        actor=f"doctor:{doctor.id}", tz=patient.timezone if patient else None,
    )  # fmt: skip
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    params = await view.card(uow, tr, appt, doctor.timezone)
    await reply.text(tr("appt.doc.booked_by_you", **params))
    if patient is not None and patient.tg_user_id is not None:
        await patient_side.confirm(uow, patient, appt)
        await patient_side.slip_again(uow, appt, settings)


# -- the desk ----------------------------------------------------------------------------------


def _day(arg: str | None, tz: str) -> date:
    if arg:
        try:
            return date.fromisoformat(arg.strip())
        except ValueError:
            raise UserError("appt.desk.bad_date") from None
    return utcnow().astimezone(view._zone(tz)).date()


async def _line(uow: UnitOfWork, tr: Translator, appt: Any, slot: Any, tz: str) -> str:
    patient = await uow.patients.get(appt.patient_id)
    profile = await uow.patients.profile(patient) if patient is not None else {}
    params = await view.card(uow, tr, appt, tz)
    return str(
        tr(
            "appt.desk.item",
            when=view.when(tr, slot.starts_at, slot.all_day, tz),
            name=profile.get("name") or "—",
            born=profile.get("birth_year") or "—",
            service=params["service"],
            code=params["code"],
            status=tr.plain(f"appt.status.{appt.status}"),
        )
    )


def _buttons(tr: Translator, appt: Any) -> InlineKeyboardMarkup | None:
    def b(msgid: str, action: str) -> InlineKeyboardButton:
        cb = DeskCB(action=action, appt=appt.id[:12], v=appt.version)
        return InlineKeyboardButton(text=tr.plain(msgid)[:64], callback_data=cb.pack())

    if appt.status == apf.State.BOOKED:
        rows = [
            [b("appt.desk.arrived", "arrive"), b("appt.desk.noshow", "noshow")],
            [b("appt.desk.resched", "resched")],
            [b("appt.desk.move", "move")],
        ]
    elif appt.status == apf.State.ARRIVED:
        rows = [[b("appt.desk.outcome", "outcome")], [b("appt.desk.attach", "attach")]]
    elif appt.status == apf.State.FULFILLED:
        rows = [[b("appt.desk.attach", "attach")]]
    else:
        return None
    return InlineKeyboardMarkup(inline_keyboard=rows)


@routes.message(Command("desk"))
@verified("desk", role="desk")
async def on_desk(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The day's appointments of the desk's hospital."""
    day = _day(command.args, settings.timezone)
    rows = await apf.day_list(uow, doctor, day, settings.timezone)
    hospital = await uow.referrals.hospital(doctor.hospital_id or "")
    name = hospital.name if hospital else "—"
    if not rows:
        await reply.text(tr("appt.desk.none", day=day.isoformat(), hospital=name))
        return
    await reply.text(tr("appt.desk.head", day=day.isoformat(), hospital=name, n=len(rows)))
    for appt, slot in rows:
        await reply.text(
            await _line(uow, tr, appt, slot, settings.timezone), _buttons(tr, appt), protect=True
        )


async def _full_id(uow: UnitOfWork, ref: str) -> str:
    """The appointment id a button's short id names (the short id itself when none: the flow
    then refuses and audits it)."""
    found = await uow.appointments.by_prefix(ref)
    return found.id if found is not None else ref


async def _appt(uow: UnitOfWork, doctor: Doctor, ref: str) -> Any:
    """The appointment a desk's button names (by its id's start), when it is at the desk's
    hospital (refused and audited by the flow otherwise)."""
    return await apf.of_this_desk(uow, doctor, await _full_id(uow, ref))


@routes.callback_query(DeskCB.filter(F.action.in_({"arrive", "noshow"})))
@verified("desk_button", role="desk")
async def on_mark(
    query: CallbackQuery,
    callback_data: DeskCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Arrived or no-show (from the version the desk saw: a second desk is told it's done)."""
    appt = await _appt(uow, doctor, callback_data.appt)
    appt = await apf.mark(uow, doctor, appt.id, callback_data.action, callback_data.v, utcnow())
    await reply.answer_callback(query.id)
    slot = await uow.appointments.slot(appt.slot_id)
    if query.message is not None and slot is not None:
        await reply.edit_text(
            query.message.message_id,
            await _line(uow, tr, appt, slot, settings.timezone),
            _buttons(tr, appt),
        )
    if appt.status == apf.State.NOSHOW:
        await patient_side.tell_patient(uow, appt, "appt.pat.noshow")
        await patient_side.tell_doctor(uow, appt, "appt.doc.noshow")


@routes.callback_query(DeskCB.filter(F.action == "move"))
@verified("desk_button", role="desk")
async def on_move(
    query: CallbackQuery,
    callback_data: DeskCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """Ask the patient to move: the booking is cancelled and the free times offered again."""
    ref = await _full_id(uow, callback_data.appt)
    appt = await apf.ask_to_move(uow, doctor, ref, callback_data.v)
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    await reply.text(tr("appt.desk.moved"))
    await patient_side.tell_patient(uow, appt, "appt.pat.move", offer=True)


@routes.callback_query(DeskCB.filter(F.action == "outcome"))
@verified("desk_button", role="desk")
async def on_outcome(
    query: CallbackQuery,
    callback_data: DeskCB,
    uow: UnitOfWork,
    doctor: Doctor,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> None:
    """Record the outcome: typed next."""
    appt = await _appt(uow, doctor, callback_data.appt)
    if appt.status != apf.State.ARRIVED:
        raise UserError("appt.desk.already", status=appt.status)
    await reply.answer_callback(query.id)
    await state.update_data({OUTCOME: appt.id, ATTACH: None})
    await reply.text(tr("appt.desk.ask_outcome"))


async def _typing(
    message: Message, state: FSMContext, doctor: Doctor | None
) -> bool | dict[str, Any]:
    """Only while a desk is typing a visit's outcome."""
    if not apf.is_desk(doctor):
        return False
    appt_id = (await state.get_data()).get(OUTCOME)
    return {"appt_id": appt_id} if appt_id else False


@routes.message(Command("cancel"), _typing)
async def on_outcome_cancel(
    message: Message, state: FSMContext, tr: Translator, reply: Replier
) -> None:
    """No outcome after all."""
    await state.update_data({OUTCOME: None})
    await reply.text(tr("appt.desk.outcome_cancelled"))


@routes.message(F.text, ~F.text.startswith("/"), _typing)
async def on_outcome_text(
    message: Message,
    appt_id: str,
    uow: UnitOfWork,
    doctor: Doctor,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The outcome: kept (sealed), the referring doctor and the patient told."""
    assert message.text is not None
    appt = await apf.record_outcome(uow, doctor, appt_id, message.text, utcnow())
    await state.update_data({OUTCOME: None})
    text = await uow.appointments.outcome(appt) or ""
    await reply.text(tr("appt.desk.outcome_saved"), _buttons(tr, appt))
    await patient_side.tell_doctor(uow, appt, "appt.doc.outcome", outcome=text)
    await patient_side.tell_patient(uow, appt, "appt.pat.outcome", followup=settings.timezone)


# -- moving a booking to another time ------------------------------------------------------------


@routes.callback_query(DeskCB.filter(F.action == "resched"))
@verified("desk_button", role="desk")
async def on_resched(
    query: CallbackQuery,
    callback_data: DeskCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The free times of the same service to move the booking to."""
    ref = await _full_id(uow, callback_data.appt)
    appt, offers = await apf.move_offers(uow, doctor, ref, utcnow())
    await reply.answer_callback(query.id)
    params = await view.card(uow, tr, appt, settings.timezone)
    if not offers:
        await reply.text(tr("appt.desk.no_times", code=params["code"]))
        return
    rows = view.offer_buttons(
        tr,
        offers,
        settings.timezone,
        lambda sid: DeskCB(action="to", appt=appt.id[:12], v=appt.version, s=sid),
    )
    await reply.text(
        tr("appt.desk.choose_time", code=params["code"], when=params["when"]),
        InlineKeyboardMarkup(inline_keyboard=rows),
    )


@routes.callback_query(DeskCB.filter(F.action == "to"))
@verified("desk_button", role="desk")
async def on_resched_to(
    query: CallbackQuery,
    callback_data: DeskCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Moved: the patient gets the new time (with "I can't come"), the doctor is told."""
    appt = await _appt(uow, doctor, callback_data.appt)
    patient = await uow.patients.get(appt.patient_id)
    appt = await apf.reschedule(
        uow, doctor, appt.id, callback_data.v, callback_data.s, utcnow(),
        tz=patient.timezone if patient else None,
    )  # fmt: skip
    await reply.answer_callback(query.id)
    if query.message is not None:
        await reply.edit_markup(query.message.message_id, None)
    params = await view.card(uow, tr, appt, settings.timezone)
    await reply.text(tr("appt.desk.rescheduled", code=params["code"], when=params["when"]))
    if patient is not None and patient.tg_user_id is not None:
        await patient_side.confirm(uow, patient, appt, msgid="appt.pat.rescheduled")
        await patient_side.slip_again(uow, appt, settings)
    await patient_side.tell_doctor(uow, appt, "appt.doc.rescheduled")


# -- the hospital's files (a discharge letter, results) -------------------------------------------


@routes.callback_query(DeskCB.filter(F.action == "attach"))
@verified("desk_button", role="desk")
async def on_attach(
    query: CallbackQuery,
    callback_data: DeskCB,
    uow: UnitOfWork,
    doctor: Doctor,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> None:
    """Files are sent next (until /done)."""
    appt = await _appt(uow, doctor, callback_data.appt)
    if appt.status not in (apf.State.ARRIVED, apf.State.FULFILLED):
        raise UserError("appt.desk.attach_state", status=tr.plain(f"appt.status.{appt.status}"))
    await reply.answer_callback(query.id)
    await state.update_data({ATTACH: appt.id, OUTCOME: None})
    await reply.text(tr("appt.desk.ask_files"))


async def _attaching(
    message: Message, state: FSMContext, doctor: Doctor | None
) -> bool | dict[str, Any]:
    """Only while a desk is sending a visit's files."""
    if not apf.is_desk(doctor):
        return False
    appt_id = (await state.get_data()).get(ATTACH)
    return {"appt_id": appt_id} if appt_id else False


@routes.message(Command("done", "cancel"), _attaching)
async def on_attach_done(
    message: Message,
    appt_id: str,
    uow: UnitOfWork,
    state: FSMContext,
    tr: Translator,
    reply: Replier,
) -> None:
    """No more files."""
    await state.update_data({ATTACH: None})
    appt = await uow.appointments.get(appt_id)
    n = len(uow.appointments.attachment_ids(appt)) if appt is not None else 0
    await reply.text(tr("appt.desk.attach_done", n=n))


@routes.message(
    F.photo | F.document | F.voice | F.audio | F.video | F.video_note | F.sticker, _attaching
)
async def on_attach_file(
    message: Message,
    appt_id: str,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """A PDF or a photo: kept (sealed) in the referral's case and passed on to the referring
    doctor and the patient; anything else is refused with what to send."""
    found = file_of(message)
    if found is None or found[0] not in apf.FILE_KINDS:
        raise UserError("appt.desk.attach_kind")
    kind, file_id, size, file_name = found
    if kind == "document" and not _pdf_or_image(message):
        raise UserError("appt.desk.attach_kind")
    problem = relay.check_size(kind, size)
    if problem is not None:
        raise UserError(problem)
    appt, case, row = await apf.attach(
        uow, doctor, appt_id, kind, file_name, message.caption, utcnow()
    )
    referral = await uow.referrals.get(appt.referral_id)
    referrer = await uow.doctors.get(referral.doctor_id) if referral is not None else None
    if referrer is not None and referrer.tg_user_id is not None:
        dtr = Translator(referrer.locale)
        params = await view.card(uow, dtr, appt, referrer.timezone)
        caption = dtr("appt.doc.file_caption", number=case.number, **params)
        await Replier(uow, "doctor", referrer.tg_user_id).relay_file(
            "doctor", file_id, kind, caption=str(caption), protect=True, record=row.id,
            filename=file_name,
        )  # fmt: skip
    patient = await uow.patients.get(appt.patient_id)
    if patient is not None and patient.tg_user_id is not None:
        ptr = Translator(patient.locale)
        params = await view.card(uow, ptr, appt, patient.timezone)
        await Replier(uow, "patient", patient.tg_user_id).relay_file(
            "doctor", file_id, kind, caption=str(ptr("appt.pat.file_caption", **params)),
            protect=True, filename=file_name,
        )  # fmt: skip
    await reply.text(tr("appt.desk.attached", n=len(uow.appointments.attachment_ids(appt))))


def _pdf_or_image(message: Message) -> bool:
    doc = message.document
    if doc is None:
        return False
    mime = (doc.mime_type or "").lower()
    name = (doc.file_name or "").lower()
    return mime == "application/pdf" or mime.startswith("image/") or name.endswith(".pdf")


@routes.message(F.text, ~F.text.startswith("/"), _attaching)
async def on_attach_text(message: Message, tr: Translator, reply: Replier) -> None:
    """Text while files are expected: what to send."""
    await reply.text(tr("appt.desk.attach_want_file"))


@routes.callback_query(HFileCB.filter())
@verified("appt_files")
async def on_files(
    query: CallbackQuery,
    callback_data: HFileCB,
    uow: UnitOfWork,
    doctor: Doctor,
    tr: Translator,
    reply: Replier,
) -> None:
    """The referring doctor sees the hospital's files again (their sealed copies)."""
    appt = await uow.appointments.by_prefix(callback_data.appt)
    referral = await uow.referrals.get(appt.referral_id) if appt is not None else None
    if appt is None or referral is None or referral.doctor_id != doctor.id:
        await uow.audit.record(
            f"doctor:{doctor.id}", "appt.refused", "appointment", callback_data.appt[:32],
            {"reason": "not_yours"},
        )  # fmt: skip
        raise UserError("appt.error.not_found")
    await reply.answer_callback(query.id)
    files = await apf.attachments(uow, appt)
    await uow.audit.record(f"doctor:{doctor.id}", "appt.files", "appointment", appt.id, {})
    for n, (row, data) in enumerate(files, 1):
        if data is None:
            await reply.text(tr("appt.doc.file_pending", n=n))
            continue
        caption = tr.plain("appt.doc.file_n", n=n, total=len(files))
        if row.kind == "photo":
            await reply.photo(f"hospital-{n}.jpg", data, caption)
        else:
            await reply.document(row.file_name or f"hospital-{n}.pdf", data, caption)


def files_button(tr: Translator, appt: Any, n: int) -> InlineKeyboardButton:
    """ "Hospital files (n)" under a referral in the doctor's /referrals."""
    return InlineKeyboardButton(
        text=tr.plain("appt.doc.files_button", n=n)[:64],
        callback_data=HFileCB(appt=appt.id[:16]).pack(),
    )


# -- admins: the hospitals' desks ----------------------------------------------------------------


@routes.message(~ADMIN, Command("desks"))
async def on_desks_not_admin(
    message: Message, uow: UnitOfWork, doctor: Doctor | None, tr: Translator, reply: Replier
) -> None:
    """/desks from someone who is not an admin: refused and audited."""
    assert message.from_user is not None
    actor = f"doctor:{doctor.id}" if doctor else f"tg:{message.from_user.id}"
    await refused_attempt(uow, actor, "-", "desks")
    await reply.text(tr("doctor.admin.not_admin"))


@routes.message(ADMIN, Command("desks"))
async def on_desks(message: Message, uow: UnitOfWork, tr: Translator, reply: Replier) -> None:
    """Each hospital's desks, with "Invite a desk" and "Remove"."""
    hospitals = await directory.hospitals(uow)
    if not hospitals:
        await reply.text(tr("appt.admin.no_hospitals"))
        return
    for hospital in hospitals[:30]:
        rows = [
            [
                InlineKeyboardButton(
                    text=tr.plain("appt.admin.invite_button")[:64],
                    callback_data=AdminDeskCB(action="invite", id=hospital.id).pack(),
                )
            ]
        ]
        names = []
        for person in await apf.desks(uow, hospital.id):
            name = await uow.doctors.get_field(person, "name") or "—"
            names.append(name)
            rows.append(
                [
                    InlineKeyboardButton(
                        text=tr.plain("appt.admin.remove_button", name=name)[:64],
                        callback_data=AdminDeskCB(action="remove", id=person.id).pack(),
                    )
                ]
            )
        await reply.text(
            tr(
                "appt.admin.hospital",
                hospital=hospital.name,
                desks=", ".join(names) or tr.plain("appt.admin.no_desks"),
            ),
            InlineKeyboardMarkup(inline_keyboard=rows),
        )


@routes.callback_query(AdminDeskCB.filter())
async def on_desks_button(
    query: CallbackQuery,
    callback_data: AdminDeskCB,
    uow: UnitOfWork,
    doctor: Doctor | None,
    is_admin: bool,
    tr: Translator,
    reply: Replier,
    bot: Bot,
) -> None:
    """Invite: a one-time link to forward. Remove: the desk account ends."""
    if not is_admin:
        actor = f"doctor:{doctor.id}" if doctor else f"tg:{query.from_user.id}"
        await refused_attempt(uow, actor, callback_data.id[:32], f"desk_{callback_data.action}")
        await reply.answer_callback(query.id, tr.plain("doctor.admin.not_admin"), alert=True)
        return
    actor = admin_ref(query.from_user.id)
    if callback_data.action == "invite":
        payload = await apf.invite_desk(uow, actor, callback_data.id, utcnow())
        await reply.answer_callback(query.id)
        hospital = await uow.referrals.hospital(callback_data.id)
        me = await bot.me()
        link = f"https://t.me/{me.username}?start={payload}"
        await reply.text(
            tr(
                "appt.admin.invite_link",
                hospital=hospital.name if hospital else "—",
                hours=apf.INVITE_HOURS,
                link=link,
            )
        )
        return
    if callback_data.action == "remove":
        desk = await apf.remove_desk(uow, actor, callback_data.id)
        await reply.answer_callback(query.id)
        name = await uow.doctors.get_field(desk, "name") or "—"
        hospital = await uow.referrals.hospital(desk.hospital_id or "")
        await reply.text(
            tr("appt.admin.removed", name=name, hospital=hospital.name if hospital else "—")
        )
        if desk.tg_user_id is not None:
            await Replier(uow, "doctor", desk.tg_user_id).text(
                Translator(desk.locale)("appt.desk.removed_you")
            )
        return
    raise UserError("error.stale_button")


async def join(
    message: Message, payload: str, uow: UnitOfWork, tr: Translator, reply: Replier,
    settings: Settings,
) -> None:  # fmt: skip
    """``/start desk_<token>``: whoever opens an admin's invitation becomes the hospital's desk
    (named as Telegram names them); the admins are told."""
    assert message.from_user is not None
    user = message.from_user
    name = " ".join(p for p in (user.first_name, user.last_name) if p) or str(user.id)
    desk = await apf.join_desk(uow, payload, user.id, name, tr.locale, utcnow())
    hospital = await uow.referrals.hospital(desk.hospital_id or "")
    hname = hospital.name if hospital else "—"
    await reply.text(tr("appt.desk.joined", hospital=hname))
    for admin in settings.admin_ids:
        if admin != user.id:
            # Admins read the doctor bot in the clinic's language (they have no record here).
            atr = Translator(settings.default_locale)
            await Replier(uow, "doctor", admin).text(
                atr("appt.admin.desk_joined", name=name, hospital=hname)
            )
