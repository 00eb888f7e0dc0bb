"""The one clock every part of Careline asks for "now".

Handlers, flows, the sweeper, the sender's timing words and stored timestamps all call
:func:`now` (through :func:`storage.models.utcnow`). In production it is the real UTC clock
and nothing can move it: the only way to change the source is :func:`use`, which only the
sandbox (``bot.py sandbox``, bot/sandbox/clock.py) calls, so a demo's "+1 day" moves doses,
readings, snoozes and message dates together.

Intervals that protect something (rate limits, form-token lifetimes, retry back-off, leases
measured with ``time.monotonic``) stay on real time on purpose: moving a demo clock must never
lift a rate limit or keep a stale token alive.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def real_now() -> datetime:
    """The real clock: timezone-aware UTC."""
    return datetime.now(UTC)


_source: Callable[[], datetime] = real_now


def now() -> datetime:
    """Careline's now (aware UTC): the real clock unless the sandbox has taken it over."""
    return _source()


def use(source: Callable[[], datetime]) -> Callable[[], None]:
    """Make ``source`` the clock of this process; returns a function that puts back the clock
    that was in use before (the sandbox calls it when it stops)."""
    global _source
    previous = _source
    _source = source

    def restore() -> None:
        global _source
        _source = previous

    return restore


def is_real() -> bool:
    """True unless the sandbox has taken the clock over."""
    return _source is real_now
