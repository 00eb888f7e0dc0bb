"""Follow-up plans, check-ins, readings and care alerts (flows/followup.py, flows/alerts.py),
on SQLite and PostgreSQL with the real vault, outbox and audit chain."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flows import alerts, followup
from flows import consultation as cases
from flows.questionnaire import DataFileError
from storage.models import (
    AuditRecord,
    CareAlert,
    Caregiver,
    CheckIn,
    Consultation,
    Doctor,
    FollowUpPlan,
    Intake,
    OutboxMessage,
    Patient,
    Reading,
    ScheduledEvent,
)
from storage.uow import Database, UnitOfWork
from tests.cli_runner import run_cli

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ANSWERS = {"subject": "self", "category": "cough_cold", "complaint_text": "cough"}


async def _patient(uow: UnitOfWork, tg: int, tz: str = "Europe/Berlin") -> Patient:
    patient = await uow.patients.add(
        Patient(
            tg_user_id=tg, locale="en", onboarding_state="done", consent_version="1", timezone=tz
        )
    )
    await uow.patients.set_field(patient, "name", "Mira Example")
    await uow.patients.set_field(patient, "birth_year", "1960")
    return patient


async def _doctor(uow: UnitOfWork, tg: int) -> Doctor:
    return await uow.doctors.add(
        Doctor(
            tg_user_id=tg,
            locale="en",
            status="verified",
            verified_until=T0 + timedelta(days=400),
            departments="general",
        )
    )


async def _case(uow: UnitOfWork, patient: Patient, doctor: Doctor) -> Consultation:
    intake = await uow.intakes.add(
        Intake(
            patient_id=patient.id,
            state="triaged",
            questionnaire_version="2",
            disposition="consultation",
            department="general",
        ),
        ANSWERS,
    )
    case = await cases.request_for_intake(uow, patient, intake, ANSWERS, now=T0)
    assert case is not None
    await cases.accept(uow, doctor, case.id, now=T0, jurisdiction="generic")
    return case


async def _sent(uow: UnitOfWork, bot: str, chat_id: int) -> list[tuple[dict, int]]:
    rows = await uow.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.bot == bot, OutboxMessage.chat_id == chat_id)
        .order_by(OutboxMessage.id)
    )
    out = []
    for row in rows:
        assert row.payload_enc is not None
        params = await uow.outbox.params(row)
        out.append((params, row.priority))
    return out


async def _actions(uow: UnitOfWork) -> list[tuple[str, str]]:
    rows = await uow.session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
    return [(r.actor, r.action) for r in rows]


# --- care alerts --------------------------------------------------------------------------------


async def test_alert_goes_to_the_doctor_with_tag_and_button_and_is_acknowledged(
    db: Database,
) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor, other = await _doctor(uow, 100), await _doctor(uow, 101)
        case = await _case(uow, patient, doctor)
        alert = await alerts.raise_alert(
            uow,
            patient_id=patient.id,
            doctor_id=doctor.id,
            kind="reading",
            ref_id="r1",
            level="alert",
            msgid="care.kind.reading",
            params={},
            now=T0,
        )
        danger = await alerts.raise_alert(
            uow,
            patient_id=patient.id,
            doctor_id=doctor.id,
            kind="reading",
            ref_id="r2",
            level="danger",
            msgid="care.kind.reading",
            params={},
            now=T0 + timedelta(minutes=1),
        )
        sent = await _sent(uow, "doctor", 100)
        assert len(sent) == 2
        (first, prio1), (second, prio2) = sent
        assert first["text"].startswith(f"<b>#{case.number} · Mira · ")
        assert "Example" not in first["text"]  # first name only
        assert prio1 > prio2 == alerts.PRIORITY_URGENT
        button = first["reply_markup"]["inline_keyboard"][0][0]
        assert button["callback_data"] == f"ca:ack:{alert.id}"
        assert "URGENT" in second["text"]
        # danger first in the open list
        assert [a.id for a in await alerts.open_for(uow, doctor.id)] == [danger.id, alert.id]
        assert await alerts.open_for(uow, other.id) == []
        with pytest.raises(alerts.NotAllowed) as no:
            await alerts.ack(uow, other, alert.id, T0)
        assert no.value.reason == "not_yours"
        await alerts.ack(uow, doctor, alert.id, T0 + timedelta(hours=1))
        with pytest.raises(alerts.NotAllowed) as no:
            await alerts.ack(uow, doctor, alert.id, T0 + timedelta(hours=1))
        assert no.value.reason == "acked"
        assert [a.id for a in await alerts.open_for(uow, doctor.id)] == [danger.id]
        log = await _actions(uow)
        assert ("system", "care.alert") in log
        assert (f"doctor:{doctor.id}", "care.alert.ack") in log
        assert (f"doctor:{other.id}", "care.alert.refused") in log
        await uow.commit()


async def test_under_care_by_case_or_plan(db: Database) -> None:
    async with db.uow() as uow:
        patient, stranger = await _patient(uow, 1), await _patient(uow, 2)
        doctor, planner, nobody = (
            await _doctor(uow, 100),
            await _doctor(uow, 101),
            await _doctor(uow, 102),
        )
        await _case(uow, patient, doctor)
        uow.session.add(
            FollowUpPlan(patient_id=stranger.id, doctor_id=planner.id, template="general")
        )
        await uow.session.flush()
        assert await alerts.under_care(uow, doctor.id, patient.id)
        assert not await alerts.under_care(uow, doctor.id, stranger.id)
        assert await alerts.under_care(uow, planner.id, stranger.id)
        assert not await alerts.under_care(uow, nobody.id, patient.id)
        await uow.commit()


async def test_ack_hook_runs_for_its_kind(db: Database) -> None:
    seen: list[str] = []

    @alerts.on_ack("test_kind")
    async def _hook(uow: UnitOfWork, alert: CareAlert, doctor: Doctor, now: datetime) -> None:
        seen.append(alert.ref_id)

    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor = await _doctor(uow, 100)
        alert = await alerts.raise_alert(
            uow, patient_id=patient.id, doctor_id=doctor.id, kind="test_kind", ref_id="x9",
            level="alert", msgid="care.kind.other", params={}, now=T0,
        )  # fmt: skip
        await alerts.ack(uow, doctor, alert.id, T0)
        assert seen == ["x9"]
        # without a case the tag is the first name and age band
        sent = await _sent(uow, "doctor", 100)
        assert sent[0][0]["text"].startswith("<b>Mira · ")
        await uow.commit()


# --- templates, parsing, thresholds ------------------------------------------------------------


GOOD = """
version = "1"
[templates.t]
questions = ["bp", "sym"]
[questions.bp]
type = "bp"
reading = "bp"
min = [60, 30]
max = [260, 160]
alert_high = [180, 110]
[questions.sym]
type = "checklist"
options = ["a", "b"]
danger_with = ["bp"]
"""


def test_the_shipped_templates_load() -> None:
    t = followup.load()
    assert set(t.templates) == {"hypertension", "diabetes", "postop", "general"}
    assert [q.id for q in t.get("hypertension").questions] == ["bp", "pulse", "bp_symptoms"]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda s: s.replace('version = "1"', ""), "missing 'version'"),
        (lambda s: s.replace('type = "bp"', 'type = "slider"'), "type must be one of"),
        (lambda s: s.replace('["bp", "sym"]', '["bp", "nope"]'), "unknown option"),
        (lambda s: s.replace("max = [260, 160]", "max = [50, 160]"), "min must be below max"),
        (lambda s: s.replace("alert_high = [180, 110]", "alert_high = [300, 110]"), "outside"),
        (lambda s: s.replace("alert_high = [180, 110]", "alert_high = 180"), "[systolic"),
        (lambda s: s.replace('reading = "bp"', 'reading = "bp"\ncolour = "red"'), "unknown key"),
        (lambda s: s.replace('["bp", "sym"]', '["sym", "bp"]'), "not asked before it"),
        (lambda s: s.replace('options = ["a", "b"]', 'options = ["a"]'), "2 to 8 options"),
        (lambda s: s + '[questions.orphan]\ntype = "text"\n', "no template asks"),
        (lambda s: s.replace("[templates.t]", "[templates.t]\nextra = 1"), "exactly 'questions'"),
        (lambda s: s + "]]", "not valid TOML"),
    ],
)
def test_bad_templates_are_refused(edit: object, problem: str) -> None:
    followup.parse(GOOD, check_catalogs=False)  # the base is fine
    with pytest.raises(DataFileError) as bad:
        followup.parse(edit(GOOD), check_catalogs=False)  # type: ignore[operator]
    assert problem in str(bad.value)


def test_catalog_ids_are_checked() -> None:
    with pytest.raises(DataFileError, match="missing from the en catalog"):
        followup.parse(GOOD)  # followup.template.t is in no catalog


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('version = "1"\n[templates.t\n', "not valid TOML"),
        (None, "type must be one of"),
        ("", "cannot read it"),
    ],
)
def test_broken_templates_stop_start_up_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, problem: str
) -> None:
    """Like a broken intake questionnaire (tests/test_cli.py): ``python bot.py run`` stops
    before anything starts, with one line naming the file and the problem, exit 2."""
    from bot import app

    path = tmp_path / "followups.toml"
    if content is None:
        content = followup.FILE.read_text(encoding="utf-8").replace(
            'type = "bp"', 'type = "slider"', 1
        )
    if content:
        path.write_text(content, encoding="utf-8")  # "" leaves the file absent
    monkeypatch.setattr(followup, "FILE", path)
    started: list[bool] = []

    async def run_until_signal(self: object) -> None:  # never reached when it stops
        started.append(True)

    monkeypatch.setattr(app.Careline, "run_until_signal", run_until_signal)
    try:
        out = run_cli(
            ["run"],
            tmp_path / "data",
            CARELINE_PATIENT_BOT_TOKEN="100001:test-patient-token-0001",
            CARELINE_DOCTOR_BOT_TOKEN="100002:test-doctor-token-0002",
        )
    finally:
        followup.load.cache_clear()
    err = out.stderr
    lines = [ln for ln in err.splitlines() if ln.strip() and "BACK IT UP" not in ln]
    assert out.returncode == 2 and not started, err
    assert lines[-1].startswith("careline: data file error: followups.toml: "), err
    assert problem in lines[-1] and "Traceback" not in err


def _q(template: str, qid: str) -> followup.Question:
    return next(q for q in followup.load().get(template).questions if q.id == qid)


@pytest.mark.parametrize(
    ("template", "qid", "value", "flag"),
    [
        ("hypertension", "bp", (179, 109), "none"),
        ("hypertension", "bp", (180, 90), "high"),
        ("hypertension", "bp", (150, 110), "high"),
        ("hypertension", "pulse", 40, "none"),
        ("hypertension", "pulse", 39, "low"),
        ("hypertension", "pulse", 130, "none"),
        ("hypertension", "pulse", 131, "high"),
        ("diabetes", "glucose", 16.6, "none"),
        ("diabetes", "glucose", 16.7, "high"),
        ("diabetes", "glucose", 4.0, "none"),
        ("diabetes", "glucose", 3.9, "low"),
        ("diabetes", "glucose", 3.1, "low"),
        ("diabetes", "glucose", 3.0, "danger"),
        ("postop", "temperature", 37.9, "none"),
        ("postop", "temperature", 38.0, "high"),
        ("postop", "temperature", 39.9, "high"),
        ("postop", "temperature", 40.0, "danger"),
        ("postop", "pain", 7, "none"),
        ("postop", "pain", 8, "high"),
    ],
)
def test_thresholds_both_sides(template: str, qid: str, value: object, flag: str) -> None:
    assert followup.flag_of(_q(template, qid), value) == flag


@pytest.mark.parametrize(
    ("template", "qid", "raw", "value"),
    [
        ("hypertension", "bp", "150/95", (150, 95)),
        ("hypertension", "bp", " 150 / 95 mmHg", (150, 95)),
        ("hypertension", "bp", "１５０／９５", (150, 95)),
        ("hypertension", "bp", "150 на 95", (150, 95)),
        ("diabetes", "glucose", "7,8", 7.8),
        ("diabetes", "glucose", "7.8 mmol/L", 7.8),
        ("postop", "temperature", "37,5°C", 37.5),
        ("postop", "pain", "8", 8.0),
    ],
)
def test_answers_parse(template: str, qid: str, raw: str, value: object) -> None:
    q = _q(template, qid)
    got = followup.parse_bp(q, raw) if q.type == "bp" else followup.parse_number(q, raw)
    assert got == value


@pytest.mark.parametrize(
    ("template", "qid", "raw", "msgid"),
    [
        ("hypertension", "bp", "400/20", "followup.bad.bp_range"),
        ("hypertension", "bp", "90/150", "followup.bad.bp_range"),
        ("hypertension", "bp", "high", "followup.bad.bp_format"),
        ("hypertension", "bp", "150", "followup.bad.bp_format"),
        ("diabetes", "glucose", "90", "followup.bad.range"),
        ("diabetes", "glucose", "seven", "followup.bad.number"),
        ("postop", "temperature", "25", "followup.bad.range"),
        ("postop", "pain", "11", "followup.bad.range"),
        ("postop", "pain", "7.5", "followup.bad.whole"),
        ("hypertension", "pulse", "7 8", "followup.bad.whole"),
    ],
)
def test_implausible_values_are_refused(template: str, qid: str, raw: str, msgid: str) -> None:
    q = _q(template, qid)
    with pytest.raises(followup.BadAnswer) as bad:
        followup.parse_bp(q, raw) if q.type == "bp" else followup.parse_number(q, raw)
    assert bad.value.msgid == msgid


def test_machine_table() -> None:
    S = followup.State
    assert followup.next_state(S.Q1, "answer", more=True) is S.Q2
    assert followup.next_state(S.Q2, "answer", more=False) is S.DONE
    assert followup.next_state(S.Q1, "red_flag", more=True) is S.RED_FLAG
    assert followup.next_state(S.Q3, "miss", more=True) is S.MISSED
    for final in (S.DONE, S.RED_FLAG, S.MISSED):
        for trigger in followup.TRIGGERS:
            with pytest.raises(ValueError, match="not allowed"):
                followup.next_state(final, trigger, more=True)
    with pytest.raises(ValueError, match="not allowed"):
        followup.next_state(S.Q8, "answer", more=True)  # no ninth question
    with pytest.raises(ValueError, match="not allowed"):
        followup.next_state(S.Q1, "jump", more=True)


# --- plans, check-ins and who is told (database) ------------------------------------------------


async def _enrol(
    uow: UnitOfWork, patient: Patient, doctor: Doctor, template: str, freq: str = "daily"
) -> FollowUpPlan:
    case = await _case(uow, patient, doctor)
    plan = await followup.start_draft(uow, doctor, case, T0)
    assert followup.draft_step(plan) == "template"
    with pytest.raises(followup.NotAllowed):
        followup.set_time(plan, "08:00")  # out of order
    followup.set_template(plan, template)
    followup.set_frequency(plan, freq)
    assert followup.set_time(plan, "8 pm") == "20:00"
    review = followup.review_date("30", followup.today_for(patient, T0))
    done = await followup.activate(uow, doctor, plan, review, T0)
    assert done.first is not None
    return plan


async def _events(uow: UnitOfWork, kind: str) -> list[ScheduledEvent]:
    rows = await uow.session.scalars(
        select(ScheduledEvent)
        .where(ScheduledEvent.kind == kind, ScheduledEvent.status == "pending")
        .order_by(ScheduledEvent.due_at)
    )
    return list(rows)


async def _checkins(uow: UnitOfWork, plan_id: str) -> list[CheckIn]:
    rows = await uow.session.scalars(
        select(CheckIn).where(CheckIn.plan_id == plan_id).order_by(CheckIn.due_at)
    )
    return list(rows)


async def _fire(uow: UnitOfWork, now: datetime) -> followup.Prompt | None:
    [event] = await _events(uow, followup.KIND)
    event.status = "done"
    return await followup.fire_checkin(uow, event, now)


def test_review_date_limits() -> None:
    today = date(2026, 11, 2)
    assert followup.review_date("90", today) == date(2027, 1, 30)  # 90 days, today included
    assert followup.review_date("2026-12-31", today) == date(2026, 12, 31)
    for bad in ("92", "2027-06-01", "ongoing", "2026-11-01"):
        with pytest.raises((followup.BadAnswer, ValueError)):
            followup.review_date(bad, today)


async def test_enrol_fire_answer_alert_and_caregiver_without_values(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor = await _doctor(uow, 100)
        uow.session.add_all(
            [
                Caregiver(patient_id=patient.id, tg_user_id=501, scope="checkins", status="active",
                          expires_at=T0, accepted_at=T0),
                Caregiver(patient_id=patient.id, tg_user_id=502, scope="missed", status="active",
                          expires_at=T0, accepted_at=T0),
            ]
        )  # fmt: skip
        plan = await _enrol(uow, patient, doctor, "hypertension")
        [event] = await _events(uow, followup.KIND)
        # 20:00 in Berlin (UTC+1 in November) on the day of T0, plus jitter
        assert event.key == f"checkin:{plan.id}:2026-11-02 20:00"
        due = followup.aware(event.due_at)
        assert (
            datetime(2026, 11, 2, 19, 0, tzinfo=UTC)
            <= due
            < datetime(2026, 11, 2, 19, 1, tzinfo=UTC)
        )
        prompt = await _fire(uow, due)
        assert prompt is not None and prompt.mode == "on_time" and prompt.question is not None
        assert prompt.question.id == "bp"
        # the next occurrence is scheduled in the same transaction, and this first
        # unanswered check-in's recall (3 days) and doctor alert (6 days)
        [nxt] = await _events(uow, followup.KIND)
        assert nxt.key == f"checkin:{plan.id}:2026-11-03 20:00"
        recall, final = await _events(uow, followup.RECALL)
        assert followup.aware(recall.due_at) == due + timedelta(days=3)
        assert followup.aware(final.due_at) == due + timedelta(days=6)
        checkin = prompt.checkin
        assert await followup.open_checkin(uow, patient, due) is checkin
        with pytest.raises(followup.BadAnswer):
            await followup.answer_text(uow, patient, checkin, "400/20", due)
        assert checkin.state == "q1"  # the question stays
        out = await followup.answer_text(uow, patient, checkin, "185/115", due)
        assert out.question is not None and out.question.id == "pulse"
        out = await followup.answer_text(uow, patient, checkin, "72", due)
        with pytest.raises(followup.BadAnswer):
            await followup.answer_text(uow, patient, checkin, "typed", due)  # buttons only
        with pytest.raises(followup.Stale):
            await followup.press(uow, patient, checkin.id, 0, "opt", "x", due)  # old question
        with pytest.raises(followup.BadAnswer):
            await followup.press(uow, patient, checkin.id, 2, "done", "", due)  # nothing ticked
        out = await followup.press(uow, patient, checkin.id, 2, "none", "", due)
        assert out.question is None and out.level == "alert"
        assert checkin.status == "done" and checkin.state == "done"
        await followup.notify(uow, out, patient, due, "112")
        readings = list(await uow.session.scalars(select(Reading).order_by(Reading.kind)))
        assert [(r.kind, r.flag) for r in readings] == [("bp", "high"), ("pulse", "none")]
        assert all(b"185" not in r.value_enc for r in readings)
        assert b"185" not in (checkin.answers_enc or b"")
        [alert] = await alerts.open_for(uow, doctor.id)
        assert alert.kind == "reading" and alert.level == "alert"
        [(to_doctor, _)] = await _sent(uow, "doctor", 100)
        assert "185/115 mmHg" in to_doctor["text"]
        # the "checkins" caregiver is told, without the value; the "missed" one is not
        [(to_cg, _)] = await _sent(uow, "patient", 501)
        assert "Mira" in to_cg["text"] and "185" not in to_cg["text"]
        assert await _sent(uow, "patient", 502) == []
        # a pressed button of the finished check-in is stale
        with pytest.raises(followup.Stale):
            await followup.press(uow, patient, checkin.id, 2, "none", "", due)
        await uow.commit()


async def test_danger_stops_the_questions_caregiver_with_details_gets_values(
    db: Database,
) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor = await _doctor(uow, 100)
        uow.session.add(
            Caregiver(patient_id=patient.id, tg_user_id=501, scope="checkins", details=True,
                      status="active", expires_at=T0, accepted_at=T0)
        )  # fmt: skip
        await _enrol(uow, patient, doctor, "diabetes")
        [event] = await _events(uow, followup.KIND)
        prompt = await _fire(uow, followup.aware(event.due_at))
        assert prompt is not None
        checkin = prompt.checkin
        now = followup.aware(event.due_at)
        out = await followup.press(uow, patient, checkin.id, 0, "opt", "fasting", now)
        out = await followup.answer_text(uow, patient, checkin, "2,9", now)
        assert out.level == "danger" and checkin.state == "red_flag" and out.question is None
        await followup.notify(uow, out, patient, now, "112")
        [(to_doctor, prio)] = await _sent(uow, "doctor", 100)
        assert prio == alerts.PRIORITY_URGENT and "URGENT" in to_doctor["text"]
        [(to_cg, cg_prio)] = await _sent(uow, "patient", 501)
        assert cg_prio == 0 and "112" in to_cg["text"]
        assert (f"patient:{patient.id}", "redflag.raised") in await _actions(uow)
        await uow.commit()


async def test_bp_with_a_symptom_is_danger_symptom_alone_is_alert(db: Database) -> None:
    tpl = followup.load().get("hypertension")
    high = {"bp": [185, 115], "pulse": 80}
    ok = {"bp": [130, 80], "pulse": 80}
    assert followup._evaluate(tpl, {**high, "bp_symptoms": ["severe_headache"]})[0] == "danger"
    assert followup._evaluate(tpl, {**ok, "bp_symptoms": ["severe_headache"]})[0] == "alert"
    assert followup._evaluate(tpl, {**ok, "bp_symptoms": ["chest_pain"]})[0] == "danger"
    assert followup._evaluate(tpl, {**high, "bp_symptoms": []})[0] == "alert"
    assert followup._evaluate(tpl, {**ok, "bp_symptoms": []})[0] == "none"
    post = followup.load().get("postop")
    assert followup._evaluate(post, {"wound": "leaking", "pain": 2, "temperature": 36.6})[0] == (
        "alert"
    )
    assert followup._evaluate(post, {"wound": "red", "pain": 2, "temperature": 36.6})[0] == "none"


async def test_quiet_hours_catch_up_and_recall(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        patient.quiet_start, patient.quiet_end = "19:30", "07:00"
        doctor = await _doctor(uow, 100)
        plan = await _enrol(uow, patient, doctor, "general", freq="weekly")
        [event] = await _events(uow, followup.KIND)
        # 20:00 local falls in quiet hours: the prompt waits until 07:00 local (06:00 UTC)
        due = followup.aware(event.due_at)
        assert (
            datetime(2026, 11, 3, 6, 0, tzinfo=UTC)
            <= due
            < datetime(2026, 11, 3, 6, 1, tzinfo=UTC)
        )
        # after 12 h 10 min of downtime: recorded as missed, the patient told once, no question
        prompt = await _fire(uow, due + timedelta(hours=12, minutes=10))
        assert prompt is not None and prompt.mode == "missed" and prompt.question is None
        assert prompt.checkin.status == "missed"
        # the next weekly one, a little late: asked with late wording
        [event] = await _events(uow, followup.KIND)
        due = followup.aware(event.due_at)
        assert due - datetime(2026, 11, 3, 6, 0, tzinfo=UTC) >= timedelta(days=6)
        prompt = await _fire(uow, due + timedelta(hours=2))
        assert prompt is not None and prompt.mode == "late" and prompt.question is not None
        checkin = prompt.checkin
        # the downtime one was never asked: closed, it starts no run of missed check-ins;
        # this one starts the run: a recall 3 days later, the doctor 3 days after that
        [closed] = [c for c in await _checkins(uow, plan.id) if c.id != checkin.id]
        assert (closed.status, closed.state) == ("missed", "closed")
        assert (await followup.streak_anchor(uow, plan.id)) is checkin
        recall, final = await _events(uow, followup.RECALL)
        assert (recall.key, final.key) == (f"recall:{checkin.id}:1", f"recall:{checkin.id}:2")
        assert followup.aware(recall.due_at) == due + timedelta(days=3)
        assert followup.aware(final.due_at) == due + timedelta(days=6)
        recall.status = "done"
        now = followup.aware(recall.due_at)
        # quiet hours changed to 06:00-09:00: the recall (07:00 local) waits until 09:00
        patient.quiet_start, patient.quiet_end = "06:00", "09:00"
        assert await followup.fire_recall(uow, recall, now) is None
        waited = next(
            e for e in await _events(uow, followup.RECALL) if (e.key or "").endswith(":w")
        )
        assert followup.aware(waited.due_at) == datetime(2026, 11, 13, 8, 0, tzinfo=UTC)
        waited.status = "done"
        now = followup.aware(waited.due_at)
        again = await followup.fire_recall(uow, waited, now)
        assert again is not None and again.mode == "recall" and checkin.recalled
        assert again.checkin is checkin and again.question is not None
        assert await followup.fire_recall(uow, waited, now) is None  # once
        final.status = "done"
        assert await followup.fire_recall(uow, final, followup.aware(final.due_at)) is None
        assert checkin.status == "missed" and checkin.state == "missed"
        [alert] = await alerts.open_for(uow, doctor.id)
        assert alert.kind == "checkin_missed" and alert.ref_id == checkin.id
        await followup.end(uow, plan, now)
        assert await _events(uow, followup.KIND) == []
        await uow.commit()


async def test_followup_refused_for_another_doctors_case(db: Database) -> None:
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor, other = await _doctor(uow, 100), await _doctor(uow, 101)
        case = await _case(uow, patient, doctor)
        with pytest.raises(followup.NotAllowed):
            await followup.start_draft(uow, other, case, T0)
        assert (f"doctor:{other.id}", "followup.refused") in await _actions(uow)
        plan = await followup.start_draft(uow, doctor, case, T0)
        with pytest.raises(followup.NotAllowed):
            await followup.draft_of(uow, other, plan.id)
        await uow.commit()


# --- runs of missed check-ins, on every schedule, through the real sweeper (fake clock) ---------

RECALL_TEXT = "no check-in answers from you"
ALERT_TEXT = "without an answer"
STEP = timedelta(minutes=30)


class _Sim:
    """The real sweeper with the check-in handlers, driven in 30-minute steps (those at which
    nothing is due are skipped); every message the outbox gets is kept with the step it
    appeared in."""

    def __init__(self, db: Database) -> None:
        from handlers.patient import checkins as checkin_handlers
        from scheduler.sweeper import Sweeper

        self.db = db
        self.sweeper = Sweeper(db, checkin_handlers.scheduled())
        self.now = T0
        self.seen = 0
        self.sent: list[tuple[datetime, str, int, str]] = []  # (when, bot, chat, text)

    async def run_until(
        self, until: datetime, *, answer: frozenset[int] | set[int] = frozenset()
    ) -> None:
        """Step the clock to ``until``; the check-ins whose 0-based number is in ``answer``
        are answered (general: "better", note skipped) as soon as they are asked."""
        while self.now < until:
            self.now = await self._next_step(until)
            while await self.sweeper.sweep_once(self.now):
                pass
            async with self.db.uow() as uow:
                rows = await uow.session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.id > self.seen)
                    .order_by(OutboxMessage.id)
                )
                for row in rows:
                    self.seen = row.id
                    params = await uow.outbox.params(row)
                    self.sent.append((self.now, row.bot, row.chat_id, params.get("text", "")))
                patient = await uow.patients.by_tg_user(1)
                assert patient is not None
                open_ = await followup.open_checkin(uow, patient, self.now)
                if open_ is not None and open_.state == "q1":
                    number = len(await _checkins(uow, open_.plan_id)) - 1
                    if number in answer:
                        await followup.press(uow, patient, open_.id, 0, "opt", "better", self.now)
                        await followup.press(uow, patient, open_.id, 1, "skip", "", self.now)
                await uow.commit()

    async def _next_step(self, until: datetime) -> datetime:
        """The next 30-minute step at which an event is due, or the last step (the first at or
        after ``until``). The steps skipped would each run a sweep with nothing due: no event,
        no message, no check-in asked (so none to answer) - the same run, in fewer steps.
        (Events are leased and finished within a step, so no lease runs out in between.)"""
        last = self.now + STEP * -(-(until - self.now) // STEP)
        async with self.db.uow() as uow:
            due = await uow.session.scalar(
                select(func.min(ScheduledEvent.due_at)).where(ScheduledEvent.status == "pending")
            )
        if due is None:
            return last
        steps = max(1, -(-(followup.aware(due) - self.now) // STEP))
        return min(self.now + STEP * steps, last)

    def texts_at(self, bot: str, chat: int, when: datetime) -> list[str]:
        return [text for w, b, c, text in self.sent if (b, c, w) == (bot, chat, when)]

    def texts(self, bot: str, chat: int, token: str) -> list[datetime]:
        return [when for when, b, c, text in self.sent if b == bot and c == chat and token in text]


@pytest.mark.parametrize(
    ("freq", "standalone"),
    [("daily", False), ("twice_weekly", True), ("weekly", True)],
)
async def test_a_run_of_missed_checkins_gets_one_recall_then_one_doctor_alert(
    db: Database, freq: str, standalone: bool
) -> None:
    """The first check-in is answered, then nothing for 17 days: on every schedule ONE recall
    3 days after the first unanswered one (on a daily plan the check-in prompt of that day
    carries it, so the question does not come twice; twice a week (Mon/Thu) and weekly it
    comes on its own), and 3 days later ONE alert to the doctor; nothing repeats."""
    async with db.uow() as uow:
        patient = await _patient(uow, 1, tz="UTC")
        doctor = await _doctor(uow, 100)
        plan = await _enrol(uow, patient, doctor, "general", freq=freq)
        await uow.commit()
    sim = _Sim(db)
    await sim.run_until(T0 + timedelta(days=17), answer={0})
    async with db.uow() as uow:
        rows = await _checkins(uow, plan.id)
        assert rows[0].status == "done" and len(rows) >= 3
        anchor = rows[1]
        start = followup.aware(anchor.due_at)
        assert anchor.status == "missed" and anchor.recalled
        assert all(r.status == "missed" for r in rows[1:-1])  # each missed when the next came
        [alert] = list(await uow.session.scalars(select(CareAlert)))
        assert (alert.kind, alert.ref_id) == ("checkin_missed", anchor.id)
        audit = await _actions(uow)
        assert audit.count(("system", "followup.checkin.recall")) == 1
        when_missed = [followup.aware(r.due_at) for r in rows if r.status == "missed"]
        asked = len(rows)
    [recall] = sim.texts("patient", 1, RECALL_TEXT)
    assert start + timedelta(days=3) - followup.FOLD <= recall <= start + timedelta(days=3) + STEP
    [to_doctor] = sim.texts("doctor", 100, ALERT_TEXT)
    # the count: the run's check-ins asked over an hour before the alert (not one just asked)
    missed = sum(1 for due in when_missed if due <= to_doctor - followup.FOLD)
    assert f"({missed} without an answer)" in sim.texts_at("doctor", 100, to_doctor)[0]
    assert start + timedelta(days=6) <= to_doctor <= start + timedelta(days=6) + STEP
    # the patient got one question per check-in asked, plus the recall only when on its own
    questions = sim.texts("patient", 1, "How are you compared with last time?")
    assert len(questions) == asked + (1 if standalone else 0)
    assert len(set(questions)) == len(questions)  # never two in the same half hour


async def test_an_answer_ends_the_run_and_a_new_run_gets_its_own_recall(db: Database) -> None:
    """Daily: answered on day 0, silent days 1-3 (the recall rides on day 4's prompt), day 4
    answered -> no doctor alert for that run; silent again from day 5 -> a second recall on
    day 8, still no alert (day 11 would be the second run's)."""
    async with db.uow() as uow:
        patient = await _patient(uow, 1, tz="UTC")
        doctor = await _doctor(uow, 100)
        plan = await _enrol(uow, patient, doctor, "general", freq="daily")
        await uow.commit()
    sim = _Sim(db)
    await sim.run_until(T0 + timedelta(days=10), answer={0, 4})
    recalls = sim.texts("patient", 1, RECALL_TEXT)
    async with db.uow() as uow:
        rows = await _checkins(uow, plan.id)
        assert [r.status for r in rows[:6]] == ["done", "missed", "missed", "missed", "done",
                                                "missed"]  # fmt: skip
        first, second = followup.aware(rows[1].due_at), followup.aware(rows[5].due_at)
        assert rows[1].recalled and rows[5].recalled and not rows[4].recalled
        assert list(await uow.session.scalars(select(CareAlert))) == []
        assert (await followup.streak_anchor(uow, plan.id)) is not None
    assert len(recalls) == 2
    assert (
        first + timedelta(days=3) - followup.FOLD
        <= recalls[0]
        <= first + timedelta(days=3, minutes=30)
    )
    assert (
        second + timedelta(days=3) - followup.FOLD
        <= recalls[1]
        <= second + timedelta(days=3, minutes=30)
    )
    assert sim.texts("doctor", 100, ALERT_TEXT) == []


async def test_a_doctor_lists_and_ends_a_plan(db: Database) -> None:
    """/followups: the doctor's running plans; ending one cancels its check-in events and
    the run's recall, closes the check-in waiting for answers (its buttons say the plan
    ended), audits; another doctor is refused (audited); a second end is refused."""
    async with db.uow() as uow:
        patient = await _patient(uow, 1)
        doctor, other = await _doctor(uow, 100), await _doctor(uow, 101)
        plan = await _enrol(uow, patient, doctor, "general", freq="twice_weekly")
        assert await followup.doctor_plans(uow, doctor.id, patient.id) == [plan]
        assert await followup.doctor_plans(uow, other.id, patient.id) == []
        assert followup.frequency_of(plan) == "twice_weekly"
        [event] = await _events(uow, followup.KIND)
        prompt = await _fire(uow, followup.aware(event.due_at))
        assert prompt is not None and prompt.checkin.status == "pending"
        assert len(await _events(uow, followup.KIND)) == 1
        assert len(await _events(uow, followup.RECALL)) == 2
        now = followup.aware(event.due_at) + timedelta(hours=1)
        with pytest.raises(followup.NotAllowed) as refused:
            await followup.own_plan(uow, other, plan.id)
        assert refused.value.reason == "not_yours"
        with pytest.raises(followup.NotAllowed) as refused:
            await followup.end_by_doctor(uow, other, plan.id, now)
        assert refused.value.reason == "not_yours"
        assert (await _actions(uow)).count((f"doctor:{other.id}", "followup.end.refused")) == 2
        assert plan.status == followup.ACTIVE
        ended = await followup.end_by_doctor(uow, doctor, plan.id, now)
        assert ended is plan and plan.status == "ended" and plan.ended_at == now
        assert await _events(uow, followup.KIND) == []
        assert await _events(uow, followup.RECALL) == []
        checkin = prompt.checkin
        assert (checkin.status, checkin.state) == ("missed", "closed")
        assert await followup.open_checkin(uow, patient, now) is None
        with pytest.raises(followup.Stale) as stale:
            await followup.press(uow, patient, checkin.id, 0, "opt", "better", now)
        assert stale.value.reason == "ended"
        assert (f"doctor:{doctor.id}", "followup.end") in await _actions(uow)
        with pytest.raises(followup.NotAllowed) as again:
            await followup.end_by_doctor(uow, doctor, plan.id, now)
        assert again.value.reason == "ended"
        assert await followup.doctor_plans(uow, doctor.id, patient.id) == []
        await uow.commit()
