"""The body map: regions a patient marks in the "Show on a body" Mini App, and what the intake
does with the marks.

The regions are data (``flows/questionnaires/bodymap.toml``): polygons of a front and a back
figure, each region with a complaint category where one fits. The same shapes draw the page
(bot/bodymap_web.py) and the doctor's picture (flows/bodymap_image.py).

:func:`parse_marks` checks what the page sent (region ids, intensity 0-10, pain type) and
:func:`apply` puts the marks into the intake at its complaint step: the location (the marks
themselves, sealed with the other answers), the severity (the highest intensity) and the
complaint, when the marks name one; the intake then moves on through the machine's own
trigger, so the red-flag checklist and the triage rules run exactly as after a button.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from flows.domain import Patient
from flows.intake import Outcome, StaleButton, State, open_intake, take_complaint, who_of
from flows.onboarding import Actor
from flows.questionnaire import DataFileError, Questionnaire
from locales import LOCALES, catalog
from storage.uow import UnitOfWork

BODYMAP_FILE = Path(__file__).parent / "questionnaires" / "bodymap.toml"
VIEWS = ("front", "back")
_KEYS = {"version", "width", "height", "max_marks", "types", "decisive", "priority", "region"}
_REGION_KEYS = {"id", "category", "front", "back"}


class MarkError(ValueError):
    """What the page sent cannot be taken; ``code`` names why (the page shows it translated)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


@dataclass(frozen=True)
class Region:
    """One region a patient can mark: its shapes per view and its complaint category."""

    id: str
    category: str
    shapes: dict[str, tuple[tuple[float, float], ...]]


@dataclass(frozen=True)
class BodyMap:
    """The whole map: the regions in drawing order, the pain types, the category rules."""

    version: str
    width: float
    height: float
    max_marks: int
    types: tuple[str, ...]
    decisive: tuple[str, ...]
    priority: tuple[str, ...]
    regions: dict[str, Region]

    def in_view(self, view: str) -> list[Region]:
        """The regions drawn in ``view`` (front or back), in file order."""
        return [r for r in self.regions.values() if view in r.shapes]


@dataclass(frozen=True)
class Mark:
    """One marked region: intensity 0-10 and a pain type ("" when none was chosen)."""

    region: str
    intensity: int
    type: str = ""

    def to_json(self) -> dict[str, Any]:
        """As stored in the intake's answers."""
        return {"region": self.region, "intensity": self.intensity, "type": self.type}


def _fail(file: str, problem: str) -> DataFileError:
    return DataFileError(f"{file}: {problem}")


def _points(raw: Any, where: str, file: str, width: float, height: float) -> tuple[Any, ...]:
    if not isinstance(raw, list) or len(raw) < 3:
        raise _fail(file, f"{where}: a polygon needs at least 3 [x, y] points")
    out = []
    for point in raw:
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in point)
        ):
            raise _fail(file, f"{where}: {point!r} is not an [x, y] point")
        x, y = float(point[0]), float(point[1])
        if not (0 <= x <= width and 0 <= y <= height):
            raise _fail(file, f"{where}: point {point!r} is outside the {width}x{height} box")
        out.append((x, y))
    return tuple(out)


def parse(data: dict[str, Any], file: str, categories: Sequence[str]) -> BodyMap:
    """Check a body map file's content strictly; :class:`DataFileError` names the problem."""
    unknown = set(data) - _KEYS
    if unknown:
        raise _fail(file, f"unknown keys {sorted(unknown)}")
    width, height = data.get("width"), data.get("height")
    if not isinstance(width, int | float) or not isinstance(height, int | float):
        raise _fail(file, "width and height must be numbers")
    types = data.get("types")
    if not isinstance(types, list) or not types or len(set(types)) != len(types):
        raise _fail(file, "types must be a non-empty list of distinct ids")
    max_marks = data.get("max_marks")
    if not isinstance(max_marks, int) or not 1 <= max_marks <= 50:
        raise _fail(file, "max_marks must be a whole number from 1 to 50")
    regions: dict[str, Region] = {}
    for raw in data.get("region", []):
        rid = raw.get("id")
        if not isinstance(rid, str) or not rid.replace("_", "").isalnum() or rid != rid.lower():
            raise _fail(file, f"region id {rid!r} must be lower-case letters and underscores")
        if rid in regions:
            raise _fail(file, f"region '{rid}' is defined twice")
        extra = set(raw) - _REGION_KEYS
        if extra:
            raise _fail(file, f"region '{rid}': unknown keys {sorted(extra)}")
        category = raw.get("category", "")
        if category and category not in categories:
            raise _fail(file, f"region '{rid}': unknown category '{category}'")
        shapes = {
            view: _points(raw[view], f"region '{rid}' {view}", file, width, height)
            for view in VIEWS
            if view in raw
        }
        if not shapes:
            raise _fail(file, f"region '{rid}': no shape (give front and/or back)")
        regions[rid] = Region(rid, str(category), shapes)
    if not regions:
        raise _fail(file, "no regions")
    for key in ("decisive", "priority"):
        for category in data.get(key, []):
            if category not in categories:
                raise _fail(file, f"{key}: unknown category '{category}'")
    return BodyMap(
        version=str(data.get("version", "")),
        width=float(width),
        height=float(height),
        max_marks=max_marks,
        types=tuple(types),
        decisive=tuple(data.get("decisive", [])),
        priority=tuple(data.get("priority", [])),
        regions=regions,
    )


def message_ids(bodymap: BodyMap) -> list[str]:
    """The catalog ids the data needs: every region's and every pain type's name."""
    return [f"bodymap.region.{r}" for r in bodymap.regions] + [
        f"bodymap.type.{t}" for t in bodymap.types
    ]


def load_file(path: Path, categories: Sequence[str], *, catalogs: bool = True) -> BodyMap:
    """Read and check a body map file (and, with ``catalogs``, its names in every language)."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise _fail(path.name, f"cannot read it ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path.name, f"not valid TOML ({exc})") from None
    bodymap = parse(data, path.name, categories)
    if catalogs:
        for locale in LOCALES:
            messages = catalog(locale)
            for msgid in message_ids(bodymap):
                if not messages.get(msgid):
                    raise _fail(path.name, f"message '{msgid}' is missing in locale {locale}")
    return bodymap


@cache
def load() -> BodyMap:
    """The bundled body map (checked against the bundled questionnaire's categories)."""
    from flows.questionnaire import load as load_questionnaire

    return load_file(BODYMAP_FILE, tuple(load_questionnaire().categories))


# -- what the page sent ----------------------------------------------------------------------


def parse_marks(raw: Any, bodymap: BodyMap) -> list[Mark]:
    """The marks of a Mini App result, checked: a list of ``{region, intensity, type}`` with
    known regions (each once), whole intensities 0-10 and known pain types."""
    if not isinstance(raw, list) or not raw:
        raise MarkError("no_marks", "mark at least one region")
    if len(raw) > bodymap.max_marks:
        raise MarkError("too_many", f"at most {bodymap.max_marks} regions")
    marks: list[Mark] = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, dict):
            raise MarkError("bad_region", "each mark is an object")
        region = item.get("region")
        if not isinstance(region, str) or region not in bodymap.regions or region in seen:
            raise MarkError("bad_region", f"unknown or repeated region {str(region)[:40]!r}")
        intensity = item.get("intensity")
        if (
            isinstance(intensity, bool)
            or not isinstance(intensity, int | float)
            or not math.isfinite(intensity)
            or intensity != int(intensity)
            or not 0 <= intensity <= 10
        ):
            raise MarkError("bad_intensity", "intensity is a whole number from 0 to 10")
        kind = item.get("type") or ""
        if not isinstance(kind, str) or (kind and kind not in bodymap.types):
            raise MarkError("bad_type", f"unknown pain type {str(kind)[:40]!r}")
        seen.add(region)
        marks.append(Mark(region, int(intensity), kind))
    return marks


def categories_of(marks: Sequence[Mark], bodymap: BodyMap) -> list[str]:
    """The complaint categories the marks point at, in the map's priority order."""
    found = {bodymap.regions[m.region].category for m in marks} - {""}
    order = {c: i for i, c in enumerate(bodymap.priority)}
    return sorted(found, key=lambda c: (order.get(c, len(order)), c))


def choose_category(marks: Sequence[Mark], bodymap: BodyMap, offered: Sequence[str]) -> str | None:
    """The complaint the marks name, or None when the patient should pick: one category
    (among those offered to this person) is chosen; among several, a decisive one (chest
    pain) is; otherwise none."""
    found = [c for c in categories_of(marks, bodymap) if c in offered]
    if len(found) == 1:
        return found[0]
    for category in bodymap.decisive:
        if category in found:
            return category
    return None


def stored_marks(answers: dict[str, Any]) -> list[Mark]:
    """The marks kept in an intake's answers (none when the body map was not used)."""
    raw = (answers.get("bodymap") or {}).get("marks") or []
    return [
        Mark(str(m["region"]), int(m["intensity"]), str(m.get("type") or ""))
        for m in raw
        if isinstance(m, dict) and "region" in m and "intensity" in m
    ]


@dataclass
class Applied:
    """What :func:`apply` did: the outcome to render and the category chosen (None: the
    patient is asked to pick one of ``suggested``)."""

    outcome: Outcome
    category: str | None
    suggested: list[str]


async def apply(
    uow: UnitOfWork,
    patient: Patient,
    q: Questionnaire,
    tag: str,
    marks: Sequence[Mark],
    *,
    bodymap: BodyMap | None = None,
    jurisdiction: str = "generic",
) -> Applied:
    """The Mini App's marks into the patient's open intake, which must be the one the page
    was opened for (``tag``) and still at its complaint step (else :class:`StaleButton`).

    Kept (sealed with the other answers): the marks and the map's version. The severity is
    the highest intensity: it answers the severity question (asked no more) or, when the
    patient is correcting the complaint from the summary, replaces the one given. The
    complaint is chosen when the marks name one (:func:`choose_category`) and the intake
    moves on as after the complaint button; otherwise it stays at the complaint question."""
    bm = bodymap or load()
    intake = await open_intake(uow, patient)
    if intake is None or not tag or not intake.id.startswith(tag):
        raise StaleButton("no open intake for this body map")
    if State(intake.state) is not State.COMPLAINT:
        raise StaleButton(f"body map in {intake.state}")
    answers = await uow.intakes.answers(intake)
    out = Outcome(intake, answers)
    answers["bodymap"] = {"version": bm.version, "marks": [m.to_json() for m in marks]}
    severity = max(m.intensity for m in marks)
    prefill: dict[str, Any] = dict(answers.get("prefill") or {})
    if answers.get("returning"):
        answers["severity"] = severity  # from the summary: no severity question follows
    else:
        prefill["severity"] = severity  # answers the severity question when it comes
    if prefill:
        answers["prefill"] = prefill
    offered = [c.id for c in q.offered(who_of(answers))]
    chosen = choose_category(marks, bm, offered)
    await uow.audit.record(
        Actor(patient.id).ref, "intake.bodymap", "intake", intake.id, {"marks": len(marks)}
    )
    if chosen is None:
        await uow.intakes.save_answers(intake, answers)
        suggested = [c for c in categories_of(marks, bm) if c in offered]
        return Applied(out, None, suggested)
    await take_complaint(uow, intake, answers, chosen, q, jurisdiction)
    return Applied(out, chosen, [chosen])
