"""The patient's own words, end to end (real bots over HTTP against the Bot API emulator).

Typed complaints start an intake with what they name prefilled; words Careline is not sure
about are met with "is this an emergency?" and the emergency number, never "I didn't
understand"; typed answers to button questions are understood; a caregiver's emergency reaches
the patient's doctor.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from flows.onboarding import Step
from locales import Translator
from storage.models import AuditRecord, Intake
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic
from tests.e2e.test_bad_input import PNG, advance, state_of
from tests.e2e.test_caregivers import invite, offer_text, open_link
from tests.e2e.test_caregivers import press as press_as
from tests.e2e.test_consultation import add_doctor, consult, starts
from tests.e2e.test_intake import has_button, new_patient
from tests.e2e.test_onboarding import NAMES

# A complaint in words per language: category, onset and severity are all stated.
COMPLAINTS = {
    "en": "I've had a cough and fever for three days, about 5 out of 10",
    "zh_Hans": "咳嗽发烧三天了，难受程度大概5分",
    "ru": "кашель и температура уже три дня, на 5 из 10",
}
NOT_UNDERSTOOD = {Translator(loc).plain("error.not_understood") for loc in COMPLAINTS}


def is_text(text: str) -> Any:
    return lambda m: m.get("text") == text


async def open_intake(clinic: Clinic, uid: int) -> tuple[Intake, dict[str, Any]] | None:
    """The patient's newest intake and its decrypted answers."""
    async with clinic.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        if patient is None:
            return None
        rows = list(
            await uow.session.scalars(
                select(Intake)
                .where(Intake.patient_id == patient.id)
                .order_by(Intake.created_at.desc())
            )
        )
        if not rows:
            return None
        answers = await uow.intakes.answers(rows[0])
        uow.session.expunge_all()
        return rows[0], answers


async def intake_count(clinic: Clinic) -> int:
    async with clinic.app.db.uow() as uow:
        return len(list(await uow.session.scalars(select(Intake))))


@pytest.mark.parametrize("locale", ["en", "zh_Hans", "ru"])
async def test_a_typed_complaint_prefills_the_intake(sqlite_clinic: Clinic, locale: str) -> None:
    clinic = sqlite_clinic
    p = await new_patient(clinic, locale)
    card = await p.say(COMPLAINTS[locale], has_button(p.t("intake.prefill.self")))
    summary = " · ".join(
        [
            p.t("intake.category.cough_cold"),
            p.t("intake.duration.days_1_3"),
            p.t("intake.prefill.severity", severity=5),
        ]
    )
    assert card["text"] == p.t("intake.prefill.ask", said=COMPLAINTS[locale], summary=summary)
    # One tap: the checklist of the complaint comes next (subject, category, onset and
    # severity are answered).
    await p.press(p.t("intake.prefill.self"), has_button(p.t("intake.red_flags.none")))
    found = await open_intake(clinic, p.uid)
    assert found is not None
    row, answers = found
    assert row.state == "red_flags"
    assert answers["subject"] == "self"
    assert answers["category"] == "cough_cold"
    assert answers["duration"] == "days_1_3"
    assert answers["severity"] == 5
    assert answers["complaint_text"] == COMPLAINTS[locale]
    assert "prefill" not in answers
    # Back shows the severity question again (a prefilled answer is used once).
    await p.press(p.t("intake.back"), has_button("10"))
    assert not NOT_UNDERSTOOD & set(await clinic.bot_texts(p.uid))
    assert clinic.app.processor.failed == 0


async def test_change_keeps_the_words_and_asks_step_by_step(clinic: Clinic) -> None:
    p = await new_patient(clinic, "en")
    await p.say(COMPLAINTS["en"], has_button(p.t("intake.prefill.change")))
    await p.press(p.t("intake.prefill.change"), has_button(p.t("intake.subject.self")))
    await p.press(p.t("intake.subject.self"), has_button(p.t("intake.category.cough_cold")))
    found = await open_intake(clinic, p.uid)
    assert found is not None
    row, answers = found
    assert row.state == "complaint"
    assert answers["complaint_text"] == COMPLAINTS["en"]
    assert "category" not in answers and "prefill" not in answers


async def test_someone_else_is_asked_age_and_sex_then_skips_what_was_said(
    sqlite_clinic: Clinic,
) -> None:
    clinic = sqlite_clinic
    p = await new_patient(clinic, "en")
    await p.say("bad headache since yesterday, 6/10", has_button(p.t("intake.prefill.other")))
    await p.press(p.t("intake.prefill.other"), has_button(p.t("intake.age.adult_18_64")))
    await p.press(p.t("intake.age.adult_18_64"), has_button(p.t("sex.female")))
    await p.press(p.t("sex.female"), has_button(p.t("intake.red_flags.none")))
    found = await open_intake(clinic, p.uid)
    assert found is not None
    assert found[1]["category"] == "headache" and found[1]["subject"] == "other"


@pytest.mark.parametrize(
    ("locale", "onset", "severity"),
    [
        ("en", "three days", "about 6 out of 10"),
        ("zh_Hans", "三天", "6分"),
        ("ru", "три дня", "на 6 из 10"),
    ],
)
async def test_typed_answers_to_button_questions(
    sqlite_clinic: Clinic, locale: str, onset: str, severity: str
) -> None:
    clinic = sqlite_clinic
    p = await new_patient(clinic, locale)
    await p.start()
    await p.press(p.t("intake.subject.self"), has_button(p.t("intake.category.headache")))
    await p.press(p.t("intake.category.headache"), has_button(p.t("intake.duration.days_1_3")))
    await p.say(onset, has_button("10"))
    await p.say(severity, has_button(p.t("intake.red_flags.none")))
    found = await open_intake(clinic, p.uid)
    assert found is not None
    assert found[1]["duration"] == "days_1_3" and found[1]["severity"] == 6


async def test_words_not_understood_ask_if_it_is_an_emergency(clinic: Clinic) -> None:
    p = await new_patient(clinic, "en")
    ask = p.t("safety.ask", emergency_number="112")
    # Health words with no complaint Careline can name: asked, and the words are kept.
    msg = await p.say("my body feels odd", has_button(p.t("safety.yes")))
    assert msg["text"] == ask and "112" in msg["text"]
    found = await open_intake(clinic, p.uid)
    assert found is not None and found[1]["complaint_text"] == "my body feels odd"
    # "Yes": what to do now, first; audited.
    await p.press(
        p.t("safety.yes"), starts(p.t("emergency.call_now", emergency_number="112", what="")[:30])
    )
    async with clinic.app.db.uow() as uow:
        actions = [r.action for r in await uow.session.scalars(select(AuditRecord))]
    assert "redflag.confirmed" in actions
    # "No": the intake the words started, from its first question; the words still there.
    await p.press(p.t("safety.no"), has_button(p.t("intake.subject.self")))
    found = await open_intake(clinic, p.uid)
    assert found is not None and found[1]["complaint_text"] == "my body feels odd"
    assert clinic.app.processor.failed == 0


@pytest.mark.parametrize(
    "text",
    [
        "🙂🙂🙂",
        "Ich habe seit gestern starke Bauchschmerzen",  # a language Careline does not speak
        "héllo мир 你好 ✓ ok?",
        "(" * 2000 + "a" * 2000,  # adversarial for regular expressions
        ("word " * 820)[:4096],
        ("pain " * 820)[:4096],
    ],
)
async def test_bad_input_gets_a_sensible_answer(sqlite_clinic: Clinic, text: str) -> None:
    clinic = sqlite_clinic
    uid = await clinic.person("Rosa", "ru")
    await advance(clinic, uid, "ru", Step.DONE)
    ru = Translator("ru")
    before = await intake_count(clinic)
    since = await clinic.seq(uid)
    await clinic.client.send(uid, PATIENT_BOT, text)
    msg = await clinic.client.wait_for(uid, PATIENT_BOT, since=since)
    # In the patient's language, with the emergency number when it is the safety question.
    answers = {
        ru.plain("safety.ask", emergency_number="112"),
        ru.plain("freetext.greeting"),
        ru.plain("freetext.ok"),
        ru.plain("freetext.thanks"),
    }
    assert msg["text"] in answers or msg["text"].startswith(
        ru.plain("intake.prefill.ask", said="", summary="")[:10]
    )
    assert msg["text"] not in NOT_UNDERSTOOD
    assert await intake_count(clinic) - before <= 1
    assert clinic.app.processor.failed == 0


async def test_before_consent_nothing_is_stored(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    uid = await clinic.person("Lin", "zh-hans")
    await advance(clinic, uid, "zh_Hans", Step.CONSENT)
    zh = Translator("zh_Hans")
    since = await clinic.seq(uid)
    await clinic.client.send(uid, PATIENT_BOT, "我肚子有点疼")
    first = await clinic.client.wait_for(uid, PATIENT_BOT, since=since)
    assert first["text"] == zh.plain("safety.ask", emergency_number="112")
    await clinic.client.wait_for(
        uid, PATIENT_BOT, has_button(zh.plain("onboarding.consent.accept")), since=since
    )
    assert await state_of(clinic, uid) == Step.CONSENT.value
    assert await intake_count(clinic) == 0


async def test_words_beside_a_question_are_kept_and_the_question_stays(
    sqlite_clinic: Clinic,
) -> None:
    clinic = sqlite_clinic
    p = await new_patient(clinic, "en")
    await p.start()
    await p.press(p.t("intake.subject.self"), has_button(p.t("intake.category.back_joint")))
    await p.press(p.t("intake.category.back_joint"), has_button(p.t("intake.duration.days_1_3")))
    await p.press(p.t("intake.duration.days_1_3"), has_button("10"))
    await p.press("4", has_button(p.t("intake.red_flags.none")))
    await p.say("also my knee is swollen", has_button(p.t("safety.yes")))
    found = await open_intake(clinic, p.uid)
    assert found is not None
    assert found[0].state == "red_flags"
    assert found[1]["notes"] == ["also my knee is swollen"]
    # "No" resumes the same question.
    await p.press(p.t("safety.no"), has_button(p.t("intake.red_flags.none")))


async def test_a_caregivers_emergency_reaches_the_patients_doctor(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    doc = await add_doctor(clinic, "Dr Ada Fictus")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await doc.accept(number)
    payload = await invite(clinic, p.uid, p.tr, "missed", False, "Oskar")
    carer = await clinic.person("Oskar", "en")
    label = NAMES["en"].split()[0]
    await open_link(clinic, carer, payload, is_text(offer_text(p.tr, label, "missed", False)))
    await press_as(
        clinic,
        carer,
        p.t("caregivers.offer.accept"),
        starts(p.t("caregivers.accepted", patient="", scope="")[:9]),
    )
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    since = await clinic.seq(carer)
    await clinic.client.send(
        carer, PATIENT_BOT, "she collapsed in the kitchen and isn't responding"
    )
    call_now = p.t("emergency.call_now", emergency_number="112", what="")[:30]
    await clinic.client.wait_for(carer, PATIENT_BOT, starts(call_now), since=since)
    alert = await doc.wait(starts(f"#{number} ·"), since_doc)
    assert alert["text"] == doc.t(
        "consult.doctor.emergency",
        number=number,
        name=label,
        what=doc.t("redflag.unconscious"),
        emergency_number="112",
        text="",
    )
    assert clinic.app.processor.failed == 0


async def test_an_emergency_in_a_photo_caption_is_caught(sqlite_clinic: Clinic) -> None:
    """A photo sent mid-intake whose caption describes an emergency: instructions, in the
    patient's language, and the intake stops."""
    clinic = sqlite_clinic
    p = await new_patient(clinic, "zh_Hans")
    await p.start()
    since = await clinic.seq(p.uid)
    await clinic.client.send_photo(
        p.uid, PATIENT_BOT, PNG, "arm.png", caption="孩子被开水烫了，整条胳膊都起泡了"
    )
    call_now = p.t("emergency.call_now", emergency_number="112", what="")[:12]
    await clinic.client.wait_for(p.uid, PATIENT_BOT, starts(call_now), since=since)
    found = await open_intake(clinic, p.uid)
    assert found is not None and found[0].state == "emergency"
    assert clinic.app.processor.failed == 0


# Emergencies in wordings the lexicon may not know. When the lexicon learns them all, add
# another: the test needs one the model alone flags.
SECOND_OPINION = [
    "my eye went blurry all of a sudden and it hurts",
    "i have a really bad pain in my lower belly on the right side since today",
    "my head is pounding worse than ever since an hour",
]


def _second_opinion_phrase() -> str:
    """A phrase the lexicon does not flag, that names a complaint, and that the second-opinion
    model reads as a possible emergency."""
    from flows import redflag_model, redflags, understand
    from flows.intake import prefill_of

    for text in SECOND_OPINION:
        if (
            redflags.detect(text) is None
            and prefill_of(understand.understand(text))
            and redflag_model.possible(text)
        ):
            return text
    raise AssertionError("every SECOND_OPINION phrase is now a lexicon hit: add a new one")


async def test_words_the_model_reads_as_an_emergency_are_asked_first(clinic: Clinic) -> None:
    """The lexicon did not flag it, the model did: "is this an emergency?" comes before the
    prefilled intake; "No" shows what was understood."""
    text = _second_opinion_phrase()
    p = await new_patient(clinic, "en")
    msg = await p.say(text, has_button(p.t("safety.yes")))
    assert msg["text"] == p.t("safety.ask", emergency_number="112")
    await p.press(p.t("safety.no"), has_button(p.t("intake.prefill.self")))
    found = await open_intake(clinic, p.uid)
    assert found is not None and found[1]["complaint_text"] == text
    assert clinic.app.processor.failed == 0


# Benign messages the lexicon flags on a word ("blue lips", "muddled") that the model finds very
# unlikely to be emergencies. When the model stops doubting them all, add another.
DOUBTED = [
    "lips went a bit blue after swimming in the sea but warmed up straight away in the car, "
    "thats normal right?",
    "my nan talks a bit muddled when shes tired but the GP said thats her normal and her "
    "bloods were fine last week",
    "stubbed my toe on the bed and it went a bit blue but i can walk on it, do i need an x-ray?",
]


def _doubted_phrase() -> str:
    """A phrase the lexicon flags with a doubtable flag that the model doubts."""
    from flows import redflag_model, redflags

    for text in DOUBTED:
        hit = redflags.detect(text)
        if hit is not None and redflag_model.doubted(text, hit.flag):
            return text
    raise AssertionError("no DOUBTED phrase is a doubted lexicon hit any more: add a new one")


async def _audit_actions(clinic: Clinic) -> list[str]:
    async with clinic.app.db.uow() as uow:
        return [r.action for r in await uow.session.scalars(select(AuditRecord))]


async def test_a_doubted_hit_is_asked_about_not_instructed(sqlite_clinic: Clinic) -> None:
    """A scary word the model doubts: one "is this an emergency?" with the number instead of
    the instructions, the intake still starts with the words kept, audited; "Yes" gives the
    instructions."""
    clinic = sqlite_clinic
    text = _doubted_phrase()
    p = await new_patient(clinic, "en")
    before = len(await clinic.bot_texts(p.uid))
    msg = await p.say(text, has_button(p.t("safety.yes")))
    assert msg["text"] == p.t("safety.ask", emergency_number="112")
    call_now = p.t("emergency.call_now", emergency_number="112", what="")[:30]
    await clinic.settled()
    texts = (await clinic.bot_texts(p.uid))[before:]
    assert not [t for t in texts if t.startswith(call_now)], texts
    assert texts.count(msg["text"]) == 1, texts  # asked once, not by every handler
    found = await open_intake(clinic, p.uid)
    assert found is not None and found[0].state != "emergency"
    assert found[1]["complaint_text"] == text
    assert "redflag.doubted" in await _audit_actions(clinic)
    await p.press(p.t("safety.yes"), starts(call_now))
    assert clinic.app.processor.failed == 0


async def test_a_doubted_hit_in_a_live_case_is_asked_and_relayed(sqlite_clinic: Clinic) -> None:
    """In a live case the doubted words still reach the doctor (relayed as usual) and the
    patient is asked whether it is an emergency."""
    clinic = sqlite_clinic
    doc = await add_doctor(clinic, "Dr Ada Fictus")
    p = await new_patient(clinic, "en")
    number = await consult(p)
    await doc.accept(number)
    text = _doubted_phrase()
    since_doc = await clinic.seq(doc.uid, DOCTOR_BOT)
    await p.say(text, has_button(p.t("safety.yes")))
    relayed = await doc.wait(lambda m: text in (m.get("text") or ""), since_doc)
    assert relayed["text"].startswith(f"#{number} ·")
    assert clinic.app.processor.failed == 0
