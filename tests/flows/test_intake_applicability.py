"""The intake uses what it knows: categories, checklist items, follow-up questions and
symptoms that cannot apply to the person's sex or age band are not offered or asked — and an
unknown sex or age hides nothing.

The expectations are written out here from the clinical facts, independently of the data
file; the bundled intake.toml must hide exactly those and nothing else, for every sex × age
band (known or not). The rendered steps are checked too, and the use cases on a database.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flows import intake as flow
from flows.intake import State, questions_of, who_of
from flows.onboarding import SEX_VALUES
from flows.questionnaire import DataFileError, Questionnaire, Who, load, parse
from handlers.patient.intake_render import IntakeCB, step_view
from locales import Translator
from storage.models import Intake, Patient
from storage.uow import Database, UnitOfWork
from tests.flows.test_questionnaire import FLAGS, minimal

Q = load()
AGES = Q.age_bands
CHILDREN = ("infant_0_3m", "infant_3_12m", "child_1_5", "child_6_12")
CAN_BE_PREGNANT = ("child_6_12", "teen_13_17", "adult_18_64")
HAS_PERIODS = ("teen_13_17", "adult_18_64")
CAN_BE_AFTER_MENOPAUSE = ("adult_18_64", "senior_65")

# (kind, id) -> (the sexes it can apply to, the age bands it can apply to); None: any.
ONLY: dict[tuple[str, str], tuple[tuple[str, ...] | None, tuple[str, ...] | None]] = {
    ("category", "womens_health"): (("female",), ("teen_13_17", "adult_18_64", "senior_65")),
    ("category", "child_illness"): (None, CHILDREN),
    ("category", "cough_cold"): (None, ("teen_13_17", "adult_18_64", "senior_65")),
    ("category", "fever"): (None, ("teen_13_17", "adult_18_64", "senior_65")),
    ("flag", "pregnancy_bleeding"): (("female",), CAN_BE_PREGNANT),
    ("flag", "testicular_pain"): (("male",), None),
    ("flag", "infant_fever"): (None, ("infant_0_3m",)),  # "a baby under 3 months"
    ("flag", "child_unresponsive"): (None, CHILDREN),
    ("flag", "child_dehydration"): (None, CHILDREN),  # "no wet nappy for 8 hours"
    ("question", "abdominal_pregnancy"): (("female",), CAN_BE_PREGNANT),
    ("question", "pregnancy_status"): (None, HAS_PERIODS),
    ("symptom", "irregular_periods"): (("female",), HAS_PERIODS),
    ("symptom", "heavy_periods"): (("female",), HAS_PERIODS),
    ("symptom", "bleeding_after_menopause"): (("female",), CAN_BE_AFTER_MENOPAUSE),
    ("symptom", "menopause_symptoms"): (("female",), CAN_BE_AFTER_MENOPAUSE),
    ("symptom", "vaginal_discharge"): (("female",), None),
}


def applies(kind: str, item: str, who: Who) -> bool:
    """The expectation: only a KNOWN female or male sex and a known age band rule out."""
    sexes, bands = ONLY.get((kind, item), (None, None))
    if sexes is not None and who.sex in ("female", "male") and who.sex not in sexes:
        return False
    return bands is None or who.age_band is None or who.age_band in bands


EVERYONE = [
    pytest.param(Who(sex, band), id=f"{sex}-{band}")
    for sex in (*SEX_VALUES, None)
    for band in (*AGES, None)
]


@pytest.mark.parametrize("who", EVERYONE)
def test_exactly_what_can_apply_is_offered_and_asked(who: Who) -> None:
    offered = [c.id for c in Q.offered(who)]
    assert offered == [c for c in Q.categories if applies("category", c, who)]
    for cat in Q.offered(who):
        assert list(Q.checklist(cat, who)) == [
            f for f in cat.red_flags if applies("flag", f, who)
        ], cat.id
        assert Q.checklist(cat, who), f"{cat.id}: an empty checklist"
        assert [q.id for q in cat.questions_for(who)] == [
            q.id for q in cat.questions if applies("question", q.id, who)
        ], cat.id
        assert list(Q.symptoms_for(cat, who)) == [
            s for s in cat.associated if applies("symptom", s, who)
        ], cat.id


def _intake(state: State) -> Intake:
    return Intake(
        id="abcdef0123456789", patient_id="p", state=state.value, questionnaire_version="t"
    )


def _offered(q: Questionnaire, state: State, answers: dict[str, Any]) -> set[str]:
    """The values of the step's own buttons (not back or cancel)."""
    _, markup = step_view(Translator("en"), q, _intake(state), answers, {})
    assert markup is not None
    values = set()
    for row in markup.inline_keyboard:
        for button in row:
            assert button.callback_data is not None
            cb = IntakeCB.unpack(button.callback_data)
            if cb.action not in ("back", "cancel"):
                values.add(cb.value)
    return values


@pytest.mark.parametrize("who", EVERYONE)
def test_the_steps_show_nothing_that_cannot_apply(who: Who) -> None:
    """What the patient sees: the complaint buttons, each checklist, each follow-up question
    and the symptoms of each complaint offered."""
    base: dict[str, Any] = {"subject": "other"}
    if who.sex:
        base["sex"] = who.sex
    if who.age_band:
        base["age_band"] = who.age_band
    assert who_of(base) == who
    categories = _offered(Q, State.COMPLAINT, base)
    assert categories == {c for c in Q.categories if applies("category", c, who)}
    for cat in Q.offered(who):
        answers = {**base, "category": cat.id}
        flags = _offered(Q, State.RED_FLAGS, answers) - {"none"}
        assert flags == {f for f in cat.red_flags if applies("flag", f, who)}
        questions = questions_of(Q, answers)
        assert [q.id for q in questions] == [
            q.id for q in cat.questions if applies("question", q.id, who)
        ]
        for index, question in enumerate(questions):
            asked = step_view(
                Translator("en"),
                Q,
                _intake(State.FOLLOW_UP),
                {**answers, "question_index": index},
                {},
            )[0]
            assert asked == Translator("en")(f"intake.q.{question.id}")
        symptoms = _offered(Q, State.ASSOCIATED, answers) - {"done", "none"}
        assert symptoms == {s for s in cat.associated if applies("symptom", s, who)}
        assert flow.snapshot(Q, answers).question_count == len(questions)


@pytest.mark.parametrize("sex", [None, "other", "undisclosed"])
def test_an_unknown_sex_shows_everything_the_age_allows(sex: str | None) -> None:
    adult = Who(sex, "adult_18_64")
    abdominal, urinary = Q.category("abdominal_pain"), Q.category("urinary")
    assert "pregnancy_bleeding" in Q.checklist(abdominal, adult)
    assert "testicular_pain" in Q.checklist(urinary, adult)
    assert "abdominal_pregnancy" in [q.id for q in abdominal.questions_for(adult)]
    assert "womens_health" in [c.id for c in Q.offered(adult)]


def test_nothing_is_hidden_when_nothing_is_known() -> None:
    nobody = Who()
    assert Q.offered(nobody) == tuple(Q.categories.values())
    for cat in Q.categories.values():
        assert Q.checklist(cat, nobody) == cat.red_flags
        assert cat.questions_for(nobody) == cat.questions
        assert Q.symptoms_for(cat, nobody) == cat.associated


def test_a_man_and_a_woman_see_different_abdominal_checklists() -> None:
    abdominal = Q.category("abdominal_pain")
    man, woman = Who("male", "adult_18_64"), Who("female", "adult_18_64")
    assert Q.checklist(abdominal, man) == ("abdominal_emergency", "bleeding", "sepsis")
    assert Q.checklist(abdominal, woman) == (
        "abdominal_emergency", "bleeding", "pregnancy_bleeding", "sepsis",
    )  # fmt: skip
    assert [q.id for q in abdominal.questions_for(man)] == ["abdominal_pain_where"]
    assert "child_dehydration" in Q.checklist(abdominal, Who("male", "child_1_5"))


# --- the data file: applicability is checked at start-up ----------------------------------------


def _with(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(minimal())
    data["category"][3]["red_flags"] = ["chest_pain", "infant_fever"]
    change(data)
    return data


def test_applicability_data_parses() -> None:
    data = _with(
        lambda d: (
            d.update(applies={"red_flag": {"infant_fever": {"age_bands": ["infant"]}}}),
            d["category"][4].update(sexes=["female"]),
            d["category"][1]["question"][0].update(sexes=["male"], age_bands=["adult"]),
        )
    )
    q = parse(data, "clinic.toml", FLAGS)
    cat3, cat4 = q.category("cat3"), q.category("cat4")
    assert q.checklist(cat3, Who(None, "adult")) == ("chest_pain",)
    assert q.checklist(cat3, Who(None, "infant")) == ("chest_pain", "infant_fever")
    assert not cat4.offered_for(Who("male", None)) and cat4.offered_for(Who("other", None))
    assert q.category("cat1").questions_for(Who("female", "adult")) == ()
    assert len(q.category("cat1").questions_for(Who("male", "adult"))) == 1


REFUSED = {
    "unknown sex": (
        lambda d: d["category"][0].update(sexes=["woman"]),
        "category 'cat0': unknown sex 'woman' (known: female, male)",
    ),
    "empty sexes": (
        lambda d: d["category"][0].update(sexes=[]),
        "category 'cat0'.sexes must not be empty",
    ),
    "unknown age band of a question": (
        lambda d: d["category"][1]["question"][0].update(age_bands=["toddler"]),
        "category 'cat1' question 'temp': unknown age band 'toddler'",
    ),
    "unknown red flag": (
        lambda d: d.update(applies={"red_flag": {"nosebleed": {"sexes": ["male"]}}}),
        "applies.red_flag: unknown red flag 'nosebleed'",
    ),
    "unknown symptom": (
        lambda d: d.update(applies={"symptom": {"sneezing": {"sexes": ["male"]}}}),
        "applies.symptom: unknown symptom 'sneezing'",
    ),
    "unknown kind": (
        lambda d: d.update(applies={"question": {}}),
        "applies: unknown key(s) ['question']",
    ),
    "an entry that says nothing": (
        lambda d: d.update(applies={"red_flag": {"infant_fever": {}}}),
        "applies.red_flag.infant_fever: give sexes or age_bands",
    ),
    "an unknown key in an entry": (
        lambda d: d.update(applies={"red_flag": {"infant_fever": {"ages": ["infant"]}}}),
        "applies.red_flag.infant_fever: unknown key(s) ['ages']",
    ),
    "a checklist empty for someone": (
        lambda d: d.update(applies={"red_flag": {"chest_pain": {"sexes": ["female"]}}}),
        "category 'cat0': no checklist item applies to male, infant (every checklist needs one)",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_broken_applicability_is_refused_naming_the_problem(case: str) -> None:
    change, problem = REFUSED[case]
    with pytest.raises(DataFileError) as info:
        parse(_with(change), "clinic.toml", FLAGS)
    message = str(info.value)
    assert message.startswith("clinic.toml: "), message
    assert problem in message, message


# --- the use cases, on a database ---------------------------------------------------------------


async def _patient(uow: UnitOfWork, tg: int, sex: str | None, birth_year: str) -> Patient:
    patient = await uow.patients.add(
        Patient(tg_user_id=tg, locale="en", onboarding_state="done", consent_version="1")
    )
    await uow.patients.set_field(patient, "name", "Kit Fictional")
    await uow.patients.set_field(patient, "birth_year", birth_year)
    if sex is not None:
        await uow.patients.set_field(patient, "sex", sex)
    return patient


async def _press(uow: UnitOfWork, patient: Patient, intake: Intake, *steps: str) -> flow.Outcome:
    out = None
    for step in steps:
        action, _, value = step.partition("=")
        out = await flow.press(uow, patient, Q, intake.id[:8], action, value)
    assert out is not None
    return out


@pytest.mark.parametrize(("sex", "questions"), [
    ("male", ["abdominal_pain_where"]),
    ("female", ["abdominal_pain_where", "abdominal_pregnancy"]),
    (None, ["abdominal_pain_where", "abdominal_pregnancy"]),
])  # fmt: skip
async def test_about_me_uses_the_profile(
    db: Database, sex: str | None, questions: list[str]
) -> None:
    """For the patient themself, the sex and the age band come from their profile."""
    async with db.uow() as uow:
        patient = await _patient(uow, 7001, sex, "1990")
        intake = (await flow.begin(uow, patient, Q)).intake
        out = await _press(
            uow, patient, intake, "subj=self", "cat=abdominal_pain", "dur=today", "sev=4"
        )
        assert out.state is State.RED_FLAGS
        assert who_of(out.answers) == Who(sex, "adult_18_64")
        assert [q.id for q in questions_of(Q, out.answers)] == questions
        out = await _press(uow, patient, intake, "flag=none", "q0=upper")
        assert out.state is (State.ASSOCIATED if sex == "male" else State.FOLLOW_UP)
        if sex == "male":
            # A button of a question this person is not asked is stale.
            with pytest.raises(flow.StaleButton):
                await _press(uow, patient, intake, "q1=yes")


async def test_a_ticked_warning_sign_is_never_refused(db: Database) -> None:
    """An older message's checklist button still counts, even if no longer shown."""
    async with db.uow() as uow:
        patient = await _patient(uow, 7002, "male", "1990")
        intake = (await flow.begin(uow, patient, Q)).intake
        await _press(uow, patient, intake, "subj=self", "cat=abdominal_pain", "dur=today", "sev=4")
        out = await _press(uow, patient, intake, "flag=pregnancy_bleeding")
        assert out.state is State.EMERGENCY


async def test_correcting_who_it_is_about_forgets_what_no_longer_applies(db: Database) -> None:
    """A pregnancy answer given for a girl of 15 does not stay when the patient corrects the
    intake to be about a boy; the triage no longer uses it."""
    async with db.uow() as uow:
        patient = await _patient(uow, 7003, "female", "1980")
        intake = (await flow.begin(uow, patient, Q)).intake
        out = await _press(
            uow, patient, intake,
            "subj=other", "age=teen_13_17", "sex=female", "cat=abdominal_pain", "dur=today",
            "sev=4", "flag=none", "q0=upper", "q1=possible", "sym=none", "hist=none",
            "hist=none", "hist=none", "att=skip",
        )  # fmt: skip
        assert out.state is State.SUMMARY
        assert out.answers["followup"] == {
            "abdominal_pain_where": "upper",
            "abdominal_pregnancy": "possible",
        }
        assert "abdominal_pain_pregnancy" in flow.decide(Q, out.answers).reasons
        out = await _press(
            uow, patient, intake, "fix=subject", "subj=other", "age=teen_13_17", "sex=male"
        )
        assert out.state is State.COMPLAINT
        assert out.answers["followup"] == {"abdominal_pain_where": "upper"}
        assert "abdominal_pain_pregnancy" not in flow.decide(Q, out.answers).reasons
