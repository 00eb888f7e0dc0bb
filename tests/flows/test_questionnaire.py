"""The questionnaire data: the bundled file is complete, broken files are refused with the
file and the problem named, and the triage rules grade and route as written."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from flows import redflags
from flows.questionnaire import (
    DISPOSITIONS,
    INTAKE_FILE,
    MIN_CATEGORIES,
    DataFileError,
    Facts,
    load,
    parse,
)
from flows.triage import for_red_flag, triage
from locales import LOCALES, catalog

FLAGS = ("chest_pain", "breathing", "self_harm", "infant_fever")


def minimal() -> dict[str, Any]:
    """A small valid questionnaire (no catalog checks)."""
    cats: list[dict[str, Any]] = [
        {
            "id": f"cat{i}",
            "department": "general",
            "red_flags": ["chest_pain"],
            "associated": ["nausea"],
            "default_disposition": "consultation",
        }
        for i in range(MIN_CATEGORIES)
    ]
    cats[0]["default_disposition"] = "self_care"
    cats[1]["question"] = [{"id": "temp", "options": ["low", "high"]}]
    cats[2]["age_bands"] = ["infant"]
    return {
        "version": "test-1",
        "durations": ["hours", "weeks"],
        "age_bands": ["infant", "adult"],
        "departments": ["general", "pediatrics"],
        "symptoms": ["nausea", "fever"],
        "category": cats,
        "rule": [
            {"id": "severe", "disposition": "consultation_24", "severity_min": 7},
            {"id": "hot", "disposition": "emergency", "answers": {"temp": ["high"]}},
            {
                "id": "long",
                "disposition": "consultation",
                "durations": ["weeks"],
                "categories": ["cat0"],
            },
        ],
        "department_rule": [
            {"id": "kids", "department": "pediatrics", "age_bands": ["infant"]},
        ],
    }


def test_minimal_questionnaire_parses() -> None:
    q = parse(minimal(), "test.toml", FLAGS)
    assert len(q.categories) == MIN_CATEGORIES
    assert q.question("temp") is not None


def _broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(minimal())
    change(data)
    return data


BROKEN = {
    "unknown top-level key": (lambda d: d.update(colour="blue"), "unknown key(s) ['colour']"),
    "unknown category key": (
        lambda d: d["category"][0].update(severity=3),
        "category 'cat0': unknown key(s) ['severity']",
    ),
    "unknown department": (
        lambda d: d["category"][0].update(department="surgery"),
        "unknown department 'surgery'",
    ),
    "unknown red flag": (
        lambda d: d["category"][0].update(red_flags=["headache"]),
        "unknown red flag 'headache'",
    ),
    "empty checklist": (
        lambda d: d["category"][0].update(red_flags=[]),
        "red_flags must not be empty",
    ),
    "unknown symptom": (
        lambda d: d["category"][0].update(associated=["sneezing"]),
        "unknown symptom 'sneezing'",
    ),
    "bad default disposition": (
        lambda d: d["category"][0].update(default_disposition="emergency"),
        "unknown default_disposition 'emergency'",
    ),
    "bad rule disposition": (
        lambda d: d["rule"][0].update(disposition="later"),
        "unknown disposition 'later'",
    ),
    "severity out of range": (
        lambda d: d["rule"][0].update(severity_min=11),
        "severity_min must be a whole number from 0 to 10",
    ),
    "unknown question in a rule": (
        lambda d: d["rule"][1].update(answers={"pulse": ["high"]}),
        "unknown question 'pulse'",
    ),
    "unknown option in a rule": (
        lambda d: d["rule"][1].update(answers={"temp": ["boiling"]}),
        "'boiling' is not an option of that question",
    ),
    "duplicate category": (
        lambda d: d["category"].append(copy.deepcopy(d["category"][0])),
        "category 'cat0' is defined twice",
    ),
    "too few categories": (
        lambda d: d.update(category=d["category"][:3]),
        f"at least {MIN_CATEGORIES} categories are needed",
    ),
    "missing version": (lambda d: d.pop("version"), "top level: missing 'version'"),
    "wrong type": (
        lambda d: d.update(symptoms="nausea"),
        "symptoms must be a list of strings",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_data_is_refused_naming_file_and_problem(case: str) -> None:
    change, problem = BROKEN[case]
    with pytest.raises(DataFileError) as info:
        parse(_broken(change), "clinic.toml", FLAGS)
    message = str(info.value)
    assert message.startswith("clinic.toml: "), message
    assert problem in message, message


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text('version = "1"\n[[category]\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"^broken\.toml: not valid TOML"):
        load(bad)
    with pytest.raises(DataFileError, match=r"^absent\.toml: cannot read it"):
        load(tmp_path / "absent.toml")


def test_missing_translation_is_refused(tmp_path: Path) -> None:
    data = tomllib.loads(INTAKE_FILE.read_text(encoding="utf-8"))
    # A new category that no catalog translates.
    data["category"].append({**data["category"][-1], "id": "not_translated_anywhere"})
    path = tmp_path / "intake.toml"
    path.write_text(_to_toml(data), encoding="utf-8")
    with pytest.raises(DataFileError) as info:
        load(path)
    assert "intake.category.not_translated_anywhere" in str(info.value)


def _to_toml(data: dict[str, Any]) -> str:
    """A tiny TOML writer for the questionnaire's shape (test only)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    lines: list[str] = []
    tables = {
        k: v for k, v in data.items() if isinstance(v, list) and v and isinstance(v[0], dict)
    }
    for k, v in data.items():
        if k not in tables:
            lines.append(f"{k} = {value(v)}")
    for k, rows in tables.items():
        for row in rows:
            lines.append(f"\n[[{k}]]")
            subs = {
                sk: sv
                for sk, sv in row.items()
                if isinstance(sv, list) and sv and isinstance(sv[0], dict)
            }
            for rk, rv in row.items():
                if rk not in subs:
                    lines.append(f"{rk} = {value(rv)}")
            for sk, srows in subs.items():
                for srow in srows:
                    lines.append(f"[[{k}.{sk}]]")
                    lines.extend(f"{a} = {value(b)}" for a, b in srow.items())
    return "\n".join(lines) + "\n"


def test_writer_round_trips_the_bundled_file() -> None:
    data = tomllib.loads(INTAKE_FILE.read_text(encoding="utf-8"))
    assert tomllib.loads(_to_toml(data)) == data


# --- the bundled questionnaire ---------------------------------------------------------------


def test_bundled_questionnaire_is_complete() -> None:
    q = load()
    assert len(q.categories) >= MIN_CATEGORIES
    expected = {
        "chest_pain", "breathing", "headache", "abdominal_pain", "fever", "cough_cold", "skin",
        "urinary", "back_joint", "mental_health", "child_illness", "chronic_review",
    }  # fmt: skip
    assert expected <= set(q.categories)
    assert "self_harm" in q.category("mental_health").red_flags
    for cat in q.categories.values():
        assert set(cat.red_flags) <= set(redflags.RED_FLAG_IDS)
    for locale in LOCALES:
        messages = catalog(locale)
        for msgid, _ in q.message_ids():
            assert messages.get(msgid), f"{locale}: {msgid}"


def test_self_care_advice_names_no_medicine() -> None:
    """Careline never suggests drugs or doses: the advice texts are checked for the obvious."""
    q = load()
    banned = (
        *("paracetamol", "ibuprofen", "aspirin", " mg", "tablet", "painkiller", "antibiotic"),
        *("对乙酰氨基酚", "布洛芬", "阿司匹林", "毫克", "药片", "抗生素", "止痛药"),
        *("парацетамол", "ибупрофен", "аспирин", " мг", "таблет", "антибиотик", "обезболива"),
    )
    for cat in q.categories.values():
        if cat.default_disposition != "self_care":
            continue
        for locale in LOCALES:
            text = catalog(locale)[f"selfcare.{cat.id}"].casefold()
            found = [w for w in banned if w in text]
            assert not found, f"selfcare.{cat.id} [{locale}] mentions {found}"


# --- triage ----------------------------------------------------------------------------------


def test_rules_raise_never_lower_and_record_reasons() -> None:
    q = parse(minimal(), "test.toml", FLAGS)
    base = Facts(category="cat0", severity=2, duration="hours")
    assert triage(q, base).disposition == "self_care"
    assert triage(q, base).reasons == ()
    severe = triage(q, Facts(category="cat0", severity=8, duration="weeks"))
    assert severe.disposition == "consultation_24"
    assert severe.reasons == ("severe",)  # "long" matched too, but is not the deciding one
    hot = triage(q, Facts(category="cat1", severity=8, answers={"temp": "high"}))
    assert (hot.disposition, hot.reasons) == ("emergency", ("hot",))
    assert triage(q, Facts(category="cat1", severity=1, answers={"temp": "low"})).disposition == (
        "consultation"
    )


def test_department_rules() -> None:
    q = parse(minimal(), "test.toml", FLAGS)
    assert triage(q, Facts(category="cat3")).department == "general"
    assert triage(q, Facts(category="cat3", age_band="infant")).department == "pediatrics"


def test_red_flag_decides() -> None:
    q = load()
    result = for_red_flag(q, "chest_pain", "chest_pain")
    assert result.disposition == "emergency_ambulance"
    assert result.reasons == ("redflag:chest_pain",)
    assert for_red_flag(q, "self_harm", None).department == "general"


def test_every_disposition_is_reachable_in_the_bundled_rules() -> None:
    q = load()
    floors = {c.default_disposition for c in q.categories.values()}
    raised = {r.disposition for r in q.rules}
    flags = {
        redflags.registry()[f].disposition for c in q.categories.values() for f in c.red_flags
    }
    assert set(DISPOSITIONS) <= floors | raised | flags
