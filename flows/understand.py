"""Read a patient's free-text message and guess what the symptom intake asks first.

``understand(text)`` returns the complaint category, how long, how bad (0-10, only when a number
on that scale is stated), who it is about and their age. The intake shows these guesses as
pre-selected answers; the patient still confirms each one, so a wrong guess costs a tap.

All the words live in ``flows/questionnaires/understand.toml`` (English, Simplified Chinese and
Russian; patients mix them in one message), which clinic staff can edit; that file also says how
the main complaint is chosen when several are named. This module is pure Python: no aiogram and
no I/O except reading that file once. Every regex in it has bounded quantifiers (the loader
refuses others), so the work is linear in the length of the message.

A complaint is ignored when it is denied: a denial cue shortly before it in the same clause
("no fever", "没有发烧", "не кашляю") or right after it ("температуры нет", "体温正常"). A cue
just before it or inside it can also say it is secondary ("also a headache", "头也疼", "голова
тоже болит"), as can one just after it ("head a bit achy too"), or the main one ("mainly the
fever", "主要是发烧", "в основном жар"). Some phrases give way to another category ("tight chest"
is chest pain, "tight chest and wheezy" a breathing complaint). A child named only around the
writer ("new dad, baby's 4 months", "kids brought it home and now it's my turn") does not make
the message about a child.
"""

from __future__ import annotations

import bisect
import gc
import importlib
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from flows.redflags import first_chars, normalize

DEFAULT_PATH = Path(__file__).parent / "questionnaires" / "understand.toml"

# The contract with the intake (flows/questionnaires/intake.toml): its complaint categories and
# duration answers, in its order. A test checks that the two files agree.
CATEGORY_IDS: tuple[str, ...] = (
    "chronic_review",
    "cough_cold",
    "fever",
    "back_joint",
    "dizziness",
    "headache",
    "chest_pain",
    "breathing",
    "abdominal_pain",
    "urinary",
    "eye",
    "skin",
    "sore_throat_ear",
    "injury",
    "mental_health",
    "womens_health",
    "child_illness",
    "other",
)
DURATION_IDS: tuple[str, ...] = (
    "minutes",
    "hours",
    "today",
    "days_1_3",
    "days_4_7",
    "weeks_1_4",
    "months",
)
LANGUAGES: tuple[str, ...] = ("en", "zh", "ru")
SMALL_TALK_KINDS: tuple[str, ...] = ("greeting", "thanks", "ok")
WHO: tuple[str, ...] = ("self", "other", "any")

# Past this many complaint phrases per language the rest of a message is not read: no real
# message names a hundred complaints, and it keeps "cough cough cough…" cheap.
MAX_CANDIDATES = 100
# Small talk is short; a longer message is never small talk (and is not cleaned up to check).
SMALL_TALK_SCAN = 400

_MACRO = re.compile(r"%([a-z_][a-z0-9_]*)%")
_NAMED = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]{0,30})>")
_BACKREF = re.compile(r"\(\?P=|\\[1-9]")
_NOT_WORD = re.compile(r"[^\w\s']")
_SPACES = re.compile(r"\s{1,100}")
_NUMBER_GROUPS = frozenset({"n", "u", "plus", "minus", "half"})


class UnderstandDataError(ValueError):
    """The understanding data file is missing or wrong; the message names the file and place."""


@dataclass(frozen=True)
class Understood:
    """What a free-text message says, as far as the words tell; None where it does not say."""

    category: str | None  # one of CATEGORY_IDS
    duration: str | None  # one of DURATION_IDS
    severity: int | None  # 0..10, only when stated as a number on that scale
    subject: str | None  # "self" | "other"
    age_years: float | None  # the age of the person it is about, when stated


NOTHING = Understood(None, None, None, None, None)


# --- fast alternations ------------------------------------------------------------------------
# Python's re tries every branch of an alternation at every position. Knowing which characters
# each branch can start with (read from re's parse tree; a private module, so any surprise just
# means "unknown") lets an alternation skip most branches, or most positions, at once.
#
# Loading fast: re.compile parses its whole text every time, and the same sources appear in many
# regexes here (each checked alone, then in its category's regex, in the language's candidates
# and in the split-by-first-character tables, which hold several copies of most). ``_Regexes``
# parses each distinct source and translates it to re's byte code once. A regex put together
# from sources gets the parse tree re's parser makes of its text (non-capturing groups unpacked,
# prefixes shared by all alternatives moved out, single characters merged into a set), so the
# same byte code, which re's engine checks; its text is its ``pattern``. Where that is not
# possible (another Python version, a source with groups or inline flags, any surprise) the text
# is compiled as usual. A test checks that each bundled regex equals re.compile of its text.

try:
    _PARSER: Any = importlib.import_module("re._parser")
    _CONST: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - other Python versions: no guards, no bound check
    _PARSER = _CONST = None
try:
    _COMPILER: Any = importlib.import_module("re._compiler")
    _SRE: Any = importlib.import_module("_sre")
except ImportError:  # pragma: no cover - other Python versions: regexes compiled from text
    _COMPILER = _SRE = None

_MAX_CHARS = 600  # a larger first-character set is not worth a guard
_MAX_GROUPS = 48  # more groups than this: one guard over a plain alternation instead
_UNICODE = re.UNICODE.value  # the flags re gives a str pattern without inline flags
_PROBE = "\ufdd0"  # a noncharacter, appended to a bound to see that it has no top-level "|"


def _unbounded_tree(tree: Any) -> bool:
    """Does the parse tree contain a quantifier without an upper bound (*, +, {n,})?"""
    repeats = {
        getattr(_CONST, name)
        for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
        if hasattr(_CONST, name)
    }
    sub_pattern, unbounded = _PARSER.SubPattern, _CONST.MAXREPEAT
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, sub_pattern):
            for op, av in node.data:
                if op in repeats and av[1] == unbounded:
                    return True
                if isinstance(av, list | tuple | sub_pattern):
                    stack.append(av)
        else:  # the tuples and lists inside an item
            stack.extend(x for x in node if isinstance(x, list | tuple | sub_pattern))
    return False


def _first_chars_tree(tree: Any) -> set[str] | None:
    """The characters a match of the parse tree can start with, or None when unknown."""
    chars, empty = first_chars(tree)
    return None if chars is None or empty or len(chars) > _MAX_CHARS else chars


class _Seq:
    """Regex text as re's parser reads it inside a larger regex: the items of its parse tree
    (non-capturing groups unpacked) and the byte code of each."""

    __slots__ = ("chunks", "items", "text")

    def __init__(self, text: str, items: list[Any], chunks: list[list[int]]) -> None:
        self.text, self.items, self.chunks = text, items, chunks


class _Regexes:
    """Checks and compiles the regexes of one data file, parsing and translating each distinct
    source once (see above). Every regex it returns equals ``re.compile`` of its text."""

    def __init__(self, *, layout: bool | None = None) -> None:
        self.layout = _layout_works() if layout is None else layout
        self._trees: dict[str, Any] = {}
        self._chunks: dict[str, list[list[int]]] = {}
        self._compiled: dict[str, re.Pattern[str]] = {}
        self._firsts: dict[str, set[str] | None] = {}
        self._closed: dict[str, bool] = {}
        self._state: Any = _PARSER.State() if self.layout else None

    # One source.

    def tree(self, source: str) -> Any:
        """re's parse tree of ``source``; raises what re.compile raises for it."""
        tree = self._trees.get(source)
        if tree is None:
            tree = self._trees[source] = _PARSER.parse(source)
        return tree

    def _code(self, source: str) -> list[list[int]]:
        """The byte code of each item of the parse tree of ``source``."""
        chunks = self._chunks.get(source)
        if chunks is None:
            tree = self.tree(source)
            chunks = []
            for item in tree.data:
                chunk: list[int] = []
                _COMPILER._compile(chunk, [item], tree.state.flags)
                chunks.append(chunk)
            self._chunks[source] = chunks
        return chunks

    def check(self, source: str) -> None:
        """Raises the re.error (or other error) re.compile raises for ``source``, if any."""
        if self.layout:
            self._code(source)  # some errors (look-behind width) are found only here
        else:
            self.compile(source)

    def compile(self, source: str) -> re.Pattern[str]:
        """``re.compile(source)``."""
        rx = self._compiled.get(source)
        if rx is None:
            rx = self._compiled[source] = (
                self._assemble(source) if self.layout else re.compile(source)
            )
        return rx

    def _assemble(self, source: str) -> re.Pattern[str]:
        tree = self.tree(source)
        chunks = self._code(source)
        try:
            # re._compiler.compile, from the parse tree and byte code already made.
            state = tree.state
            code: list[int] = []
            _COMPILER._compile_info(code, tree, state.flags)
            for chunk in chunks:
                code.extend(chunk)
            code.append(_CONST.SUCCESS)
            index: list[str | None] = [None] * state.groups
            for name, gid in state.groupdict.items():
                index[gid] = name
            rx: re.Pattern[str] = _SRE.compile(
                source, state.flags, code, state.groups - 1, state.groupdict, tuple(index)
            )
        except Exception:  # noqa: BLE001 - private API: re.compile decides
            return re.compile(source)
        return rx

    def names(self, source: str) -> set[str]:
        """The names of the named groups of a checked source."""
        if self.layout:
            return set(self.tree(source).state.groupdict)
        return set(self.compile(source).groupindex)

    def matches_empty(self, source: str) -> bool:
        """Does a checked source match the empty string?"""
        if self.layout and self.tree(source).getwidth()[0] > 0:
            return False  # re's engine does not even try: the text is shorter than any match
        return self.compile(source).search("") is not None

    def unbounded(self, source: str) -> bool:
        """Does the regex contain a quantifier without an upper bound (*, +, {n,})?"""
        if _PARSER is None:  # pragma: no cover
            return False
        if "*" not in source and "+" not in source and ",}" not in source:
            return False  # re reads no other text as an unbounded quantifier
        try:
            return _unbounded_tree(self.tree(source))
        except Exception:  # noqa: BLE001 - private API: re.compile reports real errors
            return False

    def first_chars(self, source: str) -> set[str] | None:
        """The characters a match of ``source`` can start with, or None when unknown (the same
        set each time: not to be changed)."""
        if source not in self._firsts:
            found = None
            if _PARSER is not None:
                try:
                    found = _first_chars_tree(self.tree(source))
                except Exception:  # noqa: BLE001 - private API: any failure only means "unknown"
                    found = None
            self._firsts[source] = found
        return self._firsts[source]

    # Regexes put together from sources: each function returns the text it stands for.

    def build(
        self, text: str, make: Callable[[], tuple[_Seq, Any]] | None = None
    ) -> re.Pattern[str]:
        """``re.compile(text)``, put together by ``make`` when it can be. ``make`` returns the
        regex and the parser state holding its groups (None: no groups)."""
        rx = self._compiled.get(text)
        if rx is not None:
            return rx
        if self.layout and make is not None:
            try:
                seq, groups = make()
                if seq.text == text:
                    rx = self._finish(seq, groups)
            except Exception:  # noqa: BLE001 - private API, or a real error: re.compile decides
                rx = None
        if rx is None:
            rx = re.compile(text)
        self._compiled[text] = rx
        return rx

    def _finish(self, seq: _Seq, groups: Any = None) -> re.Pattern[str]:
        # re._compiler.compile for a pattern without inline flags.
        tree = _PARSER.SubPattern(self._state, seq.items)
        code: list[int] = []
        _COMPILER._compile_info(code, tree, _UNICODE)
        for chunk in seq.chunks:
            code.extend(chunk)
        code.append(_CONST.SUCCESS)
        if groups is None:
            rx: re.Pattern[str] = _SRE.compile(seq.text, _UNICODE, code, 0, {}, (None,))
            return rx
        index: list[str | None] = [None] * groups.groups
        for name, gid in groups.groupdict.items():
            index[gid] = name
        rx = _SRE.compile(
            seq.text, _UNICODE, code, groups.groups - 1, groups.groupdict, tuple(index)
        )
        return rx

    def either(self, parts: Sequence[str], bounds: tuple[str, str]) -> re.Pattern[str]:
        """``bounds[0](?:(?:part)|(?:part)|…)bounds[1]``, compiled."""

        def make() -> tuple[_Seq, None]:
            alternatives = [self.group([self.leaf(p)]) for p in parts]
            seq = self.cat(self.bare(bounds[0]), self.group(alternatives), self.bare(bounds[1]))
            return seq, None

        return self.build(f"{bounds[0]}(?:{'|'.join(f'(?:{p})' for p in parts)}){bounds[1]}", make)

    def join(self, parts: Sequence[str]) -> str:
        """``(?:part)|(?:part)|…``, with the parse tree put together from the parts' trees."""
        text = "|".join(f"(?:{p})" for p in parts)
        if self.layout and text not in self._trees:
            try:
                items, chunks = self._alternation([self.group([self.leaf(p)]) for p in parts])
            except Exception:  # noqa: BLE001 - private API, or a real error: parsed when needed
                return text
            state = _PARSER.State()
            state.flags, state.str = _UNICODE, text
            self._trees[text] = _PARSER.SubPattern(state, items)
            self._chunks[text] = chunks
        return text

    def named(self, groups: Any, name: str, source: str) -> _Seq:
        """``(?P<name>source)`` in a regex whose groups so far ``groups`` (a parser state) holds:
        the source's own groups are numbered after it."""
        c = _CONST
        tree = self.tree(source)
        if tree.state.flags != _UNICODE or not name.isidentifier():
            raise ValueError("inline flags or a bad name: compile the text")
        gid = groups.opengroup(name)
        inner = {g: n for n, g in tree.state.groupdict.items()}
        for g in range(1, tree.state.groups):
            groups.opengroup(inner.get(g))

        def shifted(sub: Any) -> Any:
            data = []
            for op, av in sub.data:
                if op is c.SUBPATTERN:
                    g, add, remove, p = av
                    av = (None if g is None else g + gid, add, remove, shifted(p))
                elif op is c.BRANCH:
                    av = (av[0], [shifted(p) for p in av[1]])
                elif op in _REPEAT_OPS:
                    av = (av[0], av[1], shifted(av[2]))
                elif op is c.ASSERT or op is c.ASSERT_NOT:
                    av = (av[0], shifted(av[1]))
                elif op not in _FLAT_OPS:  # group references, atomic groups
                    raise ValueError("compile the text")
                data.append((op, av))
            return _PARSER.SubPattern(self._state, data)

        item = (c.SUBPATTERN, (gid, 0, 0, shifted(tree)))
        chunk: list[int] = []
        _COMPILER._compile(chunk, [item], _UNICODE)
        return _Seq(f"(?P<{name}>{source})", [item], [chunk])

    def leaf(self, source: str) -> _Seq:
        """A source without groups or inline flags, which the text around it cannot change
        (inside a group or assertion, or a single character or set)."""
        tree = self.tree(source)
        if tree.state.flags != _UNICODE or tree.state.groups != 1:
            raise ValueError("groups or inline flags: compile the text")
        return _Seq(source, tree.data, self._code(source))

    def bare(self, source: str) -> _Seq:
        """A checked source (a word bound) standing directly in a larger regex's text."""
        if not source:
            return _Seq("", [], [])
        seq = self.leaf(source)
        closed = self._closed.get(source)
        if closed is None:
            # Without a "|" at its top level, a character appended is the last item.
            probe = _PARSER.parse(source + _PROBE).data
            closed = self._closed[source] = (
                _PROBE not in source
                and len(probe) == len(seq.items) + 1
                and probe[-1] == (_CONST.LITERAL, ord(_PROBE))
            )
        if not closed:
            raise ValueError("not a closed regex: compile the text")
        return seq

    @staticmethod
    def cat(*seqs: _Seq) -> _Seq:
        """Texts one after the other."""
        return _Seq(
            "".join(s.text for s in seqs),
            [item for s in seqs for item in s.items],
            [chunk for s in seqs for chunk in s.chunks],
        )

    def group(self, alternatives: Sequence[_Seq]) -> _Seq:
        """``(?:a|b|…)``."""
        items, chunks = self._alternation(alternatives)
        return _Seq("(?:" + "|".join(a.text for a in alternatives) + ")", items, chunks)

    def look(self, kind: str, alternatives: Sequence[_Seq]) -> _Seq:
        """``(?=a|b|…)`` (kind "=") or ``(?<=a|b|…)`` (kind "<=")."""
        c = _CONST
        items, chunks = self._alternation(alternatives)
        sub = _PARSER.SubPattern(self._state, items)
        if kind == "=":
            direction, head = 1, [c.ASSERT, 0, 0]
        elif kind == "<=":
            low, high = sub.getwidth()
            if low != high or low > _COMPILER.MAXCODE:
                raise ValueError("look-behind width: compile the text")
            direction, head = -1, [c.ASSERT, 0, low]
        else:
            raise ValueError(kind)
        code = head
        for chunk in chunks:
            code.extend(chunk)
        code.append(c.SUCCESS)
        code[1] = len(code) - 1
        text = f"(?{kind}" + "|".join(a.text for a in alternatives) + ")"
        return _Seq(text, [(c.ASSERT, (direction, sub))], [code])

    def _alternation(self, alternatives: Sequence[_Seq]) -> tuple[list[Any], list[list[int]]]:
        """What re._parser._parse_sub makes of ``a|b|…``, and its byte code."""
        c = _CONST
        if not alternatives:
            return [], []
        if len(alternatives) == 1:
            return list(alternatives[0].items), list(alternatives[0].chunks)
        items: list[Any] = []
        chunks: list[list[int]] = []
        # Items that all alternatives start with move out of the branch. (The parser compares
        # them with ==: sub-patterns are never equal, being different objects there.)
        k = 0
        while True:
            first = None
            for alt in alternatives:
                if len(alt.items) <= k:
                    break
                item = alt.items[k]
                if first is None:
                    if item[0] not in _FLAT_OPS:
                        break
                    first = item
                elif item != first:
                    break
            else:
                items.append(first)
                chunks.append(alternatives[0].chunks[k])
                k += 1
                continue
            break
        # Single characters and sets make one set.
        members: list[Any] = []
        for alt in alternatives:
            if len(alt.items) - k != 1:
                break
            op, av = alt.items[k]
            if op is c.LITERAL:
                members.append((op, av))
            elif op is c.IN and av[0][0] is not c.NEGATE:
                members.extend(av)
            else:
                break
        else:
            item = (c.IN, _PARSER._uniq(members))
            chunk: list[int] = []
            _COMPILER._compile(chunk, [item], _UNICODE)
            return [*items, item], [*chunks, chunk]
        # re._compiler's layout of a branch.
        code = [c.BRANCH]
        tails = []
        for alt in alternatives:
            skip = len(code)
            code.append(0)
            for piece in alt.chunks[k:]:
                code.extend(piece)
            code.append(c.JUMP)
            tails.append(len(code))
            code.append(0)
            code[skip] = len(code) - skip
        code.append(c.FAILURE)
        for tail in tails:
            code[tail] = len(code) - tail
        branches = [
            _PARSER.SubPattern(self._state, alt.items[k:] if k else alt.items)
            for alt in alternatives
        ]
        return [*items, (c.BRANCH, (None, branches))], [*chunks, code]


_REPEAT_OPS = (
    frozenset(
        getattr(_CONST, name)
        for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
        if hasattr(_CONST, name)
    )
    if _CONST is not None
    else frozenset()
)
# Parse tree items without sub-patterns: the parser's == can find two of them equal.
_FLAT_OPS = (
    frozenset(
        getattr(_CONST, name)
        for name in ("LITERAL", "NOT_LITERAL", "IN", "ANY", "AT", "CATEGORY")
        if hasattr(_CONST, name)
    )
    if _CONST is not None
    else frozenset()
)


@cache
def _layout_works() -> bool:
    """Can regexes be put together from their sources' parse trees here? (Python 3.11 to 3.13,
    whose re internals this mirrors; checked on a sample that needs each rule.)"""
    if not (3, 11) <= sys.version_info[:2] <= (3, 13):
        return False
    if _PARSER is None or _CONST is None or _COMPILER is None or _SRE is None:
        return False
    try:
        rx = _Regexes(layout=True)
        parts = ["ab", "ac", "a", "[xy]", "z", "[^q]", "(?:b|c)d", r"\d{1,3}", r"\bé{1,2}?", "."]
        bound = rx.bare(r"(?<![a-z])")

        def alts(sources: Sequence[str]) -> _Seq:
            return rx.group([rx.group([rx.leaf(p)]) for p in sources])

        samples = [
            rx.cat(bound, alts(parts), rx.bare(r"(?![a-z])")),
            rx.cat(rx.look("=", [rx.leaf("[a-c]")]), alts(["ab", "ab", "abc"])),
            rx.group([rx.cat(rx.leaf("x"), rx.look("<=", [rx.leaf("[a-c]")])), alts(parts[2:6])]),
            rx.cat(bound, rx.group([rx.leaf("a"), rx.leaf("[bc]"), rx.leaf("é")])),
        ]
        return all(rx._finish(s) == re.compile(s.text) for s in samples)
    except Exception:  # noqa: BLE001 - private API: compile from text
        return False


def _charset(chars: Iterable[str]) -> str:
    return "[" + "".join(re.escape(ch) for ch in sorted(chars)) + "]"


def _guard(rx: _Regexes, sources: Iterable[str]) -> str:
    """A lookahead for the characters any of ``sources`` can start with ("" when unknown)."""
    chars: set[str] = set()
    for source in sources:
        found = rx.first_chars(source)
        if found is None:
            return ""
        chars |= found
    return f"(?={_charset(chars)})" if chars and len(chars) <= _MAX_CHARS else ""


def _fast(
    rx: _Regexes, parts: Sequence[str], bounds: tuple[str, str], *, starts_only: bool = False
) -> re.Pattern[str]:
    """``bounds[0] (?:part1|part2|…) bounds[1]`` (parts without named groups), arranged so that
    each position tries only the parts that can start with its character. Same matches; with
    ``starts_only`` the same start positions, but a match may be one character or empty."""
    by_char: dict[str, list[int]] = {}
    unknown: list[int] = []
    for i, part in enumerate(parts):
        chars = rx.first_chars(part)
        if chars is None:
            unknown.append(i)
            continue
        for ch in chars:
            by_char.setdefault(ch, []).append(i)
    by_parts: dict[tuple[int, ...], set[str]] = {}
    for ch, idx in by_char.items():
        by_parts.setdefault(tuple(idx), set()).add(ch)
    guard = f"(?={_charset(by_char)})" if by_char and not unknown else ""

    def one(i: int) -> _Seq:  # (?:part)
        return rx.group([rx.leaf(parts[i])])

    def each(idx: Iterable[int]) -> _Seq:  # (?:(?:part)|(?:part)|…)
        return rx.group([one(i) for i in idx])

    if starts_only:
        # re skips a branch that starts with a character (or a class) without entering it, and
        # when every branch starts with a plain character it jumps over positions that cannot
        # start a match. The character is consumed, so a lookbehind steps back to check the
        # parts from there. Without a word-start bound (Chinese) one branch per character gives
        # that jump; otherwise one branch per set of parts keeps the branches few.
        end = bounds[1]

        def branch(first: str, idx: Sequence[int]) -> str:
            alts = "|".join(f"(?:{parts[i]})" for i in idx)
            return rf"{first}(?<=(?=(?:{alts}){end})[\s\S])"

        firsts: list[tuple[str, Sequence[int]]]
        if bounds[0]:
            firsts = [(_charset(chars), idx) for idx, chars in by_parts.items()]
        else:
            firsts = [(re.escape(ch), idx) for ch, idx in by_char.items()]
        groups = [branch(first, idx) for first, idx in firsts]
        body = "|".join([*groups, *(f"(?=(?:{parts[i]}){end})" for i in unknown)])

        def starts() -> tuple[_Seq, None]:
            tail, any_char = rx.bare(end), rx.leaf(r"[\s\S]")
            alternatives = [
                rx.cat(
                    rx.leaf(first),
                    rx.look("<=", [rx.cat(rx.look("=", [rx.cat(each(idx), tail)]), any_char)]),
                )
                for first, idx in firsts
            ]
            alternatives += [rx.look("=", [rx.cat(one(i), tail)]) for i in unknown]
            return rx.cat(rx.bare(bounds[0]), rx.group(alternatives)), None

        return rx.build(f"{bounds[0]}(?:{body})", starts)
    if len(by_parts) > _MAX_GROUPS:
        body = "|".join(f"(?:{p})" for p in parts)
    else:
        groups = [
            f"(?={_charset(chars)})(?:{'|'.join(f'(?:{parts[i]})' for i in idx)})"
            for idx, chars in by_parts.items()
        ]
        body = "|".join([*groups, *(f"(?:{parts[i]})" for i in unknown)])

    def whole() -> tuple[_Seq, None]:
        if len(by_parts) > _MAX_GROUPS:
            alternatives = [one(i) for i in range(len(parts))]
        else:
            alternatives = [
                rx.cat(rx.look("=", [rx.leaf(_charset(chars))]), each(idx))
                for idx, chars in by_parts.items()
            ]
            alternatives += [one(i) for i in unknown]
        head = [rx.look("=", [rx.leaf(_charset(by_char))])] if guard else []
        return (
            rx.cat(rx.bare(bounds[0]), *head, rx.group(alternatives), rx.bare(bounds[1])),
            None,
        )

    return rx.build(f"{bounds[0]}{guard}(?:{body}){bounds[1]}", whole)


@dataclass(frozen=True)
class _Combined:
    """Several patterns in one regex, so one scan finds them all (leftmost first, earlier
    patterns first at the same place). Each pattern sits in a group named by its tag; its own
    named groups are renamed ``<tag>_<name>``."""

    rx: re.Pattern[str]
    tags: tuple[str, ...]
    info: Mapping[str, str]  # tag → what the pattern means (a who, a duration id, a kind)
    names: Mapping[str, tuple[str, ...]]  # tag → its own group names, renamed
    starts: re.Pattern[str]  # where a match can start (found much faster than by rx)

    def tag(self, m: re.Match[str]) -> str:
        return next(t for t in self.tags if m.start(t) >= 0)

    def scan(self, text: str, limit: int = 64) -> Iterable[tuple[str, re.Match[str]]]:
        """Like ``rx.finditer``, at most ``limit`` matches."""
        pos, found = 0, 0
        while found < limit and (s := self.starts.search(text, pos)):
            m = self.rx.match(text, s.start())
            if m is None:
                pos = s.start() + 1
                continue
            found += 1
            yield self.tag(m), m
            pos = m.end() if m.end() > m.start() else m.start() + 1


def _combine(
    rx: _Regexes, items: Sequence[tuple[str, str, str]], bounds: tuple[str, str]
) -> _Combined:
    """``items``: (tag, meaning, expanded source)."""
    alternatives = []
    renamed: list[tuple[str, str]] = []
    names: dict[str, tuple[str, ...]] = {}
    for tag, _, source in items:
        names[tag] = tuple(f"{tag}_{m.group(1)}" for m in _NAMED.finditer(source))
        renamed.append((tag, _NAMED.sub(f"(?P<{tag}_\\1>", source)))
        alternatives.append(f"(?P<{tag}>{renamed[-1][1]})")
    guard = _guard(rx, (source for _, _, source in items))

    def whole() -> tuple[_Seq, Any]:
        groups = _PARSER.State()
        groups.flags = _UNICODE
        alternatives = [rx.named(groups, tag, source) for tag, source in renamed]
        head = [rx.look("=", [rx.leaf(guard[3:-1])])] if guard else []
        seq = rx.cat(rx.bare(bounds[0]), *head, rx.group(alternatives), rx.bare(bounds[1]))
        return seq, groups

    combined = rx.build(f"{bounds[0]}{guard}(?:{'|'.join(alternatives)}){bounds[1]}", whole)
    info = {t: meaning for t, meaning, _ in items}
    sources = [_NAMED.sub("(?:", source) for _, _, source in items]
    starts = _fast(rx, sources, bounds, starts_only=True)
    return _Combined(combined, tuple(t for t, _, _ in items), info, names, starts)


def _group(m: re.Match[str], tag: str, name: str) -> str | None:
    key = f"{tag}_{name}"
    return m.group(key) if key in m.re.groupindex else None


def _any_group(c: _Combined, m: re.Match[str], tag: str, prefix: str) -> bool:
    start = f"{tag}_{prefix}"
    return any(k.startswith(start) and m.start(k) >= 0 for k in c.names[tag])


# --- the compiled data -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    """One category's phrases in one language, at one strength."""

    category: str
    also: bool  # an accompanying symptom: decides only when no main phrase is found
    gives_way: str | None  # a category whose phrase, when found too, makes this one not count
    rx: re.Pattern[str]
    first: frozenset[str] | None  # characters a phrase can start with (None: unknown)


@dataclass(frozen=True)
class _Unit:
    rx: re.Pattern[str]
    size: float  # hours (durations) or units per year (ages)


@dataclass(frozen=True)
class _Language:
    """One language's compiled words."""

    code: str
    gate: re.Pattern[str]
    terms: tuple[_Term, ...]
    candidates: re.Pattern[str] | None  # any phrase of any category
    negation_before: re.Pattern[str]
    negation_after: re.Pattern[str]
    negation_window: int
    also_cue: re.Pattern[str] | None  # "also", "也", "тоже": the phrase is secondary
    also_after: re.Pattern[str] | None  # "too" right after the phrase: it is secondary
    main_cue: re.Pattern[str] | None  # "mainly", "主要", "в основном": the phrase is the main one
    cue_window: int
    numbers: Mapping[str, float]
    stems: tuple[tuple[str, float], ...]
    multipliers: Mapping[str, float]
    health: re.Pattern[str] | None
    subject: _Combined  # tags: me_too, not_about, not_child, other, child, self
    durations: _Combined  # tags → "not", a duration id (a phrase) or "number"
    duration_units: tuple[_Unit, ...]
    history: re.Pattern[str] | None
    ages: _Combined  # tags → who
    age_units: tuple[_Unit, ...]
    self_before: re.Pattern[str] | None
    severity: _Combined
    severity_bare: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class _SmallTalk:
    tokens: re.Pattern[str]  # one named group per kind, and "filler"
    order: tuple[str, ...]
    symbols: Mapping[str, str]
    max_length: int


@dataclass(frozen=True)
class Lexicon:
    """The loaded and compiled data file."""

    path: Path
    version: str
    languages: tuple[_Language, ...]
    rank: Mapping[str, tuple[int, int]]  # category → (tier, position in the priority list)
    child_category: str
    child_below_years: float
    child_keeps: frozenset[str]  # categories a child's message keeps (an injury is no illness)
    fallback: str
    bands: tuple[tuple[str, float | None], ...]
    more_than: float
    less_than: float
    counts_within: Mapping[str, float]  # phrase id → a stated number under so many hours wins
    clause_breaks: re.Pattern[str]
    measurements: re.Pattern[str] | None
    small_talk: _SmallTalk


# --- loading ---------------------------------------------------------------------------------


class _Loader:
    """Reads the data file strictly; every error names the file and the place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rx = _Regexes()

    def fail(self, where: str, what: str) -> UnderstandDataError:
        return UnderstandDataError(f"{self.path.name}: {where}: {what}")

    def table(self, where: str, value: Any, keys: Sequence[str] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "missing or not a table")
        unknown = sorted(set(value) - set(keys)) if keys else []
        if unknown:
            raise self.fail(where, f"unknown keys {unknown} (expected some of {sorted(keys)})")
        return value

    def strings(self, where: str, value: Any, *, required: bool = False) -> list[str]:
        if value is None and not required:
            return []
        if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
            raise self.fail(where, "expected a list of non-empty strings")
        if required and not value:
            raise self.fail(where, "expected a non-empty list")
        return value

    def number(self, where: str, value: Any, *, low: float = 0.0) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool) or value < low:
            raise self.fail(where, f"expected a number ≥ {low:g}, got {value!r}")
        return float(value)

    def integer(self, where: str, value: Any, low: int, high: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(where, f"expected a whole number from {low} to {high}, got {value!r}")
        return value

    def expand(self, where: str, source: str, macros: Mapping[str, str]) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in macros:
                raise self.fail(where, f"unknown macro %{name}% in {source!r}")
            return macros[name]

        return _MACRO.sub(sub, source)

    def regex(
        self,
        where: str,
        source: Any,
        macros: Mapping[str, str],
        *,
        groups: frozenset[str] = frozenset(),
        need: frozenset[str] = frozenset(),
        empty_ok: bool = False,
    ) -> str:
        """Check one regex and return its expanded source."""
        if not isinstance(source, str) or not source:
            raise self.fail(where, f"expected a non-empty regex string, got {source!r}")
        expanded = self.expand(where, source, macros)
        try:
            self.rx.check(expanded)
        except re.error as exc:
            raise self.fail(where, f"invalid regex {source!r}: {exc}") from None
        if self.rx.unbounded(expanded):
            raise self.fail(
                where, f"unbounded quantifier (*, + or {{n,}}) in {source!r}; write {{0,6}}"
            )
        if _BACKREF.search(expanded):
            raise self.fail(where, f"back-references are not allowed: {source!r}")
        names = self.rx.names(expanded)
        stray = sorted(n for n in names if not any(n.startswith(g) for g in groups))
        if stray:
            raise self.fail(where, f"named groups {stray} are not allowed here in {source!r}")
        missing = sorted(g for g in need if not any(n.startswith(g) for n in names))
        if missing:
            raise self.fail(where, f"needs named groups {missing} in {source!r}")
        if not empty_ok and self.rx.matches_empty(expanded):
            raise self.fail(where, f"regex matches the empty string: {source!r}")
        return expanded

    def compile(self, where: str, source: Any, macros: Mapping[str, str]) -> re.Pattern[str]:
        """One checked regex, compiled."""
        return self.rx.compile(self.regex(where, source, macros))

    def parts(self, where: str, sources: list[str], macros: Mapping[str, str]) -> list[str]:
        """Checked and expanded plain regexes (no named groups)."""
        return [self.regex(f"{where}[{i}]", s, macros) for i, s in enumerate(sources)]

    def union(
        self, where: str, sources: list[str], macros: Mapping[str, str], bounds: tuple[str, str]
    ) -> re.Pattern[str] | None:
        """One fast alternation of plain regexes, bounded (None for an empty list)."""
        return _fast(self.rx, self.parts(where, sources, macros), bounds) if sources else None


_TOP_KEYS = ("version", "choose", "duration", "text", "small_talk", "health", "lang", "category")
_LANG_KEYS = (
    "gate",
    "word_start",
    "word_end",
    "negation_window",
    "negation_before",
    "negation_after",
    "also_cue",
    "also_after",
    "main_cue",
    "cue_window",
    "number",
    "age_number",
    "severity_number",
    "numbers",
    "number_stems",
    "multipliers",
    "macros",
    "duration",
    "age",
    "severity",
    "subject",
    "health",
)
_SUBJECT_KEYS = ("me_too", "not_about", "not_child", "other", "child", "self")  # matching order


def _units(ld: _Loader, where: str, value: Any, size_key: str) -> tuple[_Unit, ...]:
    if not isinstance(value, list) or not value:
        raise ld.fail(where, "expected a non-empty array of tables")
    out: list[_Unit] = []
    for i, entry in enumerate(value):
        at = f"{where}[{i}]"
        entry = ld.table(at, entry, ("match", size_key))
        source = ld.regex(at, entry.get("match"), {})
        size = ld.number(f"{at} {size_key}", entry.get(size_key))
        if size <= 0:
            raise ld.fail(f"{at} {size_key}", "expected a positive number")
        out.append(_Unit(ld.rx.compile(source), size))
    return tuple(out)


def _load_numbers(
    ld: _Loader, code: str, spec: dict[str, Any]
) -> tuple[dict[str, float], tuple[tuple[str, float], ...], dict[str, float], dict[str, str]]:
    """The number tables and the built-in macros %num%, %agenum%, %sev%."""
    base = f"[lang.{code}]"
    numbers = {
        " ".join(key.split()): ld.number(f"[lang.{code}.numbers] {key}", value)
        for key, value in ld.table(f"[lang.{code}.numbers]", spec.get("numbers")).items()
    }
    raw_stems = ld.table(f"[lang.{code}.number_stems]", spec.get("number_stems", {}))
    stems = tuple(
        sorted(
            ((k, ld.number(f"[lang.{code}.number_stems] {k}", v)) for k, v in raw_stems.items()),
            key=lambda kv: -len(kv[0]),
        )
    )
    raw_multipliers = ld.table(f"[lang.{code}.multipliers]", spec.get("multipliers", {}))
    multipliers = {
        k: ld.number(f"[lang.{code}.multipliers] {k}", v, low=1)
        for k, v in raw_multipliers.items()
    }
    macros: dict[str, str] = {}
    for key, name in (("number", "num"), ("age_number", "agenum"), ("severity_number", "sev")):
        macros[name] = f"(?:{ld.regex(f'{base} {key}', spec.get(key), {})})"
    written = [ld.rx.compile(macros[k]) for k in ("num", "agenum", "sev")]
    for key in numbers:
        if key not in multipliers and not any(rx.fullmatch(key) for rx in written):
            raise ld.fail(
                f"[lang.{code}.numbers] {key}",
                "matched by none of number, age_number, severity_number",
            )
    return numbers, stems, multipliers, macros


def _load_language(
    ld: _Loader, code: str, spec: Any, terms: list[tuple[str, bool, str | None, list[str]]]
) -> _Language:
    base = f"[lang.{code}]"
    spec = ld.table(base, spec, _LANG_KEYS)

    def text(key: str) -> str:
        value = spec.get(key)
        if not isinstance(value, str):
            raise ld.fail(f"{base} {key}", "expected a string")
        return value

    bounds = (text("word_start"), text("word_end"))
    for key, bound in zip(("word_start", "word_end"), bounds, strict=True):
        if bound:
            ld.regex(f"{base} {key}", bound, {}, empty_ok=True)
    gate = ld.compile(f"{base} gate", text("gate"), {})
    numbers, stems, multipliers, macros = _load_numbers(ld, code, spec)
    for name, value in ld.table(f"[lang.{code}.macros]", spec.get("macros", {})).items():
        where = f"[lang.{code}.macros] {name}"
        if not isinstance(value, str) or not _MACRO.fullmatch(f"%{name}%"):
            raise ld.fail(where, "expected name = regex string")
        # Earlier macros may be used in later ones (tables keep their order).
        macros[name] = f"(?:{ld.regex(where, value, macros, empty_ok=True)})"

    window = ld.integer(f"{base} negation_window", spec.get("negation_window"), 1, 200)
    neg_before = ld.compile(f"{base} negation_before", text("negation_before"), macros)
    neg_after = ld.compile(f"{base} negation_after", text("negation_after"), macros)
    cues: dict[str, re.Pattern[str] | None] = {}
    for key in ("also_cue", "also_after", "main_cue"):
        raw_cue = spec.get(key)
        cues[key] = ld.compile(f"{base} {key}", raw_cue, macros) if raw_cue else None
    cue_window = (
        ld.integer(f"{base} cue_window", spec.get("cue_window"), 1, 200)
        if "cue_window" in spec or any(cues.values())
        else 0
    )

    # How long.
    where = f"[lang.{code}.duration]"
    dur = ld.table(where, spec.get("duration"), ("patterns", "phrases", "not", "history", "units"))
    duration_units = _units(ld, f"{where} units", dur.get("units"), "hours")
    unit_macros = {**macros, "unit": "(?:" + "|".join(u.rx.pattern for u in duration_units) + ")"}
    items: list[tuple[str, str, str]] = []
    for i, s in enumerate(ld.strings(f"{where} not", dur.get("not"))):
        items.append((f"x{i}", "not", ld.regex(f"{where} not[{i}]", s, unit_macros)))
    phrases = ld.table(f"[lang.{code}.duration.phrases]", dur.get("phrases", {}), DURATION_IDS)
    for did, sources in phrases.items():
        at = f"[lang.{code}.duration.phrases] {did}"
        parts = ld.parts(at, ld.strings(at, sources, required=True), macros)
        items.append((f"p_{did}", did, ld.rx.join(parts)))
    patterns = ld.strings(f"{where} patterns", dur.get("patterns"), required=True)
    for i, s in enumerate(patterns):
        source = ld.regex(
            f"{where} patterns[{i}]", s, unit_macros, groups=_NUMBER_GROUPS, need=frozenset("u")
        )
        items.append((f"d{i}", "number", source))
    durations = _combine(ld.rx, items, bounds)
    history = ld.union(
        f"{where} history", ld.strings(f"{where} history", dur.get("history")), macros, ("", "")
    )

    # Ages.
    where = f"[lang.{code}.age]"
    age = ld.table(where, spec.get("age"), ("patterns", "units", "self_before"))
    age_units = _units(ld, f"{where} units", age.get("units"), "per_year")
    age_macros = {**macros, "ageunit": "(?:" + "|".join(u.rx.pattern for u in age_units) + ")"}
    raw_ages = age.get("patterns")
    if not isinstance(raw_ages, list) or not raw_ages:
        raise ld.fail(f"{where} patterns", "expected a non-empty array of tables")
    items = []
    for i, entry in enumerate(raw_ages):
        at = f"{where} patterns[{i}]"
        entry = ld.table(at, entry, ("match", "who"))
        who = entry.get("who")
        if who not in WHO:
            raise ld.fail(at, f"who must be one of {WHO}, got {who!r}")
        items.append(
            (f"a{i}", who, ld.regex(at, entry.get("match"), age_macros, groups=_NUMBER_GROUPS))
        )
    ages = _combine(ld.rx, items, bounds)
    raw_self = age.get("self_before")
    self_before = ld.compile(f"{where} self_before", raw_self, macros) if raw_self else None

    # How bad.
    where = f"[lang.{code}.severity]"
    sev = ld.table(where, spec.get("severity"), ("patterns", "bare"))
    n_only = frozenset({"n"})
    severity = _combine(
        ld.rx,
        [
            (
                f"s{i}",
                "severity",
                ld.regex(f"{where} patterns[{i}]", s, macros, groups=n_only, need=n_only),
            )
            for i, s in enumerate(
                ld.strings(f"{where} patterns", sev.get("patterns"), required=True)
            )
        ],
        bounds,
    )
    severity_bare = tuple(
        ld.rx.compile(ld.regex(f"{where} bare[{i}]", s, macros, groups=n_only, need=n_only))
        for i, s in enumerate(ld.strings(f"{where} bare", sev.get("bare")))
    )

    # Who it is about. A "me_too"/"not_about"/"not_child" phrase is matched before the cues
    # inside it.
    where = f"[lang.{code}.subject]"
    subj = ld.table(where, spec.get("subject"), _SUBJECT_KEYS)
    items = []
    for key in _SUBJECT_KEYS:
        parts = ld.parts(f"{where} {key}", ld.strings(f"{where} {key}", subj.get(key)), macros)
        if parts:
            items.append((key, key, ld.rx.join(parts)))
    if not items:
        raise ld.fail(where, "no subject words at all")
    subject = _combine(ld.rx, items, bounds)

    where = f"[lang.{code}.health]"
    health_spec = ld.table(where, spec.get("health", {}), ("terms",))
    health_terms = ld.strings(f"{where} terms", health_spec.get("terms"))
    health = (
        _fast(ld.rx, ld.parts(f"{where} terms", health_terms, macros), bounds, starts_only=True)
        if health_terms
        else None
    )

    compiled_terms: list[_Term] = []
    every: list[str] = []
    for category, also, gives_way, sources in terms:
        kind = f"gives_way.{gives_way}." if gives_way else "also." if also else ""
        at = f"[category.{category}] {kind}{code}"
        parts = ld.parts(at, sources, macros)
        firsts = [ld.rx.first_chars(p) for p in parts]
        first = (
            frozenset().union(*(f for f in firsts if f is not None))
            if all(f is not None for f in firsts)
            else None
        )
        rx = ld.rx.either(parts, bounds)
        compiled_terms.append(_Term(category, also, gives_way, rx, first))
        every += parts
    return _Language(
        code=code,
        gate=gate,
        terms=tuple(compiled_terms),
        candidates=_fast(ld.rx, every, bounds, starts_only=True) if every else None,
        negation_before=neg_before,
        negation_after=neg_after,
        negation_window=window,
        also_cue=cues["also_cue"],
        also_after=cues["also_after"],
        main_cue=cues["main_cue"],
        cue_window=cue_window,
        numbers=numbers,
        stems=stems,
        multipliers=multipliers,
        health=health,
        subject=subject,
        durations=durations,
        duration_units=duration_units,
        history=history,
        ages=ages,
        age_units=age_units,
        self_before=self_before,
        severity=severity,
        severity_bare=severity_bare,
    )


def _load_terms(
    ld: _Loader, data: dict[str, Any]
) -> dict[str, list[tuple[str, bool, str | None, list[str]]]]:
    """Category phrases per language: code → [(category, also, gives way to, sources)], in the
    file's order."""
    table = ld.table("[category]", data.get("category"))
    per_lang: dict[str, list[tuple[str, bool, str | None, list[str]]]] = {c: [] for c in LANGUAGES}
    for cid, spec in table.items():
        where = f"[category.{cid}]"
        if cid not in CATEGORY_IDS:
            raise ld.fail(where, f"unknown category id {cid!r} (the intake's are {CATEGORY_IDS})")
        spec = ld.table(where, spec, (*LANGUAGES, "also", "gives_way"))
        also = ld.table(f"{where} also", spec.get("also", {}), LANGUAGES)
        # (language, also, gives way to, where, sources)
        lists: list[tuple[str, bool, str | None, str, Any]] = [
            (code, is_also, None, f"{where} {'also.' if is_also else ''}{code}", sources)
            for code in LANGUAGES
            for is_also, sources in ((False, spec.get(code)), (True, also.get(code)))
        ]
        for other, by_lang in ld.table(f"{where} gives_way", spec.get("gives_way", {})).items():
            at = f"{where} gives_way.{other}"
            if other not in CATEGORY_IDS or other == cid:
                raise ld.fail(at, f"unknown or same category id {other!r}")
            by_lang = ld.table(at, by_lang, LANGUAGES)
            lists += [(c, False, other, f"{at}.{c}", by_lang.get(c)) for c in LANGUAGES]
        for code, is_also, gives_way, at, sources in lists:
            found = ld.strings(at, sources)
            if found:
                per_lang[code].append((cid, is_also, gives_way, found))
    return per_lang


def _load_choose(ld: _Loader, data: dict[str, Any], with_terms: set[str]) -> dict[str, Any]:
    where = "[choose]"
    spec = ld.table(
        where,
        data.get("choose"),
        ("child_category", "child_below_years", "child_keeps", "fallback", "priority"),
    )
    for key in ("child_category", "fallback"):
        if spec.get(key) not in CATEGORY_IDS:
            raise ld.fail(f"{where} {key}", f"unknown category id {spec.get(key)!r}")
        if spec[key] in with_terms:
            raise ld.fail(f"{where} {key}", f"{spec[key]!r} must not have phrases of its own")
    tiers = spec.get("priority")
    if not isinstance(tiers, list) or not all(isinstance(t, list) for t in tiers):
        raise ld.fail(f"{where} priority", "expected a list of lists of category ids")
    rank: dict[str, tuple[int, int]] = {}
    for t, tier in enumerate(tiers):
        for cid in tier:
            if cid not in CATEGORY_IDS:
                raise ld.fail(f"{where} priority", f"unknown category id {cid!r}")
            if cid in rank:
                raise ld.fail(f"{where} priority", f"{cid!r} is listed twice")
            rank[cid] = (t, len(rank))
    keeps = ld.strings(f"{where} child_keeps", spec.get("child_keeps"))
    for cid in keeps:
        if cid not in CATEGORY_IDS:
            raise ld.fail(f"{where} child_keeps", f"unknown category id {cid!r}")
    missing = sorted(with_terms - set(rank))
    if missing:
        raise ld.fail(f"{where} priority", f"categories with phrases are not ranked: {missing}")
    return {
        "rank": rank,
        "child_category": spec["child_category"],
        "child_keeps": frozenset(keeps),
        "fallback": spec["fallback"],
        "child_below_years": ld.number(
            f"{where} child_below_years", spec.get("child_below_years"), low=1
        ),
    }


def _load_bands(ld: _Loader, data: dict[str, Any]) -> dict[str, Any]:
    where = "[duration]"
    spec = ld.table(
        where, data.get("duration"), ("bands", "more_than", "less_than", "counts_within")
    )
    more = ld.number(f"{where} more_than", spec.get("more_than"), low=1)
    less = ld.number(f"{where} less_than", spec.get("less_than"))
    if not 0 < less <= 1:
        raise ld.fail(f"{where} less_than", f"expected a number in (0, 1], got {less:g}")
    raw = spec.get("bands")
    if not isinstance(raw, list) or not raw:
        raise ld.fail(f"{where} bands", "expected a non-empty list of tables")
    bands: list[tuple[str, float | None]] = []
    previous = 0.0
    for i, entry in enumerate(raw):
        at = f"{where} bands[{i}]"
        entry = ld.table(at, entry, ("id", "below_hours"))
        did = entry.get("id")
        if did not in DURATION_IDS:
            raise ld.fail(at, f"unknown duration id {did!r} (expected one of {DURATION_IDS})")
        below = entry.get("below_hours")
        if below is None:
            if i != len(raw) - 1:
                raise ld.fail(at, "only the last band may have no below_hours")
            bands.append((did, None))
            continue
        limit = ld.number(f"{at} below_hours", below)
        if limit <= previous:
            raise ld.fail(at, "below_hours must grow from band to band")
        previous = limit
        bands.append((did, limit))
    if bands[-1][1] is not None:
        raise ld.fail(f"{where} bands", "the last band must have no below_hours (open-ended)")
    within = ld.table(f"{where} counts_within", spec.get("counts_within", {}))
    counts_within: dict[str, float] = {}
    for did, limit in within.items():
        if did not in DURATION_IDS:
            raise ld.fail(f"{where} counts_within", f"unknown duration id {did!r}")
        counts_within[did] = ld.number(f"{where} counts_within {did}", limit)
    return {
        "bands": tuple(bands),
        "more_than": more,
        "less_than": less,
        "counts_within": counts_within,
    }


def _load_small_talk(ld: _Loader, data: dict[str, Any]) -> _SmallTalk:
    where = "[small_talk]"
    keys = (*SMALL_TALK_KINDS, "filler", "order", "symbols", "max_length")
    spec = ld.table(where, data.get("small_talk"), keys)
    order = ld.strings(f"{where} order", spec.get("order"), required=True)
    if sorted(order) != sorted(SMALL_TALK_KINDS):
        raise ld.fail(f"{where} order", f"must list each of {SMALL_TALK_KINDS} once")
    groups = []
    for key in (*SMALL_TALK_KINDS, "filler"):
        parts = ld.parts(
            f"{where} {key}", ld.strings(f"{where} {key}", spec.get(key), required=True), {}
        )
        groups.append(f"(?P<{key}>{'|'.join(f'(?:{p})' for p in parts)})")
    symbols: dict[str, str] = {}
    for sym, kind in ld.table("[small_talk.symbols]", spec.get("symbols", {})).items():
        if kind not in SMALL_TALK_KINDS:
            raise ld.fail(f"[small_talk.symbols] {sym}", f"unknown kind {kind!r}")
        symbols[sym] = kind
    max_length = ld.integer(f"{where} max_length", spec.get("max_length"), 1, SMALL_TALK_SCAN)
    # A token ends where a Latin or Cyrillic word ends (Chinese has no spaces between words).
    tokens = re.compile(f"(?:{'|'.join(groups)})(?![a-z0-9а-я])")
    return _SmallTalk(tokens, tuple(order), symbols, max_length)


def load(path: Path | None = None) -> Lexicon:
    """Read, validate and compile the data file; raises ``UnderstandDataError`` naming the
    file and the place."""
    # Loading makes many small objects and frees none until the end: collecting garbage on the
    # way only re-reads the parse trees kept, a quarter of the loading time.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load(path or DEFAULT_PATH)
    finally:
        if collecting:
            gc.enable()


def _load(path: Path) -> Lexicon:
    ld = _Loader(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ld.fail("file", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ld.fail("TOML", str(exc)) from None
    ld.table("top level", data, _TOP_KEYS)
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise ld.fail("version", "expected a non-empty string")
    terms = _load_terms(ld, data)
    choose = _load_choose(ld, data, {cid for lst in terms.values() for cid, _, _, _ in lst})
    bands = _load_bands(ld, data)
    text_spec = ld.table("[text]", data.get("text"), ("clause_breaks",))
    breaks = ld.union(
        "[text] clause_breaks",
        ld.strings("[text] clause_breaks", text_spec.get("clause_breaks"), required=True),
        {},
        ("", ""),
    )
    assert breaks is not None  # required=True: never empty
    health_spec = ld.table("[health]", data.get("health"), ("any",))
    measurements = ld.union(
        "[health] any", ld.strings("[health] any", health_spec.get("any")), {}, ("", "")
    )
    small_talk = _load_small_talk(ld, data)
    langs = ld.table("[lang]", data.get("lang"))
    for code in langs:
        if code not in LANGUAGES:
            raise ld.fail(f"[lang.{code}]", f"unknown language (expected {LANGUAGES})")
    languages = []
    for code in LANGUAGES:
        if code not in langs:
            raise ld.fail(f"[lang.{code}]", "language section missing")
        languages.append(_load_language(ld, code, langs[code], terms[code]))
    return Lexicon(
        path=path,
        version=version,
        languages=tuple(languages),
        rank=choose["rank"],
        child_category=choose["child_category"],
        child_below_years=choose["child_below_years"],
        child_keeps=choose["child_keeps"],
        fallback=choose["fallback"],
        bands=bands["bands"],
        more_than=bands["more_than"],
        less_than=bands["less_than"],
        counts_within=bands["counts_within"],
        clause_breaks=breaks,
        measurements=measurements,
        small_talk=small_talk,
    )


@cache
def _default() -> Lexicon:
    return load()


def validate() -> None:
    """Start-up check: load and compile the default data file once per process; raises
    ``UnderstandDataError``."""
    _default()


# --- reading one message ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    category: str
    also: bool
    start: int
    end: int
    focus: bool = False  # a cue says it is the main complaint
    gives_way: str | None = None  # does not count when this category is found too


@dataclass(frozen=True)
class _FoundAge:
    start: int
    end: int
    who: str  # "self" | "other" | "any"
    years: float


class _Message:
    """One normalised message and the languages that occur in it."""

    def __init__(self, lex: Lexicon, text: str) -> None:
        self.lex = lex
        self.text = normalize(text)
        self.langs = tuple(lang for lang in lex.languages if lang.gate.search(self.text))
        self.window = max((lang.negation_window for lang in self.langs), default=0)
        self.last_tier = max((tier for tier, _ in lex.rank.values()), default=0)
        self._breaks: tuple[list[int], list[int]] | None = None

    def clause(self, start: int, end: int) -> tuple[int, int]:
        """The clause around text[start:end]: from the last break before to the next after."""
        if self._breaks is None:
            found = list(self.lex.clause_breaks.finditer(self.text))
            self._breaks = ([b.start() for b in found], [b.end() for b in found])
        starts, ends = self._breaks
        i = bisect.bisect_right(ends, start)
        lo = ends[i - 1] if i else 0
        j = bisect.bisect_left(starts, end)
        hi = starts[j] if j < len(starts) else len(self.text)
        return lo, max(hi, end)

    def negated(self, start: int, end: int) -> bool:
        """Is the phrase at text[start:end] denied (by a cue in any language present)?"""
        lo, hi = self.clause(start, end)
        before = self.text[max(lo, start - self.window) : start]
        after = self.text[end : min(hi, end + self.window)]
        return any(
            bool(before and lang.negation_before.search(before))
            or bool(after and lang.negation_after.match(after))
            for lang in self.langs
        )

    def cued(self, start: int, end: int) -> tuple[bool, bool]:
        """(secondary, main): does a cue in the few characters before the phrase at
        text[start:end], or inside it, say it is an accompanying or the main complaint? So does
        an ``also_after`` cue right after it ("head a bit achy too")."""
        also = main = False
        for lang in self.langs:
            if lang.cue_window:
                lo = max(0, start - lang.cue_window)
                also = also or bool(lang.also_cue and lang.also_cue.search(self.text, lo, end))
                also = also or bool(
                    lang.also_after
                    and lang.also_after.match(self.text[end : end + lang.cue_window])
                )
                main = main or bool(lang.main_cue and lang.main_cue.search(self.text, lo, end))
        return also, main

    def hits(self) -> tuple[list[_Hit], bool]:
        """The best undenied phrase of each category and kind (main before "also", one said to
        be the main before the others, then the first), and whether any phrase at all (even a
        denied one) was found. A main phrase with an "also" cue counts as an accompanying one; any
        phrase with a "mainly" cue counts as a main one."""
        found: dict[tuple[str, str | None], _Hit] = {}
        any_phrase = False
        text = self.text
        # Without a "mainly" cue anywhere, a category's first main phrase cannot be bettered.
        focus_possible = any(lang.main_cue and lang.main_cue.search(text) for lang in self.langs)
        for lang in self.langs:
            if lang.candidates is None:
                continue
            pos, seen = 0, 0
            while seen < MAX_CANDIDATES and (m := lang.candidates.search(text, pos)):
                start = m.start()
                seen += 1
                any_phrase = True
                ch = text[start]
                for term in lang.terms:
                    key = (term.category, term.gives_way)
                    best = found.get(key)
                    # (Another language present may have found one further on.)
                    if (
                        best is not None
                        and best.start <= start
                        and (best.focus or not (focus_possible or (best.also and not term.also)))
                    ):
                        continue
                    if term.first is not None and ch not in term.first:
                        continue
                    tm = term.rx.match(text, start)
                    if tm is None or self.negated(start, tm.end()):
                        continue
                    also, main = self.cued(start, tm.end())
                    # A cue never makes an injury or chest pain secondary (the first tiers).
                    also = also and self.lex.rank[term.category][0] == self.last_tier
                    hit = _Hit(
                        term.category,
                        (term.also or also) and not main,
                        start,
                        tm.end(),
                        main,
                        term.gives_way,
                    )
                    if best is None or (hit.also, not hit.focus, hit.start) < (
                        best.also,
                        not best.focus,
                        best.start,
                    ):
                        found[key] = hit
                pos = start + 1
        return list(found.values()), any_phrase

    def number(self, lang: _Language, raw: str | None) -> float | None:
        """A number as written: digits, a word from the table, a stem, or Chinese numerals."""
        if raw is None:
            return None
        s = " ".join(raw.split())
        if s in lang.numbers:
            return lang.numbers[s]
        try:
            return float(s.replace(",", "."))
        except ValueError:
            pass
        for stem, value in lang.stems:
            if s.startswith(stem):
                return value
        parts = re.split(r"[ -]", s)
        if len(parts) > 1 and all(p in lang.numbers for p in parts):
            return sum(lang.numbers[p] for p in parts)  # twenty five, двадцать пять
        if lang.multipliers and all(ch in lang.numbers or ch in lang.multipliers for ch in s):
            total, current = 0.0, 0.0
            for ch in s:
                if ch in lang.multipliers:
                    total += (current or 1.0) * lang.multipliers[ch]
                    current = 0.0
                else:
                    current = lang.numbers[ch]  # a second digit (两三) is the range's end
            return total + current
        return None


def _unit_size(
    units: Sequence[_Unit], m: re.Match[str], tag: str, default: float | None
) -> float | None:
    """The size of the unit in the pattern's group u (matched in place: a unit may look back)."""
    key = f"{tag}_u"
    if key not in m.re.groupindex or m.start(key) < 0:
        return default
    start, end = m.span(key)
    for unit in units:
        if unit.rx.fullmatch(m.string, start, end):
            return unit.size
    return None


def _ages(msg: _Message) -> list[_FoundAge]:
    out: list[_FoundAge] = []
    for lang in msg.langs:
        for tag, m in lang.ages.scan(msg.text):
            per_year = _unit_size(lang.age_units, m, tag, 1.0)
            raw = _group(m, tag, "n")
            n = msg.number(lang, raw) if raw is not None else 1.0
            if per_year is None or n is None:
                continue
            years = (n + (0.5 if _any_group(lang.ages, m, tag, "half") else 0.0)) / per_year
            if not 0 < years <= 120:
                continue
            who = lang.ages.info[tag]
            before = msg.text[max(0, m.start() - 12) : m.start()]
            if who == "any" and lang.self_before is not None and lang.self_before.search(before):
                who = "self"
            out.append(_FoundAge(m.start(), m.end(), who, years))
    out.sort(key=lambda a: a.start)
    return out


def _band(lex: Lexicon, hours: float) -> str:
    for did, below in lex.bands:
        if below is None or hours < below:
            return did
    return lex.bands[-1][0]  # pragma: no cover - the last band is open-ended


def _duration(msg: _Message, ages: Sequence[_FoundAge]) -> str | None:
    """The first duration stated (one in a clause about the past only if it is the only one).
    A phrase listed in ``counts_within`` ("this morning") gives way to a number stated later
    that is under its limit ("since lunch, about 3 hours now" → hours)."""
    lex = msg.lex
    found: list[tuple[bool, int, str, float | None]] = []  # (history clause, start, id, hours)
    for lang in msg.langs:
        c = lang.durations
        for tag, m in c.scan(msg.text):
            kind = c.info[tag]
            if kind == "not" or any(a.start < m.end() and m.start() < a.end for a in ages):
                continue  # a frequency ("twice a day") or an age ("3 months old")
            hours: float | None = None
            if kind == "number":
                raw = _group(m, tag, "n")
                n = msg.number(lang, raw) if raw is not None else 1.0
                size = _unit_size(lang.duration_units, m, tag, None)
                if n is None or size is None:
                    continue
                hours = (n + (0.5 if _any_group(c, m, tag, "half") else 0.0)) * size
                if _any_group(c, m, tag, "plus"):
                    hours *= lex.more_than
                elif _any_group(c, m, tag, "minus"):
                    hours *= lex.less_than
                if hours <= 0:
                    continue
                kind = _band(lex, hours)
            past = False
            if lang.history is not None:
                lo, hi = msg.clause(m.start(), m.end())
                past = lang.history.search(msg.text, lo, hi) is not None
            found.append((past, m.start(), kind, hours))
            if not past and kind not in lex.counts_within:
                break  # later ones in this language cannot come first
    if not found:
        return None
    first = min(found, key=lambda f: (f[0], f[1]))
    limit = lex.counts_within.get(first[2]) if first[3] is None else None
    if limit is not None:
        counted = [f for f in found if not f[0] and f[3] is not None and f[3] < limit]
        if counted:
            return min(counted, key=lambda f: f[1])[2]
    return first[2]


def _rating(msg: _Message, lang: _Language, raw: str | None) -> int | None:
    value = msg.number(lang, raw)
    if value is None or value != int(value) or not 0 <= value <= 10:
        return None
    return int(value)


def _severity(msg: _Message, *, bare: bool) -> int | None:
    best: tuple[int, int] | None = None  # (start, rating)
    for lang in msg.langs:
        for tag, m in lang.severity.scan(msg.text):
            rating = _rating(msg, lang, _group(m, tag, "n"))
            if rating is not None:
                if best is None or m.start() < best[0]:
                    best = (m.start(), rating)
                break
    if best is not None:
        return best[1]
    if bare:
        answer = msg.text.strip(" .!?,。！？~")
        for lang in msg.langs:
            for rx in lang.severity_bare:
                bare_match = rx.fullmatch(answer)
                if (
                    bare_match
                    and (rating := _rating(msg, lang, bare_match.group("n"))) is not None
                ):
                    return rating
    return None


def _subject(msg: _Message, ages: Sequence[_FoundAge]) -> tuple[str | None, bool, list[_FoundAge]]:
    """(who the message is about, whether a child word names the person, the ages that may be
    the patient's: not one inside a phrase naming a child who is not the patient, as in "new
    dad, baby's 4 months" or "в декрете, ребенку полгода")."""
    seen: set[str] = set()
    aside: list[tuple[int, int]] = []
    for lang in msg.langs:
        for tag, m in lang.subject.scan(msg.text, limit=256):
            seen.add(tag)
            if tag == "not_child":
                aside.append(m.span())
    mine = [a for a in ages if not any(s < a.end and a.start < e for s, e in aside)]
    if "me_too" in seen:  # "now it's my turn": about the writer, whoever passed it on
        return "self", False, [a for a in mine if a.who != "other"]
    child = "child" in seen
    if "other" in seen or child or any(a.who == "other" for a in mine):
        return "other", child, mine
    if "self" in seen or any(a.who == "self" for a in mine):
        return "self", child, mine
    return None, child, mine


def _pick_age(subject: str | None, ages: Sequence[_FoundAge]) -> float | None:
    if subject == "other":
        mine = [a for a in ages if a.who != "self"]
    elif subject == "self":
        mine = [a for a in ages if a.who != "other"]
    else:
        mine = list(ages)
    return mine[0].years if mine else None


def _small_talk(lex: Lexicon, text: str) -> str | None:
    st = lex.small_talk
    if len(text) > SMALL_TALK_SCAN:
        return None
    kinds: set[str] = set()
    for sym, kind in st.symbols.items():
        if sym in text:
            kinds.add(kind)
            text = text.replace(sym, " ")
    cleaned = _SPACES.sub(" ", _NOT_WORD.sub(" ", text)).strip()
    if len(cleaned) > st.max_length:
        return None
    pos = 0
    while pos < len(cleaned):
        if cleaned[pos] == " ":
            pos += 1
            continue
        m = st.tokens.match(cleaned, pos)
        if m is None or m.end() == pos:
            return None
        if m.lastgroup in SMALL_TALK_KINDS:
            kinds.add(m.lastgroup)
        pos = m.end()
    return next((k for k in st.order if k in kinds), None)


def _health(msg: _Message, any_phrase: bool | None = None) -> bool:
    if not msg.text or _small_talk(msg.lex, msg.text) is not None:
        return False
    if msg.lex.measurements is not None and msg.lex.measurements.search(msg.text):
        return True
    if any(lang.health is not None and lang.health.search(msg.text) for lang in msg.langs):
        return True
    if any_phrase is not None:
        return any_phrase
    return any(
        lang.candidates is not None and lang.candidates.search(msg.text) for lang in msg.langs
    )


def _choose(lex: Lexicon, hits: Sequence[_Hit]) -> str | None:
    """Main before "also", then the priority tier, then one said to be the main, then the first
    named, then the shorter. A phrase that gives way to a category found too does not count."""
    named = {h.category for h in hits}
    hits = [h for h in hits if h.gives_way not in named]
    if not hits:
        return None

    def key(h: _Hit) -> tuple[int, int, int, int, int, int]:
        tier, order = lex.rank[h.category]
        return (int(h.also), tier, int(not h.focus), h.start, h.end - h.start, order)

    return min(hits, key=key).category


# --- the API ---------------------------------------------------------------------------------


def understand(text: str, *, lexicon: Lexicon | None = None) -> Understood:
    """What a patient's free-text message says: complaint category, duration, 0-10 severity,
    who it is about and their age; None for whatever it does not say. Never raises on a str."""
    lex = lexicon or _default()
    msg = _Message(lex, text)
    if not msg.text or not msg.langs:
        return NOTHING
    ages = _ages(msg)
    subject, child_word, theirs = _subject(msg, ages)
    age = _pick_age(subject, theirs)
    hits, any_phrase = msg.hits()
    health = _health(msg, any_phrase)
    is_child = age < lex.child_below_years if age is not None else child_word
    chosen = _choose(lex, hits)
    if is_child and (hits or health) and chosen not in lex.child_keeps:
        category: str | None = lex.child_category
    else:
        category = chosen or (lex.fallback if health else None)
    return Understood(
        category=category,
        duration=_duration(msg, ages),
        severity=_severity(msg, bare=False),
        subject=subject,
        age_years=age,
    )


def parse_duration(text: str, *, lexicon: Lexicon | None = None) -> str | None:
    """A typed answer to "since when?" ("3 days", "since yesterday", "两周了", "с весны") as a
    duration id, or None."""
    msg = _Message(lexicon or _default(), text)
    if not msg.text or not msg.langs:
        return None
    return _duration(msg, _ages(msg))


def parse_severity_phrase(text: str, *, lexicon: Lexicon | None = None) -> int | None:
    """A 0-10 rating in a typed answer ("7/10", "about 5 out of 10", "六分", "на семерку", or a
    bare "7"), or None."""
    msg = _Message(lexicon or _default(), text)
    if not msg.text or not msg.langs:
        return None
    return _severity(msg, bare=True)


def health_related(text: str, *, lexicon: Lexicon | None = None) -> bool:
    """Does the text mention a body part, symptom, illness, medicine, distress, a measurement or
    a clinic thing? Broad on purpose; small talk, emoji and random letters are not."""
    return _health(_Message(lexicon or _default(), text))


def small_talk(text: str, *, lexicon: Lexicon | None = None) -> str | None:
    """The kind of small talk ("greeting", "thanks" or "ok") when the message is only that
    (hi, 谢谢, ок, 👍), else None."""
    lex = lexicon or _default()
    norm = normalize(text)
    return _small_talk(lex, norm) if norm else None
