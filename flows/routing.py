"""Routing: the department the triage picks is a preference, not a dead end.

``flows/questionnaires/routing.toml`` (clinic data) gives each department a fallback and each
disposition a time limit; see its header for the rules. This module reads it, checks it against
the intake's departments (no unknown department, no loop, every chain ends at ``last``) and
answers two questions: where should a new case wait, and where does a case go when its limit
passes. No aiogram and no I/O but reading the file once.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from flows.questionnaire import DataFileError
from flows.questionnaire import load as load_questionnaire

DEFAULT_PATH = Path(__file__).parent / "questionnaires" / "routing.toml"
DISPOSITIONS = ("consultation_24", "consultation")


@dataclass(frozen=True)
class Routing:
    """The fallback of each department and the waiting limit of each disposition."""

    last: str
    fallback: dict[str, str]
    limits: dict[str, timedelta]

    def next_of(self, department: str) -> str | None:
        """The next department down the chain (None at the end)."""
        if department == self.last:
            return None
        return self.fallback.get(department, self.last)

    def chain(self, department: str) -> list[str]:
        """``department`` and every department after it, to ``last``."""
        out = [department]
        while (nxt := self.next_of(out[-1])) is not None and nxt not in out:
            out.append(nxt)
        return out

    def limit(self, disposition: str | None) -> timedelta:
        """How long a case of this disposition may wait in one department."""
        return self.limits.get(disposition or "", self.limits["consultation"])

    def place(
        self,
        department: str,
        disposition: str | None,
        staffed: Callable[[str], bool],
        reachable: Callable[[str], bool],
    ) -> str:
        """Where a new case waits: the first department of the chain with a doctor who is on
        duty now or starts within the disposition's limit (``reachable``); else the first
        with a verified doctor; else the chain's end (where an admin can see it). So a
        24-hour case never waits for tomorrow's shift, and a routine one waits for its own
        department only when one of its doctors will be there in time."""
        chain = self.chain(department)
        for dept in chain:
            if reachable(dept):
                return dept
        for dept in chain:
            if staffed(dept):
                return dept
        return chain[-1]

    def fall_back(
        self,
        department: str,
        staffed: Callable[[str], bool],
        reachable: Callable[[str], bool] | None = None,
    ) -> str | None:
        """Where a case that waited too long goes: the next department down the chain with a
        doctor on duty or starting soon (``reachable``), else the next staffed one (the last
        one even if unstaffed); None at the end of the chain."""
        rest = self.chain(department)[1:]
        tests = [staffed] if reachable is None else [reachable, staffed]
        for test in tests:
            for dept in rest:
                if test(dept):
                    return dept
        return rest[-1] if rest else None


def _fail(name: str, where: str, what: str) -> DataFileError:
    return DataFileError(f"{name}: {where}: {what}")


def parse(data: dict[str, Any], name: str, departments: Sequence[str]) -> Routing:
    """Check the file's content; ``DataFileError`` names the place of any mistake."""
    unknown = set(data) - {"version", "last", "fallback", "limit_minutes"}
    if unknown:
        raise _fail(name, "top level", f"unknown keys {sorted(unknown)}")
    last = data.get("last")
    if last not in departments:
        raise _fail(name, "last", f"{last!r} is not a department of the intake")
    fallback = data.get("fallback", {})
    if not isinstance(fallback, dict):
        raise _fail(name, "[fallback]", "expected a table")
    for dept, nxt in fallback.items():
        if dept not in departments:
            raise _fail(name, f"[fallback] {dept}", "not a department of the intake")
        if nxt not in departments:
            raise _fail(name, f"[fallback] {dept}", f"{nxt!r} is not a department of the intake")
        if dept == last:
            raise _fail(name, f"[fallback] {dept}", "the last department has no fallback")
    limits_raw = data.get("limit_minutes", {})
    if not isinstance(limits_raw, dict) or set(limits_raw) != set(DISPOSITIONS):
        raise _fail(name, "[limit_minutes]", f"expected exactly {list(DISPOSITIONS)}")
    limits: dict[str, timedelta] = {}
    for disp, minutes in limits_raw.items():
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 10080:
            raise _fail(name, f"[limit_minutes] {disp}", "expected whole minutes, 1 to 10080")
        limits[disp] = timedelta(minutes=minutes)
    routing = Routing(str(last), {str(k): str(v) for k, v in fallback.items()}, limits)
    for dept in departments:
        seen = [dept]
        while (nxt := routing.next_of(seen[-1])) is not None:
            if nxt in seen:
                loop = " -> ".join([*seen, nxt])
                raise _fail(name, "[fallback]", f"the chain loops: {loop}")
            seen.append(nxt)
    return routing


def load(path: Path | None = None) -> Routing:
    """Read and check a routing file against the intake questionnaire in use."""
    path = path or DEFAULT_PATH
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise DataFileError(f"{path.name}: cannot read it ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"{path.name}: not valid TOML ({exc})") from None
    return parse(data, path.name, load_questionnaire().departments)


@cache
def _default() -> Routing:
    return load()


def current() -> Routing:
    """The routing in use."""
    return _default()


def validate() -> None:
    """Start-up check, after the questionnaire is chosen."""
    _default.cache_clear()
    _default()
