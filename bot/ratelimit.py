"""Per-client request limits of Careline's web endpoints (the verify page, the device API, the
body-map Mini App).

``RateLimiter`` keeps the recent requests in this process's memory: right for one process.
With several workers (``python bot.py run --workers N``, or processes on several machines)
each would keep its own count and a client could make N times the limit by spreading its
requests; so when Redis is configured (``CARELINE_REDIS_URL``) the limits are
``SharedRateLimiter``: one sorted set per client in Redis, trimmed and counted by one Lua
script (atomic for every worker, timed by the Redis server's clock, expiring with its window).
If Redis cannot be reached the shared limiter counts in memory until it can (logged once per
outage): the page stays up and each process still limits.

Both count a request only when it is allowed, and answer ``exhausted`` without counting.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("careline.ratelimit")

MAX_CLIENTS = 10_000  # clients remembered in memory (the least recent are forgotten)
KEY_PREFIX = "careline:rl:"


class Limiter(Protocol):
    """At most a number of requests per client in a sliding window."""

    async def allow(self, client: str) -> bool:
        """Count one request of ``client``; False when it is over the limit (not counted)."""
        ...

    async def exhausted(self, client: str) -> bool:
        """Is ``client`` over the limit already (nothing counted)?"""
        ...


class RateLimiter:
    """At most ``per_minute`` requests per client in any ``window`` seconds (in memory)."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        window: float = 60.0,
    ) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.window = window
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str) -> deque[float]:
        now = self.clock()
        hits = self._hits.pop(client, None) or deque()
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        self._hits[client] = hits  # most recent last
        while len(self._hits) > MAX_CLIENTS:
            self._hits.popitem(last=False)
        return hits

    def count(self, client: str) -> bool:
        """``allow`` without the await (for callers that are not coroutines)."""
        hits = self._recent(client)
        if len(hits) >= self.per_minute:
            return False
        hits.append(self.clock())
        return True

    def over(self, client: str) -> bool:
        """``exhausted`` without the await."""
        return len(self._recent(client)) >= self.per_minute

    async def allow(self, client: str) -> bool:
        return self.count(client)

    async def exhausted(self, client: str) -> bool:
        return self.over(client)


# KEYS[1]: the client's sorted set. ARGV: window (ms), limit, count (1/0), a unique member.
# Returns 1 when the client is under the limit (and, with count, counts this request).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
end
return 1
"""


class SharedRateLimiter:
    """``RateLimiter`` whose counts live in Redis, shared by every worker (see the module)."""

    def __init__(self, redis: Redis, name: str, per_minute: int, *, window: float = 60.0) -> None:
        self.redis = redis
        self.name = name
        self.per_minute = per_minute
        self.window = window
        self.fallback = RateLimiter(per_minute, window=window)
        self._script = redis.register_script(_SCRIPT)
        self._down = False

    async def _under(self, client: str, *, count: bool) -> bool:
        from redis.exceptions import RedisError

        key = f"{KEY_PREFIX}{self.name}:{client}"
        try:
            under = await self._script(
                keys=[key],
                args=[int(self.window * 1000), self.per_minute, int(count), secrets.token_hex(8)],
            )
        except (RedisError, OSError) as exc:
            if not self._down:
                log.warning(
                    "rate limit %s: Redis unreachable (%s); counting in this process",
                    self.name, type(exc).__name__,
                )  # fmt: skip
                self._down = True
            return self.fallback.count(client) if count else not self.fallback.over(client)
        if self._down:
            log.warning("rate limit %s: Redis reachable again", self.name)
            self._down = False
        return bool(under)

    async def allow(self, client: str) -> bool:
        return await self._under(client, count=True)

    async def exhausted(self, client: str) -> bool:
        return not await self._under(client, count=False)


LimiterFactory = Callable[[str, int, float], Limiter]


def in_memory(name: str, per_minute: int, window: float = 60.0) -> Limiter:
    """A limiter of this process only (``name`` unused)."""
    return RateLimiter(per_minute, window=window)


def factory(redis: Redis | None) -> LimiterFactory:
    """Limiters shared through ``redis`` when there is one, else in memory."""
    if redis is None:
        return in_memory

    def shared(name: str, per_minute: int, window: float = 60.0) -> Limiter:
        return SharedRateLimiter(redis, name, per_minute, window=window)

    return shared
