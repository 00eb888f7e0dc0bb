"""The sandbox's stand-in for a video room: a link from a video consultation opens a page
naming the room (escaped) and whether a signed token came with it; anything else is 404."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.sandbox.web import MEET_PATH, add_meet_route


async def test_the_room_page() -> None:
    app = web.Application()
    add_meet_route(app)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(f"{MEET_PATH}/careline0123abc?jwt=x.y.z")
        assert resp.status == 200
        body = await resp.text()
        assert "careline0123abc" in body and "a signed token" in body
        assert "no token" in await (await client.get(f"{MEET_PATH}/careline9")).text()
        assert (await client.get(f"{MEET_PATH}/<script>")).status == 404
        assert (await client.get(f"{MEET_PATH}/a-b")).status == 404
