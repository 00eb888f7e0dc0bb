"""The emulator's client API: validation, user actions, events and streams."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.sandbox.client import EmulatorClient, EmulatorError
from bot.sandbox.emulator import BotApiEmulator, RateLimits

TOKEN = "100001:AAAclientApiTestToken"
BOT = "careline_client_bot"


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(limits=RateLimits(enabled=False), seed=3)
    emulator.register_bot(TOKEN, username=BOT, first_name="Careline")
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def client(emu: BotApiEmulator) -> AsyncIterator[EmulatorClient]:
    async with EmulatorClient(emu.base_url) as c:
        yield c


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _bot_call(
    http: aiohttp.ClientSession, emu: BotApiEmulator, method: str, **params: Any
) -> dict[str, Any]:
    """A raw Bot API call with a JSON body, as other Telegram libraries send it."""
    async with http.post(f"{emu.base_url}/bot{TOKEN}/{method}", json=params) as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def test_users_bots_and_ids(client: EmulatorClient) -> None:
    alice = await client.create_user("Alice", last_name="Testpatient", username="alice_tp")
    bob = await client.create_user("Bob", language_code="ru")
    assert (alice["id"], bob["id"]) == (700000001, 700000002)
    assert alice["is_bot"] is False and bob["language_code"] == "ru"
    assert [u["id"] for u in await client.users()] == [700000001, 700000002]
    bots = await client.bots()
    assert bots[0]["id"] == 100001 and bots[0]["username"] == BOT


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("POST", "users", {}, 400, "'first_name' is required"),
        ("POST", "users", {"first_name": 5}, 400, "'first_name' must be a string"),
        ("POST", "send", {"bot": BOT, "text": "hi"}, 400, "'user_id' is required"),
        ("POST", "send", {"user_id": "x", "bot": BOT, "text": "hi"}, 400, "must be an integer"),
        ("POST", "send", {"user_id": 1, "bot": BOT, "text": "hi"}, 404, "unknown user 1"),
        ("POST", "send", {"user_id": 700000001, "bot": "nobot", "text": "hi"}, 404, "unknown bot"),
        ("POST", "send", {"user_id": 700000001, "bot": BOT}, 400, "'text' is required"),
        (
            "POST",
            "click",
            {"user_id": 700000001, "bot": BOT, "message_id": 42, "data": "x"},
            400,
            "message 42 not found",
        ),
        ("POST", "raw", {"bot": BOT, "update": [1]}, 400, "'update' must be a JSON object"),
        ("POST", "faults", {"rate_429": 2}, 400, "between 0 and 1"),
        ("POST", "faults", {"colour": "red"}, 400, "unknown field(s) colour"),
        ("POST", "limits", {"per_chat_per_s": -1}, 400, "must be positive"),
        (
            "POST",
            "location",
            {"user_id": 700000001, "bot": BOT, "latitude": 91, "longitude": 0},
            400,
            "latitude",
        ),
        ("GET", "nothing-here", None, 404, "no client API endpoint"),
    ],
)
async def test_malformed_requests_get_clear_json_errors(
    emu: BotApiEmulator,
    client: EmulatorClient,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    fragment: str,
) -> None:
    await client.create_user("Alice")
    async with http.request(method, f"{emu.base_url}/client/{path}", json=body) as resp:
        payload = await resp.json()
        assert resp.status == status
    assert payload["ok"] is False and fragment in payload["error"]


async def test_not_json_body(emu: BotApiEmulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{emu.base_url}/client/users", data=b"{nope") as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "request body is not valid JSON"


async def test_bot_api_shapes_for_unknown_method_and_json_bodies(
    emu: BotApiEmulator, client: EmulatorClient, http: aiohttp.ClientSession
) -> None:
    assert await _bot_call(http, emu, "sendSticker") == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found",
    }
    async with http.get(f"{emu.base_url}/bot1:x/getMe") as resp:
        assert resp.status == 401
        assert (await resp.json())["description"] == "Unauthorized"
    user = await client.create_user("Erin")
    await client.start(user["id"], BOT)
    sent = await _bot_call(
        http,
        emu,
        "sendMessage",
        chat_id=user["id"],
        text="Share your phone",
        reply_markup={"keyboard": [[{"text": "Share", "request_contact": True}], ["Skip"]]},
    )
    assert sent["ok"] is True and "reply_markup" not in sent["result"]  # only inline is echoed
    history = await client.messages(user["id"], BOT)
    assert history["reply_keyboard"]["keyboard"][1] == [{"text": "Skip"}]
    shared = await client.reply_button(user["id"], BOT, "Share")
    assert shared["message"]["contact"]["user_id"] == user["id"]
    with pytest.raises(EmulatorError, match="no reply keyboard button 'Nope'"):
        await client.reply_button(user["id"], BOT, "Nope")
    removed = await _bot_call(
        http,
        emu,
        "sendMessage",
        chat_id=user["id"],
        text="ok",
        reply_markup={"remove_keyboard": True},
    )
    assert removed["ok"]
    assert (await client.messages(user["id"], BOT))["reply_keyboard"] is None


async def test_contacts_locations_media_edit_raw(
    emu: BotApiEmulator, client: EmulatorClient, http: aiohttp.ClientSession
) -> None:
    uid = (await client.create_user("Frank", last_name="Testpatient"))["id"]
    own = await client.share_contact(uid, BOT, "+15550001111")
    foreign = await client.share_contact(uid, BOT, "+15550002222", own=False, first_name="Gina")
    assert own["message"]["contact"]["user_id"] == uid
    assert foreign["message"]["contact"]["user_id"] not in (uid, None)
    loc = await client.send_location(uid, BOT, 52.5, 13.4)
    assert loc["message"]["location"] == {"latitude": 52.5, "longitude": 13.4}
    doc = await client.send_document(uid, BOT, b"report", "report.txt", caption="mine")
    voice = await client.send_file_json("voice", uid, BOT, b"OggS....", "note.ogg")
    assert doc["message"]["document"]["file_name"] == "report.txt"
    assert await client.download(voice["message"]["voice"]["file_id"]) == b"OggS...."
    text = await client.send(uid, BOT, "I feel fine")
    edited = await client.edit(uid, BOT, text["message"]["message_id"], "I feel worse")
    assert edited["message"]["edited"] is True
    raw = await client.raw(BOT, {"message": {"text": "garbage without chat"}})
    updates = (await _bot_call(http, emu, "getUpdates"))["result"]
    kinds = [next(k for k in u if k != "update_id") for u in updates]
    assert kinds == ["message"] * 6 + ["edited_message", "message"]
    assert updates[-1]["update_id"] == raw["update_id"]
    assert updates[4]["message"]["voice"]["mime_type"] == "audio/ogg"
    # a bot may download what the user sent it, through getFile and the file route
    file = await _bot_call(http, emu, "getFile", file_id=doc["message"]["document"]["file_id"])
    async with http.get(f"{emu.base_url}/file/bot{TOKEN}/{file['result']['file_path']}") as resp:
        assert await resp.read() == b"report"


async def test_wait_for_events_and_timeout(
    emu: BotApiEmulator, client: EmulatorClient, http: aiohttp.ClientSession
) -> None:
    uid = (await client.create_user("Hana"))["id"]
    await client.start(uid, BOT)
    await _bot_call(http, emu, "sendMessage", chat_id=uid, text="first reply")
    # the reply arrived before wait_for: the cursor of the last action still finds it
    assert (await client.wait_for(uid, BOT))["text"] == "first reply"
    with pytest.raises(TimeoutError, match="containing 'never'"):
        await client.wait_for(uid, BOT, "never", timeout=0.3)

    seq = (await client.messages(uid, BOT))["seq"]
    poll = asyncio.create_task(client.events(uid, BOT, since=seq, timeout=5))
    await asyncio.sleep(0.1)
    sent = await _bot_call(http, emu, "sendMessage", chat_id=uid, text="later")
    events = (await poll)["events"]
    assert [e["kind"] for e in events] == ["message"] and events[0]["message"]["text"] == "later"
    await _bot_call(
        http, emu, "deleteMessage", chat_id=uid, message_id=sent["result"]["message_id"]
    )
    history = await client.messages(uid, BOT, since=seq)
    assert history["messages"][-1]["deleted"] is True


async def test_event_stream(
    emu: BotApiEmulator, client: EmulatorClient, http: aiohttp.ClientSession
) -> None:
    uid = (await client.create_user("Ivan"))["id"]
    await client.start(uid, BOT)
    url = f"{emu.base_url}/client/stream?user_id={uid}&bot={BOT}"
    async with http.get(url) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        await _bot_call(http, emu, "sendMessage", chat_id=uid, text="streamed")
        events: list[dict[str, Any]] = []
        names: list[str] = []
        while len(events) < 2:
            line = (await asyncio.wait_for(resp.content.readline(), 5)).decode()
            if line.startswith("event: "):
                names.append(line[len("event: ") :].strip())
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    assert names == ["message", "message"]
    assert [e["message"]["from"] for e in events] == ["user", "bot"]
    assert events[1]["message"]["text"] == "streamed"


async def test_faults_endpoints_and_stats(
    emu: BotApiEmulator, client: EmulatorClient, http: aiohttp.ClientSession
) -> None:
    rule = await client.set_faults(bot=BOT, methods="*", delay_ms=[1, 2], duration_s=30, seed=5)
    assert rule["methods"] == "*" and rule["delay_ms"] == [1.0, 2.0]
    async with http.get(f"{emu.base_url}/client/faults") as resp:
        assert len((await resp.json())["rules"]) == 1
    assert (await _bot_call(http, emu, "getMe"))["ok"]
    assert await client.clear_faults() == 1
    stats = await client.stats()
    assert stats["bots"][BOT]["methods"]["getMe"]["calls"] == 1
    assert stats["totals"]["ok"] == 1


async def test_start_payload_is_passed_through(
    emu: BotApiEmulator, client: EmulatorClient
) -> None:
    uid = (await client.create_user("Jo"))["id"]
    odd = "bad payload with spaces & <html> " + base64.b64encode(b"\x00").decode()
    sent = await client.start(uid, BOT, payload=odd)
    assert sent["message"]["text"] == f"/start {odd}"
    assert sent["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]


async def test_query_string_form_bodies_allowed_updates_and_negative_offset(
    emu: BotApiEmulator, client: EmulatorClient, http: aiohttp.ClientSession
) -> None:
    uid = (await client.create_user("Kim"))["id"]
    await client.start(uid, BOT)
    await client.block(uid, BOT)
    await client.send(uid, BOT, "one")  # unblocks first: my_chat_member, then the message
    async with http.get(f"{emu.base_url}/bot{TOKEN}/getUpdates?limit=2") as resp:
        first_two = (await resp.json())["result"]
    assert [next(k for k in u if k != "update_id") for u in first_two] == [
        "message",
        "my_chat_member",
    ]
    form = {"offset": "-1", "allowed_updates": json.dumps(["message"])}
    async with http.post(f"{emu.base_url}/bot{TOKEN}/getUpdates", data=form) as resp:
        last = (await resp.json())["result"]
    assert len(last) == 1 and last[0]["message"]["text"] == "one"
    await client.block(uid, BOT)  # my_chat_member is not allowed any more: dropped
    await client.send(uid, BOT, "two")
    updates = (await _bot_call(http, emu, "getUpdates", offset=last[0]["update_id"] + 1))["result"]
    assert [u["message"]["text"] for u in updates] == ["two"]
    info = (await _bot_call(http, emu, "getWebhookInfo"))["result"]
    assert info["allowed_updates"] == ["message"] and info["url"] == ""


async def test_reply_parameters_commands_and_chat_actions(
    emu: BotApiEmulator, client: EmulatorClient, http: aiohttp.ClientSession
) -> None:
    uid = (await client.create_user("Lee"))["id"]
    asked = await client.send(uid, BOT, "When is my visit?")
    mid = asked["message"]["message_id"]
    reply = await _bot_call(
        http,
        emu,
        "sendMessage",
        chat_id=uid,
        text="Tomorrow",
        reply_parameters={"message_id": mid},
    )
    assert reply["result"]["reply_to_message"]["text"] == "When is my visit?"
    missing = await _bot_call(
        http, emu, "sendMessage", chat_id=uid, text="x", reply_to_message_id=99
    )
    assert missing["description"] == "Bad Request: message to be replied not found"
    assert (await _bot_call(http, emu, "sendChatAction", chat_id=uid, action="typing"))["result"]
    bad_cmd = await _bot_call(
        http, emu, "setMyCommands", commands=[{"command": "Bad Cmd!", "description": "x"}]
    )
    assert bad_cmd["description"] == "Bad Request: BOT_COMMAND_INVALID"
    ok = await _bot_call(
        http,
        emu,
        "setMyCommands",
        commands=[{"command": "start", "description": "Начать"}],
        language_code="ru",
    )
    assert ok["result"] is True
    got = await _bot_call(http, emu, "getMyCommands", language_code="ru")
    assert got["result"] == [{"command": "start", "description": "Начать"}]
    assert (await _bot_call(http, emu, "getMyCommands"))["result"] == []
    deleted = await _bot_call(http, emu, "deleteMessage", chat_id=uid, message_id=mid)
    assert deleted["result"] is True
    again = await _bot_call(http, emu, "deleteMessage", chat_id=uid, message_id=mid)
    assert again["description"] == "Bad Request: message to delete not found"
