"""The web endpoints' rate limits shared by every worker through Redis (bot.ratelimit).

The attack: with several workers each counting in its own memory, a client spreading its
requests over N workers gets N times the limit (guessing slip codes or years of birth on the
verify page). With Redis configured, two workers' limiters share one count. Needs
CARELINE_TEST_REDIS_URL (skipped without; fails loudly when set and unreachable).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.ratelimit import KEY_PREFIX, RateLimiter, SharedRateLimiter, factory, in_memory
from bot.verify_web import VerifyPage
from tests.conftest import REDIS_URL

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(REDIS_URL is None, reason="CARELINE_TEST_REDIS_URL is not set (no Redis)"),
]


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    import redis.asyncio as aioredis

    assert REDIS_URL is not None
    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=3)
    await client.ping()  # unreachable while configured: fail here, loudly
    yield client
    await client.aclose()


def _name() -> str:
    return f"test-{secrets.token_hex(4)}"  # tests running at once never share a count


async def test_two_workers_share_one_count(redis: Any) -> None:
    name = _name()
    a = SharedRateLimiter(redis, name, 3)
    b = SharedRateLimiter(redis, name, 3)
    assert [await a.allow("203.0.113.7"), await b.allow("203.0.113.7")] == [True, True]
    assert not await a.exhausted("203.0.113.7")
    assert await b.allow("203.0.113.7")
    # The fourth request is refused by either worker, and a refusal is not counted.
    assert not await a.allow("203.0.113.7")
    assert not await b.allow("203.0.113.7")
    assert await a.exhausted("203.0.113.7") and await b.exhausted("203.0.113.7")
    assert await redis.zcard(f"{KEY_PREFIX}{name}:203.0.113.7") == 3
    # Another client has its own count; the key expires with the window.
    assert await b.allow("198.51.100.1")
    ttl = await redis.pttl(f"{KEY_PREFIX}{name}:203.0.113.7")
    assert 0 < ttl <= 60_000
    # Separate processes that counted in memory would each have allowed three.
    mem_a, mem_b = RateLimiter(3), RateLimiter(3)
    assert sum([mem_a.count("x") for _ in range(3)] + [mem_b.count("x") for _ in range(3)]) == 6


async def test_unreachable_redis_counts_in_memory() -> None:
    import redis.asyncio as aioredis

    down = aioredis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    limiter = SharedRateLimiter(down, _name(), 2)
    assert [await limiter.allow("c") for _ in range(3)] == [True, True, False]
    assert await limiter.exhausted("c")
    await down.aclose()


async def _page(limits: Any) -> TestClient[Any, Any]:
    verify = VerifyPage(None, per_minute=4, limits=limits)
    app = web.Application()
    verify.mount(app)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_verify_page_limit_holds_across_workers(redis: Any) -> None:
    name = _name()

    def limits(kind: str, per_minute: int, window: float = 60.0) -> Any:
        return factory(redis)(f"{name}-{kind}", per_minute, window)

    one, two = await _page(limits), await _page(limits)
    try:
        statuses = []
        for i in range(6):
            client = (one, two)[i % 2]  # the guesses alternate between the two workers
            resp = await client.get("/r/ABCD-EFGH")
            statuses.append(resp.status)
        assert statuses.count(429) == 2, statuses
        assert statuses[-2:] == [429, 429]
    finally:
        await one.close()
        await two.close()
    # Without Redis the same guesses would have passed: each worker counts its own four.
    solo = await _page(in_memory)
    try:
        assert all([(await solo.get("/r/ABCD-EFGH")).status != 429 for _ in range(4)])
    finally:
        await solo.close()
