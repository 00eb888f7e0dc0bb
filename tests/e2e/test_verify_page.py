"""The referral verify page (bot/verify_web.py) over aiohttp's test server on both databases:
a valid slip by QR link and by typed code (the patient only with the link), a forged token,
HTML injection escaped, the language from ?lang= and Accept-Language, marking used once (a
second time refused, a missing or stale form token refused), the rate limit (429), and the
page mounted in the sandbox. Attacks on the page: tests/e2e/test_verify_attacks.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.ratelimit import RateLimiter
from bot.verify_web import VerifyPage
from flows import referrals as rf
from flows.signing import Signer, b64u, unb64u
from storage.models import AuditRecord, Referral
from storage.uow import Database
from tests.flows.test_referrals import issued

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
async def page(db: Database) -> AsyncIterator[tuple[TestClient, VerifyPage]]:
    verify = VerifyPage(db, per_minute=1000, now=lambda: NOW)
    app = web.Application()
    verify.mount(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, verify
    finally:
        await client.close()


def _form_fields(text: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', text))


def _origin(client: TestClient) -> str:
    """The page's own origin (what a browser sends as Origin from it)."""
    return str(client.make_url("/")).rstrip("/")


def _action(text: str) -> str:
    found = re.search(r'<form method="post" action="([^"]+)"', text)
    assert found, "no mark-used form on the page"
    return found.group(1).replace("&amp;", "&")


async def test_valid_slip_by_link_and_by_code(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    rid, code, token, _ = await issued(db, Signer(db.ring))
    resp = await client.get(f"/r/{code}", params={"t": token, "lang": "en"})
    text = await resp.text()
    assert resp.status == 200
    assert "Valid referral" in text and "Lin Testpatient" in text and "1961" in text
    assert "Example City Hospital" in text and "Cardiology" in text and "2026-03-20" in text
    assert "Mark as used" in text
    # Nothing beyond the minimum: no reason, findings or doctor licence.
    for secret in ("hypertension", "150/95", "LIC-0042"):
        assert secret not in text
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    # Typed with mistakes, Chinese from Accept-Language.
    typed = code.lower().replace("-", "").replace("0", "o").replace("1", "l")
    resp = await client.get(
        f"/r/{typed}", headers={"Accept-Language": "fr-FR, zh-CN;q=0.9, en;q=0.5"}
    )
    text = await resp.text()
    assert resp.status == 200 and "有效转诊单" in text and 'lang="zh-Hans"' in text
    # A typed code alone: valid, where to and until when, but not whom the slip is for.
    assert "Example City Hospital" in text and "2026-03-20" in text
    assert "Lin Testpatient" not in text and "1961" not in text and "/use" not in text
    # The code form redirects to the canonical page.
    resp = await client.get("/r/", params={"code": typed, "lang": "ru"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith(f"/r/{code}")
    async with db.uow() as uow:
        checks = list(
            await uow.session.scalars(
                select(AuditRecord).where(
                    AuditRecord.record_id == rid, AuditRecord.action == "referral.verify"
                )
            )
        )
        assert [c.actor for c in checks] == ["desk:web", "desk:web"]


async def test_forged_and_unknown_reveal_nothing(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    _, code, token, _ = await issued(db, Signer(db.ring))
    head, sig = token.split(".")
    raw = bytearray(unb64u(head))
    raw[-3] ^= 1
    tampered = b64u(bytes(raw)) + "." + sig
    resp = await client.get(f"/r/{code}", params={"t": tampered, "lang": "ru"})
    text = await resp.text()
    assert resp.status == 200 and "Не подлинное" in text
    assert "Testpatient" not in text and "Mark" not in text and '<form method="post"' not in text
    # A genuine token shown under another slip's code: forged.
    other = rf.new_code()
    text = await (await client.get(f"/r/{other}", params={"t": token})).text()
    assert "Not genuine" in text and "Testpatient" not in text
    # A code nobody issued, and a malformed one.
    resp = await client.get(f"/r/{other}")
    assert resp.status == 404 and "Not found" in await resp.text()
    resp = await client.get("/r/nonsense")
    assert resp.status == 404 and "Testpatient" not in await resp.text()


async def test_html_injection_is_escaped(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    rid, code, _token, _ = await issued(db, Signer(db.ring))
    async with db.uow() as uow:
        patient_id = (await uow.session.get(Referral, rid)).patient_id  # type: ignore[union-attr]
    # A slip whose patient name and target carry markup.
    async with db.uow() as uow:
        doctor = (await rf.for_patient(uow, patient_id))[0].doctor_id
        doc = await uow.doctors.get(doctor)
        assert doc is not None
        patient = await uow.patients.get(patient_id)
        assert patient is not None
        await uow.patients.set_field(patient, "name", "<script>alert(1)</script>")
        ref = await rf.start_draft(uow, doc, patient_id)
        await rf.save_draft(
            uow,
            ref,
            {
                "target_hospital": '"><img src=x onerror=alert(2)>',
                "reason": "x",
                "urgency": "routine",
                "valid_until": date(2026, 4, 1).isoformat(),
            },
        )
        ref, _, evil_token = await rf.issue(
            uow, doc, ref.id, NOW - timedelta(hours=1), Signer(db.ring)
        )
        evil_code = ref.code
        await uow.commit()
    text = await (await client.get(f"/r/{evil_code}", params={"t": evil_token})).text()
    assert "Valid referral" in text
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img" not in text and "&lt;img src=x onerror=alert(2)&gt;" in text
    # Markup in the query string (code, token, language) comes back escaped or not at all.
    resp = await client.get("/r/", params={"code": "<b>x</b>", "lang": "<i>"})
    text = await resp.text()
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    resp = await client.get(f"/r/{code}", params={"t": '"><script>1</script>'})
    assert "<script>1" not in await resp.text()


async def test_mark_used_once(db: Database, page: tuple[TestClient, VerifyPage]) -> None:
    client, _ = page
    rid, code, token, _ = await issued(db, Signer(db.ring))
    text = await (await client.get(f"/r/{code}", params={"t": token})).text()
    fields, action = _form_fields(text), _action(text)
    assert "form" in fields and "t" not in fields  # the token stays out of the form
    same = {"Origin": _origin(client)}
    # No form token, or a forged one: refused, nothing changes.
    resp = await client.post(action, data={"t": token}, headers=same)
    assert resp.status == 403
    stamp, via, _ = fields["form"].split(".")
    bad = dict(fields, form=f"{stamp}.{via}.0000")
    assert (await client.post(action, data=bad, headers=same)).status == 403
    async with db.uow() as uow:
        assert (await uow.session.get(Referral, rid)).status == "issued"  # type: ignore[union-attr]
    resp = await client.post(action, data=fields, headers=same)
    assert resp.status == 200 and "Marked as used" in await resp.text()
    # The same form again: refused (already used).
    resp = await client.post(action, data=fields, headers=same)
    text = await resp.text()
    assert resp.status == 409 and "Already used" in text and "Marked as used" not in text
    text = await (await client.get(f"/r/{code}", params={"t": token})).text()
    assert "Already used" in text and "Mark as used" not in text
    async with db.uow() as uow:
        ref = await uow.session.get(Referral, rid)
        assert ref is not None and ref.status == "used" and ref.used_by == "desk"
        uses = list(
            await uow.session.scalars(
                select(AuditRecord).where(
                    AuditRecord.record_id == rid, AuditRecord.action == "referral.use"
                )
            )
        )
        assert len(uses) == 1 and uses[0].actor == "desk:web"


async def test_revoked_and_expired_pages(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, verify = page
    rid, code, token, doctor_id = await issued(db, Signer(db.ring))
    verify.now = lambda: datetime(2026, 3, 21, tzinfo=UTC)
    text = await (await client.get(f"/r/{code}", params={"t": token})).text()
    assert "Expired" in text and "2026-03-20" in text and "Mark as used" not in text
    verify.now = lambda: NOW
    async with db.uow() as uow:
        doctor = await uow.doctors.get(doctor_id)
        assert doctor is not None
        assert await rf.revoke(uow, doctor, rid, NOW) is not None
        await uow.commit()
    text = await (await client.get(f"/r/{code}", params={"t": token})).text()
    assert "Revoked by the doctor" in text and "Mark as used" not in text


async def test_rate_limited(db: Database) -> None:
    verify = VerifyPage(db, per_minute=5, now=lambda: NOW)
    app = web.Application()
    verify.mount(app)
    async with TestClient(TestServer(app)) as client:
        statuses = [(await client.get("/r/ABC-DEF-GHJ")).status for _ in range(8)]
        assert statuses[:5] == [404] * 5 and statuses[5:] == [429] * 3
        resp = await client.get("/r/", params={"lang": "zh_Hans"})
        assert resp.status == 429 and resp.headers["Retry-After"] == "60"
        assert "请等待一分钟" in await resp.text()


def test_rate_limiter_window() -> None:
    clock = [0.0]
    limiter = RateLimiter(3, clock=lambda: clock[0])
    assert [limiter.count("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.count("b")  # per client
    clock[0] = 59.9
    assert not limiter.count("a")
    clock[0] = 60.1
    assert limiter.count("a")


async def test_page_without_database_yet() -> None:
    verify = VerifyPage(None)
    app = web.Application()
    verify.mount(app)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/r/ABC-DEF-GHJ")
        assert resp.status == 503 and "not available yet" in await resp.text()


async def test_token_after_hash_is_posted_and_checked(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    """The slip's QR is /r/<code>#<token>: the page (no token in the request) carries the
    script that posts the fragment; its CSP allows exactly that script; the POST checks it."""
    import base64
    import hashlib

    client, _ = page
    _, code, token, _ = await issued(db, Signer(db.ring))
    resp = await client.get(f"/r/{code}")
    text = await resp.text()
    script = re.search(r"<script>(.*?)</script>", text, re.S)
    assert script is not None and 'id=tk method="post"' in text
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in resp.headers["Content-Security-Policy"]
    resp = await client.post(f"/r/{code}?lang=en", data={"t": token})
    text = await resp.text()
    assert resp.status == 200 and "Valid referral" in text and "<script>" not in text
    assert "form" in _form_fields(text) and "Mark as used" in text
    head, sig = token.split(".")
    resp = await client.post(f"/r/{code}", data={"t": head + "." + sig[::-1]})
    text = await resp.text()
    assert "Not genuine" in text and "Testpatient" not in text


# --- python bot.py referral verify / keys rotate-signing -----------------------------------------


async def test_cli_verify_and_rotate_signing(tmp_path: Path) -> None:
    from storage.crypto import KeyRing
    from storage.migrate import upgrade
    from tests.cli_runner import run_cli_async
    from tests.flows.test_referrals import _qr_pdf

    ring, _ = KeyRing.load_or_create(tmp_path / "keys.json")
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}", ring)
    await upgrade(db.engine)
    # Issued "now" so the slip is valid when the command runs.
    today = datetime.now(UTC)
    rid, code, token, _ = await issued(
        db, Signer(ring), valid=(today + timedelta(days=30)).date(), now=today
    )
    pdf = _qr_pdf(rf.slip_url("http://127.0.0.1:8080", code, token))
    async with db.uow() as uow:
        ref = await uow.session.get(Referral, rid)
        assert ref is not None
        await rf.attach_file(uow, ref, pdf)
        await uow.commit()
    await db.dispose()
    (tmp_path / "slip.pdf").write_bytes(pdf)
    (tmp_path / "edited.pdf").write_bytes(_qr_pdf(rf.slip_url("http://x", code, token), "!"))

    by_code = await run_cli_async(["referral", "verify", code.lower().replace("-", " ")], tmp_path)
    assert by_code.returncode == 0, by_code.stderr
    assert by_code.stdout.startswith("VALID: Valid referral")
    assert "Lin Testpatient" in by_code.stdout and "1961" in by_code.stdout
    by_file = await run_cli_async(["referral", "verify", str(tmp_path / "slip.pdf")], tmp_path)
    assert by_file.returncode == 0 and "VALID" in by_file.stdout, by_file.stdout + by_file.stderr
    by_url = await run_cli_async(
        ["referral", "verify", f"http://127.0.0.1:8080/r/{code}#{token}"], tmp_path
    )
    assert by_url.returncode == 0 and "VALID" in by_url.stdout
    edited = await run_cli_async(["referral", "verify", str(tmp_path / "edited.pdf")], tmp_path)
    assert edited.returncode == 1 and edited.stdout.startswith("FORGED")
    assert "Testpatient" not in edited.stdout
    forged = await run_cli_async(["referral", "verify", token[:-4] + "AAAA"], tmp_path)
    assert forged.returncode == 1 and forged.stdout.startswith("FORGED")
    wrong = await run_cli_async(
        ["referral", "verify", code[:-1] + ("X" if code[-1] != "X" else "Y")], tmp_path
    )
    assert wrong.returncode == 1 and wrong.stdout.startswith("UNKNOWN")
    assert "Traceback" not in wrong.stderr + forged.stderr + edited.stderr

    old_kid = json.loads((tmp_path / "keys.json").read_text())["signing_active"]
    rotated = await run_cli_async(["keys", "rotate-signing"], tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    keys = json.loads((tmp_path / "keys.json").read_text())
    assert keys["signing_active"] != old_kid and "private" not in keys["signing_keys"][old_kid]
    again = await run_cli_async(["referral", "verify", str(tmp_path / "slip.pdf")], tmp_path)
    assert again.returncode == 0 and "VALID" in again.stdout


# --- where the page is served --------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sandbox_serves_the_page_and_polling_mode_its_own_port(tmp_path: Path) -> None:
    import aiohttp

    from bot.sandbox.runner import start_sandbox
    from bot.settings import Settings
    from bot.verify_web import serve

    values = {**Settings().model_dump(), "data_dir": tmp_path}
    values.pop("public_url")
    settings = Settings.model_construct(**values)
    sandbox = await start_sandbox(settings, port=_free_port())
    try:
        db = sandbox.app.db
        assert sandbox.app.settings.public_url == sandbox.url.rstrip("/")
        _, code, token, _ = await issued(
            db,
            Signer(db.ring),
            valid=(datetime.now(UTC) + timedelta(days=5)).date(),
            now=datetime.now(UTC),
        )
        async with aiohttp.ClientSession() as http:
            url = rf.slip_url(sandbox.app.settings.public_url, code, token) + "&lang=en"
            async with http.get(url) as resp:
                assert resp.status == 200 and "Valid referral" in await resp.text()
            # Polling mode: the page on a port of its own.
            port = _free_port()
            runner = await serve(VerifyPage(db), "127.0.0.1", port)
            try:
                async with http.get(f"http://127.0.0.1:{port}/r/{code}?lang=ru") as resp:
                    assert resp.status == 200 and "Направление действительно" in await resp.text()
            finally:
                await runner.cleanup()
    finally:
        await sandbox.stop()
