"""The sandbox's simulated device (issue 18): the real sandbox mounts the device API at the
address /devices shows, and ``POST /sandbox/device`` posts a reading for a simulated patient
through that API, so a device reading is stored, judged and told offline; anything it cannot
send is refused with a clear reason, never a traceback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.sandbox.client import EmulatorClient
from bot.sandbox.devices import LABEL
from bot.sandbox.runner import PATIENT_USERNAME, Sandbox, start_sandbox
from bot.settings import Settings
from flows import devices as device_flow
from locales import Translator
from storage.models import Reading, utcnow

BOT = PATIENT_USERNAME


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sandbox_settings(data_dir: Path) -> Settings:
    """The operator's settings as ``bot.py sandbox`` reads them (only what is set is set, so
    the sandbox picks its own public address), with a fast outbox for test speed."""
    return Settings(
        data_dir=data_dir,
        outbox_global_per_s=1000.0,
        outbox_per_chat_per_s=200.0,
        outbox_per_chat_burst=50,
    )


@pytest.fixture
async def device_sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """`bot.py sandbox` in-process on a free loopback port, fresh, emulator limits off."""
    sandbox = await start_sandbox(sandbox_settings(tmp_path), port=_port(), fresh=True)
    sandbox.emulator.set_limits(enabled=False)  # test speed; pacing is the outbox's job
    try:
        yield sandbox
    finally:
        await sandbox.stop()


def demo_patient(sandbox: Sandbox) -> int:
    """The Telegram id of the demo patient the first start made."""
    return next(uid for uid, role, _ in sandbox.created if role == "patient")


def has_button(label: str) -> Callable[[dict[str, Any]], bool]:
    """A bot message with an inline button labelled ``label``."""

    def check(message: dict[str, Any]) -> bool:
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        return any(button.get("text") == label for row in rows for button in row)

    return check


async def onboard(client: EmulatorClient, uid: int, name: str = "Pat Demo") -> None:
    """The person finishes onboarding in the patient bot, in English."""
    tr = Translator("en")
    steps: list[tuple[Callable[[], Awaitable[Any]], Any]] = [
        (lambda: client.start(uid, BOT), has_button("English")),
        (lambda: client.click_button(uid, BOT, "English"),
         has_button(tr.plain("onboarding.intro.continue"))),
        (lambda: client.click_button(uid, BOT, tr.plain("onboarding.intro.continue")),
         has_button(tr.plain("onboarding.consent.accept"))),
        (lambda: client.click_button(uid, BOT, tr.plain("onboarding.consent.accept")),
         tr.plain("onboarding.ask_name")),
        (lambda: client.send(uid, BOT, name), tr.plain("onboarding.ask_birth_year")),
        (lambda: client.send(uid, BOT, "1968"), tr.plain("onboarding.ask_sex")),
        (lambda: client.click_button(uid, BOT, tr.plain("sex.female")),
         tr.plain("onboarding.ask_phone")),
        (lambda: client.share_contact(uid, BOT, "+15550100555"),
         tr.plain("onboarding.ask_timezone")),
        (lambda: client.send(uid, BOT, "+3"), tr.plain("onboarding.done", name=name)),
    ]  # fmt: skip
    for act, expected in steps:
        since = int((await client.messages(uid, BOT))["seq"])
        await act()
        await client.wait_for(uid, BOT, expected, since=since)


async def post_device(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    """POST /sandbox/device; (status, JSON answer)."""
    async with aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with http.post(f"{url}/sandbox/device", **kwargs) as resp:
            return resp.status, dict(await resp.json())


async def test_simulated_device_posts_through_the_device_api(device_sandbox: Sandbox) -> None:
    sandbox = device_sandbox
    tr = Translator("en")
    uid = demo_patient(sandbox)

    async def reading(kind: str, value: str) -> tuple[int, dict[str, Any]]:
        return await post_device(sandbox.url, {"user_id": uid, "kind": kind, "value": value})

    async with EmulatorClient(sandbox.url) as client:
        # Not a patient yet, then not onboarded yet: refused, saying what to do.
        status, body = await reading("pulse", "72")
        assert (status, body["ok"]) == (400, False) and "/start" in body["error"]
        await client.start(uid, BOT)
        await client.wait_for(uid, BOT, has_button("English"))
        status, body = await reading("pulse", "72")
        assert status == 400 and "finished onboarding" in body["error"]
        await onboard(client, uid)

        # A normal pulse: stored once, through the real API; the same again at once is the
        # API's duplicate (same kind and value within a minute), still a success.
        status, body = await reading("pulse", "72")
        assert (status, body["ok"], body["status"]) == (200, True, 200), body
        assert body["result"] == {"stored": 1, "duplicates": 0, "rejected": []}
        status, body = await reading("pulse", "72")
        assert status == 200 and body["result"] == {"stored": 0, "duplicates": 1, "rejected": []}

        # A value the API refuses (out of the physiological range): its reason, not stored.
        status, body = await reading("pulse", "900")
        assert (status, body["ok"], body["status"]) == (422, False, 422), body
        assert "range" in body["error"] and body["result"]["stored"] == 0
        # Values that cannot be read, unknown kinds and fields, non-patients, bad JSON: 400.
        for request, words in (
            ({"user_id": uid, "kind": "bp", "value": "150"}, "blood pressure"),
            ({"user_id": uid, "kind": "pulse", "value": "seventy"}, "cannot read"),
            ({"user_id": uid, "kind": "spo2", "value": "97.5"}, "cannot read"),
            ({"user_id": uid, "kind": "pulse"}, '"value"'),
            ({"user_id": uid, "kind": "mood", "value": "5"}, '"kind" must be one of'),
            ({"user_id": uid, "kind": "pulse", "value": "72", "x": 1}, "unknown field"),
            ({"user_id": "me", "kind": "pulse", "value": "72"}, '"user_id"'),
            ({"user_id": 999_999_999, "kind": "pulse", "value": "72"}, "not a patient"),
            ([1, 2], "JSON object"),
            (b"{not json", "not valid JSON"),
        ):
            status, body = await post_device(sandbox.url, request)
            assert (status, body["ok"]) == (400, False), (request, body)
            assert words in body["error"], (request, body)

        # A day later on the sandbox clock, a blood pressure over the alert line: taken at
        # sandbox now, and the patient (no follow-up doctor) hears of it in their chat.
        clock = f"{sandbox.url}/sandbox/clock"
        async with aiohttp.ClientSession() as http, http.post(clock, json={"advance": "1d"}) as r:
            assert r.status == 200
        since = int((await client.messages(uid, BOT))["seq"])
        status, body = await reading("bp", " 185 / 112 ")
        assert status == 200 and body["result"]["stored"] == 1, body
        shown = {"what": tr.plain("device.kind.bp"), "value": "185/112 mmHg",
                 "flag": tr.plain("followup.flag.high")}  # fmt: skip
        await client.wait_for(uid, BOT, tr.plain("device.alert.no_doctor", **shown), since=since)

    async with sandbox.app.db.uow() as uow:
        patient = await uow.patients.by_tg_user(uid)
        assert patient is not None
        rows = list(await uow.session.scalars(select(Reading).order_by(Reading.taken_at)))
        assert [(r.kind, r.source) for r in rows] == [("pulse", "device"), ("bp", "device")]
        [device] = await device_flow.devices_of(uow, patient)
        assert device.label == LABEL and device.status == "active"
        assert {r.device_id for r in rows} == {device.id}
        gap = rows[1].taken_at - rows[0].taken_at
        assert timedelta(hours=23) < gap < timedelta(hours=25)


async def test_device_api_is_at_the_address_devices_shows(tmp_path: Path) -> None:
    """/devices shows an upload address on this sandbox, where a real app pairs and uploads;
    the simulated device is made once and kept, made anew when the patient revoked it, and
    after a restart (its token forgotten) replaces the older one."""
    tr = Translator("en")
    sandbox = await start_sandbox(sandbox_settings(tmp_path), port=_port(), fresh=True)
    try:
        sandbox.emulator.set_limits(enabled=False)
        uid = demo_patient(sandbox)
        async with EmulatorClient(sandbox.url) as client:
            await onboard(client, uid)
            await client.send(uid, BOT, "/devices")
            await client.wait_for(uid, BOT, has_button(tr.plain("device.button.connect")))
            await client.click_button(uid, BOT, tr.plain("device.button.connect"))
            shown = await client.wait_for(uid, BOT, lambda m: "/d/" in (m.get("text") or ""))
        assert sandbox.app.settings.public_url == sandbox.url
        device_id = shown["text"].split(f"{sandbox.url}/d/", 1)[1].split("/", 1)[0]
        code = shown["text"].split("code: ", 1)[1].split()[0]
        async with aiohttp.ClientSession() as http:
            pair = f"{sandbox.url}/d/{device_id}/pair"
            async with http.post(pair, json={"code": code}) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["upload"] == f"{sandbox.url}/d/{device_id}/fhir"

        async def simulated() -> list[str]:
            async with sandbox.app.db.uow() as uow:
                patient = await uow.patients.by_tg_user(uid)
                assert patient is not None
                mine = [(d.label, d.id) for d in await device_flow.devices_of(uow, patient)]
            assert sorted(label for label, _ in mine) == sorted(["#1", LABEL])  # one of each
            return [device_id for label, device_id in mine if label == LABEL]

        ok = {"user_id": uid, "kind": "spo2", "value": "97"}
        assert (await post_device(sandbox.url, ok))[0] == 200
        first = await simulated()
        ok = {"user_id": uid, "kind": "temperature", "value": "37.2"}
        assert (await post_device(sandbox.url, ok))[0] == 200
        assert await simulated() == first  # kept
        async with sandbox.app.db.uow() as uow:  # the patient revokes it (as /devices does)
            patient = await uow.patients.by_tg_user(uid)
            assert patient is not None
            await device_flow.revoke(uow, patient, first[0], utcnow())
            await uow.commit()
        status, body = await post_device(
            sandbox.url, {"user_id": uid, "kind": "weight", "value": "70,5"}
        )
        assert status == 200 and body["result"]["stored"] == 1, body
        second = await simulated()
        assert second != first
    finally:
        await sandbox.stop()

    sandbox = await start_sandbox(sandbox_settings(tmp_path), port=_port())
    try:
        status, body = await post_device(
            sandbox.url, {"user_id": uid, "kind": "glucose", "value": "6.1"}
        )
        assert status == 200 and body["result"]["stored"] == 1, body
        assert await simulated() not in (first, second)  # the older one revoked
        async with sandbox.app.db.uow() as uow:
            kinds = sorted(await uow.session.scalars(select(Reading.kind)))
        assert kinds == ["glucose", "spo2", "temperature", "weight"]
    finally:
        await sandbox.stop()
