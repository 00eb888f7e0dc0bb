"""Gettext catalogs: every locale matches the English one, and every id the code uses exists.

Failure messages name the locale, the message id and what is wrong, so a translator can fix
the catalog without reading this file.
"""

from __future__ import annotations

import ast
import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from locales import LOCALES, Translator, catalog, catalog_files, placeholders

ROOT = Path(__file__).resolve().parents[1]
SCAN_DIRS = ("bot", "flows", "handlers")
ENGLISH = "en"
ALLOWED_TAGS = frozenset({"b", "i", "u", "s", "code", "pre", "a"})
ID_PATTERN = re.compile(r"^[a-z_]+(\.[a-z_0-9]+)+$")

# Calls whose first argument is a message id: tr("x"), t("x"), _("x"), tr.plain("x").
_ID_CALLS = frozenset({"tr", "t", "_"})
# Calls inside which every id-shaped string literal is treated as a message id.
_ID_CONTAINERS = frozenset({"tr", "plain"})


def _po_paths(locale: str) -> list[Path]:
    return catalog_files(locale)


def _raw_entries(locale: str) -> dict[str, str]:
    """Every entry of a catalog file, including empty translations (which ``catalog`` drops)."""
    out: dict[str, str] = {}
    for path in _po_paths(locale):
        with path.open("rb") as fh:
            cat = read_po(fh, locale=None)
        out.update(
            (m.id, m.string if isinstance(m.string, str) else "")
            for m in cat
            if m.id and isinstance(m.id, str)
        )
    return out


def _raw_msgids(locale: str) -> list[str]:
    """Msgids in file order, read without Babel (which silently keeps only one of a duplicate)."""
    ids: list[str] = []
    current: list[str] | None = None
    lines = [""]
    for path in _po_paths(locale):
        lines += [*path.read_text(encoding="utf-8").splitlines(), ""]
    for line in lines:
        line = line.strip()
        if line.startswith("msgid "):
            current = [ast.literal_eval(line[len("msgid ") :])]
        elif line.startswith('"') and current is not None:
            current.append(ast.literal_eval(line))
        else:
            if current is not None and "".join(current):
                ids.append("".join(current))
            current = None
    if current is not None and "".join(current):
        ids.append("".join(current))
    return ids


def _english() -> dict[str, str]:
    return _raw_entries(ENGLISH)


def _dummy_values(text: str) -> dict[str, str]:
    """A value for each placeholder; ``<&>`` checks that values are escaped."""
    return {re.split(r"[.\[]", name, maxsplit=1)[0]: f"<{name}&>" for name in placeholders(text)}


# --- catalogs ---------------------------------------------------------------------------------


def test_english_catalog_is_not_empty() -> None:
    assert len(_english()) > 10, "the English catalog looks empty or unreadable"


@pytest.mark.parametrize("locale", LOCALES)
def test_header_language(locale: str) -> None:
    for path in _po_paths(locale):
        with path.open("rb") as fh:
            cat = read_po(fh, locale=None)
        assert cat.locale_identifier == locale, (
            f"[{locale}/{path.name}] header says Language: {cat.locale_identifier!r}, "
            f"expected {locale!r}"
        )


def test_same_catalog_files_in_every_locale() -> None:
    names = {loc: sorted(p.name for p in _po_paths(loc)) for loc in LOCALES}
    assert all(n == names[ENGLISH] for n in names.values()), f"catalog files differ: {names}"


@pytest.mark.parametrize("locale", LOCALES)
def test_no_duplicate_msgids(locale: str) -> None:
    ids = _raw_msgids(locale)
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"[{locale}] msgids defined more than once (only one is used): {dupes}"


@pytest.mark.parametrize("locale", LOCALES)
def test_same_msgids_all_translated(locale: str) -> None:
    english = _english()
    entries = _raw_entries(locale)
    missing = sorted(set(english) - set(entries))
    empty = sorted(k for k in english if k in entries and not entries[k].strip())
    extra = sorted(set(entries) - set(english))
    problems = []
    if missing:
        problems.append(f"[{locale}] msgids missing from the catalog: {missing}")
    if empty:
        problems.append(f"[{locale}] msgids with an empty translation: {empty}")
    if extra:
        problems.append(f"[{locale}] msgids not in the English catalog: {extra}")
    assert not problems, "\n".join(problems)
    assert set(catalog(locale)) == set(english), f"[{locale}] loader sees a different id set"


@pytest.mark.parametrize("locale", LOCALES)
def test_same_placeholders(locale: str) -> None:
    english = _english()
    entries = _raw_entries(locale)
    problems = []
    for msgid, en_text in english.items():
        text = entries.get(msgid)
        if not text:
            continue  # reported by test_same_msgids_all_translated
        try:
            got = placeholders(text)
        except ValueError as exc:
            problems.append(f"[{locale}] {msgid}: malformed braces ({exc})")
            continue
        want = placeholders(en_text)
        if got != want:
            problems.append(
                f"[{locale}] {msgid}: placeholders {sorted(got)} differ from English "
                f"{sorted(want)} (missing {sorted(want - got)}, unexpected {sorted(got - want)})"
            )
    assert not problems, "\n".join(problems)


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)>")
_ENTITY = re.compile(r"&(?:[A-Za-z]+|#[0-9]+|#x[0-9A-Fa-f]+);")


def _html_problems(text: str) -> list[str]:
    """What is wrong with a message's Telegram HTML (empty if nothing)."""
    problems: list[str] = []
    stack: list[str] = []
    for match in _TAG.finditer(text):
        closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3)
        if name not in ALLOWED_TAGS:
            if not closing:
                problems.append(f"tag <{name}> is not allowed (only {sorted(ALLOWED_TAGS)})")
            continue
        if closing:
            if attrs.strip():
                problems.append(f"closing tag </{name}> has attributes")
            if not stack:
                problems.append(f"</{name}> closes nothing")
            elif stack[-1] != name:
                problems.append(f"</{name}> closes <{stack[-1]}>")
                stack.pop()
            else:
                stack.pop()
        else:
            if name == "a" and "href=" not in attrs:
                problems.append("<a> without href")
            elif name != "a" and attrs.strip() and name not in {"pre", "code"}:
                problems.append(f"<{name}> has attributes")
            stack.append(name)
    if stack:
        problems.append(f"unclosed tags {['<' + t + '>' for t in stack]}")
    rest = _TAG.sub("", text)
    if "<" in rest or ">" in rest:
        problems.append("bare '<' or '>' outside a tag (write &lt; / &gt;)")
    if "&" in _ENTITY.sub("", rest):
        problems.append("bare '&' (write &amp;)")
    return problems


@pytest.mark.parametrize("locale", LOCALES)
def test_html_balanced_and_allowed(locale: str) -> None:
    problems = [
        f"[{locale}] {msgid}: {problem}"
        for msgid, text in sorted(_raw_entries(locale).items())
        for problem in _html_problems(text)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_renders(locale: str) -> None:
    translate = Translator(locale)
    problems = []
    for msgid, en_text in sorted(_english().items()):
        try:
            values = _dummy_values(en_text)
        except ValueError as exc:
            problems.append(f"[{locale}] {msgid}: English text has malformed braces ({exc})")
            continue
        try:
            out = translate(msgid, **values)
            plain = translate.plain(msgid, **values)
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            problems.append(f"[{locale}] {msgid}: rendering failed: {type(exc).__name__}: {exc}")
            continue
        if not out.strip():
            problems.append(f"[{locale}] {msgid}: renders to an empty string")
        if out == msgid:
            problems.append(f"[{locale}] {msgid}: renders as the bare id (no translation)")
        for value in values.values():
            if html.escape(value, quote=False) not in out:
                problems.append(f"[{locale}] {msgid}: value {value!r} not rendered escaped")
            if value not in plain:
                problems.append(f"[{locale}] {msgid}: value {value!r} missing from plain text")
        if not values and ("{" in out or "}" in out):
            # Without parameters the translator returns the text unformatted.
            problems.append(f"[{locale}] {msgid}: braces in a message without placeholders")
        problems.extend(f"[{locale}] {msgid}: after rendering, {p}" for p in _html_problems(out))
    assert not problems, "\n".join(problems)


def test_language_names_differ() -> None:
    names = {loc: catalog(loc).get("language.name") for loc in LOCALES}
    assert len(set(names.values())) == len(LOCALES), f"language.name not distinct: {names}"


def test_choose_language_is_the_same_everywhere() -> None:
    english = catalog(ENGLISH).get("onboarding.choose_language")
    for locale in LOCALES:
        assert catalog(locale).get("onboarding.choose_language") == english, (
            f"[{locale}] onboarding.choose_language differs from the trilingual English text"
        )


# --- message ids used in the code -------------------------------------------------------------


def _callee_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _is_id_call(func: ast.expr) -> bool:
    """``tr(``, ``t(``, ``_(`` (also as ``obj.tr(``) and ``tr.plain(``/``t.plain(``."""
    name = _callee_name(func)
    if name in _ID_CALLS:
        return True
    return (
        name == "plain"
        and isinstance(func, ast.Attribute)
        and _callee_name(func.value) in _ID_CALLS
    )


def _str_constants(node: ast.AST) -> Iterator[tuple[str, int]]:
    """(text, line) of every string literal in a subtree."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value, sub.lineno


def extract_message_ids(source: str, filename: str = "<source>") -> set[tuple[str, int]]:
    """(msgid, line) pairs the source uses, found with ``ast`` (see the module brief)."""
    tree = ast.parse(source, filename=filename)
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if _is_id_call(node.func) and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add((first.value, first.lineno))
            if _callee_name(node.func) in _ID_CONTAINERS:
                for arg in [*node.args, *(kw.value for kw in node.keywords)]:
                    found.update(c for c in _str_constants(arg) if ID_PATTERN.match(c[0]))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [_callee_name(t) for t in targets]
            if node.value is None or not any(n and n.startswith("MSG_") for n in names):
                continue
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add((value.value, value.lineno))
            else:  # a tuple, dict ... of ids: take the id-shaped literals
                found.update(c for c in _str_constants(value) if ID_PATTERN.match(c[0]))
    return found


def _code_files() -> list[Path]:
    files: list[Path] = []
    for folder in SCAN_DIRS:
        base = ROOT / folder
        if base.is_dir():
            files.extend(p for p in sorted(base.rglob("*.py")) if "__pycache__" not in p.parts)
    return files


def test_extractor_finds_ids() -> None:
    source = (
        "MSG_HELLO = 'greeting.hello'\n"
        "MSG_SEXES: dict = {'f': 'sex.female', 'label': 'Not an id'}\n"
        "tr('a.b')\n"
        "self.tr('c.d', name=x)\n"
        "t('e.f')\n"
        "_('g.h')\n"
        "tr.plain('i.j')\n"
        "tr('k.l' if ok else 'm.n_2')\n"
        "tr('profile.updated', field=tr.plain('profile.field.name'))\n"
        "plain(KEYS.get(x, 'o.p'))\n"
        "print('not.an_id_here')\n"
        "tr(variable)\n"
    )
    ids = {msgid for msgid, _ in extract_message_ids(source)}
    assert ids == {
        "greeting.hello", "sex.female", "a.b", "c.d", "e.f", "g.h", "i.j", "k.l", "m.n_2",
        "profile.updated", "profile.field.name", "o.p",
    }  # fmt: skip


def test_code_uses_only_known_ids() -> None:
    english = _english()
    problems = []
    for path in _code_files():
        rel = path.relative_to(ROOT)
        try:
            used = extract_message_ids(path.read_text(encoding="utf-8"), str(rel))
        except SyntaxError as exc:
            problems.append(f"{rel}:{exc.lineno}: cannot parse to look for message ids: {exc.msg}")
            continue
        problems.extend(
            f"[{ENGLISH}] {msgid}: used at {rel}:{line} but not in the English catalog"
            for msgid, line in sorted(used)
            if msgid not in english
        )
    assert not problems, "\n".join(problems)
