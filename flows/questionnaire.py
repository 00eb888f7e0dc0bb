"""The intake questionnaire as data: complaint categories, their follow-up questions, red-flag
checklists, department mapping and triage rules, read from ``flows/questionnaires/intake.toml``.

Clinic staff edit the data file, not this code. :func:`load` checks everything a typo could
break (unknown keys, unknown ids, dispositions, message ids missing from a catalog) and raises
:class:`DataFileError` naming the file and the problem; start-up calls :func:`validate`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from flows import redflags
from locales import LOCALES, catalog

DATA_DIR = Path(__file__).parent / "questionnaires"
INTAKE_FILE = DATA_DIR / "intake.toml"
MIN_CATEGORIES = 12

# Most urgent first; a disposition's index is its rank.
DISPOSITIONS = ("emergency_ambulance", "emergency", "consultation_24", "consultation", "self_care")
SUBJECTS = ("self", "other")
BUTTON_MAX = 32
# The sexes applicability data may name. Anyone else (other, undisclosed, not asked) is shown
# everything: nothing can be ruled out for them.
SEXES = ("female", "male")


class DataFileError(ValueError):
    """A questionnaire data file is broken; the message names the file and the problem."""


def more_urgent(a: str, b: str) -> str:
    """The more urgent of two dispositions."""
    return a if DISPOSITIONS.index(a) <= DISPOSITIONS.index(b) else b


@dataclass(frozen=True)
class Who:
    """Whom an intake is about, as far as it is known (None: not known)."""

    sex: str | None = None
    age_band: str | None = None


@dataclass(frozen=True)
class Applies:
    """Who a category, question, checklist item or symptom can apply to: one of ``sexes``
    and one of ``age_bands`` (an empty list: anyone)."""

    sexes: tuple[str, ...] = ()
    age_bands: tuple[str, ...] = ()

    def to(self, who: Who) -> bool:
        """Could it apply to ``who``? An unknown sex or age never rules anything out."""
        if self.sexes and who.sex in SEXES and who.sex not in self.sexes:
            return False
        return not self.age_bands or who.age_band is None or who.age_band in self.age_bands


EVERYONE = Applies()


@dataclass(frozen=True)
class Question:
    """A follow-up question with button answers (``intake.q.<id>`` and ``.<option>``)."""

    id: str
    options: tuple[str, ...]
    applies: Applies = EVERYONE


@dataclass(frozen=True)
class Category:
    """A complaint category (``intake.category.<id>``)."""

    id: str
    department: str
    red_flags: tuple[str, ...]
    associated: tuple[str, ...]
    default_disposition: str
    applies: Applies = EVERYONE
    questions: tuple[Question, ...] = ()

    def offered_for(self, who: Who) -> bool:
        """Is this category offered for ``who``?"""
        return self.applies.to(who)

    def questions_for(self, who: Who) -> tuple[Question, ...]:
        """The follow-up questions that can apply to ``who``, in order."""
        return tuple(q for q in self.questions if q.applies.to(who))


@dataclass(frozen=True)
class Facts:
    """What the intake knows, as the rules see it."""

    category: str
    subject: str = "self"
    age_band: str | None = None
    severity: int | None = None
    duration: str | None = None
    associated: frozenset[str] = frozenset()
    answers: Mapping[str, str] = field(default_factory=dict)
    has_history: bool = False


@dataclass(frozen=True)
class Condition:
    """The optional conditions of a rule; all given ones must hold."""

    categories: frozenset[str] | None = None
    not_categories: frozenset[str] = frozenset()
    severity_min: int | None = None
    severity_max: int | None = None
    durations: frozenset[str] | None = None
    age_bands: frozenset[str] | None = None
    subject: str | None = None
    has_history: bool | None = None
    associated_any: frozenset[str] | None = None
    answers: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def holds(self, f: Facts) -> bool:
        """Pure: do the facts satisfy every given condition?"""
        checks = (
            self.categories is None or f.category in self.categories,
            f.category not in self.not_categories,
            self.severity_min is None
            or (f.severity is not None and f.severity >= self.severity_min),
            self.severity_max is None
            or (f.severity is not None and f.severity <= self.severity_max),
            self.durations is None or f.duration in self.durations,
            self.age_bands is None or f.age_band in self.age_bands,
            self.subject is None or f.subject == self.subject,
            self.has_history is None or f.has_history == self.has_history,
            self.associated_any is None or bool(self.associated_any & f.associated),
            all(f.answers.get(q) in allowed for q, allowed in self.answers.items()),
        )
        return all(checks)


@dataclass(frozen=True)
class Rule:
    """A triage rule (raises the disposition) or a department rule (overrides the department)."""

    id: str
    when: Condition
    disposition: str | None = None
    department: str | None = None


@dataclass(frozen=True)
class Questionnaire:
    """The whole intake questionnaire, validated."""

    version: str
    durations: tuple[str, ...]
    age_bands: tuple[str, ...]
    departments: tuple[str, ...]
    symptoms: tuple[str, ...]
    categories: Mapping[str, Category]
    rules: tuple[Rule, ...]
    department_rules: tuple[Rule, ...]
    # Checklist items and symptoms that only some people can have (by id; absent: anyone).
    red_flag_applies: Mapping[str, Applies] = field(default_factory=dict)
    symptom_applies: Mapping[str, Applies] = field(default_factory=dict)

    def category(self, category_id: str) -> Category:
        """A category by id (KeyError if unknown)."""
        return self.categories[category_id]

    def offered(self, who: Who) -> tuple[Category, ...]:
        """The complaint categories offered for ``who``, in order."""
        return tuple(c for c in self.categories.values() if c.offered_for(who))

    def checklist(self, category: Category, who: Who) -> tuple[str, ...]:
        """The category's red-flag checklist items that can apply to ``who``, in order."""
        return tuple(
            f for f in category.red_flags if self.red_flag_applies.get(f, EVERYONE).to(who)
        )

    def symptoms_for(self, category: Category, who: Who) -> tuple[str, ...]:
        """The category's associated symptoms that can apply to ``who``, in order."""
        return tuple(
            s for s in category.associated if self.symptom_applies.get(s, EVERYONE).to(who)
        )

    def question(self, question_id: str) -> Question | None:
        """A follow-up question by id, whichever category it belongs to."""
        for cat in self.categories.values():
            for q in cat.questions:
                if q.id == question_id:
                    return q
        return None

    def message_ids(self) -> list[tuple[str, bool]]:
        """Every message id the data needs, with whether it labels a button."""
        ids: list[tuple[str, bool]] = []
        ids += [(f"intake.duration.{d}", True) for d in self.durations]
        ids += [(f"intake.age.{a}", True) for a in self.age_bands]
        ids += [(f"dept.{d}", False) for d in self.departments]
        ids += [(f"intake.symptom.{s}", True) for s in self.symptoms]
        for cat in self.categories.values():
            ids.append((f"intake.category.{cat.id}", True))
            if cat.default_disposition == "self_care":
                ids.append((f"selfcare.{cat.id}", False))
            for q in cat.questions:
                ids.append((f"intake.q.{q.id}", False))
                ids += [(f"intake.q.{q.id}.{o}", True) for o in q.options]
        ids += [(f"triage.reason.{r.id}", False) for r in self.rules]
        return ids


# -- parsing -------------------------------------------------------------------------------------


class _Reader:
    """Reads one TOML table strictly, collecting the path for error messages."""

    def __init__(self, file: str, where: str, table: Any) -> None:
        self.file, self.where = file, where
        if not isinstance(table, dict):
            self.fail(f"{where} must be a table")
        self.table: dict[str, Any] = table
        self.seen: set[str] = set()

    def fail(self, problem: str) -> None:
        raise DataFileError(f"{self.file}: {problem}")

    def _get(self, key: str, required: bool) -> Any:
        self.seen.add(key)
        if key not in self.table:
            if required:
                self.fail(f"{self.where}: missing '{key}'")
            return None
        return self.table[key]

    def text(self, key: str, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            self.fail(f"{self.where}.{key} must be a non-empty string")
        return value

    def ids(self, key: str, required: bool = True) -> tuple[str, ...] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(f"{self.where}.{key} must be a list of strings")
        if len(set(value)) != len(value):
            self.fail(f"{self.where}.{key} lists an id twice")
        return tuple(value)

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(f"{self.where}.{key} must be a whole number from {low} to {high}")
        return value

    def boolean(self, key: str) -> bool | None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, bool):
            self.fail(f"{self.where}.{key} must be true or false")
        return value

    def tables(self, key: str) -> list[Any]:
        value = self._get(key, False)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"{self.where}.{key} must be an array of tables ([[{key}]])")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            self.fail(f"{self.where}: unknown key(s) {unknown}")


def _member(r: _Reader, what: str, value: str | None, allowed: Sequence[str]) -> None:
    if value is not None and value not in allowed:
        r.fail(f"{r.where}: unknown {what} '{value}' (known: {', '.join(allowed)})")


def _members(r: _Reader, what: str, values: Sequence[str] | None, allowed: Sequence[str]) -> None:
    for v in values or ():
        _member(r, what, v, allowed)


def _applies(r: _Reader, ages: Sequence[str]) -> Applies:
    """Optional ``sexes`` and ``age_bands`` keys: who the item can apply to."""
    sexes = r.ids("sexes", False)
    bands = r.ids("age_bands", False)
    for key, values in (("sexes", sexes), ("age_bands", bands)):
        if values == ():
            r.fail(f"{r.where}.{key} must not be empty (leave it out to mean anyone)")
    _members(r, "sex", sexes, SEXES)
    _members(r, "age band", bands, ages)
    return Applies(sexes or (), bands or ())


def _applies_table(
    top: _Reader, kind: str, known: Sequence[str], ages: Sequence[str]
) -> dict[str, Applies]:
    """``[applies.<kind>]``: ``<id> = { sexes = [...], age_bands = [...] }`` per item."""
    section = _Reader(top.file, "applies", top.table.get("applies", {}))
    section.seen.update(("red_flag", "symptom"))
    section.done()
    table = _Reader(top.file, f"applies.{kind}", section.table.get(kind, {}))
    out: dict[str, Applies] = {}
    for item_id, spec in table.table.items():
        table.seen.add(item_id)
        what = kind.replace("_", " ")
        _member(table, what, item_id, known)
        r = _Reader(top.file, f"applies.{kind}.{item_id}", spec)
        applies = _applies(r, ages)
        r.done()
        if applies == EVERYONE:
            r.fail(f"{r.where}: give sexes or age_bands (or leave the item out)")
        out[item_id] = applies
    return out


def _everyone(ages: Sequence[str]) -> list[Who]:
    """Every kind of person the intake can be about, known or not."""
    return [Who(sex, band) for sex in (*SEXES, None) for band in (*ages, None)]


def _condition(r: _Reader, q: dict[str, Any]) -> Condition:
    cats = r.ids("categories", False)
    not_cats = r.ids("not_categories", False) or ()
    durations = r.ids("durations", False)
    ages = r.ids("age_bands", False)
    assoc = r.ids("associated_any", False)
    _members(r, "category", cats, list(q["categories"]))
    _members(r, "category", not_cats, list(q["categories"]))
    _members(r, "duration", durations, q["durations"])
    _members(r, "age band", ages, q["age_bands"])
    _members(r, "symptom", assoc, q["symptoms"])
    subject = r.text("subject", False)
    _member(r, "subject", subject, SUBJECTS)
    low, high = r.integer("severity_min", 0, 10), r.integer("severity_max", 0, 10)
    if low is not None and high is not None and low > high:
        r.fail(f"{r.where}: severity_min is above severity_max")
    answers_raw = r._get("answers", False) or {}
    if not isinstance(answers_raw, dict):
        r.fail(f"{r.where}.answers must be a table of question = [options]")
    answers: dict[str, frozenset[str]] = {}
    for qid, opts in answers_raw.items():
        question = q["questions"].get(qid)
        if question is None:
            r.fail(f"{r.where}.answers: unknown question '{qid}'")
        if not isinstance(opts, list) or not opts:
            r.fail(f"{r.where}.answers.{qid} must be a non-empty list of options")
        for o in opts:
            if o not in question.options:
                r.fail(f"{r.where}.answers.{qid}: '{o}' is not an option of that question")
        answers[qid] = frozenset(opts)
    return Condition(
        categories=frozenset(cats) if cats is not None else None,
        not_categories=frozenset(not_cats),
        severity_min=low,
        severity_max=high,
        durations=frozenset(durations) if durations is not None else None,
        age_bands=frozenset(ages) if ages is not None else None,
        subject=subject,
        has_history=r.boolean("has_history"),
        associated_any=frozenset(assoc) if assoc is not None else None,
        answers=answers,
    )


def parse(data: Any, file: str, flag_ids: Sequence[str]) -> Questionnaire:
    """Build and check a questionnaire from parsed TOML (no catalog checks)."""
    top = _Reader(file, "top level", data)
    version = top.text("version")
    durations = top.ids("durations") or ()
    ages = top.ids("age_bands") or ()
    departments = top.ids("departments") or ()
    symptoms = top.ids("symptoms") or ()
    ctx: dict[str, Any] = {
        "durations": durations,
        "age_bands": ages,
        "symptoms": symptoms,
        "categories": {},
        "questions": {},
    }
    categories: dict[str, Category] = {}
    for i, raw in enumerate(top.tables("category")):
        r = _Reader(file, f"category #{i + 1}", raw)
        cid = r.text("id")
        assert cid is not None
        r.where = f"category '{cid}'"
        if cid in categories:
            r.fail(f"{r.where} is defined twice")
        dept = r.text("department")
        _member(r, "department", dept, departments)
        flags = r.ids("red_flags") or ()
        if not flags:
            r.fail(f"{r.where}: red_flags must not be empty (the checklist needs items)")
        _members(r, "red flag", flags, flag_ids)
        assoc = r.ids("associated") or ()
        _members(r, "symptom", assoc, symptoms)
        default = r.text("default_disposition")
        _member(r, "default_disposition", default, DISPOSITIONS[2:])
        applies = _applies(r, ages)
        questions: list[Question] = []
        for j, qraw in enumerate(r.tables("question")):
            qr = _Reader(file, f"{r.where} question #{j + 1}", qraw)
            qid = qr.text("id")
            assert qid is not None
            if qid in ctx["questions"]:
                qr.fail(f"question '{qid}' is defined twice")
            opts = qr.ids("options") or ()
            if not 2 <= len(opts) <= 8:
                qr.fail(f"question '{qid}' needs 2 to 8 options")
            qr.where = f"{r.where} question '{qid}'"
            question_applies = _applies(qr, ages)
            qr.done()
            question = Question(qid, opts, question_applies)
            questions.append(question)
            ctx["questions"][qid] = question
        r.done()
        assert dept is not None and default is not None
        categories[cid] = Category(cid, dept, flags, assoc, default, applies, tuple(questions))
    ctx["categories"] = categories
    if len(categories) < MIN_CATEGORIES:
        top.fail(f"at least {MIN_CATEGORIES} categories are needed, found {len(categories)}")
    top.seen.add("applies")
    flag_applies = _applies_table(top, "red_flag", flag_ids, ages)
    symptom_applies = _applies_table(top, "symptom", symptoms, ages)
    for cat in categories.values():
        for who in _everyone(ages):
            checklist = [f for f in cat.red_flags if flag_applies.get(f, EVERYONE).to(who)]
            if cat.offered_for(who) and not checklist:
                top.fail(
                    f"category '{cat.id}': no checklist item applies to "
                    f"{who.sex or 'any sex'}, {who.age_band or 'any age'} "
                    "(every checklist needs one)"
                )

    def rules(key: str, kind: str) -> tuple[Rule, ...]:
        out: list[Rule] = []
        seen: set[str] = set()
        for i, raw in enumerate(top.tables(key)):
            r = _Reader(file, f"{key} #{i + 1}", raw)
            rid = r.text("id")
            assert rid is not None
            r.where = f"{key} '{rid}'"
            if rid in seen:
                r.fail(f"{r.where} is defined twice")
            seen.add(rid)
            if kind == "disposition":
                disp = r.text("disposition")
                _member(r, "disposition", disp, DISPOSITIONS[:4])
                out.append(Rule(rid, _condition(r, ctx), disposition=disp))
            else:
                dept = r.text("department")
                _member(r, "department", dept, departments)
                out.append(Rule(rid, _condition(r, ctx), department=dept))
            r.done()
        return tuple(out)

    triage_rules = rules("rule", "disposition")
    dept_rules = rules("department_rule", "department")
    top.done()
    assert version is not None
    return Questionnaire(
        version,
        durations,
        ages,
        departments,
        symptoms,
        categories,
        triage_rules,
        dept_rules,
        flag_applies,
        symptom_applies,
    )


def check_catalogs(q: Questionnaire, file: str) -> None:
    """Every message the data needs exists in every locale; button labels fit."""
    for locale in LOCALES:
        messages = catalog(locale)
        for msgid, is_button in q.message_ids():
            text = messages.get(msgid)
            if not text:
                raise DataFileError(f"{file}: message '{msgid}' is missing in locale {locale}")
            if is_button and len(text) > BUTTON_MAX:
                raise DataFileError(
                    f"{file}: button label '{msgid}' in {locale} is longer than "
                    f"{BUTTON_MAX} characters"
                )


_active: Questionnaire | None = None


def load(path: Path | None = None, *, catalogs: bool = True) -> Questionnaire:
    """Read and validate a questionnaire file; without a path, the one in use (the clinic's
    file chosen at start-up by :func:`use`, else the bundled one)."""
    if path is not None:
        return _load(path, catalogs)
    return _active if _active is not None else _bundled()


def _load(path: Path, catalogs: bool) -> Questionnaire:
    name = path.name
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise DataFileError(f"{name}: cannot read it ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"{name}: not valid TOML ({exc})") from None
    q = parse(data, name, redflags.RED_FLAG_IDS)
    if catalogs:
        check_catalogs(q, name)
    return q


@cache
def _bundled() -> Questionnaire:
    return _load(INTAKE_FILE, True)


def use(path: Path | None) -> Questionnaire:
    """Start-up: validate the red-flag lexicon and the questionnaire (``path``, or the bundled
    file) and make it the one in use. Raises :class:`DataFileError` or
    :class:`flows.redflags.LexiconError` naming the file and the problem."""
    global _active
    redflags.validate()
    q = _load(path, True) if path is not None else _bundled()
    _active = q
    return q
