"""The sandbox clock: time travel for demos, only in ``bot.py sandbox``.

The clock is an offset added to the real clock. While the sandbox runs it is Careline's one
clock (storage/clock.py): handlers, flows, the sweeper, the timing words and stored
timestamps, and the emulator's message dates all read it, so pressing "Taken" after "+1 day"
records a sandbox-time dose and a 10-minute snooze is 10 minutes after sandbox now. Advancing
the clock runs the scheduler up to the new time at once, event by event at each one's own due
time, so a reminder, its escalation steps and the next day's dose go out in order as if the
time had passed.

Intervals that guard something (rate limits, form-token lifetimes, retry back-off) stay on
real time, as storage/clock.py explains.

The real bot (``bot.py run``) never builds a :class:`ClockControl`; the routes exist only on
the sandbox server, and nothing else can move the clock.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from storage import clock as one_clock

if TYPE_CHECKING:
    from bot.app import Careline

log = logging.getLogger("careline.sandbox")

# Periodic checks that usually say nothing: a waiting patient's place (every 15 minutes) and
# the admins' staffing check. "next" skips them to the next reminder, check-in or escalation.
HOUSEKEEPING = ("consult.place", "ops.staffing")
MAX_ADVANCE = timedelta(days=60)
MAX_STEPS = 2000  # events run one due time after another per advance, at most
_SPEC = re.compile(r"^\+?\s*(\d{1,5})\s*(s|sec|m|min|h|hour|hours|d|day|days)$")
_UNITS = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}


class ClockError(ValueError):
    """A clock request that cannot be done; the message is for the person who asked."""


class SandboxClock:
    """The real UTC clock plus an offset that only grows."""

    def __init__(self, real: Callable[[], datetime] = one_clock.real_now) -> None:
        self.real = real
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """Sandbox now (aware UTC)."""
        return self.real() + self.offset

    def move_to(self, moment: datetime) -> None:
        """Set sandbox now to ``moment`` (never backwards)."""
        self.offset = max(self.offset, moment - self.real())


def parse_advance(spec: Any) -> timedelta | None:
    """``"1h"``, ``"30m"``, ``"1d"``, ``"+2 days"`` -> a duration; ``"next"`` -> None (to the
    next pending scheduled event). Anything else: :class:`ClockError`."""
    if not isinstance(spec, str):
        raise ClockError('"advance" must be a string such as "1h", "30m", "1d" or "next"')
    text = spec.strip().lower()
    if text == "next":
        return None
    m = _SPEC.match(text)
    if not m:
        raise ClockError(
            f'cannot read "advance": {spec[:40]!r}; use e.g. "30m", "1h", "1d" or "next"'
        )
    delta = timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    if delta <= timedelta(0):
        raise ClockError('"advance" must move the clock forward')
    if delta > MAX_ADVANCE:
        raise ClockError(f"the clock moves at most {MAX_ADVANCE.days} days at a time")
    return delta


class ClockControl:
    """Reads and advances the sandbox clock of a running :class:`~bot.app.Careline`."""

    def __init__(self, clock: SandboxClock, app: Careline | None = None) -> None:
        self.clock = clock
        self.app = app
        self._lock = asyncio.Lock()
        self._restore: Callable[[], None] | None = None

    def attach(self, app: Careline) -> None:
        """Make the sandbox clock Careline's one clock (storage/clock.py), the sweeper's and the
        import runner's."""
        self.app = app
        app.sweeper.clock = self.clock.now
        app.imports.clock = self.clock.now
        if self._restore is None:
            self._restore = one_clock.use(self.clock.now)

    def detach(self) -> None:
        """Give the process back its real clock (the sandbox is stopping)."""
        if self._restore is not None:
            self._restore()
            self._restore = None

    def _app(self) -> Careline:
        if self.app is None:
            raise ClockError("the sandbox is still starting; try again in a moment")
        return self.app

    async def next_due(self, *, noticed: bool = False) -> datetime | None:
        """When the earliest pending scheduled event is due (None: nothing scheduled); with
        ``noticed``, the earliest that someone would notice: the periodic checks in
        :data:`HOUSEKEEPING` still run on the way but are not where "next event" stops."""
        async with self._app().db.uow() as uow:
            due = await uow.events.next_due(exclude=HOUSEKEEPING if noticed else ())
        if due is not None and due.tzinfo is None:  # SQLite hands back naive UTC
            due = due.replace(tzinfo=self.clock.now().tzinfo)
        return due

    async def state(self) -> dict[str, Any]:
        """``{"now": ISO, "offset_s": n, "next_due": ISO | None}`` (the next noticed one)."""
        due = await self.next_due(noticed=True)
        return {
            "now": self.clock.now().isoformat(),
            "offset_s": round(self.clock.offset.total_seconds()),
            "next_due": due.isoformat() if due is not None else None,
        }

    async def _sweep(self) -> None:
        sweeper = self._app().sweeper
        for _ in range(MAX_STEPS):
            if await sweeper.sweep_once(self.clock.now()) < sweeper.batch:
                return

    async def advance(self, spec: Any) -> dict[str, Any]:
        """Move the clock (see :func:`parse_advance`) and run everything due on the way, each
        event at its own due time; returns :meth:`state`."""
        delta = parse_advance(spec)
        async with self._lock:
            await self._sweep()  # what is already due first
            if delta is None:
                due = await self.next_due(noticed=True)
                if due is None:
                    raise ClockError("nothing is scheduled yet: there is no next event")
                target_offset = max(self.clock.offset, due - self.clock.real())
            else:
                target_offset = self.clock.offset + delta
            for _ in range(MAX_STEPS):
                due = await self.next_due()
                if due is None or due > self.clock.real() + target_offset:
                    break
                self.clock.move_to(due)
                await self._sweep()
            self.clock.offset = max(self.clock.offset, target_offset)
            await self._sweep()
        return await self.state()


def add_clock_routes(app: web.Application, control: ClockControl) -> None:
    """``GET /sandbox/clock`` and ``POST /sandbox/clock {"advance": ...}`` on the sandbox
    server. Errors are ``{"ok": false, "error": ...}`` with 400, never a traceback."""

    async def get_clock(request: web.Request) -> web.Response:
        try:
            return web.json_response({"ok": True, **await control.state()})
        except ClockError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)

    async def post_clock(request: web.Request) -> web.Response:
        try:
            try:
                body = await request.json() if request.body_exists else {}
            except ValueError:
                raise ClockError("request body is not valid JSON") from None
            if not isinstance(body, dict) or "advance" not in body:
                raise ClockError('send a JSON object such as {"advance": "1h"}')
            unknown = sorted(set(body) - {"advance"})
            if unknown:
                raise ClockError(f"unknown field: {unknown[0][:40]}")
            return web.json_response({"ok": True, **await control.advance(body["advance"])})
        except ClockError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        except Exception:
            log.exception("sandbox clock failed")
            return web.json_response(
                {"ok": False, "error": "the clock could not be advanced (see the log)"},
                status=500,
            )

    app.router.add_get("/sandbox/clock", get_clock)
    app.router.add_post("/sandbox/clock", post_clock)
