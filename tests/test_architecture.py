"""The layers, checked: flows speak to storage only through the unit of work and its
repositories, handlers speak to flows, and neither reaches past them.

Rules (each a test below, each naming every offending line):
- flows import no SQLAlchemy (any submodule) and not ``storage.vault``: repositories own all
  SQL and all sealing and opening of fields;
- flows import no aiogram, and not ``handlers`` or ``bot``: flows are plain Python, testable
  with no bot;
- handlers import neither ``storage.models``, SQLAlchemy nor ``storage.vault``: they use the
  domain objects from :mod:`flows.domain` and the repositories behind ``uow``;
- handlers do not import ``bot.telegram.sender``: they reply through the outbox (``Replier``);
- no flow and no handler touches ``uow.session`` or ``uow.vault``.

Imports are read from the source with ``ast``, at any depth: inside functions, inside
``if TYPE_CHECKING:`` blocks, relative ones resolved, and ``importlib.import_module("...")`` /
``__import__("...")`` with a literal name. A deferred or type-only import is still a
dependency on the layer it names.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Rule:
    """Modules of ``package`` must not import any of ``forbidden`` (a module or its
    submodules)."""

    name: str
    package: str
    forbidden: tuple[str, ...]
    why: str


IMPORT_RULES = [
    Rule(
        "flows-no-sqlalchemy",
        "flows",
        ("sqlalchemy",),
        "SQL belongs in a repository (storage/*.py) behind the unit of work",
    ),
    Rule(
        "flows-no-vault",
        "flows",
        ("storage.vault",),
        "sealing and opening fields belongs in a repository",
    ),
    Rule("flows-no-aiogram", "flows", ("aiogram",), "flows are plain Python, no bot framework"),
    Rule(
        "flows-no-handlers-or-bot",
        "flows",
        ("handlers", "bot"),
        "flows sit below the handlers and the application shell",
    ),
    Rule(
        "handlers-no-storage-models",
        "handlers",
        ("storage.models",),
        "handlers take domain objects from flows.domain",
    ),
    Rule("handlers-no-sqlalchemy", "handlers", ("sqlalchemy",), "no SQL in handlers"),
    Rule("handlers-no-vault", "handlers", ("storage.vault",), "no crypto in handlers"),
    Rule(
        "handlers-no-sender",
        "handlers",
        ("bot.telegram.sender",),
        "handlers reply through the outbox (Replier), never the sender",
    ),
]

#: Attributes of the unit of work that only storage may use.
PRIVATE_UOW = frozenset({"session", "vault"})
UOW_NAME = "uow"


# -- the checker -------------------------------------------------------------------------------


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module a ``from`` import names (relative imports resolved)."""
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, name] if name else base)


def imported(tree: ast.AST, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module name the source imports, with its line: ``import a.b`` gives ``a.b``,
    ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a submodule), and a literal
    ``importlib.import_module("a.b")`` or ``__import__("a.b")`` gives ``a.b``."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node.level, node.module)
            out.append((node.lineno, source))
            out += [(node.lineno, f"{source}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                called in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                out.append((node.lineno, first.value))
    return out


def _is_uow(node: ast.expr) -> bool:
    """``uow`` itself, or ``something.uow``."""
    if isinstance(node, ast.Name):
        return node.id == UOW_NAME
    return isinstance(node, ast.Attribute) and node.attr == UOW_NAME


def private_uow_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """Every ``uow.session`` / ``uow.vault`` in the source (also ``x.uow.vault`` and
    ``getattr(uow, "session")``), with its line."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_UOW and _is_uow(node.value):
            out.append((node.lineno, f"uow.{node.attr}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and _is_uow(node.args[0])
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in PRIVATE_UOW
        ):
            out.append((node.lineno, f"uow.{node.args[1].value}"))
    return out


def _matches(name: str, forbidden: tuple[str, ...]) -> str | None:
    """The forbidden module ``name`` is or lies inside, if any."""
    for prefix in forbidden:
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return None


def check_imports(source: str, module: str, rule: Rule, *, is_package: bool = False) -> list[str]:
    """The imports of one source that break ``rule``, as ``line: name`` (each line once)."""
    found: dict[int, str] = {}
    for line, name in imported(ast.parse(source), module, is_package):
        if _matches(name, rule.forbidden) and line not in found:
            found[line] = name
    return [f"{line}: {name}" for line, name in sorted(found.items())]


def check_uow(source: str) -> list[str]:
    """The ``uow.session`` / ``uow.vault`` uses of one source, as ``line: uow.x``."""
    return [f"{line}: {what}" for line, what in sorted(private_uow_uses(ast.parse(source)))]


def modules_of(package: str) -> dict[str, Path]:
    """Every module of a top-level package by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def violations(rule: Rule) -> list[str]:
    """Every import in the rule's package that breaks it, as ``path:line: name``."""
    out: list[str] = []
    for module, path in modules_of(rule.package).items():
        source = path.read_text(encoding="utf-8")
        is_package = path.name == "__init__.py"
        rel = path.relative_to(ROOT).as_posix()
        out += [
            f"{rel}:{hit}" for hit in check_imports(source, module, rule, is_package=is_package)
        ]
    return out


def uow_violations(package: str) -> list[str]:
    """Every ``uow.session`` / ``uow.vault`` in a package, as ``path:line: uow.x``."""
    out: list[str] = []
    for path in modules_of(package).values():
        rel = path.relative_to(ROOT).as_posix()
        out += [f"{rel}:{hit}" for hit in check_uow(path.read_text(encoding="utf-8"))]
    return out


# -- the checker checks itself: it can fail ----------------------------------------------------

_RULE = {rule.name: rule for rule in IMPORT_RULES}

_BAD_FLOW = """
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from storage.uow import UnitOfWork

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


async def f(uow: UnitOfWork) -> None:
    from storage import vault
    import sqlalchemy.orm as orm
    importlib.import_module("aiogram.types")
    await uow.session.flush()
    uow.vault.ring
    getattr(uow, "session")
    self.uow.vault
"""

_GOOD_FLOW = """
from __future__ import annotations

from flows.domain import Patient, utcnow
from storage.uow import UnitOfWork
from storage import models_helpers


async def f(uow: UnitOfWork, session: object) -> None:
    await uow.patients.get("x")
    uow.ring
    session.vault
    self.session
"""


def test_the_checker_reports_forbidden_imports_at_any_depth() -> None:
    """A type-only import, an import inside a function, ``from storage import vault``, an
    aliased submodule and ``importlib.import_module`` are all found, with their lines."""
    assert check_imports(_BAD_FLOW, "flows.bad", _RULE["flows-no-sqlalchemy"]) == [
        "10: sqlalchemy.ext.asyncio",
        "15: sqlalchemy.orm",
    ]
    assert check_imports(_BAD_FLOW, "flows.bad", _RULE["flows-no-vault"]) == ["14: storage.vault"]
    assert check_imports(_BAD_FLOW, "flows.bad", _RULE["flows-no-aiogram"]) == [
        "16: aiogram.types"
    ]
    assert check_uow(_BAD_FLOW) == [
        "17: uow.session",
        "18: uow.vault",
        "19: uow.session",
        "20: uow.vault",
    ]


def test_the_checker_leaves_allowed_code_alone() -> None:
    """Domain objects, the unit of work, a module merely named like a forbidden one, and
    ``session`` / ``vault`` on anything but the unit of work are fine."""
    for rule in IMPORT_RULES:
        assert check_imports(_GOOD_FLOW, "flows.good", rule) == [], rule.name
    assert check_uow(_GOOD_FLOW) == []


def test_the_checker_resolves_relative_and_package_imports() -> None:
    """``from . import x`` resolves against the module's package (so ``flows.handlers`` is
    not ``handlers``); ``from bot.telegram import sender`` names the sender module."""
    models = _RULE["handlers-no-storage-models"]
    assert check_imports("from . import models\n", "handlers.patient.x", models) == []
    assert check_imports("from . import vault\n", "storage.x", _RULE["flows-no-vault"]) == [
        "1: storage.vault"
    ]
    assert check_imports("from storage import models\n", "handlers.patient.x", models) == [
        "1: storage.models"
    ]
    assert check_imports("from storage.models import Patient\n", "handlers.x", models) == [
        "1: storage.models"
    ]
    sender = _RULE["handlers-no-sender"]
    assert check_imports("from bot.telegram import sender\n", "handlers.x", sender) == [
        "1: bot.telegram.sender"
    ]
    assert check_imports("from bot.telegram.reply import Replier\n", "handlers.x", sender) == []
    own = _RULE["flows-no-handlers-or-bot"]
    assert check_imports("from .. import handlers\n", "flows.sub.x", own) == []
    assert check_imports("import bot.telegram.reply\n", "flows.x", own) == [
        "1: bot.telegram.reply"
    ]


# -- the rules, on the code as it is -----------------------------------------------------------


@pytest.mark.parametrize("package", ["flows", "handlers"])
def test_the_packages_are_found(package: str) -> None:
    """An empty scan would pass every rule: make sure the modules are there."""
    assert len(modules_of(package)) > 20


@pytest.mark.parametrize("rule", IMPORT_RULES, ids=[rule.name for rule in IMPORT_RULES])
def test_layer_imports(rule: Rule) -> None:
    found = violations(rule)
    assert not found, f"{rule.name}: {rule.why}:\n" + "\n".join(found)


@pytest.mark.parametrize("package", ["flows", "handlers"])
def test_no_uow_session_or_vault(package: str) -> None:
    found = uow_violations(package)
    assert not found, (
        f"{package} reaches past the repositories (add a repository method, or use uow.ring "
        "for the key ring):\n" + "\n".join(found)
    )


# -- flows.domain: the same objects, the same clock --------------------------------------------


def test_domain_reexports_the_models_and_the_one_clock() -> None:
    """The handlers' domain objects are the storage classes themselves (isinstance, queries
    in repositories and mypy all see one type), and their "now" is the one clock."""
    from flows import domain
    from storage import clock, models

    for name in domain.__all__:
        if name != "now":
            assert getattr(domain, name) is getattr(models, name), name
    assert domain.now is clock.now
    moved = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    restore = clock.use(lambda: moved)
    try:
        assert domain.utcnow() == moved
        assert domain.now() == moved
    finally:
        restore()
    assert domain.utcnow() != moved
