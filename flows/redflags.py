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
  "已经好了", "всё прошло") and the flag is ``resolvable``;
* it is about an animal: one is named in its clause ("my dog had a seizure"), or earlier in
  its sentence with no person named in between ("my dog cut his paw and it's bleeding");
* a hypothetical precedes it in its clause ("what if he has a seizure", "如果晚上胸口疼"),
  whatever acute words the clause holds;
* the message is framed as fiction, study or a question asked in advance ("in the film ...,
  how realistic is that", "急救课上", "пишу курсовую про инсульт");

none of these applies to a flag that is not negatable (self-harm). A combo part that only
sets the context (a child, a pregnancy, back trouble; ``context`` in the data) is not
cancelled by history or by what follows it.

Idioms ("dying of boredom", "笑死我了", "умираю от скуки") are blanked out before matching.

Loading parses each regular expression source once and lays the regexes that use it out from
that parse (see ``_Regexes``), which keeps start-up well under a second.
"""

from __future__ import annotations

import bisect
import gc
import importlib
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
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
        "humans",
        "frames",
        "hypothetical",
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
    # Whether the second-opinion model may turn a hit of this flag it finds very unlikely into
    # "is this an emergency?" (flows/redflag_model.py, ``doubts``); false for self-harm and
    # chest pain in redflags.toml.
    doubtable: bool = True


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
    # Per part: whether it only sets the context (a child, a pregnancy, back trouble, chemo):
    # it stands however long ago it started, so a history cue does not cancel it.
    context: tuple[bool, ...] = ()
    # Per part: its index in LanguageLexicon.combo_parts when it is a first part, else -1.
    slots: tuple[int, ...] = ()


@dataclass(frozen=True)
class Dispatch:
    """An alternation of named groups split by the first two characters a match can start
    with: at a candidate position (``starts``: a word start holding one of the first
    characters) where the text reads c1 c2, only ``table[c1 + c2]`` is tried, or, when there is
    no such key, ``table[c1]``, which holds the alternatives whose second character is not
    known (any, or a set too large to list). Each holds the same alternatives in the same
    order as the whole alternation, minus those that cannot start there, so it finds the same
    matches; on a long message it is several times faster than the whole alternation."""

    starts: re.Pattern[str]
    table: Mapping[str, re.Pattern[str]]
    members: Mapping[str, tuple[str, ...]]  # group names in table[key], in order
    pairs: bool = True  # False: every key is one character, and every first character has one

    def key(self, text: str, at: int) -> str | None:
        """The key of the table to try at ``at`` (None: nothing can match there)."""
        if not self.pairs:
            return text[at]
        table = self.table
        k = text[at : at + 2]
        if k in table:
            return k
        k = text[at]
        return k if k in table else None


@dataclass(frozen=True)
class LanguageLexicon:
    """One language's compiled lexicon."""

    code: str
    gate: re.Pattern[str] | None
    # The whole alternation (word start, then each flag's patterns in a named group, most urgent
    # first), as regex text: compiled on first use (``patterns``), as ``dispatch`` does the
    # matching when it can be built.
    patterns_source: str
    group_flags: Mapping[str, str]
    # ``patterns`` split by first character (None when a first character cannot be read).
    dispatch: Dispatch | None
    combos: tuple[Combo, ...]
    combo_gate: re.Pattern[str] | None  # any combo's first part; no match means no combo
    # Every distinct first part of a combo, and all of them split by first character in
    # groups g0, g1... (the other parts are searched only when the first one is found).
    combo_parts: tuple[re.Pattern[str], ...]
    combo_dispatch: Dispatch | None
    idioms: re.Pattern[str] | None
    # The idioms split by first character, each tried only where a match can start (at a word
    # boundary when every idiom starts with \b); None when that cannot be read.
    idioms_dispatch: Dispatch | None
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
    # Animals in the clause: "my dog is having a seizure" is not a patient's emergency. In the
    # same sentence they count too when the clause names no person ("my dog cut his paw and it's
    # bleeding a lot"): ``humans`` are the words that name one.
    animals: re.Pattern[str] | None
    humans: re.Pattern[str] | None
    # Anywhere in the message: the message is about fiction, a course or an exam, or asks in
    # advance ("in the film", "my exam is on sepsis", "我想提前知道"). Acute words do not
    # override it ("just watched an episode where a guy had a stroke").
    frames: re.Pattern[str] | None
    # Before the match in its clause: what might happen is not happening ("what if he has a
    # seizure tonight", "如果晚上突然胸口疼"), even with an acute word in the clause.
    hypothetical: re.Pattern[str] | None
    history: re.Pattern[str]
    acute: re.Pattern[str]
    negation_window: int
    history_window: int
    duration: re.Pattern[str] | None
    numbers: Mapping[str, float]
    units: tuple[tuple[str, float], ...]

    @property
    def patterns(self) -> re.Pattern[str]:
        """The whole alternation, compiled once per process when first needed."""
        return _compiled(self.patterns_source)


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


# --- compiling ----------------------------------------------------------------------------------
# Python's re tries every branch of a large alternation at every position. A lookahead listing
# the characters a match can start with lets it skip most positions at once: about 30 times
# faster on chat messages, same matches. The set is read from re's parse tree (a private
# module, so any surprise means "no guard", never a wrong one).
#
# re.compile parses its whole source every time, and the same pattern sources appear in many
# regexes (each flag's alternation, and the split-by-first-character tables below, which hold
# several copies of most sources). ``_Regexes`` parses and translates each distinct source to
# re's byte code once, and lays an alternation of sources out exactly as re's compiler lays out
# the parse tree of the equivalent regex text, then hands it to re's engine (which checks the
# code). Where that is not possible (another Python, a source with capturing groups) the regex
# text is compiled as usual: same matches, slower loading.

try:
    _PARSER: Any = importlib.import_module("re._parser")
    _CONST: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - other Python versions
    _PARSER = _CONST = None
try:
    _COMPILER: Any = importlib.import_module("re._compiler")
    _SRE: Any = importlib.import_module("_sre")
    _UNICODE: int = re.UNICODE.value
    _LAYOUT = all(
        hasattr(x, name)
        for x, name in (
            (_COMPILER, "_compile"),
            (_COMPILER, "_compile_info"),
            (_PARSER, "SubPattern"),
            (_PARSER, "State"),
            (_SRE, "compile"),
        )
    )
except (ImportError, AttributeError):  # pragma: no cover - other Python versions
    _COMPILER = _SRE = None
    _UNICODE = 0
    _LAYOUT = False

_MAX_GUARD = 600  # characters; a larger set is not worth a lookahead


def first_chars(seq: Any) -> tuple[set[str] | None, bool]:
    """(characters a match of the parse tree ``seq`` can start with, or None if unknown; can
    it be empty). Also used by flows.understand for its guards."""
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
                chars, alt_empty = first_chars(alt)
                if chars is None:
                    return None, False
                out |= chars
                empty = empty or alt_empty
            if not empty:
                return out, False
            continue
        if op is c.MAX_REPEAT or op is c.MIN_REPEAT:
            low, _, sub = av
            chars, sub_empty = first_chars(sub)
            if chars is None:
                return None, False
            out |= chars
            if low > 0 and not sub_empty:
                return out, False
            continue
        return None, False
    return out, True


def _at_boundary(seq: Any) -> bool:
    """Whether a match of the parsed ``seq`` must start with \\b."""
    c = _CONST
    for op, av in seq:
        if op is c.AT:
            return av is c.AT_BOUNDARY
        if op is c.SUBPATTERN:
            return _at_boundary(av[3])
        if op is c.BRANCH:
            return all(_at_boundary(alt) for alt in av[1])
        return False
    return False


_MAX_PAIRS = 4000  # first-two-character strings of one source; more means "second one unknown"


def _class_chars(op: Any, av: Any) -> set[str] | None:
    """The characters a LITERAL or IN item matches (None: unknown or too many)."""
    c = _CONST
    if op is c.LITERAL:
        return {chr(av)}
    if op is not c.IN:
        return None
    out: set[str] = set()
    for o, a in av:
        if o is c.LITERAL:
            out.add(chr(a))
        elif o is c.RANGE and a[1] - a[0] <= _MAX_GUARD:
            out.update(chr(x) for x in range(a[0], a[1] + 1))
        elif o is c.CATEGORY and a is c.CATEGORY_DIGIT:
            out.update("0123456789")
        else:
            return None
    return out


def _first_pairs(seq: Any) -> set[tuple[str | None, ...]]:
    """The first two characters a match of the parsed ``seq`` can start with, as tuples: a
    tuple of one character means the match can end after it, None stands for a character
    that is not known; raises ValueError when there are too many."""
    c = _CONST
    cur: set[tuple[str | None, ...]] = {()}

    def done(p: tuple[str | None, ...]) -> bool:
        return len(p) >= 2 or (bool(p) and p[-1] is None)

    def then(a: set[tuple[str | None, ...]], b: set[tuple[str | None, ...]]) -> set[Any]:
        out = {x if done(x) else (x + y)[:2] for x in a for y in (b if not done(x) else [()])}
        if len(out) > _MAX_PAIRS:
            raise ValueError("too many")
        return out

    for op, av in seq:
        if all(done(p) for p in cur):
            break
        if op is c.AT or op is c.ASSERT or op is c.ASSERT_NOT:
            continue  # consumes nothing
        if op is c.LITERAL or op is c.IN:
            chars = _class_chars(op, av)
            nxt: set[tuple[str | None, ...]] = (
                {(None,)} if chars is None else {(x,) for x in chars}
            )
        elif op is c.SUBPATTERN:
            nxt = _first_pairs(av[3])
        elif op is c.BRANCH:
            nxt = set()
            for alt in av[1]:
                nxt |= _first_pairs(alt)
        elif op is c.MAX_REPEAT or op is c.MIN_REPEAT:
            low, high, sub = av
            once = _first_pairs(sub)
            nxt = {()} if low == 0 else set()
            reps: set[tuple[str | None, ...]] = {()}
            for i in range(1, min(high, 2) + 1):
                reps = then(reps, once)
                if i >= low:
                    nxt |= reps
            if low > 2:
                nxt = reps
        else:
            nxt = {(None,)}
        cur = then(cur, nxt)
    return cur


def _guard(sets: list[frozenset[str] | None]) -> str | None:
    """A lookahead for the characters a match of any of the alternatives with these first
    characters can start with; None when one of them is unknown or there are too many."""
    if not sets or None in sets:
        return None
    found = {x for s in sets if s for x in s}
    if not found or len(found) > _MAX_GUARD:
        return None
    # Both cases, in case a pattern uses (?i): the guard must never be stricter than the regex.
    chars = found | {x.upper() for x in found if len(x.upper()) == 1}
    chars |= {x.lower() for x in found}
    return f"(?=[{''.join(re.escape(x) for x in sorted(chars))}])"


def _text(prefix: list[str], groups: list[tuple[str | None, list[str]]]) -> str:
    """The regex text of ``prefix`` followed by the alternation of ``groups``: each a named
    group (or, for a lone unnamed one, no group) around the alternation of its sources."""
    if not prefix and len(groups) == 1 and groups[0][0] is None and len(groups[0][1]) == 1:
        return groups[0][1][0]  # a lone pattern, as it is
    alternatives = []
    for name, sources in groups:
        inner = "|".join(f"(?:{x})" for x in sources)
        alternatives.append(inner if name is None else f"(?P<{name}>{inner})")
    body = "|".join(alternatives)
    return "".join(prefix) + (f"(?:{body})" if prefix else body)


class _Regexes:
    """Validates and compiles the regular expressions of one data file, parsing each distinct
    source once (see the comment above)."""

    def __init__(self) -> None:
        self._trees: dict[str, Any] = {}
        self._code: dict[str, list[int]] = {}
        self._starts: dict[str, frozenset[str] | None] = {}

    def _tree(self, source: str) -> Any:
        tree = self._trees.get(source)
        if tree is None:
            tree = self._trees[source] = _PARSER.parse(source)
        return tree

    def _fragment(self, source: str) -> list[int]:
        """The byte code of ``source`` inside a larger pattern (no info block, no SUCCESS)."""
        code = self._code.get(source)
        if code is None:
            tree = self._tree(source)
            code = []
            _COMPILER._compile(code, tree.data, tree.state.flags)
            self._code[source] = code
        return code

    def check(self, source: str) -> str | None:
        """What is wrong with ``source`` as a pattern: "named group" (reserved), "empty" (it
        matches the empty string, so it would match every message) or None. Raises re.error
        when it is not a regular expression."""
        if _PARSER is None or not _LAYOUT:
            rx = re.compile(source)
            if rx.groupindex:
                return "named group"
            return "empty" if rx.search("") is not None else None
        tree = self._tree(source)
        self._fragment(source)  # some errors (look-behind width) are found only here
        if tree.state.groupdict:
            return "named group"
        if tree.getwidth()[0] == 0 and self.build([], [(None, [source])]).search("") is not None:
            return "empty"
        return None

    def starts(self, source: str) -> frozenset[str] | None:
        """The characters a match of ``source`` can start with; None when unknown or when it
        can match the empty string."""
        if source in self._starts:
            return self._starts[source]
        found: frozenset[str] | None = None
        if _PARSER is not None:
            try:
                chars, empty = first_chars(self._tree(source))
            except Exception:  # noqa: BLE001 - private API: any failure only means "unknown"
                chars, empty = None, True
            found = None if chars is None or empty else frozenset(chars)
        self._starts[source] = found
        return found

    def pairs(self, source: str, chars: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
        """(the first two characters of a match of ``source``, the first characters whose
        second one is not known), given ``chars``, its first characters. When in doubt every
        first character is in the second set: that only costs speed."""
        try:
            found = _first_pairs(self._tree(source))
        except Exception:  # noqa: BLE001 - private API: any failure only means "unknown"
            return frozenset(), chars
        pairs = {f"{p[0]}{p[1]}" for p in found if len(p) == 2 and None not in p}
        open_ = {p[0] for p in found if p and p[0] is not None and (len(p) == 1 or p[1] is None)}
        if None in {p[0] for p in found if p} or () in found:
            return frozenset(), chars
        if {x[0] for x in pairs} | open_ != chars:  # must agree with the first characters
            return frozenset(), chars
        return frozenset(pairs), frozenset(open_)

    def at_boundary(self, source: str) -> bool:
        """Whether every match of ``source`` starts with \\b (so only word boundaries need to be
        tried); False when unknown."""
        if _PARSER is None:
            return False
        try:
            return _at_boundary(self._tree(source))
        except Exception:  # noqa: BLE001 - private API: any failure only means "unknown"
            return False

    def guard(self, sources: list[str]) -> str | None:
        """The lookahead for the first characters of an alternation of ``sources``, if known."""
        return _guard([self.starts(x) for x in sources])

    def union(self, prefix: list[str], sources: list[str]) -> re.Pattern[str]:
        """``prefix`` and the alternation of ``sources``, behind a guard when one is known."""
        guard = self.guard(sources)
        return self.build([*prefix, guard] if guard else prefix, [(None, sources)])

    def can_assemble(self, prefix: list[str], groups: list[tuple[str | None, list[str]]]) -> bool:
        """Whether ``build`` lays the regex out from parsed pieces: re's private modules are
        there, no source has inline global flags (re places or refuses those itself) and the
        only source with capturing groups, if any, comes before every other group (so its
        groups keep their numbers and what refers to them stays right)."""
        if _PARSER is None or not _LAYOUT:
            return False
        opened = 0  # capturing groups before the current source, in the regex text
        try:
            for name, sources in [(None, prefix), *groups]:
                opened += name is not None
                for x in sources:
                    tree = self._tree(x)
                    if tree.state.flags != _UNICODE or (tree.state.groups > 1 and opened):
                        return False
                    opened += tree.state.groups - 1
        except re.error:
            return False
        return True

    def build(
        self, prefix: list[str], groups: list[tuple[str | None, list[str]]]
    ) -> re.Pattern[str]:
        """The compiled ``_text(prefix, groups)``; raises re.error."""
        text = _text(prefix, groups)
        if not self.can_assemble(prefix, groups):
            return re.compile(text)
        try:
            return self._assemble(text, prefix, groups)
        except (re.error, RuntimeError, TypeError, AttributeError, IndexError):  # pragma: no cover
            return re.compile(text)

    def _assemble(
        self, text: str, prefix: list[str], groups: list[tuple[str | None, list[str]]]
    ) -> re.Pattern[str]:
        tree, code = self.layout(prefix, groups)
        state = tree.state
        index = [None] * state.groups
        for name, gid in state.groupdict.items():
            index[gid] = name
        # re._compiler.compile's last step; _sre checks the code and refuses a malformed one.
        compiled: re.Pattern[str] = _SRE.compile(
            text, _UNICODE, code, state.groups - 1, state.groupdict, tuple(index)
        )
        return compiled

    def layout(
        self, prefix: list[str], groups: list[tuple[str | None, list[str]]]
    ) -> tuple[Any, list[int]]:
        """The parse tree of ``_text(prefix, groups)`` (without the parser's optional merging
        of prefixes that all alternatives share), put together from the sources' trees, and
        its byte code as re._compiler lays it out, put together from the sources' byte code:
        nothing is parsed or translated twice. The tree is needed for the info block (match
        widths and literal prefix); a test checks the code against re._compiler's for it."""
        c, parser = _CONST, _PARSER
        state = parser.State()
        state.flags = _UNICODE
        items: list[Any] = []
        body: list[int] = []
        for x in prefix:
            tree = self._tree(x)
            for width in tree.state.groupwidths[1:]:  # as for the sources below
                state.groupwidths[state.opengroup()] = width
            items.extend(tree.data)
            body.extend(self._fragment(x))
        if len(groups) > 1 and any(name is None for name, _ in groups):
            raise TypeError("only a lone group may be unnamed")
        nodes: list[Any] = []
        gids: list[int | None] = []
        for name, sources in groups:
            trees = [self._tree(x) for x in sources]
            for tree in trees:  # the groups of the first source (see can_assemble)
                for width in tree.state.groupwidths[1:]:
                    state.groupwidths[state.opengroup()] = width
            node = (
                trees[0]
                if len(trees) == 1
                else parser.SubPattern(state, [(c.BRANCH, (None, trees))])
            )
            gid = None
            if name is not None:
                gid = state.opengroup(name)
                state.closegroup(gid, node)
                node = parser.SubPattern(state, [(c.SUBPATTERN, (gid, 0, 0, node))])
            nodes.append(node)
            gids.append(gid)
        if len(nodes) == 1:
            items.extend(nodes[0].data)
        else:
            items.append((c.BRANCH, (None, nodes)))
        tree = parser.SubPattern(state, items)
        code: list[int] = []
        _COMPILER._compile_info(code, tree, _UNICODE)
        code.extend(body)

        def group(g: int) -> None:
            gid, sources = gids[g], groups[g][1]
            if gid is not None:
                code.extend((c.MARK, 2 * gid - 2))
            _branch(code, len(sources), lambda i: code.extend(self._fragment(sources[i])))
            if gid is not None:
                code.extend((c.MARK, 2 * gid - 1))

        _branch(code, len(groups), group)
        code.append(c.SUCCESS)
        return tree, code


def _branch(code: list[int], n: int, emit: Callable[[int], None]) -> None:
    """Append to ``code`` an alternation of ``n`` pieces, piece i written by ``emit(i)``, as
    re._compiler lays out a BRANCH (a lone piece is written as it is)."""
    if n == 1:
        emit(0)
        return
    c = _CONST
    code.append(c.BRANCH)
    tails = []
    for i in range(n):
        skip = len(code)
        code.append(0)
        emit(i)
        code.append(c.JUMP)
        tails.append(len(code))
        code.append(0)
        code[skip] = len(code) - skip
    code.append(c.FAILURE)
    for tail in tails:
        code[tail] = len(code) - tail


def _dispatch(
    rx: _Regexes,
    word_start: str,
    groups: list[tuple[str, list[str]]],
    *,
    named: bool = True,
    pairs: bool = True,
) -> Dispatch | None:
    """``groups`` (name, regex sources) split by their first two characters (see
    ``Dispatch``; by the first one only without ``pairs``), or None when the first characters
    of a source cannot be read (then the whole alternation is used). Without ``named``, a
    table is the plain alternation of its sources (a source may then refer to its own group 1,
    if it is the first one)."""
    entries: list[tuple[str, str, frozenset[str], frozenset[str]]] = []
    every: set[str] = set()
    for name, sources in groups:
        for source in sources:
            chars = rx.starts(source)
            if chars is None:
                return None
            two, one = rx.pairs(source, chars) if pairs else (frozenset(), chars)
            entries.append((name, source, two, one))
            every |= chars
    if not every:
        return None
    # Which entries each key holds, in order: those with the pair, and those whose second
    # character is not known, for every pair that starts with their first character.
    by_pair: dict[str, list[int]] = {}
    by_char: dict[str, list[int]] = {}
    for i, (_, _, two, one) in enumerate(entries):
        for k in two:
            by_pair.setdefault(k, []).append(i)
        for k in one:
            by_char.setdefault(k, []).append(i)
    table: dict[str, re.Pattern[str]] = {}
    members: dict[str, tuple[str, ...]] = {}
    # Keys with the same alternatives share one regex.
    compiled: dict[tuple[int, ...], tuple[re.Pattern[str], tuple[str, ...]]] = {}
    for k, own in [*by_pair.items(), *by_char.items()]:
        held = tuple(sorted({*own, *by_char.get(k[0], ())})) if len(k) == 2 else tuple(own)
        if held not in compiled:
            alternatives: list[tuple[str | None, list[str]]] = []
            for i in held:
                name, source = entries[i][0], entries[i][1]
                if alternatives and alternatives[-1][0] == name:
                    alternatives[-1][1].append(source)
                else:
                    alternatives.append((name, [source]))
            rx_k = rx.build(
                [],
                alternatives
                if named
                else [(None, [x for _, found in alternatives for x in found])],
            )
            compiled[held] = (rx_k, tuple(name or "" for name, _ in alternatives))
        table[k], members[k] = compiled[held]
    starts = re.compile(word_start + "[" + "".join(re.escape(x) for x in sorted(every)) + "]")
    return Dispatch(starts, table, members, pairs)


@cache
def _compiled(source: str) -> re.Pattern[str]:
    """A regex compiled once per process (the whole alternation of a language, when needed)."""
    return re.compile(source)


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


def _source(path: Path, where: str, source: Any, macros: Mapping[str, str], rx: _Regexes) -> str:
    """``source`` with its macros expanded, once it is known to be a usable pattern."""
    if not isinstance(source, str) or not source:
        raise _err(path, where, f"expected a non-empty regex string, got {source!r}")
    expanded = _expand(path, where, source, macros)
    try:
        problem = rx.check(expanded)
    except re.error as exc:
        raise _err(path, where, f"invalid regex {source!r}: {exc}") from None
    if problem == "named group":
        raise _err(path, where, f"named groups are reserved: {source!r}")
    if problem == "empty":
        # A pattern that matches the empty string would match every message.
        raise _err(path, where, f"regex matches the empty string: {source!r}")
    return expanded


def _sources(
    path: Path,
    where: str,
    sources: Any,
    macros: Mapping[str, str],
    rx: _Regexes,
    *,
    required: bool = True,
) -> list[str] | None:
    """A list of patterns, each checked; None when it is optional and absent or empty."""
    if sources is None and not required:
        return None
    if not isinstance(sources, list) or (required and not sources):
        raise _err(path, where, "expected a non-empty list of regex strings")
    if not sources:
        return None
    return [_source(path, f"{where}[{i}]", s, macros, rx) for i, s in enumerate(sources)]


def _union(
    path: Path,
    where: str,
    sources: Any,
    macros: Mapping[str, str],
    rx: _Regexes,
    *,
    required: bool = True,
) -> re.Pattern[str] | None:
    parts = _sources(path, where, sources, macros, rx, required=required)
    if parts is None:
        return None
    try:
        return rx.union([], parts)
    except re.error as exc:
        raise _err(path, where, f"patterns do not combine: {exc}") from None


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
            "doubtable",
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
        booleans["doubtable"] = spec.get("doubtable", True)
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
        flags[fid] = RedFlag(fid, disposition, booleans["crisis"], booleans["doubtable"])
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
    path: Path, code: str, spec: dict[str, Any], flags: Mapping[str, RedFlag], rx: _Regexes
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
        return _union(path, f"{base} {key}", spec.get(key), macros, rx, required=required)

    def required(key: str) -> re.Pattern[str]:
        found = union(key)
        assert found is not None  # required=True never returns None
        return found

    gate = spec.get("gate")
    gate_rx = (
        rx.build([], [(None, [_source(path, f"{base} gate", gate, macros, rx)])])
        if gate is not None
        else None
    )
    word_start = spec.get("word_start", "")
    if not isinstance(word_start, str):
        raise _err(path, f"{base} word_start", "expected a regex string")
    try:
        rx.check(word_start) if word_start else None
    except re.error as exc:
        raise _err(path, f"{base} word_start", f"invalid regex: {exc}") from None
    lead = [word_start] if word_start else []

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
        unknown_keys = set(combo) - {"flag", "all", "context"}
        if unknown_keys:
            raise _err(path, where, f"unknown keys {sorted(unknown_keys)}")
        context = combo.get("context", [])
        if not isinstance(context, list) or not all(
            isinstance(j, int) and not isinstance(j, bool) and 0 <= j < len(parts) for j in context
        ):
            raise _err(path, f"{where} context", "expected a list of indexes into 'all'")
        sources = [_source(path, f"{where} all[{j}]", p, macros, rx) for j, p in enumerate(parts)]
        # Like patterns, a part starts at a word start (word_start), so a long message is not
        # tried at every character. Identical parts (a fever regex used by several combos)
        # share one compiled object, so a scan searches each distinct part once.
        compiled: list[re.Pattern[str]] = []
        for j, x in enumerate(sources):
            if x not in shared:
                try:
                    shared[x] = rx.union(lead, [x])
                except re.error as exc:
                    raise _err(path, f"{where} all[{j}]", f"invalid regex: {exc}") from None
            compiled.append(shared[x])
        first_sources.setdefault(compiled[0].pattern, sources[0])
        combos.append(Combo(fid, tuple(compiled), tuple(j in context for j in range(len(parts)))))
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
        # Each pattern is parsed and translated once (which checks it); the regexes that use it
        # are put together from those pieces.
        sources = [_source(path, f"{where}[{i}]", x, macros, rx) for i, x in enumerate(raw)]
        group_flags[f"f{n}"] = fid
        inner = "|".join(f"(?:{x})" for x in sources)
        guard = rx.guard(sources)
        alternatives.append(f"(?P<f{n}>{guard}(?:{inner}))" if guard else f"(?P<f{n}>{inner})")
        groups.append((f"f{n}", sources))
    guard = rx.guard([x for _, sources in groups for x in sources])
    body = "|".join(alternatives)
    combined = word_start + (
        f"{guard}(?:{body})" if guard else f"(?:{body})" if word_start else body
    )
    try:
        # Two characters where matches start at word starts (a word's first letter says
        # little); in Chinese the first character is selective enough.
        dispatch = _dispatch(rx, word_start, groups, pairs=bool(word_start))
        if dispatch is None:
            _compiled(combined)  # the whole alternation does the matching: compile it now
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

    firsts = list(first_sources.values())
    slots = {id(shared[x]): i for i, x in enumerate(firsts)}
    try:
        combo_dispatch = _dispatch(
            rx, word_start, [(f"g{i}", [x]) for i, x in enumerate(firsts)], pairs=bool(word_start)
        )
    except re.error as exc:  # pragma: no cover - each part compiled above
        raise _err(path, f"[[lang.{code}.combos]]", f"parts do not combine: {exc}") from None
    combo_gate = None
    if combos and combo_dispatch is None:
        # Only needed when the first parts cannot be split by first character.
        found = rx.guard(firsts)
        gate_body = "|".join(f"(?:{x})" for x in first_sources)
        combo_gate = re.compile(f"{found}(?:{gate_body})" if found else gate_body)

    where = f"{base} idioms"
    idiom_sources = _sources(path, where, spec.get("idioms"), macros, rx, required=False)
    try:
        idioms = rx.union([], idiom_sources) if idiom_sources else None
        idioms_dispatch = (
            _dispatch(
                rx,
                r"\b" if all(rx.at_boundary(x) for x in idiom_sources) else "",
                [(f"i{i}", [x]) for i, x in enumerate(idiom_sources)],
                named=False,
                pairs=False,
            )
            if idiom_sources
            else None
        )
    except re.error as exc:
        raise _err(path, where, f"patterns do not combine: {exc}") from None
    return LanguageLexicon(
        code=code,
        gate=gate_rx,
        patterns_source=combined,
        group_flags=group_flags,
        dispatch=dispatch,
        combos=tuple(
            replace(c, slots=tuple(slots.get(id(x), -1) for x in c.parts))
            for c in sorted(combos, key=lambda c: urgency(c.flag))
        ),
        combo_gate=combo_gate,
        combo_parts=tuple(shared[x] for x in firsts),
        combo_dispatch=combo_dispatch,
        idioms=idioms,
        idioms_dispatch=idioms_dispatch,
        clause_breaks=required("clause_breaks"),
        negation=required("negation"),
        post_negation=_post_negation(path, base, spec.get("post_negation"), macros, rx),
        after_denial=union("after_denial", required=False),
        after_resolved=union("after_resolved", required=False),
        after_window=_int(path, f"{base} after_window", spec.get("after_window", 80)),
        animals=union("animals", required=False),
        humans=union("humans", required=False),
        frames=union("frames", required=False),
        hypothetical=union("hypothetical", required=False),
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
    path: Path, base: str, sources: Any, macros: Mapping[str, str], rx: _Regexes
) -> re.Pattern[str] | None:
    """The post-negation cues, anchored so that only non-word characters may follow the cue
    before the end of the clause (the search's ``endpos``)."""
    where = f"{base} post_negation"
    parts = _sources(path, where, sources, macros, rx, required=False)
    if parts is None:
        return None
    guard = rx.guard(parts)
    body = "|".join(f"(?:{x})" for x in parts)
    try:
        inner = f"{guard}(?:{body})" if guard else body
        return re.compile(f"(?:{inner})[^\\w]*$")
    except re.error as exc:
        raise _err(path, where, f"patterns do not combine: {exc}") from None


def load(path: Path | None = None) -> Lexicon:
    """Read, validate and compile the data file; raises ``LexiconError`` naming the problem."""
    # Loading allocates many small objects and keeps most of them until it ends, so the cyclic
    # garbage collector would only rescan them, over and over (a quarter of the loading time).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(path or DEFAULT_PATH)
    finally:
        if enabled:
            gc.enable()


def _load(path: Path) -> Lexicon:
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
    rx = _Regexes()  # dropped after loading: its parse trees are large
    for code in LANGUAGES:
        if code not in langs:
            raise _err(path, f"[lang.{code}]", "language section missing")
        languages[code] = _load_language(
            path, code, _table(path, f"[lang.{code}]", langs[code]), flags, rx
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
    _sentences: list[int] = field(default_factory=list)  # ends of sentences, then len(text)
    _framed: list[bool] = field(default_factory=list)
    # Whether another language's frames hold the message ("我在翻译一篇文章, anaphylaxis ...":
    # the Chinese frame covers the English lexicon's hit); None: this language's only.
    framed_elsewhere: Callable[[], bool] | None = None

    def sentence(self, start: int, end: int) -> tuple[int, int]:
        """The bounds of the sentence holding text[start:end]."""
        ends = self._sentences
        if not ends:
            ends.extend(m.end() for m in _SENTENCE_END.finditer(self.text))
            ends.append(len(self.text))
        i = bisect.bisect_right(ends, start)
        lo = ends[i - 1] if i else 0
        j = bisect.bisect_left(ends, end)
        return lo, ends[min(j, len(ends) - 1)]

    def framed(self) -> bool:
        """Whether the message is framed as fiction, study or a question asked in advance,
        in this language's words or (``framed_elsewhere``) another's."""
        if not self._framed:
            rx = self.lang.frames
            own = rx is not None and rx.search(self.text) is not None
            self._framed.append(own or bool(self.framed_elsewhere and self.framed_elsewhere()))
        return self._framed[0]

    def about_animal(self, lo: int, hi: int, start: int, end: int) -> bool:
        """Whether the clause text[lo:hi] of a match is about an animal: one is named in it, or
        earlier in its sentence with no person named since (and none in the clause)."""
        lang = self.lang
        if lang.animals is None:
            return False
        if self._in_clause("animals", lang.animals, lo, hi):
            return True
        if lang.humans is None or self._in_clause("humans", lang.humans, lo, hi):
            return False
        s0, _ = self.sentence(start, end)
        ends = [m.end() for m in lang.animals.finditer(self.text, s0, start)]
        return bool(ends) and lang.humans.search(self.text, ends[-1], start) is None

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

    def cancelled(
        self,
        rules: FlagRules,
        start: int,
        end: int,
        *,
        context: bool = False,
    ) -> bool:
        """Whether the match text[start:end] of a flag with ``rules`` is cancelled. A combo part
        that only sets the ``context`` (a child, a pregnancy, back trouble) is cancelled only by
        a negation before it, an animal, a hypothetical or a frame: not by history ("had back
        trouble for years") nor by what follows it ("took the baby for his jabs, all normal",
        "back pain for years")."""
        lang = self.lang
        lo, hi = self.clause(start, end)
        if rules.negatable:
            w = max(lo, start - lang.negation_window)
            if lang.negation.search(self.text, w, start):
                return True
            post = lang.post_negation
            near_end = hi - end <= lang.negation_window + 8
            if post is not None and near_end and not context and post.search(self.text, end, hi):
                return True
            if self.about_animal(lo, hi, start, end):
                return True
            hypothetical = lang.hypothetical
            if hypothetical is not None and hypothetical.search(self.text, lo, start):
                return True
            if self.framed():
                return True
            if not context and self.taken_back("denial", lang.after_denial, end):
                return True
            if (
                rules.resolvable
                and not context
                and self.taken_back("resolved", lang.after_resolved, end)
            ):
                return True
        if rules.history and not context:
            w0 = max(lo, start - lang.history_window)
            w1 = min(hi, end + lang.history_window)
            # A cue after the match counts when it starts within the window (it may end
            # beyond it: "went blind in one eye from glaucoma a few years ago").
            after = lang.history.search(self.text, end, hi)
            if (
                lang.history.search(self.text, w0, start)
                or (after is not None and after.start() < w1)
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


def _blank_idioms(lang: LanguageLexicon, idioms: re.Pattern[str], text: str) -> str:
    """``text`` with every idiom blanked out, as ``idioms.sub(_blank, text)`` would: the leftmost
    match, then the next one after it; the split tables only spare the positions and the
    idioms that cannot match."""
    d = lang.idioms_dispatch
    if d is None:
        return idioms.sub(_blank, text)
    pieces: list[str] = []
    done = 0
    table, key, two = d.table, d.key, d.pairs
    for c in d.starts.finditer(text):
        at = c.start()
        if at < done or (k := key(text, at) if two else text[at]) is None:
            continue
        m = table[k].match(text, at)
        if m is not None:
            pieces.append(text[done:at])
            pieces.append(" " * (m.end() - at))
            done = m.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _matches(lang: LanguageLexicon, text: str) -> Iterator[re.Match[str]]:
    """Every match of the language's patterns, one per start position (the most urgent flag's
    pattern when several start there)."""
    d = lang.dispatch
    if d is not None:
        table, key, two = d.table, d.key, d.pairs
        for c in d.starts.finditer(text):
            at = c.start()
            k = key(text, at) if two else text[at]
            if k is not None and (m := table[k].match(text, at)) is not None:
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
    table, key, two = d.table, d.key, d.pairs
    for c in d.starts.finditer(text):
        at = c.start()
        k = key(text, at) if two else text[at]
        if k is None or (m := table[k].match(text, at)) is None:
            continue
        hit = m.lastgroup or ""
        spans[int(hit[1:])].append((at, m.end()))
        # A later part may match at the same place too (the alternation reports the first one
        # only; the ones before it did not match here).
        names = d.members[k]
        for name in names[names.index(hit) + 1 :]:
            if (other := parts[int(name[1:])].match(text, at)) is not None:
                spans[int(name[1:])].append((at, other.end()))
    return spans


def _scan_language(
    lex: Lexicon,
    lang: LanguageLexicon,
    text: str,
    framed_elsewhere: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Flags found by one language's lexicon → position of their first uncancelled match."""
    if lang.gate is not None and not lang.gate.search(text):
        return {}
    if lang.idioms is not None:
        text = _blank_idioms(lang, lang.idioms, text)
    breaks = list(lang.clause_breaks.finditer(text))
    scan = _Scan(
        lang, text, [b.start() for b in breaks], [b.end() for b in breaks],
        framed_elsewhere=framed_elsewhere,
    )  # fmt: skip
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
    # By identity: hashing the regex and the rules on every lookup is slow.
    seen: dict[tuple[int, int, bool], int | None] = {}
    for combo in lang.combos:
        if combo.flag in found or (spans is not None and not spans[combo.slots[0]]):
            continue  # found already, or its first part is nowhere in the message
        rules = lex.rules[combo.flag]
        first: int | None = None
        for part, context, i in zip(combo.parts, combo.context, combo.slots, strict=True):
            key = (id(part), id(rules), context)
            if key not in seen:
                seen[key] = (
                    _first_uncancelled(scan, rules, part, context)
                    if spans is None or i < 0
                    else next(
                        (
                            a
                            for a, b in spans[i]
                            if not scan.cancelled(rules, a, b, context=context)
                        ),
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


def _first_uncancelled(
    scan: _Scan, rules: FlagRules, rx: re.Pattern[str], context: bool
) -> int | None:
    pos = 0
    while (m := rx.search(scan.text, pos)) is not None:
        if not scan.cancelled(rules, m.start(), m.end(), context=context):
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
    frames: dict[str, bool] = {}  # language -> its frames hold the message (asked once)

    def framed_by(code: str) -> bool:
        if code not in frames:
            rx = lex.languages[code].frames
            frames[code] = rx is not None and rx.search(norm) is not None
        return frames[code]

    for code in LANGUAGES:

        def elsewhere(own: str = code) -> bool:
            return any(framed_by(c) for c in LANGUAGES if c != own)

        for fid, at in _scan_language(lex, lex.languages[code], norm, elsewhere).items():
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
