"""Emergency red-flag detector run on every free-text message a patient sends.

The data (the registry of red flags and the per-language lexicon) lives in
``flows/questionnaires/redflags.toml`` so a clinic can edit it without touching code; see
``docs/REDFLAGS.md``. This module is pure Python: no aiogram and no I/O except reading that
file once.

``detect(text)`` normalises the text, then runs every language's lexicon on it (patients mix
languages in one message) and returns the most urgent hit: crisis (self-harm) first, then
``emergency_ambulance``, then ``emergency``.

A pattern match is cancelled when

* a negation cue precedes it within a short window in the same clause ("no chest pain",
  "没有胸痛", "нет боли"), unless the flag is not negatable (self-harm: any mention goes to the
  crisis line);
* a history cue is near it in the same clause ("in 2015", "5年前", "3 года назад") and no
  acute cue ("just now", "刚才", "только что") is in that clause;
* the flag has a minimum duration (``min_hours``) and every duration the message states is
  shorter;
* a denial follows it later in the same sentence ("chest pain, dizziness - none of that",
  "头疼 发烧 这些都没有"), or a statement that it is over ("fainted yesterday, all fine since",
  "已经好了", "всё прошло") and the flag is ``resolvable``; neither applies to a flag that is
  not negatable.

Idioms ("dying of boredom", "笑死我了", "умираю от скуки") are blanked out before matching.
"""

from __future__ import annotations

import bisect
import importlib
import re
import tomllib
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).parent / "questionnaires" / "redflags.toml"

# The contract with the intake flow and the .po catalogs: these ids, in this order. The TOML
# must define exactly these; adding a flag means adding it here, there and in every locale.
RED_FLAG_IDS: tuple[str, ...] = (
    "unconscious",
    "confusion",
    "chest_pain",
    "breathing",
    "seizure",
    "stroke",
    "bleeding",
    "anaphylaxis",
    "burns",
    "head_injury",
    "trauma",
    "sepsis",
    "meningitis",
    "thunderclap_headache",
    "infant_fever",
    "child_unresponsive",
    "child_dehydration",
    "overdose",
    "pregnancy_bleeding",
    "vision_loss",
    "cauda_equina",
    "urinary_retention",
    "testicular_pain",
    "abdominal_emergency",
    "self_harm",
)
# Most urgent first; a crisis flag outranks both.
DISPOSITIONS: tuple[str, ...] = ("emergency_ambulance", "emergency")
LANGUAGES: tuple[str, ...] = ("en", "zh_Hans", "ru")

_MACRO = re.compile(r"%([a-z_][a-z0-9_]*)%")
_LANG_KEYS = frozenset(
    {
        "gate",
        "word_start",
        "negation_window",
        "history_window",
        "clause_breaks",
        "negation",
        "post_negation",
        "after_denial",
        "after_resolved",
        "after_window",
        "animals",
        "history",
        "acute",
        "idioms",
        "duration",
        "numbers",
        "units",
        "macros",
        "patterns",
        "combos",
    }
)


class LexiconError(ValueError):
    """The red-flag data file is missing or wrong; the message names the file and the place."""


@dataclass(frozen=True)
class RedFlag:
    """One entry of the registry."""

    id: str
    disposition: str  # "emergency_ambulance" | "emergency"
    crisis: bool


@dataclass(frozen=True)
class Hit:
    """A red flag found in a message, and which language's lexicon found it."""

    flag: str
    disposition: str
    crisis: bool
    language: str  # "en" | "zh_Hans" | "ru"


@dataclass(frozen=True)
class FlagRules:
    """How matches of one flag may be cancelled."""

    negatable: bool
    history: bool
    min_hours: float | None
    # Whether "fine now", "已经好了", "всё прошло" after it cancels it (not for chest pain).
    resolvable: bool = True


@dataclass(frozen=True)
class Combo:
    """A flag that needs every part to match somewhere in the message (each part uncancelled)."""

    flag: str
    parts: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class Dispatch:
    """An alternation of named groups split by the character a match can start with: at a
    candidate position (``starts``: a word start holding one of those characters) holding
    character c, only ``table[c]`` is tried. It holds the same alternatives in the same order
    as the whole alternation, minus those that cannot start with c, so it finds the same
    matches; on a long message it is several times faster than the whole alternation."""

    starts: re.Pattern[str]
    table: Mapping[str, re.Pattern[str]]
    members: Mapping[str, tuple[str, ...]]  # group names in table[c], in order


@dataclass(frozen=True)
class LanguageLexicon:
    """One language's compiled lexicon."""

    code: str
    gate: re.Pattern[str] | None
    patterns: re.Pattern[str]
    group_flags: Mapping[str, str]
    # ``patterns`` split by first character (None when a first character cannot be read).
    dispatch: Dispatch | None
    combos: tuple[Combo, ...]
    combo_gate: re.Pattern[str] | None  # any combo's first part; no match means no combo
    # Every distinct first part of a combo, and all of them split by first character in
    # groups g0, g1... (the other parts are searched only when the first one is found).
    combo_parts: tuple[re.Pattern[str], ...]
    combo_dispatch: Dispatch | None
    combo_index: Mapping[re.Pattern[str], int]  # combo_parts[i] -> i
    idioms: re.Pattern[str] | None
    clause_breaks: re.Pattern[str]
    negation: re.Pattern[str]
    # A denial after the symptom that ends its clause ("одышки и боли в груди нет",
    # "chest pain - no", "胸痛没有"); None when the language has none.
    post_negation: re.Pattern[str] | None
    # Later in the same sentence, within after_window characters: a denial that takes back
    # what came before it ("chest pain, dizziness - none of that", "这些都没有") or a statement
    # that it is over ("all fine since", "已经好了", "всё прошло"); None if the language has none.
    after_denial: re.Pattern[str] | None
    after_resolved: re.Pattern[str] | None
    after_window: int
    # Animals in the clause: "my dog is having a seizure" is not a patient's emergency.
    animals: re.Pattern[str] | None
    history: re.Pattern[str]
    acute: re.Pattern[str]
    negation_window: int
    history_window: int
    duration: re.Pattern[str] | None
    numbers: Mapping[str, float]
    units: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Lexicon:
    """The loaded and compiled data file."""

    path: Path
    flags: Mapping[str, RedFlag]
    rules: Mapping[str, FlagRules]
    languages: Mapping[str, LanguageLexicon]

    def rank(self, flag: str) -> tuple[int, int]:
        """Sort key, most urgent first: crisis, then by disposition, then registry order."""
        f = self.flags[flag]
        level = 0 if f.crisis else 1 + DISPOSITIONS.index(f.disposition)
        return level, RED_FLAG_IDS.index(flag)


# --- normalisation ----------------------------------------------------------------------------


def _strip_table() -> dict[int, str | None]:
    """Code points removed or mapped by ``normalize``: control and format characters (Cc, Cf,
    which include RTL marks and zero-width joiners), decimal digits of every script (to ASCII),
    Cyrillic ё, typographic apostrophes."""
    table: dict[int, str | None] = {}
    # Cc/Cf only occur in these planes; scanning them once is cheaper than the whole range.
    for lo, hi in ((0, 0x20000), (0xE0000, 0xE1000)):
        for cp in range(lo, hi):
            kind = unicodedata.category(chr(cp))
            if kind in ("Cc", "Cf"):
                table[cp] = None
            elif kind == "Nd" and cp > 0x7F:
                table[cp] = str(unicodedata.decimal(chr(cp)))  # ٣ → 3: patterns see ASCII
    for ch in "\t\n\x0b\x0c\x1c\x1d\x1e\x85":
        table[ord(ch)] = " "
    table[ord("\n")] = "\n"
    table[ord("\r")] = "\n"
    table[0x2028] = "\n"
    table[0x2029] = "\n"
    table[ord("ё")] = "е"
    for ch in "\u2018\u2019\u201a\u201b\u02bc\u02b9\u2032\u00b4`":
        table[ord(ch)] = "'"
    return table


_TABLE = _strip_table()
# The end of a sentence: an after-denial cue does not reach back across one.
_SENTENCE_END = re.compile(r"[!?\n\u3002\uff01\uff1f]|\.(?!\d)")
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r" ?\n[\n ]*")


def normalize(text: str) -> str:
    """NFKC, casefold, control/format characters removed, digits to ASCII, ё→е, apostrophes
    straightened, runs of spaces folded to one space and runs of line breaks to one line
    break."""
    t = unicodedata.normalize("NFKC", text).casefold().translate(_TABLE)
    t = _SPACES.sub(" ", t)
    if "\n" in t:
        t = _NEWLINES.sub("\n", t)
    return t.strip()


# --- start-character guards -------------------------------------------------------------------
# Python's re tries every branch of a large alternation at every position. A lookahead listing
# the characters a match can start with lets it skip most positions at once: about 30 times
# faster on chat messages, same matches. The set is read from re's parse tree (a private
# module, so any surprise means "no guard", never a wrong one).

try:
    _PARSER: Any = importlib.import_module("re._parser")
    _CONST: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - other Python versions
    _PARSER = _CONST = None

_MAX_GUARD = 600  # characters; a larger set is not worth a lookahead


def _first_chars(seq: Any) -> tuple[set[str] | None, bool]:
    """(characters a match of ``seq`` can start with, or None if unknown; can it be empty)."""
    c = _CONST
    out: set[str] = set()
    for op, av in seq:
        if op is c.LITERAL:
            out.add(chr(av))
            return out, False
        if op is c.IN:
            for o, a in av:
                if o is c.LITERAL:
                    out.add(chr(a))
                elif o is c.RANGE and a[1] - a[0] <= _MAX_GUARD:
                    out.update(chr(x) for x in range(a[0], a[1] + 1))
                elif o is c.CATEGORY and a is c.CATEGORY_DIGIT:
                    out.update("0123456789")  # normalize() maps every decimal digit to ASCII
                else:  # negated sets, categories (\w), huge ranges
                    return None, False
            return out, False
        if op is c.AT or op is c.ASSERT or op is c.ASSERT_NOT:
            continue  # consumes nothing: the next item decides
        if op is c.SUBPATTERN or op is c.BRANCH:
            alternatives = [av[3]] if op is c.SUBPATTERN else av[1]
            empty = False
            for alt in alternatives:
                chars, alt_empty = _first_chars(alt)
                if chars is None:
                    return None, False
                out |= chars
                empty = empty or alt_empty
            if not empty:
                return out, False
            continue
        if op is c.MAX_REPEAT or op is c.MIN_REPEAT:
            low, _, sub = av
            chars, sub_empty = _first_chars(sub)
            if chars is None:
                return None, False
            out |= chars
            if low > 0 and not sub_empty:
                return out, False
            continue
        return None, False
    return out, True


@cache
def _starts(source: str) -> frozenset[str] | None:
    """The characters a match of ``source`` can start with; None when unknown or when it can
    match the empty string. Cached: parsing is the slow part of loading."""
    if _PARSER is None:
        return None
    try:
        chars, empty = _first_chars(_PARSER.parse(source))
    except Exception:  # noqa: BLE001 - private API: any failure only means "unknown"
        return None
    return None if chars is None or empty else frozenset(chars)


def _guarded(source: str, alternatives: list[str] | None = None) -> str:
    """``source`` behind a lookahead of its possible first characters, when that is known.
    When ``source`` is the alternation of ``alternatives``, their (cached) sets are used."""
    if alternatives is None:
        found = _starts(source)
    else:
        sets = [_starts(x) for x in alternatives]
        found = None if None in sets else frozenset(c for x in sets if x for c in x)
    if found is None or len(found) > _MAX_GUARD:
        return source
    # Both cases, in case a pattern uses (?i): the guard must never be stricter than the regex.
    chars = set(found) | {x.upper() for x in found if len(x.upper()) == 1}
    chars |= {x.lower() for x in found}
    return f"(?=[{''.join(re.escape(x) for x in sorted(chars))}])(?:{source})"


def _dispatch(word_start: str, groups: list[tuple[str, list[str]]]) -> Dispatch | None:
    """``groups`` (name, regex sources) split by first character, or None when the first
    characters of a source cannot be read (then the whole alternation is used)."""
    if _PARSER is None:
        return None
    firsts: list[tuple[str, list[tuple[str, frozenset[str]]]]] = []
    every: set[str] = set()
    for name, sources in groups:
        entry: list[tuple[str, frozenset[str]]] = []
        for source in sources:
            chars = _starts(source)
            if chars is None:
                return None
            entry.append((source, chars))
            every |= chars
        firsts.append((name, entry))
    if not every:
        return None
    table: dict[str, re.Pattern[str]] = {}
    members: dict[str, tuple[str, ...]] = {}
    compiled: dict[str, re.Pattern[str]] = {}  # characters with the same alternatives share one
    for ch in every:
        alternatives: list[str] = []
        names: list[str] = []
        for name, entry in firsts:
            sources = [source for source, chars in entry if ch in chars]
            if sources:
                alternatives.append(f"(?P<{name}>{'|'.join(f'(?:{x})' for x in sources)})")
                names.append(name)
        source = "|".join(alternatives)
        if source not in compiled:
            compiled[source] = re.compile(source)
        table[ch] = compiled[source]
        members[ch] = tuple(names)
    starts = re.compile(word_start + "[" + "".join(re.escape(x) for x in sorted(every)) + "]")
    return Dispatch(starts, table, members)


# --- loading ----------------------------------------------------------------------------------


def _err(path: Path, where: str, what: str) -> LexiconError:
    return LexiconError(f"{path.name}: {where}: {what}")


def _expand(path: Path, where: str, source: str, macros: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in macros:
            raise _err(path, where, f"unknown macro %{name}% in {source!r}")
        return macros[name]

    return _MACRO.sub(sub, source)


def _compile(path: Path, where: str, source: str, macros: Mapping[str, str]) -> re.Pattern[str]:
    if not isinstance(source, str) or not source:
        raise _err(path, where, f"expected a non-empty regex string, got {source!r}")
    expanded = _expand(path, where, source, macros)
    try:
        rx = re.compile(expanded)
    except re.error as exc:
        raise _err(path, where, f"invalid regex {source!r}: {exc}") from None
    if rx.groupindex:
        raise _err(path, where, f"named groups are reserved: {source!r}")
    if rx.search("") is not None:
        # A pattern that matches the empty string would match every message.
        raise _err(path, where, f"regex matches the empty string: {source!r}")
    return rx


def _union(
    path: Path, where: str, sources: Any, macros: Mapping[str, str], *, required: bool = True
) -> re.Pattern[str] | None:
    if sources is None and not required:
        return None
    if not isinstance(sources, list) or (required and not sources):
        raise _err(path, where, "expected a non-empty list of regex strings")
    if not sources:
        return None
    parts = [_compile(path, f"{where}[{i}]", s, macros).pattern for i, s in enumerate(sources)]
    return re.compile(_guarded("|".join(f"(?:{p})" for p in parts), parts))


def _int(path: Path, where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _err(path, where, f"expected a positive integer, got {value!r}")
    return value


def _table(path: Path, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _err(path, where, "missing or not a table")
    return value


def _load_flags(
    path: Path, data: dict[str, Any]
) -> tuple[dict[str, RedFlag], dict[str, FlagRules]]:
    table = _table(path, "[flags]", data.get("flags"))
    flags: dict[str, RedFlag] = {}
    rules: dict[str, FlagRules] = {}
    interned: dict[FlagRules, FlagRules] = {}
    for fid, spec in table.items():
        where = f"[flags.{fid}]"
        if fid not in RED_FLAG_IDS:
            raise _err(path, where, f"unknown flag id {fid!r} (the registry is {RED_FLAG_IDS})")
        spec = _table(path, where, spec)
        unknown = set(spec) - {
            "disposition",
            "crisis",
            "negatable",
            "history",
            "min_hours",
            "resolvable",
        }
        if unknown:
            raise _err(path, where, f"unknown keys {sorted(unknown)}")
        disposition = spec.get("disposition")
        if disposition not in DISPOSITIONS:
            raise _err(
                path,
                where,
                f"unknown disposition {disposition!r} (expected one of {DISPOSITIONS})",
            )
        booleans = {k: spec.get(k, d) for k, d in (("crisis", False), ("negatable", True))}
        booleans["history"] = spec.get("history", True)
        booleans["resolvable"] = spec.get("resolvable", True)
        for key, value in booleans.items():
            if not isinstance(value, bool):
                raise _err(path, f"{where} {key}", f"expected true or false, got {value!r}")
        min_hours = spec.get("min_hours")
        if min_hours is not None and (
            not isinstance(min_hours, int | float) or isinstance(min_hours, bool) or min_hours <= 0
        ):
            raise _err(
                path, f"{where} min_hours", f"expected a positive number, got {min_hours!r}"
            )
        flags[fid] = RedFlag(fid, disposition, booleans["crisis"])
        rule = FlagRules(
            booleans["negatable"],
            booleans["history"],
            float(min_hours) if min_hours is not None else None,
            booleans["resolvable"],
        )
        # Flags with the same rules share one object: a scan caches results by identity.
        rules[fid] = interned.setdefault(rule, rule)
    return flags, rules


def _load_language(
    path: Path, code: str, spec: dict[str, Any], flags: Mapping[str, RedFlag]
) -> LanguageLexicon:
    base = f"[lang.{code}]"
    unknown = set(spec) - _LANG_KEYS
    if unknown:
        raise _err(path, base, f"unknown keys {sorted(unknown)}")
    macros: dict[str, str] = {}
    for name, value in _table(path, f"{base}.macros", spec.get("macros", {})).items():
        if not isinstance(value, str) or not _MACRO.fullmatch(f"%{name}%"):
            raise _err(path, f"[lang.{code}.macros] {name}", "expected name = regex string")
        # Earlier macros may be used in later ones (tables keep their order).
        macros[name] = f"(?:{_expand(path, f'[lang.{code}.macros] {name}', value, macros)})"

    def union(key: str, *, required: bool = True) -> re.Pattern[str] | None:
        return _union(path, f"{base} {key}", spec.get(key), macros, required=required)

    def required(key: str) -> re.Pattern[str]:
        rx = union(key)
        assert rx is not None  # required=True never returns None
        return rx

    gate = spec.get("gate")
    gate_rx = _compile(path, f"{base} gate", gate, macros) if gate is not None else None
    word_start = spec.get("word_start", "")
    if not isinstance(word_start, str):
        raise _err(path, f"{base} word_start", "expected a regex string")

    patterns = _table(path, f"[lang.{code}.patterns]", spec.get("patterns"))
    combos: list[Combo] = []
    shared: dict[str, re.Pattern[str]] = {}
    first_sources: dict[str, str] = {}  # compiled first part -> its source, in order
    raw_combos = spec.get("combos", [])
    if not isinstance(raw_combos, list):
        raise _err(path, f"[[lang.{code}.combos]]", "expected an array of tables")
    for i, combo in enumerate(raw_combos):
        where = f"[[lang.{code}.combos]] #{i + 1}"
        combo = _table(path, where, combo)
        fid = combo.get("flag")
        if not isinstance(fid, str) or fid not in flags:
            raise _err(path, where, f"flag {fid!r} is not in the registry [flags]")
        parts = combo.get("all")
        if not isinstance(parts, list) or len(parts) < 2:
            raise _err(path, where, "'all' must list at least two regexes")
        sources = [
            _compile(path, f"{where} all[{j}]", p, macros).pattern for j, p in enumerate(parts)
        ]
        # Like patterns, a part starts at a word start (word_start), so a long message is not
        # tried at every character.
        compiled = tuple(re.compile(word_start + _guarded(x)) for x in sources)
        first_sources.setdefault(compiled[0].pattern, sources[0])
        # Identical parts (a fever regex used by several combos) share one compiled object, so
        # a scan searches each distinct part once.
        combos.append(Combo(fid, tuple(shared.setdefault(rx.pattern, rx) for rx in compiled)))
    covered = set(patterns) | {c.flag for c in combos}
    missing = [fid for fid in RED_FLAG_IDS if fid not in covered]
    if missing:
        raise _err(path, base, f"no patterns or combos for flags {missing}")

    # One alternation per language, most urgent flag first, each flag in a named group: one
    # scan finds every candidate and the group name says which flag it is.
    def urgency(fid: str) -> tuple[int, int]:
        f = flags[fid]
        return (0 if f.crisis else 1 + DISPOSITIONS.index(f.disposition), RED_FLAG_IDS.index(fid))

    alternatives: list[str] = []
    group_flags: dict[str, str] = {}
    groups: list[tuple[str, list[str]]] = []
    for n, fid in enumerate(sorted(patterns, key=urgency)):
        where = f"[lang.{code}.patterns] {fid}"
        raw = patterns[fid]
        if not isinstance(raw, list) or not raw:
            raise _err(path, where, "expected a non-empty list of regex strings")
        # Each pattern is compiled once, to check it; the flag's alternation is compiled as part
        # of the language's (and of its dispatch tables).
        sources = [_compile(path, f"{where}[{i}]", x, macros).pattern for i, x in enumerate(raw)]
        group_flags[f"f{n}"] = fid
        alternatives.append(
            f"(?P<f{n}>{_guarded('|'.join(f'(?:{x})' for x in sources), sources)})"
        )
        groups.append((f"f{n}", sources))
    try:
        combined = re.compile(
            word_start
            + _guarded("|".join(alternatives), [x for _, sources in groups for x in sources])
        )
    except re.error as exc:
        raise _err(path, f"[lang.{code}.patterns]", f"patterns do not combine: {exc}") from None

    numbers = _table(path, f"{base} numbers", spec.get("numbers", {}))
    units = _table(path, f"{base} units", spec.get("units", {}))
    for key, value in [*numbers.items(), *units.items()]:
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise _err(path, f"{base} numbers/units {key}", f"expected a number, got {value!r}")
    duration_rx = None
    raw_duration = spec.get("duration")
    if raw_duration is not None:
        try:
            duration_rx = re.compile(_expand(path, f"{base} duration", raw_duration, macros))
        except re.error as exc:
            raise _err(path, f"{base} duration", f"invalid regex: {exc}") from None
        if not {"n", "u"} <= set(duration_rx.groupindex):
            raise _err(path, f"{base} duration", "needs named groups (?P<n>...) and (?P<u>...)")
        if not units:
            raise _err(path, f"{base} units", "a duration regex needs a units table")

    idioms = union("idioms", required=False)
    return LanguageLexicon(
        code=code,
        gate=gate_rx,
        patterns=combined,
        group_flags=group_flags,
        dispatch=_dispatch(word_start, groups),
        combos=tuple(sorted(combos, key=lambda c: urgency(c.flag))),
        combo_gate=re.compile(
            _guarded(
                "|".join(dict.fromkeys(f"(?:{c.parts[0].pattern})" for c in combos)),
                list(first_sources.values()),
            )
        )
        if combos
        else None,
        combo_parts=tuple(shared[x] for x in first_sources),
        combo_index={shared[x]: i for i, x in enumerate(first_sources)},
        combo_dispatch=_dispatch(
            word_start, [(f"g{i}", [x]) for i, x in enumerate(first_sources.values())]
        ),
        idioms=idioms,
        clause_breaks=required("clause_breaks"),
        negation=required("negation"),
        post_negation=_post_negation(path, base, spec.get("post_negation"), macros),
        after_denial=union("after_denial", required=False),
        after_resolved=union("after_resolved", required=False),
        after_window=_int(path, f"{base} after_window", spec.get("after_window", 80)),
        animals=union("animals", required=False),
        history=required("history"),
        acute=required("acute"),
        negation_window=_int(path, f"{base} negation_window", spec.get("negation_window")),
        history_window=_int(path, f"{base} history_window", spec.get("history_window")),
        duration=duration_rx,
        numbers={str(k): float(v) for k, v in numbers.items()},
        # Longest unit first, so "hours" is tried before "h".
        units=tuple(
            sorted(((str(k), float(v)) for k, v in units.items()), key=lambda u: -len(u[0]))
        ),
    )


def _post_negation(
    path: Path, base: str, sources: Any, macros: Mapping[str, str]
) -> re.Pattern[str] | None:
    """The post-negation cues, anchored so that only non-word characters may follow the cue
    before the end of the clause (the search's ``endpos``)."""
    rx = _union(path, f"{base} post_negation", sources, macros, required=False)
    return None if rx is None else re.compile(f"(?:{rx.pattern})[^\\w]*$")


def load(path: Path | None = None) -> Lexicon:
    """Read, validate and compile the data file; raises ``LexiconError`` naming the problem."""
    path = path or DEFAULT_PATH
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise _err(path, "file", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise _err(path, "TOML", str(exc)) from None
    flags, rules = _load_flags(path, data)
    langs = _table(path, "[lang]", data.get("lang"))
    for code in langs:
        if code not in LANGUAGES:
            raise _err(path, f"[lang.{code}]", f"unknown language (expected {LANGUAGES})")
    # Pattern tables are checked before the registry's completeness, so a pattern naming a
    # flag that is not in [flags] is reported as such rather than as a missing flag.
    for code, spec in langs.items():
        if isinstance(spec, dict) and isinstance(spec.get("patterns"), dict):
            for fid in spec["patterns"]:
                if fid not in flags:
                    raise _err(
                        path,
                        f"[lang.{code}.patterns] {fid}",
                        f"flag {fid!r} is not in the registry [flags]",
                    )
    missing_flags = [fid for fid in RED_FLAG_IDS if fid not in flags]
    if missing_flags:
        raise _err(path, "[flags]", f"registry flags missing: {missing_flags}")
    languages: dict[str, LanguageLexicon] = {}
    for code in LANGUAGES:
        if code not in langs:
            raise _err(path, f"[lang.{code}]", "language section missing")
        languages[code] = _load_language(
            path, code, _table(path, f"[lang.{code}]", langs[code]), flags
        )
    return Lexicon(path, flags, rules, languages)


@cache
def _default() -> Lexicon:
    return load()


def registry() -> Mapping[str, RedFlag]:
    """The red-flag registry from the default data file, in registry order (loaded once)."""
    flags = _default().flags
    return {fid: flags[fid] for fid in RED_FLAG_IDS}


def validate() -> None:
    """Start-up check: load and compile the default data file once per process (it is part of
    the installed code); raises ``LexiconError``."""
    _default()


# --- matching ---------------------------------------------------------------------------------


@dataclass
class _Scan:
    """One language's view of one message: masked text and clause boundaries."""

    lang: LanguageLexicon
    text: str
    starts: list[int]  # start of each clause break
    ends: list[int]  # end of each clause break
    # Per-clause answers, so a word repeated through a long message without clause breaks
    # costs one search of its clause, not one per repetition.
    _memo: dict[tuple[str, int, int], bool] = field(default_factory=dict)
    _stated: list[float | None] = field(default_factory=list)
    _after: dict[str, list[int]] = field(default_factory=dict)

    def taken_back(self, key: str, rx: re.Pattern[str] | None, end: int) -> bool:
        """Whether a cue of ``rx`` (after_denial or after_resolved) starts after ``end``, within
        after_window characters and in the same sentence."""
        if rx is None:
            return False
        starts = self._after.get(key)
        if starts is None:
            starts = self._after[key] = [m.start() for m in rx.finditer(self.text)]
        i = bisect.bisect_left(starts, end)
        if i == len(starts) or starts[i] - end > self.lang.after_window:
            return False
        return _SENTENCE_END.search(self.text, end, starts[i]) is None

    def _in_clause(self, key: str, rx: re.Pattern[str], lo: int, hi: int) -> bool:
        k = (key, lo, hi)
        hit = self._memo.get(k)
        if hit is None:
            hit = self._memo[k] = rx.search(self.text, lo, hi) is not None
        return hit

    def stated_hours(self) -> float | None:
        """The longest duration stated anywhere in the message (computed once)."""
        if not self._stated:
            self._stated.append(self.hours(0, len(self.text)))
        return self._stated[0]

    def clause(self, start: int, end: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.ends, start)
        lo = self.ends[i - 1] if i else 0
        j = bisect.bisect_left(self.starts, end)
        hi = self.starts[j] if j < len(self.starts) else len(self.text)
        return lo, max(hi, end)

    def hours(self, lo: int, hi: int) -> float | None:
        """The longest duration stated in text[lo:hi], in hours (None when none is stated)."""
        rx = self.lang.duration
        if rx is None:
            return None
        best: float | None = None
        for m in rx.finditer(self.text, lo, hi):
            n, u = m.group("n"), m.group("u")
            if n is None or u is None:
                continue
            value = self.lang.numbers.get(n)
            if value is None:
                try:
                    value = float(n.replace(",", "."))
                except ValueError:
                    continue
            factor = next((f for prefix, f in self.lang.units if u.startswith(prefix)), None)
            if factor is None:
                continue
            best = max(best or 0.0, value * factor)
        return best

    def cancelled(self, rules: FlagRules, start: int, end: int, *, part: bool = False) -> bool:
        """Whether the match text[start:end] of a flag with ``rules`` is cancelled. For a combo
        ``part`` (often context: a child, a pregnancy, back pain), "fine now" or "for years"
        later in the sentence does not cancel it."""
        lang = self.lang
        lo, hi = self.clause(start, end)
        if rules.negatable:
            w = max(lo, start - lang.negation_window)
            if lang.negation.search(self.text, w, start):
                return True
            post = lang.post_negation
            near_end = hi - end <= lang.negation_window + 8
            if post is not None and near_end and post.search(self.text, end, hi):
                return True
            if lang.animals is not None and self._in_clause("animals", lang.animals, lo, hi):
                return True
            if self.taken_back("denial", lang.after_denial, end):
                return True
            if (
                rules.resolvable
                and not part
                and self.taken_back("resolved", lang.after_resolved, end)
            ):
                return True
        if rules.history:
            w0 = max(lo, start - lang.history_window)
            w1 = min(hi, end + lang.history_window)
            if (
                lang.history.search(self.text, w0, start)
                or lang.history.search(self.text, end, w1)
            ) and not self._in_clause("acute", lang.acute, lo, hi):
                return True
        if rules.min_hours is not None:
            # Durations anywhere in the message count ("can't pee, it's been 10 hours"); only
            # when the longest is below the threshold is the match cancelled.
            stated = self.stated_hours()
            if stated is not None and stated < rules.min_hours:
                return True
        return False


def _blank(m: re.Match[str]) -> str:
    # Same length, so positions stay comparable; spaces do not end a clause.
    return " " * (m.end() - m.start())


def _matches(lang: LanguageLexicon, text: str) -> Iterator[re.Match[str]]:
    """Every match of the language's patterns, one per start position (the most urgent flag's
    pattern when several start there)."""
    d = lang.dispatch
    if d is not None:
        table = d.table
        for c in d.starts.finditer(text):
            at = c.start()
            m = table[text[at]].match(text, at)
            if m is not None:
                yield m
        return
    pos = 0
    rx = lang.patterns
    while (m := rx.search(text, pos)) is not None:
        pos = m.start() + 1
        yield m


def _part_spans(lang: LanguageLexicon, text: str) -> list[list[tuple[int, int]]] | None:
    """(start, end) of every match of every combo's first part (index as in ``combo_parts``),
    from one scan; None when the parts could not be split by first character."""
    d = lang.combo_dispatch
    if d is None:
        return None
    spans: list[list[tuple[int, int]]] = [[] for _ in lang.combo_parts]
    parts = lang.combo_parts
    for c in d.starts.finditer(text):
        at = c.start()
        ch = text[at]
        m = d.table[ch].match(text, at)
        if m is None:
            continue
        hit = m.lastgroup or ""
        spans[int(hit[1:])].append((at, m.end()))
        # A later part may match at the same place too (the alternation reports the first one
        # only; the ones before it did not match here).
        names = d.members[ch]
        for name in names[names.index(hit) + 1 :]:
            if (other := parts[int(name[1:])].match(text, at)) is not None:
                spans[int(name[1:])].append((at, other.end()))
    return spans


def _scan_language(lex: Lexicon, lang: LanguageLexicon, text: str) -> dict[str, int]:
    """Flags found by one language's lexicon → position of their first uncancelled match."""
    if lang.gate is not None and not lang.gate.search(text):
        return {}
    if lang.idioms is not None:
        text = lang.idioms.sub(_blank, text)
    breaks = list(lang.clause_breaks.finditer(text))
    scan = _Scan(lang, text, [b.start() for b in breaks], [b.end() for b in breaks])
    found: dict[str, int] = {}
    for m in _matches(lang, text):
        fid = lang.group_flags.get(m.lastgroup or "")
        if fid is None or fid in found:
            continue
        if not scan.cancelled(lex.rules[fid], m.start(), m.end()):
            found[fid] = m.start()
    if not lang.combos or all(c.flag in found for c in lang.combos):
        return found
    spans = _part_spans(lang, text)
    if spans is None and (lang.combo_gate is None or not lang.combo_gate.search(text)):
        return found
    index = lang.combo_index
    # By identity: hashing the regex and the rules on every lookup is slow.
    seen: dict[tuple[int, int], int | None] = {}
    for combo in lang.combos:
        if combo.flag in found:
            continue
        rules = lex.rules[combo.flag]
        first: int | None = None
        for part in combo.parts:
            key = (id(part), id(rules))
            if key not in seen:
                i = index.get(part)
                seen[key] = (
                    _first_uncancelled(scan, rules, part)
                    if spans is None or i is None
                    else next(
                        (a for a, b in spans[i] if not scan.cancelled(rules, a, b, part=True)),
                        None,
                    )
                )
            at = seen[key]
            if at is None:
                break
            first = at if first is None else min(first, at)
        else:
            if first is not None:
                found[combo.flag] = first
    return found


def _first_uncancelled(scan: _Scan, rules: FlagRules, rx: re.Pattern[str]) -> int | None:
    pos = 0
    while (m := rx.search(scan.text, pos)) is not None:
        if not scan.cancelled(rules, m.start(), m.end(), part=True):
            return m.start()
        pos = m.start() + 1
    return None


def detect_all(text: str, lexicon: Lexicon | None = None) -> list[Hit]:
    """Every red flag in the message, most urgent first (then by position in the text)."""
    lex = lexicon or _default()
    norm = normalize(text)
    if not norm:
        return []
    best: dict[str, tuple[int, str]] = {}
    for code in LANGUAGES:
        for fid, at in _scan_language(lex, lex.languages[code], norm).items():
            if fid not in best or at < best[fid][0]:
                best[fid] = (at, code)
    order = sorted(best, key=lambda fid: (lex.rank(fid)[0], best[fid][0], lex.rank(fid)[1]))
    return [
        Hit(fid, lex.flags[fid].disposition, lex.flags[fid].crisis, best[fid][1]) for fid in order
    ]


def detect(text: str, lexicon: Lexicon | None = None) -> Hit | None:
    """The most urgent red flag in a message, or None. Never raises on any ``str``."""
    hits = detect_all(text, lexicon)
    return hits[0] if hits else None
