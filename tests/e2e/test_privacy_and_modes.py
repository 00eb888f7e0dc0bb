"""No personal data at rest in clear; webhook mode; Redis FSM storage."""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from locales import Translator
from tests.conftest import REDIS_URL
from tests.e2e.conftest import PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_onboarding import onboard

SECRETS_TYPED = {
    # What people typed or shared, as it would appear in clear text.
    "names": ["Alice Testpatient", "王测试", "Алиса Тестова"],
    "phones": [
        "+15550100701",
        "15550100701",
        "+15550100702",
        "15550100702",
        "+15550100703",
        "15550100703",
    ],
}


def _needles() -> list[bytes]:
    out: list[bytes] = []
    for value in SECRETS_TYPED["names"] + SECRETS_TYPED["phones"]:
        out += [value.encode("utf-8"), value.encode("utf-16-le")]
    return out


async def _onboard_three(clinic: Clinic) -> list[int]:
    uids = []
    for i, locale in enumerate(("en", "zh_Hans", "ru")):
        uid = await clinic.person(f"Person{i}", "en")
        await onboard(clinic, uid, locale, phone=f"+1555010070{i + 1}")
        await clinic.say(uid, "/profile")
        uids.append(uid)
    return uids


async def test_database_logs_and_fsm_hold_no_personal_data(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    uids = await _onboard_three(clinic)
    # Leave one profile edit half-way so the FSM holds routing state right now.
    await clinic.say(uids[0], "/profile")
    await clinic.press(uids[0], "Name")
    fsm = clinic.app.storage
    fsm_dump = repr(getattr(fsm, "storage", {})).encode("utf-8")
    assert b"field" in fsm_dump  # the routing state is there...
    await clinic.app.stop()
    files = [p for p in clinic.data_dir.iterdir() if p.name.startswith("careline.db")]
    assert files, "no database file found"
    blobs = {p.name: p.read_bytes() for p in files}
    blobs["logs"] = clinic.logs.getvalue().encode("utf-8")
    blobs["fsm"] = fsm_dump
    assert len(blobs["logs"]) > 0
    for where, data in blobs.items():
        for needle in _needles():
            assert needle not in data, f"{needle!r} found in {where}"


async def test_logs_are_structured_and_pseudonymous(sqlite_clinic: Clinic) -> None:
    import json

    clinic = sqlite_clinic
    uid = await clinic.person("Gus", "en")
    await clinic.say(uid, "/start")
    # Every line is JSON with the expected keys, and names nobody.
    lines = [ln for ln in clinic.logs.getvalue().splitlines() if ln.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)
        assert {"ts", "level", "logger", "event"} <= record.keys()
        assert str(uid) not in line
        assert "test-patient-token" not in line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_webhook_mode_commits_before_200_and_checks_the_secret(
    tmp_path: Path, log_capture: io.StringIO
) -> None:
    port = _free_port()
    secret = "test-webhook-secret-0123456789"
    clinic, schema = await start_clinic(
        tmp_path,
        "sqlite",
        log_capture,
        webhook_url=f"http://127.0.0.1:{port}",
        webhook_secret=SecretStr(secret),
        webhook_host="127.0.0.1",
        webhook_port=port,
    )
    try:
        uid = await clinic.person("Hana", "ru")
        reply = await clinic.say(uid, "/start")
        assert reply["text"] == Translator("ru").plain("onboarding.choose_language")
        url = f"http://127.0.0.1:{port}/webhook/patient"
        update = {
            "update_id": 990001,
            "message": {
                "message_id": 50,
                "date": 0,
                "text": "/help",
                "chat": {"id": uid, "type": "private"},
                "from": {"id": uid, "is_bot": False, "first_name": "Hana"},
            },
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=update) as resp:
                assert resp.status == 401
            async with http.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret[:-1] + "X"}
            ) as resp:
                assert resp.status == 401
            async with http.post(
                url, data=b"not json", headers={"X-Telegram-Bot-Api-Secret-Token": secret}
            ) as resp:
                assert resp.status == 400
            for _ in range(3):  # Telegram may deliver the same update again
                async with http.post(
                    url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
                ) as resp:
                    assert resp.status == 200
        async with clinic.app.db.uow() as uow:
            # Committed before the 200: the row exists right now, exactly once.
            from sqlalchemy import func, select

            from storage.models import InboxUpdate

            n = await uow.session.scalar(
                select(func.count())
                .select_from(InboxUpdate)
                .where(InboxUpdate.update_id == 990001)
            )
            assert n == 1
        help_text = Translator("ru").plain("help.patient", emergency_number="112")
        await clinic.client.wait_for(
            uid, PATIENT_BOT, predicate=lambda m: m.get("text") == help_text
        )
        texts = await clinic.bot_texts(uid)
        assert texts.count(help_text) == 1
    finally:
        await stop_clinic(clinic, schema)


@pytest.mark.redis
@pytest.mark.skipif(REDIS_URL is None, reason="CARELINE_TEST_REDIS_URL is not set (no Redis)")
async def test_redis_fsm_storage_routes_without_health_data(
    tmp_path: Path, log_capture: io.StringIO
) -> None:
    import redis.asyncio as aioredis

    assert REDIS_URL is not None
    r = aioredis.from_url(REDIS_URL)
    await _drop_fsm_keys(r)  # other tests (rate limits) keep their own keys in this index
    clinic, schema = await start_clinic(tmp_path, "sqlite", log_capture, redis_url=REDIS_URL)
    try:
        uid = await clinic.person("Ivan", "en")
        await onboard(clinic, uid, "en", phone="+15550100704")
        await clinic.say(uid, "/profile")
        asked = await clinic.press(uid, "Name")
        assert asked["text"] == Translator("en").plain("onboarding.ask_name")
        keys = [k async for k in r.scan_iter("*")]
        assert any(k.startswith(b"fsm") for k in keys), "no FSM keys: the storage is not Redis"
        dump = b""
        for key in keys:
            kind = await r.type(key)
            if kind == b"string":
                dump += key + (await r.get(key) or b"")
            else:
                dump += key
        assert b"field" in dump
        for needle in [*_needles(), b"Alice Testpatient", b"5550100704"]:
            assert needle not in dump
        done = await clinic.say(uid, "Alice Renamed")
        assert done["text"] == Translator("en").plain("profile.updated", field="Name")
    finally:
        await stop_clinic(clinic, schema)
        await _drop_fsm_keys(r)
        await r.aclose()


async def _drop_fsm_keys(r: Any) -> None:
    keys = [k async for k in r.scan_iter("fsm*")]
    if keys:
        await r.delete(*keys)


def test_redis_url_is_reachable_when_configured() -> None:
    """When CI says Redis is there, it must be (fail loudly, don't skip)."""
    if REDIS_URL is None:
        pytest.skip("CARELINE_TEST_REDIS_URL is not set (no Redis)")
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    assert client.ping()
