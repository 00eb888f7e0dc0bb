"""Edges an attacker or a broken deployment reaches (issue 14, item 7), each with the answer
it must get:

- the webhook: deeply nested JSON, a boolean / fractional / negative / huge ``update_id``
  -> 400 and nothing stored (a boolean must not take the place of update 1, which is then
  still processed); never 500, and never 503 (Telegram retries that forever);
- PostgreSQL unreachable at start -> one line on stderr, exit 2, no traceback;
- the sandbox's emulator: a request from another origin, or with a foreign Host header (DNS
  rebinding) -> 403, before it can act as anyone; an uploaded file's name with a quote or a
  line break comes back in a well-formed Content-Disposition header;
- the doctor bot: a message with no sender (``/export``) is ignored, not a TypeError.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.sandbox.client import EmulatorClient
from bot.sandbox.emulator import BotApiEmulator, RateLimits
from bot.sandbox.emulator_client_api import content_disposition
from bot.telegram.processor import MAX_UPDATE_ID, update_problem
from locales import Translator
from storage.models import InboxUpdate
from tests.cli_runner import run_cli
from tests.e2e.conftest import DOCTOR_BOT, PATIENT_BOT, Clinic, start_clinic, stop_clinic
from tests.e2e.test_bad_input import settled


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the webhook -------------------------------------------------------------------------------


def test_update_problem_rules() -> None:
    ok = {"update_id": 1, "message": {"chat": {"id": 1}, "entities": [{"user": {"id": 2}}]}}
    assert update_problem(ok) is None
    assert update_problem({"update_id": MAX_UPDATE_ID}) is None
    for bad_id in (True, False, 1.0, "1", -1, MAX_UPDATE_ID + 1, 2**64, None):
        assert update_problem({"update_id": bad_id}) == "update_id", bad_id
    assert update_problem([{"update_id": 1}]) == "shape"
    deep: dict[str, object] = {"update_id": 1}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    assert update_problem(deep) == "depth"


async def test_webhook_refuses_what_is_not_an_update(
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
        # The emulator's own updates start at 1000: update 1 is the one this test sends.
        clinic.emulator.find_bot(PATIENT_BOT).next_update_id = 1000
        uid = await clinic.person("Hana", "ru")
        await clinic.say(uid, "/start")
        url = f"http://127.0.0.1:{port}/webhook/patient"
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"}

        def help_update(update_id: object) -> dict[str, object]:
            return {
                "update_id": update_id,
                "message": {
                    "message_id": 60,
                    "date": 0,
                    "text": "/help",
                    "chat": {"id": uid, "type": "private"},
                    "from": {"id": uid, "is_bot": False, "first_name": "Hana"},
                },
            }

        nested = b'{"update_id": 5, "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        deep = b'{"update_id": 6, "message": ' + b'{"a":' * 60 + b"1" + b"}" * 60 + b"}"
        async with aiohttp.ClientSession() as http:
            for body in (nested, deep):
                async with http.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 400
            for bad in (True, 1.5, "1", -3, 2**64, 10**30):
                async with http.post(url, json=help_update(bad), headers=headers) as resp:
                    assert resp.status == 400, bad
            async with clinic.app.db.uow() as uow:
                assert not list(
                    await uow.session.scalars(
                        select(InboxUpdate.update_id).where(InboxUpdate.update_id < 10)
                    )
                )
            # The real update 1 is new, stored and answered.
            since = await clinic.seq(uid)
            async with http.post(url, json=help_update(1), headers=headers) as resp:
                assert resp.status == 200
        assert await settled(clinic, "patient", 1) == "done"
        help_text = Translator("ru").plain("help.patient", emergency_number="112")
        await clinic.client.wait_for(uid, PATIENT_BOT, since=since, predicate=help_text[:40])
    finally:
        await stop_clinic(clinic, schema)


# --- PostgreSQL down at start ------------------------------------------------------------------


@pytest.mark.parametrize("command", [["run"], ["migrate"]])
def test_database_unreachable_at_start_is_one_line(tmp_path: Path, command: list[str]) -> None:
    port = _free_port()  # nothing listens there
    out = run_cli(
        command,
        tmp_path,
        CARELINE_DATABASE_URL=f"postgresql+asyncpg://careline:pw@127.0.0.1:{port}/careline",
        CARELINE_PATIENT_BOT_TOKEN="100001:test-patient-token-0001",
        CARELINE_DOCTOR_BOT_TOKEN="100002:test-doctor-token-0002",
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("careline: cannot reach the database")
    assert "CARELINE_DATABASE_URL" in lines[0] and "pw" not in lines[0]


# --- the sandbox emulator ----------------------------------------------------------------------


async def test_emulator_refuses_other_origins_and_foreign_hosts() -> None:
    emulator = BotApiEmulator(limits=RateLimits(enabled=False))
    emulator.register_bot("100001:test-patient-token-0001", username=PATIENT_BOT, first_name="C")
    base = await emulator.start("127.0.0.1", 0)
    port = base.rsplit(":", 1)[1]
    try:
        async with aiohttp.ClientSession() as http:

            async def users() -> int:
                async with http.get(f"{base}/client/users") as resp:
                    return len((await resp.json())["users"])

            before = await users()
            body = '{"first_name": "Mallory"}'
            attacks = (
                # A page on another site posting text/plain (no CORS preflight needed).
                {"Origin": "https://evil.example", "Content-Type": "text/plain"},
                {"Origin": "null", "Content-Type": "text/plain"},
                {"Origin": f"http://localhost:{int(port) + 1}"},  # another local server
                # DNS rebinding: the attacker's name resolved to 127.0.0.1.
                {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
                {"Host": f"evil.example:{port}"},
            )
            for headers in attacks:
                async with http.post(f"{base}/client/users", data=body, headers=headers) as resp:
                    assert resp.status == 403, headers
                    assert (await resp.json())["ok"] is False
            async with http.get(
                f"{base}/client/users", headers={"Host": f"rebind.example:{port}"}
            ) as resp:
                assert resp.status == 403
            token = "100001:test-patient-token-0001"
            async with http.post(
                f"{base}/bot{token}/getMe", headers={"Host": "evil.example"}
            ) as resp:
                assert resp.status == 403
            assert await users() == before
            # The sandbox page itself (same origin), localhost, and clients without Origin.
            for headers in (
                {"Origin": base},
                {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"},
                {},
            ):
                async with http.post(
                    f"{base}/client/users", json={"first_name": "Ann"}, headers=headers
                ) as resp:
                    assert resp.status == 200, headers
            assert await users() == before + 3
    finally:
        await emulator.stop()


async def test_file_names_are_quoted_in_content_disposition() -> None:
    emulator = BotApiEmulator(limits=RateLimits(enabled=False))
    emulator.register_bot("100001:test-patient-token-0001", username=PATIENT_BOT, first_name="C")
    base = await emulator.start("127.0.0.1", 0)
    try:
        async with EmulatorClient(base) as client:
            user = await client.create_user(first_name="Ann")
            name = 'report "final"\r\nSet-Cookie: owned=1\\x;.pdf\u202e'
            sent = await client.send_file_json(
                "document", user["id"], PATIENT_BOT, b"%PDF-1.4 test", name
            )
            file_id = sent["message"]["document"]["file_id"]
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{base}/client/files/{file_id}") as resp,
            ):
                assert resp.status == 200
                assert "Set-Cookie" not in resp.headers
                value = resp.headers["Content-Disposition"]
        assert "\r" not in value and "\n" not in value
        fallback = value.split('filename="', 1)[1].split('"', 1)[0]
        assert fallback == "report _final_Set-Cookie: owned=1_x;.pdf"
        exact = unquote(value.split("filename*=UTF-8''", 1)[1])
        assert exact == 'report "final"Set-Cookie: owned=1\\x;.pdf'
        stored = emulator.files[file_id]
        assert stored.file_path.endswith(".bin") or stored.file_path.endswith(".pdf")
    finally:
        await emulator.stop()


def test_content_disposition_values() -> None:
    assert content_disposition("inline", "a.pdf") == (
        "inline; filename=\"a.pdf\"; filename*=UTF-8''a.pdf"
    )
    assert content_disposition("inline", "\r\n") == (
        "inline; filename=\"file\"; filename*=UTF-8''file"
    )
    value = content_disposition("attachment", "王.pdf")
    assert value.startswith('attachment; filename="_.pdf"') and "%E7%8E%8B.pdf" in value


# --- the doctor bot: a message without a sender -----------------------------------------------


async def test_doctor_bot_ignores_a_message_without_sender(clinic: Clinic) -> None:
    uid = await clinic.person("Vega", "en")
    started = await clinic.client.start(uid, DOCTOR_BOT)
    assert await settled(clinic, "doctor", int(started["update_id"])) == "done"
    since = await clinic.seq(uid, DOCTOR_BOT)
    for text in ("/export", "/export 1", "/queue", "hello"):
        update = {
            "message": {
                "message_id": 77,
                "date": 0,
                "text": text,
                "chat": {"id": uid, "type": "private", "first_name": "Vega"},
            }
        }
        sent = await clinic.client.raw(DOCTOR_BOT, update)
        assert await settled(clinic, "doctor", int(sent["update_id"])) == "done", text
    history = await clinic.client.messages(uid, DOCTOR_BOT, since=since)
    assert [m.get("text") for m in history["messages"] if m["from"] == "bot"] == []
    assert '"level": "error"' not in clinic.logs.getvalue()
