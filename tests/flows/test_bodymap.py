"""The body map's data and rules, with no bot and no database: the regions file is consistent
(unique ids, shapes inside the box, known categories, names in every language), what a page
may send is checked strictly, the complaint the marks name, and the doctor's picture is drawn
from the same shapes."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from flows import bodymap
from flows.bodymap import BODYMAP_FILE, VIEWS, Mark, MarkError
from flows.bodymap_image import colour, figure, render
from flows.questionnaire import DataFileError, load
from locales import LOCALES, Translator, catalog

Q = load()
BM = bodymap.load()


def _data() -> dict[str, Any]:
    with BODYMAP_FILE.open("rb") as fh:
        return tomllib.load(fh)


def test_region_ids_are_unique_and_cover_the_body() -> None:
    ids = [r["id"] for r in _data()["region"]]
    assert len(ids) == len(set(ids))
    expected = {
        "head", "neck", "chest_left", "chest_right", "abdomen_ruq", "abdomen_luq",
        "abdomen_rlq", "abdomen_llq", "upper_back", "lower_back",
    }  # fmt: skip
    for side in ("left", "right"):
        for segment in ("upper_arm", "forearm", "hand", "thigh", "shin", "foot"):
            expected.add(f"{segment}_{side}")
    assert expected <= set(ids)
    assert BM.in_view("front") and BM.in_view("back")


@pytest.mark.parametrize("locale", LOCALES)
def test_every_region_and_pain_type_has_a_name(locale: str) -> None:
    messages = catalog(locale)
    missing = [m for m in bodymap.message_ids(BM) if not messages.get(m)]
    assert missing == [], f"[{locale}] missing {missing}"
    names = [messages[f"bodymap.region.{r}"] for r in BM.regions]
    assert len(names) == len(set(names)), f"[{locale}] two regions share a name"


def test_categories_exist_and_shapes_stay_in_the_box() -> None:
    for region in BM.regions.values():
        assert region.category in Q.categories, region.id
        for view, points in region.shapes.items():
            assert view in VIEWS
            assert all(0 <= x <= BM.width and 0 <= y <= BM.height for x, y in points)
    assert BM.regions["chest_left"].category == "chest_pain"
    assert BM.regions["abdomen_rlq"].category == "abdominal_pain"
    assert BM.regions["head"].category == "headache"


def test_left_and_right_are_the_patients_own() -> None:
    """From the front the patient's left is on the viewer's right; from behind, on the left."""

    def centre_x(region: str, view: str) -> float:
        points = BM.regions[region].shapes[view]
        return sum(x for x, _ in points) / len(points)

    middle = BM.width / 2
    assert centre_x("chest_left", "front") > middle
    assert centre_x("hand_left", "front") > middle
    assert centre_x("hand_left", "back") < middle
    assert centre_x("foot_right", "back") > middle


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["region"].append(dict(d["region"][0])), "defined twice"),
        (lambda d: d["region"][0].update(category="nowhere"), "unknown category 'nowhere'"),
        (lambda d: d["region"][0].update(front=[[1, 1], [2, 2]]), "at least 3"),
        (lambda d: d["region"][0].update(front=[[1, 1], [2, 2], [999, 3]]), "outside"),
        (lambda d: d["region"][0].pop("front") and d["region"][0].pop("back"), "no shape"),
        (lambda d: d.update(colour="red"), "unknown keys"),
        (lambda d: d.update(decisive=["nowhere"]), "decisive: unknown category"),
    ],
)
def test_a_broken_file_is_refused_with_its_problem_named(change: Any, problem: str) -> None:
    data = _data()
    change(data)
    with pytest.raises(DataFileError, match=problem):
        bodymap.parse(data, "bodymap.toml", tuple(Q.categories))


def test_marks_are_taken_when_well_formed() -> None:
    marks = bodymap.parse_marks(
        [
            {"region": "chest_left", "intensity": 8, "type": "pressing"},
            {"region": "forearm_left", "intensity": 0},
            {"region": "neck", "intensity": 10.0, "type": ""},
        ],
        BM,
    )
    assert marks == [
        Mark("chest_left", 8, "pressing"), Mark("forearm_left", 0, ""), Mark("neck", 10, ""),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ([], "no_marks"),
        ("chest_left", "no_marks"),
        ([{"region": "tail", "intensity": 3}], "bad_region"),
        ([{"region": "head", "intensity": 3}, {"region": "head", "intensity": 4}], "bad_region"),
        (["head"], "bad_region"),
        ([{"region": "head", "intensity": 11}], "bad_intensity"),
        ([{"region": "head", "intensity": -1}], "bad_intensity"),
        ([{"region": "head", "intensity": 7.5}], "bad_intensity"),
        ([{"region": "head", "intensity": "7"}], "bad_intensity"),
        ([{"region": "head", "intensity": True}], "bad_intensity"),
        ([{"region": "head"}], "bad_intensity"),
        ([{"region": "head", "intensity": 3, "type": "electric"}], "bad_type"),
        ([{"region": "head", "intensity": 3, "type": 5}], "bad_type"),
        ([{"region": r, "intensity": 1} for r in list(BM.regions)[: BM.max_marks + 1]],
         "too_many"),
    ],
)  # fmt: skip
def test_bad_marks_are_refused_with_a_reason(raw: Any, code: str) -> None:
    with pytest.raises(MarkError) as caught:
        bodymap.parse_marks(raw, BM)
    assert caught.value.code == code


ALL = tuple(Q.categories)


@pytest.mark.parametrize(
    ("regions", "chosen"),
    [
        (["chest_left"], "chest_pain"),
        (["chest_left", "chest_right"], "chest_pain"),
        (["abdomen_rlq", "pelvis"], "abdominal_pain"),
        (["head"], "headache"),
        (["lower_back", "thigh_left"], "back_joint"),
        # Chest pain decides: its checklist asks about heart attack signs.
        (["chest_left", "upper_arm_left"], "chest_pain"),
        # Several complaints, none decisive: the patient picks.
        (["head", "lower_back"], None),
        (["abdomen_luq", "shin_right"], None),
    ],
)
def test_the_complaint_the_marks_name(regions: list[str], chosen: str | None) -> None:
    marks = [Mark(r, 5) for r in regions]
    assert bodymap.choose_category(marks, BM, ALL) == chosen


def test_a_category_not_offered_to_the_person_is_not_chosen() -> None:
    marks = [Mark("chest_left", 5)]
    assert bodymap.choose_category(marks, BM, ["headache"]) is None


def test_the_suggestions_come_in_priority_order() -> None:
    marks = [Mark("shin_left", 5), Mark("head", 2), Mark("abdomen_llq", 3)]
    assert bodymap.categories_of(marks, BM) == ["abdominal_pain", "headache", "back_joint"]


def test_the_doctors_picture_shades_the_marked_regions_by_intensity() -> None:
    marks = [Mark("chest_left", 8, "sharp"), Mark("thigh_right", 3, "")]
    fig = figure(BM, marks, Translator("en"))
    patches = {
        (ax.get_gid(), p.get_gid()): p for ax in fig.axes for p in ax.patches if p.get_gid()
    }
    assert patches[("front", "chest_left")].get_label() == "8"
    assert patches[("front", "thigh_right")].get_label() == "3"
    assert patches[("back", "thigh_right")].get_label() == "3"  # seen from behind too
    assert patches[("back", "upper_back")].get_label() == ""
    assert patches[("front", "chest_left")].get_facecolor()[:3] == pytest.approx(colour(8))
    assert colour(0) != colour(10)
    png = render(BM, marks, Translator("ru"))
    assert png.startswith(b"\x89PNG")


MARKED: dict[str, Any] = {
    "subject": "self",
    "category": "chest_pain",
    "severity": 7,
    "bodymap": {
        "version": BM.version,
        "marks": [
            {"region": "chest_left", "intensity": 7, "type": "pressing"},
            {"region": "upper_arm_left", "intensity": 4, "type": ""},
        ],
    },
}


@pytest.mark.parametrize("locale", LOCALES)
def test_the_summary_says_where_in_the_readers_language(locale: str) -> None:
    from handlers.patient.intake_render import summary_text

    tr = Translator(locale)
    text = summary_text(tr, Q, MARKED)
    where = f"<b>{tr('bodymap.summary.location')}</b> {tr.plain('bodymap.region.chest_left')}"
    assert where in text
    assert tr.plain("bodymap.type.pressing") in text
    assert "bodymap." not in text


def test_the_fhir_record_carries_the_marks() -> None:
    from datetime import UTC, datetime

    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    from flows.fhir import questionnaire_response
    from flows.intake import State
    from storage.models import Intake

    intake = Intake(
        id="a" * 32, patient_id="p" * 32, state=State.TRIAGED.value,
        questionnaire_version=Q.version, created_at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
    )  # fmt: skip
    doc = questionnaire_response(Q, intake, MARKED, patient_ref="p" * 32)
    QuestionnaireResponse.model_validate(doc)
    [item] = [i for i in doc["item"] if i["linkId"] == "body_map"]
    chest, arm = item["answer"]
    assert chest["valueCoding"]["code"] == "chest_left"
    assert chest["valueCoding"]["display"] == "Left side of the chest"
    nested = {i["linkId"]: i["answer"] for i in chest["item"]}
    assert nested["body_map.intensity"] == [{"valueInteger": 7}]
    assert nested["body_map.type"][0]["valueCoding"]["code"] == "pressing"
    assert [i["linkId"] for i in arm["item"]] == ["body_map.intensity"]
