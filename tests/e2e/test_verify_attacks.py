"""Attacks on the referral verify page (bot/verify_web.py), over aiohttp's test server on both
databases: guessing who a slip is for from its code, guessing the year of birth, marking a
slip used from another site or with a form from another page, and lifting the rate limit with
a forged X-Forwarded-For. Each attack is played and must fail; a genuine desk still works."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.verify_web import BORN_TRIES, COOKIE, VerifyPage, client_address, parse_networks
from flows.signing import Signer
from storage.models import AuditRecord, Referral
from storage.uow import Database
from tests.flows.test_referrals import issued, issued_second

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
IDENTITY = ("Lin Testpatient", "1961", "Female", "Male", "Other")  # the fixture's patient


async def _client(verify: VerifyPage) -> TestClient:
    app = web.Application()
    verify.mount(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def page(db: Database) -> AsyncIterator[tuple[TestClient, VerifyPage]]:
    verify = VerifyPage(db, per_minute=1000, now=lambda: NOW)
    client = await _client(verify)
    try:
        yield client, verify
    finally:
        await client.close()


def _origin(client: TestClient) -> dict[str, str]:
    return {"Origin": str(client.make_url("/")).rstrip("/")}


def _use_form(text: str) -> tuple[str, dict[str, str]]:
    found = re.search(r'<form method="post" action="([^"]+/use[^"]*)">(.*?)</form>', text, re.S)
    assert found, "no mark-used form on the page"
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', found.group(2)))
    return found.group(1).replace("&amp;", "&"), fields


async def _status(db: Database, rid: str) -> str:
    async with db.uow() as uow:
        ref = await uow.session.get(Referral, rid)
        assert ref is not None
        return ref.status


async def _audits(db: Database, rid: str, action: str) -> list[tuple[str, dict[str, Any]]]:
    """(actor, details) of the slip's audit records of ``action``, in order."""
    async with db.uow() as uow:
        rows = await uow.session.scalars(
            select(AuditRecord)
            .where(AuditRecord.record_id == rid, AuditRecord.action == action)
            .order_by(AuditRecord.seq)
        )
        return [(r.actor, json.loads(r.details)) for r in rows]


# --- who the slip is for ---------------------------------------------------------------------


async def test_a_typed_code_alone_shows_nobody(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    _, code, _, _ = await issued(db, Signer(db.ring))
    for typed in (code, code.lower().replace("-", "")):
        resp = await client.get(f"/r/{typed}", params={"lang": "en"})
        text = await resp.text()
        assert resp.status == 200 and "Valid referral" in text
        assert "Example City Hospital" in text and "Cardiology" in text and "2026-03-20" in text
        for shown in IDENTITY:
            assert shown not in text, shown
        assert "/use" not in text and "Mark as used" not in text
        assert 'name="born"' in text  # asks for the year of birth instead
        assert COOKIE not in resp.headers.get("Set-Cookie", "")


async def test_the_qr_link_shows_the_patient(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    _, code, token, _ = await issued(db, Signer(db.ring))
    resp = await client.get(f"/r/{code}", params={"t": token, "lang": "en"})
    text = await resp.text()
    assert "Lin Testpatient" in text and "1961" in text and "Mark as used" in text
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Path=/r" in cookie


async def test_code_and_year_of_birth(db: Database, page: tuple[TestClient, VerifyPage]) -> None:
    """The right year shows the patient and the mark form; a wrong one shows nobody, says so,
    and counts: after BORN_TRIES wrong years a slip takes no more years for an hour, from
    any address — even the right year."""
    client, _ = page
    rid, code, token, _ = await issued(db, Signer(db.ring))
    resp = await client.post(f"/r/{code}?lang=en", data={"born": "１９６１"})
    text = await resp.text()
    assert resp.status == 200 and "Lin Testpatient" in text and "Mark as used" in text
    _, fields = _use_form(text)
    assert fields["form"].split(".")[1] == "born"

    for wrong in range(1962, 1962 + BORN_TRIES):
        resp = await client.post(f"/r/{code}?lang=en", data={"born": str(wrong)})
        text = await resp.text()
        assert resp.status == 200 and "does not match" in text
        for shown in IDENTITY:
            assert shown not in text, shown
        assert "Mark as used" not in text
    resp = await client.post(f"/r/{code}?lang=ru", data={"born": "1961"})
    text = await resp.text()
    assert resp.status == 429 and "Lin Testpatient" not in text
    assert "Слишком много неверных" in text and int(resp.headers["Retry-After"]) >= 3600
    # The QR link still works.
    resp = await client.get(f"/r/{code}", params={"t": token})
    assert resp.status == 200 and "Lin Testpatient" in await resp.text()
    # Another slip is not locked by this one's guesses.
    _, other, _, _ = await issued_second(db, Signer(db.ring), await _doctor(db, rid))
    resp = await client.post(f"/r/{other}?lang=en", data={"born": "1999"})
    assert resp.status == 200


async def _doctor(db: Database, rid: str) -> str:
    async with db.uow() as uow:
        ref = await uow.session.get(Referral, rid)
        assert ref is not None
        return ref.doctor_id


async def test_wrong_years_are_rate_limited_like_guesses(db: Database) -> None:
    verify = VerifyPage(db, per_minute=4, now=lambda: NOW)
    client = await _client(verify)
    try:
        _, code, _, _ = await issued(db, Signer(db.ring))
        statuses = []
        for year in range(1900, 1907):
            resp = await client.post(f"/r/{code}", data={"born": str(year)})
            statuses.append(resp.status)
            assert "Lin Testpatient" not in await resp.text()
        assert statuses[:4] == [200] * 4 and set(statuses[4:]) == {429}
    finally:
        await client.close()


# --- marking used --------------------------------------------------------------------------


async def test_cross_origin_mark_is_refused(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, _ = page
    rid, code, token, _ = await issued(db, Signer(db.ring))
    text = await (await client.get(f"/r/{code}", params={"t": token})).text()
    action, fields = _use_form(text)
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": str(client.make_url("/")).rstrip("/").replace("127.0.0.1", "localhost")},
        {"Referer": "https://evil.example/r/x"},
        {},  # neither: a browser always sends Origin with a form POST
    ):
        resp = await client.post(action, data=fields, headers=headers)
        text = await resp.text()
        assert resp.status == 403, headers
        assert "did not come from this page" in text and "Marked as used" not in text
        assert await _status(db, rid) == "issued"
    refused = await _audits(db, rid, "referral.use.refused")
    assert len(refused) == 5
    assert {details["reason"] for _, details in refused} == {"origin"}
    assert {actor for actor, _ in refused} == {"desk:web"}
    # From the page itself (Referer when a browser sends no Origin): marked.
    referer = {"Referer": str(client.make_url(f"/r/{code}"))}
    resp = await client.post(action, data=fields, headers=referer)
    assert resp.status == 200 and "Marked as used" in await resp.text()


async def test_a_form_from_another_verdict_or_page_is_refused(
    db: Database, page: tuple[TestClient, VerifyPage]
) -> None:
    client, verify = page
    rid, code, token, doctor = await issued(db, Signer(db.ring))
    rid2, code2, token2, _ = await issued_second(db, Signer(db.ring), doctor)
    same = _origin(client)

    # Slip A's form posted to slip B.
    action_a, form_a = _use_form(await (await client.get(f"/r/{code}?t={token}")).text())
    resp = await client.post(action_a.replace(code, code2), data=form_a, headers=same)
    assert resp.status == 403 and "too old" in await resp.text()
    # A form from an earlier page: the newer page replaced this browser's nonce.
    await client.get(f"/r/{code2}?t={token2}")
    resp = await client.post(action_a, data=form_a, headers=same)
    assert resp.status == 403
    # A form without this browser's cookie (another browser's page, or a copied form).
    action_a, form_a = _use_form(await (await client.get(f"/r/{code}?t={token}")).text())
    client.session.cookie_jar.clear()
    assert (await client.post(action_a, data=form_a, headers=same)).status == 403
    # A form shown after a typed year, replayed as if the QR had been scanned.
    action_a, form_a = _use_form(
        await (await client.post(f"/r/{code}", data={"born": "1961"})).text()
    )
    stamp, via, mac = form_a["form"].split(".")
    assert via == "born"
    forged = {"form": f"{stamp}.token.{mac}"}
    assert (await client.post(action_a, data=forged, headers=same)).status == 403
    # An old form (past its 30 minutes).
    stale = {"form": f"{int(stamp) - 31 * 60}.{via}.{mac}"}
    assert (await client.post(action_a, data=stale, headers=same)).status == 403
    assert await _status(db, rid) == "issued" and await _status(db, rid2) == "issued"
    reasons = [details["reason"] for _, details in await _audits(db, rid, "referral.use.refused")]
    assert reasons and set(reasons) == {"form"}
    # The genuine form of the page just shown still works.
    resp = await client.post(action_a, data=form_a, headers=same)
    assert resp.status == 200 and await _status(db, rid) == "used"
    del verify


async def test_mark_is_audited_with_the_desks_address(db: Database) -> None:
    verify = VerifyPage(db, per_minute=1000, trust_proxy=True, now=lambda: NOW)
    client = await _client(verify)
    try:
        rid, code, token, _ = await issued(db, Signer(db.ring))
        hop = {"X-Forwarded-For": "10.9.9.9, 198.51.100.23"}
        text = await (await client.get(f"/r/{code}?t={token}", headers=hop)).text()
        action, fields = _use_form(text)
        resp = await client.post(action, data=fields, headers={**hop, **_origin(client)})
        assert resp.status == 200
        uses = await _audits(db, rid, "referral.use.web")
        assert uses == [("desk:web", {"address": "198.51.100.23", "shown_by": "token"})]
        assert len(await _audits(db, rid, "referral.use")) == 1
    finally:
        await client.close()


# --- the client address behind a proxy ---------------------------------------------------------


async def test_spoofed_forwarded_for_does_not_lift_the_limit(db: Database) -> None:
    """The attacker writes a new left-most X-Forwarded-For hop on every request; the proxy
    appends the address it saw. Only that one counts."""
    verify = VerifyPage(db, per_minute=5, trust_proxy=True, now=lambda: NOW)
    client = await _client(verify)
    try:
        statuses = []
        for i in range(8):
            spoof = {"X-Forwarded-For": f"203.0.113.{i}, 198.51.100.7"}
            statuses.append((await client.get("/r/ABC-DEF-GHJ", headers=spoof)).status)
        assert statuses[:5] == [404] * 5 and statuses[5:] == [429] * 3
        # Another real client behind the same proxy is not affected.
        other = {"X-Forwarded-For": "198.51.100.8"}
        assert (await client.get("/r/ABC-DEF-GHJ", headers=other)).status == 404
        # Two X-Forwarded-For headers are read as one list: still the right-most hop.
        headers = [("X-Forwarded-For", "203.0.113.99"), ("X-Forwarded-For", "198.51.100.7")]
        assert (await client.get("/r/ABC-DEF-GHJ", headers=headers)).status == 429
    finally:
        await client.close()


def test_client_address_rules() -> None:
    loopback = parse_networks(("127.0.0.0/8", "::1/128"))
    two = parse_networks(("127.0.0.1", "10.0.0.0/8"))
    # Without trust the header is ignored.
    assert client_address("127.0.0.1", ["1.2.3.4"], loopback, False) == "127.0.0.1"
    # A peer that is not a trusted proxy cannot speak for anyone else.
    assert client_address("192.0.2.5", ["1.2.3.4"], loopback, True) == "192.0.2.5"
    # The right-most hop that is not a trusted proxy, never the left-most.
    assert client_address("127.0.0.1", ["6.6.6.6, 1.2.3.4"], loopback, True) == "1.2.3.4"
    assert client_address("127.0.0.1", ["6.6.6.6, 1.2.3.4, 10.1.2.3"], two, True) == "1.2.3.4"
    assert client_address("127.0.0.1", ["x, 2001:db8::1"], loopback, True) == "2001:db8::1"
    assert client_address("127.0.0.1", ["[2001:db8::2]:443"], loopback, True) == "2001:db8::2"
    assert client_address("127.0.0.1", ["1.2.3.4:5555"], loopback, True) == "1.2.3.4"
    # Only trusted hops (a request from inside): the peer.
    assert client_address("127.0.0.1", ["10.0.0.2"], two, True) == "127.0.0.1"
    assert client_address("127.0.0.1", [], loopback, True) == "127.0.0.1"
