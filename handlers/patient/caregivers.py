"""Family caregivers in the patient bot: the patient's /caregivers (list, invite, revoke), the
invitation link a caregiver opens (``/start cg_<token>``: terms, Accept / Decline), the
caregiver's /stop and home message, and the user picker that binds an invitation to a person.

A caregiver need not be a patient: someone with active caregiver relations and no patient
record who writes anything gets the caregiver home message (whom they care for, what they
receive, how to stop) with a button to start using Careline for themselves.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from aiogram import Bot, F
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    KeyboardButtonRequestUsers,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    TelegramObject,
    User,
)

from bot.settings import Settings
from flows import caregivers as flow
from flows import onboarding
from flows.caregivers import CaregiverError, Offer
from flows.domain import Caregiver, Patient, utcnow
from flows.onboarding import Step, step_of
from flows.outbox import CAREGIVER_OFFER_CB, CAREGIVER_STOP_CB, Replier
from handlers.common.routes import RouteTable
from handlers.patient.refusals import refused, refused_button
from handlers.patient.render import show_step
from locales import LOCALES, Html, Translator
from storage.uow import UnitOfWork

routes = RouteTable("patient.caregivers")

# FSM data key while the patient types the caregiver's name: {"scope": ..., "details": ...}.
NAMING = "cg_invite"
NAMING_TTL_S = 15 * 60
# FSM data flag: the user picker keyboard was shown (so "Not now" is ours to answer).
PICKER = "cg_picker"
YES, NO = "yes", "no"


class CgCB(CallbackData, prefix="cg"):
    """The patient's caregiver buttons: invite, scope, details, skip (the name), revoke."""

    action: str
    scope: str = ""
    value: str = ""


class CgOfferCB(CallbackData, prefix=CAREGIVER_OFFER_CB.prefix):
    """Accept (``a``) or decline (``d``) the invitation with this token."""

    action: str
    token: str


class CgStopCB(CallbackData, prefix=CAREGIVER_STOP_CB.prefix):
    """The caregiver stops caring for the patient of this caregiver row."""

    id: str


class CgOwnCB(CallbackData, prefix="cgu"):
    """A caregiver starts using Careline for themselves (normal onboarding)."""

    go: int = 1


# -- rendering ---------------------------------------------------------------------------------


def scope_words(tr: Translator, scope: str) -> str:
    """A scope in plain words."""
    return tr.plain(f"caregivers.scope.{scope if scope in flow.SCOPES else 'reminders'}")


def _local(when: datetime, zone: str | None) -> str:
    try:
        tz = zoneinfo.ZoneInfo(zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    local = flow.aware(when).astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".strip()


async def render_list(
    uow: UnitOfWork, tr: Translator, patient: Patient, rows: list[Caregiver]
) -> tuple[Html, InlineKeyboardMarkup]:
    """The /caregivers message: each caregiver or invitation with a Revoke button."""
    lines = [tr("caregivers.list.title"), ""]
    buttons: list[list[InlineKeyboardButton]] = []
    if not rows:
        lines.append(tr("caregivers.list.empty"))
    for cg in rows:
        name = await flow.name_of(uow, cg) or tr.plain("caregivers.unnamed")
        status = (
            tr("caregivers.status.active")
            if cg.status == flow.Status.ACTIVE.value
            else tr("caregivers.status.invited", until=_local(cg.expires_at, patient.timezone))
        )
        lines.append(
            tr(
                "caregivers.list.item",
                name=name,
                scope=scope_words(tr, cg.scope),
                details=tr.plain(f"caregivers.details.{YES if cg.details else NO}"),
                status=status,
            )
        )
        buttons.append(
            [
                InlineKeyboardButton(
                    text=tr.plain("caregivers.button.revoke", name=name)[:60],
                    callback_data=CgCB(action="revoke", value=cg.id).pack(),
                )
            ]
        )
    buttons.append(
        [
            InlineKeyboardButton(
                text=tr.plain("caregivers.button.invite"),
                callback_data=CgCB(action="invite").pack(),
            )
        ]
    )
    return Html("\n".join(lines)), InlineKeyboardMarkup(inline_keyboard=buttons)


def scope_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """The three scopes, one per row."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain(f"caregivers.invite.scope.{scope}"),
                    callback_data=CgCB(action="scope", scope=scope).pack(),
                )
            ]
            for scope in flow.SCOPES
        ]
    )


def details_keyboard(tr: Translator, scope: str) -> InlineKeyboardMarkup:
    """May messages name medicines and readings: No (first, the default) / Yes."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain(f"caregivers.invite.details.{value}"),
                    callback_data=CgCB(action="details", scope=scope, value=value).pack(),
                )
                for value in (NO, YES)
            ]
        ]
    )


def skip_keyboard(tr: Translator, scope: str, details: bool) -> InlineKeyboardMarkup:
    """Skip typing the caregiver's name."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain("caregivers.invite.skip"),
                    callback_data=CgCB(
                        action="skip", scope=scope, value=YES if details else NO
                    ).pack(),
                )
            ]
        ]
    )


def picker_keyboard(tr: Translator) -> ReplyKeyboardMarkup:
    """Telegram's user picker (one person, not a bot) and "Not now"."""
    return ReplyKeyboardMarkup(
        keyboard=[
            [
                KeyboardButton(
                    text=tr.plain("caregivers.invite.pick_button"),
                    request_users=KeyboardButtonRequestUsers(
                        request_id=flow.PICKER_REQUEST_ID,
                        user_is_bot=False,
                        max_quantity=1,
                        request_name=True,
                    ),
                )
            ],
            [KeyboardButton(text=tr.plain("caregivers.invite.pick_skip"))],
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def offer_keyboard(tr: Translator, token: str) -> InlineKeyboardMarkup:
    """Accept / Decline an invitation."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tr.plain("caregivers.offer.accept"),
                    callback_data=CgOfferCB(action="a", token=token).pack(),
                ),
                InlineKeyboardButton(
                    text=tr.plain("caregivers.offer.decline"),
                    callback_data=CgOfferCB(action="d", token=token).pack(),
                ),
            ]
        ]
    )


def render_home(
    tr: Translator, caring: list[Offer], *, own_button: bool
) -> tuple[Html, InlineKeyboardMarkup]:
    """The caregiver home message: whom they care for, what they get, how to stop."""
    people = "\n".join(
        tr("caregivers.home.item", patient=o.label, scope=scope_words(tr, o.caregiver.scope))
        for o in caring
    )
    own = tr.plain("caregivers.home.own_button")
    buttons = [
        [
            InlineKeyboardButton(
                text=tr.plain("caregivers.home.stop_button", patient=o.label)[:60],
                callback_data=CgStopCB(id=o.caregiver.id).pack(),
            )
        ]
        for o in caring
    ]
    if own_button:
        buttons.append([InlineKeyboardButton(text=own, callback_data=CgOwnCB().pack())])
    return (
        tr("caregivers.home", people=Html(people), own=own),
        InlineKeyboardMarkup(inline_keyboard=buttons),
    )


async def _to_patient(uow: UnitOfWork, patient: Patient) -> tuple[Translator, Replier]:
    return Translator(patient.locale), Replier(uow, "patient", patient.tg_user_id)


async def _to_caregiver(uow: UnitOfWork, cg: Caregiver) -> tuple[Translator, Replier]:
    return Translator(await flow.locale_of(uow, cg)), Replier(uow, "patient", cg.tg_user_id)


async def _bot_username(bot: Bot | None) -> str | None:
    """The patient bot's username (getMe, cached by aiogram), or None when unknown."""
    if bot is None:
        return None
    try:
        me = await bot.me()
    except Exception:  # noqa: BLE001 - no username: the patient gets the /start text instead
        return None
    return me.username


# -- filters -----------------------------------------------------------------------------------


async def caregiver_only(
    event: TelegramObject, uow: UnitOfWork, patient: Patient | None, event_from_user: User | None
) -> dict[str, Any] | bool:
    """Someone with active caregiver relations and no patient record: {"caring": offers}."""
    if patient is not None or event_from_user is None:
        return False
    caring = await flow.cared_for(uow, event_from_user.id)
    return {"caring": caring} if caring else False


async def any_caregiver(
    event: TelegramObject, uow: UnitOfWork, event_from_user: User | None
) -> dict[str, Any] | bool:
    """Anyone (patient or not) with active caregiver relations: {"caring": offers}."""
    if event_from_user is None:
        return False
    caring = await flow.cared_for(uow, event_from_user.id)
    return {"caring": caring} if caring else False


async def typing_name(event: TelegramObject, state: FSMContext) -> dict[str, Any] | bool:
    """The patient is typing the caregiver's name: {"naming": {"scope", "details"}}."""
    data = (await state.get_data()).get(NAMING)
    if not isinstance(data, dict) or not data.get("scope"):
        return False
    # A naming left unfinished long ago does not swallow later messages (e.g. to a doctor).
    if utcnow().timestamp() - float(data.get("at") or 0) > NAMING_TTL_S:
        return False
    return {"naming": data}


PICK_SKIP_LABELS = frozenset(
    Translator(loc).plain("caregivers.invite.pick_skip") for loc in LOCALES
)


async def picker_shown(event: TelegramObject, state: FSMContext) -> bool:
    """The user picker keyboard is on the patient's screen (after a new invitation)."""
    return bool((await state.get_data()).get(PICKER))


# -- leaving the user picker -------------------------------------------------------------------


@routes.message(picker_shown, ~F.users_shared, ~F.text.in_(PICK_SKIP_LABELS))
async def on_left_picker(
    message: Message, state: FSMContext, tr: Translator, reply: Replier
) -> None:
    """Anything else while the user picker is up (words, a command, a photo): the picker's
    question is over, so one short line takes the reply keyboard away, and the message goes
    on to whichever handler it is for (registered first so no other handler here hides it)."""
    await state.update_data({PICKER: None})
    await reply.text(tr("caregivers.pick.closed"), ReplyKeyboardRemove())
    raise SkipHandler


# -- the invitation link (anyone) ----------------------------------------------------------------


def _why(err: CaregiverError) -> str:
    """A refusal's reason for the audit: the last part of its message id (``other_user``)."""
    return err.msgid.rsplit(".", 1)[-1]


@routes.message(CommandStart(deep_link=True, magic=F.args.startswith(flow.LINK_PREFIX)))
async def on_link(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Someone opened an invitation link: the terms with Accept / Decline, or why not."""
    assert message.from_user is not None
    token = flow.token_from_payload(command.args) or ""
    try:
        offer = await flow.preview(uow, token, message.from_user.id, now=utcnow())
    except CaregiverError as err:
        await refused(uow, message, patient, "/start", _why(err))
        await reply.text(tr(err.msgid, **err.params))
        return
    cg = offer.caregiver
    details = tr(f"caregivers.offer.details.{YES if cg.details else NO}", patient=offer.label)
    await reply.text(
        tr(
            "caregivers.offer",
            patient=offer.label,
            scope=scope_words(tr, cg.scope),
            details=details,
            emergency_number=settings.local_emergency_number,
        ),
        offer_keyboard(tr, token),
    )


@routes.callback_query(CgOfferCB.filter())
async def on_offer_answer(
    query: CallbackQuery,
    callback_data: CgOfferCB,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """Accept or Decline on the terms: the caregiver and the patient are told."""
    await reply.answer_callback(query.id)
    user = query.from_user
    try:
        if callback_data.action == "a":
            offer = await flow.accept(
                uow, callback_data.token, user.id, user.first_name, now=utcnow()
            )
        elif callback_data.action == "d":
            offer = await flow.decline(uow, callback_data.token, user.id, now=utcnow())
        else:
            raise CaregiverError("caregivers.link.malformed")
    except CaregiverError as err:
        await refused_button(uow, query, patient, _why(err))
        await reply.text(tr(err.msgid, **err.params))
        return
    if query.message is not None:  # the terms' buttons are spent
        await reply.edit_markup(query.message.message_id, None)
    cg = offer.caregiver
    ptr, preply = await _to_patient(uow, offer.patient)
    name = await flow.name_of(uow, cg) or ptr.plain("caregivers.unnamed")
    if callback_data.action == "a":
        await reply.text(
            tr("caregivers.accepted", patient=offer.label, scope=scope_words(tr, cg.scope))
        )
        await preply.text(
            ptr("caregivers.patient.accepted", name=name, scope=scope_words(ptr, cg.scope))
        )
    else:
        await reply.text(tr("caregivers.declined", patient=offer.label))
        await preply.text(ptr("caregivers.patient.declined", name=name))


# -- the patient's /caregivers -----------------------------------------------------------------


async def _onboarded(
    patient: Patient | None, tr: Translator, reply: Replier, settings: Settings
) -> Patient | None:
    if patient is None or step_of(patient) is not Step.DONE:
        await reply.text(tr("error.finish_onboarding"))
        await show_step(reply, tr, patient, settings)
        return None
    return patient


async def _show_list(uow: UnitOfWork, tr: Translator, reply: Replier, patient: Patient) -> None:
    rows = await flow.for_patient(uow, patient, now=utcnow())
    text, markup = await render_list(uow, tr, patient, rows)
    await reply.text(text, markup)


@routes.message(Command("caregivers"))
async def on_caregivers(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """Lists the patient's caregivers and open invitations, with Revoke and Invite buttons."""
    await state.update_data({NAMING: None})
    if patient is None and message.from_user is not None:
        caring = await flow.cared_for(uow, message.from_user.id)
        if caring:  # a caregiver who is not a patient: their home message
            text, markup = render_home(tr, caring, own_button=True)
            await reply.text(text, markup)
            return
    if (p := await _onboarded(patient, tr, reply, settings)) is None:
        return
    await _show_list(uow, tr, reply, p)


@routes.callback_query(CgCB.filter())
async def on_patient_button(
    query: CallbackQuery,
    callback_data: CgCB,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
    bot: Bot,
) -> None:
    """Invite → scope → details → name (typed or skipped) → link; or revoke one."""
    await reply.answer_callback(query.id)
    if (p := await _onboarded(patient, tr, reply, settings)) is None:
        await refused_button(uow, query, patient, "not_onboarded")
        return
    action, scope = callback_data.action, callback_data.scope
    now = utcnow()
    try:
        if action == "invite":
            await flow.check_room(uow, p, now=now)
            await reply.text(tr("caregivers.invite.ask_scope"), scope_keyboard(tr))
        elif action == "scope" and scope in flow.SCOPES:
            await reply.text(tr("caregivers.invite.ask_details"), details_keyboard(tr, scope))
        elif action == "details" and scope in flow.SCOPES and callback_data.value in (YES, NO):
            details = callback_data.value == YES
            naming = {"scope": scope, "details": details, "at": now.timestamp()}
            await state.update_data({NAMING: naming})
            await reply.text(tr("caregivers.invite.ask_name"), skip_keyboard(tr, scope, details))
        elif (
            action == "skip"
            and scope in flow.SCOPES
            and callback_data.value in (YES, NO)
            and await typing_name(query, state)  # not twice: a pressed Skip ends the naming
        ):
            await state.update_data({NAMING: None})
            await _create(uow, tr, reply, p, scope, callback_data.value == YES, None, bot, state)
        elif action == "revoke":
            await _revoke(uow, tr, reply, p, callback_data.value)
        else:
            await refused_button(uow, query, p)
            await reply.text(tr("caregivers.error.restart"))
            await reply.text(tr("caregivers.invite.ask_scope"), scope_keyboard(tr))
    except CaregiverError as err:
        await refused_button(uow, query, p, _why(err))
        await reply.text(tr(err.msgid, **err.params))


async def _create(
    uow: UnitOfWork,
    tr: Translator,
    reply: Replier,
    patient: Patient,
    scope: str,
    details: bool,
    name: str | None,
    bot: Bot | None,
    state: FSMContext,
) -> None:
    inv = await flow.invite(uow, patient, scope, details, name, now=utcnow())
    await state.update_data({NAMING: None, PICKER: True})
    username = await _bot_username(bot)
    payload = f"{flow.LINK_PREFIX}{inv.token}"
    link = (
        Html(flow.deep_link(username, inv.token))
        if username
        else tr("caregivers.invite.link_manual", payload=payload)
    )
    await reply.text(
        tr(
            "caregivers.invite.link",
            until=_local(inv.caregiver.expires_at, patient.timezone),
            link=link,
            pick=tr.plain("caregivers.invite.pick_button"),
        ),
        picker_keyboard(tr),
    )


async def _revoke(
    uow: UnitOfWork, tr: Translator, reply: Replier, patient: Patient, caregiver_id: str
) -> None:
    cg, was_active = await flow.revoke(uow, patient, caregiver_id, now=utcnow())
    if not was_active:
        await reply.text(tr("caregivers.invite_cancelled"))
        return
    name = await flow.name_of(uow, cg) or tr.plain("caregivers.unnamed")
    await reply.text(tr("caregivers.revoked", name=name))
    ctr, creply = await _to_caregiver(uow, cg)
    label = await flow.patient_label(uow, patient)
    await creply.text(ctr("caregivers.revoked_notice", patient=label))


@routes.message(typing_name, F.text, ~F.text.startswith("/"))
async def on_name(
    message: Message,
    naming: dict[str, Any],
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
    bot: Bot,
) -> None:
    """The caregiver's name, typed: the invitation is made and its link shown."""
    assert message.text is not None
    if (p := await _onboarded(patient, tr, reply, settings)) is None:
        return
    scope, details = str(naming["scope"]), bool(naming.get("details"))
    try:
        await _create(uow, tr, reply, p, scope, details, message.text, bot, state)
    except CaregiverError as err:
        if err.msgid == "caregivers.invite.name_invalid":
            await reply.text(tr(err.msgid, **err.params), skip_keyboard(tr, scope, details))
            return
        await state.update_data({NAMING: None})
        await reply.text(tr(err.msgid, **err.params))
        return
    await state.update_data({NAMING: None})


@routes.message(F.users_shared)
async def on_user_picked(
    message: Message,
    uow: UnitOfWork,
    state: FSMContext,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """The patient picked their caregiver with Telegram's user picker."""
    shared = message.users_shared
    assert shared is not None
    await state.update_data({PICKER: None})  # answered, whatever comes of it
    if (p := await _onboarded(patient, tr, reply, settings)) is None:
        return
    if shared.request_id != flow.PICKER_REQUEST_ID or not shared.users:
        await reply.text(tr("caregivers.pick.no_invitation"), ReplyKeyboardRemove())
        return
    person = shared.users[0]
    try:
        await flow.bind_user(uow, p, person.user_id, now=utcnow())
    except CaregiverError as err:
        await reply.text(tr(err.msgid, **err.params), ReplyKeyboardRemove())
        return
    name = person.first_name or tr.plain("caregivers.pick.someone")
    await reply.text(tr("caregivers.pick.bound", name=name), ReplyKeyboardRemove())


@routes.message(F.text.in_(PICK_SKIP_LABELS), picker_shown)
async def on_pick_skipped(
    message: Message, state: FSMContext, tr: Translator, reply: Replier
) -> None:
    """ "Not now" under the user picker: anyone with the link may accept."""
    await state.update_data({PICKER: None})
    await reply.text(tr("caregivers.pick.skipped"), ReplyKeyboardRemove())


# -- the caregiver's side ----------------------------------------------------------------------


async def _stop(
    uow: UnitOfWork,
    tr: Translator,
    reply: Replier,
    caregiver_id: str,
    tg_user_id: int,
    event: Message | CallbackQuery,
) -> None:
    try:
        offer = await flow.stop(uow, caregiver_id, tg_user_id, now=utcnow())
    except CaregiverError as err:
        await refused(
            uow, event, None, "/stop" if isinstance(event, Message) else "cgs", _why(err)
        )
        label = await flow.former_label(uow, caregiver_id)
        if label:
            await reply.text(tr("caregivers.no_longer", patient=label))
        else:
            await reply.text(tr("caregivers.no_longer_anyone"))
        return
    await reply.text(tr("caregivers.stopped", patient=offer.label))
    ptr, preply = await _to_patient(uow, offer.patient)
    name = await flow.name_of(uow, offer.caregiver) or ptr.plain("caregivers.unnamed")
    await preply.text(ptr("caregivers.patient.stopped", name=name))


@routes.message(Command("stop"), any_caregiver)
async def on_stop_command(
    message: Message,
    caring: list[Offer],
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
) -> None:
    """/stop: with one patient cared for, stop at once; with several, ask for whom."""
    assert message.from_user is not None
    if len(caring) == 1:
        await _stop(uow, tr, reply, caring[0].caregiver.id, message.from_user.id, message)
        return
    _, markup = render_home(tr, caring, own_button=False)
    await reply.text(tr("caregivers.stop.choose"), markup)


@routes.callback_query(CgStopCB.filter())
async def on_stop_button(
    query: CallbackQuery, callback_data: CgStopCB, uow: UnitOfWork, tr: Translator, reply: Replier
) -> None:
    """A Stop button on the home message (a revoked caregiver is told they no longer are)."""
    await reply.answer_callback(query.id)
    await _stop(uow, tr, reply, callback_data.id, query.from_user.id, query)


@routes.callback_query(CgOwnCB.filter())
async def on_own_use(
    query: CallbackQuery,
    uow: UnitOfWork,
    patient: Patient | None,
    tr: Translator,
    reply: Replier,
    settings: Settings,
) -> None:
    """A caregiver starts using Careline for themselves: the normal onboarding."""
    await reply.answer_callback(query.id)
    if patient is None:
        patient, _ = await onboarding.start(uow, query.from_user.id, tr.locale)
    await show_step(reply, tr, patient, settings)


@routes.message(caregiver_only)
async def on_caregiver_message(
    message: Message, caring: list[Offer], tr: Translator, reply: Replier
) -> None:
    """Anything from a caregiver who is not a patient: the caregiver home message."""
    text, markup = render_home(tr, caring, own_button=True)
    await reply.text(text, markup)
