"""Symptom intake end to end: real bots over HTTP, patients pressing buttons and typing.

Full intakes in each language to each disposition, a red flag typed mid-intake, a restart
mid-intake, a proxy intake for a child, stale buttons, back and cancel, bad input, /history
with its FHIR file, and no plaintext in the database.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from sqlalchemy import select

from bot.app import Careline
from flows.intake import State, age_band_for
from flows.questionnaire import Who, load
from locales import Translator
from storage.models import AuditRecord, Intake
from storage.models import Patient as PatientRow
from storage.uow import Database
from tests.e2e.conftest import PATIENT_BOT, Clinic
from tests.e2e.test_onboarding import onboard

Q = load()


def has_text(text: str) -> Any:
    """wait_for predicate: a bot message with exactly this (plain) text."""
    return lambda m: (m.get("text") or m.get("caption") or "") == text


def has_button(label: str) -> Any:
    """wait_for predicate: a bot message with an inline button labelled ``label``."""

    def check(m: dict[str, Any]) -> bool:
        rows = (m.get("reply_markup") or {}).get("inline_keyboard") or []
        return any(b.get("text") == label for row in rows for b in row)

    return check


class Patient:
    """One simulated patient doing an intake, in one language (onboarded with ``sex`` and the
    year of birth 1968)."""

    def __init__(self, clinic: Clinic, uid: int, locale: str, sex: str = "female") -> None:
        self.clinic, self.uid, self.tr = clinic, uid, Translator(locale)
        self.who = Who(sex, age_band_for("1968", Q.age_bands))

    async def press(self, label: str, then: Any) -> dict[str, Any]:
        """Press a button and wait for the bot message matching ``then``."""
        since = await self.clinic.seq(self.uid)
        await self.clinic.client.click_button(self.uid, PATIENT_BOT, label)
        return await self.clinic.client.wait_for(self.uid, PATIENT_BOT, then, since=since)

    async def say(self, text: str, then: Any) -> dict[str, Any]:
        """Type a message and wait for the bot message matching ``then``."""
        since = await self.clinic.seq(self.uid)
        await self.clinic.client.send(self.uid, PATIENT_BOT, text)
        return await self.clinic.client.wait_for(self.uid, PATIENT_BOT, then, since=since)

    def t(self, msgid: str, **params: Any) -> str:
        return self.tr.plain(msgid, **params)

    async def start(self) -> dict[str, Any]:
        return await self.say("/intake", has_button(self.t("intake.subject.self")))

    async def to_red_flags(self, category: str, duration: str, severity: int) -> dict[str, Any]:
        """Me -> complaint -> onset -> severity; returns the red-flag checklist message."""
        await self.start()
        await self.press(self.t("intake.subject.self"), has_button(self.t("intake.back")))
        await self.press(
            self.t(f"intake.category.{category}"),
            has_button(self.t(f"intake.duration.{duration}")),
        )
        await self.press(self.t(f"intake.duration.{duration}"), has_button("10"))
        return await self.press(str(severity), has_button(self.t("intake.red_flags.none")))

    async def after_red_flags(
        self,
        category: str,
        followups: dict[str, str] | None = None,
        photo: bool = False,
        who: Who | None = None,
    ) -> dict[str, Any]:
        """None of these -> follow-up answers -> no symptoms -> no history -> summary (the
        questions asked about ``who``, by default the patient)."""
        questions = Q.category(category).questions_for(who or self.who)
        first = (
            self.t(f"intake.q.{questions[0].id}") if questions else self.t("intake.ask_associated")
        )
        await self.press(
            self.t("intake.red_flags.none"),
            has_text(first) if questions else has_button(self.t("intake.associated.done")),
        )
        for i, question in enumerate(questions):
            option = (followups or {}).get(question.id, question.options[-1])
            nxt = (
                has_text(self.t(f"intake.q.{questions[i + 1].id}"))
                if i + 1 < len(questions)
                else has_button(self.t("intake.associated.done"))
            )
            await self.press(self.t(f"intake.q.{question.id}.{option}"), nxt)
        await self.press(
            self.t("intake.associated.none"), has_button(self.t("intake.history.none"))
        )
        for _ in range(2):
            await self.press(
                self.t("intake.history.none"), has_button(self.t("intake.history.none"))
            )
        await self.press(
            self.t("intake.history.none"), has_button(self.t("intake.attachments.skip"))
        )
        if photo:
            since = await self.clinic.seq(self.uid)
            await self.clinic.client.send_photo(self.uid, PATIENT_BOT, b"\x89PNG fake", "rash.png")
            await self.clinic.client.wait_for(
                self.uid, PATIENT_BOT, has_button(self.t("intake.attachments.done")), since=since
            )
            return await self.press(
                self.t("intake.attachments.done"), has_button(self.t("intake.summary.confirm"))
            )
        return await self.press(
            self.t("intake.attachments.skip"), has_button(self.t("intake.summary.confirm"))
        )

    async def confirm(self) -> dict[str, Any]:
        since = await self.clinic.seq(self.uid)
        await self.clinic.client.click_button(
            self.uid, PATIENT_BOT, self.t("intake.summary.confirm")
        )
        return await self.clinic.client.wait_for(self.uid, PATIENT_BOT, since=since)


async def new_patient(clinic: Clinic, locale: str, sex: str = "female") -> Patient:
    uid = await clinic.person("Tester", "en")
    await onboard(clinic, uid, locale, sex=sex)
    return Patient(clinic, uid, locale, sex)


async def intakes_of(clinic: Clinic) -> list[Intake]:
    async with clinic.app.db.uow() as uow:
        rows = list(await uow.session.scalars(select(Intake).order_by(Intake.created_at)))
        uow.session.expunge_all()  # keep the loaded values after the unit ends
        return rows


def result_text(p: Patient, disposition: str, department: str, reasons: str, category: str) -> str:
    """The one message that ends an intake (a case's own notice follows an urgent note)."""
    if disposition == "self_care":
        advice = p.t(
            "intake.result.self_care", advice=p.tr(f"selfcare.{category}"), emergency_number="112"
        )
        return f"{advice}\n\n{p.t('checkback.offer')}"  # with the check-back buttons
    if disposition == "consultation_24":
        return p.t("intake.result.consultation_24.case", reasons=reasons)
    return p.t(
        f"intake.result.{disposition}",
        department=p.t(f"dept.{department}"),
        reasons=reasons,
        emergency_number="112",
    )


# (category, duration, severity, follow-up answers) -> (disposition, department, rule ids)
SCENARIOS = {
    "self_care": ("cough_cold", "days_1_3", 2, {}, "general", ()),
    "consultation": ("cough_cold", "days_1_3", 5, {}, "general", ("moderate_symptoms",)),
    "consultation_24": ("cough_cold", "today", 8, {}, "general", ("severe_symptoms",)),
    "emergency": (
        "chronic_review", "months", 3,
        {"chronic_condition": "hypertension", "home_reading": "bp_very_high"},
        "cardiology", ("bp_very_high",),
    ),
}  # fmt: skip


@pytest.mark.parametrize("locale", ["en", "zh_Hans", "ru"])
@pytest.mark.parametrize("disposition", [*SCENARIOS, "emergency_ambulance"])
async def test_full_intake_to_each_disposition(
    sqlite_clinic: Clinic, locale: str, disposition: str
) -> None:
    """Buttons only, from /intake to the disposition, in each language."""
    p = await new_patient(sqlite_clinic, locale)
    if disposition == "emergency_ambulance":
        checklist = await p.to_red_flags("cough_cold", "today", 6)
        label = next(
            b["text"]
            for row in checklist["reply_markup"]["inline_keyboard"]
            for b in row
            if b["text"].endswith(p.t("redflag.breathing.button"))
        )
        since = await sqlite_clinic.seq(p.uid)
        await sqlite_clinic.client.click_button(p.uid, PATIENT_BOT, label)
        msg = await sqlite_clinic.client.wait_for(p.uid, PATIENT_BOT, since=since)
        assert msg["text"] == p.t(
            "emergency.call_now", emergency_number="112", what=p.tr("redflag.breathing")
        )
        [intake] = await intakes_of(sqlite_clinic)
        assert (intake.state, intake.disposition) == (State.EMERGENCY, "emergency_ambulance")
        return
    category, duration, severity, followups, department, reasons = SCENARIOS[disposition]
    await p.to_red_flags(category, duration, severity)
    summary = await p.after_red_flags(category, followups)
    assert p.t(f"intake.category.{category}") in summary["text"]
    result = await p.confirm()
    reason_text = "; ".join(p.t(f"triage.reason.{r}") for r in reasons) or "—"
    if disposition == "emergency":
        expected = p.t("intake.result.emergency", emergency_number="112", reasons=reason_text)
        assert result["text"] == expected
    elif disposition == "consultation":
        # The case's own notice is the confirmation (its wait line depends on who is on duty).
        head, tail = p.t(
            "consult.opened", number=1, department=p.t(f"dept.{department}"), wait="\0",
            emergency_number="112",
        ).split("\0")  # fmt: skip
        assert result["text"].startswith(head) and result["text"].endswith(tail)
    else:
        expected = result_text(p, disposition, department, reason_text, category)
        assert result["text"] == expected
    [intake] = await intakes_of(sqlite_clinic)
    assert (intake.state, intake.disposition, intake.department) == (
        State.TRIAGED,
        disposition,
        department,
    )


async def test_full_intake_on_each_backend(clinic: Clinic) -> None:
    """The same intake on SQLite and PostgreSQL, with a photo; history is kept for next time."""
    p = await new_patient(clinic, "en")
    await p.to_red_flags("skin", "days_4_7", 3)
    await p.after_red_flags("skin", photo=True)
    result = await p.confirm()
    assert result["text"] == result_text(p, "self_care", "dermatology", "—", "skin")
    [intake] = await intakes_of(clinic)
    async with clinic.app.db.uow() as uow:
        answers = await uow.intakes.answers(intake)
        [photo] = answers["attachments"]
        assert photo["kind"] == "photo"
        audit = await uow.session.scalars(
            select(AuditRecord.action).where(AuditRecord.record_id == intake.id)
        )
        assert list(audit) == ["intake.start", "intake.complete"]


async def test_red_flag_typed_mid_intake_stops_it(sqlite_clinic: Clinic) -> None:
    """A patient types an emergency at the onset question: instructions at once, the intake
    stops, the event is audited, and no further question follows."""
    p = await new_patient(sqlite_clinic, "ru")
    await p.start()
    await p.press(p.t("intake.subject.self"), has_button(p.t("intake.back")))
    await p.press(p.t("intake.category.chest_pain"), has_button(p.t("intake.duration.hours")))
    msg = await p.say("давит за грудиной, отдаёт в левую руку", lambda m: True)
    assert msg["text"] == p.t(
        "emergency.call_now", emergency_number="112", what=p.tr("redflag.chest_pain")
    )
    [intake] = await intakes_of(sqlite_clinic)
    assert intake.state == State.EMERGENCY
    async with sqlite_clinic.app.db.uow() as uow:
        actions = list(await uow.session.scalars(select(AuditRecord.action)))
        assert "redflag.raised" in actions
    # Nothing else was asked after the instructions.
    texts = await sqlite_clinic.bot_texts(p.uid)
    assert texts[-1] == msg["text"]


async def test_self_harm_gets_crisis_wording_in_any_state(sqlite_clinic: Clinic) -> None:
    """Outside any intake too: suicidal thoughts get the crisis message, not a queue."""
    p = await new_patient(sqlite_clinic, "zh_Hans")
    msg = await p.say("我真的不想活了", lambda m: True)
    assert msg["text"] == p.t("emergency.crisis", emergency_number="112")


async def test_negated_symptom_does_not_stop_the_intake(sqlite_clinic: Clinic) -> None:
    p = await new_patient(sqlite_clinic, "en")
    await p.start()
    await p.press(p.t("intake.subject.self"), has_button(p.t("intake.back")))
    await p.say("no chest pain, just a cough since Monday", has_text(p.t("intake.ask_onset")))
    texts = await sqlite_clinic.bot_texts(p.uid)
    assert not any("This may be an emergency" in text for text in texts)
    [intake] = await intakes_of(sqlite_clinic)
    assert intake.state == State.ONSET
    async with sqlite_clinic.app.db.uow() as uow:
        answers = await uow.intakes.answers(intake)
    assert answers["category"] == "cough_cold"
    assert answers["complaint_text"] == "no chest pain, just a cough since Monday"


async def test_restart_mid_intake_resumes_exactly(sqlite_clinic: Clinic) -> None:
    """The bot process stops after the severity (Telegram stays up); a new process on the same
    database resumes at the red-flag checklist."""
    clinic = sqlite_clinic
    p = await new_patient(clinic, "en")
    await p.to_red_flags("headache", "today", 4)
    await clinic.app.stop()
    db = Database(f"sqlite+aiosqlite:///{clinic.data_dir / 'careline.db'}", clinic.app.db.ring)
    clinic.app = await Careline.build(clinic.settings, db)
    await clinic.app.start()
    msg = await p.say("/intake", has_button(p.t("intake.red_flags.none")))
    texts = await clinic.bot_texts(p.uid)
    assert texts[-2:] == [p.t("intake.resumed"), msg["text"]]
    [intake] = await intakes_of(clinic)
    assert intake.state == State.RED_FLAGS
    async with clinic.app.db.uow() as uow:
        answers = await uow.intakes.answers(intake)
    assert (answers["category"], answers["duration"], answers["severity"]) == (
        "headache",
        "today",
        4,
    )


async def test_proxy_intake_for_a_child(sqlite_clinic: Clinic) -> None:
    """A parent describes a toddler's illness: child categories only, pediatrics."""
    p = await new_patient(sqlite_clinic, "en")
    await p.start()
    await p.press(p.t("intake.subject.other"), has_button(p.t("intake.age.child_1_5")))
    await p.press(p.t("intake.age.child_1_5"), has_button(p.t("sex.male")))
    menu = await p.press(p.t("sex.male"), has_button(p.t("intake.category.child_illness")))
    labels = {b["text"] for row in menu["reply_markup"]["inline_keyboard"] for b in row}
    assert p.t("intake.category.cough_cold") not in labels  # an adults' category
    await p.press(p.t("intake.category.child_illness"), has_button(p.t("intake.duration.today")))
    await p.press(p.t("intake.duration.today"), has_button("10"))
    await p.press("5", has_button(p.t("intake.red_flags.none")))
    summary = await p.after_red_flags(
        "child_illness",
        {"child_temperature": "t38_39", "child_drinking": "a_bit_less"},
        who=Who("male", "child_1_5"),
    )
    assert (
        p.t("intake.summary.who_other", age=p.t("intake.age.child_1_5"), sex=p.t("sex.male"))
        in summary["text"]
    )
    await p.confirm()
    [intake] = await intakes_of(sqlite_clinic)
    assert (intake.department, intake.disposition) == ("pediatrics", "consultation")
    async with sqlite_clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(p.uid)
        assert patient is not None
        # A proxy's history is not the patient's own: nothing stored in the profile.
        assert await uow.patients.history(patient) == dict.fromkeys(
            ("conditions", "medicines", "allergies")
        )


async def test_back_cancel_and_stale_buttons(sqlite_clinic: Clinic) -> None:
    p = await new_patient(sqlite_clinic, "en")
    await p.start()
    await p.press(p.t("intake.subject.self"), has_button(p.t("intake.back")))
    await p.press(p.t("intake.category.headache"), has_button(p.t("intake.duration.today")))
    # Back to the complaint, then an old button from the subject question.
    await p.press(p.t("intake.back"), has_button(p.t("intake.category.headache")))
    since = await sqlite_clinic.seq(p.uid)
    history = (await sqlite_clinic.client.messages(p.uid, PATIENT_BOT))["messages"]
    subject_msg = next(m for m in history if m.get("text") == p.t("intake.ask_subject"))
    old = next(
        b
        for row in subject_msg["reply_markup"]["inline_keyboard"]
        for b in row
        if b["text"] == p.t("intake.subject.other")
    )
    await sqlite_clinic.client.click(
        p.uid, PATIENT_BOT, subject_msg["message_id"], old["callback_data"]
    )
    again = await sqlite_clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("intake.category.headache")), since=since
    )
    assert again["text"] == p.t("intake.ask_complaint")
    [intake] = await intakes_of(sqlite_clinic)
    assert intake.state == State.COMPLAINT
    cancelled = await p.press(p.t("intake.cancel"), has_text(p.t("intake.cancelled")))
    assert cancelled["text"] == p.t("intake.cancelled")
    [intake] = await intakes_of(sqlite_clinic)
    assert intake.state == State.CANCELLED
    # A button from the cancelled intake is stale: nothing changes.
    await sqlite_clinic.client.click(
        p.uid, PATIENT_BOT, subject_msg["message_id"], old["callback_data"]
    )
    [intake] = await intakes_of(sqlite_clinic)
    assert intake.state == State.CANCELLED


async def test_bad_input_reprompts_and_keeps_the_step(sqlite_clinic: Clinic) -> None:
    p = await new_patient(sqlite_clinic, "en")
    await p.start()
    await p.press(p.t("intake.subject.self"), has_button(p.t("intake.back")))
    await p.press(p.t("intake.category.back_joint"), has_button(p.t("intake.duration.today")))
    await p.press(p.t("intake.duration.today"), has_button("10"))
    for bad in ("a lot", "11", "😭😭", "-3"):
        msg = await p.say(bad, has_text(p.t("intake.error.severity")))
        assert msg["text"] == p.t("intake.error.severity")
    since = await sqlite_clinic.seq(p.uid)
    await sqlite_clinic.client.send_voice(p.uid, PATIENT_BOT, b"OggS fake", "v.ogg")
    await sqlite_clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_text(p.t("intake.error.media_not_now")), since=since
    )
    # Typed severity works, in words too.
    await p.say("seven", has_button(p.t("intake.red_flags.none")))
    await p.press(p.t("intake.red_flags.none"), has_text(p.t("intake.q.pain_site")))
    # Health words at a button question are kept for the doctor, after the safety question.
    await p.say("my back", has_button(p.t("safety.no")))
    await p.press(p.t("safety.no"), has_button(p.t("intake.q.pain_site.back")))
    await p.say("ok then", has_text(p.t("intake.error.use_buttons")))
    await p.press(p.t("intake.q.pain_site.back"), has_button(p.t("intake.associated.done")))
    await p.press(p.t("intake.associated.done"), has_button(p.t("intake.history.none")))
    long = "word " * 819  # as long as Telegram allows (4,096 characters)
    msg = await p.say(long, has_text(p.t("error.text_too_long", max=1000)))
    await p.say("high blood pressure <b>&", has_text(p.t("intake.ask_medicines")))
    [intake] = await intakes_of(sqlite_clinic)
    assert intake.state == State.MEDICINES
    async with sqlite_clinic.app.db.uow() as uow:
        answers = await uow.intakes.answers(intake)
    assert answers["severity"] == 7
    assert answers["conditions"] == "high blood pressure <b>&"


async def test_history_lists_opens_and_exports_fhir(sqlite_clinic: Clinic) -> None:
    p = await new_patient(sqlite_clinic, "en")
    empty = await p.say("/history", lambda m: True)
    assert empty["text"] == p.t("history.empty")
    await p.to_red_flags("cough_cold", "days_1_3", 2)
    await p.after_red_flags("cough_cold")
    await p.confirm()
    listing = await p.say("/history", has_text(p.t("history.title")))
    [[item]] = listing["reply_markup"]["inline_keyboard"]
    assert p.t("intake.category.cough_cold") in item["text"]
    detail = await p.press(item["text"], has_button(p.t("history.fhir_button")))
    assert p.t("disposition.self_care") in detail["text"]
    doc_msg = await p.press(p.t("history.fhir_button"), lambda m: "document" in m)
    data = await sqlite_clinic.client.download(doc_msg["document"]["file_id"])
    resource = json.loads(data)
    QuestionnaireResponse.model_validate(resource)
    assert resource["status"] == "completed"
    links = {i["linkId"] for i in resource["item"]}
    assert {"complaint", "onset", "severity", "disposition", "department"} <= links


async def test_second_intake_prefills_history(sqlite_clinic: Clinic) -> None:
    """What the patient said about their illnesses is offered back next time."""
    p = await new_patient(sqlite_clinic, "en")
    await p.to_red_flags("cough_cold", "days_1_3", 2)
    await p.press(p.t("intake.red_flags.none"), has_button(p.t("intake.associated.done")))
    await p.press(p.t("intake.associated.none"), has_button(p.t("intake.history.none")))
    await p.say("asthma", has_button(p.t("intake.history.none")))
    await p.press(p.t("intake.history.none"), has_button(p.t("intake.history.none")))
    await p.press(p.t("intake.history.none"), has_button(p.t("intake.attachments.skip")))
    await p.press(p.t("intake.attachments.skip"), has_button(p.t("intake.summary.confirm")))
    await p.confirm()
    await p.to_red_flags("fever", "today", 3)
    await p.press(p.t("intake.red_flags.none"), has_text(p.t("intake.q.fever_temperature")))
    await p.press(
        p.t("intake.q.fever_temperature.t38_39"), has_button(p.t("intake.associated.done"))
    )
    msg = await p.press(p.t("intake.associated.none"), has_button(p.t("intake.history.keep")))
    assert msg["text"] == p.t("intake.ask_conditions.known", known="asthma")


async def test_no_plaintext_in_the_database(sqlite_clinic: Clinic) -> None:
    p = await new_patient(sqlite_clinic, "en")
    await p.start()
    await p.press(p.t("intake.subject.self"), has_button(p.t("intake.back")))
    secret = "Zebrafinch itching behind the left knee"
    await p.say(secret, has_text(p.t("intake.ask_onset")))
    db_files = list(sqlite_clinic.data_dir.glob("careline.db*")) or list(
        sqlite_clinic.data_dir.glob("*.db*")
    )
    assert db_files
    for f in db_files:
        assert b"Zebrafinch" not in f.read_bytes(), f.name
    assert "Zebrafinch" not in sqlite_clinic.logs.getvalue()
    assert re.search("itching", sqlite_clinic.logs.getvalue()) is None


async def test_editing_a_message_into_an_emergency_is_caught(sqlite_clinic: Clinic) -> None:
    """A patient edits an earlier message to add what is happening: the check runs again."""
    p = await new_patient(sqlite_clinic, "en")
    await p.start()
    await p.press(p.t("intake.subject.self"), has_button(p.t("intake.back")))
    sent = await sqlite_clinic.client.send(p.uid, PATIENT_BOT, "my arm feels odd")
    await sqlite_clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_text(p.t("intake.complaint.noted"))
    )
    since = await sqlite_clinic.seq(p.uid)
    await sqlite_clinic.client.edit(
        p.uid, PATIENT_BOT, sent["message"]["message_id"], "my face is drooping and my arm is weak"
    )
    expected = p.t("emergency.call_now", emergency_number="112", what=p.tr("redflag.stroke"))
    await sqlite_clinic.client.wait_for(p.uid, PATIENT_BOT, has_text(expected), since=since)
    [intake] = await intakes_of(sqlite_clinic)
    assert intake.state == State.EMERGENCY


async def test_cn_first_visit_is_sent_to_an_in_person_visit(
    tmp_path: Any, log_capture: Any
) -> None:
    """In mainland China an online consultation needs an offline diagnosis first."""
    from bot.settings import Jurisdiction
    from tests.e2e.conftest import start_clinic, stop_clinic

    clinic, schema = await start_clinic(
        tmp_path, "sqlite", log_capture, jurisdiction=Jurisdiction.CN
    )
    try:
        uid = await clinic.person("Tester", "zh-hans")
        await onboard(clinic, uid, "zh_Hans", emergency="120")
        p = Patient(clinic, uid, "zh_Hans")
        await p.to_red_flags("cough_cold", "days_1_3", 5)
        await p.after_red_flags("cough_cold")
        ask = await p.confirm()
        assert ask["text"] == p.t("intake.ask_diagnosis")
        result = await p.press(p.t("intake.diagnosis.no"), lambda m: True)
        assert result["text"] == p.t(
            "intake.result.cn_in_person",
            department=p.t("dept.general"),
            reasons=p.t("triage.reason.moderate_symptoms"),
        )
        [intake] = await intakes_of(clinic)
        assert (intake.state, intake.disposition) == (State.TRIAGED, "consultation")
    finally:
        await stop_clinic(clinic, schema)


async def test_self_care_check_back_and_a_worse_answer(clinic: Clinic) -> None:
    """Self-care advice offers a check-back; when it is due the patient is asked, and "worse"
    starts a new intake. Runs on SQLite and PostgreSQL."""
    from datetime import timedelta

    from storage.models import utcnow

    p = await new_patient(clinic, "en")
    await p.to_red_flags("cough_cold", "days_1_3", 2)
    await p.after_red_flags("cough_cold")
    since = await clinic.seq(p.uid)
    await clinic.client.click_button(p.uid, PATIENT_BOT, p.t("intake.summary.confirm"))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("checkback.offer.tomorrow")), since=since
    )
    done = await p.press(p.t("checkback.offer.tomorrow"), lambda m: True)
    assert done["text"].startswith(p.t("checkback.scheduled", when="")[:10])
    assert await clinic.app.sweeper.sweep_once(utcnow()) == 0  # not due yet
    since = await clinic.seq(p.uid)
    assert await clinic.app.sweeper.sweep_once(utcnow() + timedelta(days=2)) == 1
    ask = await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("checkback.answer.worse")), since=since
    )
    today = utcnow().strftime("%Y-%m-%d")
    assert ask["text"] == p.t(
        "checkback.ask", complaint=p.t("intake.category.cough_cold"), date=today
    )
    await p.press(p.t("checkback.answer.worse"), has_button(p.t("intake.subject.self")))
    first, second = await intakes_of(clinic)
    assert (first.state, second.state) == (State.TRIAGED, State.SUBJECT)
    async with clinic.app.db.uow() as uow:
        assert (await uow.intakes.answers(first))["checkback"]["answer"] == "worse"
    # Answered once: the old buttons are stale now, and nothing is due any more.
    await clinic.client.click_button(p.uid, PATIENT_BOT, p.t("checkback.answer.better"))
    assert await clinic.app.sweeper.sweep_once(utcnow() + timedelta(days=9)) == 0
    async with clinic.app.db.uow() as uow:
        assert (await uow.intakes.answers(first))["checkback"]["answer"] == "worse"


async def test_worse_at_a_check_back_is_gated_like_a_new_intake(clinic: Clinic) -> None:
    """A patient blocked since their self-care advice answers "worse": they are told they are
    blocked (with the emergency number and how to appeal), and no intake starts."""
    from datetime import timedelta

    from storage.models import utcnow

    p = await new_patient(clinic, "en")
    await p.to_red_flags("cough_cold", "days_1_3", 2)
    await p.after_red_flags("cough_cold")
    since = await clinic.seq(p.uid)
    await clinic.client.click_button(p.uid, PATIENT_BOT, p.t("intake.summary.confirm"))
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("checkback.offer.tomorrow")), since=since
    )
    await p.press(p.t("checkback.offer.tomorrow"), lambda m: True)
    async with clinic.app.db.uow() as uow:
        [row] = list(await uow.session.scalars(select(PatientRow)))
        row.blocked_at = utcnow()
        await uow.commit()
    since = await clinic.seq(p.uid)
    assert await clinic.app.sweeper.sweep_once(utcnow() + timedelta(days=2)) == 1
    await clinic.client.wait_for(
        p.uid, PATIENT_BOT, has_button(p.t("checkback.answer.worse")), since=since
    )
    blocked = p.t("trust.blocked", emergency_number="112")
    await p.press(p.t("checkback.answer.worse"), lambda m: m.get("text") == blocked)
    [only] = await intakes_of(clinic)
    assert only.state == State.TRIAGED


async def test_stranger_in_danger_gets_instructions_before_any_consent(clinic: Clinic) -> None:
    """Someone who never sent /start writes that a person collapsed: instructions at once,
    in their Telegram language; nothing about them is stored but the fact that a flag rose."""
    uid = await clinic.person("Stranger", "ru")
    tr = Translator("ru")
    msg = await clinic.say(uid, "муж упал и не приходит в себя")
    assert msg["text"] == tr.plain(
        "emergency.call_now", emergency_number="112", what=tr("redflag.unconscious")
    )
    async with clinic.app.db.uow() as uow:
        assert await uow.patients.by_tg_user(uid) is None
        rows = (await uow.session.execute(select(AuditRecord.actor, AuditRecord.action))).all()
    assert ("patient:unknown", "redflag.raised") in [tuple(r) for r in rows]


def flag_values(message: dict[str, Any]) -> list[str]:
    """The red-flag ids a checklist message offers (from its buttons' callback data)."""
    rows = message["reply_markup"]["inline_keyboard"]
    return [
        b["callback_data"].rsplit(":", 1)[1]
        for row in rows
        for b in row
        if b["callback_data"].split(":")[2] == "flag"
    ]


@pytest.mark.parametrize("sex", ["male", "female"])
async def test_abdominal_pain_asks_about_pregnancy_only_where_it_can_apply(
    sqlite_clinic: Clinic, sex: str
) -> None:
    """A man's abdominal-pain checklist has no pregnancy item and he is not asked whether he
    could be pregnant; a woman's has both. Neither adult sees the children's items."""
    p = await new_patient(sqlite_clinic, "en", sex=sex)
    checklist = await p.to_red_flags("abdominal_pain", "today", 5)
    flags = flag_values(checklist)
    pregnancy = p.t("redflag.pregnancy_bleeding")
    if sex == "male":
        assert flags == ["abdominal_emergency", "bleeding", "sepsis", "none"]
        assert pregnancy not in checklist["text"]
    else:
        assert flags == ["abdominal_emergency", "bleeding", "pregnancy_bleeding", "sepsis", "none"]
        assert pregnancy in checklist["text"]
    assert p.t("redflag.child_dehydration") not in checklist["text"]
    await p.press(p.t("intake.red_flags.none"), has_text(p.t("intake.q.abdominal_pain_where")))
    then = p.t("intake.q.abdominal_pregnancy") if sex == "female" else p.t("intake.ask_associated")
    await p.press(p.t("intake.q.abdominal_pain_where.upper"), has_text(then))
    [intake] = await intakes_of(sqlite_clinic)
    async with sqlite_clinic.app.db.uow() as uow:
        answers = await uow.intakes.answers(intake)
    assert (answers["sex"], answers["age_band"]) == (sex, "adult_18_64")
