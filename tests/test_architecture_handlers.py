"""The shape of the handlers: no import cycles among their modules, and the buttons already in
people's chats still reach a handler after the button chains became one handler per action.

Import cycles:
Every ``import`` of every module under ``handlers/`` is read from the source (``ast``; imports
inside functions count too: a deferred import hides a cycle, it does not remove it). An edge
goes to the module named: ``from handlers.patient import case`` names the module
``handlers.patient.case``, ``from handlers.patient.case import x`` names that module, and
``from handlers.patient import scheduled`` names the package's ``__init__``. The package a
module sits in is not an edge of its own (Python runs it first, but it is not what the module
depends on). Shared behaviour belongs in ``handlers/common/`` or in a flow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from aiogram import Router
from aiogram.filters.callback_data import CallbackData, CallbackQueryFilter
from aiogram.types import CallbackQuery, User

from flows import medication, referral_wizard
from handlers.common.routes import RouteTable
from handlers.doctor import plans as doctor_plans
from handlers.doctor import referrals as doctor_referrals
from handlers.doctor.plans import PlanCB
from handlers.doctor.referrals import RefCB
from handlers.patient import meds as patient_meds
from handlers.patient.meds import MedCB

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "handlers"


def _modules() -> dict[str, Path]:
    """Every handlers module by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The module a ``from`` import names, relative imports resolved."""
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, name] if name else base)


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The handlers modules ``module`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in known:  # a submodule by name
                    out.add(sub)
                elif source in known:  # a name defined in that module
                    out.add(source)
    out.discard(module)
    return out


def graph() -> dict[str, set[str]]:
    """Import edges among the handlers modules."""
    modules = _modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted,
    plus any module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_cycles_and_deferred_imports(tmp_path: Path) -> None:
    """The check itself: a two-module cycle through an import inside a function is found,
    a package importing its submodules is not a cycle, relative imports resolve."""
    pkg = tmp_path / "handlers" / "side"
    pkg.mkdir(parents=True)
    (tmp_path / "handlers" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from handlers.side import a, b\n")
    (pkg / "a.py").write_text("def f():\n    from handlers.side.b import g\n")
    (pkg / "b.py").write_text("from . import a\n")
    known = {"handlers", "handlers.side", "handlers.side.a", "handlers.side.b"}
    edges = {
        "handlers": set(),
        "handlers.side": imports_of("handlers.side", pkg / "__init__.py", known),
        "handlers.side.a": imports_of("handlers.side.a", pkg / "a.py", known),
        "handlers.side.b": imports_of("handlers.side.b", pkg / "b.py", known),
    }
    assert edges["handlers.side"] == {"handlers.side.a", "handlers.side.b"}
    assert edges["handlers.side.a"] == {"handlers.side.b"}
    assert edges["handlers.side.b"] == {"handlers.side.a"}
    assert cycles(edges) == [["handlers.side.a", "handlers.side.b"]]
    edges["handlers.side.b"] = set()
    assert cycles(edges) == []


def test_no_import_cycles_among_handlers() -> None:
    edges = graph()
    assert len(edges) > 30, "the handlers modules were not found"
    found = cycles(edges)
    assert not found, "import cycles among handlers modules (move the shared part to "
    "handlers/common/ or a flow):\n" + "\n".join(" <-> ".join(c) for c in found)


# -- callback data: the buttons already in people's chats keep working -------------------------
#
# The plan, /meds and referral buttons are handled one handler per action now. Their packed
# strings must stay byte for byte what the bots sent before (``prefix:field:field...``), and
# each old string must reach the handler of its action.

PLAN_ID = "0123456789abcdef0123456789abcdef"  # storage.models.new_id(): 32 hex digits
REF_ID = "fedcba9876543210fedcba9876543210"
CASE_ID = "00112233445566778899aabbccddeeff"
HOSPITAL_ID = "aaaabbbbccccdddd"  # the wizard sends a hospital id's first 16 characters

# (CallbackData instance, the string the code produced before, the handler it must reach)
OLD_STRINGS: list[tuple[CallbackData, str, str]] = [
    (MedCB(action="ok", plan=PLAN_ID, v=3), f"pm:ok:{PLAN_ID}:3:", "on_confirm"),
    (MedCB(action="no", plan=PLAN_ID, v=3), f"pm:no:{PLAN_ID}:3:", "on_decline"),
    (MedCB(action="nor", plan=PLAN_ID, v=3), f"pm:nor:{PLAN_ID}:3:", "on_decline_no_reason"),
    (MedCB(action="back", plan=PLAN_ID, v=12), f"pm:back:{PLAN_ID}:12:", "on_decline_back"),
    (MedCB(action="pause", plan=PLAN_ID, v=2), f"pm:pause:{PLAN_ID}:2:", "on_pause_or_resume"),
    (MedCB(action="resume", plan=PLAN_ID, v=2), f"pm:resume:{PLAN_ID}:2:", "on_pause_or_resume"),
    (MedCB(action="exp", plan=PLAN_ID, v=1), f"pm:exp:{PLAN_ID}:1:", "on_export"),
    (MedCB(action="x"), "pm:x::0:", "on_cancel_button"),
    (MedCB(action="quiet"), "pm:quiet::0:", "on_ask_setting"),
    (MedCB(action="zone"), "pm:zone::0:", "on_ask_setting"),
    (MedCB(action="qoff"), "pm:qoff::0:", "on_quiet_off"),
    (MedCB(action="sh", value="-60"), "pm:sh::0:-60", "on_shift"),
    (MedCB(action="sh", value="+60"), "pm:sh::0:+60", "on_shift"),
    (MedCB(action="sh", value="type"), "pm:sh::0:type", "on_shift"),
    (MedCB(action="sh", value="0"), "pm:sh::0:0", "on_shift"),
    (MedCB(action="gone"), "pm:gone::0:", "on_unknown_button"),
    (
        PlanCB(action="pick", plan=PLAN_ID, step="days", value="weekdays"),
        f"dp:pick:{PLAN_ID}:days:weekdays",
        "on_pick",
    ),
    (
        PlanCB(action="pick", plan=PLAN_ID, step="period", value="ongoing"),
        f"dp:pick:{PLAN_ID}:period:ongoing",
        "on_pick",
    ),
    (PlanCB(action="type", plan=PLAN_ID, step="days"), f"dp:type:{PLAN_ID}:days:", "on_type"),
    (PlanCB(action="keep", plan=PLAN_ID), f"dp:keep:{PLAN_ID}::", "on_keep"),
    (PlanCB(action="steps", plan=PLAN_ID), f"dp:steps:{PLAN_ID}::", "on_steps"),
    (PlanCB(action="goto", plan=PLAN_ID, step="review"), f"dp:goto:{PLAN_ID}:review:", "on_goto"),
    (PlanCB(action="cancel", plan=PLAN_ID), f"dp:cancel:{PLAN_ID}::", "on_cancel_button"),
    (PlanCB(action="send", plan=PLAN_ID), f"dp:send:{PLAN_ID}::", "on_send"),
    (PlanCB(action="chg", plan=PLAN_ID), f"dp:chg:{PLAN_ID}::", "on_change"),
    (PlanCB(action="end", plan=PLAN_ID), f"dp:end:{PLAN_ID}::", "on_end"),
    (PlanCB(action="endok", plan=PLAN_ID), f"dp:endok:{PLAN_ID}::", "on_end_confirmed"),
    (PlanCB(action="gone", plan=PLAN_ID), f"dp:gone:{PLAN_ID}::", "on_unknown_button"),
    (RefCB(action="new", ref=CASE_ID), f"drf:new:{CASE_ID}::", "on_new"),
    (
        RefCB(action="pick", ref=REF_ID[:12], step="target", value=HOSPITAL_ID),
        f"drf:pick:{REF_ID[:12]}:target:{HOSPITAL_ID}",
        "on_pick",
    ),
    (
        RefCB(action="pick", ref=REF_ID[:12], step="department", value="-"),
        f"drf:pick:{REF_ID[:12]}:department:-",
        "on_pick",
    ),
    (RefCB(action="keep", ref=REF_ID[:12]), f"drf:keep:{REF_ID[:12]}::", "on_keep"),
    (RefCB(action="steps", ref=REF_ID[:12]), f"drf:steps:{REF_ID[:12]}::", "on_steps"),
    (
        RefCB(action="goto", ref=REF_ID[:12], step="urgency"),
        f"drf:goto:{REF_ID[:12]}:urgency:",
        "on_goto",
    ),
    (RefCB(action="cancel", ref=REF_ID[:12]), f"drf:cancel:{REF_ID[:12]}::", "on_cancel_button"),
    (RefCB(action="issue", ref=REF_ID[:12]), f"drf:issue:{REF_ID[:12]}::", "on_issue"),
    (RefCB(action="rev", ref=REF_ID), f"drf:rev:{REF_ID}::", "on_revoke"),
    (RefCB(action="revok", ref=REF_ID), f"drf:revok:{REF_ID}::", "on_revoke_confirmed"),
    (RefCB(action="gone", ref=REF_ID), f"drf:gone:{REF_ID}::", "on_unknown_button"),
]


def _router_of(cb: CallbackData) -> Router:
    table: dict[type[CallbackData], RouteTable] = {
        MedCB: patient_meds.routes,
        PlanCB: doctor_plans.routes,
        RefCB: doctor_referrals.routes,
    }
    return table[type(cb)].router()


async def _reached(router: Router, data: str) -> str | None:
    """The handler an unguarded press with ``data`` reaches: the first whose callback-data
    filters all pass (handlers with other filters, such as the refusal of a patient not yet
    onboarded, are left out: they depend on who presses)."""
    user = User(id=1, is_bot=False, first_name="A")
    query = CallbackQuery(id="1", from_user=user, chat_instance="c", data=data)
    for handler in router.callback_query.handlers:
        filters = [f.callback for f in handler.filters or ()]
        if not filters or not all(isinstance(f, CallbackQueryFilter) for f in filters):
            continue
        if all([await f(query) for f in filters]):
            return handler.callback.__name__
    return None


@pytest.mark.parametrize(("cb", "old", "handler"), OLD_STRINGS, ids=[o for _, o, _ in OLD_STRINGS])
async def test_old_button_strings_still_pack_and_reach_their_handler(
    cb: CallbackData, old: str, handler: str
) -> None:
    assert cb.pack() == old
    assert len(old.encode()) <= 64
    assert type(cb).unpack(old) == cb
    assert await _reached(_router_of(cb), old) == handler


def test_the_longest_buttons_fit_in_64_bytes() -> None:
    """Every action with its longest real values stays within Telegram's 64 bytes."""
    longest_v = 10**6  # a plan changed a million times
    for action in ("ok", "no", "nor", "back", "pause", "resume", "exp", "x", "quiet", "qoff"):
        assert len(MedCB(action=action, plan=PLAN_ID, v=longest_v, value="type").pack()) <= 64
    plan_values = ("weekdays", "ongoing", *medication.FOODS, *medication.PERIODS)
    for action in ("pick", "type", "keep", "steps", "goto", "cancel", "send", "chg", "endok"):
        for step in (*medication.STEPS, medication.REVIEW):
            for value in plan_values:
                assert (
                    len(PlanCB(action=action, plan=PLAN_ID, step=step, value=value).pack()) <= 64
                )
    for step in (*referral_wizard.STEPS, referral_wizard.REVIEW):
        for value in (HOSPITAL_ID, "29", *referral_wizard.URGENCIES, *referral_wizard.VALID_DAYS):
            packed = RefCB(action="pick", ref=REF_ID[:12], step=step, value=value).pack()
            assert len(packed.encode()) <= 64
    for action in ("new", "rev", "revok"):
        assert len(RefCB(action=action, ref=REF_ID).pack()) <= 64
