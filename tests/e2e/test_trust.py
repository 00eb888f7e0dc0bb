"""Trust end to end over the Bot API emulator, with both real bots: ratings after a case
ends, a doctor's abuse report with the admins' review, the blocked patient's appeal, and the
patients' limits (open cases at once, messages per minute).

The patients write in Russian, Chinese and English, the doctors in Chinese, English and
Russian; every text is checked against the catalog in the reader's language, and the
database is checked after each step (ratings, the encrypted comment and reason, the block,
the cancelled cases, the audit trail). Runs on SQLite.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from flows.consultation import State
from handlers.doctor.reports import ReportCB
from handlers.patient.case import RateCB
from locales import Translator
from storage.models import (
    AbuseReport,
    CaseMessage,
    Doctor,
    Intake,
    OutboxMessage,
)
from storage.models import (
    Patient as PatientRow,
)
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import (
    Doc,
    add_doctor,
    audit_actions,
    card,
    case_of,
    consult,
    is_text,
    starts,
)
from tests.e2e.test_intake import Patient, new_patient
from tests.e2e.test_onboarding import NAMES

ADMINS = (700000001, 700000002)  # the emulator numbers users from 700000001
EN = Translator("en")  # the admins read reports in the clinic's default language
CHEST_PAIN = "I have crushing chest pain now"


@pytest.fixture
async def tclinic(tmp_path: Path) -> AsyncIterator[Clinic]:
    """A SQLite clinic with two admins."""
    c, schema = await start_clinic(tmp_path, "sqlite", io.StringIO(), admin_ids=ADMINS)
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Clinic]:
    """A SQLite clinic with tight patient limits: one open case, three messages a minute."""
    c, schema = await start_clinic(
        tmp_path, "sqlite", io.StringIO(), max_open_cases=1, patient_messages_per_minute=3
    )
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


# -- helpers -----------------------------------------------------------------------------------


def first(locale: str) -> str:
    return NAMES[locale].split()[0]


def buttons(msg: dict[str, Any]) -> dict[str, str]:
    """label -> callback data of a bot message's inline buttons."""
    rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
    return {b["text"]: b.get("callback_data", "") for row in rows for b in row}


async def answer_after(clinic: Clinic, uid: int, bot: str, since: int) -> dict[str, Any]:
    """The first callback answer in this chat after ``since``."""
    for _ in range(200):
        answers = (await clinic.client.messages(uid, bot, since=since))["callback_answers"]
        if answers:
            return dict(answers[0])
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no callback answer for {uid} in {bot}")


async def click_data(
    clinic: Clinic, uid: int, bot: str, message_id: int, data: str
) -> dict[str, Any]:
    """Send ``data`` as a (possibly forged) button press on ``message_id``; the answer."""
    since = await clinic.seq(uid, bot)
    await clinic.client.click(uid, bot, message_id, data, force=True)
    return await answer_after(clinic, uid, bot, since)


async def last_bot_message(clinic: Clinic, uid: int, bot: str) -> dict[str, Any]:
    msgs = (await clinic.client.messages(uid, bot))["messages"]
    return next(m for m in reversed(msgs) if m["from"] == "bot")


async def settle(clinic: Clinic) -> None:
    """Every queued bot message has gone out."""
    deadline = time.monotonic() + 10
    while True:
        async with clinic.app.db.uow() as uow:
            left = await uow.session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == "pending")
            )
        if not left:
            return
        assert time.monotonic() < deadline, f"{left} outbox rows still pending"
        clinic.app.sender.poke()
        await asyncio.sleep(0.05)


async def quiet(p: Patient) -> None:
    """Everything the patient sent so far has been handled: /help is answered after it
    (updates are processed in order), and the outbox is empty."""
    await p.say("/help", is_text(p.t("help.patient", emergency_number="112")))
    await settle(p.clinic)


async def load(clinic: Clinic, model: Any, row_id: str) -> Any:
    async with clinic.app.db.uow() as uow:
        row = await uow.session.get(model, row_id)
        uow.session.expunge_all()
        return row


async def patient_row(clinic: Clinic, uid: int) -> PatientRow:
    async with clinic.app.db.uow() as uow:
        row = await uow.patients.by_tg_user(uid)
        assert row is not None
        uow.session.expunge_all()
        return row


async def doctor_row(clinic: Clinic, uid: int) -> Doctor:
    async with clinic.app.db.uow() as uow:
        row = await uow.doctors.by_tg_user(uid)
        assert row is not None
        uow.session.expunge_all()
        return row


async def reports(clinic: Clinic) -> list[AbuseReport]:
    async with clinic.app.db.uow() as uow:
        rows = list(
            await uow.session.scalars(select(AbuseReport).order_by(AbuseReport.created_at))
        )
        uow.session.expunge_all()
        return rows


async def start_admins(clinic: Clinic) -> None:
    """Both admins exist (created first, so their ids are the configured ones) and have
    opened the doctor bot."""
    for name in ("Ines Adminova", "Oskar Adminsen"):
        uid = await clinic.person(name)
        assert uid in ADMINS
        welcome = await clinic.say(uid, "/start", DOCTOR_BOT)
        assert welcome["text"] == EN.plain("doctor.admin.welcome")


async def admin_wait(clinic: Clinic, uid: int, text: str, since: int = 0) -> dict[str, Any]:
    return await clinic.client.wait_for(uid, DOCTOR_BOT, is_text(text), since=since)


async def accepted(doc: Doc, p: Patient, number: int, locale: str) -> dict[str, Any]:
    """The doctor accepts from /queue; the patient's "a doctor has taken your case"."""
    since = await p.clinic.seq(p.uid)
    await doc.accept(number, first(locale))
    return await p.clinic.client.wait_for(p.uid, PATIENT_BOT, starts(f"#{number}"), since=since)


async def relayed(doc: Doc, p: Patient, number: int, locale: str, text: str) -> dict[str, Any]:
    """The patient writes in their active case; the message as the doctor gets it."""
    since = await p.clinic.seq(doc.uid, DOCTOR_BOT)
    await p.clinic.client.send(p.uid, PATIENT_BOT, text)
    msg = await doc.wait(starts(f"#{number} ·"), since)
    assert msg["text"] == f"#{number} · {first(locale)}: {text}"
    return msg


async def close_case(doc: Doc, p: Patient, number: int, locale: str) -> dict[str, Any]:
    """/close with advice; returns the patient's rating question."""
    await doc.say(
        "/close",
        is_text(doc.t("consult.doctor.close_ask", number=number, name=first(locale))),
    )
    since = await p.clinic.seq(p.uid)
    await doc.say("多喝水，注意休息", is_text(doc.t("consult.doctor.closed", number=number)))
    return await p.clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(p.t("trust.rate_ask", number=number)), since=since
    )


def emergency_text(p: Patient) -> str:
    return p.t("emergency.call_now", emergency_number="112", what=p.tr("redflag.chest_pain"))


# -- 1. ratings --------------------------------------------------------------------------------


async def test_rating_comment_skip_and_the_doctors_average(tclinic: Clinic) -> None:
    """Closed → 4★ with a comment (kept encrypted); stars again → "already rated"; another
    patient's forged rating → stale; a terminated case → 5★ and Skip. The doctor's /status
    and the card a patient sees carry the average."""
    clinic = tclinic
    doc = await add_doctor(clinic, "Dr Lin Qiao", departments="general", locale="zh_Hans")
    status = await doc.say("/status")
    assert status["text"].endswith("\n\n" + doc.t("trust.profile_unrated"))
    p = await new_patient(clinic, "ru")
    other = await new_patient(clinic, "en")
    n1 = await consult(p)
    got = await accepted(doc, p, n1, "ru")
    plain_card = await card(clinic, p.tr, doc)
    assert got["text"] == p.t("consult.accepted", number=n1, card=plain_card)
    assert "★" not in got["text"]  # no rating yet

    ask = await close_case(doc, p, n1, "ru")
    stars = buttons(ask)
    assert list(stars) == ["1★", "2★", "3★", "4★", "5★"]
    assert stars["4★"] == RateCB(case=(await case_of(clinic, p.uid)).id, stars=4).pack()
    rated = await p.press("4★", is_text(p.t("trust.rated", number=n1, stars=4)))
    assert list(buttons(rated)) == [p.t("trust.comment.skip")]
    await p.say("Врач был очень внимателен", is_text(p.t("trust.comment.thanks")))
    await settle(clinic)
    # The stars are gone from the question once used.
    history = (await clinic.client.messages(p.uid, PATIENT_BOT))["messages"]
    assert not buttons(next(m for m in history if m["message_id"] == ask["message_id"]))

    case1 = await case_of(clinic, p.uid)
    assert case1.rating == 4
    assert case1.rating_comment_enc is not None
    assert "внимателен".encode() not in case1.rating_comment_enc
    async with clinic.app.db.uow() as uow:
        assert (
            await uow.consultations.open_text(
                case1, "rating_comment_enc", case1.rating_comment_enc
            )
            == "Врач был очень внимателен"
        )
    row = await doctor_row(clinic, doc.uid)
    assert (row.rating_sum, row.rating_count) == (4, 1)

    # Pressing a star again (the old button, replayed): already rated, nothing changes.
    answer = await click_data(clinic, p.uid, PATIENT_BOT, ask["message_id"], stars["2★"])
    assert answer["text"] == p.t("trust.already_rated")
    # Another patient forges a rating of this case: the stale-button answer.
    mine = await last_bot_message(clinic, other.uid, PATIENT_BOT)
    forged = RateCB(case=case1.id, stars=1).pack()
    answer = await click_data(clinic, other.uid, PATIENT_BOT, mine["message_id"], forged)
    assert answer["text"] == other.t("error.stale_button")
    skip = RateCB(case=case1.id, stars=0).pack()
    answer = await click_data(clinic, other.uid, PATIENT_BOT, mine["message_id"], skip)
    assert answer["text"] == other.t("error.stale_button")
    assert (await case_of(clinic, p.uid)).rating == 4
    row = await doctor_row(clinic, doc.uid)
    assert (row.rating_sum, row.rating_count) == (4, 1)
    assert other.t("trust.comment.skipped") not in await clinic.bot_texts(other.uid)

    # A second case: the card now carries the rating; ended as not suitable online → 5★, Skip.
    n2 = await consult(p)
    got = await accepted(doc, p, n2, "ru")
    rated_card = plain_card + " · " + p.t("trust.rating", average=4.0, count=1)
    assert got["text"] == p.t("consult.accepted", number=n2, card=rated_card)
    assert "★ 4.0 (1)" in got["text"]
    since = await clinic.seq(p.uid)
    await doc.say("/terminate", is_text(doc.t("consult.doctor.terminated", number=n2)))
    ask2 = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(p.t("trust.rate_ask", number=n2)), since=since
    )
    assert list(buttons(ask2)) == ["1★", "2★", "3★", "4★", "5★"]
    await p.press("5★", is_text(p.t("trust.rated", number=n2, stars=5)))
    await p.press(p.t("trust.comment.skip"), is_text(p.t("trust.comment.skipped")))
    # After Skip the next text is not a comment: it is about the ended case.
    await p.say("И ещё вопрос", is_text(p.t("consult.closed_case", number=n2)))
    case2 = await case_of(clinic, p.uid)
    assert (case2.number, case2.state, case2.rating) == (n2, State.TERMINATED, 5)
    assert case2.rating_comment_enc is None
    row = await doctor_row(clinic, doc.uid)
    assert (row.rating_sum, row.rating_count) == (9, 2)
    actions = [a for _, a in await audit_actions(clinic)]
    assert actions.count("consultation.rate") == 2
    assert actions.count("consultation.comment") == 1

    # The doctor's /status shows the average; the next patient sees it on the card.
    status = await doc.say("/status")
    assert status["text"].endswith("\n\n" + doc.t("trust.profile_rating", average=4.5, count=2))
    n3 = await consult(other)
    got = await accepted(doc, other, n3, "en")
    other_card = await card(clinic, other.tr, doc)
    assert got["text"] == other.t(
        "consult.accepted",
        number=n3,
        card=other_card + " · " + other.t("trust.rating", average=4.5, count=2),
    )
    assert "★ 4.5 (2)" in got["text"]


# -- 2. reports, blocks, appeals ---------------------------------------------------------------


def report_text(report: AbuseReport, number: int, doctor: str, patient: str, reason: str) -> str:
    return EN.plain(
        "trust.admin.report",
        number=number,
        doctor=doctor,
        patient=patient,
        patient_id=report.patient_id[:8],
        at=report.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        reason=reason,
    )


async def test_report_block_appeal_unblock_and_dismiss(tclinic: Clinic) -> None:
    """A doctor reports an insulting patient; both admins get it; a forged decision is
    refused; an admin blocks: the patient's open cases are cancelled and everyone is told;
    the blocked patient cannot start an intake but still gets emergency help; the appeal
    reaches the admins and an admin unblocks. A second report is dismissed."""
    clinic = tclinic
    await start_admins(clinic)
    a1, a2 = ADMINS
    doc = await add_doctor(clinic, "Dr Mira Holt", departments="general")
    other = await add_doctor(clinic, "Dr Olga Frost", departments="general", locale="ru")
    p = await new_patient(clinic, "zh_Hans")
    n1 = await consult(p)
    # The other doctor sees case #n1 in the queue, then the first doctor takes it.
    queued = await other.say("/queue", starts(f"#{n1} ·"))
    await accepted(doc, p, n1, "zh_Hans")
    insult = await relayed(doc, p, n1, "zh_Hans", "你这个庸医，什么都不懂")

    # A report on a case that is not theirs (the queue message of #n1) or on no case at all.
    await other.say(
        "/report грубит", is_text(other.t("consult.doctor.choose")), reply_to=queued["message_id"]
    )
    await other.say("/report грубит", is_text(other.t("trust.report.usage")))

    # The report, replying to the relayed message.
    admin_seqs = [await clinic.seq(a, DOCTOR_BOT) for a in ADMINS]
    await doc.say(
        "/report insulting messages",
        is_text(doc.t("trust.report.sent", number=n1)),
        reply_to=insult["message_id"],
    )
    [report] = await reports(clinic)
    case1 = await case_of(clinic, p.uid)
    assert (report.status, report.consultation_id) == ("open", case1.id)
    assert report.reason_enc is not None and b"insulting" not in report.reason_enc
    expected = report_text(report, n1, "Dr Mira Holt", first("zh_Hans"), "insulting messages")
    for admin, since in zip(ADMINS, admin_seqs, strict=True):
        got = await admin_wait(clinic, admin, expected, since)
        assert list(buttons(got)) == [
            EN.plain("trust.admin.block"),
            EN.plain("trust.admin.dismiss"),
        ]
        assert got.get("protect_content") is True
        assert (
            buttons(got)[EN.plain("trust.admin.block")]
            == ReportCB(action="block", report=report.id).pack()
        )
    # Again: already reported; without a reason: the usage.
    await doc.say(
        "/report still rude",
        is_text(doc.t("trust.report.already", number=n1)),
        reply_to=insult["message_id"],
    )
    await doc.say("/report", is_text(doc.t("trust.report.usage")), reply_to=insult["message_id"])
    assert len(await reports(clinic)) == 1

    # A doctor who is not an admin forges the decision: refused with an alert, audited.
    mine = await last_bot_message(clinic, other.uid, DOCTOR_BOT)
    forged = ReportCB(action="block", report=report.id).pack()
    answer = await click_data(clinic, other.uid, DOCTOR_BOT, mine["message_id"], forged)
    assert (answer["text"], answer["show_alert"]) == (other.t("doctor.admin.not_admin"), True)
    assert (await load(clinic, AbuseReport, report.id)).status == "open"
    assert (await patient_row(clinic, p.uid)).blocked_at is None
    other_ref = f"doctor:{(await doctor_row(clinic, other.uid)).id}"
    assert (other_ref, "report.decision_denied") in await audit_actions(clinic)

    # A second open case (waiting, no doctor yet) is cancelled by the block as well.
    n2 = await consult(p)
    await other.say("/queue", starts(f"#{n2} ·"))  # queued, nobody accepts it
    since_p, since_d = await clinic.seq(p.uid), await clinic.seq(doc.uid, DOCTOR_BOT)
    await clinic.client.click_button(a1, DOCTOR_BOT, EN.plain("trust.admin.block"))
    await admin_wait(clinic, a1, EN.plain("trust.admin.upheld", count=2))
    blocked = p.t("trust.blocked", emergency_number="112")
    await clinic.client.wait_for(p.uid, PATIENT_BOT, is_text(blocked), since=since_p)
    told = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, starts(p.t("trust.blocked.cancelled", numbers="")[:4]), since=since_p
    )
    assert told["text"] in {
        p.t("trust.blocked.cancelled", numbers=f"#{a}, #{b}") for a, b in ((n1, n2), (n2, n1))
    }
    await doc.wait(is_text(doc.t("trust.report.upheld", number=n1)), since_d)
    await settle(clinic)
    patient = await patient_row(clinic, p.uid)
    assert patient.blocked_at is not None
    async with clinic.app.db.uow() as uow:
        states = {c.number: c.state for c in await uow.consultations.for_patient(patient.id)}
    assert states == {n1: State.CANCELLED, n2: State.CANCELLED}
    assert (await load(clinic, AbuseReport, report.id)).status == "upheld"
    # The reporter is not also told their case was cancelled.
    assert doc.t("trust.case_cancelled_blocked", number=n1, name=first("zh_Hans")) not in (
        await doc.texts()
    )
    # The decided report's buttons: gone for the admin who decided, "already decided" for
    # the other admin.
    a1_msgs = (await clinic.client.messages(a1, DOCTOR_BOT))["messages"]
    assert not buttons(next(m for m in a1_msgs if m.get("text") == expected))
    for label in (EN.plain("trust.admin.block"), EN.plain("trust.admin.dismiss")):
        since = await clinic.seq(a2, DOCTOR_BOT)
        await clinic.client.click_button(a2, DOCTOR_BOT, label)
        answer = await answer_after(clinic, a2, DOCTOR_BOT, since)
        assert (answer["text"], answer["show_alert"]) == (EN.plain("trust.admin.decided"), True)

    # Blocked: no new intake (command or button); emergency help still works.
    await p.say("/intake", is_text(blocked))
    await p.press(p.t("intake.begin"), is_text(blocked))
    await p.say(CHEST_PAIN, is_text(emergency_text(p)))
    async with clinic.app.db.uow() as uow:
        intakes = list(await uow.session.scalars(select(Intake)))
    assert len(intakes) == 2  # the two consultations; nothing new

    # The appeal.
    await p.say("/appeal", is_text(p.t("trust.appeal.usage", max=1000)))
    admin_seqs = [await clinic.seq(a, DOCTOR_BOT) for a in ADMINS]
    await p.say("/appeal I am sorry, I was upset", is_text(p.t("trust.appeal.sent")))
    appeal = EN.plain(
        "trust.admin.appeal",
        number=n1,
        patient=first("zh_Hans"),
        patient_id=report.patient_id[:8],
        reason="insulting messages",
        appeal="I am sorry, I was upset",
    )
    for admin, since in zip(ADMINS, admin_seqs, strict=True):
        got = await admin_wait(clinic, admin, appeal, since)
        assert list(buttons(got)) == [EN.plain("trust.admin.lift"), EN.plain("trust.admin.keep")]
    row = await load(clinic, AbuseReport, report.id)
    assert row.status == "appealed" and row.appeal_enc is not None
    assert b"upset" not in row.appeal_enc
    await p.say("/appeal please", is_text(p.t("trust.appeal.already")))

    since_p = await clinic.seq(p.uid)
    await clinic.client.click_button(a2, DOCTOR_BOT, EN.plain("trust.admin.lift"))
    await admin_wait(clinic, a2, EN.plain("trust.admin.lifted"))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(p.t("trust.appeal.lifted")), since=since_p
    )
    assert (await patient_row(clinic, p.uid)).blocked_at is None
    assert (await load(clinic, AbuseReport, report.id)).status == "lifted"
    since = await clinic.seq(a1, DOCTOR_BOT)
    await clinic.client.click_button(a1, DOCTOR_BOT, EN.plain("trust.admin.keep"))
    answer = await answer_after(clinic, a1, DOCTOR_BOT, since)
    assert (answer["text"], answer["show_alert"]) == (EN.plain("trust.admin.decided"), True)
    await p.say("/appeal again", is_text(p.t("trust.appeal.not_blocked")))
    await p.start()  # /intake works again

    # A second report, on the chosen case (no reply), is dismissed.
    q = await new_patient(clinic, "ru")
    n3 = await consult(q)
    await accepted(other, q, n3, "ru")
    await relayed(other, q, n3, "ru", "Отвечайте быстрее!")
    await other.say("/report спам", is_text(other.t("trust.report.sent", number=n3)))
    report2 = (await reports(clinic))[-1]
    shown = await clinic.say(a1, "/reports", DOCTOR_BOT)
    assert shown["text"] == report_text(report2, n3, "Dr Olga Frost", first("ru"), "спам")
    since_d, since_q = await clinic.seq(other.uid, DOCTOR_BOT), await clinic.seq(q.uid)
    await clinic.client.click_button(a1, DOCTOR_BOT, EN.plain("trust.admin.dismiss"))
    await admin_wait(clinic, a1, EN.plain("trust.admin.dismissed"))
    await other.wait(is_text(other.t("trust.report.dismissed", number=n3)), since_d)
    await settle(clinic)
    assert (await patient_row(clinic, q.uid)).blocked_at is None
    assert (await case_of(clinic, q.uid)).state == State.ACTIVE
    assert (await load(clinic, AbuseReport, report2.id)).status == "dismissed"
    assert (await clinic.client.messages(q.uid, PATIENT_BOT, since=since_q))["messages"] == []
    answer = await click_data(
        clinic, a2, DOCTOR_BOT, (await last_bot_message(clinic, a2, DOCTOR_BOT))["message_id"],
        ReportCB(action="block", report=report2.id).pack(),
    )  # fmt: skip
    assert (answer["text"], answer["show_alert"]) == (EN.plain("trust.admin.decided"), True)
    await clinic.say(a1, "/reports", DOCTOR_BOT)
    assert (await last_bot_message(clinic, a1, DOCTOR_BOT))["text"] == EN.plain("trust.admin.none")
    await doc.say("/reports", is_text(doc.t("doctor.admin.not_admin")))

    actions = [a for _, a in await audit_actions(clinic)]
    for action in (
        "report.file",
        "report.refused",
        "report.view",
        "report.uphold",
        "patient.block",
        "report.appeal",
        "report.lift",
        "patient.unblock",
        "report.dismiss",
    ):
        assert action in actions, action
    assert actions.count("report.decision_denied") == 2  # the forged press and /reports


# -- 3. limits ---------------------------------------------------------------------------------


async def test_open_case_and_message_limits(limited: Clinic) -> None:
    """One open case at most: /intake and the start button name the open case. Three
    messages a minute: the 4th and 5th do not reach the doctor, the patient is told once,
    and an emergency still goes through."""
    clinic = limited
    doc = await add_doctor(clinic, "Dr Olga Frost", departments="general", locale="ru")
    p = await new_patient(clinic, "en")
    n1 = await consult(p)
    limit = p.t("trust.limit.open_cases", count=1, numbers=f"#{n1}", emergency_number="112")
    since = await clinic.seq(p.uid)
    await p.say("/intake", is_text(limit))
    await p.press(p.t("intake.begin"), is_text(limit))
    await quiet(p)
    after = (await clinic.client.messages(p.uid, PATIENT_BOT, since=since))["messages"]
    assert [m["text"] for m in after if m["from"] == "bot"][:2] == [limit, limit]
    assert not any(p.t("intake.subject.self") in buttons(m) for m in after)
    async with clinic.app.db.uow() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(Intake)) == 1

    await accepted(doc, p, n1, "en")
    for i in (1, 2, 3):
        await relayed(doc, p, n1, "en", f"message {i}")
    since_p = await clinic.seq(p.uid)
    slow = p.t("trust.limit.messages", emergency_number="112")
    await p.say("message 4", is_text(slow))
    await clinic.client.send(p.uid, PATIENT_BOT, "message 5")
    await quiet(p)
    texts = [
        m.get("text") or ""
        for m in (await clinic.client.messages(p.uid, PATIENT_BOT, since=since_p))["messages"]
        if m["from"] == "bot"
    ]
    assert texts.count(slow) == 1
    relays = [t for t in await doc.texts() if t.startswith(f"#{n1} · {first('en')}:")]
    assert relays == [f"#{n1} · Alice: message {i}" for i in (1, 2, 3)]

    # An emergency is never throttled: the patient gets the instructions, the doctor the alert.
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    await p.say(CHEST_PAIN, is_text(emergency_text(p)))
    alert = await doc.wait(starts(f"#{n1} ·"), since_d)
    assert alert["text"] == doc.t(
        "consult.doctor.emergency",
        number=n1,
        name=first("en"),
        what=doc.t("redflag.chest_pain"),
        emergency_number="112",
        text=CHEST_PAIN,
    )
    async with clinic.app.db.uow() as uow:
        bodies = [
            r.kind for r in await uow.session.scalars(select(CaseMessage)) if r.sender == "patient"
        ]
    assert len(bodies) == 4  # three relayed messages and the emergency
    actions = [a for _, a in await audit_actions(clinic)]
    assert actions.count("consultation.throttled") == 1
