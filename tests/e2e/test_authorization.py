"""Authorization as a matrix: every doctor and admin action of the doctor bot, attempted by
people who may not do it, over the Bot API emulator with the real bots.

Actors (rows):

- ``patient``: the active case's own patient (onboarded on the patient bot) now writing to
  the doctor bot. Even the case's owner may not act as its doctor.
- ``caregiver``: caregivers arrive in a later issue. Until then a caregiver is represented by
  a Telegram user with no doctor record at all who is not an admin (and writes in Russian).
- ``pending``: an applicant whose application waits for a decision (Chinese).
- ``rejected``: an applicant who was not approved (Russian).
- ``suspended``: a doctor who accepted a case, was then suspended (the case went back to the
  queue: it is the waiting case of the matrix).
- ``other``: a verified cardiologist. The waiting case is a general one (not their
  department), the active case is another doctor's.
- ``colleague``: a verified general doctor who is not the accepting doctor. Queue actions
  and their own settings are their job (same department) and are not in their row; /close,
  /terminate and /transfer are sent as replies to a message tagged with the active case.

Actions (columns) are the doctor bot's commands and buttons. Buttons are pressed with forged
callback data carrying the real case or doctor id (``force=True``). A reply to a message
tagged with the active case (``#N · Alice``) is real where the actor's chat holds one, else
forged as a raw update (nobody but the case's doctor holds one: the new-case notice does not
start with the tag).

Each cell asserts: (a) a clear answer (a message or callback answer with the expected text,
never silence); (b) nothing reached either case's patient or the active case's doctor (their
chats and the outbox); (c) the cases, doctors, case messages, abuse reports and patients'
blocks in the database are unchanged; (d) an audit
record of the refused attempt names the actor, and nothing else was audited. An attempt
needs an audit record when it is a doctor/admin command or button by someone who is not a
verified doctor / admin, or when it names a specific case that is not the actor's (a forged
button, a reply to that case's tagged message). Verified doctors using their own settings
(/duty, /hours) or looking at their own, empty, queue and case list are allowed: the cell
checks they see nothing of the two cases.

One clinic, one waiting and one active case are shared by every cell (module scope).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from flows import doctors as doctors_flow
from handlers.common.cases import QueueCB
from handlers.doctor.cases import CaseCB
from handlers.doctor.render import AdminCB
from handlers.doctor.reports import ReportCB
from locales import Translator
from storage.models import (
    AbuseReport,
    AuditRecord,
    CaseMessage,
    Consultation,
    Doctor,
    OutboxMessage,
    Patient,
)
from tests.e2e.conftest import (
    DOCTOR_BOT,
    DOCTOR_TOKEN,
    PATIENT_BOT,
    Clinic,
    start_clinic,
    stop_clinic,
)
from tests.e2e.test_consultation import add_doctor, consult, is_text
from tests.e2e.test_intake import new_patient
from tests.e2e.test_onboarding import NAMES

pytestmark = pytest.mark.asyncio(loop_scope="module")

NO_ADMIN = 1  # CARELINE_ADMIN_IDS: an id no simulated user has (they start at 700000001)
DOCTOR_BOT_ID = int(DOCTOR_TOKEN.split(":")[0])
UNVERIFIED = ("patient", "caregiver", "pending", "rejected", "suspended")
DOCTORS = ("other", "colleague")
ACTORS = (*UNVERIFIED, *DOCTORS)
QUEUE_ACTIONS = ("queue", "accept", "skip")
ACTIONS = (
    *QUEUE_ACTIONS,
    "cases",
    "case_select",
    "followup",
    "transfer_button",
    "close",
    "terminate",
    "transfer",
    "reply_text",
    "reply_photo",
    "typed_text",
    "duty",
    "hours",
    "pending",
    "approve",
    "reject",
    "suspend",
    "reinstate",
    "report",
    "reports",
    "report_block",
    "report_dismiss",
)
REFUSALS = (
    "consultation.refused",
    "consultation.accept_refused",
    "doctor.decision_denied",
    "report.refused",
    "report.decision_denied",
)


@dataclass
class Actor:
    """One row of the matrix: a simulated Telegram user and what identifies them."""

    key: str
    uid: int
    tr: Translator
    doctor_id: str | None = None
    patient_id: str | None = None

    def t(self, msgid: str, **params: Any) -> str:
        return self.tr.plain(msgid, **params)

    def refs(self) -> set[str]:
        """Audit actors that identify this person."""
        out = {f"tg:{self.uid}"}
        if self.doctor_id:
            out.add(f"doctor:{self.doctor_id}")
        if self.patient_id:
            out.add(f"patient:{self.patient_id}")
        return out


@dataclass
class World:
    """The shared clinic: actors, the two cases and the people to watch."""

    clinic: Clinic
    actors: dict[str, Actor]
    active_id: str
    active_number: int
    waiting_id: str
    waiting_number: int
    owner_id: str
    owner_uid: int
    pending_id: str
    suspended_id: str
    report_id: str
    watched: list[tuple[int, str]]  # (user id, bot) chats nothing may reach
    baseline: dict[tuple[int, str], int] = field(default_factory=dict)
    raw_ids: int = 900_000


async def _outbox_drained(clinic: Clinic, limit_s: float = 10.0) -> None:
    """Wait until the sender has sent everything queued."""
    deadline = time.monotonic() + limit_s
    while True:
        async with clinic.app.db.uow() as uow:
            left = await uow.session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == "pending")
            )
        if not left:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{left} outbox rows still pending")
        clinic.app.sender.poke()
        await asyncio.sleep(0.05)


async def _patient_id(clinic: Clinic, uid: int) -> str:
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        assert patient is not None
        return patient.id


async def _doctor_id(clinic: Clinic, uid: int) -> str:
    async with clinic.app.db.uow() as uow:
        doctor = await uow.doctors.by_tg_user(uid)
        assert doctor is not None
        return doctor.id


async def _case(clinic: Clinic, uid: int) -> Consultation:
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        assert patient is not None
        [case, *_] = await uow.consultations.for_patient(patient.id)
        uow.session.expunge_all()
        return case


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("authz")
    clinic, schema = await start_clinic(tmp, "sqlite", io.StringIO(), admin_ids=(NO_ADMIN,))
    try:
        owner = await add_doctor(clinic, "Dr Ada Brook", departments="general")
        colleague = await add_doctor(clinic, "Dr Cal Reed", departments="general")
        suspended = await add_doctor(clinic, "Dr Sol Grey", departments="general")
        other = await add_doctor(clinic, "Dr Dana Park", departments="cardiology")
        pending = await add_doctor(
            clinic, "Dr Uma Lind", departments="general", status="pending", locale="zh_Hans"
        )
        rejected = await add_doctor(
            clinic, "Dr Rex Vale", departments="general", status="rejected", locale="ru"
        )
        # The active case: a patient's intake, accepted by the owner.
        p1 = await new_patient(clinic, "en")
        n1 = await consult(p1)
        await owner.accept(n1, NAMES["en"].split()[0])
        # The waiting case: accepted by a doctor who is then suspended, so it is back in the
        # queue and the suspended doctor holds real messages tagged with its number.
        p2 = await new_patient(clinic, "ru")
        n2 = await consult(p2)
        await suspended.accept(n2, NAMES["ru"].split()[0])
        since = await clinic.seq(p2.uid)
        async with clinic.app.db.uow() as uow:
            doctor = await uow.doctors.by_tg_user(suspended.uid)
            assert doctor is not None
            sid = doctor.id
            await doctors_flow.suspend(uow, sid, f"admin:{NO_ADMIN}", "Licence under review")
            await uow.commit()
        requeued = p2.t("consult.requeued", number=n2, department=p2.t("dept.general"))
        await clinic.client.wait_for(p2.uid, PATIENT_BOT, is_text(requeued), since=since)
        # A caregiver: no doctor record, not an admin. They (and the patient) ask /status
        # first, which answers without creating a doctor record and leaves a bot message
        # to attach forged buttons to.
        caregiver_uid = await clinic.person("Vera", "ru")
        for uid in (caregiver_uid, p1.uid):
            since = await clinic.seq(uid, DOCTOR_BOT)
            await clinic.client.send(uid, DOCTOR_BOT, "/status")
            await clinic.client.wait_for(uid, DOCTOR_BOT, since=since)
        await _outbox_drained(clinic)
        active = await _case(clinic, p1.uid)
        waiting = await _case(clinic, p2.uid)
        assert (active.state, waiting.state) == ("active", "waiting")
        actors = {
            "patient": Actor(
                "patient", p1.uid, Translator("en"), patient_id=await _patient_id(clinic, p1.uid)
            ),
            "caregiver": Actor("caregiver", caregiver_uid, Translator("ru")),
        }
        for key, doc in (
            ("pending", pending),
            ("rejected", rejected),
            ("suspended", suspended),
            ("other", other),
            ("colleague", colleague),
        ):
            actors[key] = Actor(key, doc.uid, doc.tr, doctor_id=await _doctor_id(clinic, doc.uid))
        async with clinic.app.db.uow() as uow:  # an open abuse report for the admin buttons
            report = await uow.reports.add(
                AbuseReport(
                    consultation_id=active.id,
                    patient_id=active.patient_id,
                    doctor_id=active.doctor_id or "",
                ),
                "Rude messages",
            )
            await uow.commit()
        w = World(
            clinic=clinic,
            actors=actors,
            active_id=active.id,
            active_number=n1,
            waiting_id=waiting.id,
            waiting_number=n2,
            owner_id=await _doctor_id(clinic, owner.uid),
            owner_uid=owner.uid,
            pending_id=actors["pending"].doctor_id or "",
            suspended_id=sid,
            report_id=report.id,
            watched=[(p1.uid, PATIENT_BOT), (p2.uid, PATIENT_BOT), (owner.uid, DOCTOR_BOT)],
        )
        for uid, bot in w.watched:
            w.baseline[(uid, bot)] = await clinic.seq(uid, bot)
        yield w
    finally:
        await stop_clinic(clinic, schema)


# --- what each cell expects --------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """A cell's expectation: the answer texts (any of them, compared by prefix), whether a
    refusal must be audited, and which other audit actions are fine."""

    answers: tuple[str, ...]
    audited: bool
    allowed_audit: tuple[str, ...] = ()


NAMES_A_CASE = (
    "accept",
    "case_select",
    "followup",
    "transfer_button",
    "reply_text",
    "reply_photo",
)
ADMIN_ACTIONS = (
    "pending",
    "approve",
    "reject",
    "suspend",
    "reinstate",
    "reports",
    "report_block",
    "report_dismiss",
)


def status_text(actor: Actor) -> str:
    """What the doctor bot's fallback tells this person about where they stand."""
    if actor.key in ("patient", "caregiver", "other", "colleague"):
        return actor.t("doctor.help")
    return actor.t(f"doctor.status.{actor.key}")


def expect(actor: Actor, action: str) -> Expect:
    t = actor.t
    not_verified = t("consult.doctor.not_verified")
    if action in ("approve", "reject", "reports", "report_block", "report_dismiss"):
        return Expect((t("doctor.admin.not_admin"),), audited=True)
    if action in ADMIN_ACTIONS:
        # An admin command by a non-admin: "not for you" (or the help / status text), never
        # the list or the decision; audited like the forged decision buttons are.
        return Expect((t("doctor.admin.not_admin"), status_text(actor)), audited=True)
    if actor.key in UNVERIFIED:
        if action in ("reply_text", "reply_photo"):
            return Expect((not_verified, status_text(actor)), audited=True)
        if action == "typed_text":
            return Expect((not_verified, status_text(actor)), audited=False)
        return Expect((not_verified,), audited=True)
    # Verified doctors whose case it is not.
    if action == "queue":
        return Expect((t("consult.doctor.queue_empty"),), audited=False)
    if action == "cases":
        return Expect((t("consult.doctor.cases_empty"),), audited=False)
    if action == "skip":  # hides the buttons of a message: harmless, changes nothing
        return Expect((t("consult.doctor.skipped"),), audited=False)
    if action == "accept":
        return Expect((t("error.stale_button"), t("consult.doctor.taken")), audited=True)
    if action in ("case_select", "followup", "transfer_button"):
        return Expect((t("error.stale_button"),), audited=True)
    if action == "duty":
        return Expect(
            (t("consult.doctor.duty_on"),), audited=False, allowed_audit=("doctor.duty",)
        )
    if action == "hours":
        hours = t("consult.doctor.hours_set", hours="09:00-18:00", timezone="UTC")
        return Expect((hours,), audited=False, allowed_audit=("doctor.hours",))
    choose = t("consult.doctor.choose")
    # /close, /terminate, /transfer: the colleague sends them as a reply to the case's tagged
    # message (naming the case); the cardiologist types them (no case named).
    if action == "report":  # as a reply to the active case's tagged message
        return Expect((choose,), audited=True)
    names_case = action in NAMES_A_CASE or (
        actor.key == "colleague" and action in ("close", "terminate", "transfer")
    )
    return Expect((choose,), audited=names_case)


def cells() -> list[Any]:
    out = []
    for actor in ACTORS:
        for action in ACTIONS:
            if actor == "colleague" and action in (*QUEUE_ACTIONS, "duty", "hours"):
                continue  # the colleague's own queue and settings are their job
            out.append(pytest.param(actor, action, id=f"{actor}-{action}"))
    return out


# --- doing an action ----------------------------------------------------------------------------


async def _anchor(w: World, actor: Actor) -> int:
    """A bot message in the actor's chat to attach a forged button press to."""
    msgs = (await w.clinic.client.messages(actor.uid, DOCTOR_BOT))["messages"]
    return int(next(m["message_id"] for m in reversed(msgs) if m["from"] == "bot"))


async def _tagged(w: World, actor: Actor, number: int) -> int | None:
    """A real bot message in the actor's chat tagged with case #number, if any."""
    msgs = (await w.clinic.client.messages(actor.uid, DOCTOR_BOT))["messages"]
    for m in reversed(msgs):
        if m["from"] == "bot" and (m.get("text") or "").startswith(f"#{number} "):
            return int(m["message_id"])
    return None


async def _raw(w: World, actor: Actor, **content: Any) -> None:
    """A message from the actor as a raw update (for what the client cannot forge)."""
    w.raw_ids += 1
    user = {"id": actor.uid, "is_bot": False, "first_name": "Tester"}
    user["language_code"] = {"en": "en", "ru": "ru"}.get(actor.tr.locale, "zh-hans")
    message = {
        "message_id": w.raw_ids,
        "date": int(time.time()),
        "chat": {"id": actor.uid, "type": "private", "first_name": "Tester"},
        "from": user,
        **content,
    }
    await w.clinic.client.raw(DOCTOR_BOT, {"message": message})


def _forged_reply(w: World, actor: Actor) -> dict[str, Any]:
    """A bot message tagged with the active case, as a reply would carry it."""
    return {
        "message_id": 5,
        "date": int(time.time()) - 60,
        "chat": {"id": actor.uid, "type": "private", "first_name": "Tester"},
        "from": {
            "id": DOCTOR_BOT_ID,
            "is_bot": True,
            "first_name": "Careline Doctors",
            "username": DOCTOR_BOT,
        },
        "text": f"#{w.active_number} · Alice\nMy cough is worse at night",
    }


async def _reply_text(w: World, actor: Actor, text: str) -> None:
    real = await _tagged(w, actor, w.active_number)
    if real is not None:
        await w.clinic.client.send(actor.uid, DOCTOR_BOT, text, reply_to_message_id=real)
        return
    await _raw(w, actor, text=text, reply_to_message=_forged_reply(w, actor))


async def do(w: World, actor: Actor, action: str) -> None:
    client = w.clinic.client

    async def send(text: str) -> None:
        await client.send(actor.uid, DOCTOR_BOT, text)

    async def press(data: str) -> None:
        await client.click(actor.uid, DOCTOR_BOT, await _anchor(w, actor), data, force=True)

    owner_ref = w.owner_id[:12]
    table: dict[str, Callable[[], Awaitable[None]]] = {
        "queue": lambda: send("/queue"),
        "accept": lambda: press(QueueCB(action="acc", case=w.waiting_id).pack()),
        "skip": lambda: press(QueueCB(action="skip", case=w.waiting_id).pack()),
        "cases": lambda: send("/cases"),
        "case_select": lambda: press(CaseCB(action="sel", case=w.active_id).pack()),
        "followup": lambda: press(CaseCB(action="fu", case=w.active_id).pack()),
        "transfer_button": lambda: press(
            CaseCB(action="tr", case=w.active_id, value="cardiology").pack()
        ),
        "typed_text": lambda: send("Take two tablets a day"),
        "reply_text": lambda: _reply_text(w, actor, "Take two tablets a day"),
        "reply_photo": lambda: _raw(
            w,
            actor,
            photo=[
                {
                    "file_id": "AgACforgedphoto0001",
                    "file_unique_id": "AQADforged0001",
                    "width": 90,
                    "height": 90,
                    "file_size": 2048,
                }
            ],
            caption="Your results",
            reply_to_message=_forged_reply(w, actor),
        ),
        "duty": lambda: send("/duty on"),
        "hours": lambda: send("/hours 09:00-18:00"),
        "pending": lambda: send("/pending"),
        "approve": lambda: press(AdminCB(action="approve", doctor_id=w.pending_id).pack()),
        "reject": lambda: press(AdminCB(action="reject", doctor_id=w.pending_id).pack()),
        "suspend": lambda: send(f"/suspend {owner_ref} Licence under review"),
        "reinstate": lambda: send(f"/reinstate {w.suspended_id[:12]}"),
        "report": lambda: _reply_text(w, actor, "/report Insulting messages"),
        "reports": lambda: send("/reports"),
        "report_block": lambda: press(ReportCB(action="block", report=w.report_id).pack()),
        "report_dismiss": lambda: press(ReportCB(action="dismiss", report=w.report_id).pack()),
    }
    if action in ("close", "terminate", "transfer"):
        if actor.key == "colleague":
            await _reply_text(w, actor, f"/{action}")
        else:
            await send(f"/{action}")
        return
    await table[action]()


# --- what the database and the chats hold -----------------------------------------------------


async def db_state(w: World) -> dict[str, Any]:
    """Cases, doctors, case messages, reports and blocks, as far as authorization is concerned."""
    async with w.clinic.app.db.uow() as uow:
        cases = {
            c.id: (
                c.state,
                c.doctor_id,
                c.department,
                bool(c.followup_visit),
                c.closed_at,
                c.summary_enc is None,
            )
            for c in await uow.session.scalars(select(Consultation))
        }
        doctors = {
            d.id: (d.tg_user_id, d.status, d.verified_until, d.departments)
            for d in await uow.session.scalars(select(Doctor))
        }
        messages = await uow.session.scalar(select(func.count()).select_from(CaseMessage))
        reports = {r.id: r.status for r in await uow.session.scalars(select(AbuseReport))}
        blocked = {p.id: p.blocked_at for p in await uow.session.scalars(select(Patient))}
        return {
            "cases": cases,
            "doctors": doctors,
            "case_messages": messages,
            "reports": reports,
            "blocked": blocked,
        }


async def audit_after(w: World, seq: int) -> list[tuple[str, str, str]]:
    async with w.clinic.app.db.uow() as uow:
        rows = await uow.session.scalars(
            select(AuditRecord).where(AuditRecord.seq > seq).order_by(AuditRecord.seq)
        )
        return [(r.actor, r.action, r.record_id) for r in rows]


async def audit_head(w: World) -> int:
    async with w.clinic.app.db.uow() as uow:
        return int(await uow.session.scalar(select(func.max(AuditRecord.seq))) or 0)


async def outbox_head(w: World) -> int:
    async with w.clinic.app.db.uow() as uow:
        return int(await uow.session.scalar(select(func.max(OutboxMessage.id))) or 0)


async def outbox_to_watched(w: World, after: int) -> list[tuple[str, int, str]]:
    """Outbox rows queued since ``after`` for a watched chat (bot, chat, method)."""
    bots = {PATIENT_BOT: "patient", DOCTOR_BOT: "doctor"}
    watched = {(bots[bot], uid) for uid, bot in w.watched}
    async with w.clinic.app.db.uow() as uow:
        rows = await uow.session.scalars(select(OutboxMessage).where(OutboxMessage.id > after))
        return [(r.bot, r.chat_id, r.method) for r in rows if (r.bot, r.chat_id) in watched]


async def answers_since(w: World, actor: Actor, seq: int, n_answers: int) -> list[str]:
    """Texts of bot messages after ``seq`` and of callback answers after the first
    ``n_answers``, in the actor's doctor-bot chat."""
    got = await w.clinic.client.messages(actor.uid, DOCTOR_BOT, since=seq)
    texts = [
        m.get("text") or m.get("caption") or "" for m in got["messages"] if m["from"] == "bot"
    ]
    full = await w.clinic.client.messages(actor.uid, DOCTOR_BOT)
    answers = [a.get("text") or "" for a in full["callback_answers"][n_answers:]]
    return texts + [a for a in answers if a]


# --- the matrix ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("actor_key", "action"), cells())
async def test_refused(world: World, actor_key: str, action: str) -> None:
    w = world
    actor = w.actors[actor_key]
    exp = expect(actor, action)
    client = w.clinic.client
    seq = await w.clinic.seq(actor.uid, DOCTOR_BOT)
    n_answers = len((await client.messages(actor.uid, DOCTOR_BOT))["callback_answers"])
    watched = {chat: await w.clinic.seq(*chat) for chat in w.watched}
    before = await db_state(w)
    audit0 = await audit_head(w)
    outbox0 = await outbox_head(w)

    await do(w, actor, action)

    # (a) a clear answer, not silence.
    got: list[str] = []
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        got = await answers_since(w, actor, seq, n_answers)
        if any(text.startswith(a) for text in got for a in exp.answers):
            break
        await asyncio.sleep(0.03)
    problems: list[str] = []
    if not any(text.startswith(a) for text in got for a in exp.answers):
        problems.append(f"(a) answer: expected one of {exp.answers!r}, got {got!r}")
    # Everything the handler queued is committed with the answer; wait for it to go out.
    await _outbox_drained(w.clinic)
    # (b) nothing reached the patients or the active case's doctor.
    leaked = await outbox_to_watched(w, outbox0)
    if leaked:
        problems.append(f"(b) queued for a watched chat: {leaked}")
    for (uid, bot), was in watched.items():
        new = await client.messages(uid, bot, since=was)
        shown = [m.get("text") or m.get("caption") for m in new["messages"] if m["from"] == "bot"]
        if shown:
            problems.append(f"(b) the {bot} chat of {uid} got {shown!r}")
    # (c) the cases and doctors are unchanged.
    after = await db_state(w)
    for part in ("cases", "doctors", "case_messages", "reports", "blocked"):
        if after[part] != before[part]:
            problems.append(f"(c) {part} changed: {before[part]!r} -> {after[part]!r}")
    # (d) the refused attempt is audited and names the actor; nothing else is audited.
    records = await audit_after(w, audit0)
    refusals = [r for r in records if r[1] in REFUSALS]
    others = [r for r in records if r[1] not in REFUSALS and r[1] not in exp.allowed_audit]
    if others:
        problems.append(f"(d) unexpected audit records: {others!r}")
    if exp.audited:
        if not refusals:
            problems.append(f"(d) no audit record of the refusal (records: {records!r})")
        elif not any(r[0] in actor.refs() for r in refusals):
            problems.append(
                f"(d) the refusal is audited as {[r[0] for r in refusals]!r}, "
                f"which does not identify the actor ({sorted(actor.refs())!r})"
            )
    assert not problems, f"{actor_key} × {action}:\n  " + "\n  ".join(problems)


async def test_zz_watched_chats_got_nothing_and_the_owner_still_works(world: World) -> None:
    """After the whole matrix (once the clinic has settled): the watched chats got
    nothing at all, and the case's real doctor still reaches the patient (the set-up was
    live, so the silence above means something)."""
    w = world
    await w.clinic.settled()
    for (uid, bot), was in w.baseline.items():
        new = await w.clinic.client.messages(uid, bot, since=was)
        assert [m for m in new["messages"] if m["from"] == "bot"] == [], (uid, bot)
    since = await w.clinic.seq(w.watched[0][0], PATIENT_BOT)
    await w.clinic.client.send(w.owner_uid, DOCTOR_BOT, "Drink warm fluids")
    got = await w.clinic.client.wait_for(
        w.watched[0][0], PATIENT_BOT, lambda m: "Drink warm fluids" in (m.get("text") or ""),
        since=since,
    )  # fmt: skip
    assert got["text"] == "Dr Ada Brook: Drink warm fluids"  # the owner's short header
