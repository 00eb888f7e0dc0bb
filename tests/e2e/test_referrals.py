"""Referral slips end to end over the emulator: an admin fills the hospital directory in the
doctor bot (/hospitals) and on the command line (``python bot.py hospitals ...``); a doctor
with a case issues a referral through the /referral wizard; the patient receives the slip as a
protected PDF whose QR verifies, asks for it again with /referrals (the same bytes), and is told
when the doctor revokes it; /terminate offers the wizard; the follow-up after an urgent
referral asks on the fake clock, recalls once, and passes the answer to the doctor; bad input
and other people's buttons get clear answers."""

from __future__ import annotations

import hashlib
import io
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flows import referral_followup as followup
from flows import referrals as core
from flows import slip as slip_module
from flows.signing import Signer
from storage.models import AuditRecord, Hospital, Referral, ScheduledEvent
from tests.cli_runner import run_cli_async
from tests.conftest import BACKENDS
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_consultation import (
    Doc,
    add_doctor,
    consult,
    contains,
    is_text,
    starts,
    wait_answers,
)
from tests.e2e.test_intake import has_button, new_patient
from tests.e2e.test_med_plans import FIRST, with_case
from tests.e2e.test_onboarding import NAMES

ADMIN_ID = 700000001  # the emulator numbers users from 700000001: create the admin first
HOSPITAL = "City General Hospital"
REASON = "Suspected arrhythmia: needs Holter monitoring"


@pytest.fixture(params=BACKENDS)
async def rclinic(
    request: pytest.FixtureRequest, tmp_path: Path, log_capture: io.StringIO
) -> AsyncIterator[Clinic]:
    """A clinic with one admin, on each backend."""
    c, schema = await start_clinic(tmp_path, request.param, log_capture, admin_ids=(ADMIN_ID,))
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


@pytest.fixture
async def rsqlite(tmp_path: Path, log_capture: io.StringIO) -> AsyncIterator[Clinic]:
    """A clinic with one admin on SQLite (the command line shares its database file)."""
    c, schema = await start_clinic(tmp_path, "sqlite", log_capture, admin_ids=(ADMIN_ID,))
    try:
        yield c
    finally:
        await stop_clinic(c, schema)


def _aware(d: datetime | None) -> datetime:
    assert d is not None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


async def _sweep(clinic: Clinic, now: datetime) -> None:
    while await clinic.app.sweeper.sweep_once(now):
        pass


async def _admin(clinic: Clinic) -> Doc:
    uid = await clinic.person("Ada", "en")
    assert uid == ADMIN_ID
    since = await clinic.seq(uid, DOCTOR_BOT)
    await clinic.client.start(uid, DOCTOR_BOT)
    await clinic.client.wait_for(uid, DOCTOR_BOT, since=since)
    return Doc(clinic, uid, "Ada", "en")


async def _referrals(clinic: Clinic) -> list[Referral]:
    async with clinic.app.db.uow() as uow:
        rows = list(await uow.session.scalars(select(Referral).order_by(Referral.created_at)))
        uow.session.expunge_all()
        return rows


async def _events(clinic: Clinic, referral_id: str) -> list[ScheduledEvent]:
    async with clinic.app.db.uow() as uow:
        rows = list(
            await uow.session.scalars(
                select(ScheduledEvent)
                .where(ScheduledEvent.kind == followup.KIND, ScheduledEvent.subject == referral_id)
                .order_by(ScheduledEvent.due_at)
            )
        )
        uow.session.expunge_all()
        return rows


async def _verify(clinic: Clinic, pdf: bytes) -> core.Verdict:
    async with clinic.app.db.uow() as uow:
        verdict = await core.verify_file(uow, pdf, Signer(uow.vault.ring), datetime.now(UTC))
        await uow.rollback()
        return verdict


def _doc_msg(m: dict[str, Any]) -> bool:
    return "document" in m


def _ask(doc: Doc, step: str, number: int, **extra: Any) -> Any:
    return is_text(doc.t(f"ref.wiz.ask_{step}", number=number, name=FIRST, **extra))


async def add_hospital_in_bot(admin: Doc) -> None:
    """/hospitals → Add → name, city, language (a bad one first), departments."""
    t = admin.t
    await admin.say("/hospitals", has_button(t("ref.dir.add")))
    await admin.press(t("ref.dir.add"), is_text(t("ref.dir.ask.name")))
    await admin.say("H" * 201, is_text(t("ref.dir.too_long", max=200)))  # then asked again
    await admin.wait(is_text(t("ref.dir.ask.name")))
    await admin.say(HOSPITAL, is_text(t("ref.dir.ask.city")))
    await admin.say("Riverton", has_button(t("ref.lang.ru")))
    await admin.say("Klingon", is_text(t("ref.dir.bad_locale")))
    await admin.press(t("ref.lang.ru"), is_text(t("ref.dir.ask.departments")))
    added = await admin.say("Cardiology, Neurology", starts(t("ref.dir.added", item="")[:10]))
    assert HOSPITAL in added["text"] and "Cardiology, Neurology" in added["text"]


async def test_issue_resend_revoke(rclinic: Clinic) -> None:
    clinic = rclinic
    admin = await _admin(clinic)
    await add_hospital_in_bot(admin)
    doc, p, number = await with_case(clinic)
    t = doc.t
    await doc.say("/help", contains("/referral, /referrals"))
    await doc.say(f"/referral {number}", has_button(f"{HOSPITAL} · Riverton"))
    await doc.press(f"{HOSPITAL} · Riverton", has_button("Cardiology"))
    await doc.press("Cardiology", _ask(doc, "reason", number))
    await doc.say(REASON, has_button(t("ref.urgency.within_24h")))
    findings = await doc.press(t("ref.urgency.within_24h"), has_button(t("ref.wiz.keep_findings")))
    assert f"Online consultation #{number}" in findings["text"]  # prefilled from the case
    await doc.press(t("ref.wiz.keep_findings"), has_button(t("ref.wiz.days", n=14)))
    # A date in the past: why, and the same step again.
    await doc.say("2020-01-01", is_text(t("ref.wiz.date_past")))
    await doc.wait(has_button(t("ref.wiz.days", n=14)))
    review = await doc.press(t("ref.wiz.days", n=14), has_button(t("ref.wiz.issue")))
    assert review.get("protect_content") is True
    assert REASON.split(":")[0] in review["text"] and "Cardiology" in review["text"]
    # Nothing the doctor typed reached the patient before the slip.
    assert not any("Holter" in x for x in await clinic.bot_texts(p.uid))

    since_p = await clinic.seq(p.uid)
    issued_prefix = t("ref.wiz.issued", number=number, name=FIRST, code="X", valid_until="")
    issued = await doc.press(t("ref.wiz.issue"), starts(issued_prefix[:10]))
    slip = await clinic.client.wait_for(p.uid, PATIENT_BOT, _doc_msg, since=since_p)
    assert slip.get("protect_content") is True
    pdf = await clinic.client.download(slip["document"]["file_id"])
    assert pdf.startswith(b"%PDF")
    [ref] = await _referrals(clinic)
    assert ref.status == "issued" and ref.code and ref.code in issued["text"]
    assert ref.urgency == "within_24h" and ref.hospital_id is not None
    assert ref.file_hash == hashlib.sha256(pdf).hexdigest()
    assert ref.code in (slip.get("caption") or "")
    verdict = await _verify(clinic, pdf)
    assert verdict.status == "valid" and verdict.target_hospital == HOSPITAL
    assert verdict.urgency == "within_24h"
    # The urgent referral's follow-up: one keyed event 7 days after issue.
    [event] = await _events(clinic, ref.id)
    assert event.key == f"reffu:{ref.id}:1" and event.status == "pending"
    assert timedelta(days=6) < _aware(event.due_at) - _aware(ref.issued_at) < timedelta(days=8)
    assert any(x == t("ref.wiz.followup_planned", days=7) for x in await doc.texts())

    # The patient's /referrals: the slip again, byte for byte.
    listing = await p.say("/referrals", has_button(p.t("ref.pat.again")))
    assert ref.code in listing["text"] and p.t("ref.status.issued") in listing["text"]
    assert listing.get("protect_content") is True
    since_p = await clinic.seq(p.uid)
    await clinic.client.click_button(p.uid, PATIENT_BOT, p.t("ref.pat.again"))
    again = await clinic.client.wait_for(p.uid, PATIENT_BOT, _doc_msg, since=since_p)
    assert again.get("protect_content") is True
    assert await clinic.client.download(again["document"]["file_id"]) == pdf

    # Another doctor can't list or revoke it.
    other = await add_doctor(clinic, "Dr Ines Vale")
    await other.say(f"/referrals {number}", is_text(other.t("ref.not_your_case", number=number)))

    # The doctor revokes it: confirm, the patient is told, the follow-up is cancelled.
    item = await doc.say(f"/referrals {number}", has_button(t("ref.doc.revoke")))
    assert ref.code in item["text"] and t("ref.status.issued") in item["text"]
    confirm = await doc.press(t("ref.doc.revoke"), has_button(t("ref.doc.revoke_yes")))
    [yes_data] = [b["callback_data"] for row in confirm["reply_markup"]["inline_keyboard"]
                  for b in row]  # fmt: skip
    since_p = await clinic.seq(p.uid)
    await doc.press(t("ref.doc.revoke_yes"), is_text(t("ref.doc.revoked", code=ref.code)))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(p.t("ref.pat.revoked", code=ref.code)), since=since_p
    )
    [ref] = await _referrals(clinic)
    assert ref.status == "revoked"
    assert [e.status for e in await _events(clinic, ref.id)] == ["cancelled"]
    assert (await _verify(clinic, pdf)).status == "revoked"
    # The patient's old "send again" button now says why not.
    await p.press(
        p.t("ref.pat.again"),
        is_text(p.t("ref.pat.not_valid", status=p.t("ref.status.revoked"))),
    )
    # The confirm button pressed twice: stale.
    answers = len(await doc.callback_answers())
    await clinic.client.click(doc.uid, DOCTOR_BOT, confirm["message_id"], yes_data, force=True)
    await wait_answers(doc, answers + 1)
    assert (await doc.callback_answers())[-1] == t("error.stale_button")
    async with clinic.app.db.uow() as uow:
        actions = {
            r.action
            for r in await uow.session.scalars(
                select(AuditRecord).where(AuditRecord.record_id == ref.id)
            )
        }
    assert {"referral.draft", "referral.issue", "referral.resend", "referral.revoke"} <= actions


async def _typed_referral(doc: Doc, number: int, urgency: str) -> None:
    """/referral N with a typed hospital and department, to the review card."""
    t = doc.t
    await doc.say(f"/referral {number}", _ask(doc, "target", number))
    await doc.say("Harbour Hospital", _ask(doc, "department", number, hospital="Harbour Hospital"))
    await doc.say("Orthopaedics", _ask(doc, "reason", number))
    await doc.say("Knee injury, needs an X-ray", has_button(t(f"ref.urgency.{urgency}")))
    await doc.press(t(f"ref.urgency.{urgency}"), has_button(t("ref.wiz.keep_findings")))
    await doc.say("Swollen left knee since a fall", has_button(t("ref.wiz.days", n=7)))
    await doc.press(t("ref.wiz.days", n=30), has_button(t("ref.wiz.issue")))


async def test_terminate_offers_referral_change_cancel_and_refusals(rsqlite: Clinic) -> None:
    clinic = rsqlite
    admin = await _admin(clinic)
    doc, p, number = await with_case(clinic)
    t = doc.t
    # Not an admin: /hospitals is refused; an admin with an empty directory may add one.
    await doc.say("/hospitals", is_text(t("ref.dir.not_admin")))
    await admin.say("/hospitals", is_text(t("ref.dir.empty_list")))
    # Someone who is not a verified doctor.
    stranger = Doc(clinic, await clinic.person("Sam"), "Sam", "en")
    await stranger.say("/referral 1", is_text(t("consult.doctor.not_verified")))

    # /terminate: the referral is offered with a button.
    await doc.say("/terminate", has_button(t("ref.wiz.offer_button")))
    await doc.press(t("ref.wiz.offer_button"), _ask(doc, "target", number))
    await doc.say("/referral", is_text(t("ref.wiz.already_open")))  # one wizard at a time
    await doc.say("Harbour Hospital", _ask(doc, "department", number, hospital="Harbour Hospital"))
    await doc.say("Orthopaedics", _ask(doc, "reason", number))
    await doc.say("x" * 501, is_text(t("ref.wiz.too_long", max=500)))  # the step stays
    await doc.wait(_ask(doc, "reason", number))
    await doc.say("Knee injury, needs an X-ray", has_button(t("ref.urgency.routine")))
    await doc.say("routine please", is_text(t("ref.wiz.use_buttons")))
    await doc.press(t("ref.urgency.routine"), has_button(t("ref.wiz.keep_findings")))
    await doc.say("Swollen left knee since a fall", has_button(t("ref.wiz.days", n=7)))
    await doc.say("next year sometime", is_text(t("ref.wiz.bad_date")))
    await doc.say("150", is_text(t("ref.wiz.date_far", max=90)))
    review = await doc.press(t("ref.wiz.days", n=7), has_button(t("ref.wiz.issue")))
    assert "Harbour Hospital" in review["text"] and "Swollen left knee" in review["text"]
    # Change one step from the review card; the old answer could be kept.
    await doc.press(t("ref.wiz.change_step"), has_button(t("ref.step.reason")))
    await doc.press(t("ref.step.reason"), has_button(t("ref.wiz.keep")))
    review = await doc.say("Knee injury: MRI needed", has_button(t("ref.wiz.issue")))
    assert "MRI needed" in review["text"]
    # Steps answered with buttons too: a changing step once carried ':' (aiogram's callback
    # separator) into its buttons, and "Change a step" -> Urgency answered "something went
    # wrong".
    await doc.press(t("ref.wiz.change_step"), has_button(t("ref.step.urgency")))
    await doc.press(t("ref.step.urgency"), has_button(t("ref.urgency.within_2w")))
    review = await doc.press(t("ref.urgency.within_2w"), has_button(t("ref.wiz.issue")))
    assert t("ref.urgency.within_2w") in review["text"]
    await doc.press(t("ref.wiz.change_step"), has_button(t("ref.step.department")))
    await doc.press(t("ref.step.department"), has_button(t("ref.wiz.any_department")))
    await doc.press(t("ref.wiz.keep"), has_button(t("ref.wiz.issue")))
    await doc.press(t("ref.wiz.change_step"), has_button(t("ref.step.valid")))
    await doc.press(t("ref.step.valid"), has_button(t("ref.wiz.days", n=14)))
    await doc.press(t("ref.wiz.days", n=14), has_button(t("ref.wiz.issue")))
    assert clinic.app.processor.failed == 0
    # Another doctor presses this doctor's Issue button (forged): stale, nothing issued.
    other = await add_doctor(clinic, "Dr Ines Vale")
    mid = await doc.message_id_of(t("ref.wiz.review", number=number, name=FIRST, card="")[:12])
    history = await doc.history()
    [issue_data] = [
        b["callback_data"]
        for m in history["messages"]
        if m["message_id"] == mid
        for row in (m.get("reply_markup") or {}).get("inline_keyboard") or []
        for b in row
        if b["text"] == t("ref.wiz.issue")
    ]
    own = (await other.history())["messages"][-1]["message_id"]  # a message in their chat
    await clinic.client.click(other.uid, DOCTOR_BOT, own, issue_data, force=True)
    await wait_answers(other, 1)
    assert await other.callback_answers() == [other.t("error.stale_button")]
    await other.say(f"/referral {number}", is_text(other.t("ref.not_your_case", number=number)))
    # Cancel: the draft is gone, nothing reached the patient.
    await doc.say("/cancel", is_text(t("ref.wiz.cancelled")))
    assert await _referrals(clinic) == []
    assert not any("Harbour" in x for x in await clinic.bot_texts(p.uid))
    # The old review card's Issue button is stale now.
    answers = len(await doc.callback_answers())
    await clinic.client.click_button(doc.uid, DOCTOR_BOT, t("ref.wiz.issue"))
    await wait_answers(doc, answers + 1)
    assert (await doc.callback_answers())[-1] == t("error.stale_button")
    assert await _referrals(clinic) == []


async def _cli(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``python bot.py hospitals ...`` against the running clinic's database (tests/cli_runner.py:
    in a thread, so the event loop and the clinic's open transactions keep going while the
    command waits for the SQLite write lock)."""
    return await run_cli_async(["hospitals", *args], data_dir)


async def test_directory_from_the_command_line(rsqlite: Clinic) -> None:
    clinic = rsqlite
    added = await _cli(
        ["add", "Northgate Hospital", "--city", "Eastport", "--language", "Chinese",
         "--departments", "心内科, 急诊科"],
        clinic.data_dir,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    hid = added.stdout.split()[1]
    listed = await _cli(["list"], clinic.data_dir)
    assert "Northgate Hospital · Eastport · zh_Hans" in listed.stdout
    assert "心内科, 急诊科" in listed.stdout
    dep = await _cli(["department", hid, "add", "Neurology"], clinic.data_dir)
    assert dep.returncode == 0 and "心内科, 急诊科, Neurology" in dep.stdout
    gone = await _cli(["department", hid, "remove", "急诊科"], clinic.data_dir)
    assert "心内科, Neurology" in gone.stdout
    bad = await _cli(["add", "Lakeside", "--language", "Klingon"], clinic.data_dir)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "language" in bad.stderr.lower()
    unknown = await _cli(["disable", "abcdef99"], clinic.data_dir)
    assert unknown.returncode == 2 and "no hospital" in unknown.stderr
    # The doctor bot offers it, with its departments.
    doc, _p, number = await with_case(clinic)
    await doc.say(f"/referral {number}", has_button("Northgate Hospital · Eastport"))
    await doc.press("Northgate Hospital · Eastport", has_button("Neurology"))
    await doc.say("/cancel", is_text(doc.t("ref.wiz.cancelled")))
    # Disabled while a doctor looks at its button: the button is refused, then not offered.
    await doc.say(f"/referral {number}", has_button("Northgate Hospital · Eastport"))
    off = await _cli(["disable", hid], clinic.data_dir)
    assert off.returncode == 0 and "disabled" in off.stdout
    await doc.press("Northgate Hospital · Eastport", is_text(doc.t("ref.wiz.unknown_hospital")))
    await doc.say("/cancel", is_text(doc.t("ref.wiz.cancelled")))
    target = await doc.say(f"/referral {number}", _ask(doc, "target", number))
    labels = [b["text"] for row in target["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == [doc.t("ref.wiz.cancel")]
    async with clinic.app.db.uow() as uow:
        [hospital] = list(await uow.session.scalars(select(Hospital)))
        assert hospital.active is False
        actors = {
            r.actor
            for r in await uow.session.scalars(
                select(AuditRecord).where(AuditRecord.record_id == hospital.id)
            )
        }
    assert actors == {"admin:cli"}


async def test_urgent_followup_asks_recalls_and_tells_the_doctor(rclinic: Clinic) -> None:
    clinic = rclinic
    doc, p, number = await with_case(clinic)
    t = doc.t
    await _typed_referral(doc, number, "within_2w")
    since_p = await clinic.seq(p.uid)
    await doc.press(t("ref.wiz.issue"), contains(t("ref.wiz.followup_planned", days=10)))
    await clinic.client.wait_for(p.uid, PATIENT_BOT, _doc_msg, since=since_p)
    [ref] = await _referrals(clinic)
    [event] = await _events(clinic, ref.id)
    due = _aware(event.due_at)
    assert timedelta(days=9) < due - _aware(ref.issued_at) < timedelta(days=11)
    # Not yet due: nothing.
    since_p = await clinic.seq(p.uid)
    await _sweep(clinic, due - timedelta(minutes=1))
    # (the emulator's counter is global: the admins' Monday summary may move it)
    assert not (await clinic.client.messages(p.uid, PATIENT_BOT, since_p))["messages"]
    # Due: "did you go?" with three answers; a recall is planned 3 days later.
    await _sweep(clinic, due)
    ask = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("ref.pat.fu.went")), since=since_p
    )
    assert "Harbour Hospital" in ask["text"] and ref.code in ask["text"]
    events = await _events(clinic, ref.id)
    assert [e.key for e in events] == [f"reffu:{ref.id}:1", f"reffu:{ref.id}:2"]
    recall_due = _aware(events[1].due_at)
    assert timedelta(days=2) < recall_due - due < timedelta(days=4)
    # "Not yet": the doctor hears it; the recall still comes.
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    await p.press(p.t("ref.pat.fu.not_yet"), is_text(p.t("ref.pat.noted.not_yet")))
    told = await doc.wait(contains(ref.code or "?"), since_d)
    assert t("ref.answer.not_yet") in told["text"]
    since_p = await clinic.seq(p.uid)
    await _sweep(clinic, recall_due)
    recall = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("ref.pat.fu.went")), since=since_p
    )
    assert recall["text"].startswith(p.t("ref.pat.fu_recall", hospital="x", code="y")[:12])
    # "Yes, I went": the slip is used by the patient; the typed outcome goes to the doctor.
    await p.press(p.t("ref.pat.fu.went"), is_text(p.t("ref.pat.ask_outcome")))
    await clinic.client.send_photo(p.uid, PATIENT_BOT, b"\x89PNG not text", "knee.png")
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(p.t("ref.pat.text_only")), since=since_p
    )
    since_d = await clinic.seq(doc.uid, DOCTOR_BOT)
    await p.say("They took an X-ray: no fracture, physiotherapy", is_text(p.t("ref.pat.told")))
    told = await doc.wait(contains("no fracture"), since_d)
    assert t("ref.answer.went") in told["text"] and told.get("protect_content") is True
    [ref] = await _referrals(clinic)
    assert ref.status == "used" and ref.used_by == "patient"
    assert ref.outcome_enc is not None and b"fracture" not in ref.outcome_enc
    assert {e.status for e in await _events(clinic, ref.id)} <= {"done", "cancelled"}
    # An old button (its keyboard was removed; a forged press): already answered.
    [couldnt] = [b["callback_data"] for row in ask["reply_markup"]["inline_keyboard"]
                 for b in row if b["text"] == p.t("ref.pat.fu.couldnt")]  # fmt: skip
    since_p = await clinic.seq(p.uid)
    await clinic.client.click(p.uid, PATIENT_BOT, ask["message_id"], couldnt, force=True)
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, is_text(p.t("ref.pat.answered")), since=since_p
    )
    # The doctor's /referrals shows the outcome.
    item = await doc.say(f"/referrals {number}", contains(ref.code or "?"))
    assert "no fracture" in item["text"] and t("ref.status.used") in item["text"]


async def test_chinese_slip_needs_a_cjk_font(
    rsqlite: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Chinese-speaking patient's slip: without a CJK font on the server the doctor is told
    and nothing is issued (the review card stays); with the font the slip goes out."""
    clinic = rsqlite
    doc = await add_doctor(clinic, "Dr Mira Holt")
    p = await new_patient(clinic, "zh_Hans")
    number = await consult(p)
    name = NAMES["zh_Hans"].split()[0]
    await doc.accept(number, name)
    t = doc.t
    await doc.say(
        f"/referral {number}", is_text(t("ref.wiz.ask_target", number=number, name=name))
    )
    await doc.say("市第一人民医院", has_button(t("ref.wiz.any_department")))
    await doc.say("心内科", contains(""))
    await doc.say("胸痛待查", has_button(t("ref.urgency.routine")))
    await doc.press(t("ref.urgency.routine"), has_button(t("ref.wiz.keep_findings")))
    await doc.press(t("ref.wiz.keep_findings"), has_button(t("ref.wiz.days", n=30)))
    await doc.press(t("ref.wiz.days", n=30), has_button(t("ref.wiz.issue")))
    monkeypatch.setattr(slip_module, "find_cjk_font", lambda: None)
    await doc.press(t("ref.wiz.issue"), is_text(t("ref.slip.no_font")))
    [draft] = await _referrals(clinic)
    assert draft.status == "draft" and draft.step == "review"
    monkeypatch.undo()
    await doc.say("/referral", has_button(t("ref.wiz.issue")))  # the open wizard's card
    since_p = await clinic.seq(p.uid)
    await doc.press(t("ref.wiz.issue"), starts(t("ref.wiz.issued", number=number, name=name,
                    code="X", valid_until="")[:10]))  # fmt: skip
    sent = await clinic.client.wait_for(p.uid, PATIENT_BOT, _doc_msg, since=since_p)
    assert "市第一人民医院" in sent["caption"]
    pdf = await clinic.client.download(sent["document"]["file_id"])
    assert (await _verify(clinic, pdf)).status == "valid"
