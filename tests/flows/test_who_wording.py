"""Whom an intake is about, as a doctor or a hospital desk reads it: the doctor's case card
(/queue), the findings a referral slip is prefilled with, the slip PDF's text and the verify
page say "the patient" or "someone the patient cares for ..., answered by the patient on
their behalf" — never the patient's own button words ("Me", "Someone I care for", "someone
you care for") nor a question as it was put to the patient. In each of the three languages,
on SQLite and PostgreSQL, through the same functions the bots call."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest

from bot.verify_web import _verdict_html, verdict_lines
from flows import referrals as rf
from flows import slip
from flows.consultation import State
from flows.fhir import questionnaire_response
from flows.intake import State as IntakeState
from flows.questionnaire import load
from flows.signing import Signer
from handlers.doctor.queue import case_view
from handlers.doctor.referrals import _prefill
from handlers.patient.intake_render import summary_text
from locales import LOCALES, Translator, catalog
from storage.crypto import KeyRing
from storage.models import Consultation, Doctor, Hospital, Intake, Patient
from storage.uow import Database, UnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
URL = "https://clinic.example.org/r/"

TRIAGE = {"disposition": "consultation", "department": "general", "reasons": []}
SELF: dict[str, Any] = {
    "subject": "self",
    "category": "headache",
    "complaint_text": "a dull ache since the weekend",
    "duration": "days_1_3",
    "severity": 5,
    "red_flags_cleared": True,
    "followup": {"headache_usual": "different"},
    "associated": [],
    "conditions": "none",
    "medicines": "none",
    "allergies": "none",
    "triage": TRIAGE,
}
# Someone the patient cares for: an older relative (the intake asks age band and sex).
OTHER: dict[str, Any] = {
    **SELF,
    "subject": "other",
    "age_band": "senior_65",
    "sex": "female",
    "category": "chronic_review",
    "followup": {"chronic_condition": "hypertension", "home_reading": "bp_high"},
}
CASES = {"me": SELF, "someone_i_care_for": OTHER}


def patient_side(tr: Translator, answers: dict[str, Any]) -> list[str]:
    """What the patient's own screens say about whom and what was asked: none of it may
    reach a doctor or a slip."""
    words = [
        tr.plain("intake.subject.self"),
        tr.plain("intake.subject.other"),
        tr.plain("intake.prefill.self"),
        tr.plain("intake.prefill.other"),
        tr.plain("intake.summary.title"),
        # "someone you care for (…)" without its values
        tr.plain("intake.summary.who_other", age="\0", sex="\0").split("\0")[0].strip(),
    ]
    category = load().categories[answers["category"]]
    words += [tr.plain(f"intake.q.{q.id}").split("\n")[0] for q in category.questions]
    return [w for w in words if w]


def _flat(text: str, locale: str) -> str:
    """Plain text with tags and entities gone and line breaks (a PDF wraps lines anywhere)
    as single spaces, or none at all in Chinese."""
    plain = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return re.sub(r"\s+", "" if locale == "zh_Hans" else " ", plain).strip()


def patient_words_in(text: str, tr: Translator, answers: dict[str, Any]) -> list[str]:
    """The patient-side words found in ``text`` (a short word like "Me" only as a word)."""
    flat = _flat(text, tr.locale)
    found = []
    for word in patient_side(tr, answers):
        word = _flat(word, tr.locale)
        if tr.locale != "zh_Hans" and len(word) <= 3:
            hit = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", flat) is not None
        else:
            hit = word in flat
        if hit:
            found.append(word)
    return found


def who_for_clinic(tr: Translator, answers: dict[str, Any]) -> str:
    """The clinic's wording of whom the intake is about."""
    if answers["subject"] == "self":
        return tr.plain("intake.summary.who_patient")
    return tr.plain(
        "intake.summary.who_proxy",
        age=tr.plain(f"intake.age.{answers['age_band']}"),
        sex=tr.plain(f"sex.{answers['sex']}"),
    )


def assert_clinic_wording(text: str, tr: Translator, answers: dict[str, Any], where: str) -> None:
    """``text`` (what a doctor or a desk reads) says whom the intake is about in the
    clinic's words and has none of the patient's."""
    found = patient_words_in(text, tr, answers)
    assert not found, f"[{tr.locale}] {where}: {found} in {_flat(text, tr.locale)!r}"
    expected = _flat(who_for_clinic(tr, answers), tr.locale)
    assert expected in _flat(text, tr.locale), f"[{tr.locale}] {where}: no {expected!r}"


async def _case(
    uow: UnitOfWork, locale: str, answers: dict[str, Any]
) -> tuple[Consultation, Doctor]:
    """A patient whose intake (``answers``) became an active case of a doctor; both read
    ``locale``."""
    patient = await uow.patients.add(
        Patient(tg_user_id=7300, locale=locale, onboarding_state="done", consent_version="1")
    )
    await uow.patients.set_field(patient, "name", "Lena Example")
    await uow.patients.set_field(patient, "birth_year", "1979")
    await uow.patients.set_field(patient, "sex", "female")
    doctor = await uow.doctors.add(
        Doctor(
            tg_user_id=8300,
            locale=locale,
            status="verified",
            verified_until=NOW + timedelta(days=300),
            departments="general",
        )
    )
    for field, value in (
        ("name", "Dr Ivo Sample"),
        ("title", "Attending physician"),
        ("licence", "LIC-0042"),
        ("hospital", "Example Online Clinic"),
    ):
        await uow.doctors.set_field(doctor, field, value)
    intake = await uow.intakes.add(
        Intake(
            patient_id=patient.id,
            state=IntakeState.TRIAGED.value,
            questionnaire_version=load().version,
            disposition="consultation",
            department="general",
        ),
        answers,
    )
    case = await uow.consultations.add(
        Consultation(
            patient_id=patient.id,
            intake_id=intake.id,
            department="general",
            priority=3,
            state=State.ACTIVE.value,
            doctor_id=doctor.id,
            requested_at=NOW - timedelta(minutes=20),
            accepted_at=NOW - timedelta(minutes=5),
        )
    )
    return case, doctor


@pytest.mark.parametrize("who", sorted(CASES))
@pytest.mark.parametrize("locale", LOCALES)
def test_the_clinicians_summary_never_says_me(locale: str, who: str) -> None:
    """The summary as doctors and slips get it, against the patient's own summary (which
    keeps the patient's words)."""
    tr, answers = Translator(locale), CASES[who]
    assert_clinic_wording(summary_text(tr, load(), answers), tr, answers, "summary")
    own = _flat(summary_text(tr, load(), answers, for_patient=True), locale)
    if who == "me":
        assert _flat(tr.plain("intake.subject.self"), locale) in own
    else:
        words = tr.plain(
            "intake.summary.who_other",
            age=tr.plain(f"intake.age.{answers['age_band']}"),
            sex=tr.plain(f"sex.{answers['sex']}"),
        )
        assert _flat(words, locale) in own


@pytest.mark.parametrize("who", sorted(CASES))
@pytest.mark.parametrize("locale", LOCALES)
async def test_doctor_card_slip_and_verify_page(
    db: Database, keyring: KeyRing, locale: str, who: str
) -> None:
    """/queue's case card, the referral prefilled from the case, the slip PDF's text and
    the verify page (web and command line) for an intake about the patient and about
    someone they care for."""
    if locale == "zh_Hans" and slip.find_cjk_font() is None:
        pytest.skip("no CJK font: install Debian's fonts-droid-fallback (.ci/test does)")
    tr, answers = Translator(locale), CASES[who]
    signer = Signer(keyring)
    async with db.uow() as uow:
        case, doctor = await _case(uow, locale, answers)
        card = await case_view(uow, tr, doctor, case, NOW)
        assert_clinic_wording(card, tr, answers, "case card")
        findings = await _prefill(uow, case)
        assert_clinic_wording(findings, tr, answers, "prefilled findings")
        hospital = Hospital(name="Example City Hospital", locale=locale, departments="[]")
        uow.session.add(hospital)
        await uow.session.flush()
        ref = await rf.start_draft(
            uow, doctor, case.patient_id, consultation_id=case.id, findings=findings
        )
        await rf.save_draft(
            uow,
            ref,
            {
                "hospital_id": hospital.id,
                "target_department": "Neurology",
                "reason": "Headache that differs from the usual ones",
                "urgency": "within_2w",
                "valid_until": date(2026, 3, 20).isoformat(),
            },
        )
        ref, content, token = await rf.issue(uow, doctor, ref.id, NOW, signer)
        pdf = slip.render_slip(content, token, URL + str(ref.code))
        doc = pdfium.PdfDocument(pdf)
        text = "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
        assert_clinic_wording(text, tr, answers, "slip PDF")
        verdict = await rf.verify_token(uow, token, signer, NOW + timedelta(days=1))
        assert verdict.status == "valid"
        page = _verdict_html(tr, verdict)
        lines = "\n".join(verdict_lines(tr, verdict))
        assert content.patient_name in page and content.patient_name in lines
        for shown, where in ((page, "verify page"), (lines, "referral verify")):
            found = patient_words_in(shown, tr, answers)
            assert not found, f"[{locale}] {where}: {found}"
        await uow.commit()


def test_the_exported_record_names_the_patient_not_me() -> None:
    """The FHIR QuestionnaireResponse (the patient's download and the record a doctor
    exports) codes whom the intake is about with the record's wording."""
    intake = Intake(
        id="b" * 32,
        patient_id="p" * 32,
        state=IntakeState.TRIAGED.value,
        questionnaire_version=load().version,
        created_at=NOW,
    )
    en = Translator("en")
    for answers, msgid in (
        (SELF, "intake.subject.record.self"),
        (OTHER, "intake.subject.record.other"),
    ):
        doc = questionnaire_response(load(), intake, answers, patient_ref="p" * 32)
        [subject] = [i for i in doc["item"] if i["linkId"] == "subject"]
        display = subject["answer"][0]["valueCoding"]["display"]
        assert display == en.plain(msgid)
        assert display not in (en.plain("intake.subject.self"), en.plain("intake.subject.other"))


def test_every_follow_up_question_has_a_summary_label() -> None:
    """A question as it was put to the patient ("... the one that worries you most") is not
    a label in a summary: each has a short one, in every language."""
    q = load()
    missing = [
        (locale, question.id)
        for locale in LOCALES
        for category in q.categories.values()
        for question in category.questions
        if not catalog(locale).get(f"intake.summary.q.{question.id}")
    ]
    assert not missing
